//! The web interface in a real browser (headless Chromium): signing in, running a shell and
//! typing into it, watching as a viewer, a pipe job's stdin, redialling a restarted hub, a
//! revoked token, and the terminal emulator (tests/web/screen_cases.js) on what programs print.

use crate::browser::{Browser, CTRL};
use crate::util::{xn_as, Hub};
use execnode::wire::JobState;
use serde_json::Value;

/// Opens the page and signs in with `token`; returns once the page shows who signed in.
fn sign_in(b: &Browser, hub: &Hub, token: &str) {
    b.goto(&hub.url);
    b.wait_for(
        "the sign-in form",
        "!document.getElementById('signin').hidden",
    );
    type_into(b, "token", token);
    b.key("Enter", 0);
    b.wait_for(
        "the page to sign in",
        "document.getElementById('who').textContent",
    );
}

/// Focuses the element of id `id` and types `text` into it.
fn type_into(b: &Browser, id: &str, text: &str) {
    b.eval(&format!("document.getElementById('{id}').focus()"));
    b.insert_text(text);
}

fn text_of(b: &Browser, id: &str) -> String {
    let v = b.eval(&format!("document.getElementById('{id}').innerText"));
    v.as_str().unwrap_or_default().to_string()
}

/// Focuses the terminal's input and types a line into the job.
fn type_line(b: &Browser, line: &str) {
    b.eval("document.querySelector('#terminal textarea').focus()");
    b.insert_text(line);
    b.key("Enter", 0);
}

/// Waits until the terminal shows at least `n` lines that are exactly `line`.
fn wait_lines(b: &Browser, line: &str, n: usize) {
    let js = format!(
        "document.getElementById('terminal').innerText.split('\\n')\
         .filter(l => l.trimEnd() === {}).length >= {n}",
        Value::from(line)
    );
    b.wait_for(&format!("{n} lines {line:?} in the terminal"), &js);
}

/// The id of the job the page shows.
fn shown_job(b: &Browser) -> u64 {
    let hash = b.wait_for(
        "a job view",
        "location.hash.startsWith('#/job/') && location.hash",
    );
    hash.as_str().unwrap()["#/job/".len()..].parse().unwrap()
}

/// Nothing went wrong in the page: no exception, no console error, no refused load, no
/// Content-Security-Policy violation. The one expected refusal is the page asking the hub who
/// it is before it has a token (the browser logs that 401 as a failed load).
fn assert_no_errors(b: &Browser) {
    assert_no_errors_but(b, &[]);
}

/// As `assert_no_errors`, allowing errors that contain one of `expected`.
fn assert_no_errors_but(b: &Browser, expected: &[&str]) {
    let errors: Vec<String> = b
        .errors()
        .into_iter()
        .filter(|e| !(e.contains("401 (Unauthorized)") && e.ends_with("/api/v1/whoami]")))
        .filter(|e| !expected.iter().any(|x| e.contains(x)))
        .collect();
    assert!(errors.is_empty(), "the page reported errors: {errors:#?}");
}

