//! Submitting, listing, fetching and waiting for jobs, end to end.

use crate::util::*;
use execnode::wire::JobState;

#[test]
fn submit_prints_only_the_id_and_fetch_returns_the_output() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 2);
    let out = hub.xn_ok(&["-s", "echo hello | tr a-z A-Z"]);
    let id: u64 = out.trim().parse().expect("only an id on stdout");
    assert_eq!(out, format!("{id}\n"));
    let rec = hub.wait_ended(id);
    assert_eq!(rec.state, JobState::Exited);
    assert_eq!(rec.exit_code, Some(0));
    assert_eq!(rec.slave.as_deref(), Some("s1"));
    // A pty turns \n into \r\n.
    assert_eq!(hub.fetch(id), b"HELLO\r\n");
    // Fetching never deletes anything.
    assert_eq!(hub.fetch(id), b"HELLO\r\n");
}

#[test]
fn a_tty_job_leads_its_session_with_the_pty_as_its_terminal() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    // Its session id and process group are its pid; /dev/tty (its controlling terminal) opens;
    // signals start at their defaults.
    let out = hub.xn(&[
        "-s",
        "ps -o sid= -o pgid= -p $$ | tr -s ' ' | sed 's/^ //'; echo $$; echo > /dev/tty && echo ctty; trap",
        "--wait",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    let pid = lines[1];
    assert_eq!(lines[0], format!("{pid} {pid}"), "{text}");
    assert_eq!(lines[2], "ctty", "{text}");
    assert_eq!(lines.len(), 3, "no trapped or ignored signals: {text}");
    // A job without a tty leads its own session too, and has no terminal.
    let out = hub.xn(&[
        "-s",
        "ps -o sid= -p $$ | tr -d ' '; echo $$; echo > /dev/tty || echo none",
        "--no-tty",
        "--wait",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], lines[1], "{text}");
    assert_eq!(lines[2], "none", "{text}");
}

/// A line that begins with `-` is a command, not options for the shell (the slave runs
/// `sh -c -- LINE`): in a terminal and in pipes, spawned plainly and confined.
#[test]
fn a_line_that_starts_with_a_dash_is_a_command() {
    let hub = Hub::start();
    let _plain = Slave::start(&hub, "plain", 1, &["--label", "kind=plain"]);
    let limits = ["--label", "kind=confined", "--max-open-files", "256"];
    let _confined = Slave::start(&hub, "confined", 1, &limits);
    for on in ["kind=plain", "kind=confined"] {
        for tty in [None, Some("--no-tty")] {
            let mut args = vec!["-s=-v 2>/dev/null; echo hello", "--on", on, "--wait"];
            args.extend(tty);
            let out = hub.xn(&args);
            let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(text, "hello\n", "{on} {tty:?}: {err}");
            assert!(out.status.success(), "{on} {tty:?}: {err}");
        }
    }
}

#[test]
fn wait_streams_output_and_returns_the_exit_code() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 2);
    let out = hub.xn(&["-s", "echo out; echo err >&2; exit 3", "--no-tty", "--wait"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");

    let out = hub.xn(&["-s", "kill -9 $$", "--wait"]);
    assert_eq!(out.status.code(), Some(128 + 9));
    let jobs = hub.jobs();
    let killed = jobs.last().unwrap();
    assert_eq!(killed.state, JobState::Signaled);
    assert_eq!(killed.signal, Some(9));

    let out = hub.xn(&["-s", "true", "--wait"]);
    assert_eq!(out.status.code(), Some(0));

    // The line may also follow the flags, as in ssh.
    let out = hub.xn(&["-s", "--no-tty", "--wait", "echo late; exit 4"]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(out.stdout, b"late\n");
    // Unquoted words are refused, not joined or taken for other actions, and nothing runs.
    let before = hub.jobs().len();
    let out = hub.xn(&["-s", "--wait", "echo", "two words"]);
    assert_eq!(out.status.code(), Some(255));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("quote it (xn -s \"echo two words\")"), "{err}");
    assert_eq!(hub.jobs().len(), before);
}

#[test]
fn every_byte_value_comes_back_identical() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bytes");
    let mut all: Vec<u8> = (0..=255u8).collect();
    all.extend(b"\xff\xfe\xc3(\x00invalid utf-8\x00");
    let data: Vec<u8> = all.iter().cycle().take(300_000).copied().collect();
    std::fs::write(&file, &data).unwrap();
    let line = format!("cat {}", file.display());
    let out = hub.xn(&["-s", &line, "--no-tty", "--wait"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout == data, "streamed output differs");
    let id = hub.jobs().last().unwrap().id;
    assert!(hub.fetch(id) == data, "fetched output differs");
    assert_eq!(hub.job(id).stdout_len, data.len() as u64);
}

#[test]
fn stdout_and_stderr_are_kept_apart() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let id = hub.submit(
        "for i in 1 2 3; do echo o$i; echo e$i >&2; done",
        &["--no-tty"],
    );
    hub.wait_ended(id);
    let out = hub.xn(&["-f", &id.to_string()]);
    assert_eq!(out.stdout, b"o1\no2\no3\n");
    assert_eq!(out.stderr, b"e1\ne2\ne3\n");
    let rec = hub.job(id);
    assert_eq!((rec.stdout_len, rec.stderr_len), (9, 9));
}

