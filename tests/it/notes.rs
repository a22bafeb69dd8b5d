//! xn's own words around a job's output: headers and notes start on a line of their own even
//! when the output does not end with a newline; a job that waits says why; an interrupted xn
//! says what keeps running; what the hub says is printed with its control characters written
//! out.

use crate::term::Term;
use crate::util::*;
use execnode::wire::JobState;

/// A job that prints two lines, the last without its newline, and exits 2.
const OPEN_LINE: &str = "printf 'a\\nb'; exit 2";

#[test]
fn group_headers_start_on_a_line_of_their_own() {
    let hub = Hub::start();
    let _a = hub.slave("s1", 1);
    let _b = hub.slave("s2", 1);
    let out = hub.xn(&["-s", OPEN_LINE, "--all", "--wait"]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.matches("a\r\nb\n").count(), 2, "{text:?}");
    assert!(!text.contains("b=="), "{text:?}");
    // The same from -f GROUP, stderr included.
    let group = hub.xn_ok(&["-s", "printf out; printf err >&2", "--all", "--no-tty"]);
    let group = group.trim();
    let jobs: Vec<execnode::wire::JobRecord> =
        serde_json::from_str(&hub.xn_ok(&["-l", "--json", "--group", group])).unwrap();
    for j in &jobs {
        hub.wait_ended(j.id);
    }
    let out = hub.xn(&["-f", group]);
    let (text, err) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    assert_eq!(text.matches("out\n").count(), 2, "{text:?}");
    assert!(!text.contains("out=="), "{text:?}");
    assert_eq!(err, "err\nerr\n");
}

#[test]
fn a_note_after_stderr_output_starts_on_a_line_of_its_own() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    // --wait (as -f --follow): the note of how the job ended.
    let out = hub.xn(&["-s", "printf x >&2; kill -9 $$", "--no-tty", "--wait"]);
    assert_eq!(out.status.code(), Some(128 + 9));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("x\nxn: job "), "{err:?}");
    // -a from a pipe: the note of the job's end.
    let out = hub
        .xn_command(&["-s", "printf x >&2", "--no-tty", "-a"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("]\nx\n[job "), "{err:?}");
    // Stdout in a pipe keeps the job's bytes exactly.
    let out = hub.xn(&["-s", "printf x", "--no-tty", "--wait"]);
    assert_eq!(out.stdout, b"x");
}

#[test]
fn attached_from_a_terminal_the_end_note_starts_on_a_line_of_its_own() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let mut t = Term::xn(&hub, &["-s", OPEN_LINE, "-a"], 24, 80);
    assert_eq!(t.wait_exit().code(), Some(2));
    t.wait_for("exited with code 2]");
    let text = t.text();
    assert!(text.contains("b\r\n[job "), "{text:?}");
}

#[test]
fn an_interrupted_wait_says_the_job_keeps_running() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    for (sig, code) in [
        (libc::SIGINT, 130),
        (libc::SIGTERM, 143),
        (libc::SIGHUP, 129),
    ] {
        let xn = Collected::spawn(&mut hub.xn_command(&[
            "-s",
            "echo started; sleep 1000",
            "--no-tty",
            "--wait",
        ]));
        // Its output shows that xn follows the job, with its handlers in place.
        wait_until("the job's output", || {
            xn.out.lock().unwrap().starts_with(b"started\n")
        });
        signal(xn.child.id(), sig);
        let (status, _, err) = xn.finish();
        assert_eq!(status.code(), Some(code), "{err}");
        let id = hub.jobs().into_iter().map(|j| j.id).max().unwrap();
        let how = match sig {
            libc::SIGINT => "interrupted",
            libc::SIGTERM => "terminated",
            _ => "hung up",
        };
        assert!(
            err.contains(&format!(
                "[xn {how}; job {id} keeps running: xn -k {id} cancels it"
            )),
            "{err}"
        );
        assert_eq!(hub.job(id).state, JobState::Running);
        // The same from -f --follow.
        let xn = Collected::spawn(&mut hub.xn_command(&["-f", &id.to_string(), "--follow"]));
        wait_until("the job's output", || {
            xn.out.lock().unwrap().starts_with(b"started\n")
        });
        signal(xn.child.id(), sig);
        let (status, _, err) = xn.finish();
        assert_eq!(status.code(), Some(code), "{err}");
        assert!(
            err.contains(&format!("[xn {how}; job {id} keeps running")),
            "{err}"
        );
        hub.xn_ok(&["-k", &id.to_string()]);
        hub.wait_ended(id);
    }
}

