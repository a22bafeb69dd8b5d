//! How much `xn -l` lists: the newest 50 jobs in the table, every job in `--json`; `--limit N`
//! and `--all`, applied after the filters; the jobs left out counted on stderr. And the hub's
//! side of it: `last=N` and the `X-Total-Count` header.

use crate::util::*;

/// Stores `n` queued jobs (no slave is started) in one request: ids 1 to `n`, `echo I`, named
/// `odd` or `even` after their id.
fn queue(hub: &Hub, n: u64) {
    let specs: Vec<String> = (1..=n)
        .map(|i| {
            let name = if i % 2 == 1 { "odd" } else { "even" };
            format!(r#"{{"command":"echo {i}","name":"{name}"}}"#)
        })
        .collect();
    let (status, body) = hub.post("/api/v1/jobs", &format!("[{}]", specs.join(",")));
    assert_eq!(status, 201, "{body}");
}

/// `xn ARGS` as the admin, which must succeed: the ids of its table's rows (after the header),
/// and its stderr.
fn table(hub: &Hub, args: &[&str]) -> (Vec<u64>, String) {
    let out = hub.xn(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "xn {args:?}: {err}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert!(
        lines.next().unwrap().trim_start().starts_with("ID"),
        "{text}"
    );
    let ids = lines
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    (ids, err)
}

/// `xn ARGS` (with --json) as the admin, which must succeed: the ids of the records, and its
/// stderr.
fn json(hub: &Hub, args: &[&str]) -> (Vec<u64>, String) {
    let out = hub.xn(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "xn {args:?}: {err}");
    let jobs: Vec<execnode::wire::JobRecord> = serde_json::from_slice(&out.stdout).unwrap();
    (jobs.iter().map(|j| j.id).collect(), err)
}

fn ids(range: std::ops::RangeInclusive<u64>) -> Vec<u64> {
    range.collect()
}

fn note(left: &str) -> String {
    format!("xn: {left} older jobs not shown (xn -l --limit N, or --all)\n")
}

#[test]
fn the_table_shows_the_newest_50_and_counts_the_rest_on_stderr() {
    let hub = Hub::start();
    queue(&hub, 1062);
    assert_eq!(table(&hub, &["-l"]), (ids(1013..=1062), note("1,012")));
    assert_eq!(
        table(&hub, &["-l", "--limit", "3"]),
        (ids(1060..=1062), note("1,059"))
    );
    assert_eq!(
        table(&hub, &["-l", "--limit", "5000"]),
        (ids(1..=1062), String::new())
    );
    assert_eq!(
        table(&hub, &["-l", "--all"]),
        (ids(1..=1062), String::new())
    );
    // The limit applies to what the filters keep: 531 odd jobs.
    assert_eq!(
        table(&hub, &["-l", "--name", "odd", "--limit", "2"]),
        (vec![1059, 1061], note("529"))
    );
    let (odd, err) = table(&hub, &["-l", "--name", "odd"]);
    assert_eq!((odd.len(), odd[0], err), (50, 963, note("481")));
    assert_eq!(
        table(&hub, &["-l", "--state", "queued"]),
        (ids(1013..=1062), note("1,012"))
    );
    assert_eq!(
        table(&hub, &["-l", "--state", "exited"]),
        (vec![], "xn: no job matches --state exited\n".to_string())
    );
    // One left out.
    let (_, err) = table(&hub, &["-l", "--limit", "1061"]);
    assert_eq!(
        err,
        "xn: 1 older job not shown (xn -l --limit N, or --all)\n"
    );
}

#[test]
fn json_lists_every_job_unless_given_a_limit() {
    let hub = Hub::start();
    queue(&hub, 60);
    assert_eq!(json(&hub, &["-l", "--json"]), (ids(1..=60), String::new()));
    assert_eq!(
        json(&hub, &["-l", "--json", "--all"]),
        (ids(1..=60), String::new())
    );
    assert_eq!(
        json(&hub, &["-l", "--json", "--limit", "7"]),
        (ids(54..=60), note("53"))
    );
    assert_eq!(
        json(&hub, &["-l", "--json", "--name", "even", "--limit", "2"]),
        (vec![58, 60], note("28"))
    );
}

#[test]
fn limit_takes_a_positive_number_with_l_and_not_all() {
    let hub = Hub::start();
    for (args, says) in [
        (&["-l", "--limit", "0"][..], "must be at least 1"),
        (&["-l", "--limit", "x"], "invalid digit"),
        (&["-l", "--limit", "3", "--all"], "cannot be used with"),
        (&["-f", "1", "--limit", "3"], "--list"),
    ] {
        let out = hub.xn(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // --all still goes with -s (or -l) only.
    let out = hub.xn(&["-f", "1", "--all"]);
    assert_eq!(out.status.code(), Some(255));
}

/// The hub serializes only the newest `last` jobs that match, and says how many matched.
#[test]
fn the_hub_counts_what_matched_in_a_header() {
    let hub = Hub::start();
    queue(&hub, 30);
    let total = |head: &str| -> Option<u64> {
        head.lines()
            .find_map(|l| l.strip_prefix("x-total-count: "))
            .map(|v| v.trim().parse().unwrap())
    };
    let list = |path: &str| {
        let (status, head, body) = hub.get_with_head(path);
        assert_eq!(status, 200, "{path}: {body}");
        let jobs: Vec<execnode::wire::JobRecord> = serde_json::from_str(&body).unwrap();
        (jobs.iter().map(|j| j.id).collect::<Vec<_>>(), total(&head))
    };
    // Without last=, every job, as before; the count beside it.
    assert_eq!(list("/api/v1/jobs"), (ids(1..=30), Some(30)));
    assert_eq!(list("/api/v1/jobs?last=4"), (ids(27..=30), Some(30)));
    assert_eq!(
        list("/api/v1/jobs?name=even&last=2"),
        (vec![28, 30], Some(15))
    );
    assert_eq!(list("/api/v1/jobs?last=100&name=odd").1, Some(15));
    assert_eq!(list("/api/v1/jobs?last=0"), (vec![], Some(30)));
    assert_eq!(list("/api/v1/jobs?state=running&last=5"), (vec![], Some(0)));
    // Only what the token may see is counted: a user sees its own jobs.
    let user = hub.new_token("u", "user");
    let id = xn_as(&hub.url, &user, &["-s", "true"]);
    assert!(id.status.success());
    let req = format!(
        "GET /api/v1/jobs?last=1 HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {user}\r\nConnection: close\r\n\r\n",
        hub.addr
    );
    let (status, head, body) = http_with_head(&hub.addr, req.as_bytes());
    assert_eq!((status, total(&head)), (200, Some(1)), "{body}");
}

/// A filter no job can match is refused, not answered with an empty list that reads as "no
/// such jobs": a group id without its `g` (`--group 2` for g2), a state that does not exist.
/// Both errors say what a right value looks like; the hub says the same to other clients.
#[test]
fn a_group_or_state_that_cannot_match_is_refused_with_what_would() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let g = hub.xn_ok(&["-s", "true", "--all"]).trim().to_string();
    assert_eq!(g, "g1");
    assert_eq!(table(&hub, &["-l", "--group", "g1"]).0.len(), 1);
    for (args, says) in [
        (&["-l", "--group", "1"][..], "--group \"1\": a group id is g and a number, like g3"),
        (&["-l", "--state", "done"], "--state \"done\": a state is one of queued, assigned, running, exited, signaled, failed, cancelled, lost"),
    ] {
        let out = hub.xn(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let (status, body) = hub.get("/api/v1/jobs?state=done");
    assert_eq!(status, 400);
    assert!(body.contains("a state is one of queued,"), "{body}");
    // A filter the hub does not know is refused, not ignored: the answer would be every job,
    // as if it had filtered (`limit` is what xn calls `last`).
    for (q, says) in [
        (
            "limit=1",
            r#"unknown query parameter \"limit\" (for only the newest N jobs: last=N)"#,
        ),
        (
            "stat=running",
            r#"unknown query parameter \"stat\": GET /api/v1/jobs takes state,"#,
        ),
        ("name=x&labels=gpu", r#"unknown query parameter \"labels\""#),
    ] {
        let (status, body) = hub.get(&format!("/api/v1/jobs?{q}"));
        assert_eq!(status, 400, "{q}: {body}");
        assert!(body.contains(says), "{q}: {body}");
    }
}

/// `--slave NAME` is a filter for `-l` as `--name` is (the hub has taken `slave=` all along):
/// which jobs went to a slave, say one that misbehaved.
#[test]
fn the_list_filters_by_slave() {
    let hub = Hub::start();
    let _a = hub.slave("a", 1);
    let _b = hub.slave("b", 1);
    let on_a = hub.submit("true", &["--slave", "a"]);
    let on_b = hub.submit("true", &["--slave", "b"]);
    hub.wait_ended(on_a);
    hub.wait_ended(on_b);
    assert_eq!(table(&hub, &["-l", "--slave", "a"]).0, [on_a]);
    assert_eq!(json(&hub, &["-l", "--json", "--slave", "b"]).0, [on_b]);
    assert!(table(&hub, &["-l", "--slave", "c"]).0.is_empty());
    // Still a job flag without -l.
    let out = hub.xn(&["-f", "1", "--slave", "a"]);
    assert_eq!(out.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&out.stderr).contains("go with -s"));
}

/// A table that comes back empty says why on stderr, with the filters it was asked for, and
/// stays a bare header on stdout; `--json` stays a bare `[]`.
#[test]
fn an_empty_table_says_what_matched_nothing() {
    let hub = Hub::start();
    let (rows, err) = table(&hub, &["-l"]);
    assert!(rows.is_empty());
    assert_eq!(err, "xn: no jobs to list\n");
    queue(&hub, 2);
    let (rows, err) = table(&hub, &["-l", "--owner", "nobody", "--state", "failed"]);
    assert!(rows.is_empty());
    assert_eq!(err, "xn: no job matches --state failed --owner nobody\n");
    let (rows, err) = json(&hub, &["-l", "--json", "--name", "none"]);
    assert!(rows.is_empty());
    assert_eq!(err, "");
}

/// `--name` names a job for -s and filters -l; with any other action it did nothing, silently,
/// where every other job flag is refused.
#[test]
fn a_name_goes_with_submit_or_list_only() {
    let hub = Hub::start();
    let _a = hub.slave("a", 1);
    let id = hub.submit("true", &["--name", "n1"]);
    hub.wait_ended(id);
    assert_eq!(table(&hub, &["-l", "--name", "n1"]).0, [id]);
    for action in [&["-f", "1"][..], &["-k", "1"], &["--slaves"]] {
        let args = [action, &["--name", "n1"]].concat();
        let out = hub.xn(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(
            err.contains("--name") && err.contains("go with -s"),
            "{args:?}: {err}"
        );
    }
}
