//! Broadcast: one line on every matching connected slave, as a group whose outputs come back
//! under each slave's name, with an exit status that reports any failure.

use crate::util::*;

#[test]
fn broadcast_to_three_slaves_returns_three_outputs_and_the_right_status() {
    let hub = Hub::start();
    let _a = hub.slave("alpha", 1);
    let _b = hub.slave("beta", 2);
    let _c = Slave::start(&hub, "gamma", 1, &["--label", "special"]);

    let out = hub.xn(&[
        "-s",
        "echo hello from $XN_TEST",
        "--all",
        "--env",
        "XN_TEST=all",
        "--wait",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for name in ["alpha", "beta", "gamma"] {
        assert!(text.contains(&format!("==> {name} (job ")), "{text}");
    }
    assert_eq!(text.matches("hello from all\r\n").count(), 3, "{text}");
    assert!(
        text.matches("exited with code 0 <==").count() == 3,
        "{text}"
    );

    // Without --wait: the group id; `xn -f GROUP --prefix` once the jobs have ended.
    let group = hub.xn_ok(&["-s", "echo hi", "--all", "--no-tty"]);
    let group = group.trim();
    assert!(
        group.starts_with('g') && group[1..].parse::<u64>().is_ok(),
        "{group}"
    );
    let members: Vec<execnode::wire::JobRecord> =
        serde_json::from_str(&hub.xn_ok(&["-l", "--json", "--group", group])).unwrap();
    assert_eq!(members.len(), 3);
    for j in &members {
        hub.wait_ended(j.id);
    }
    let prefixed = hub.xn_ok(&["-f", group, "--prefix"]);
    assert_eq!(prefixed, "alpha: hi\nbeta: hi\ngamma: hi\n");

    // One slave fails: --wait says so with that job's code.
    let dir = tempfile::tempdir().unwrap();
    let line = format!(
        "mkdir {}/once 2>/dev/null && exit 4; exit 0",
        dir.path().display()
    );
    let out = hub.xn(&["-s", &line, "--all", "--wait"]);
    assert_eq!(out.status.code(), Some(4));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.matches("exited with code 4").count(), 1, "{text}");
    assert_eq!(text.matches("exited with code 0").count(), 2, "{text}");

    // --on narrows the broadcast; a label nobody has is refused.
    let out = hub.xn(&[
        "-s",
        "echo special",
        "--all",
        "--on",
        "special",
        "--wait",
        "--prefix",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"gamma: special\r\n");
    let out = hub.xn(&["-s", "true", "--all", "--on", "nothing"]);
    assert_eq!(out.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no connected slave has label nothing"));
}

#[test]
fn a_broadcast_pinned_to_one_slave_is_refused_in_the_flags_words() {
    let hub = Hub::start();
    let out = hub.xn(&["-s", "true", "--all", "--slave", "s1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(
        err.contains("--slave (on_slave in a job) does not go with it"),
        "{err}"
    );
}

/// A group submitted without `--wait` (or whose wait was interrupted) can be followed later, as
/// a job can: `xn -f GROUP --follow` waits for every job of it and exits with the first
/// non-zero code. (Once it was refused, and nothing could wait for a group already running.)
#[test]
fn a_running_group_can_be_followed_to_its_end() {
    let hub = Hub::start();
    let _a = hub.slave("alpha", 1);
    let _b = hub.slave("beta", 1);
    let dir = tempfile::tempdir().unwrap();
    let (go, d) = (dir.path().join("go"), dir.path().display());
    // Both jobs wait for the gate (or for its directory to go, should the test fail), so the
    // group is running when it is followed; one of them then exits 4.
    let line = format!(
        "while [ ! -e {} ] && [ -d {d} ]; do sleep 0.05; done; echo done; \
         mkdir {d}/once 2>/dev/null && exit 4; exit 0",
        go.display()
    );
    let group = hub.xn_ok(&["-s", &line, "--all", "--no-tty"]);
    let group = group.trim();
    let members: Vec<execnode::wire::JobRecord> =
        serde_json::from_str(&hub.xn_ok(&["-l", "--json", "--group", group])).unwrap();
    for j in &members {
        hub.wait_state(j.id, execnode::wire::JobState::Running);
    }
    let follower = Collected::spawn(&mut hub.xn_command(&["-f", group, "--follow", "--prefix"]));
    std::fs::write(&go, b"").unwrap();
    let (status, out, err) = follower.finish_within();
    assert_eq!(status.code(), Some(4), "the group's non-zero code: {err}");
    assert_eq!(String::from_utf8(out).unwrap(), "alpha: done\nbeta: done\n");
    // --attempt is still a job's.
    let out = hub.xn(&["-f", group, "--attempt", "1"]);
    assert_eq!(out.status.code(), Some(255));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--attempt takes a job id, not a group"),
        "{err}"
    );
}
