//! `xn -a`: interactive, shared, resumable terminals, driven through real pseudo-terminals.

use crate::term::Term;
use crate::util::*;
use execnode::wire::JobState;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

const BASH: &str = "env PS1='xn$ ' bash --norc --noprofile -i";
const CTRL_BRACKET: &[u8] = b"\x1d";

/// Submits an interactive bash and waits until it runs; its id, and as text.
fn running_bash(hub: &Hub) -> (u64, String) {
    let id = hub.submit(BASH, &[]);
    hub.wait_state(id, JobState::Running);
    (id, id.to_string())
}

fn last_id(hub: &Hub) -> u64 {
    hub.jobs().last().expect("a job").id
}

#[test]
fn python_answers_interactively() {
    if Command::new("python3").arg("-c").arg("1").status().is_err() {
        eprintln!("python3 not installed; skipping");
        return;
    }
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let mut t = Term::xn(&hub, &["-s", "python3 -i -q", "-a"], 24, 80);
    t.wait_for("Ctrl-] d detaches");
    t.wait_for(">>> ");
    t.send(b"print(6*7)\r");
    t.wait_for("42\r\n");
    t.send(b"exit()\r");
    let status = t.wait_exit();
    assert_eq!(status.code(), Some(0));
    t.wait_for("exited with code 0]");
    assert!(t.is_cooked(), "terminal restored");
}

#[test]
fn bash_sees_the_clients_size_and_resizes() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let mut t = Term::xn(&hub, &["-s", BASH, "-a"], 30, 100);
    t.wait_for("xn$ ");
    t.send(b"stty size\r");
    t.wait_for("30 100");
    t.resize(40, 120);
    // The resize reaches the job asynchronously: ask until it shows.
    let start = std::time::Instant::now();
    while !t.text().contains("40 120") {
        assert!(start.elapsed() < TIMEOUT, "{}", t.text());
        t.send(b"stty size\r");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    t.send(b"exit 4\r");
    assert_eq!(t.wait_exit().code(), Some(4));
    t.wait_for("exited with code 4]");
}

#[test]
fn detach_and_reattach_shows_history_once_then_live_output() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let mut t = Term::xn(&hub, &["-s", BASH, "-a"], 24, 80);
    t.wait_for("xn$ ");
    t.send(b"echo $((1000+1))\r");
    t.wait_for("1001\r\n");
    t.send(CTRL_BRACKET);
    t.send(b"d");
    assert_eq!(t.wait_exit().code(), Some(0));
    t.wait_for("[detached from job");
    let id = last_id(&hub);
    assert_eq!(hub.job(id).state, JobState::Running);

    let mut t2 = Term::xn(&hub, &["-a", &id.to_string()], 24, 80);
    t2.wait_for("1001\r\n");
    t2.send(b"echo $((2000+2))\r");
    t2.wait_for("2002\r\n");
    assert_eq!(t2.count("1001\r\n"), 1, "history shown once");
    t2.send(b"exit\r");
    assert_eq!(t2.wait_exit().code(), Some(0));
    // Attaching to the finished job replays it and exits with its code.
    let mut t3 = Term::xn(&hub, &["-a", &id.to_string()], 24, 80);
    assert_eq!(t3.wait_exit().code(), Some(0));
    t3.wait_for("2002\r\n");
    t3.wait_for("exited with code 0]");
}

/// The bytes a terminal showed between the attach hint and the closing `[job ...]` line.
fn between_hint_and_end(screen: &[u8]) -> Vec<u8> {
    let text = screen;
    let start = find(text, b"]\r\n").expect("hint") + 3;
    let end = rfind(text, b"[job ").expect("end line");
    text[start..end].to_vec()
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn rfind(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).rposition(|w| w == n)
}

