//! Tokens and roles: nothing runs or shows without a valid token, and each role sees and does
//! only what it may.

use crate::term::Term;
use crate::util::*;
use execnode::wire::JobState;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

#[test]
fn first_start_writes_private_admin_and_slave_tokens() {
    use std::os::unix::fs::PermissionsExt;
    let hub = Hub::start();
    for name in ["admin.token", "slave.token"] {
        let meta = std::fs::metadata(hub.data.join(name)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
    }
    assert!(hub.log_contains("created the admin token"));
    // Only hashes are stored.
    let db = std::fs::read(hub.data.join("jobs.db")).unwrap();
    assert!(!db
        .windows(hub.token.len())
        .any(|w| w == hub.token.as_bytes()));
}

#[test]
fn no_token_or_a_wrong_one_is_refused_everywhere_and_nothing_runs() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let id = hub.submit("echo mine", &[]);
    hub.wait_ended(id);
    let wrong = format!("xn_{}", "0".repeat(64));
    for token in ["", wrong.as_str(), "garbage"] {
        for (method, path) in [
            ("GET", "/api/v1/jobs"),
            ("POST", "/api/v1/jobs"),
            ("GET", "/api/v1/jobs/1"),
            ("GET", "/api/v1/jobs/1/output"),
            ("POST", "/api/v1/jobs/1/cancel"),
            ("GET", "/api/v1/jobs/1/stream"),
            ("GET", "/api/v1/slave"),
            ("GET", "/api/v1/slaves"),
            ("GET", "/api/v1/tokens"),
            ("GET", "/api/v1/whoami"),
        ] {
            let (status, body) = request(
                &hub.addr,
                method,
                path,
                token,
                r#"{"command":"touch /tmp/pwned"}"#,
            );
            assert_eq!(status, 401, "{method} {path} with {token:?}: {body}");
            assert!(body.contains("token"), "{body}");
        }
        let out = xn_as(&hub.url, token, &["-s", "echo never"]);
        assert_eq!(out.status.code(), Some(255));
        assert!(String::from_utf8_lossy(&out.stderr).contains("token"));
    }
    assert_eq!(hub.jobs().len(), 1, "nothing was submitted");
    // A WebSocket upgrade without a token is refused before upgrading.
    let (status, _) = http(
        &hub.addr,
        b"GET /api/v1/slave HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert_eq!(status, 401);
    let (status, _) = request(&hub.addr, "GET", "/healthz", "", "");
    assert_eq!(status, 200, "health checks need no token");
}

/// xn without a token is told where xn takes one from, not only what the hub wants of an HTTP
/// client; with a wrong token there is nothing to add.
#[test]
fn xn_without_a_token_says_where_to_give_one() {
    let hub = Hub::start();
    let home = tempfile::tempdir().unwrap();
    let config = config_dir(home.path()).join("config.toml");
    let xn_in = |token: &str, args: &[&str]| {
        xn_command(&hub.url, token, args)
            .env("XDG_CONFIG_HOME", home.path())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    for args in [
        &["-l"][..],
        &["-s", "true"],
        &["-f", "1", "--follow"],
        &["-a", "1"],
    ] {
        let out = xn_in("", args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{args:?}: {err}");
        assert!(
            err.starts_with("xn: a token is required")
                && err.contains("--token TOKEN, XN_TOKEN")
                && err.contains(&config.display().to_string()),
            "{args:?}: {err}"
        );
        let out = xn_in("garbage", args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{args:?}: {err}");
        assert!(!err.contains("XN_TOKEN"), "{args:?}: {err}");
    }
    assert!(hub.jobs().is_empty());
}

#[test]
fn users_see_only_their_own_jobs_and_viewers_only_watch() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 2);
    let alice = hub.new_token("alice", "user");
    let bob = hub.new_token("bob", "user");
    let viewer = hub.new_token("watcher", "viewer");
    let out = xn_as(&hub.url, &alice, &["-s", "cat", "--no-tty"]);
    assert!(out.status.success());
    let id: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    hub.wait_state(id, JobState::Running);
    assert_eq!(hub.job(id).owner.as_deref(), Some("alice"));
    let ids = id.to_string();

    // Bob cannot list, fetch, attach to or cancel it: to him it does not exist.
    let list = xn_as(&hub.url, &bob, &["-l", "--json"]);
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "[]");
    for args in [
        vec!["-f", &ids],
        vec!["-k", &ids],
        vec!["-a", &ids],
        vec!["-f", &ids, "--follow"],
    ] {
        let out = xn_as(&hub.url, &bob, &args);
        assert_eq!(out.status.code(), Some(255), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&format!("no job with id {id}")),
            "{args:?}"
        );
    }
    // The viewer sees it but cannot submit, cancel or type.
    let list = xn_as(&hub.url, &viewer, &["-l", "--json"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("\"owner\": \"alice\""));
    let out = xn_as(&hub.url, &viewer, &["-s", "echo no"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("may not submit jobs"));
    let out = xn_as(&hub.url, &viewer, &["-k", &ids]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("may not cancel this job"));
    let out = xn_as(&hub.url, &viewer, &["-a", &ids]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--read-only"));
    // A slave token cannot submit, and is told that it sees no job (not an empty list, not
    // "no job with id").
    let out = xn_as(&hub.url, &hub.slave_token, &["-s", "echo no"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("may not submit jobs"));
    for args in [
        vec!["-l"],
        vec!["-f", &ids],
        vec!["-k", &ids],
        vec!["-f", "999", "--follow"],
    ] {
        let out = xn_as(&hub.url, &hub.slave_token, &args);
        assert_eq!(out.status.code(), Some(255), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("(role slave) may not see jobs"),
            "{args:?}: {err}"
        );
    }
    // Alice can.
    let out = xn_as(&hub.url, &alice, &["-k", &ids]);
    assert!(out.status.success());
    assert_eq!(hub.wait_ended(id).state, JobState::Cancelled);
}

#[test]
fn revoking_a_token_ends_its_open_connections() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let carol = hub.new_token("carol", "user");
    let out = xn_as(&hub.url, &carol, &["-s", "cat"]);
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    hub.wait_state(id.parse().unwrap(), JobState::Running);
    // Carol attaches; an admin revokes her token through the API; her session ends.
    let mut t = Term::xn_as(&hub, &carol, &["-a", &id], 24, 80);
    t.wait_for("attached to job");
    let (status, _) = request(&hub.addr, "DELETE", "/api/v1/tokens/carol", &hub.token, "");
    assert_eq!(status, 200);
    assert_eq!(t.wait_exit().code(), Some(255));
    t.wait_for("[hub: token revoked]");
    // Said once. Closed for that reason (1008), not lost: xn does not dial again to be refused.
    assert_eq!(t.count("token revoked"), 1, "{}", t.text());
    assert!(!t.text().contains("reconnecting"), "{}", t.text());
    assert!(t.is_cooked());
    let out = xn_as(&hub.url, &carol, &["-l"]);
    assert_eq!(out.status.code(), Some(255));
}

#[test]
fn a_revoked_token_ends_a_follow_or_a_wait_with_one_line() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 2);
    for (name, args) in [
        ("dave", &["-s", "echo ready; cat", "--no-tty", "--wait"][..]),
        ("erin", &["-f", "", "--follow"][..]),
    ] {
        let token = hub.new_token(name, "user");
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        if args[0] == "-f" {
            let out = xn_as(&hub.url, &token, &["-s", "echo ready; cat", "--no-tty"]);
            args[1] = String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let xn = Collected::spawn(xn_command(&hub.url, &token, &args).stdin(Stdio::null()));
        wait_until("the job's output", || {
            xn.out.lock().unwrap().starts_with(b"ready\n")
        });
        hub.token_command(&["revoke", name]);
        let (status, _, err) = xn.finish_within();
        assert_eq!(status.code(), Some(255), "{args:?}: {err}");
        // Said once, on one line, and not dialled again to be refused; then which job runs
        // on, unseen.
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 2, "{args:?}: {err}");
        assert!(lines[0].contains("token revoked"), "{args:?}: {err}");
        assert!(
            lines[1].starts_with("xn: stopped following job ")
                && lines[1].ends_with("(it runs on): this token can no longer reach it"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_revoked_slave_token_disconnects_the_slave_at_once() {
    // Far longer than the test's patience: the job must not wait for its slave to come back.
    let hub = Hub::start_with(&["--slave-timeout", "600"]);
    let t = hub.new_token("worker", "slave");
    let s = Slave::start_with_token(&hub, &t, "w1", 1, &[]);
    // With pipes, so nothing but the slave stops it (a terminal's hangup would).
    let id = hub.submit("echo $$; exec sleep 100", &["--no-tty"]);
    wait_until("the job's pid", || hub.fetch(id).ends_with(b"\n"));
    let pid: i32 = String::from_utf8_lossy(&hub.fetch(id))
        .trim()
        .parse()
        .unwrap();
    hub.token_command(&["revoke", "worker"]);
    wait_until("the hub to drop the slave", || {
        hub.log_contains("token revoked: disconnecting slave")
    });
    let (_, body) = hub.get("/api/v1/slaves");
    assert_eq!(body, "[]");
    // The slave is refused from now on and stops its jobs, so they are lost at once, and why.
    let rec = hub.wait_ended(id);
    assert_eq!(rec.state, JobState::Lost);
    assert_eq!(
        rec.reason.as_deref(),
        Some("its slave's token was revoked"),
        "{rec:?}"
    );
    wait_until("the job's process to be stopped", || !alive(pid));
    wait_until("the slave to exit", || {
        s.log_contains("stopping 1 job(s): the hub refused this slave")
    });
}

#[test]
fn no_auth_lets_everyone_in_and_warns() {
    let hub = Hub::start_with(&["--no-auth"]);
    assert!(hub.log_contains("--no-auth"));
    let (status, _) = request(&hub.addr, "GET", "/api/v1/jobs", "", "");
    assert_eq!(status, 200);
    assert!(!hub.data.join("admin.token").exists());
}

#[test]
fn a_config_file_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let hub = Hub::start();
    let home = tempfile::tempdir().unwrap();
    let dir = config_dir(home.path());
    let file = dir.join("config.toml");
    std::fs::write(
        &file,
        format!("hub = \"{}\"\ntoken = \"{}\"\n", hub.url, hub.token),
    )
    .unwrap();
    let run = || {
        std::process::Command::new(bin_dir().join("xn"))
            .args(["-l", "--json"])
            .env_remove("XN_HUB")
            .env_remove("XN_TOKEN")
            .env("XDG_CONFIG_HOME", home.path())
            .output()
            .unwrap()
    };
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run();
    assert_eq!(out.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A config file with a mistake is refused, by xn and xnslave, with its line and column and
/// what is wrong, on one line (toml's own multi-line snippet came out as `\n  |\n3 | ...`),
/// after the name of the program that refused it (xnslave said `execnode:`).
#[test]
fn a_config_file_with_a_mistake_says_where_on_one_line() {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().unwrap();
    let file = config_dir(home.path()).join("config.toml");
    for (text, says) in [
        (
            "hub = \"http://127.0.0.1:1\"\nlabels = 1\n",
            ":2:1: unknown field `labels`, expected `hub` or `token`",
        ),
        (
            "token = 5\n",
            ":1:9: invalid type: integer `5`, expected a string",
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        for (program, args) in [("xn", &["-l"][..]), ("xnslave", &["--name", "s"][..])] {
            let out = std::process::Command::new(bin_dir().join(program))
                .args(args)
                .env_remove("XN_HUB")
                .env_remove("XN_TOKEN")
                .env("XDG_CONFIG_HOME", home.path())
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(255), "{program}");
            let err = String::from_utf8_lossy(&out.stderr);
            let line = err.lines().last().unwrap_or("");
            assert!(
                line.starts_with(&format!("{program}: ")),
                "{program}: {err:?}"
            );
            let expected = format!("{}{says}", file.display());
            assert!(
                line.ends_with(&expected),
                "{program}: {err:?}, not {expected:?}"
            );
            assert!(
                !err.contains("\\n") && !err.contains(" | "),
                "{program}: {err:?}"
            );
        }
    }
}

/// A token that no header can carry as it is (a token file of two lines, a pasted token with a
/// stray character) is refused at once, saying what is wrong with it: the slave used to dial
/// again for ever ("building request: failed to parse header value"), and xn said the same.
#[test]
fn a_token_with_a_line_break_or_a_stray_character_is_refused_at_once() {
    let hub = Hub::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("two-lines.token");
    std::fs::write(&file, format!("{}\nanother\n", hub.slave_token)).unwrap();
    let mut args = vec!["--name", "s1", "--token-file", file.to_str().unwrap()];
    if is_root() {
        args.push("--allow-root-jobs");
    }
    let (status, err) = Slave::run_to_exit(&hub.url, &args, None).unwrap();
    assert_eq!(status.code(), Some(255), "{err}");
    assert!(
        err.contains("the token file")
            && err.contains("the token has a line break, which no token has"),
        "{err}"
    );
    for (token, says) in [
        (format!("{}\nx", hub.token), "a line break"),
        (format!("{}\u{e9}", hub.token), "the character '\u{e9}'"),
        (format!("{} x", hub.token), "a space"),
    ] {
        let out = xn_as(&hub.url, &token, &["-l"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{err}");
        assert!(err.contains(&format!("the token has {says}")), "{err}");
    }
    // Whitespace around a token is no part of it.
    let out = xn_as(&hub.url, &format!(" {}\n", hub.token), &["-l"]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn a_slave_takes_its_token_from_a_file_and_warns_of_one_on_its_command_line() {
    let hub = Hub::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("slave.token");
    std::fs::write(&file, format!("{}\n", hub.slave_token)).unwrap();
    let filed = Slave::start_at(
        &hub.url,
        "",
        "filed",
        1,
        &["--token-file", file.to_str().unwrap()],
    );
    let id = hub.submit("echo via-file", &["--slave", "filed"]);
    assert_eq!(hub.wait_ended(id).exit_code, Some(0));
    assert!(!filed.log_contains("--token on the command line"));
    // A file others may read (as a copy made under the usual umask is) works, with a warning.
    let loose = "can be read by group or others, who can then act as this slave: run chmod 600";
    for (mode, name, warns) in [(0o644, "open", true), (0o600, "closed", false)] {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        let s = Slave::start_at(
            &hub.url,
            "",
            name,
            1,
            &["--token-file", file.to_str().unwrap()],
        );
        let id = hub.submit("echo via-file", &["--slave", name]);
        assert_eq!(hub.wait_ended(id).exit_code, Some(0));
        assert_eq!(s.log_contains(loose), warns, "mode {mode:o}");
    }

    // On the command line it works, with a warning: anyone on the machine can read it there.
    let argv = Slave::start_at(&hub.url, "", "argv", 1, &["--token", &hub.slave_token]);
    wait_until("the warning", || {
        argv.log_contains("--token on the command line can be read by every local user")
    });

    // No token at all (no config file either): the hub's refusal says how to give one.
    let home = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(exe())
        .args(["slave", "--hub", &hub.url, "--allow-root-jobs"])
        .env_remove("XN_TOKEN")
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("this slave has none: give it one with --token-file"),
        "{err}"
    );
    // The operator sees it in the hub's log, with where it came from; and a token of another
    // role too.
    wait_until("the refusal in the hub's log", || {
        hub.log_contains("slave refused: a token is required")
            && hub.log_contains("peer=127.0.0.1:")
    });
    let user = hub.new_token("alice", "user");
    let (status, _) =
        Slave::run_to_exit(&hub.url, &["--allow-root-jobs", "--token", &user], None).unwrap();
    assert!(!status.success());
    wait_until("the role refusal in the hub's log", || {
        hub.log_contains("slave refused: the token's role may not serve as a slave")
    });

    // A token file that cannot be read: a clear refusal before dialling.
    let (status, err) = Slave::run_to_exit(
        &hub.url,
        &["--token-file", "/nonexistent/slave.token"],
        None,
    )
    .unwrap();
    assert!(!status.success());
    assert!(
        err.contains("reading the token file /nonexistent/slave.token"),
        "{err}"
    );
}

#[test]
fn a_config_file_others_can_write_is_refused_even_without_a_token() {
    use std::os::unix::fs::PermissionsExt;
    let hub = Hub::start();
    let home = tempfile::tempdir().unwrap();
    let dir = config_dir(home.path());
    let file = dir.join("config.toml");
    // Whoever can write it could send xn, and the token from XN_TOKEN, to a hub of theirs.
    std::fs::write(&file, format!("hub = \"{}\"\n", hub.url)).unwrap();
    let run = || {
        std::process::Command::new(bin_dir().join("xn"))
            .args(["-l", "--json"])
            .env_remove("XN_HUB")
            .env("XN_TOKEN", &hub.token)
            .env("XDG_CONFIG_HOME", home.path())
            .output()
            .unwrap()
    };
    for mode in [0o602, 0o620] {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = run();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{mode:o}: {err}");
        assert!(
            err.contains("group or others can write it"),
            "{mode:o}: {err}"
        );
    }
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_config_file_in_a_directory_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let chmod = |path: &std::path::Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    let hub = Hub::start();
    let home = tempfile::tempdir().unwrap();
    let dir = config_dir(home.path());
    let file = dir.join("config.toml");
    // Whoever can write in its directory can put a file of theirs in its place.
    std::fs::write(&file, format!("hub = \"{}\"\n", hub.url)).unwrap();
    chmod(&file, 0o600);
    let run = || {
        let out = std::process::Command::new(bin_dir().join("xn"))
            .args(["-l", "--json"])
            .env_remove("XN_HUB")
            .env("XN_TOKEN", &hub.token)
            .env("XDG_CONFIG_HOME", home.path())
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stderr).unwrap())
    };
    let refused = |(code, err): (Option<i32>, String), dir: &std::path::Path, why: &str| {
        assert_eq!(code, Some(255), "{err}");
        let at = format!(
            "{} (the directory that holds {})",
            dir.display(),
            file.display()
        );
        assert!(err.contains(&at) && err.contains(why), "{err}");
    };
    for mode in [0o770, 0o707, 0o775] {
        chmod(&dir, mode);
        let why = format!("can write in it, and so put a config file of theirs in place of yours: run chmod go-w {}", dir.display());
        refused(run(), &dir, &why);
    }
    // Sticky, as /tmp: there only a file's owner may rename or remove it.
    for mode in [0o1777, 0o700] {
        chmod(&dir, mode);
        let (code, err) = run();
        assert_eq!(code, Some(0), "{mode:o}: {err}");
    }
    // A link to a file elsewhere: the directory that really holds it counts too.
    let shared = home.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    chmod(&shared, 0o777);
    std::fs::rename(&file, shared.join("config.toml")).unwrap();
    std::os::unix::fs::symlink(shared.join("config.toml"), &file).unwrap();
    refused(run(), &shared, "chmod go-w");
    // A directory of another user's: they could replace the file (only root can make one).
    if is_root() {
        std::fs::remove_file(&file).unwrap();
        std::fs::rename(shared.join("config.toml"), &file).unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), None).unwrap();
        refused(
            run(),
            &dir,
            "belongs to user 65534, who could replace the config file",
        );
    }
}
