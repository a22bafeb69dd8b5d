//! The hub keeps jobs and output across restarts on the same data dir.

use crate::util::*;
use execnode::wire::JobState;

#[test]
fn jobs_and_output_survive_a_hub_restart() {
    let mut hub = Hub::start();
    let mut slave = hub.slave("s1", 2);
    let a = hub.submit("echo first", &[]);
    let b = hub.submit("printf 'x%.0s' $(seq 1 5000)", &["--no-tty"]);
    hub.wait_ended(a);
    hub.wait_ended(b);
    let before = (hub.fetch(a), hub.fetch(b));
    slave.kill();
    assert!(hub.stop().success(), "graceful stop exits 0");
    hub.restart(&[]);
    let jobs = hub.jobs();
    assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), vec![a, b]);
    assert!(jobs.iter().all(|j| j.state == JobState::Exited));
    assert_eq!((hub.fetch(a), hub.fetch(b)), before);
    assert_eq!(before.1.len(), 5000);
    // Ids continue after the old ones.
    let c = hub.submit("echo third", &[]);
    assert_eq!(c, b + 1);

    // The same after a SIGKILL.
    hub.kill();
    hub.restart(&[]);
    assert_eq!(hub.jobs().len(), 3);
    assert_eq!(hub.fetch(a), before.0);
    let _s = hub.slave("s2", 1);
    assert_eq!(hub.wait_ended(c).exit_code, Some(0));
}
