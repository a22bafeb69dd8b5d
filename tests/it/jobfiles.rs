//! Jobs described in JSON files: every field does what it says, bad files are refused with
//! their line and column, and thousands of jobs go in one request.

use crate::util::*;
use execnode::wire::JobState;
use serde_json::json;
use std::time::{Duration, Instant};

fn ids(out: &str) -> Vec<u64> {
    out.lines()
        .map(|l| l.parse().unwrap_or_else(|_| panic!("not an id: {l:?}")))
        .collect()
}

#[test]
fn a_job_file_runs_as_described() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 3);
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().canonicalize().unwrap();
    std::fs::write(cwd.join("input.txt"), "from a local file\n").unwrap();
    let file = cwd.join("jobs.json");
    let jobs = json!([
        {
            "argv": ["sh", "-c", "printf '[%s]\\n' \"$@\"; echo \"$GREETING\"; pwd; cat",
                     "sh", "two words", " spaced  out ", "$HOME"],
            "env": {"GREETING": "hello there"},
            "cwd": cwd.to_str().unwrap(),
            "stdin": "line one\nline two\n",
            "tty": false,
            "name": "described"
        },
        {"command": "tr a-z A-Z", "stdin_file": "input.txt", "tty": false},
        {"command": "echo started; sleep 30", "timeout": 1, "tty": false}
    ]);
    std::fs::write(&file, serde_json::to_string_pretty(&jobs).unwrap()).unwrap();
    let out = hub.xn_ok(&["submit", file.to_str().unwrap()]);
    let ids = ids(&out);
    assert_eq!(ids.len(), 3, "{out}");

    let first = hub.wait_ended(ids[0]);
    assert_eq!(first.exit_code, Some(0), "{first:?}");
    assert_eq!(first.spec.name.as_deref(), Some("described"));
    let expected = format!(
        "[two words]\n[ spaced  out ]\n[$HOME]\nhello there\n{}\nline one\nline two\n",
        cwd.display()
    );
    assert_eq!(String::from_utf8_lossy(&hub.fetch(ids[0])), expected);

    hub.wait_ended(ids[1]);
    assert_eq!(hub.fetch(ids[1]), b"FROM A LOCAL FILE\n");

    let timed = hub.wait_ended(ids[2]);
    assert_eq!(timed.state, JobState::Failed);
    assert_eq!(timed.reason.as_deref(), Some("timeout"));
    assert_eq!(hub.fetch(ids[2]), b"started\n");
    let ran = timed.ended_ms.unwrap() - timed.started_ms.unwrap();
    assert!((900..10_000).contains(&ran), "ran {ran} ms");

    // `xn -s --file` is the same as `xn submit`, and takes flags for every job in the file.
    let one = cwd.join("one.json");
    std::fs::write(
        &one,
        r#"{"command": "echo $X-$Y", "env": {"X": "file"}, "tty": false}"#,
    )
    .unwrap();
    let out = hub.xn_ok(&[
        "-s",
        "--file",
        one.to_str().unwrap(),
        "--env",
        "Y=flag",
        "--wait",
    ]);
    assert_eq!(out, "file-flag\n");
}

#[test]
fn waiting_for_several_jobs_puts_a_header_over_each_output() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 3);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jobs.json");
    // Outputs that leave a line open, on stdout and on stderr: each header starts a line.
    let jobs = json!([
        {"command": "printf 'one\\nopen'", "tty": false, "name": "first"},
        {"command": "printf open >&2; echo two; exit 3", "tty": false},
        {"argv": ["echo", "three"], "tty": false, "name": "third"}
    ]);
    std::fs::write(&file, jobs.to_string()).unwrap();
    let out = hub.xn(&["submit", file.to_str().unwrap(), "--wait"]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(3), "{err}");
    let ids: Vec<u64> = hub.jobs().iter().map(|j| j.id).collect();
    let [a, b, c] = ids[..] else {
        panic!("{ids:?}")
    };
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!(
            "==> first (job {a}) <==\none\nopen\n\
             ==> printf open >&2; echo two; exit 3 (job {b}) <==\ntwo\n\
             ==> third (job {c}) <==\nthree\n"
        )
    );
    assert_eq!(err, "open\n");
}

