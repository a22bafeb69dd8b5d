//! Heartbeats against a `--slave-timeout` shorter than their default 5 s: the hub's welcome
//! asks its slaves for word a third of the timeout apart, and a slave that does as told keeps
//! its jobs, however quiet they are. (Once, an idle slave of such a hub was given up between
//! two heartbeats, and its running jobs ended `lost`: retried elsewhere, or reported failed to
//! whoever waited for them.)

use crate::redial::{dial_welcome, runtime};
use crate::relay::Relay;
use crate::util::*;
use execnode::wire::{HubToSlave, SlaveMsg};
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

/// The silence checks of a hub whose `--slave-timeout` is 3 s: a third of it apart, and each
/// followed by a heartbeat to the slave, which the relay counts. Nine of them, a second apart,
/// span 8 s, in which a slave beating every 5 s (the default) is silent for over 3 s at least
/// once, as seen by a check: given up.
const CHECKS: usize = 9;

/// The same with a real slave and a job that prints nothing while the hub checks the slave's
/// silence `CHECKS` times: no wall-clock wait in the test, only the hub's own checks, counted
/// as they happen. The job then ends as it would, never `lost`.
#[test]
fn a_short_slave_timeout_does_not_lose_the_jobs_of_a_quiet_slave() {
    let hub = Hub::start_with(&["--slave-timeout", "3"]);
    let relay = Relay::start(&hub.addr);
    let _slave = Slave::start_at(&relay.url, &hub.slave_token, "s1", 1, &[]);
    // Printed "before"; now quiet until its gate opens.
    let job = GatedJob::submit(&hub);
    relay.count_from_hub(br#"{"type":"heartbeat"}"#);
    wait_until("the hub to check the quiet slave's silence", || {
        relay.count() >= CHECKS || hub.log_contains("giving it up")
    });
    assert!(!hub.log_contains("giving it up"), "the slave was given up");
    job.finish(&hub);
    assert!(hub.job(job.id).attempts.is_empty());
}