#[test]
fn a_user_signs_in_runs_a_shell_types_into_it_and_comes_back() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 2);
    let alice = hub.new_token("alice", "user");
    let b = Browser::launch();
    b.goto(&hub.url);
    b.wait_for(
        "the sign-in form",
        "!document.getElementById('signin').hidden",
    );
    // A wrong token is refused in the hub's words.
    type_into(&b, "token", &format!("xn_{}", "0".repeat(64)));
    b.key("Enter", 0);
    b.wait_for(
        "the refusal",
        "document.getElementById('signin-error').textContent.includes('not valid')",
    );
    sign_in(&b, &hub, &alice);
    assert_eq!(text_of(&b, "who"), "alice (user)");

    type_into(&b, "command", "PS1='web$ ' exec bash --norc --noprofile");
    b.key("Enter", 0);
    let id = shown_job(&b);
    b.wait_for(
        "the prompt",
        "document.getElementById('terminal').innerText.includes('web$')",
    );
    type_line(&b, "echo $((6*7))");
    wait_lines(&b, "42", 1);
    // History through the arrow key, then Ctrl-C through the terminal's line discipline.
    b.key("ArrowUp", 0);
    b.key("Enter", 0);
    wait_lines(&b, "42", 2);
    // Ctrl-C once the sleep runs: typed before, it would interrupt the shell's line editor
    // and leave the sleep to run.
    type_line(&b, "echo sleeping; sleep 300");
    wait_lines(&b, "sleeping", 1);
    b.key("c", CTRL);
    type_line(&b, "echo after");
    wait_lines(&b, "after", 1);

    // The job's terminal takes the page's size, and follows the window when it shrinks.
    type_line(&b, "stty size");
    let size = |b: &Browser| -> (u32, u32) {
        let text = text_of(b, "terminal");
        let line = text
            .lines()
            .rev()
            .find(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w.len() == 2 && w.iter().all(|n| n.parse::<u32>().is_ok())
            })
            .unwrap_or_default()
            .to_string();
        let mut w = line.split_whitespace().map(|n| n.parse().unwrap_or(0));
        (w.next().unwrap_or(0), w.next().unwrap_or(0))
    };
    b.wait_for(
        "stty's answer",
        "/^\\d+ \\d+$/m.test(document.getElementById('terminal').innerText)",
    );
    let (rows, cols) = size(&b);
    assert!(rows > 10 && cols > 80, "{rows} {cols}");
    b.call(
        "Emulation.setDeviceMetricsOverride",
        serde_json::json!({"width": 600, "height": 500, "deviceScaleFactor": 1, "mobile": false}),
    );
    // The page sends its new size as it redraws its rows for it.
    b.wait_for(
        "the page's terminal to shrink",
        &format!("document.querySelectorAll('#terminal .xt-screen .xt-row').length < {rows}"),
    );
    b.eval("document.querySelector('#terminal textarea').focus()");
    b.insert_text("clear; stty size");
    b.key("Enter", 0);
    b.wait_for(
        "a smaller terminal",
        &format!(
            "(m => m && Number(m[2]) < {cols})(document.getElementById('terminal').innerText.match(/^(\\d+) (\\d+)$/m))"
        ),
    );

    // Away to the list: the job is running there; back: everything it printed is shown.
    b.eval("location.hash = '#/'");
    b.wait_for(
        "the job running in the list",
        &format!("document.querySelector('#job-table tr[data-id=\"{id}\"] .state')?.textContent === 'running'"),
    );
    b.eval(&format!("location.hash = '#/job/{id}'"));
    b.wait_for(
        "the replayed screen",
        "document.getElementById('terminal').innerText.includes('web$')",
    );
    type_line(&b, "exit 3");
    b.wait_for(
        "the end",
        "document.getElementById('job-status').textContent.includes('the job ended: exited (3)')",
    );
    let rec = hub.wait_ended(id);
    assert_eq!(
        (rec.exit_code, rec.owner.as_deref()),
        (Some(3), Some("alice"))
    );
    let out = String::from_utf8_lossy(&hub.fetch(id)).to_string();
    assert_eq!(out.matches("42\r\n").count(), 2, "{out}");
    assert!(out.contains("^C"), "{out}");
    assert_no_errors(&b);
}

#[test]
fn a_viewer_watches_a_job_but_is_offered_nothing_that_would_change_it() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let id = hub.submit("echo ready; exec cat", &[]);
    let viewer = hub.new_token("watch", "viewer");
    let b = Browser::launch();
    sign_in(&b, &hub, &viewer);
    assert_eq!(text_of(&b, "who"), "watch (viewer)");
    assert_eq!(
        b.eval("document.getElementById('submit-form').hidden"),
        true
    );
    b.wait_for(
        "the job in the list",
        &format!("document.querySelector('#job-table tr[data-id=\"{id}\"]')"),
    );
    // The slaves, with the job each runs.
    b.wait_for(
        "the slave and its job",
        &format!(
            "(r => r && r.cells[0].textContent === 's1' && r.cells[1].textContent === 'ready' \
             && r.cells[3].textContent === '{id}')(document.querySelector('#slave-table tbody tr'))"
        ),
    );
    b.eval(&format!(
        "document.querySelector('#job-table tr[data-id=\"{id}\"] td.command').click()"
    ));
    assert_eq!(shown_job(&b), id);
    wait_lines(&b, "ready", 1);
    for button in ["job-cancel", "job-eof", "job-delete"] {
        let disabled = b.eval(&format!("document.getElementById('{button}').disabled"));
        assert_eq!(disabled, true, "{button}");
    }
    // Cancelled by an admin elsewhere: the page sees it live.
    let (status, body) = hub.post(&format!("/api/v1/jobs/{id}/cancel"), "");
    assert_eq!(status, 200, "{body}");
    b.wait_for(
        "the cancellation",
        "document.getElementById('job-state').textContent.startsWith('cancelled')",
    );
    // Signing out forgets the token.
    b.eval("document.getElementById('signout').click()");
    b.wait_for(
        "the sign-in form",
        "!document.getElementById('signin').hidden",
    );
    let stored = b.eval("sessionStorage.length + localStorage.length");
    assert_eq!(stored, 0);
    assert_no_errors(&b);
}