#[test]
fn a_malformed_job_file_reports_line_and_column() {
    let hub = Hub::start();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "{\n  \"command\": \"ls\",\n  \"timeout\": \"soon\"\n}\n",
            ":3:",
            "expected f64",
        ),
        (
            "[\n  {\"command\": \"ls\"},\n  {\"comand\": \"ls\"}\n]\n",
            ":3:",
            "unknown field `comand`, expected one of `command`, `argv`",
        ),
        (
            "{\"command\": \"ls\",\n \"argv\": [\"ls\"]}",
            ":1:1:",
            "either `command` or `argv`, not both",
        ),
        ("[{\"command\": \"ls\"},\n", ":2:", "EOF"),
    ];
    for (text, at, what) in cases {
        let file = dir.path().join("job.json");
        std::fs::write(&file, text).unwrap();
        let out = hub.xn(&["-s", "--file", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(255));
        let err = String::from_utf8_lossy(&out.stderr);
        let prefix = format!("xn: {}{at}", file.display());
        assert!(
            err.starts_with(&prefix),
            "{err:?} should start with {prefix:?}"
        );
        assert!(err.contains(what), "{err:?} should say {what:?}");
    }
    // The hub checks what a file cannot (here, a label with a space) and names the job by its
    // place in all it was sent: xn names the file and the job's place there instead, and for
    // a file of one object, the file alone.
    let good = dir.path().join("good.json");
    std::fs::write(&good, r#"{"command": "ls"}"#).unwrap();
    let lab = dir.path().join("lab.json");
    std::fs::write(
        &lab,
        r#"[{"command": "ls"}, {"command": "ls", "labels": ["a b"]}]"#,
    )
    .unwrap();
    let one = dir.path().join("one.json");
    std::fs::write(&one, r#"{"command": "ls", "labels": ["a b"]}"#).unwrap();
    for (files, named) in [
        (vec![&good, &lab], format!("{}, job 2", lab.display())),
        (vec![&lab], format!("{}, job 2", lab.display())),
        (vec![&good, &one], one.display().to_string()),
    ] {
        let mut args = vec!["submit"];
        args.extend(files.iter().map(|f| f.to_str().unwrap()));
        let out = hub.xn(&args);
        assert_eq!(out.status.code(), Some(255));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with(&format!(
                "xn: submitting the jobs: {named}: label \"a b\" must be"
            )),
            "{err}"
        );
        assert!(!err.contains("of the list"), "{err}");
    }
    // Nothing of a refused file was submitted.
    assert!(hub.jobs().is_empty());
}

/// `-a` attaches to one job: asked of several (a file of two, a broadcast), xn refuses before it
/// submits anything, so that its exit 255 does not leave jobs running behind the user's back.
#[test]
fn attach_to_several_jobs_is_refused_before_anything_is_submitted() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 2);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("two.json");
    std::fs::write(&file, r#"[{"command": "echo a"}, {"command": "echo b"}]"#).unwrap();
    let file = file.to_str().unwrap();
    for (args, says) in [
        (&["-s", "--file", file, "-a"][..], "the files hold 2 jobs"),
        (&["submit", file, "-a"][..], "the files hold 2 jobs"),
        (
            &["-s", "echo x", "--all", "-a"][..],
            "does not go with --all",
        ),
    ] {
        let out = hub.xn(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{args:?}: {err}");
        assert!(
            err.contains("-a attaches to one job") && err.contains(says),
            "{args:?}: {err}"
        );
        assert!(hub.jobs().is_empty(), "{args:?} submitted {:?}", hub.jobs());
    }
}

#[test]
fn five_thousand_jobs_go_in_one_request_and_all_finish() {
    const N: usize = 5000;
    let hub = Hub::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("many.json");
    let jobs: Vec<_> = (0..N)
        .map(|i| json!({"argv": ["echo", format!("job {i}")], "tty": false}))
        .collect();
    std::fs::write(&file, serde_json::to_vec(&jobs).unwrap()).unwrap();
    let started = Instant::now();
    let out = hub.xn_ok(&["submit", file.to_str().unwrap()]);
    let ids = ids(&out);
    assert_eq!(ids.len(), N);
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "ids in order");
    wait_until("one request in the hub's log", || {
        hub.log_contains(&format!("jobs={N}"))
    });

    let _a = hub.slave("a", 16);
    let _b = hub.slave("b", 16);
    // The last job is the last to start; then everything else finishes within moments.
    let last = hub.xn(&["-f", &ids[N - 1].to_string(), "--follow"]);
    assert_eq!(last.status.code(), Some(0));
    assert_eq!(last.stdout, format!("job {}\n", N - 1).as_bytes());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = hub.get("/api/v1/jobs?state=exited");
        let done: Vec<execnode::wire::JobRecord> = serde_json::from_str(&body).unwrap();
        if done.len() == N {
            assert!(done.iter().all(|j| j.exit_code == Some(0)));
            break;
        }
        if Instant::now() > deadline {
            let others: Vec<_> = hub
                .jobs()
                .into_iter()
                .filter(|j| j.state != JobState::Exited)
                .take(10)
                .collect();
            panic!("only {} of {N} jobs exited; others: {others:?}", done.len());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(hub.fetch(ids[1234]), b"job 1234\n");
    eprintln!("{N} jobs submitted and run in {:?}", started.elapsed());
}

#[test]
fn argv_on_the_command_line_runs_exact_words_without_a_shell() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let out = hub.xn(&[
        "-s",
        "--no-tty",
        "--wait",
        "--argv",
        "printf",
        "%s|",
        "a b",
        "$HOME",
        "--not-a-flag",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"a b|$HOME|--not-a-flag|");
    let rec = hub.jobs().pop().unwrap();
    assert_eq!(
        rec.spec.argv.as_deref(),
        Some(
            &[
                "printf".to_string(),
                "%s|".into(),
                "a b".into(),
                "$HOME".into(),
                "--not-a-flag".into()
            ][..]
        )
    );
    let bad = hub.xn(&["-s", "ls", "--argv", "ls"]);
    assert_eq!(bad.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--argv goes with -s"));
}

#[test]
fn a_job_that_cannot_start_says_what_was_missing() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let file = file.to_str().unwrap();
    let script = dir.path().join("script");
    std::fs::write(&script, "#!/nonexistent/interpreter\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let script = script.to_str().unwrap();
    for (args, reason) in [
        (
            vec!["-s", "true", "--cwd", "/nonexistent/dir"],
            "cannot start job: working directory /nonexistent/dir: No such file or directory"
                .to_string(),
        ),
        (
            vec!["-s", "true", "--cwd", file],
            format!("cannot start job: working directory {file} is not a directory"),
        ),
        (
            vec!["-s", "--argv", "no-such-program-xn"],
            r#"cannot start job: program "no-such-program-xn" not found"#.to_string(),
        ),
        (
            vec!["-s", "--argv", script],
            format!("cannot start job: {script:?} exists, but its interpreter (#!) or loader was not found"),
        ),
    ] {
        let id: u64 = hub.xn_ok(&args).trim().parse().unwrap();
        let rec = hub.wait_ended(id);
        assert_eq!(rec.state, JobState::Failed, "{args:?}");
        let got = rec.reason.unwrap_or_default();
        assert!(got.starts_with(&reason), "{args:?}: {got}");
    }
}

/// A request is held to the spec's fields as strictly as a file: the web page's JSON box and
/// other clients send specs as they are written, and a field the hub ignored (a typo, or a job
/// file's `slave` and `stdin_file`, which a request calls otherwise) would run a job other than
/// the one asked for: on any slave, without its input, without its timeout.
#[test]
fn a_submitted_spec_with_a_field_no_job_has_is_refused() {
    let hub = Hub::start();
    let cases = [
        (
            "/api/v1/jobs",
            r#"{"command":"true","lables":["gpu"]}"#,
            "unknown field `lables`",
        ),
        (
            "/api/v1/jobs",
            r#"{"command":"true","slave":"s1"}"#,
            "with `on_slave`",
        ),
        (
            "/api/v1/jobs",
            r#"[{"command":"true"},{"command":"wc","stdin_file":"in.txt"}]"#,
            "job 2 of the list: unknown field `stdin_file`",
        ),
        (
            "/api/v1/broadcast",
            r#"{"command":"true","timout":5}"#,
            "unknown field `timout`",
        ),
    ];
    for (path, body, says) in cases {
        let (status, answer) = hub.post(path, body);
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer.contains(says), "{body}: {answer}");
        assert!(
            answer.contains("`on_slave`, `timeout`"),
            "lists the fields: {answer}"
        );
    }
    assert!(hub.jobs().is_empty(), "nothing was submitted");
    // Every field a spec has is taken.
    let (status, answer) = hub.post(
        "/api/v1/jobs",
        r#"{"command":"true","env":{"A":"1"},"cwd":"/","tty":false,"rows":3,"cols":4,
            "stdin":"x","labels":["a"],"on_slave":"s1","timeout":9,"retries":1,
            "retries_on_failure":true,"name":"n","slots":1}"#,
    );
    assert_eq!(status, 201, "{answer}");
}