/// `xn -s ... --wait | head -1`: when the reader of xn's output goes, xn stops, and the job
/// goes on. xn does not know how it will end, so it exits 141 (128 + SIGPIPE, as a program a
/// closed pipe killed), not 0 as if the job had succeeded, and says what it left, as Ctrl-C does.
#[test]
fn a_wait_whose_output_is_closed_says_so_and_does_not_exit_0() {
    use std::io::BufRead;
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let line = "echo started; while :; do echo tick; sleep 0.05; done";
    for args in [
        vec!["-s", line, "--no-tty", "--wait"],
        vec!["-f", "1", "--follow"],
    ] {
        let mut child = hub
            .xn_command(&args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        assert_eq!(first, "started\n", "{args:?}");
        // The reader goes away, as `head -1` does; the job's next tick finds the pipe closed.
        drop(out);
        let (err, _) = collect(child.stderr.take().unwrap());
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(start.elapsed() < TIMEOUT, "{args:?}: xn still runs");
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(141), "{args:?}");
        wait_until("xn's note", || {
            String::from_utf8_lossy(&err.lock().unwrap()).contains(
                "[xn: its output was closed; stopped following job 1: \
                 xn -f 1 --follow follows it again, xn -k 1 cancels it]",
            )
        });
        assert_eq!(hub.job(1).state, JobState::Running);
    }
    hub.xn_ok(&["-k", "1"]);
    hub.wait_ended(1);
}

#[test]
fn an_interrupted_wait_for_a_job_file_ends_xn_and_names_every_job_left() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 3);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jobs.json");
    let jobs = serde_json::json!([
        {"command": "echo started; sleep 1000", "tty": false},
        {"command": "sleep 1000", "tty": false},
        {"command": "sleep 1000", "tty": false}
    ]);
    std::fs::write(&file, jobs.to_string()).unwrap();
    let xn = Collected::spawn(&mut hub.xn_command(&["submit", file.to_str().unwrap(), "--wait"]));
    wait_until("the first job's output", || {
        String::from_utf8_lossy(&xn.out.lock().unwrap()).ends_with("<==\nstarted\n")
    });
    signal(xn.child.id(), libc::SIGINT);
    // Not on to the next job: xn ends.
    let (status, out, err) = xn.finish_within();
    assert_eq!(status.code(), Some(130), "{err}");
    let ids: Vec<u64> = hub.jobs().iter().map(|j| j.id).collect();
    let [a, _, c] = ids[..] else {
        panic!("{ids:?}")
    };
    assert_eq!(
        err,
        format!(
            "[xn interrupted; jobs {a}-{c} keep running: xn -k ID cancels one, \
             xn -f ID --follow follows it]\n"
        )
    );
    assert_eq!(String::from_utf8(out).unwrap().matches("==> ").count(), 1);
    for id in ids {
        assert!(!hub.job(id).state.is_terminal());
        hub.xn_ok(&["-k", &id.to_string()]);
        hub.wait_ended(id);
    }
}

#[test]
fn a_wait_for_a_job_nobody_can_take_says_why() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let xn = Collected::spawn(&mut hub.xn_command(&["-s", "true", "--on", "tpu", "--wait"]));
    wait_until("the queued note", || xn.stderr_text().contains("is queued"));
    signal(xn.child.id(), libc::SIGINT);
    let (status, _, err) = xn.finish();
    assert_eq!(status.code(), Some(130), "{err}");
    let id = hub.jobs()[0].id;
    assert!(
        err.starts_with(&format!(
            "[job {id} is queued: no connected slave has label tpu]\n[xn interrupted; job {id} stays queued: xn -k {id} cancels it"
        )),
        "{err}"
    );
    assert_eq!(hub.job(id).state, JobState::Queued);
}

#[test]
fn a_wait_says_again_when_the_reason_a_job_waits_changes() {
    let hub = Hub::start();
    let s1 = hub.slave("s1", 1);
    let xn = Collected::spawn(
        &mut hub.xn_command(&["-s", "echo ran", "--on", "tpu", "--no-tty", "--wait"]),
    );
    wait_until("the first reason", || {
        xn.stderr_text()
            .contains("is queued: no connected slave has label tpu]")
    });
    drop(s1);
    wait_until("the new reason", || {
        xn.stderr_text()
            .contains("is queued: no slave is connected]")
    });
    let _tpu = Slave::start(&hub, "s2", 1, &["--label", "tpu"]);
    let (status, out, err) = xn.finish();
    assert_eq!(status.code(), Some(0), "{err}");
    assert_eq!(out, b"ran\n");
}