#[test]
fn jobs_run_first_in_first_out_with_one_slot() {
    let hub = Hub::start();
    // Queue first, then start the slave, so the order is the hub's choice alone.
    let ids: Vec<u64> = (0..4)
        .map(|i| hub.submit(&format!("echo {i}"), &[]))
        .collect();
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "ids increase by one: {ids:?}"
    );
    let _s = hub.slave("s1", 1);
    let recs: Vec<_> = ids.iter().map(|&id| hub.wait_ended(id)).collect();
    for w in recs.windows(2) {
        assert!(
            w[1].started_ms.unwrap() >= w[0].ended_ms.unwrap(),
            "job {} started before job {} ended",
            w[1].id,
            w[0].id
        );
    }
}

#[test]
fn follow_streams_until_the_job_ends() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let id = hub.submit(
        "for i in 1 2 3; do echo line$i; sleep 0.1; done; exit 7",
        &["--no-tty"],
    );
    let out = hub.xn(&["-f", &id.to_string(), "--follow"]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(out.stdout, b"line1\nline2\nline3\n");
}

#[test]
fn list_shows_a_table_and_json() {
    let hub = Hub::start();
    let id = hub.submit("echo queued", &[]);
    let table = hub.xn_ok(&["-l"]);
    let header = table.lines().next().unwrap();
    for col in ["ID", "STATE", "EXIT", "SLAVE", "AGE", "COMMAND"] {
        assert!(header.contains(col), "{header}");
    }
    let row = table.lines().nth(1).unwrap();
    assert!(
        row.contains("queued") && row.contains("echo queued"),
        "{row}"
    );
    let json: serde_json::Value = serde_json::from_str(&hub.xn_ok(&["-l", "--json"])).unwrap();
    let j = &json[0];
    assert_eq!(j["id"], id);
    assert_eq!(j["command"], "echo queued");
    assert_eq!(j["state"], "queued");
    assert!(j["exit_code"].is_null());
}

#[test]
fn personalities_by_argv0_and_subcommand() {
    let hub = Hub::start();
    let by_sub = std::process::Command::new(exe())
        .args([
            "xn", "--hub", &hub.url, "--token", &hub.token, "-l", "--json",
        ])
        .output()
        .unwrap();
    assert!(by_sub.status.success());
    assert_eq!(String::from_utf8_lossy(&by_sub.stdout).trim(), "[]");
    for name in ["xn", "xnhub", "xnslave"] {
        let help = std::process::Command::new(bin_dir().join(name))
            .arg("--help")
            .output()
            .unwrap();
        assert!(help.status.success());
        let text = String::from_utf8_lossy(&help.stdout);
        assert!(text.contains(&format!("Usage: {name}")), "{name}: {text}");
    }
}

