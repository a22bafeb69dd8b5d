//! Confined slaves: the Landlock sandbox, resource limits, running jobs as another user,
//! refusing to run jobs as root, and per-job work directories.

use crate::util::*;
use execnode::wire::{JobRecord, JobState};
use std::path::Path;

/// Runs `line` without a tty (stderr folded into stdout) and returns its record and output.
fn run(hub: &Hub, line: &str) -> (JobRecord, String) {
    let id = hub.submit(&format!("{{ {line} ; }} 2>&1"), &["--no-tty"]);
    let rec = hub.wait_ended(id);
    let out = String::from_utf8_lossy(&hub.fetch(id)).into_owned();
    (rec, out)
}

fn assert_exited(rec: &JobRecord, code: i32, out: &str) {
    assert_eq!(
        (rec.state, rec.exit_code),
        (JobState::Exited, Some(code)),
        "job {}: {rec:?}\noutput:\n{out}",
        rec.id
    );
}

macro_rules! require_root {
    ($why:literal) => {
        if !is_root() {
            eprintln!("skipped: needs root ({})", $why);
            return;
        }
    };
}

#[test]
fn a_sandboxed_job_writes_only_in_its_work_dir_and_private_tmp() {
    let hub = Hub::start();
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let _s = Slave::start(
        &hub,
        "s1",
        1,
        &["--sandbox", "--work-dir", work.to_str().unwrap()],
    );

    // Inside: the work dir (its cwd) and its own TMPDIR.
    let (rec, out) = run(
        &hub,
        "echo in > inside && cat inside && echo t > \"$TMPDIR/t\" && cat \"$TMPDIR/t\" \
         && mkdir sub && mv inside sub/ && rm -r sub && pwd && echo \"$TMPDIR\"",
    );
    assert_exited(&rec, 0, &out);
    let lines: Vec<&str> = out.lines().collect();
    let jobs = work.join("jobs").join(rec.id.to_string());
    let tmp = work.join("tmp").join(rec.id.to_string());
    assert_eq!(
        lines,
        ["in", "t", jobs.to_str().unwrap(), tmp.to_str().unwrap()]
    );

    // Outside: a directory file permissions would let it write, and /tmp itself.
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let in_tmp = std::env::temp_dir().join(format!("execnode-sandbox-{}", std::process::id()));
    for target in [outside.join("f"), in_tmp.clone()] {
        let (rec, out) = run(&hub, &format!("echo escaped > '{}'", target.display()));
        assert_exited(&rec, 2, &out);
        assert!(out.contains("Permission denied"), "{out}");
        assert!(!target.exists(), "{} was written", target.display());
    }
    // Nor may it remove or truncate what is outside.
    let victim = outside.join("victim");
    std::fs::write(&victim, "keep me").unwrap();
    let (rec, out) = run(
        &hub,
        &format!("truncate -s 0 '{v}'; rm -f '{v}'", v = victim.display()),
    );
    assert_ne!(rec.exit_code, Some(0), "{out}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    // Reading and running things anywhere still works, and so does /dev/null.
    let (rec, out) = run(&hub, "cat /etc/hostname > /dev/null && ls / > /dev/null");
    assert_exited(&rec, 0, &out);
}

#[test]
fn max_memory_stops_a_job_that_allocates_past_it() {
    let hub = Hub::start();
    let _s = Slave::start(&hub, "s1", 1, &["--max-memory", "100M"]);
    // tail keeps a line in memory until its end: a 300 MiB line cannot fit in 100 MiB.
    let (rec, out) = run(&hub, "head -c 300M /dev/zero | tail -n 1 > /dev/null");
    assert_exited(&rec, 1, &out);
    assert!(out.contains("memory exhausted"), "{out}");
    // 10 MiB fits.
    let (rec, out) = run(&hub, "head -c 10M /dev/zero | tail -n 1 | wc -c");
    assert_exited(&rec, 0, &out);
    assert_eq!(out.trim(), "10485760");
}

#[test]
fn open_files_and_procs_limits_are_visible_in_the_job() {
    let hub = Hub::start();
    let _s = Slave::start(
        &hub,
        "s1",
        1,
        &["--max-open-files", "32", "--max-procs", "77"],
    );
    let (rec, out) = run(&hub, "ulimit -n; cat /proc/self/limits");
    assert_exited(&rec, 0, &out);
    assert_eq!(out.lines().next(), Some("32"), "{out}");
    let limit = |name: &str| -> Vec<String> {
        let line = out.lines().find(|l| l.starts_with(name)).unwrap();
        line[name.len()..]
            .split_whitespace()
            .take(2)
            .map(String::from)
            .collect()
    };
    assert_eq!(limit("Max open files"), ["32", "32"]);
    assert_eq!(limit("Max processes"), ["77", "77"]);
    // A job cannot go past the open files limit.
    let (rec, out) = run(&hub, "ulimit -n 64");
    assert_ne!(rec.exit_code, Some(0), "{out}");
}

#[test]
fn max_cpu_seconds_stops_a_busy_job() {
    let hub = Hub::start();
    let _s = Slave::start(&hub, "s1", 1, &["--max-cpu-seconds", "1"]);
    let id = hub.submit("while :; do :; done", &["--no-tty"]);
    let rec = hub.wait_ended(id);
    assert_eq!(rec.state, JobState::Signaled, "{rec:?}");
    // SIGXCPU at the soft limit (the hard limit's SIGKILL a second later if it is ignored).
    assert!(
        matches!(rec.signal, Some(s) if s == libc::SIGXCPU || s == libc::SIGKILL),
        "{rec:?}"
    );
}

#[test]
fn run_as_runs_jobs_as_that_user_in_a_work_dir_it_owns() {
    require_root!("only root can switch users");
    let (uid, gid) = ids_of("nobody");
    let hub = Hub::start();
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let _s = Slave::start(
        &hub,
        "s1",
        1,
        &[
            "--run-as",
            "nobody",
            "--sandbox",
            "--work-dir",
            work.to_str().unwrap(),
        ],
    );
    let (rec, out) = run(
        &hub,
        "id -u; id -g; echo \"$USER $LOGNAME $HOME\"; stat -c %u:%g .; echo hi > mine && cat mine",
    );
    assert_exited(&rec, 0, &out);
    let home = std::process::Command::new("sh")
        .args(["-c", "getent passwd nobody | cut -d: -f6"])
        .output()
        .unwrap();
    let home = String::from_utf8(home.stdout).unwrap();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            uid.to_string(),
            gid.to_string(),
            format!("nobody nobody {}", home.trim()),
            format!("{uid}:{gid}"),
            "hi".into(),
        ]
    );
    // In a terminal, the job owns its terminal and may open it again, sandbox or not.
    let id = hub.submit(
        "stat -c %u \"$(tty)\" && echo > /dev/tty && echo reopened",
        &[],
    );
    let rec = hub.wait_ended(id);
    let out = String::from_utf8_lossy(&hub.fetch(id)).into_owned();
    assert_exited(&rec, 0, &out);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        [uid.to_string().as_str(), "reopened"]
    );
    // Still sandboxed: a directory nobody owns outside its work dir stays closed to it.
    let outside = dir.path().join("nobodys");
    std::fs::create_dir(&outside).unwrap();
    std::os::unix::fs::chown(&outside, Some(uid), Some(gid)).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (rec, out) = run(&hub, &format!("echo x > '{}/f'", outside.display()));
    assert_exited(&rec, 2, &out);
    assert!(!outside.join("f").exists());
    // A working directory closed to that user: the reason says whom it was closed to.
    let closed = dir.path().join("roots");
    std::fs::create_dir(&closed).unwrap();
    std::fs::set_permissions(&closed, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let id = hub.submit("true", &["--cwd", closed.to_str().unwrap()]);
    let rec = hub.wait_ended(id);
    assert_eq!(rec.state, JobState::Failed);
    let reason = rec.reason.unwrap_or_default();
    assert!(
        reason.contains("Permission denied")
            && reason.contains(&format!("in {} as user nobody", closed.display())),
        "{reason}"
    );
}

