//! Tokens with a lifetime (`xnhub token create --expires`, `expires_in` over REST): accepted
//! until they expire, then refused with a message that says so; the connections opened with
//! them close as a revoked token's do, and the jobs they started go on.

use crate::util::*;
use execnode::wire::{JobState, TokenInfo};
use std::process::Stdio;

/// A token made with `--expires`, and the `xn -s --wait` its owner keeps open, end at its
/// expiry; xn says which job runs on (`--wait` had not said its id), the job does, and `token
/// list` says when the token expired.
#[test]
fn a_token_with_a_lifetime_is_refused_once_it_expires_and_its_streams_end() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let temp = hub.token_command(&[
        "create",
        "--name",
        "temp",
        "--role",
        "user",
        "--expires",
        "5s",
    ]);
    let listed = hub.token_command(&["list"]);
    let line = listed.lines().find(|l| l.starts_with("temp ")).unwrap();
    assert!(line.contains(" expires in "), "{listed}");

    let job = "echo ready; exec sleep 100";
    let mut follow = xn_command(&hub.url, &temp, &["-s", job, "--no-tty", "--wait"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (stdout, out_done) = collect(follow.stdout.take().unwrap());
    let (stderr, err_done) = collect(follow.stderr.take().unwrap());
    wait_until("the follower to show the job's output", || {
        stdout.lock().unwrap().starts_with(b"ready\n")
    });
    // It was let in before its expiry; at the expiry the hub ends its stream.
    wait_until("the follower to end", || {
        follow.try_wait().unwrap().is_some()
    });
    assert_eq!(follow.wait().unwrap().code(), Some(255));
    out_done.join().unwrap();
    err_done.join().unwrap();
    let said = String::from_utf8_lossy(&stderr.lock().unwrap()).to_string();
    assert!(said.contains("token expired"), "{said}");
    assert!(!said.contains("reconnecting"), "{said}");
    let id = said
        .split("stopped following job ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no job id in: {said}"))
        .to_string();
    assert!(
        said.contains(&format!(
            "job {id} (it runs on): this token can no longer reach it"
        )),
        "{said}"
    );
    assert!(hub.log_contains("token expired: closing its connections"));

    // Refused from now on, saying why; the job runs on, for an admin to see.
    let out = xn_as(&hub.url, &temp, &["-l"]);
    assert_eq!(out.status.code(), Some(255));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("token temp expired") && err.contains("ask an admin"),
        "{err}"
    );
    assert_eq!(hub.job(id.parse().unwrap()).state, JobState::Running);
    let listed = hub.token_command(&["list"]);
    let line = listed.lines().find(|l| l.starts_with("temp ")).unwrap();
    assert!(
        line.contains(" EXPIRED ") && line.ends_with(" ago"),
        "{listed}"
    );
}

/// A slave whose token expires is let go as a revoked one is: its jobs are lost, and the
/// reason says the token expired.
#[test]
fn a_slave_whose_token_expires_is_disconnected_and_says_why() {
    let hub = Hub::start_with(&["--slave-timeout", "600"]);
    let t = hub.token_command(&[
        "create",
        "--name",
        "w",
        "--role",
        "slave",
        "--expires",
        "4s",
    ]);
    let s = Slave::start_with_token(&hub, &t, "w1", 1, &[]);
    let id = hub.submit("echo started; exec sleep 100", &["--no-tty"]);
    wait_until("the job to start", || hub.fetch(id).starts_with(b"started"));
    let rec = hub.wait_ended(id);
    assert_eq!(rec.state, JobState::Lost);
    assert_eq!(rec.reason.as_deref(), Some("its slave's token expired"));
    assert!(hub.log_contains("token expired: disconnecting slave"));
    wait_until("the slave to stop", || {
        s.log_contains("stopping 1 job(s): the hub refused this slave")
    });
}

