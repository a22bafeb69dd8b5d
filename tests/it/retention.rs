//! Deleting jobs that have ended: `xn --rm ID` on request, `xnhub --retain AGE` by age. What
//! goes is the record and every log file; live jobs never go, and ids and group numbers are
//! never given out again.

use crate::util::*;
use execnode::wire::JobState;
use std::path::PathBuf;

fn log_file(hub: &Hub, id: u64) -> PathBuf {
    hub.data.join("logs").join(format!("{id}.out"))
}

fn listed(hub: &Hub, id: u64) -> bool {
    hub.jobs().iter().any(|j| j.id == id)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn retain_deletes_jobs_that_ended_long_enough_ago_and_never_a_live_one() {
    let mut hub = Hub::start_with(&["--retain", "2s"]);
    let _s = hub.slave("s1", 2);
    let live = GatedJob::submit(&hub);
    let done = hub.submit("echo done", &["--no-tty"]);
    hub.wait_ended(done);
    assert!(log_file(&hub, done).exists());
    wait_until("the ended job to expire", || !listed(&hub, done));
    // Its log files go last, after the record (on a thread of their own).
    wait_until("its output to go too", || !log_file(&hub, done).exists());
    let out = hub.xn(&["-f", &done.to_string()]);
    assert_eq!(out.status.code(), Some(255));
    assert!(stderr(&out).contains(&format!("no job with id {done}")));
    // Logged once the deletion is done, files and all: maybe after the test saw them go.
    wait_until("the deletion in the hub's log", || {
        hub.log_contains("deleted 1 job that ended more than 2s ago")
    });
    // Older than the age by now, but running: kept, output and all.
    assert_eq!(hub.job(live.id).state, JobState::Running);
    assert_eq!(hub.fetch(live.id), b"before\n");
    live.open();
    wait_until("the finished job to expire", || !listed(&hub, live.id));
    wait_until("its output to go", || !log_file(&hub, live.id).exists());
    // Deleted for good: not back after a restart, and their ids are not used again.
    hub.stop();
    hub.restart(&[]);
    assert!(hub.jobs().is_empty());
    let next = hub.submit("true", &[]);
    assert!(next > live.id.max(done), "id {next} given out again");
}

#[test]
fn rm_deletes_an_ended_job_and_nothing_else() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 2);
    let ended = hub.submit("echo bye", &["--no-tty"]);
    hub.wait_ended(ended);
    let id = ended.to_string();
    let live = GatedJob::submit(&hub);

    // Still running: refused, and it runs on untouched.
    let out = hub.xn(&["--rm", &live.id.to_string()]);
    assert_eq!(out.status.code(), Some(255));
    assert!(
        stderr(&out).contains(&format!("job {} is running: cancel it first", live.id)),
        "{}",
        stderr(&out)
    );
    // Unknown, another user's (which a user cannot even see), a viewer's attempt.
    let out = hub.xn(&["--rm", "999"]);
    assert_eq!(out.status.code(), Some(255));
    assert!(stderr(&out).contains("no job with id 999"));
    let user = hub.new_token("ann", "user");
    let out = xn_as(&hub.url, &user, &["--rm", &id]);
    assert_eq!(out.status.code(), Some(255));
    assert!(stderr(&out).contains(&format!("no job with id {ended}")));
    let viewer = hub.new_token("vic", "viewer");
    let out = xn_as(&hub.url, &viewer, &["--rm", &id]);
    assert_eq!(out.status.code(), Some(255));
    assert!(
        stderr(&out).contains("token vic (role viewer) may not delete this job"),
        "{}",
        stderr(&out)
    );
    assert_eq!(hub.fetch(ended), b"bye\n", "nothing was deleted so far");

    // The admin deletes it: record and output.
    let out = hub.xn(&["--rm", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("job {ended} deleted with its output")));
    assert!(!listed(&hub, ended));
    assert!(!log_file(&hub, ended).exists());
    let out = hub.xn(&["--rm", &id]);
    assert!(stderr(&out).contains(&format!("no job with id {ended}")));
    let (status, _) = hub.get(&format!("/api/v1/jobs/{ended}"));
    assert_eq!(status, 404);

    // A user deletes a job of their own.
    let out = xn_as(&hub.url, &user, &["-s", "echo mine", "--no-tty"]);
    let mine = String::from_utf8(out.stdout).unwrap().trim().to_string();
    hub.wait_ended(mine.parse().unwrap());
    let out = xn_as(&hub.url, &user, &["--rm", &mine]);
    assert!(out.status.success(), "{}", stderr(&out));

    live.finish(&hub);
}

