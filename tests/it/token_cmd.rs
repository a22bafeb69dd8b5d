//! `xnhub token create|list|revoke` on a data directory: `--data` before `token` or after the
//! action, once; the hub's other flags refused beside it.

use crate::util::*;
use std::path::Path;
use std::process::{Command, Output};

/// `PROGRAM ARGS` (`xnhub`, or `execnode` with `hub` first) with `XN_DATA` set to `env_data`
/// (unset if `None`), and a default data directory of `home`'s, so that nothing can land in
/// the real one.
fn run(program: &Path, args: &[&str], env_data: Option<&Path>, home: &Path) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_remove("XN_DATA")
        .env("XDG_DATA_HOME", home)
        .env("XN_LOG", "warn");
    if let Some(d) = env_data {
        cmd.env("XN_DATA", d);
    }
    cmd.output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The names `token list` printed.
fn names(list: &str) -> Vec<&str> {
    list.lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect()
}

#[test]
fn data_comes_before_token_or_after_the_action() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("hub");
    let d = data.to_str().unwrap();
    let xnhub = bin_dir().join("xnhub");
    let xnhub = |args: &[&str]| run(&xnhub, args, None, home.path());
    let alice = ok(xnhub(&[
        "--data", d, "token", "create", "--name", "alice", "--role", "user",
    ]));
    assert!(alice.starts_with("xn_"), "{alice}");
    ok(xnhub(&[
        "token", "create", "--name", "bob", "--role", "viewer", "--data", d,
    ]));
    let before = ok(xnhub(&["--data", d, "token", "list"]));
    assert_eq!(
        names(&before),
        ["admin", "alice", "bob", "slave"],
        "{before}"
    );
    assert_eq!(ok(xnhub(&["token", "list", "--data", d])), before);
    let by_role = run(
        &exe(),
        &["hub", "--data", d, "token", "list"],
        None,
        home.path(),
    );
    assert_eq!(ok(by_role), before);
    // XN_DATA alone, and a --data on the command line over it, in either place.
    let elsewhere = home.path().join("elsewhere");
    assert_eq!(
        ok(run(
            &bin_dir().join("xnhub"),
            &["token", "list"],
            Some(&data),
            home.path()
        )),
        before
    );
    for args in [
        &["--data", d, "token", "list"][..],
        &["token", "list", "--data", d],
    ] {
        let out = run(
            &bin_dir().join("xnhub"),
            args,
            Some(&elsewhere),
            home.path(),
        );
        assert_eq!(ok(out), before, "{args:?}");
    }
    assert!(!elsewhere.exists());
    ok(xnhub(&["--data", d, "token", "revoke", "alice"]));
    ok(xnhub(&["token", "revoke", "bob", "--data", d]));
    let after = ok(xnhub(&["token", "list", "--data", d]));
    assert_eq!(names(&after), ["admin", "slave"], "{after}");
    // Nothing went to the default directory.
    assert!(!home.path().join("execnode").exists());
}

#[test]
fn data_twice_or_a_flag_for_running_the_hub_is_refused_beside_token() {
    let home = tempfile::tempdir().unwrap();
    let (a, b) = (home.path().join("a"), home.path().join("b"));
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let refused = |program: &Path, args: &[&str], says: &str| {
        let out = run(program, args, None, home.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    };
    let xnhub = bin_dir().join("xnhub");
    let twice = "--data is given twice, before `token` and after `token";
    refused(&xnhub, &["--data", a, "token", "list", "--data", b], twice);
    // The same directory twice too: the rule is "once", as clap's for one place.
    refused(
        &xnhub,
        &["--data", a, "token", "revoke", "x", "--data", a],
        twice,
    );
    let create = [
        "token", "create", "--name", "n", "--role", "user", "--data", b,
    ];
    let mut args = vec!["hub", "--data", a];
    args.extend(create);
    refused(&exe(), &args, twice);
    refused(
        &xnhub,
        &["token", "list", "--data", a, "--data", b],
        "cannot be used multiple times",
    );
    refused(
        &xnhub,
        &["--listen", "127.0.0.1:0", "token", "list", "--data", a],
        "--listen is for running the hub: `token` takes only --data",
    );
    refused(
        &exe(),
        &["hub", "--no-auth", "--data", a, "token", "list"],
        "--no-auth is for running the hub",
    );
    // Nothing was touched anywhere.
    assert_eq!(std::fs::read_dir(home.path()).unwrap().count(), 0);
}

#[test]
fn list_and_revoke_where_no_hub_has_been_fail_and_write_nothing() {
    let home = tempfile::tempdir().unwrap();
    let empty = home.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let missing = home.path().join("missing");
    let xnhub = bin_dir().join("xnhub");
    let xnhub = |args: &[&str]| run(&xnhub, args, None, home.path());
    for dir in [&empty, &missing] {
        let d = dir.to_str().unwrap();
        for (args, says) in [
            (&["token", "list", "--data", d][..], "no tokens to list"),
            (
                &["token", "revoke", "alice", "--data", d][..],
                "no token named \"alice\" to revoke",
            ),
        ] {
            let out = xnhub(args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(255), "{args:?}: {err}");
            assert!(
                err.starts_with(&format!("xnhub: no hub data in {d} (no jobs.db): {says}")),
                "{args:?}: {err}"
            );
            assert!(out.stdout.is_empty(), "{args:?}");
        }
    }
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
    assert!(!missing.exists());

    // `create` there makes the directory ready for a hub, as its first start would.
    let d = missing.to_str().unwrap();
    let out = xnhub(&[
        "token", "create", "--name", "alice", "--role", "user", "--data", d,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{d} had no hub data")), "{err}");
    assert!(ok(out).starts_with("xn_"));
    for f in ["admin.token", "slave.token"] {
        assert!(missing.join(f).exists(), "{f}");
    }
    let list = ok(xnhub(&["token", "list", "--data", d]));
    assert_eq!(names(&list), ["admin", "alice", "slave"], "{list}");

    // Revoked down to none: a listing says so, and neither it nor a `create` adds the first
    // start's tokens back.
    for name in ["admin", "alice", "slave"] {
        ok(xnhub(&["token", "revoke", name, "--data", d]));
    }
    for f in ["admin.token", "slave.token"] {
        std::fs::remove_file(missing.join(f)).unwrap();
    }
    let out = xnhub(&["token", "list", "--data", d]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(ok(out), "");
    assert_eq!(err, format!("no tokens in {d}\n"));
    ok(xnhub(&[
        "token", "create", "--name", "bob", "--role", "viewer", "--data", d,
    ]));
    let list = ok(xnhub(&["token", "list", "--data", d]));
    assert_eq!(names(&list), ["bob"], "{list}");
    assert!(!missing.join("admin.token").exists());
}
