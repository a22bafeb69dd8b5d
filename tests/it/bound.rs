//! Slave tokens bound to a slave name: such a token serves only as its name, the name is
//! reserved to the tokens bound to it (so a job pinned to it reaches only their holder), the
//! shared unbound token still serves as any other name, a session already serving as a name
//! when it gets bound takes no new jobs, listings show the binding, revoking one bound token
//! ends only its slave, and a token table from before bindings opens and its tokens work.

use crate::util::*;
use execnode::wire::{JobState, NewToken, TokenInfo};
use std::path::Path;

/// Creates a slave token named `name` bound to the slave name `slave` with `xnhub token
/// create`; returns it.
fn bound_token(hub: &Hub, name: &str, slave: &str) -> String {
    let t = hub.token_command(&[
        "create",
        "--name",
        name,
        "--role",
        "slave",
        "--slave-name",
        slave,
    ]);
    assert!(t.starts_with("xn_") && t.len() == 3 + 64, "{t}");
    t
}

/// Runs a slave named `name` with `token`, which the hub must refuse: the slave's exit status
/// and stderr.
fn refused_slave(hub: &Hub, token: &str, name: &str) -> (std::process::ExitStatus, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, token).unwrap();
    let mut args = vec!["--name", name, "--token-file", file.to_str().unwrap()];
    if is_root() {
        args.push("--allow-root-jobs");
    }
    Slave::run_to_exit(&hub.url, &args, None).unwrap()
}

/// Waits for a line of the hub's log holding every one of `parts`.
fn wait_log_line(hub: &Hub, what: &str, parts: &[&str]) {
    wait_until(what, || {
        hub.log
            .lock()
            .unwrap()
            .iter()
            .any(|l| parts.iter().all(|p| l.contains(p)))
    });
}

#[test]
fn a_bound_token_serves_as_its_name_and_is_refused_under_another() {
    let hub = Hub::start();
    let t = bound_token(&hub, "box7-key", "box-7");
    let _s = Slave::start_with_token(&hub, &t, "box-7", 1, &[]);
    // The log says which token each slave uses (so which still use the shared one).
    wait_log_line(
        &hub,
        "the slave's token in the log",
        &["slave connected", "slave=box-7", "token=box7-key"],
    );
    let id = hub.submit("echo on seven", &["--slave", "box-7"]);
    let rec = hub.wait_ended(id);
    assert_eq!(rec.state, JobState::Exited);
    assert_eq!(rec.slave.as_deref(), Some("box-7"));

    // The same token under another name: refused with the reason, and the slave stops.
    let (status, err) = refused_slave(&hub, &t, "box-8");
    assert!(!status.success());
    assert!(
        err.contains("hub refused this slave")
            && err.contains(
                r#"token box7-key is bound to slave name "box-7": it may not serve as "box-8""#
            ),
        "{err}"
    );
    wait_log_line(
        &hub,
        "the hub's warning, with the peer",
        &[
            "WARN",
            "slave refused: token box7-key is bound",
            "peer=127.0.0.1:",
        ],
    );
    let (_, body) = hub.get("/api/v1/slaves");
    assert!(!body.contains("box-8"), "{body}");
}