/// A sandboxed slave whose work directory its jobs' user cannot reach (a directory on the way
/// is closed to it) refuses to start saying so, with the directory and the fix, not blaming
/// Landlock; opened to that user, the same slave starts.
#[test]
fn a_slave_whose_work_dir_its_job_user_cannot_reach_says_so_at_start() {
    require_root!("only root can switch users");
    use std::os::unix::fs::PermissionsExt;
    let hub = Hub::start();
    // With the sandbox and without: a job as that user would fail either way.
    for (i, sandbox) in [&["--sandbox"][..], &[]].into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let work = dir.path().join("wd");
        let mut args = vec!["--run-as", "nobody", "--work-dir", work.to_str().unwrap()];
        args.extend_from_slice(sandbox);
        let (status, err) = Slave::run_to_exit(&hub.url, &args, None).unwrap();
        assert_eq!(status.code(), Some(255), "{err}");
        let closed = dir.path().display();
        assert!(
            !err.contains("Landlock")
                && err.contains("as user nobody")
                && err.contains("Permission denied")
                && err.contains(&format!("{closed} does not let that user through"))
                && err.contains(&format!("chmod o+x {closed}"))
                && err.contains("--work-dir"),
            "{err}"
        );
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).unwrap();
        let _s = Slave::start(&hub, &format!("s{i}"), 1, &args);
    }
}