/// Leaving a job that has not started says it stays queued, not that it keeps running: on a
/// detach, SIGTERM and SIGINT alike.
#[test]
fn leaving_a_queued_job_says_it_stays_queued() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let id = hub.submit("true", &["--on", "nope"]);
    let id_s = id.to_string();
    let waiting = "no connected slave has label nope; waiting for it to start]";
    let detached = format!("[detached from job {id}; it stays queued: xn -a {id} to come back]");
    let terminated = format!("[xn terminated; job {id} stays queued]");
    for (leave, note) in [(None, detached), (Some(libc::SIGTERM), terminated)] {
        let mut t = Term::xn(&hub, &["-a", &id_s], 24, 80);
        t.wait_for(waiting);
        match leave {
            Some(sig) => signal(t.pid(), sig),
            None => t.send(b"\x1dd"),
        }
        t.wait_exit();
        t.wait_for(&note);
    }
    // SIGINT is xn's only when the terminal is not raw: attached from a pipe.
    let xn = Collected::spawn(
        hub.xn_command(&["-a", &id_s])
            .stdin(std::process::Stdio::piped()),
    );
    wait_until("the queued note", || xn.stderr_text().contains(waiting));
    signal(xn.child.id(), libc::SIGINT);
    let (status, _, err) = xn.finish();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(
        err.contains(&format!(
            "[xn interrupted; job {id} stays queued: xn -a {id} to come back]"
        )),
        "{err}"
    );
    assert_eq!(hub.job(id).state, JobState::Queued);
}

#[test]
fn ctrl_c_ends_a_follow_still_waiting_for_its_hub() {
    // A "hub" that takes the connection and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let xn = Collected::spawn(&mut xn_command(&url, "xn_unused", &["-f", "7", "--follow"]));
    // Connected: xn waits for its first answer, its handlers in place.
    silent.set_nonblocking(true).unwrap();
    let mut conn = None;
    wait_until("xn to connect", || {
        conn = silent.accept().ok();
        conn.is_some()
    });
    signal(xn.child.id(), libc::SIGINT);
    let (status, _, err) = xn.finish();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(
        err.contains("[xn interrupted; job 7 keeps running"),
        "{err}"
    );
}

#[test]
fn a_note_in_the_middle_of_the_output_starts_on_a_line_of_its_own() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    // The first attempt leaves a line open on stderr; the retry's note comes after it.
    let out = hub.xn(&[
        "-s",
        "printf half-line >&2; exit 1",
        "--no-tty",
        "--retries",
        "1",
        "--retries-on-failure",
        "--wait",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("half-line\nxn: job "), "{err}");
    assert!(err.contains(": retrying, attempt 2\nhalf-line"), "{err}");
}

#[test]
fn what_the_hub_says_is_printed_with_its_control_characters_written_out() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    // A job that cannot start: the slave's reason quotes the cwd the user chose, and the hub
    // passes it on, in the job's record and in the errors that describe the job.
    let cwd = "/nonexistent/\x1b]0;owned\x07\x1b[2J\u{202e}txt";
    let shown = "/nonexistent/\\e]0;owned\\x07\\e[2J\\u{202e}txt";
    let out = hub.xn(&["-s", "true", "--no-tty", "--cwd", cwd, "--wait"]);
    let id = hub.jobs()[0].id.to_string();
    let mut outs = vec![(vec!["-s", "--wait"], out)];
    for args in [
        vec!["-f", &id, "--follow"],
        vec!["-a", &id, "--read-only"],
        // The hub's error body: the job has already ended (failed: ...).
        vec!["-k", &id],
        vec!["--rm", &id],
    ] {
        let out = hub.xn(&args);
        outs.push((args, out));
    }
    for ((args, out), code) in outs.into_iter().zip([1, 1, 1, 255, 0]) {
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(shown), "{args:?}: {err:?}");
        assert!(
            !err.contains(['\x1b', '\x07', '\u{202e}']),
            "{args:?}: {err:?}"
        );
    }
}