#[test]
fn two_attached_clients_see_the_same_bytes_and_a_viewer_cannot_type() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let (id, ids) = running_bash(&hub);
    let mut a = Term::xn(&hub, &["-a", &ids], 24, 80);
    let mut b = Term::xn(&hub, &["-a", &ids], 24, 80);
    let mut v = Term::xn(&hub, &["-a", &ids, "--read-only"], 24, 80);
    for t in [&a, &b, &v] {
        t.wait_for("xn$ ");
    }
    v.wait_for("read-only");
    v.send(b"echo $((4000+4))\r");
    a.send(b"echo $((3000+3))\r");
    for t in [&a, &b, &v] {
        t.wait_for("3003\r\n");
    }
    b.send(b"echo $((5000+5))\r");
    for t in [&a, &b, &v] {
        t.wait_for("5005\r\n");
    }
    a.send(b"exit\r");
    for t in [&mut a, &mut b, &mut v] {
        assert_eq!(t.wait_exit().code(), Some(0));
    }
    let log = hub.fetch(id);
    assert!(
        !String::from_utf8_lossy(&log).contains("4004"),
        "the viewer's keys were sent"
    );
    assert_eq!(between_hint_and_end(&a.screen()), log);
    assert_eq!(between_hint_and_end(&b.screen()), log);
}

#[test]
fn escape_t_terminates_the_job_and_everything_it_started() {
    let hub = Hub::start_with(&["--cancel-grace", "1"]);
    let _s = hub.slave("s1", 1);
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let mut t = Term::xn(&hub, &["-s", BASH, "-a"], 24, 80);
    t.wait_for("xn$ ");
    // Job control puts this in a process group of its own; it must still go.
    t.send(
        format!(
            "sleep 1000 & echo $! > {}.tmp; mv {0}.tmp {0}\r",
            pidfile.display()
        )
        .as_bytes(),
    );
    wait_until("the background pid", || pidfile.exists());
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(pid));
    t.send(CTRL_BRACKET);
    t.send(b"t");
    t.wait_exit();
    t.wait_for("[terminating job");
    let id = last_id(&hub);
    assert_eq!(hub.wait_ended(id).state, JobState::Cancelled);
    wait_until("the background process to be gone", || !alive(pid));
    assert!(t.is_cooked());
}

#[test]
fn line_mode_sends_lines_and_term_terminates() {
    let hub = Hub::start_with(&["--cancel-grace", "1"]);
    let _s = hub.slave("s1", 1);
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let line = format!("sleep 1000 & echo $! > {}; cat", pidfile.display());
    let id = hub.submit(&line, &["--no-tty"]);
    hub.wait_state(id, JobState::Running);
    let mut child = hub
        .xn_command(&["-a", &id.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    stdin.write_all(b"hello line mode\n").unwrap();
    let mut got = String::new();
    out.read_line(&mut got).unwrap();
    assert_eq!(got, "hello line mode\n");
    wait_until("the pid file", || pidfile.exists());
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    stdin.write_all(b"/term\n").unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + 15), "cat was killed by SIGTERM");
    assert_eq!(hub.wait_ended(id).state, JobState::Cancelled);
    wait_until("the background process to be gone", || !alive(pid));
}

#[test]
fn line_mode_end_of_input_closes_the_jobs_stdin() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    for tty in [false, true] {
        let extra: &[&str] = if tty { &[] } else { &["--no-tty"] };
        let id = hub.submit("wc -l", extra);
        let mut child = hub
            .xn_command(&["-a", &id.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"a\nb\nc\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "tty={tty}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.trim_end().ends_with('3'), "tty={tty}: {text:?}");
    }
}

#[test]
fn terminal_is_restored_when_xn_is_killed_by_sigterm_or_sigint() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 2);
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let mut t = Term::xn(&hub, &["-s", BASH, "-a"], 24, 80);
        t.wait_for("xn$ ");
        assert!(!t.is_cooked(), "raw while attached");
        signal(t.pid(), sig);
        assert_eq!(t.wait_exit().code(), Some(128 + sig), "signal {sig}");
        assert!(t.is_cooked(), "terminal restored after signal {sig}");
        // The job keeps running.
        assert_eq!(hub.job(last_id(&hub)).state, JobState::Running);
    }
}

