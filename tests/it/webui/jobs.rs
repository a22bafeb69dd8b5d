//! Jobs from the page: a pipe job's stdin, downloads, deleting and terminating; specs in JSON;
//! a line broadcast to every slave; the list of the newest jobs, counting the rest.

use super::{assert_no_errors, assert_no_errors_but, shown_job, sign_in, type_into, wait_lines};
use crate::browser::Browser;
use crate::util::Hub;
use execnode::wire::JobState;

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
    // The cancel's answer is held back until the job has ended: it is then older than the
    // end the stream already showed, and must not put the job back to running (1 run in 10
    // under load lost that race by itself).
    // `cancelShown` is set once the page has done with the answer (a task after the one that
    // read it).
    b.eval(
        "{ const f = window.fetch; window.fetch = async (...a) => { const r = await f(...a); \
         if (!String(a[0]).includes('/cancel')) return r; \
         await new Promise(ok => setTimeout(ok, 1000)); const json = r.json.bind(r); \
         r.json = async () => { const v = await json(); \
         setTimeout(() => { window.cancelShown = true; }); return v; }; return r; }; }",
    );
    b.eval("document.getElementById('job-cancel').click()");
    b.wait_for(
        "the end on the stream",
        "document.getElementById('job-status').textContent.includes('the job ended')",
    );
    b.wait_for("the cancel's answer", "window.cancelShown");
    b.wait_for(
        "the job cancelled",
        "document.getElementById('job-state').textContent.startsWith('cancelled')",
    );
    assert_eq!(hub.wait_ended(id).state, JobState::Cancelled);
    assert_no_errors(&b);
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
fn the_list_shows_the_newest_jobs_and_counts_all_that_match() {
    let hub = Hub::start();
    // No slave: all stay queued.
    let specs: Vec<String> = (1..=1203)
        .map(|i| format!(r#"{{"command":"echo {i}"}}"#))
        .collect();
    let (status, body) = hub.post("/api/v1/jobs", &format!("[{}]", specs.join(",")));
    assert_eq!(status, 201, "{body}");
    let b = Browser::launch();
    sign_in(&b, &hub, &hub.token);
    b.wait_for(
        "the count",
        "document.getElementById('job-count').textContent === \
         'the newest 200 of 1,203 jobs (xn -l --all lists them all)'",
    );
    let rows = b.eval(
        "[...document.querySelectorAll('#job-table tr[data-id]')].map(r => Number(r.dataset.id))",
    );
    let rows: Vec<u64> = serde_json::from_value(rows).unwrap();
    assert_eq!(rows, (1004..=1203).rev().collect::<Vec<u64>>());
    // The state filter still goes to the hub, and the count with it.
    b.eval(
        "(s => { s.value = 'exited'; s.dispatchEvent(new Event('change')); })\
         (document.getElementById('state-filter'))",
    );
    b.wait_for(
        "the filtered count",
        "document.getElementById('job-count').textContent === '0 jobs'",
    );
    assert_no_errors(&b);
}
