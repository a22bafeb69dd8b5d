//! The audit view: an admin reads the rows of what was just done, refusals with their count,
//! a page at a time, written as text whatever a client put in them; anyone else gets no view.

use super::{assert_no_errors, sign_in};
use crate::browser::Browser;
use crate::util::{request, xn_as, Hub};
use execnode::wire::{AuditAction, AuditEntry, JobState};
use serde_json::Value;

/// Rows the view shows at a time (`PAGE` in audit.js).
const PAGE: usize = 100;

/// What a refused client asked for first: a path that HTML would read as markup (`<` and `>`
/// are no part of a path the hub takes, but `&` and `;` are).
const MARKUP: &str = "/api/v1/&lt;b&gt;bold&amp;";

/// The ids of the rows the view shows, top to bottom.
fn shown_ids(b: &Browser) -> Vec<u64> {
    let ids = b.eval(
        "[...document.querySelectorAll('#audit-table tbody tr[data-id]')]\
         .map(r => Number(r.dataset.id))",
    );
    serde_json::from_value(ids).unwrap()
}

/// The text of each cell of the row of id `id`: time, actor, action, target, peer, detail,
/// count.
fn cells(b: &Browser, id: u64) -> Vec<String> {
    let cells = b.eval(&format!(
        "[...document.querySelector('#audit-table tr[data-id=\"{id}\"]').cells]\
         .map(c => c.textContent)"
    ));
    serde_json::from_value(cells).unwrap()
}

/// Waits until the view's top row is `id`.
fn wait_top(b: &Browser, what: &str, id: u64) {
    b.wait_for(
        what,
        &format!(
            "(r => r && r.dataset.id === '{id}')\
             (document.querySelector('#audit-table tbody tr'))"
        ),
    );
}