#[test]
fn input_read_before_a_detach_is_sent_first() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 2);
    // Lines piped in with /detach right behind them, as fast as xn can read them.
    let id = hub.submit("cat", &["--no-tty"]);
    hub.wait_state(id, JobState::Running);
    let mut child = hub
        .xn_command(&["-a", &id.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"l1\nl2\n/detach\n").unwrap();
    drop(stdin);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    wait_until("both lines to come back", || hub.fetch(id) == b"l1\nl2\n");

    // Keys and the escape in one read from a terminal (a paste).
    let (id, sid) = running_bash(&hub);
    let mut t = Term::xn(&hub, &["-a", &sid], 24, 80);
    t.wait_for("attached to job");
    t.send(b"echo typed-then-detached\r\x1dd");
    assert_eq!(t.wait_exit().code(), Some(0));
    // Echoed as typed, then printed by the command.
    wait_until("the command to run", || {
        let out = String::from_utf8_lossy(&hub.fetch(id)).into_owned();
        out.matches("typed-then-detached").count() == 2
    });
}

#[test]
fn a_terminal_attached_to_a_job_with_pipes_types_lines() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let id = hub.submit(
        r#"read x; echo "got [$x]"; cat; echo input-ended"#,
        &["--no-tty"],
    );
    hub.wait_state(id, JobState::Running);
    let mut t = Term::xn(&hub, &["-a", &id.to_string()], 24, 80);
    t.wait_for("Ctrl-D ends its input");
    // The terminal stays cooked: it echoes and edits, and Enter ends a line.
    assert!(t.is_cooked());
    t.send(b"helo\x7flo\r");
    t.wait_for("got [hello]");
    t.send(b"more\r");
    t.wait_for_n("more", 2);
    // Ctrl-D at the start of a line: the job's stdin ends.
    t.send(b"\x04");
    t.wait_for("input-ended");
    assert_eq!(t.wait_exit().code(), Some(0));
    assert_eq!(hub.fetch(id), b"got [hello]\nmore\ninput-ended\n");
}

#[test]
fn attach_replays_every_byte_value_identically() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bytes");
    let data: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    std::fs::write(&file, &data).unwrap();
    let id = hub.submit(&format!("cat {}", file.display()), &["--no-tty"]);
    hub.wait_ended(id);
    let out = hub
        .xn_command(&["-a", &id.to_string()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout == data, "replayed bytes differ");
    // --tail replays only the end.
    let out = hub
        .xn_command(&["-a", &id.to_string(), "--tail", "1000"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.stdout == data[data.len() - 1000..]);
}

#[test]
fn tail_starts_at_a_character_boundary() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("text");
    // Characters of 1, 2, 3 and 4 bytes, so that the cuts below fall everywhere in them.
    let text = "a\u{e9}\u{20ac}\u{1f600}".repeat(500) + "\n";
    std::fs::write(&file, &text).unwrap();
    let f = file.display();
    let id = hub.submit(&format!("cat {f}; cat {f} >&2"), &["--no-tty"]);
    hub.wait_ended(id);
    for tail in 1000..1010 {
        let out = hub
            .xn_command(&[
                "-a",
                &id.to_string(),
                "--read-only",
                "--tail",
                &tail.to_string(),
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        for (name, replay) in [("stdout", &out.stdout[..]), ("stderr", &out.stderr[..])] {
            let replay = String::from_utf8(replay.to_vec())
                .unwrap_or_else(|e| panic!("--tail {tail}: {name} starts mid-character: {e}"));
            // Stderr has xn's notes around the job's bytes.
            let replay = match name {
                "stderr" => {
                    replay
                        .split_once("]\n")
                        .unwrap()
                        .1
                        .rsplit_once("[job ")
                        .unwrap()
                        .0
                }
                _ => &replay,
            };
            assert!(text.ends_with(replay), "--tail {tail}: {name} {replay:?}");
            assert!(
                (tail - 3..=tail).contains(&replay.len()),
                "--tail {tail}: {name}"
            );
        }
    }
}

#[test]
fn attaching_to_a_queued_job_waits_for_it() {
    let hub = Hub::start();
    let id = hub.submit("echo started-now", &[]);
    let mut t = Term::xn(&hub, &["-a", &id.to_string()], 24, 80);
    // With the reason, as --wait gives it.
    t.wait_for(&format!(
        "[job {id} is queued: no slave is connected; waiting for it to start]"
    ));
    let _s = hub.slave("s1", 1);
    t.wait_for("started-now");
    assert_eq!(t.wait_exit().code(), Some(0));
}

#[test]
fn a_stopped_client_does_not_hold_up_the_job() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let id = hub.submit("sleep 0.5; seq 1 300000", &["--no-tty"]);
    let t = Term::xn(&hub, &["-a", &id.to_string()], 24, 80);
    t.wait_for("attached to job");
    signal(t.pid(), libc::SIGSTOP);
    let rec = hub.wait_ended(id);
    assert_eq!(rec.exit_code, Some(0));
    let expected: usize = (1..=300000).map(|i: usize| i.to_string().len() + 1).sum();
    assert_eq!(rec.stdout_len as usize, expected);
    signal(t.pid(), libc::SIGCONT);
}

#[test]
fn the_last_client_to_type_sets_the_size() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let (_, ids) = running_bash(&hub);
    let mut a = Term::xn(&hub, &["-a", &ids], 30, 100);
    let mut b = Term::xn(&hub, &["-a", &ids], 40, 120);
    a.wait_for("xn$ ");
    b.wait_for("xn$ ");
    // b types first: its size message goes before its input on its connection, so once its
    // answer is back, b's size is the one in force (seeing the prompt says nothing about that:
    // it was printed before b attached).
    b.send(b"stty size\r");
    b.wait_for("40 120\r\n");
    a.send(b"stty size\r");
    a.wait_for("30 100\r\n");
    b.send(b"stty size\r");
    b.wait_for_n("40 120\r\n", 2);
    a.send(b"stty size\r");
    a.wait_for_n("30 100\r\n", 2);
    a.send(b"exit\r");
    a.wait_exit();
    b.wait_exit();
}

