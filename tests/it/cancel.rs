//! Cancelling queued and running jobs: nothing of a cancelled job is left running.

use crate::util::*;
use execnode::wire::JobState;

#[test]
fn cancel_a_queued_job() {
    let hub = Hub::start();
    let id = hub.submit("echo never", &[]);
    let out = hub.xn(&["-k", &id.to_string()]);
    assert!(out.status.success());
    let rec = hub.job(id);
    assert_eq!(rec.state, JobState::Cancelled);
    // A slave arriving later does not run it.
    let _s = hub.slave("s1", 1);
    let next = hub.submit("echo after", &[]);
    hub.wait_ended(next);
    assert_eq!(hub.job(id).state, JobState::Cancelled);
    assert!(hub.fetch(id).is_empty());
    // Cancelling it again says it has ended.
    let again = hub.xn(&["-k", &id.to_string()]);
    assert_eq!(again.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already ended"));
}

#[test]
fn cancel_a_running_job_kills_its_whole_process_group() {
    let hub = Hub::start_with(&["--cancel-grace", "1"]);
    let _s = hub.slave("s1", 1);
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pids");
    // A background grandchild that ignores SIGTERM, and a foreground sleep.
    let line = format!(
        "sh -c 'trap \"\" TERM; sleep 1000' & echo $! > {p}.tmp; sleep 1000 & echo $! >> {p}.tmp; mv {p}.tmp {p}; wait",
        p = pidfile.display()
    );
    let id = hub.submit(&line, &["--no-tty"]);
    wait_until("the job to write its pids", || pidfile.exists());
    let pids: Vec<i32> = std::fs::read_to_string(&pidfile)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|&p| alive(p)));
    let out = hub.xn(&["-k", &id.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rec = hub.wait_ended(id);
    assert_eq!(rec.state, JobState::Cancelled);
    wait_until("every process of the job to be gone", || {
        pids.iter().all(|&p| !alive(p))
    });
}

#[test]
fn a_job_that_exits_leaves_nothing_behind() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let line = format!("sleep 1000 & echo $! > {}; echo done", pidfile.display());
    let id = hub.submit(&line, &["--no-tty"]);
    let rec = hub.wait_ended(id);
    assert_eq!(rec.exit_code, Some(0));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_until("the leftover background process to be gone", || !alive(pid));
}