#[test]
fn a_root_slave_refuses_to_run_jobs_as_root_unless_allowed() {
    require_root!("the check is for root slaves");
    let hub = Hub::start();
    let (status, err) = Slave::run_to_exit(&hub.url, &[], None).unwrap();
    assert_eq!(status.code(), Some(255), "{err}");
    assert!(
        err.contains("refusing to run jobs as root")
            && err.contains("--run-as USER")
            && err.contains("--allow-root-jobs"),
        "{err}"
    );
    // --run-as root is root too.
    let (status, err) = Slave::run_to_exit(&hub.url, &["--run-as", "root"], None).unwrap();
    assert_eq!(status.code(), Some(255), "{err}");
    assert!(err.contains("--allow-root-jobs"), "{err}");
    // And an unknown user is named.
    let (status, err) =
        Slave::run_to_exit(&hub.url, &["--run-as", "no-such-user-xn"], None).unwrap();
    assert_eq!(status.code(), Some(255), "{err}");
    assert!(err.contains("no-such-user-xn: no such user"), "{err}");
    assert!(hub.jobs().is_empty());
}

#[test]
fn a_non_root_slave_refuses_run_as_another_user() {
    require_root!("the test starts the slave as nobody");
    let hub = Hub::start();
    match Slave::run_to_exit(&hub.url, &["--run-as", "root"], Some(ids_of("nobody"))) {
        Ok((status, err)) => {
            assert_eq!(status.code(), Some(255), "{err}");
            assert!(
                err.contains("--run-as root: only a slave running as root"),
                "{err}"
            );
        }
        // The binary may sit where nobody cannot reach it.
        Err(e) => eprintln!("skipped: cannot run the slave as nobody: {e}"),
    }
}

