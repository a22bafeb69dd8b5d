//! A client whose connection a cut network leaves open and silent: no error ever ends it, so
//! the hub pings its clients and a client that hears nothing for a while dials again, and
//! resumes where it was.

use crate::relay::Relay;
use crate::util::*;

#[test]
fn a_follower_whose_connection_goes_silent_dials_again_and_misses_nothing() {
    let hub = Hub::start();
    let _slave = hub.slave("s1", 1);
    let relay = Relay::start(&hub.addr);
    let job = GatedJob::submit(&hub);
    let follower = Collected::spawn(&mut xn_command(
        &relay.url,
        &hub.token,
        &["-f", &job.id.to_string(), "--follow"],
    ));
    wait_until("the follower to stream", || {
        follower.out.lock().unwrap().as_slice() == b"before\n"
    });
    // The route goes away: both ends stay open, nothing arrives either way.
    relay.freeze_now();
    wait_until("the follower to dial again", || relay.accepted() == 2);
    job.finish(&hub);
    let (status, out, err) = follower.finish();
    assert_eq!(status.code(), Some(0), "{err}");
    assert_eq!(out, b"before\nafter\n");
    assert!(err.contains("no word from the other end"), "{err}");
}
