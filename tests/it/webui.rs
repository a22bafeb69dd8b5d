//! The web interface in a real browser (headless Chromium): signing in, running a shell and
//! typing into it, watching as a viewer, a pipe job's stdin, redialling a restarted hub, a
//! revoked token, an admin's audit view, and the terminal emulator (tests/web/screen_cases.js)
//! on what programs print.
//!
//! This file has the helpers the tests share; the tests are in `webui/`, by what they exercise:
//! the terminal, submitting and handling jobs, who may do what, and the audit view.

mod access;
mod audit;
mod jobs;
mod terminal;

use crate::browser::Browser;
use crate::util::Hub;
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