#[test]
fn a_bound_name_is_refused_to_other_tokens_and_unbound_ones_serve_other_names() {
    let hub = Hub::start();
    // The shared token, unbound, serves as any name, as before.
    let _free = hub.slave("anything-goes", 1);
    let t = bound_token(&hub, "box7-key", "box-7");
    // ...but not as a name a token is bound to: whoever holds it could take box-7's jobs.
    let (status, err) = refused_slave(&hub, &hub.slave_token, "box-7");
    assert!(!status.success());
    assert!(
        err.contains(r#"slave name "box-7" is bound to another token"#),
        "{err}"
    );
    wait_log_line(
        &hub,
        "the hub's warning",
        &[
            "WARN",
            r#"slave name "box-7" is bound"#,
            "peer=127.0.0.1:",
            "token=slave",
        ],
    );
    // Nor may a token bound to another name, nor an admin's.
    let other = bound_token(&hub, "box9-key", "box-9");
    let (_, err) = refused_slave(&hub, &other, "box-7");
    assert!(err.contains("is bound to slave name \"box-9\""), "{err}");
    let (_, err) = refused_slave(&hub, &hub.token, "box-7");
    assert!(err.contains("is bound to another token"), "{err}");

    // A job pinned to box-7 waits for its bound slave, and runs there.
    let id = hub.submit("echo pinned", &["--slave", "box-7", "--no-tty"]);
    assert_eq!(hub.job(id).state, JobState::Queued);
    let _s = Slave::start_with_token(&hub, &t, "box-7", 1, &[]);
    let rec = hub.wait_ended(id);
    assert_eq!(
        (rec.state, rec.slave.as_deref()),
        (JobState::Exited, Some("box-7"))
    );
    assert_eq!(hub.fetch(id), b"pinned\n");
    // The unbound token still serves as a new name.
    let _another = hub.slave("yet-another", 1);
}

#[test]
fn listings_show_which_name_a_slave_token_is_bound_to() {
    let hub = Hub::start();
    bound_token(&hub, "box7-key", "box-7");
    bound_token(&hub, "spaced-key", "a b");
    let list = hub.token_command(&["list"]);
    let line = |name: &str| {
        list.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} in {list}"))
            .to_string()
    };
    assert!(line("box7-key").contains("bound to slave box-7"), "{list}");
    // Quoted as xn's tables quote it, so that the name reads as one.
    assert!(
        line("spaced-key").ends_with(r#" bound to slave "a b""#),
        "{list}"
    );
    assert!(!line("slave").contains("bound"), "{list}");

    // Over REST: created bound, listed bound.
    let (status, body) = request(
        &hub.addr,
        "POST",
        "/api/v1/tokens",
        &hub.token,
        r#"{"name":"box8-key","role":"slave","slave_name":"box 8"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let made: NewToken = serde_json::from_str(&body).unwrap();
    assert_eq!(made.slave_name.as_deref(), Some("box 8"));
    let (_, body) = request(&hub.addr, "GET", "/api/v1/tokens", &hub.token, "");
    let list: Vec<TokenInfo> = serde_json::from_str(&body).unwrap();
    let bound = |name: &str| {
        list.iter()
            .find(|t| t.name == name)
            .map(|t| t.slave_name.clone())
            .expect("listed")
    };
    assert_eq!(bound("box7-key").as_deref(), Some("box-7"));
    assert_eq!(bound("box8-key").as_deref(), Some("box 8"));
    assert_eq!(bound("slave"), None);
    assert!(!body.contains("\"slave_name\":null"), "{body}");
    // Only slave tokens can be bound, to a name a slave could have.
    for bad in [
        r#"{"name":"u","role":"user","slave_name":"box-7"}"#,
        r#"{"name":"s","role":"slave","slave_name":""}"#,
    ] {
        let (status, body) = request(&hub.addr, "POST", "/api/v1/tokens", &hub.token, bad);
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

#[test]
fn revoking_a_bound_token_disconnects_only_its_slave() {
    let hub = Hub::start();
    let seven = bound_token(&hub, "box7-key", "box-7");
    let eight = bound_token(&hub, "box8-key", "box-8");
    let _s7 = Slave::start_with_token(&hub, &seven, "box-7", 1, &[]);
    let _s8 = Slave::start_with_token(&hub, &eight, "box-8", 1, &[]);
    let _shared = hub.slave("shared", 1);
    hub.token_command(&["revoke", "box7-key"]);
    wait_log_line(
        &hub,
        "box-7 dropped",
        &["token revoked: disconnecting slave", "box-7"],
    );
    let (_, body) = hub.get("/api/v1/slaves");
    assert!(!body.contains("\"box-7\""), "{body}");
    assert!(
        body.contains("\"box-8\"") && body.contains("\"shared\""),
        "{body}"
    );
    let id = hub.submit("echo still", &["--slave", "box-8"]);
    assert_eq!(hub.wait_ended(id).state, JobState::Exited);
}

#[test]
fn a_slave_serving_as_a_name_when_it_gets_bound_takes_no_new_jobs_but_keeps_its_own() {
    use crate::redial::{dial_as, end_ok, runtime, start_one};
    let hub = Hub::start_with(&["--slave-timeout", "600"]);
    let rt = runtime();
    rt.block_on(async {
        // Served as box-7 with the shared token, room for two jobs, running one.
        let (mut rd, tx) = dial_as(&hub, "box-7", Some(7), 2, &[]).await;
        let running = start_one(&hub, &mut rd, &tx, "sleep 100").await;
        let t = bound_token(&hub, "box7-key", "box-7");
        wait_log_line(
            &hub,
            "the hub to stop giving it jobs",
            &[
                "WARN",
                "slave=box-7",
                "the slave's name was bound to another token: no new jobs for it",
                "peer=127.0.0.1:",
            ],
        );
        let (_, body) = hub.get("/api/v1/slaves");
        assert!(body.contains(r#""draining":true"#), "{body}");
        // A job pinned to box-7 waits for the holder of its token (this connection has room,
        // so a job given to it would never end).
        let id = hub.submit("echo mine", &["--slave", "box-7", "--no-tty"]);
        let _s = Slave::start_with_token(&hub, &t, "box-7", 1, &[]);
        let rec = hub.wait_ended(id);
        assert_eq!(rec.state, JobState::Exited);
        assert_eq!(hub.fetch(id), b"mine\n");
        // The job it held was not touched: it ends as the slave reports it.
        end_ok(&hub, &mut rd, &tx, running).await;
    });
}

/// SHA-256 of `token`, as the tokens table stores it.
fn hash(token: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).to_vec()
}

/// A data directory as a hub made it before tokens could be bound: the tokens table without
/// `slave_name`, an admin and a slave token in it and in their files.
fn old_data_dir(data: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir(data).unwrap();
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let db = rusqlite::Connection::open(data.join("jobs.db")).unwrap();
    db.execute_batch(
        "CREATE TABLE tokens (
            name TEXT PRIMARY KEY,
            role TEXT NOT NULL,
            hash BLOB NOT NULL UNIQUE,
            created_ms INTEGER NOT NULL
        );",
    )
    .unwrap();
    for (name, role, digit) in [("admin", "admin", "a"), ("slave", "slave", "5")] {
        let token = format!("xn_{}", digit.repeat(64));
        db.execute(
            "INSERT INTO tokens (name, role, hash, created_ms) VALUES (?1, ?2, ?3, 1)",
            rusqlite::params![name, role, hash(&token)],
        )
        .unwrap();
        std::fs::write(data.join(format!("{name}.token")), format!("{token}\n")).unwrap();
    }
}

#[test]
fn a_token_table_from_before_bindings_opens_and_its_tokens_work() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    old_data_dir(&data);
    let hub = Hub::start_on(&data, "127.0.0.1:0", &[]);
    assert_eq!(hub.token, format!("xn_{}", "a".repeat(64)));
    // The old slave token serves as any name, and the old admin token submits.
    let _s = hub.slave("old-box", 1);
    let id = hub.submit("echo old", &[]);
    assert_eq!(hub.wait_ended(id).state, JobState::Exited);
    let list = hub.token_command(&["list"]);
    assert!(
        list.contains("admin") && list.contains("slave") && !list.contains("bound"),
        "{list}"
    );
    // And the table takes bound tokens now, beside the running hub.
    let t = bound_token(&hub, "new-key", "new-box");
    let _n = Slave::start_with_token(&hub, &t, "new-box", 1, &[]);
    assert!(hub
        .token_command(&["list"])
        .contains("bound to slave new-box"));
}

/// `xn --slaves` says which slaves serve with a token bound to their name (so that a job pinned
/// to one reaches only that token's holder), to anyone who may list slaves; and which token
/// each serves with only to admins, who alone may see token names: an operator finds the
/// slaves that still use the shared token before revoking it.
#[test]
fn xn_slaves_shows_the_binding_to_all_and_the_token_to_admins() {
    let hub = Hub::start();
    let t = bound_token(&hub, "box7-key", "box-7");
    let _bound = Slave::start_with_token(&hub, &t, "box-7", 1, &[]);
    let _shared = hub.slave("box-8", 1);
    let viewer = hub.new_token("watcher", "viewer");
    let listed = |token: &str| -> Vec<execnode::hub::SlaveInfo> {
        let out = xn_as(&hub.url, token, &["--slaves", "--json"]);
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let seen = |slaves: Vec<execnode::hub::SlaveInfo>| -> Vec<(String, bool, Option<String>)> {
        slaves
            .into_iter()
            .map(|s| (s.name, s.bound, s.token))
            .collect()
    };
    assert_eq!(
        seen(listed(&hub.token)),
        [
            ("box-7".into(), true, Some("box7-key".into())),
            ("box-8".into(), false, Some("slave".into())),
        ]
    );
    assert_eq!(
        seen(listed(&viewer)),
        [("box-7".into(), true, None), ("box-8".into(), false, None)]
    );
    let out = xn_as(&hub.url, &viewer, &["--slaves", "--json"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("token"));

    let rows = |token: &str| -> Vec<Vec<String>> {
        let out = xn_as(&hub.url, token, &["--slaves"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split_whitespace().map(String::from).collect())
            .collect()
    };
    let admin = rows(&hub.token);
    assert_eq!(
        admin[0],
        ["NAME", "STATE", "SLOTS", "JOBS", "BOUND", "TOKEN", "LABELS"]
    );
    assert_eq!(
        admin[1][..6],
        ["box-7", "ready", "1", "-", "yes", "box7-key"]
    );
    assert_eq!(admin[2][..6], ["box-8", "ready", "1", "-", "no", "slave"]);
    let viewed = rows(&viewer);
    assert_eq!(
        viewed[0],
        ["NAME", "STATE", "SLOTS", "JOBS", "BOUND", "LABELS"]
    );
    assert_eq!(viewed[1][..5], ["box-7", "ready", "1", "-", "yes"]);
    assert_eq!(viewed[2][..5], ["box-8", "ready", "1", "-", "no"]);
}
