//! A job the hub sent just before a crash, too soon to store the assignment: it runs once.
//! The slave that got it keeps it (with the claim the assignment carried), and the restarted
//! hub holds back the jobs it has as queued until the slaves connected before are back, or
//! for `--crash-hold`, so that no other slave is given the job meanwhile. A clean stop leaves
//! nothing to hold.

use crate::util::*;
use execnode::wire::JobState;
use std::path::Path;

/// A job that writes a line to `dir/starts` and then waits for `dir/go` before it finishes.
fn gated_job(dir: &Path) -> String {
    format!(
        "echo started >> {}; while [ ! -e {} ]; do sleep 0.02; done; echo finished",
        dir.join("starts").display(),
        dir.join("go").display()
    )
}

/// Starts slave `s1` (one slot) and has the hub send it `line` and die before it stores
/// that assignment: the test holds the job database's write lock from just before the hub
/// sends it. `s1` is busy with another job at first, so that the hub has stored that `s1` is
/// connected before the lock is taken; the job is sent when that one ends. Returns the slave
/// and the job's id, once the job has written `dir/starts`.
fn crash_after_sending(hub: &mut Hub, line: &str, dir: &Path) -> (Slave, u64) {
    let s1 = hub.slave("s1", 1);
    let free = dir.join("free");
    let first = hub.submit(
        &format!("while [ ! -e {} ]; do sleep 0.02; done", free.display()),
        &["--no-tty"],
    );
    hub.wait_state(first, JobState::Running);
    let id = hub.submit(line, &["--no-tty"]);
    assert_eq!(hub.job(id).state, JobState::Queued);
    let db = rusqlite::Connection::open(hub.data.join("jobs.db")).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    std::fs::write(&free, "").unwrap();
    wait_until("the job to start", || dir.join("starts").exists());
    hub.kill();
    drop(db);
    (s1, id)
}

/// After the restart the job is queued in the hub's records, yet the slave that runs it keeps
/// it and it runs once, to its real end.
#[test]
fn a_job_sent_just_before_a_hub_crash_runs_once() {
    let mut hub = Hub::start();
    let dir = tempfile::tempdir().unwrap();
    let (_s1, id) = crash_after_sending(&mut hub, &gated_job(dir.path()), dir.path());
    hub.restart(&[]);
    wait_until("the slave to take the job back", || {
        hub.job(id).state == JobState::Running
    });
    std::fs::write(dir.path().join("go"), "").unwrap();
    let rec = hub.wait_ended(id);
    assert_eq!(
        (rec.state, rec.exit_code, rec.attempt),
        (JobState::Exited, Some(0), 1)
    );
    let starts = std::fs::read_to_string(dir.path().join("starts")).unwrap();
    assert_eq!(starts, "started\n");
    assert_eq!(hub.fetch(id), b"finished\n");
}

/// The same, but the slave that runs the job is stopped, and another slave with room dials
/// the restarted hub first: it is not given the job, which waits, saying why, until its own
/// slave is back.
#[test]
fn a_job_sent_just_before_a_hub_crash_waits_for_its_slave_while_another_dials_first() {
    let mut hub = Hub::start();
    let dir = tempfile::tempdir().unwrap();
    let (s1, id) = crash_after_sending(&mut hub, &gated_job(dir.path()), dir.path());
    s1.signal(libc::SIGSTOP);
    hub.restart(&["--crash-hold", "600"]);
    assert!(hub.log_contains("the hub did not stop cleanly"));
    let _s2 = hub.slave("s2", 1);
    let rec = hub.job(id);
    assert_eq!(rec.state, JobState::Queued, "{rec:?}");
    let why = rec.reason.unwrap_or_default();
    assert!(why.contains("held after a crash of the hub"), "{why}");
    let listed = hub.xn_ok(&["-l"]);
    assert!(listed.contains("held after a crash"), "{listed}");

    s1.signal(libc::SIGCONT);
    wait_until("the slave to take the job back", || {
        hub.job(id).state == JobState::Running
    });
    assert!(hub.log_contains("the slaves connected before the hub stopped are back"));
    std::fs::write(dir.path().join("go"), "").unwrap();
    let rec = hub.wait_ended(id);
    assert_eq!(
        (rec.state, rec.exit_code, rec.slave.as_deref(), rec.attempt),
        (JobState::Exited, Some(0), Some("s1"), 1)
    );
    let starts = std::fs::read_to_string(dir.path().join("starts")).unwrap();
    assert_eq!(starts, "started\n");
}

/// A slave that was connected when the hub crashed and does not come back holds the queue up
/// for `--crash-hold` only: then the job goes to another slave.
#[test]
fn queued_jobs_go_out_after_the_crash_hold_when_a_slave_does_not_come_back() {
    let mut hub = Hub::start();
    let mut s1 = hub.slave("s1", 1);
    // s1 lacks the label: the job stays queued while s1 is connected.
    let id = hub.submit("echo ran", &["--no-tty", "--on", "gpu"]);
    hub.kill();
    s1.kill();
    hub.restart(&["--crash-hold", "1"]);
    assert!(hub.log_contains("the hub did not stop cleanly"));
    let _s2 = hub.slave("s2", 1);
    let _s3 = Slave::start(&hub, "s3", 1, &["--label", "gpu"]);
    let rec = hub.wait_ended(id);
    assert_eq!(
        (rec.state, rec.slave.as_deref()),
        (JobState::Exited, Some("s3"))
    );
    assert!(hub.log_contains("did not come back within --crash-hold"));
}

/// A hub stopped cleanly stored every assignment it sent: after its restart, nothing waits
/// for the slaves it had, however long `--crash-hold` is.
#[test]
fn a_hub_stopped_cleanly_holds_nothing_back_after_its_restart() {
    let mut hub = Hub::start();
    let mut s1 = hub.slave("s1", 1);
    let id = hub.submit("echo ran", &["--no-tty", "--on", "gpu"]);
    assert!(hub.stop().success());
    s1.kill();
    hub.restart(&["--crash-hold", "600"]);
    let _s3 = Slave::start(&hub, "s3", 1, &["--label", "gpu"]);
    let rec = hub.wait_ended(id);
    assert_eq!(
        (rec.state, rec.slave.as_deref()),
        (JobState::Exited, Some("s3"))
    );
    assert!(!hub.log_contains("did not stop cleanly"));
}

/// A hold longer than a day is refused before anything is written (one of `u64::MAX` seconds
/// would overflow the clock).
#[test]
fn a_crash_hold_longer_than_a_day_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(exe())
        .args(["hub", "--listen", "127.0.0.1:0", "--crash-hold", "86401"])
        .arg("--data")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("86401 is not in 0..=86400"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