/// The job's record follows the size its attached client set: a watcher's stream is told (the
/// web page draws the job at that size), and the record keeps it after the job ended and the
/// hub restarted, so that the output is read at the size it was drawn for, not at 24x80.
#[test]
fn the_record_keeps_the_size_the_job_was_drawn_for() {
    use execnode::conn::{self, Incoming};
    use execnode::http::HubUrl;
    use execnode::wire::StreamMsg;
    let mut hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let (id, ids) = running_bash(&hub);
    let size = |hub: &Hub| {
        let rec = hub.job(id);
        (rec.spec.rows, rec.spec.cols)
    };
    assert_eq!(size(&hub), (24, 80));
    let url = HubUrl::parse(&hub.url)
        .unwrap()
        .with_token(Some(hub.token.clone()));
    let rt = crate::redial::runtime();
    let (mut watcher, _tx) = rt.block_on(async {
        let ws = url
            .websocket(&format!("/api/v1/jobs/{id}/stream"))
            .await
            .unwrap();
        conn::start(ws)
    });
    let mut next_size = || {
        rt.block_on(async {
            loop {
                let msg = tokio::time::timeout(TIMEOUT, watcher.recv::<StreamMsg>())
                    .await
                    .expect("a message within the timeout")
                    .unwrap();
                match msg {
                    Some(Incoming::Msg(StreamMsg::Job { job })) => {
                        break (job.spec.rows, job.spec.cols)
                    }
                    Some(_) => {}
                    None => panic!("the stream ended"),
                }
            }
        })
    };
    assert_eq!(next_size(), (24, 80), "the record the stream starts with");

    let mut t = Term::xn(&hub, &["-a", &ids], 30, 100);
    t.wait_for("xn$ ");
    t.send(b"stty size\r");
    t.wait_for("30 100\r\n");
    assert_eq!(next_size(), (30, 100), "the watcher is told");
    assert_eq!(size(&hub), (30, 100));
    t.resize(40, 120);
    assert_eq!(next_size(), (40, 120));
    t.send(b"exit\r");
    assert_eq!(t.wait_exit().code(), Some(0));
    hub.wait_ended(id);
    assert_eq!(size(&hub), (40, 120));

    hub.kill();
    hub.restart(&[]);
    assert_eq!(size(&hub), (40, 120), "stored");
}