#[test]
fn work_dirs_are_removed_after_the_job_unless_kept() {
    let hub = Hub::start();
    let dir = tempfile::tempdir().unwrap();
    // A file where the directory should be is refused, by name.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let (status, err) = Slave::run_to_exit(
        &hub.url,
        &["--allow-root-jobs", "--work-dir", file.to_str().unwrap()],
        None,
    )
    .unwrap();
    assert!(!status.success());
    assert!(
        err.contains(&format!("--work-dir {} is not a directory", file.display())),
        "{err}"
    );
    let (gone, kept) = (dir.path().join("gone"), dir.path().join("kept"));
    let mut s1 = Slave::start(&hub, "s1", 1, &["--work-dir", gone.to_str().unwrap()]);
    let (rec, out) = run(&hub, "pwd; echo data > made");
    assert_exited(&rec, 0, &out);
    let job_dir = gone.join("jobs").join(rec.id.to_string());
    assert_eq!(out.trim(), job_dir.to_str().unwrap());
    // The end is reported once the directory is gone.
    assert!(!job_dir.exists());
    // A job with a cwd of its own runs there.
    let (code, body) = hub.post("/api/v1/jobs", r#"{"command":"pwd","cwd":"/","tty":false}"#);
    assert_eq!(code, 201, "{body}");
    let id: u64 = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_u64()
        .unwrap();
    hub.wait_ended(id);
    assert_eq!(hub.fetch(id), b"/\n");
    // Its work directory stayed empty: removed on the quick path, before the end too.
    assert!(!gone.join("jobs").join(id.to_string()).exists());
    s1.kill();

    let _s2 = Slave::start(
        &hub,
        "s2",
        1,
        &["--work-dir", kept.to_str().unwrap(), "--keep-work-dirs"],
    );
    let (rec, out) = run(&hub, "echo data > made");
    assert_exited(&rec, 0, &out);
    let made = kept.join("jobs").join(rec.id.to_string()).join("made");
    assert_eq!(std::fs::read_to_string(made).unwrap(), "data\n");
    // A directory already at the next job's place (kept from a hub whose ids started over)
    // is replaced by a fresh, empty one.
    let stale = kept.join("jobs").join((rec.id + 1).to_string());
    std::fs::create_dir_all(stale.join("old")).unwrap();
    std::fs::write(stale.join("old").join("file"), "x").unwrap();
    let (next, out) = run(&hub, "ls -A; pwd");
    assert_exited(&next, 0, &out);
    assert_eq!(next.id, rec.id + 1);
    assert_eq!(out.trim(), stale.to_str().unwrap(), "{out}");
}

/// A `--work-dir` whose slave was killed keeps the directories of the jobs it ran; the next
/// slave there removes them, but only when no other live slave uses the same directory.
#[test]
fn what_a_killed_slave_left_in_its_work_dir_goes_with_the_next_slave_alone_there() {
    let hub = Hub::start();
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let args = ["--work-dir", work.to_str().unwrap()];
    let mut first = Slave::start(&hub, "first", 1, &args);
    let id = hub.submit("sleep 600", &["--slave", "first"]);
    hub.wait_state(id, JobState::Running);
    let left = work.join("jobs").join(id.to_string());
    assert!(left.is_dir());
    // A second slave on the same directory while the first runs: the job's is not its to take.
    let mut second = Slave::start(&hub, "second", 1, &args);
    assert!(left.is_dir());
    assert!(!second.log_contains("left by a slave that is gone"));
    first.kill();
    second.kill();
    // Alone there, the next one clears it.
    let third = Slave::start(&hub, "third", 1, &args);
    assert!(!left.exists());
    assert!(third.log_contains(&format!("removing {}", left.display())));
    // And runs jobs as ever.
    let (rec, out) = run(&hub, "pwd");
    assert_exited(&rec, 0, &out);
}

#[test]
fn the_default_work_dir_goes_when_the_slave_stops() {
    let hub = Hub::start();
    let mut s = Slave::start(&hub, "s1", 1, &[]);
    let root = std::env::temp_dir().join(format!("execnode-slave-{}", s.pid()));
    let (rec, out) = run(&hub, "pwd");
    assert_exited(&rec, 0, &out);
    assert_eq!(
        Path::new(out.trim()),
        root.join("jobs").join(rec.id.to_string())
    );
    assert!(root.is_dir());
    s.signal(libc::SIGTERM);
    assert!(s.wait_exit().success());
    assert!(!root.exists());
}
