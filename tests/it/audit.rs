//! The audit log: a row for each token made or revoked (over REST, with `xnhub token`, at the
//! first start), job cancelled (over REST, from an attached client) or deleted, `--retain`
//! sweep, and for requests refused for their token, counted so that a flood stays a few rows;
//! the table's bound; who may read it (`GET /api/v1/audit`) and `xnhub audit`.

use crate::util::*;
use execnode::wire::{AuditAction, AuditEntry, JobState};
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

/// The audit log as an admin reads it over REST, newest first.
fn audit(hub: &Hub) -> Vec<AuditEntry> {
    let (status, body) = hub.get("/api/v1/audit?limit=100000");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// `xnhub audit ARGS --data DATA` (works with the hub running or stopped).
fn audit_command(data: &std::path::Path, args: &[&str]) -> Output {
    Command::new(bin_dir().join("xnhub"))
        .arg("audit")
        .args(args)
        .arg("--data")
        .arg(data)
        .output()
        .unwrap()
}

/// `xnhub audit --json` on `data`, which must succeed.
fn audit_json(data: &std::path::Path) -> Vec<AuditEntry> {
    let out = audit_command(data, &["--json", "--limit", "100000"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The newest row of `action` on `target`.
fn find<'a>(rows: &'a [AuditEntry], action: AuditAction, target: &str) -> &'a AuditEntry {
    rows.iter()
        .find(|r| r.action == action && r.target == target)
        .unwrap_or_else(|| panic!("no {action:?} row for {target}: {rows:#?}"))
}

#[test]
fn each_token_and_job_action_leaves_a_row_naming_who_did_it() {
    let hub = Hub::start_with(&["--cancel-grace", "1"]);
    let _s = hub.slave("s1", 1);
    // The first start made the admin and slave tokens.
    let rows = audit(&hub);
    for name in ["admin", "slave"] {
        let r = find(&rows, AuditAction::TokenCreated, name);
        assert_eq!((r.actor.as_str(), r.peer.as_deref()), ("(hub)", None));
    }
    // On the hub's machine, and over REST.
    let alice = hub.new_token("alice", "user");
    let (status, body) = hub.post(
        "/api/v1/tokens",
        r#"{"name":"bob","role":"viewer","expires_in":"90m"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let rows = audit(&hub);
    let r = find(&rows, AuditAction::TokenCreated, "alice");
    assert_eq!((r.actor.as_str(), r.peer.as_deref()), ("hub machine", None));
    assert_eq!(r.detail, "role user, never expires");
    let r = find(&rows, AuditAction::TokenCreated, "bob");
    assert_eq!(r.actor, "admin");
    assert_eq!(r.detail, "role viewer, expires in 90m");
    assert!(
        r.peer.as_deref().unwrap().starts_with("127.0.0.1:"),
        "{r:?}"
    );

    // alice cancels her queued job; the admin deletes it.
    let queued = xn_as(&hub.url, &alice, &["-s", "true", "--on", "gpu"]);
    let queued = String::from_utf8(queued.stdout).unwrap().trim().to_string();
    assert!(xn_as(&hub.url, &alice, &["-k", &queued]).status.success());
    hub.wait_state(queued.parse().unwrap(), JobState::Cancelled);
    hub.xn_ok(&["--rm", &queued]);
    let rows = audit(&hub);
    let target = format!("job {queued}");
    let r = find(&rows, AuditAction::JobCancelled, &target);
    assert_eq!(
        (r.actor.as_str(), r.detail.as_str()),
        ("alice", "owner alice, was queued")
    );
    assert!(r.peer.is_some());
    let r = find(&rows, AuditAction::JobDeleted, &target);
    assert_eq!(r.actor, "admin");
    assert!(r.detail.starts_with("owner alice, "), "{r:?}");

    // alice terminates her running job from `xn -a`.
    let out = xn_as(&hub.url, &alice, &["-s", "cat", "--no-tty"]);
    let running: u64 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    hub.wait_state(running, JobState::Running);
    let mut attach = xn_command(&hub.url, &alice, &["-a", &running.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    attach.stdin.take().unwrap().write_all(b"/term\n").unwrap();
    attach.wait().unwrap();
    assert_eq!(hub.wait_ended(running).state, JobState::Cancelled);
    let rows = audit(&hub);
    let r = find(&rows, AuditAction::JobCancelled, &format!("job {running}"));
    assert_eq!(r.actor, "alice");
    assert_eq!(r.detail, "owner alice, was running on s1");

    // Revoked over REST and on the hub's machine.
    let (status, body) = request(&hub.addr, "DELETE", "/api/v1/tokens/bob", &hub.token, "");
    assert_eq!(status, 200, "{body}");
    hub.token_command(&["revoke", "alice"]);
    let rows = audit(&hub);
    assert_eq!(find(&rows, AuditAction::TokenRevoked, "bob").actor, "admin");
    assert_eq!(
        find(&rows, AuditAction::TokenRevoked, "alice").actor,
        "hub machine"
    );
    // Newest first, and nothing else happened: 2 + 2 tokens made, 2 cancels, a delete, 2
    // revocations (the slave's and xn's requests were all let in).
    assert!(rows.windows(2).all(|w| w[0].id > w[1].id), "{rows:#?}");
    assert_eq!(rows.len(), 9, "{rows:#?}");

    // `xnhub audit` reads the same rows beside the running hub, as a table or as JSON.
    assert_eq!(audit_json(&hub.data), rows);
    let out = audit_command(&hub.data, &["--limit", "3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(
        lines[0].starts_with("TIME ") && lines[0].ends_with(" DETAIL"),
        "{table}"
    );
    assert!(
        lines[1].contains(" \"hub machine\" ") && lines[1].contains(" token_revoked  alice "),
        "{table}"
    );
    assert!(
        lines[2].contains(" admin ") && lines[2].contains(" bob "),
        "{table}"
    );
    assert!(lines[3].contains(" job_cancelled "), "{table}");
}

#[test]
fn only_admins_read_the_audit_log() {
    let hub = Hub::start();
    for (name, role) in [("u", "user"), ("v", "viewer"), ("sl", "slave")] {
        let token = hub.new_token(name, role);
        let (status, body) = request(&hub.addr, "GET", "/api/v1/audit", &token, "");
        assert_eq!(status, 403, "{body}");
        let want = format!("token {name} (role {role}) may not read the audit log");
        assert!(body.contains(&want), "{body}");
    }
    let (status, _) = request(&hub.addr, "GET", "/api/v1/audit", "", "");
    assert_eq!(status, 401);
    let (status, body) = hub.get("/api/v1/audit?limit=2");
    assert_eq!(status, 200, "{body}");
    let rows: Vec<AuditEntry> = serde_json::from_str(&body).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].target, "sl");
    let (status, body) = hub.get("/api/v1/audit?lmit=2");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("limit=N and before=ID"), "{body}");
}

#[test]
fn a_flood_of_bad_tokens_is_a_few_rows_that_count_every_refusal() {
    let mut hub = Hub::start();
    let expiring = hub.token_command(&[
        "create",
        "--name",
        "temp",
        "--role",
        "user",
        "--expires",
        "1s",
    ]);
    let flood = 300;
    let started = Instant::now();
    for _ in 0..flood {
        let (status, _) = request(&hub.addr, "GET", "/api/v1/jobs", "xn_wrong", "");
        assert_eq!(status, 401);
    }
    let elapsed = started.elapsed();
    // The first refusal is a row at once.
    let rows = audit(&hub);
    let first = rows
        .iter()
        .find(|r| r.action == AuditAction::Refused)
        .unwrap_or_else(|| panic!("no refusal row: {rows:#?}"));
    assert_eq!((first.actor.as_str(), first.count), ("(unknown)", 1));
    assert_eq!(first.peer.as_deref(), Some("127.0.0.1"));
    assert_eq!(first.target, "GET /api/v1/jobs");
    // An expired token is named.
    let mut refused = None;
    wait_until("the token to expire", || {
        let out = xn_as(&hub.url, &expiring, &["-l"]);
        refused = Some(String::from_utf8_lossy(&out.stderr).to_string());
        !out.status.success()
    });
    assert!(refused.unwrap().contains("token temp expired"));
    // No token at all is no attempt to use one: not recorded.
    request(&hub.addr, "GET", "/api/v1/jobs", "", "");

    // The hub writes what it counted when it stops.
    hub.stop();
    let rows = audit_json(&hub.data);
    let of = |actor: &str| -> Vec<&AuditEntry> {
        rows.iter()
            .filter(|r| r.action == AuditAction::Refused && r.actor == actor)
            .collect()
    };
    let wrong = of("(unknown)");
    assert_eq!(wrong.iter().map(|r| r.count).sum::<u64>(), flood);
    // A first row and a count per minute the flood lasted, however fast it came.
    let minutes = elapsed.as_secs() / 60 + 1;
    assert!(wrong.len() as u64 <= 2 * minutes, "{wrong:#?}");
    let temp = of("temp");
    assert!(!temp.is_empty(), "{rows:#?}");
    assert!(
        temp.iter().all(|r| r.detail.contains("temp expired")),
        "{temp:#?}"
    );
    assert_eq!(
        rows.iter()
            .filter(|r| r.action == AuditAction::Refused)
            .count(),
        wrong.len() + temp.len()
    );
}

#[test]
fn the_table_keeps_its_newest_rows_whoever_writes_them() {
    let hub = Hub::start_with(&["--audit-rows", "5"]);
    // `xnhub token` holds the table to the running hub's bound...
    for n in 0..6 {
        hub.new_token(&format!("t{n}"), "user");
    }
    let rows = audit_json(&hub.data);
    let targets: Vec<&str> = rows.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(targets, ["t5", "t4", "t3", "t2", "t1"]);
    // ...and so does the hub.
    let ids: Vec<String> = (0..3)
        .map(|_| hub.submit("true", &["--on", "nowhere"]).to_string())
        .collect();
    for id in &ids {
        hub.xn_ok(&["-k", id]);
    }
    let rows = audit(&hub);
    let targets: Vec<&str> = rows.iter().map(|r| r.target.as_str()).collect();
    let jobs: Vec<String> = ids.iter().rev().map(|id| format!("job {id}")).collect();
    assert_eq!(targets, [&jobs[0], &jobs[1], &jobs[2], "t5", "t4"]);
}

#[test]
fn retention_sweeps_are_rows_with_the_count() {
    let hub = Hub::start_with(&["--retain", "1s"]);
    let _s = hub.slave("s1", 2);
    let ids: Vec<u64> = (0..3).map(|_| hub.submit("true", &["--no-tty"])).collect();
    wait_until("the jobs to expire", || {
        let listed = hub.jobs();
        ids.iter().all(|id| !listed.iter().any(|j| j.id == *id))
    });
    let mut swept = Vec::new();
    // Recorded once each sweep's deletion is done, maybe after the test saw the jobs go.
    wait_until("the sweeps to count 3 jobs", || {
        swept = audit(&hub)
            .into_iter()
            .filter(|r| r.action == AuditAction::JobsExpired)
            .collect();
        swept.iter().map(|r| r.count).sum::<u64>() == 3
    });
    for r in &swept {
        assert_eq!(r.actor, "(hub)");
        assert!(r.detail.contains("(--retain 1s)"), "{r:?}");
    }
}

#[test]
fn xnhub_audit_explains_itself_and_says_when_there_is_nothing() {
    let out = Command::new(bin_dir().join("xnhub"))
        .args(["audit", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(
        help.contains("newest first") && help.contains("--audit-rows"),
        "{help}"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = audit_command(dir.path(), &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no hub data in") && err.contains("--data"),
        "{err}"
    );
    let out = Command::new(bin_dir().join("xnhub"))
        .args(["--listen", "127.0.0.1:0", "audit", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`audit` takes only --data"), "{err}");
}
