//! Heartbeats against a `--slave-timeout` shorter than their default 5 s: the hub's welcome
//! asks its slaves for word a third of the timeout apart, and a slave that does as told keeps
//! its jobs, however quiet they are. (Once, an idle slave of such a hub was given up between
//! two heartbeats, and its running jobs ended `lost`: retried elsewhere, or reported failed to
//! whoever waited for them.)

use crate::redial::{dial_welcome, runtime};
use crate::util::*;
use execnode::wire::{HubToSlave, JobState, SlaveMsg};
use std::time::Duration;

/// Played over the protocol: the welcome says how often to beat, and a slave that beats that
/// often (and says nothing else) outlives several default heartbeat intervals.
#[test]
fn a_hub_with_a_short_slave_timeout_asks_for_heartbeats_often_enough() {
    let hub = Hub::start_with(&["--slave-timeout", "3"]);
    runtime().block_on(async {
        let (_rd, tx, welcome) = dial_welcome(&hub, "played", Some(7), 1, vec![]).await;
        let HubToSlave::Welcome {
            heartbeat_ms: beat_ms,
            ..
        } = welcome
        else {
            unreachable!("dial_welcome returns the welcome")
        };
        assert_eq!(beat_ms, Some(1000), "a third of the 3 s timeout");
        // Twelve beats: well past the default 5 s interval, and four timeouts.
        for _ in 0..12 {
            tokio::time::sleep(Duration::from_millis(1000)).await;
            tx.send(&SlaveMsg::Heartbeat).await.unwrap();
        }
        let slaves = hub.xn_ok(&["--slaves"]);
        assert!(slaves.contains("played"), "still connected: {slaves}");
    });
    assert!(!hub.log_contains("giving it up"), "the slave was given up");
}

/// The same with a real slave and a job that prints nothing for longer than the timeout.
#[test]
fn a_short_slave_timeout_does_not_lose_the_jobs_of_a_quiet_slave() {
    let hub = Hub::start_with(&["--slave-timeout", "3"]);
    let _slave = hub.slave("s1", 1);
    let id = hub.submit("sleep 8", &["--no-tty"]);
    let rec = hub.wait_ended(id);
    assert_eq!(rec.state, JobState::Exited, "{:?}", rec.reason);
    assert!(rec.attempts.is_empty(), "{:?}", rec.attempts);
    assert!(!hub.log_contains("giving it up"));
}
