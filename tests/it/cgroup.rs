//! `xnslave --cgroup DIR`: each job in a cgroup of its own, so that what it started ends with
//! it, even a process that left its session; a DIR that cannot serve refuses the start; what a
//! dead slave left is cleared by the next. Needs root and a cgroup v2 mount (skipped with a
//! note elsewhere).

use crate::util::*;
use execnode::wire::JobState;
use std::path::{Path, PathBuf};

/// A cgroup made for one test under the cgroup2 mount, removed (with anything left in it)
/// when dropped.
struct TestCgroup {
    dir: PathBuf,
}

impl TestCgroup {
    fn make(name: &str) -> Option<TestCgroup> {
        if !is_root() {
            eprintln!("skipped: needs root to make cgroups");
            return None;
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        // Fields: id parent dev root mountpoint options ... - fstype source options.
        let Some(mount) = mounts.lines().find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            (right.split(' ').next() == Some("cgroup2")).then(|| left.split(' ').nth(4))?
        }) else {
            eprintln!("skipped: no cgroup2 mount");
            return None;
        };
        let dir = Path::new(mount).join(format!("execnode-it-{}-{name}", std::process::id()));
        if let Err(e) = std::fs::create_dir(&dir) {
            eprintln!("skipped: cannot make {}: {e}", dir.display());
            return None;
        }
        Some(TestCgroup { dir })
    }

    /// The job cgroups in it.
    fn children(&self) -> Vec<String> {
        std::fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.join("cgroup.kill"), "1");
        // Every cgroup below, each after its parent; removed deepest first.
        let mut tree = vec![self.dir.clone()];
        let mut next = 0;
        while next < tree.len() {
            let subs: Vec<PathBuf> = std::fs::read_dir(&tree[next])
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect();
            tree.extend(subs);
            next += 1;
        }
        for dir in tree.iter().rev() {
            let start = std::time::Instant::now();
            while std::fs::remove_dir(dir).is_err() && dir.exists() && start.elapsed() < TIMEOUT {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

/// The shell line of a job that starts a process in a session of its own (out of reach of the
/// job's group and session), waits until it wrote its pid to `pidfile`, and goes on with
/// `then`.
fn escaping_job(pidfile: &Path, then: &str) -> String {
    let f = pidfile.display();
    format!(
        "setsid sh -c 'echo $$ > {f}.new && mv {f}.new {f}; exec sleep 1000' \
         </dev/null >/dev/null 2>&1 & while [ ! -s {f} ]; do sleep 0.01; done; {then}"
    )
}

fn pid_in(pidfile: &Path) -> i32 {
    std::fs::read_to_string(pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A hub, a slave whose jobs' cgroups go in `cg`, and a temp dir for the test's files.
fn hub_and_slave(cg: &TestCgroup) -> (Hub, Slave, tempfile::TempDir) {
    let hub = Hub::start();
    let slave = Slave::start(&hub, "s1", 1, &["--cgroup", cg.dir.to_str().unwrap()]);
    (hub, slave, tempfile::tempdir().unwrap())
}

/// Kills a process the test left running if the slave did not.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if alive(self.0) {
            let _ = std::process::Command::new("kill")
                .args(["-9", &self.0.to_string()])
                .status();
        }
    }
}

#[test]
fn what_a_job_started_outside_its_session_ends_with_it() {
    let Some(cg) = TestCgroup::make("ends") else {
        return;
    };
    let (hub, _s, dir) = hub_and_slave(&cg);
    let pidfile = dir.path().join("escaped");
    let id = hub.submit(
        &escaping_job(&pidfile, "cat /proc/self/cgroup"),
        &["--no-tty"],
    );
    let rec = hub.wait_ended(id);
    assert_eq!(
        (rec.state, rec.exit_code),
        (JobState::Exited, Some(0)),
        "{rec:?}"
    );
    let escaped = pid_in(&pidfile);
    let _guard = KillOnDrop(escaped);
    // The job ran in its own cgroup, under DIR.
    let out = String::from_utf8_lossy(&hub.fetch(id)).into_owned();
    assert!(
        out.lines()
            .any(|l| l.starts_with("0::/") && l.contains("/xn-")),
        "{out}"
    );
    // Its escaped process ended with it, and its cgroup is gone.
    wait_until("the escaped process to be killed", || !alive(escaped));
    wait_until("the job's cgroup to be removed", || {
        cg.children().is_empty()
    });
}

#[test]
fn a_cancel_reaches_what_left_the_session() {
    let Some(cg) = TestCgroup::make("cancel") else {
        return;
    };
    let (hub, _s, dir) = hub_and_slave(&cg);
    let pidfile = dir.path().join("escaped");
    let id = hub.submit(
        &escaping_job(&pidfile, "echo started; exec sleep 1000"),
        &[],
    );
    wait_until("the job to start", || {
        String::from_utf8_lossy(&hub.fetch(id)).contains("started")
    });
    let escaped = pid_in(&pidfile);
    let _guard = KillOnDrop(escaped);
    assert!(alive(escaped));
    hub.xn_ok(&["-k", &id.to_string()]);
    assert_eq!(hub.wait_ended(id).state, JobState::Cancelled);
    wait_until("the escaped process to be killed", || !alive(escaped));
    wait_until("the job's cgroup to be removed", || {
        cg.children().is_empty()
    });
}

/// When process `pid` started, in clock ticks since boot (`/proc/PID/stat`, field 22).
fn start_time(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

fn own_start_time() -> u64 {
    start_time("self")
}

/// A `sleep` in the cgroup `dir`, made here, as a job's process left by its slave.
fn held(dir: &Path) -> std::process::Child {
    std::fs::create_dir(dir).unwrap();
    let orphan = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    std::fs::write(dir.join("cgroup.procs"), orphan.id().to_string()).unwrap();
    orphan
}

#[test]
fn a_slave_clears_what_a_dead_slave_left_in_its_cgroup_dir() {
    let Some(cg) = TestCgroup::make("dead") else {
        return;
    };
    // Job cgroups still holding a process, as if their slave had been killed: one of a slave
    // whose pid no process has (above any pid_max), named as slaves before start times were;
    // one whose pid is running, but is not the process that started at that time (the pid was
    // reused: here the test's own pid with another start). And one of a slave that is alive
    // (this test process, by pid and start), which must be left alone.
    let me = std::process::id();
    let dead = cg.dir.join("xn-4294967294-7");
    let reused = cg.dir.join(format!("xn-{me}@1-8"));
    let alive = cg.dir.join(format!("xn-{me}@{}-9", own_start_time()));
    let mut orphans = [held(&dead), held(&reused)];
    let mut kept = held(&alive);
    let hub = Hub::start();
    let s = Slave::start(&hub, "s1", 1, &["--cgroup", cg.dir.to_str().unwrap()]);
    // Killed (and so reaped here), their cgroups removed, and the slave says why.
    for orphan in &mut orphans {
        let mut status = None;
        wait_until("the left process to be killed", || {
            status = orphan.try_wait().unwrap();
            status.is_some()
        });
        let signal = std::os::unix::process::ExitStatusExt::signal(&status.unwrap());
        assert_eq!(signal, Some(9));
    }
    assert!(!dead.exists() && !reused.exists());
    assert!(s.log_contains("its slave (pid 4294967294) is gone"));
    assert!(s.log_contains(&format!("its slave (pid {me}) is gone")));
    // The live slave's is untouched.
    assert!(alive.exists());
    assert!(kept.try_wait().unwrap().is_none());
    kept.kill().unwrap();
    kept.wait().unwrap();
    // Jobs run as ever.
    let id = hub.submit("true", &["--no-tty"]);
    assert_eq!(hub.wait_ended(id).exit_code, Some(0));
}

/// The state of process `pid` (`/proc/PID/stat`, field 3: `R`, `S`, `Z`, ...).
fn state(pid: &str) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    rest.trim_start().chars().next().unwrap()
}

/// A slave that died but is not reaped yet is a zombie: its pid still names a process that
/// started then, but that process runs nothing. What it left must be cleared all the same.
#[test]
fn a_slave_clears_what_a_dead_slave_that_is_still_a_zombie_left() {
    let Some(cg) = TestCgroup::make("zombie") else {
        return;
    };
    // The dead slave: a child of this test that has exited, not waited for yet.
    let mut zombie = std::process::Command::new("true").spawn().unwrap();
    let pid = zombie.id().to_string();
    wait_until("the child to be a zombie", || state(&pid) == 'Z');
    let left = cg.dir.join(format!("xn-{pid}@{}-1", start_time(&pid)));
    let mut orphan = held(&left);
    let _guard = KillOnDrop(orphan.id() as i32);
    let hub = Hub::start();
    let s = Slave::start(&hub, "s1", 1, &["--cgroup", cg.dir.to_str().unwrap()]);
    let mut status = None;
    wait_until("the left process to be killed", || {
        status = orphan.try_wait().unwrap();
        status.is_some()
    });
    let signal = std::os::unix::process::ExitStatusExt::signal(&status.unwrap());
    assert_eq!(signal, Some(9));
    assert!(!left.exists());
    assert!(s.log_contains(&format!("its slave (pid {pid}) is gone")));
    assert!(zombie.wait().unwrap().success());
}

#[test]
fn a_cgroup_left_under_the_next_jobs_name_is_cleared_and_the_job_runs() {
    let Some(cg) = TestCgroup::make("stale") else {
        return;
    };
    let (hub, s, _dir) = hub_and_slave(&cg);
    let first = hub.submit("true", &["--no-tty"]);
    assert_eq!(hub.wait_ended(first).exit_code, Some(0));
    // The hub's data was reset while this slave kept a cgroup it could not remove: the next
    // job comes with the same id, its cgroup's name taken by one that still holds a process.
    let pid = s.pid().to_string();
    let name = format!("xn-{pid}@{}-{}", start_time(&pid), first + 1);
    let mut left = held(&cg.dir.join(&name));
    let id = hub.submit("cat /proc/self/cgroup", &["--no-tty"]);
    let rec = hub.wait_ended(id);
    assert_eq!(id, first + 1);
    let out = String::from_utf8_lossy(&hub.fetch(id)).into_owned();
    assert_eq!(
        (rec.state, rec.exit_code),
        (JobState::Exited, Some(0)),
        "{rec:?}\n{out}"
    );
    // In a cgroup of that name, made again: what was left there was killed first.
    assert!(out.trim_end().ends_with(&format!("/{name}")), "{out}");
    let status = left.try_wait().unwrap();
    assert_eq!(
        status.and_then(|s| std::os::unix::process::ExitStatusExt::signal(&s)),
        Some(9)
    );
    assert!(s.log_contains("killing and removing the stale cgroup"));
    wait_until("the job's cgroup to be removed", || {
        cg.children().is_empty()
    });
}

#[test]
fn a_job_whose_cgroup_cannot_be_made_fails_saying_so_and_leaves_nothing() {
    let Some(cg) = TestCgroup::make("full") else {
        return;
    };
    let hub = Hub::start();
    let work = tempfile::tempdir().unwrap();
    let dir = cg.dir.to_str().unwrap();
    let _s = Slave::start(
        &hub,
        "s1",
        1,
        &["--cgroup", dir, "--work-dir", work.path().to_str().unwrap()],
    );
    // No more cgroups below DIR from now on: the next job's cannot be made.
    std::fs::write(cg.dir.join("cgroup.max.descendants"), "0").unwrap();
    let id = hub.submit("echo ran", &["--no-tty"]);
    let rec = hub.wait_ended(id);
    assert_eq!(rec.state, JobState::Failed, "{rec:?}");
    let reason = rec.reason.unwrap_or_default();
    assert!(
        reason.starts_with("cannot prepare the job: cgroup in ") && reason.contains(dir),
        "{reason}"
    );
    assert!(hub.fetch(id).is_empty());
    // Its work directory was made, then removed again.
    let jobs = work.path().join("jobs");
    assert_eq!(std::fs::read_dir(&jobs).unwrap().count(), 0);
}

#[test]
fn a_cgroup_dir_that_cannot_serve_refuses_the_start() {
    let hub = Hub::start();
    let plain = tempfile::tempdir().unwrap();
    let missing = plain.path().join("nowhere");
    let root = if is_root() {
        vec!["--allow-root-jobs"]
    } else {
        vec![]
    };
    for (dir, says) in [
        (plain.path(), "is not in a cgroup v2 hierarchy"),
        (missing.as_path(), "No such file or directory"),
    ] {
        let mut args = vec!["--cgroup", dir.to_str().unwrap()];
        args.extend(&root);
        let (status, err) = Slave::run_to_exit(&hub.url, &args, None).unwrap();
        assert!(!status.success(), "{err}");
        assert!(
            err.contains(&format!("--cgroup {}", dir.display())) && err.contains(says),
            "{err}"
        );
    }
}

/// A job may make cgroups inside its own (a container runtime, `systemd-run --scope` do) and
/// move into them: they go with it, and its end is not held up by a cgroup that cannot be
/// removed.
#[test]
fn cgroups_a_job_made_inside_its_own_are_removed_with_it() {
    let Some(cg) = TestCgroup::make("nested") else {
        return;
    };
    let hub = Hub::start();
    let dir = cg.dir.to_str().unwrap();
    let s = Slave::start(&hub, "s1", 1, &["--cgroup", dir]);
    let line = format!(
        "own={dir}/$(basename $(sed -n 's/^0:://p' /proc/self/cgroup)); \
         mkdir -p $own/inner/deeper; \
         sh -c 'echo $$ > \"$1\"/cgroup.procs && exec sleep 1000' sh $own/inner/deeper & \
         while ! grep -q . $own/inner/deeper/cgroup.procs; do sleep 0.01; done; echo nested"
    );
    let id = hub.submit(&line, &["--no-tty"]);
    let rec = hub.wait_ended(id);
    assert_eq!(
        (rec.state, rec.exit_code),
        (JobState::Exited, Some(0)),
        "{rec:?}"
    );
    assert!(String::from_utf8_lossy(&hub.fetch(id)).contains("nested"));
    assert!(cg.children().is_empty(), "left: {:?}", cg.children());
    assert!(!s.log_contains("removing cgroup"));
}

/// A cancel's SIGTERM reaches a process that left the job's session into a cgroup the job
/// made inside its own, so that it can clean up before the SIGKILL. (The job's main process
/// waits for that, within the grace period: its end would bring the SIGKILL.)
#[test]
fn a_cancel_terminates_what_is_in_a_cgroup_the_job_made() {
    let Some(cg) = TestCgroup::make("nested-term") else {
        return;
    };
    let hub = Hub::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = cg.dir.to_str().unwrap();
    let _s = Slave::start(&hub, "s1", 1, &["--cgroup", dir]);
    let said = tmp.path().join("said");
    let line = format!(
        "own={dir}/$(basename $(sed -n 's/^0:://p' /proc/self/cgroup)); mkdir $own/inner; \
         setsid sh -c 'trap \"echo term > {said}; exit\" TERM; echo $$ > \"$1\"/cgroup.procs; \
         while :; do sleep 0.05; done' sh $own/inner </dev/null >/dev/null 2>&1 & \
         while ! grep -q . $own/inner/cgroup.procs; do sleep 0.01; done; \
         trap 'while [ ! -s {said} ]; do sleep 0.01; done; exit 1' TERM; echo started; \
         while :; do sleep 0.05; done",
        said = said.display()
    );
    let id = hub.submit(&line, &[]);
    wait_until("the job to start", || {
        String::from_utf8_lossy(&hub.fetch(id)).contains("started")
    });
    hub.xn_ok(&["-k", &id.to_string()]);
    assert_eq!(hub.wait_ended(id).state, JobState::Cancelled);
    assert_eq!(
        std::fs::read_to_string(&said).unwrap_or_default().trim(),
        "term"
    );
    assert!(cg.children().is_empty(), "left: {:?}", cg.children());
}

/// A slave that may make cgroups in DIR but cannot move its children into them (it lives
/// outside the tree it was handed, whose common ancestor with its own cgroup it may not
/// write) refuses to start saying so, rather than fail every job with "Permission denied".
#[test]
fn a_cgroup_dir_its_children_cannot_enter_refuses_the_start() {
    let Some(cg) = TestCgroup::make("foreign") else {
        return;
    };
    let nobody = |flag: &str| -> u32 {
        let out = std::process::Command::new("id")
            .args([flag, "nobody"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let (uid, gid) = (nobody("-u"), nobody("-g"));
    // Delegated by hand: the directory and its files are nobody's, but the slave (nobody)
    // runs in this test's cgroup, under a root-owned ancestor.
    for f in std::iter::once(cg.dir.clone()).chain(
        std::fs::read_dir(&cg.dir)
            .unwrap()
            .flatten()
            .map(|e| e.path()),
    ) {
        std::os::unix::fs::chown(&f, Some(uid), Some(gid)).unwrap();
    }
    let hub = Hub::start();
    let dir = cg.dir.to_str().unwrap();
    let (status, err) = Slave::run_to_exit(&hub.url, &["--cgroup", dir], Some((uid, gid))).unwrap();
    assert!(!status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "--cgroup {dir}: a process of this slave cannot enter a cgroup made there"
        )) && err.contains("Permission denied"),
        "{err}"
    );
    assert!(cg.children().is_empty(), "left: {:?}", cg.children());
}