#[test]
fn a_deleted_group_number_is_not_given_out_again_after_a_restart() {
    let mut hub = Hub::start();
    let _s = hub.slave("s1", 1);
    assert_eq!(hub.xn_ok(&["-s", "true", "--all"]).trim(), "g1");
    let job = hub.jobs()[0].id;
    hub.wait_ended(job);
    hub.xn_ok(&["--rm", &job.to_string()]);
    hub.stop();
    hub.restart(&[]);
    wait_until("the slave to dial again", || {
        hub.get("/api/v1/slaves").1.contains("\"s1\"")
    });
    assert_eq!(hub.xn_ok(&["-s", "true", "--all"]).trim(), "g2");
}

#[test]
fn retain_needs_an_age_with_a_unit() {
    let dir = tempfile::tempdir().unwrap();
    for (age, says) in [
        ("30", "needs a unit: d, h, m or s"),
        ("2w", "the unit is d, h, m or s"),
        ("0d", "the age must be more than 0"),
    ] {
        let out = std::process::Command::new(exe())
            .args(["hub", "--listen", "127.0.0.1:0", "--retain", age, "--data"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "--retain {age}");
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
    }
}

#[test]
fn a_follower_of_a_job_deleted_under_it_is_told_so() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let size = 64 << 20;
    let id = hub.submit(&format!("head -c {size} /dev/zero"), &["--no-tty"]);
    hub.wait_ended(id);
    let mut follower = hub
        .xn_command(&["-f", &id.to_string(), "--follow"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Nobody reads its stdout yet: it stops mid-way, the hub's replay with it.
    wait_until("the follower to fill its pipe", || {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", follower.id())).unwrap();
        tasks.flatten().any(|t| {
            std::fs::read_to_string(t.path().join("wchan")).is_ok_and(|w| w.contains("pipe"))
        })
    });
    hub.xn_ok(&["--rm", &id.to_string()]);
    let (got, reader) = collect(follower.stdout.take().unwrap());
    let (err, err_reader) = collect(follower.stderr.take().unwrap());
    let status = follower.wait().unwrap();
    reader.join().unwrap();
    err_reader.join().unwrap();
    let err = String::from_utf8_lossy(&err.lock().unwrap()).into_owned();
    // What was on its way arrives, then the news.
    let got = got.lock().unwrap().len();
    assert!(got > 0 && got < size, "{got} bytes; {err}");
    assert_eq!(status.code(), Some(255), "{err}");
    assert!(
        err.contains(&format!("xn: hub: job {id} was deleted")),
        "{err}"
    );
    assert!(err.contains(&format!("no job with id {id}")), "{err}");
    assert!(!log_file(&hub, id).exists(), "the log went with the job");
}

#[test]
fn rm_of_a_group_deletes_all_its_jobs_once_all_have_ended() {
    let hub = Hub::start();
    let _a = hub.slave("a", 1);
    let _b = hub.slave("b", 1);
    hub.xn_ok(&["-s", "echo hi", "--all", "--wait"]);
    let live_group = hub.xn_ok(&["-s", "sleep 60", "--all"]).trim().to_string();
    let of = |g: &str| -> Vec<u64> {
        hub.jobs()
            .iter()
            .filter(|j| j.group.as_deref() == Some(g))
            .map(|j| j.id)
            .collect()
    };
    assert_eq!(of("g1").len(), 2);

    let out = hub.xn(&["--rm", &live_group]);
    assert_eq!(out.status.code(), Some(255));
    assert!(
        stderr(&out).contains("has jobs that have not ended")
            && stderr(&out).contains("nothing was deleted"),
        "{}",
        stderr(&out)
    );
    assert_eq!(of(&live_group).len(), 2);
    for (arg, says) in [("g99", "no group g99"), ("x7", "expected a job id")] {
        let out = hub.xn(&["--rm", arg]);
        assert_eq!(out.status.code(), Some(255));
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
    }

    let ended = of("g1");
    let out = hub.xn(&["--rm", "g1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("group g1 deleted: 2 jobs"));
    assert!(of("g1").is_empty());
    for id in ended {
        assert!(!log_file(&hub, id).exists());
    }
}
