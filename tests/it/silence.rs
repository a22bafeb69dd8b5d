//! A client whose connection a cut network leaves open and silent: no error ever ends it, so
//! the hub pings its clients and a client that hears nothing for a while dials again, and
//! resumes where it was.

use crate::relay::Relay;
use crate::util::*;
use std::io::Read;
use std::process::Stdio;

#[test]
fn a_follower_whose_connection_goes_silent_dials_again_and_misses_nothing() {
    let hub = Hub::start();
    let _slave = hub.slave("s1", 1);
    let relay = Relay::start(&hub.addr);
    let job = GatedJob::submit(&hub);
    let mut follower = xn_command(
        &relay.url,
        &hub.token,
        &["-f", &job.id.to_string(), "--follow"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let (followed, reader) = collect(follower.stdout.take().unwrap());
    wait_until("the follower to stream", || {
        followed.lock().unwrap().as_slice() == b"before\n"
    });
    // The route goes away: both ends stay open, nothing arrives either way.
    relay.freeze_now();
    wait_until("the follower to dial again", || relay.accepted() == 2);
    job.finish(&hub);
    let mut err = String::new();
    let mut stderr = follower.stderr.take().unwrap();
    stderr.read_to_string(&mut err).unwrap();
    assert_eq!(follower.wait().unwrap().code(), Some(0), "{err}");
    reader.join().unwrap();
    assert_eq!(followed.lock().unwrap().as_slice(), b"before\nafter\n");
    assert!(err.contains("no word from the other end"), "{err}");
}