#[test]
fn a_pipe_job_takes_lines_and_downloads_then_jobs_are_deleted_and_terminated() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let b = Browser::launch();
    sign_in(&b, &hub, &hub.token);
    b.eval("document.getElementById('tty').click()");
    type_into(
        &b,
        "command",
        "while read l; do echo \"$l\" | tr a-z A-Z; done; echo done >&2",
    );
    b.key("Enter", 0);
    let id = shown_job(&b);
    b.wait_for(
        "the stdin form",
        "!document.getElementById('stdin-form').hidden && !document.getElementById('job-eof').disabled",
    );
    type_into(&b, "stdin-line", "hello web");
    b.key("Enter", 0);
    wait_lines(&b, "HELLO WEB", 1);
    b.eval("document.getElementById('job-eof').click()");
    b.wait_for(
        "the end",
        "document.getElementById('job-status').textContent.includes('the job ended: exited (0)')",
    );
    wait_lines(&b, "done", 1);
    assert_eq!(hub.fetch(id), b"HELLO WEB\n");
    // Downloads carry the token the page holds (a plain link could not).
    let downloads = tempfile::tempdir().unwrap();
    b.download_to(downloads.path());
    b.eval("document.getElementById('job-stdout').click()");
    b.eval("document.getElementById('job-stderr').click()");
    let file = |name: &str| std::fs::read(downloads.path().join(name)).unwrap_or_default();
    crate::util::wait_until("both downloads", || {
        file(&format!("job-{id}.stdout")) == b"HELLO WEB\n"
            && file(&format!("job-{id}.stderr")) == b"done\n"
    });
    b.eval("document.getElementById('job-delete').click()");
    b.wait_for("the list", "location.hash === '#/'");
    let (status, _) = hub.get(&format!("/api/v1/jobs/{id}"));
    assert_eq!(status, 404);
    // Terminate, on a job that would otherwise run for ten minutes.
    type_into(&b, "command", "echo up; sleep 600");
    b.key("Enter", 0);
    let id = shown_job(&b);
    b.wait_for(
        "a running job",
        "!document.getElementById('job-cancel').disabled",
    );
    b.eval("document.getElementById('job-cancel').click()");
    b.wait_for(
        "the job cancelled",
        "document.getElementById('job-state').textContent.startsWith('cancelled')",
    );
    assert_eq!(hub.wait_ended(id).state, JobState::Cancelled);
    assert_no_errors(&b);
}

#[test]
fn the_page_dials_a_restarted_hub_again_and_loses_nothing() {
    let mut hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let b = Browser::launch();
    sign_in(&b, &hub, &hub.token);
    let id = hub.submit(
        "for i in $(seq 1 60); do echo line$i; sleep 0.05; done; read x; echo got $x",
        &[],
    );
    b.eval(&format!("location.hash = '#/job/{id}'"));
    wait_lines(&b, "line5", 1);
    hub.kill();
    hub.restart(&[]);
    wait_lines(&b, "line60", 1);
    type_line(&b, "back");
    wait_lines(&b, "got back", 1);
    let text = text_of(&b, "terminal");
    for i in 1..=60 {
        let n = text.lines().filter(|l| *l == format!("line{i}")).count();
        assert_eq!(n, 1, "line{i} shown {n} times:\n{text}");
    }
    // The browser logs the refused connections while the hub was down; nothing else.
    assert_no_errors_but(&b, &["ERR_CONNECTION_REFUSED", "WebSocket connection to"]);
}

