//! Timeouts and retries: a job past its timeout is ended with its whole process group, and a
//! job whose slave is lost runs again, each attempt's output kept apart.

use crate::util::*;
use execnode::wire::JobState;

#[test]
fn a_timeout_ends_the_job_and_its_process_group() {
    let hub = Hub::start_with(&["--cancel-grace", "1"]);
    let _s = hub.slave("s1", 1);
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pids");
    // A grandchild that ignores SIGTERM, and a foreground sleep.
    let line = format!(
        "sh -c 'trap \"\" TERM; sleep 1000' & echo $! > {p}.tmp; sleep 1000 & echo $! >> {p}.tmp; mv {p}.tmp {p}; wait",
        p = pidfile.display()
    );
    let id = hub.submit(&line, &["--timeout", "1.5", "--no-tty"]);
    wait_until("the job to write its pids", || pidfile.exists());
    let pids: Vec<i32> = std::fs::read_to_string(&pidfile)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(pids.iter().all(|&p| alive(p)));
    let rec = hub.wait_ended(id);
    assert_eq!(rec.state, JobState::Failed);
    assert_eq!(rec.reason.as_deref(), Some("timeout"));
    assert_eq!(rec.spec.timeout, Some(1.5));
    wait_until("every process of the job to be gone", || {
        pids.iter().all(|&p| !alive(p))
    });
    // `--wait` reports it as a failure.
    let out = hub.xn(&["-s", "sleep 5", "--timeout", "0.2", "--wait"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_lost_attempt_is_retried_and_each_attempts_output_is_kept() {
    let hub = Hub::start_with(&["--slave-timeout", "2"]);
    let mut first = hub.slave("first", 1);
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let line = format!(
        "if [ -e {m} ]; then echo second try; else touch {m}; echo first try; sleep 1000; fi",
        m = marker.display()
    );
    let id = hub.submit(&line, &["--retries", "2"]);
    wait_until("the first attempt to print", || hub.job(id).stdout_len > 0);
    first.kill();
    let _second = hub.slave("second", 1);
    let rec = hub.wait_ended(id);
    assert_eq!(rec.state, JobState::Exited, "{rec:?}");
    assert_eq!(rec.attempt, 2);
    assert_eq!(rec.slave.as_deref(), Some("second"));
    assert_eq!(rec.attempts.len(), 1);
    let a1 = &rec.attempts[0];
    assert_eq!((a1.attempt, a1.state), (1, JobState::Lost));
    assert_eq!(a1.slave.as_deref(), Some("first"));
    // The current attempt's output, and the first one's, apart.
    assert_eq!(hub.fetch(id), b"second try\r\n");
    let old = hub.xn(&["-f", &id.to_string(), "--attempt", "1"]);
    assert_eq!(old.stdout, b"first try\r\n");
    let again = hub.xn(&["-f", &id.to_string(), "--attempt", "2"]);
    assert_eq!(again.stdout, b"second try\r\n");
    let none = hub.xn(&["-f", &id.to_string(), "--attempt", "3"]);
    assert_eq!(none.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no attempt 3"));
    // Following the job replays its current attempt.
    let out = hub.xn(&["-f", &id.to_string(), "--follow"]);
    assert_eq!(
        (out.status.code(), out.stdout),
        (Some(0), b"second try\r\n".to_vec())
    );
}

#[test]
fn failures_are_retried_only_when_asked() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 2);
    let plain = hub.submit("echo once; exit 3", &["--retries", "2"]);
    assert_eq!(
        hub.wait_ended(plain).attempt,
        1,
        "a failure alone is not retried"
    );
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("count");
    let line = format!(
        "echo x >> {c}; [ $(wc -l < {c}) -ge 2 ]",
        c = count.display()
    );
    let id = hub.submit(&line, &["--retries", "3", "--retries-on-failure"]);
    let rec = hub.wait_ended(id);
    assert_eq!(
        (rec.state, rec.exit_code, rec.attempt),
        (JobState::Exited, Some(0), 2)
    );
    assert_eq!(rec.attempts[0].exit_code, Some(1));
}

/// A slave out of touch long enough for its job to be given up and queued for a retry comes
/// back still running the first attempt. The hub tells it to forget that run and may assign
/// it the retry at once: the retry waits until the first run is gone (the same work
/// directory), and the first run's end is not taken for the retry's.
#[test]
fn a_retry_given_to_the_slave_still_ending_the_first_attempt_is_not_mixed_up_with_it() {
    let hub = Hub::start_with(&["--slave-timeout", "1"]);
    let s = hub.slave("s1", 2);
    let dir = tempfile::tempdir().unwrap();
    let (runs, marker, go) = (
        dir.path().join("runs"),
        dir.path().join("marker"),
        dir.path().join("go"),
    );
    let line = format!(
        "echo $$ >> {r}; if [ -e {m} ]; then while [ ! -e {g} ]; do sleep 0.02; done; echo second; \
         else touch {m}; sleep 1000; fi",
        r = runs.display(),
        m = marker.display(),
        g = go.display()
    );
    let id = hub.submit(&line, &["--retries", "1", "--no-tty"]);
    wait_until("the first attempt to start", || marker.exists());
    let first: i32 = std::fs::read_to_string(&runs)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    lose_the_first_attempt(&hub, &s, id);
    wait_until("the first run to be stopped", || !alive(first));
    wait_until("the retry to run", || {
        std::fs::read_to_string(&runs).is_ok_and(|r| r.lines().count() == 2)
    });
    // The first run's end, had it been sent as the retry's, is on the connection before the
    // end of a job that starts after it.
    assert_eq!(hub.xn(&["-s", "true", "--wait"]).status.code(), Some(0));
    let rec = hub.job(id);
    assert_eq!((rec.state, rec.attempt), (JobState::Running, 2), "{rec:?}");
    std::fs::write(&go, "").unwrap();
    let rec = hub.wait_ended(id);
    assert_eq!(
        (rec.state, rec.exit_code, rec.attempt),
        (JobState::Exited, Some(0), 2)
    );
    assert_eq!(hub.fetch(id), b"second\n");
}

/// A slave out of touch past the slave timeout comes back with the first attempt's end still
/// to report (it ended while the slave was away); the hub, which has queued the retry, assigns
/// the retry to that very slave at once. A slave sends what it owes right after the welcome,
/// before it reads the `cancel` and `done` the hub sends for the first attempt: the hub must
/// not take that end for the retry's. It lists the job in the welcome (`forget`), which the
/// slave reads before it sends anything. Played over the real protocol, as in `redial`: the
/// played slave does as the execnode slave does.
#[test]
fn the_end_of_a_lost_attempt_is_not_taken_for_the_retry_given_to_the_same_slave() {
    use crate::redial::{dial_as, next, report_exit, runtime};
    use execnode::conn::{self, Incoming};
    use execnode::http::HubUrl;
    use execnode::wire::{HubToSlave, RunningJob, SlaveMsg, PROTOCOL_VERSION};

    let hub = Hub::start_with(&["--slave-timeout", "1"]);
    let rt = runtime();
    let (id, claim) = rt.block_on(async {
        let (mut rd, tx) = dial_as(&hub, "s1", Some(71), 1, &[]).await;
        let id = hub.submit("true", &["--retries", "1"]);
        let claim = match next(&mut rd).await {
            Some(HubToSlave::Assign { job, claim, .. }) if job == id => claim,
            other => panic!("expected the assignment of job {id}, got {other:?}"),
        };
        tx.send(&SlaveMsg::Started { job: id, pid: 4242 })
            .await
            .unwrap();
        wait_until("the job to run", || hub.job(id).state == JobState::Running);
        (id, claim)
    });
    wait_for_the_retry(&hub, id);
    rt.block_on(async {
        let url = HubUrl::parse(&hub.url)
            .unwrap()
            .with_token(Some(hub.slave_token.clone()));
        let (mut rd, tx) = conn::start(url.websocket("/api/v1/slave").await.unwrap());
        tx.send(&SlaveMsg::Hello {
            protocol: PROTOCOL_VERSION,
            name: "s1".into(),
            slots: 1,
            running: vec![RunningJob { job: id, claim }],
            labels: vec![],
            instance: Some(71),
            resend: false,
        })
        .await
        .unwrap();
        // Read as JSON: what a welcome may hold is the point here.
        let welcome = match rd.recv::<serde_json::Value>().await.unwrap() {
            Some(Incoming::Msg(w)) if w["type"] == "welcome" => w,
            other => panic!("expected a welcome, got {other:?}"),
        };
        let forget = welcome["forget"].as_array().cloned().unwrap_or_default();
        if !forget.contains(&serde_json::json!(id)) {
            // Nothing said the first attempt is not wanted: its end goes out at once.
            report_exit(&tx, id, 3, 0).await;
        }
        assert!(matches!(next(&mut rd).await, Some(HubToSlave::Cancel { job, .. }) if job == id));
        assert_eq!(next(&mut rd).await, Some(HubToSlave::Done { job: id }));
        assert!(matches!(next(&mut rd).await, Some(HubToSlave::Assign { job, .. }) if job == id));
        // The retry runs and exits 0.
        tx.send(&SlaveMsg::Started { job: id, pid: 4343 })
            .await
            .unwrap();
        report_exit(&tx, id, 0, 0).await;
        assert_eq!(next(&mut rd).await, Some(HubToSlave::Done { job: id }));
    });
    let rec = hub.wait_ended(id);
    assert_eq!(
        (rec.state, rec.exit_code, rec.attempt),
        (JobState::Exited, Some(0), 2),
        "{rec:?}"
    );
    assert_eq!(rec.attempts[0].state, JobState::Lost);
}

/// Creates its file when dropped: lets a process the test started outside the slave's reach
/// end, whatever the test's outcome.
struct Gate(std::path::PathBuf);

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, "");
    }
}