#[test]
fn an_admin_reads_the_audit_log_in_the_page_a_page_at_a_time() {
    let mut hub = Hub::start();
    // More rows than a page: tokens the admin makes over REST.
    for n in 0..PAGE + 5 {
        let body = format!(r#"{{"name":"bulk-{n}","role":"viewer"}}"#);
        let (status, body) = hub.post("/api/v1/tokens", &body);
        assert_eq!(status, 201, "{body}");
    }
    // alice's token, made over REST; she cancels a job of hers that waits for a slave.
    let (status, body) = hub.post("/api/v1/tokens", r#"{"name":"alice","role":"user"}"#);
    assert_eq!(status, 201, "{body}");
    let made: Value = serde_json::from_str(&body).unwrap();
    let alice = made["token"].as_str().unwrap();
    let out = xn_as(&hub.url, alice, &["-s", "true", "--on", "gpu"]);
    let job: u64 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(xn_as(&hub.url, alice, &["-k", &job.to_string()])
        .status
        .success());
    hub.wait_state(job, JobState::Cancelled);
    // A wrong token, first for a path that looks like markup, then four times more: a row at
    // once, and one with the count that the hub writes when it stops (or a minute later).
    for path in [MARKUP].into_iter().chain(["/api/v1/jobs"; 4]) {
        let (status, body) = request(&hub.addr, "GET", path, "xn_wrong", "");
        assert_eq!(status, 401, "{path}: {body}");
    }
    hub.stop();
    hub.restart(&[]);
    // What the page must show, as the API answers it.
    let (status, body) = hub.get("/api/v1/audit?limit=1000");
    assert_eq!(status, 200, "{body}");
    let rows: Vec<AuditEntry> = serde_json::from_str(&body).unwrap();
    assert!(rows.len() > PAGE && rows.len() < 2 * PAGE, "{}", rows.len());
    let row = |action: AuditAction, f: &dyn Fn(&AuditEntry) -> bool| -> u64 {
        rows.iter()
            .find(|r| r.action == action && f(r))
            .unwrap_or_else(|| panic!("no such {action:?} row: {rows:#?}"))
            .id
    };

    let b = Browser::launch();
    sign_in(&b, &hub, &hub.token);
    assert_eq!(
        b.eval("document.getElementById('audit-link').hidden"),
        false
    );
    b.eval("document.getElementById('audit-link').click()");
    wait_top(&b, "the newest rows", rows[0].id);
    let ids: Vec<u64> = rows.iter().map(|r| r.id).collect();
    assert_eq!(shown_ids(&b), ids[..PAGE]);
    assert_eq!(
        b.eval("document.getElementById('audit-count').textContent"),
        "the newest 100 rows"
    );

    // Who did what, in words; times in the browser's own zone and format.
    let created = row(AuditAction::TokenCreated, &|r| r.target == "alice");
    let c = cells(&b, created);
    assert_eq!(c[1..4], ["admin", "token created", "alice"], "{c:?}");
    assert!(c[4].starts_with("127.0.0.1:"), "{c:?}");
    assert_eq!(c[6], "", "a count of one is not shown");
    let when = rows.iter().find(|r| r.id == created).unwrap().time_ms;
    assert_eq!(
        b.eval(&format!("new Date({when}).toLocaleString()")),
        c[0].as_str()
    );
    let target = format!("job {job}");
    let cancelled = row(AuditAction::JobCancelled, &|r| r.target == target);
    let c = cells(&b, cancelled);
    assert_eq!(
        c[1..4],
        ["alice", "job cancelled", target.as_str()],
        "{c:?}"
    );
    assert_eq!(c[5], "owner alice, was queued");

    // The refusals: the first as its client asked, character for character (not parsed as
    // HTML, which would turn `&lt;` into `<`), then the count.
    let first = row(AuditAction::Refused, &|r| r.count == 1);
    let c = cells(&b, first);
    let markup = format!("GET {MARKUP}");
    assert_eq!(
        c[1..5],
        ["(unknown)", "refused", markup.as_str(), "127.0.0.1"],
        "{c:?}"
    );
    let counted = row(AuditAction::Refused, &|r| r.count > 1);
    let c = cells(&b, counted);
    assert_eq!(
        c[1..5],
        ["(unknown)", "refused", "GET /api/v1/jobs", "127.0.0.1"],
        "{c:?}"
    );
    assert!(c[5].starts_with("4 more refused"), "{c:?}");
    assert_eq!(c[6], "×4");

    // Older rows: the rest, which are the last (the button says so), then the newest again.
    b.eval("document.getElementById('audit-older').click()");
    wait_top(&b, "the older rows", ids[PAGE]);
    assert_eq!(shown_ids(&b), ids[PAGE..]);
    let oldest = cells(&b, *ids.last().unwrap());
    assert_eq!(
        oldest[1..4],
        ["(hub)", "token created", "admin"],
        "{oldest:?}"
    );
    assert_eq!(oldest[4], "", "no request, no peer");
    assert_eq!(
        b.eval("document.getElementById('audit-older').disabled"),
        true
    );
    b.eval("document.getElementById('audit-newest').click()");
    wait_top(&b, "the newest rows again", rows[0].id);
    assert_eq!(
        b.eval("document.getElementById('audit-older').disabled"),
        false
    );

    // Opening the view reads it afresh.
    let (status, body) = request(&hub.addr, "DELETE", "/api/v1/tokens/alice", &hub.token, "");
    assert_eq!(status, 200, "{body}");
    b.eval("location.hash = '#/'");
    b.wait_for("the job list", "!document.getElementById('jobs').hidden");
    b.eval("document.getElementById('audit-link').click()");
    b.wait_for(
        "alice's revocation on top",
        "(r => r && r.dataset.action === 'token_revoked' && r.cells[3].textContent === 'alice')\
         (document.querySelector('#audit-table tbody tr'))",
    );
    assert_no_errors(&b);
}

#[test]
fn only_an_admin_is_offered_the_audit_view() {
    let hub = Hub::start();
    let bob = hub.new_token("bob", "user");
    let b = Browser::launch();
    sign_in(&b, &hub, &bob);
    assert_eq!(b.eval("document.getElementById('audit-link').hidden"), true);
    // Asked for by its address, the page stays on the job list and never asks the hub for the
    // log (a refused request would be logged by the browser as a failed load).
    b.wait_for("the job list", "!document.getElementById('jobs').hidden");
    // The page's own listener came first: when this one runs, the page has routed.
    b.eval(
        "new Promise(done => { \
           addEventListener('hashchange', () => done(), { once: true }); \
           location.hash = '#/audit'; })",
    );
    assert_eq!(b.eval("document.getElementById('audit').hidden"), true);
    assert_eq!(b.eval("document.getElementById('jobs').hidden"), false);
    assert_no_errors(&b);
}