#[test]
fn an_admin_makes_and_revokes_tokens_in_the_page() {
    let hub = Hub::start();
    let b = Browser::launch();
    sign_in(&b, &hub, &hub.token);
    b.eval("document.getElementById('tokens-link').click()");
    b.wait_for(
        "the token list",
        "document.querySelector('#token-table tr[data-name=\"admin\"]')",
    );
    type_into(&b, "token-name", "alice");
    b.key("Enter", 0);
    let shown = b.wait_for(
        "the new token",
        "!document.getElementById('new-token').hidden && document.getElementById('new-token-value').value",
    );
    let alice = shown.as_str().unwrap().to_string();
    let out = xn_as(&hub.url, &alice, &["-l"]);
    assert!(out.status.success(), "the token works");
    assert!(hub.token_command(&["list"]).contains("alice"));
    // A name that is taken: the hub's words.
    type_into(&b, "token-name", "alice");
    b.key("Enter", 0);
    b.wait_for(
        "the refusal",
        "document.getElementById('token-error').textContent.includes('exists already')",
    );
    // Revoking asks again in the button first.
    let revoke = "document.querySelector('#token-table tr[data-name=\"alice\"] button')";
    b.eval(&format!("{revoke}.click()"));
    assert_eq!(b.eval(&format!("{revoke}.textContent")), "Revoke alice?");
    b.eval(&format!("{revoke}.click()"));
    b.wait_for("alice gone from the list", &format!("!{revoke}"));
    assert_eq!(xn_as(&hub.url, &alice, &["-l"]).status.code(), Some(255));
    // Not an admin: no tokens page.
    b.eval("document.getElementById('signout').click()");
    let bob = hub.new_token("bob", "user");
    sign_in(&b, &hub, &bob);
    assert_eq!(
        b.eval("document.getElementById('tokens-link').hidden"),
        true
    );
    b.eval("location.hash = '#/tokens'");
    b.wait_for(
        "the job list instead",
        "!document.getElementById('jobs').hidden",
    );
    // The taken name's 400, which the browser logs as a failed load.
    assert_no_errors_but(&b, &["400 (Bad Request) [http://"]);
}