/// Longer than the 5 s between a slave's heartbeats, so that a slave that waits (and so sends
/// nothing else) is not given up; seconds.
const SLOW_SLAVE_TIMEOUT: &str = "7";

/// A retry given to the slave whose first run still winds down waits for that run, and that
/// run, forgotten, does not wait for a process that left its session and still writes to its
/// output (nobody will read that output): the retry runs to its end while that process is
/// still there.
#[test]
fn a_retry_does_not_wait_for_a_process_that_outlives_the_forgotten_first_run() {
    let hub = Hub::start_with(&["--slave-timeout", SLOW_SLAVE_TIMEOUT]);
    let s = hub.slave("s1", 2);
    let dir = tempfile::tempdir().unwrap();
    let (marker, pidfile) = (dir.path().join("marker"), dir.path().join("writer"));
    let gate = Gate(dir.path().join("gate"));
    let line = format!(
        "if [ -e {m} ]; then echo second; else touch {m}; \
         setsid sh -c 'echo $$ > {p}; while [ ! -e {g} ]; do echo x; sleep 0.05; done' & \
         sleep 1000; fi",
        m = marker.display(),
        p = pidfile.display(),
        g = gate.0.display()
    );
    let id = hub.submit(&line, &["--retries", "1", "--no-tty"]);
    wait_until("the writer to start", || {
        std::fs::read_to_string(&pidfile).is_ok_and(|p| p.ends_with('\n'))
    });
    let writer: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    lose_the_first_attempt(&hub, &s, id);
    let rec = hub.wait_ended(id);
    assert_eq!(
        (rec.state, rec.exit_code, rec.attempt),
        (JobState::Exited, Some(0), 2),
        "{rec:?}"
    );
    assert_eq!(hub.fetch(id), b"second\n");
    // It was there all along; it goes once its output is closed or the test lets it.
    drop(gate);
    wait_until("the writer to end", || !alive(writer));
}

/// Keeps slave `s` silent past the hub's --slave-timeout, so that job `id`'s first attempt is
/// lost and the job queued for its retry, and lets it go on once the retry's backoff (1 s) has
/// passed: its hello is then followed at once by the retry's assignment, while it still runs
/// the first attempt.
fn lose_the_first_attempt(hub: &Hub, s: &Slave, id: u64) {
    s.signal(libc::SIGSTOP);
    wait_for_the_retry(hub, id);
    s.signal(libc::SIGCONT);
}

/// Waits until job `id`'s first attempt is lost and the job queued for its retry, and the
/// retry's backoff (1 s) has passed: a slave's hello is then followed at once by the retry's
/// assignment.
fn wait_for_the_retry(hub: &Hub, id: u64) {
    wait_until("the job to be queued for its retry", || {
        let rec = hub.job(id);
        rec.state == JobState::Queued && rec.attempt == 2
    });
    let lost_ms = hub.job(id).attempts[0].ended_ms.unwrap();
    wait_until("the retry's backoff to pass", || {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        now.unwrap().as_millis() as u64 > lost_ms + 1_200
    });
}
