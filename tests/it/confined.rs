//! A confined job's child (`spawn::spawn_confined`: clone on a stack of its own, steps, exec)
//! starts as an unconfined one (glibc's posix_spawn) does: the same environment, default
//! signal handling, its session and controlling terminal, PATH searched as execvp does, and
//! the same reason when it cannot start. Each test runs the same job on a plain slave and on
//! one with a limit (`--max-open-files`, the lightest confinement), and compares.

use crate::util::*;
use execnode::wire::{JobRecord, JobState};
use std::os::unix::fs::PermissionsExt;

/// The plain slave and the confined one, by name.
const SLAVES: [&str; 2] = ["plain", "confined"];

fn start_slaves(hub: &Hub) -> (Slave, Slave) {
    (
        Slave::start(hub, "plain", 1, &[]),
        Slave::start(hub, "confined", 1, &["--max-open-files", "4096"]),
    )
}

/// Runs `argv` (no shell) on `slave` with the extra `xn -s` flags, waits for its end and
/// returns its record and output.
fn run_on(hub: &Hub, slave: &str, extra: &[&str], argv: &[&str]) -> (JobRecord, String) {
    let mut args = vec!["-s", "--slave", slave];
    args.extend_from_slice(extra);
    args.push("--argv");
    args.extend_from_slice(argv);
    let out = hub.xn_ok(&args);
    let id: u64 = out.trim().parse().unwrap();
    let rec = hub.wait_ended(id);
    let out = String::from_utf8_lossy(&hub.fetch(id)).into_owned();
    (rec, out)
}

fn assert_exited_0(rec: &JobRecord, out: &str) {
    assert_eq!(
        (rec.state, rec.exit_code),
        (JobState::Exited, Some(0)),
        "job {} on {:?}: {rec:?}\noutput:\n{out}",
        rec.id,
        rec.slave
    );
}

/// A slave that inherited ignored signals (nohup, an init script) must not pass them on, and
/// the signals it blocks around the clone must not stay blocked in the job.
#[test]
fn a_confined_job_starts_with_default_signal_handling_and_an_empty_mask() {
    let hub = Hub::start();
    let ignored = "HUP INT QUIT USR1 USR2 PIPE TERM";
    let _plain = Slave::start_ignoring(&hub, ignored, "plain", &[]);
    let _confined = Slave::start_ignoring(&hub, ignored, "confined", &["--max-open-files", "64"]);
    let status = ["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"];
    for slave in SLAVES {
        for tty in [&["--no-tty"][..], &[]] {
            let (rec, out) = run_on(&hub, slave, tty, &status);
            assert_exited_0(&rec, &out);
            let words: Vec<&str> = out.split_whitespace().collect();
            let [_, blocked, _, ignored] = words[..] else {
                panic!("{slave} {tty:?}: {out}");
            };
            let ignored = u64::from_str_radix(ignored, 16).unwrap();
            assert_eq!(blocked, "0000000000000000", "{slave} {tty:?}: {out}");
            // glibc's posix_spawn leaves its two internal signals (32 and 33) ignored in the
            // plain slave's jobs; the confined child resets every signal.
            let leeway = if slave == "plain" { 0x1_8000_0000 } else { 0 };
            assert_eq!(ignored & !leeway, 0, "{slave} {tty:?}: {out}");
        }
    }
}

/// The slave's environment with the job's changes (XN_TOKEN gone, its own variables, TERM in
/// a terminal), exactly as an unconfined job gets it.
#[test]
fn a_confined_job_gets_the_environment_an_unconfined_one_gets() {
    let hub = Hub::start();
    let _slaves = start_slaves(&hub);
    for tty in [&["--no-tty"][..], &[]] {
        let envs: Vec<Vec<String>> = SLAVES
            .iter()
            .map(|slave| {
                let mut extra = tty.to_vec();
                extra.extend(["--env", "XN_TEST_VAR=a b=c", "--env", "LANG=C.UTF-8"]);
                let (rec, out) = run_on(&hub, slave, &extra, &["env"]);
                assert_exited_0(&rec, &out);
                let mut lines: Vec<String> = out.lines().map(|l| l.trim_end().into()).collect();
                lines.sort();
                lines
            })
            .collect();
        assert_eq!(envs[0], envs[1], "{tty:?}");
        let env = &envs[1];
        assert!(env.contains(&"XN_TEST_VAR=a b=c".into()), "{env:?}");
        assert!(env.contains(&"LANG=C.UTF-8".into()), "{env:?}");
        assert!(!env.iter().any(|l| l.starts_with("XN_TOKEN=")), "{env:?}");
        assert_eq!(
            env.iter().any(|l| l.starts_with("TERM=")),
            tty.is_empty() || std::env::var_os("TERM").is_some(),
            "{env:?}"
        );
    }
}