#[test]
fn job_specs_in_json_are_submitted_as_they_are() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 2);
    let b = Browser::launch();
    sign_in(&b, &hub, &hub.token);
    b.eval("document.querySelector('#spec-box summary').click()");
    let submit = |json: &str| {
        b.eval("document.getElementById('spec').value = ''");
        type_into(&b, "spec", json);
        b.eval("document.querySelector('#spec-form button').click()");
    };
    // Not JSON, and JSON the hub refuses: the reason, and nothing submitted.
    submit(r#"{"command": "#);
    b.wait_for(
        "the parse error",
        "document.getElementById('spec-error').textContent.startsWith('not JSON')",
    );
    submit(r#"{"command": "true", "timeout": -1}"#);
    b.wait_for(
        "the hub's refusal",
        "document.getElementById('spec-error').textContent.includes('timeout')",
    );
    assert!(hub.jobs().is_empty());
    // Several: they stay in the list.
    submit(r#"[{"command": "echo one", "tty": false}, {"command": "echo two", "name": "second"}]"#);
    b.wait_for(
        "both",
        "document.getElementById('spec-done').textContent === 'submitted jobs 1, 2'",
    );
    assert_eq!(hub.job(2).spec.name.as_deref(), Some("second"));
    // One: its view opens.
    submit(r#"{"command": "echo $GREETING", "env": {"GREETING": "hi from json"}}"#);
    assert_eq!(shown_job(&b), 3);
    wait_lines(&b, "hi from json", 1);
    // The hub's 400 for the refused spec, logged by the browser as a failed load.
    assert_no_errors_but(&b, &["400 (Bad Request) [http://"]);
}

#[test]
fn a_line_runs_on_every_slave_as_one_group() {
    let hub = Hub::start();
    let _a = hub.slave("s1", 1);
    let _b = hub.slave("s2", 1);
    let b = Browser::launch();
    sign_in(&b, &hub, &hub.token);
    b.eval("document.getElementById('every').click()");
    // No slave has the label: the hub's words, and nothing submitted.
    type_into(&b, "labels", "gpu");
    type_into(&b, "command", "hostname");
    b.key("Enter", 0);
    b.wait_for(
        "the refusal",
        "document.getElementById('submit-error').textContent.includes('nothing to broadcast to')",
    );
    assert!(hub.jobs().is_empty());
    b.eval("document.getElementById('labels').value = ''");
    b.key("Enter", 0);
    let done = b.wait_for(
        "the group",
        "document.getElementById('submit-done').textContent",
    );
    assert_eq!(done, "group g1: jobs 1, 2");
    // One job per slave, both listed, each naming its group in its view.
    let mut slaves: Vec<String> = (1..=2)
        .map(|id| hub.wait_ended(id).slave.unwrap())
        .collect();
    slaves.sort();
    assert_eq!(slaves, ["s1", "s2"]);
    b.wait_for(
        "both in the list",
        "document.querySelectorAll('#job-table tr[data-id]').length === 2",
    );
    b.eval("location.hash = '#/job/2'");
    b.wait_for(
        "the group in the job's header",
        "document.getElementById('job-info').textContent.includes('group g1')",
    );
    // The browser logs the refusal (a 409) as a failed load.
    assert_no_errors_but(&b, &["409 (Conflict) [http://"]);
}

#[test]
fn a_big_output_opens_at_its_end() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    // 2 MB of NUL bytes between two words: a terminal draws nothing for NUL.
    let id = hub.submit(
        "printf 'FIRST\\n'; head -c 2000000 /dev/zero; printf '\\nEND\\n'",
        &["--no-tty"],
    );
    hub.wait_ended(id);
    let b = Browser::launch();
    sign_in(&b, &hub, &hub.token);
    b.eval(&format!("location.hash = '#/job/{id}'"));
    wait_lines(&b, "END", 1);
    let text = text_of(&b, "terminal");
    assert!(
        !text.contains("FIRST"),
        "the page read the whole output:\n{text}"
    );
    let note = text_of(&b, "job-skipped");
    assert!(note.contains("0.5 MiB of 1.9 MiB"), "{note}");
    assert_no_errors(&b);
}

#[test]
fn a_revoked_token_sends_the_page_back_to_sign_in() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let bob = hub.new_token("bob", "user");
    let b = Browser::launch();
    sign_in(&b, &hub, &bob);
    // Revoked while the page lists jobs: the next refresh is refused.
    b.wait_for("the list", "!document.getElementById('jobs').hidden");
    hub.token_command(&["revoke", "bob"]);
    let signed_out = "!document.getElementById('signin').hidden && \
         document.getElementById('signin-error').textContent.includes('not valid')";
    b.wait_for("the sign-in form again", signed_out);
    assert_eq!(b.eval("sessionStorage.length"), 0);
    // Revoked while the page is attached to a job: the hub closes the stream.
    let carol = hub.new_token("carol", "user");
    sign_in(&b, &hub, &carol);
    type_into(&b, "command", "echo up; sleep 600");
    b.key("Enter", 0);
    let id = shown_job(&b);
    wait_lines(&b, "up", 1);
    hub.token_command(&["revoke", "carol"]);
    b.wait_for("the sign-in form after the stream", signed_out);
    assert_eq!(
        hub.job(id).state,
        JobState::Running,
        "the job itself goes on"
    );
}

#[test]
fn the_terminal_draws_what_full_screen_programs_print() {
    let hub = Hub::start();
    let b = Browser::launch();
    b.goto(&hub.url);
    let failures = b.eval(include_str!("../web/screen_cases.js"));
    assert_eq!(
        failures,
        serde_json::json!([]),
        "the emulator's cases that failed"
    );
    // The page the cases ran in is the real one, under its Content-Security-Policy.
    assert_no_errors(&b);
}
