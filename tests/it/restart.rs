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

/// Output lengths stored in jobs.db for job `id`, as the hub last committed them.
fn stored_lens(data: &std::path::Path, id: u64) -> (Option<i64>, Option<i64>) {
    let db = rusqlite::Connection::open(data.join("jobs.db")).unwrap();
    db.query_row(
        "SELECT stdout_len, stderr_len FROM jobs WHERE id = ?1",
        [id as i64],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .unwrap()
}

/// Runs a pipes job printing 3 bytes on stdout and 2 on stderr, to its end.
fn job_with_output(hub: &Hub) -> u64 {
    let id = hub.submit("printf abc; printf de >&2", &["--no-tty"]);
    let rec = hub.wait_ended(id);
    assert_eq!((rec.stdout_len, rec.stderr_len), (3, 2));
    id
}

#[test]
fn output_lengths_are_stored_with_the_end_and_survive_a_restart() {
    let mut hub = Hub::start();
    let mut slave = hub.slave("s1", 1);
    let a = job_with_output(&hub);
    let before = hub.job(a);
    slave.kill();
    assert!(hub.stop().success());
    assert_eq!(stored_lens(&hub.data, a), (Some(3), Some(2)));
    hub.restart(&[]);
    assert_eq!(hub.job(a), before);
    assert_eq!(hub.fetch(a), b"abc");
}

#[test]
fn a_database_from_before_the_stored_lengths_still_opens_and_lists_them() {
    let mut hub = Hub::start();
    let mut slave = hub.slave("s1", 1);
    let a = job_with_output(&hub);
    let before = hub.job(a);
    slave.kill();
    assert!(hub.stop().success());
    // What an older hub left: the jobs table without the length columns.
    let db = rusqlite::Connection::open(hub.data.join("jobs.db")).unwrap();
    db.execute_batch(
        "ALTER TABLE jobs DROP COLUMN stdout_len; ALTER TABLE jobs DROP COLUMN stderr_len;",
    )
    .unwrap();
    drop(db);
    hub.restart(&[]);
    // The lengths come from the log files, and are stored for the next start.
    assert_eq!(hub.job(a), before);
    let list = hub.xn_ok(&["-l"]);
    assert!(list.contains("printf abc"), "{list}");
    assert!(hub.stop().success());
    assert_eq!(stored_lens(&hub.data, a), (Some(3), Some(2)));
    hub.restart(&[]);
    assert_eq!(hub.job(a), before);
}

/// A hub that stops cleanly leaves every record in `jobs.db` itself, its write-ahead log
/// empty: copying that one file of a stopped hub (a backup, a move) keeps every job. It used to
/// leave the last commits in `jobs.db-wal`, without which a copy of `jobs.db` had none of them.
#[test]
fn a_cleanly_stopped_hub_leaves_every_record_in_jobs_db() {
    let mut hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let id = job_with_output(&hub);
    assert!(hub.stop().success());
    let wal = hub.data.join("jobs.db-wal");
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(wal_len, 0, "{} holds {wal_len} bytes", wal.display());
    // jobs.db alone, elsewhere, has the job and its end.
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(hub.data.join("jobs.db"), copy.path().join("jobs.db")).unwrap();
    assert_eq!(stored_lens(copy.path(), id), (Some(3), Some(2)));
}