/// A program that is missing or may not run, or a missing working directory: the job fails
/// with the same reason as on a plain slave, and nothing runs.
#[test]
fn a_confined_job_that_cannot_start_fails_with_the_reason_a_plain_one_gives() {
    let hub = Hub::start();
    let _slaves = start_slaves(&hub);
    let dir = tempfile::tempdir().unwrap();
    let not_executable = dir.path().join("not-executable");
    std::fs::write(&not_executable, "#!/bin/sh\necho ran\n").unwrap();
    std::fs::set_permissions(&not_executable, PermissionsExt::from_mode(0o644)).unwrap();
    let missing_dir = dir.path().join("missing");
    let marker = dir.path().join("ran");
    let touch = format!("touch {}", marker.display());
    let cases: [(&[&str], &[&str], &str); 4] = [
        (
            &[],
            &["no-such-program-xn"],
            "program \"no-such-program-xn\" not found",
        ),
        (
            &[],
            &["/no/such/dir/program"],
            "program \"/no/such/dir/program\" not found",
        ),
        (
            &[],
            &[not_executable.to_str().unwrap()],
            "Permission denied (os error 13): running",
        ),
        (
            &["--cwd", missing_dir.to_str().unwrap()],
            &["sh", "-c", &touch],
            "No such file or directory",
        ),
    ];
    // A directory of the test's, so that the reasons, which name it, do not differ by the job's
    // own work directory.
    let cwd = ["--cwd", dir.path().to_str().unwrap()];
    for (extra, argv, expected) in cases {
        let reasons: Vec<String> = SLAVES
            .iter()
            .map(|slave| {
                let mut flags = vec!["--no-tty"];
                flags.extend_from_slice(if extra.is_empty() { &cwd } else { extra });
                let (rec, out) = run_on(&hub, slave, &flags, argv);
                assert_eq!(
                    rec.state,
                    JobState::Failed,
                    "{slave} {argv:?}: {rec:?}\n{out}"
                );
                rec.reason.unwrap_or_default()
            })
            .collect();
        assert_eq!(reasons[0], reasons[1], "{argv:?}");
        assert!(reasons[1].contains(expected), "{argv:?}: {}", reasons[1]);
        assert!(!marker.exists(), "{argv:?} ran");
    }
    let reason = &run_on(
        &hub,
        "confined",
        &["--cwd", missing_dir.to_str().unwrap()],
        &["true"],
    )
    .0
    .reason;
    let dir_reason = format!("working directory {}: ", missing_dir.display());
    assert!(
        reason.as_deref().is_some_and(|r| r.contains(&dir_reason)),
        "{reason:?}"
    );
}

/// A confined job in a terminal leads a session of its own whose controlling terminal is the
/// pty: it can open /dev/tty, it is the terminal's foreground group, and a shell's job control
/// works (a background job in a process group of its own).
#[test]
fn a_confined_tty_job_has_its_terminal_as_controlling_terminal() {
    let hub = Hub::start();
    let _slaves = start_slaves(&hub);
    // Fields of /proc/PID/stat after the command name: state ppid pgrp session tty_nr tpgid.
    let script = r#"
        tty
        : > /dev/tty && echo reopened
        set -- $(cat /proc/$$/stat)
        echo "pid=$1 pgrp=$5 sid=$6 tty=$7 tpgid=$8"
        set -m
        sh -c 'set -- $(cat /proc/$$/stat); echo "bg pid=$1 pgrp=$5 tpgid=$8"' &
        wait
    "#;
    for slave in SLAVES {
        let (rec, out) = run_on(&hub, slave, &[], &["sh", "-c", script]);
        assert_exited_0(&rec, &out);
        let lines: Vec<&str> = out.lines().map(str::trim_end).collect();
        assert!(lines[0].starts_with("/dev/pts/"), "{slave}: {out}");
        assert_eq!(lines[1], "reopened", "{slave}: {out}");
        let field = |line: &str, name: &str| -> i64 {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(&format!("{name}=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{slave}: no {name} in {line:?}"))
        };
        let (pid, pgrp) = (field(lines[2], "pid"), field(lines[2], "pgrp"));
        assert_eq!(pgrp, pid, "{slave}: {out}");
        assert_eq!(field(lines[2], "sid"), pid, "{slave}: {out}");
        assert_ne!(field(lines[2], "tty"), 0, "{slave}: {out}");
        assert_eq!(field(lines[2], "tpgid"), pgrp, "{slave}: {out}");
        // Job control: the background job has a group of its own, not the foreground one.
        let bg = lines[3];
        assert_eq!(field(bg, "pgrp"), field(bg, "pid"), "{slave}: {out}");
        assert_ne!(field(bg, "pgrp"), pgrp, "{slave}: {out}");
        assert_eq!(field(bg, "tpgid"), pgrp, "{slave}: {out}");
    }
}

/// An argv job's program is looked for on the job's own PATH, as execvp does: a directory
/// whose file of that name may not run is passed over for the next.
#[test]
fn a_confined_argv_job_finds_its_program_on_its_own_path() {
    let hub = Hub::start();
    let _slaves = start_slaves(&hub);
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    for (d, mode) in [(&first, 0o644), (&second, 0o755)] {
        std::fs::create_dir(d).unwrap();
        let tool = d.join("xn-test-tool");
        std::fs::write(&tool, "#!/bin/sh\necho \"$0 $1\"\n").unwrap();
        std::fs::set_permissions(&tool, PermissionsExt::from_mode(mode)).unwrap();
    }
    let path = format!(
        "PATH={}:{}:/usr/bin:/bin",
        first.display(),
        second.display()
    );
    for slave in SLAVES {
        let (rec, out) = run_on(
            &hub,
            slave,
            &["--no-tty", "--env", &path],
            &["xn-test-tool", "arg"],
        );
        assert_exited_0(&rec, &out);
        assert_eq!(
            out.trim(),
            format!("{} arg", second.join("xn-test-tool").display()),
            "{slave}"
        );
    }
    // Found only where it may not run: execvp's EACCES, not "not found" (the plain slave's
    // posix_spawn path passes over files it may not run, and says not found).
    let path = format!("PATH={}:/usr/bin:/bin", first.display());
    let (rec, out) = run_on(
        &hub,
        "confined",
        &["--no-tty", "--env", &path],
        &["xn-test-tool"],
    );
    assert_eq!(rec.state, JobState::Failed, "{rec:?}\n{out}");
    let reason = rec.reason.unwrap_or_default();
    assert!(reason.contains("Permission denied"), "{reason}");
}