/// Over REST, `expires_in` takes the same ages as `--expires`; the answer and the list give
/// the expiry in ms since the epoch. A bad age, or a field the hub does not know, is a 400
/// and makes no token.
#[test]
fn rest_makes_tokens_with_a_lifetime_and_refuses_a_bad_one() {
    let hub = Hub::start();
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    let post = |body: &str| request(&hub.addr, "POST", "/api/v1/tokens", &hub.token, body);
    let before = now_ms();
    let (status, body) = post(r#"{"name":"c1","role":"user","expires_in":"1h"}"#);
    let after = now_ms();
    assert_eq!(status, 201, "{body}");
    let made: serde_json::Value = serde_json::from_str(&body).unwrap();
    let at = made["expires_ms"].as_u64().unwrap();
    assert!(
        (before + 3_600_000..=after + 3_600_000).contains(&at),
        "{body}"
    );
    // The token itself can tell when it ends; one without a lifetime says nothing of it.
    let who = |token: &str| {
        let (status, body) = request(&hub.addr, "GET", "/api/v1/whoami", token, "");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    assert_eq!(who(made["token"].as_str().unwrap())["expires_ms"], at);
    assert!(who(&hub.token).get("expires_ms").is_none());

    let (status, body) = post(r#"{"name":"c2","role":"user","expires_in":"1w"}"#);
    assert_eq!(status, 400);
    assert!(
        body.contains("expires_in") && body.contains("the unit is"),
        "{body}"
    );
    let (status, body) = post(r#"{"name":"c3","role":"user","expires":"1h"}"#);
    assert_eq!(status, 400);
    assert!(body.contains("unknown field `expires`"), "{body}");

    let (status, body) = hub.get("/api/v1/tokens");
    assert_eq!(status, 200);
    let tokens: Vec<TokenInfo> = serde_json::from_str(&body).unwrap();
    let names: Vec<_> = tokens.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["admin", "c1", "slave"]);
    assert_eq!(tokens[1].expires_ms, Some(at));
    assert_eq!(tokens[0].expires_ms, None);
}

/// `--expires` takes an age with a unit, more than nothing.
#[test]
fn token_create_refuses_a_bad_lifetime() {
    let hub = Hub::start();
    for (age, says) in [
        ("0s", "more than 0"),
        ("5", "needs a unit"),
        ("2w", "the unit is"),
    ] {
        let out = std::process::Command::new(bin_dir().join("xnhub"))
            .args([
                "token",
                "create",
                "--name",
                "x",
                "--role",
                "user",
                "--expires",
                age,
            ])
            .arg("--data")
            .arg(&hub.data)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{age}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--expires") && err.contains(says),
            "{age}: {err}"
        );
    }
    assert!(!hub
        .token_command(&["list"])
        .lines()
        .any(|l| l.starts_with("x ")));
}

/// A hub that starts with an expired token refuses it, and has no connection of it to close:
/// its log does not say it closes any.
#[test]
fn a_hub_started_with_an_expired_token_refuses_it_quietly() {
    let mut hub = Hub::start();
    let t = hub.token_command(&[
        "create",
        "--name",
        "old",
        "--role",
        "user",
        "--expires",
        "1s",
    ]);
    wait_until("the token to expire", || {
        xn_as(&hub.url, &t, &["-l"]).status.code() == Some(255)
    });
    hub.new_token("a", "user");
    hub.new_token("b", "user");
    hub.stop();
    hub.restart(&[]);
    let out = xn_as(&hub.url, &t, &["-l"]);
    assert_eq!(out.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&out.stderr).contains("token old expired"));
    // The hub's token loop has looked at the lifetimes after its start once the second of two
    // revocations, a tick apart, is picked up: each tick reloads, then checks lifetimes.
    for name in ["a", "b"] {
        hub.token_command(&["revoke", name]);
        wait_until("the hub to pick the revocation up", || {
            hub.log_contains(&format!(
                "token revoked: closing its connections token={name}"
            ))
        });
    }
    assert!(!hub.log_contains("token expired: closing its connections"));
}