/// `execnode ROLE --help` describes the role as its link's `--help` does (the hub's token
/// files included), not only with the line `execnode --help` lists the role by.
#[test]
fn each_role_describes_itself_under_either_name() {
    let help = |cmd: &mut std::process::Command| {
        let out = cmd.arg("--help").output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let roles = [
        ("hub", "xnhub", "The execnode hub: accepts jobs"),
        ("slave", "xnslave", "An execnode slave: dials the hub"),
        ("xn", "xn", "Submit jobs to an execnode hub"),
    ];
    for (role, link, first) in roles {
        let by_link = help(&mut std::process::Command::new(bin_dir().join(link)));
        let by_sub = help(std::process::Command::new(exe()).arg(role));
        for text in [&by_link, &by_sub] {
            assert!(text.starts_with(first), "{role}: {text}");
        }
        if role == "hub" {
            assert!(by_sub.contains("DATA/admin.token"), "{by_sub}");
        }
        // The same text, but for the name in the usage line: `-V, --version` included.
        assert_eq!(
            by_sub.replace(
                &format!("Usage: execnode {role}"),
                &format!("Usage: {link}")
            ),
            by_link,
            "{role}"
        );
        assert!(by_sub.contains("-V, --version"), "{role}: {by_sub}");
    }
}

/// `execnode ROLE --version` says what the link's `--version` says (it was refused, exit 2),
/// and so do the hub's subcommands, under either name.
#[test]
fn each_role_says_its_version_under_either_name() {
    let version = |cmd: &mut std::process::Command| {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let v = env!("CARGO_PKG_VERSION");
    for (role, link) in [("hub", "xnhub"), ("slave", "xnslave"), ("xn", "xn")] {
        let by_link = version(std::process::Command::new(bin_dir().join(link)).arg("--version"));
        let by_sub = version(std::process::Command::new(exe()).args([role, "--version"]));
        assert_eq!(by_link, format!("{link} {v}\n"));
        assert_eq!(by_sub, by_link, "{role}");
    }
    let by_link =
        version(std::process::Command::new(bin_dir().join("xnhub")).args(["token", "--version"]));
    let by_sub = version(std::process::Command::new(exe()).args(["hub", "token", "--version"]));
    assert_eq!(
        (by_link.as_str(), by_sub.as_str()),
        (
            &*format!("xnhub-token {v}\n"),
            &*format!("xnhub-token {v}\n")
        )
    );
}

/// The hub writes the list's JSON itself (faster than serde): it must be byte for byte what
/// serde writes for the same records, whatever fields a job has set.
#[test]
fn the_list_is_exactly_the_records_serde_json() {
    let hub = Hub::start();
    let mut slave = hub.slave("s1", 4);
    let retried = hub.submit(
        "echo 'tab\there'; exit 3",
        &["--retries", "1", "--retries-on-failure"],
    );
    let spec = r#"{"argv":["printf","%s\n","a \"q\" \\ é 😀"],"env":{"K":"v\u0001"},"cwd":"/",
        "tty":false,"rows":5,"cols":7,"stdin":"in\n","labels":["none=\"x\""],"timeout":2.5,
        "retries":2,"name":"n\"1","slots":3}"#;
    let (status, body) = hub.post("/api/v1/jobs", spec);
    assert!(status < 300, "{status} {body}");
    hub.wait_ended(retried);
    slave.kill();
    let (status, raw) = hub.get("/api/v1/jobs");
    assert_eq!(status, 200, "{raw}");
    let jobs: Vec<execnode::wire::JobRecord> = serde_json::from_str(&raw).unwrap();
    assert_eq!(jobs.len(), 2);
    assert!(jobs
        .iter()
        .any(|j| j.attempt == 2 && !j.attempts.is_empty()));
    assert!(jobs.iter().any(|j| j.spec.slots == 3 && j.reason.is_some()));
    assert_eq!(raw, serde_json::to_string(&jobs).unwrap());
}

#[test]
fn the_job_table_shows_control_characters_instead_of_sending_them() {
    let hub = Hub::start();
    // The hub refuses names and labels with control characters, but a command may have any.
    hub.submit("echo \x1b[31mRED\x07\u{9b}2J", &[]);
    let out = hub.xn_ok(&["-l"]);
    assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{out:?}");
    assert!(out.contains(r"echo \e[31mRED\x07\x9b2J"), "{out}");
    // --json gives the text as it is.
    let json = hub.xn_ok(&["-l", "--json"]);
    assert!(json.contains(r"echo \u001b[31mRED\u0007"), "{json}");
}
