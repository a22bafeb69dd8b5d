//! Who may do what in the page: a viewer offered nothing that would change a job, an admin's
//! tokens page, and a revoked token sending the page back to sign in.

use super::{
    assert_no_errors, assert_no_errors_but, shown_job, sign_in, text_of, type_into, wait_lines,
};
use crate::browser::Browser;
use crate::util::{xn_as, Hub, Slave};
use execnode::wire::JobState;

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
             && r.cells[3].textContent === '{id}' && r.cells[5].textContent === 'shared')\
             (document.querySelector('#slave-table tbody tr'))"
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
fn an_admin_binds_a_slave_token_to_a_slave_name_in_the_page() {
    let hub = Hub::start();
    let b = Browser::launch();
    sign_in(&b, &hub, &hub.token);
    b.eval("document.getElementById('tokens-link').click()");
    let shared = "document.querySelector('#token-table tr[data-name=\"slave\"]')";
    b.wait_for("the token list", shared);
    // The shared slave token is shown unbound.
    let cells = |name: &str| {
        b.eval(&format!(
            "[...document.querySelector('#token-table tr[data-name=\"{name}\"]').cells]\
             .map(c => c.textContent).join('|')"
        ))
    };
    assert!(cells("slave").as_str().unwrap().contains("any (unbound)"));
    // The slave name field shows only for slave tokens.
    assert_eq!(
        b.eval("document.getElementById('token-slave-name').hidden"),
        true
    );
    b.eval(
        "const r = document.getElementById('token-role'); r.value = 'slave'; \
         r.dispatchEvent(new Event('change'))",
    );
    assert_eq!(
        b.eval("document.getElementById('token-slave-name').hidden"),
        false
    );
    type_into(&b, "token-slave-name", "box-7");
    type_into(&b, "token-name", "box7-key");
    b.key("Enter", 0);
    b.wait_for(
        "the new token",
        "!document.getElementById('new-token').hidden && \
         document.getElementById('new-token-name').textContent.includes('only as slave box-7')",
    );
    let shown = b.eval("document.getElementById('new-token-value').value");
    let row = "document.querySelector('#token-table tr[data-name=\"box7-key\"]')";
    b.wait_for("the bound token listed", row);
    assert!(cells("box7-key").as_str().unwrap().contains("slave|box-7|"));
    assert!(hub
        .token_command(&["list"])
        .contains("bound to slave box-7"));
    // A slave that serves with it: the admin's slave list names the token, and says bound.
    let _s = Slave::start_with_token(&hub, shown.as_str().unwrap(), "box-7", 1, &[]);
    b.eval("location.hash = '#/'");
    b.wait_for(
        "the bound slave listed",
        "(r => r && r.cells[0].textContent === 'box-7' && r.cells[5].textContent === 'box7-key, bound')\
         (document.querySelector('#slave-table tbody tr'))",
    );
    assert_no_errors(&b);
}

#[test]
fn an_admin_makes_a_token_with_a_lifetime_in_the_page() {
    let hub = Hub::start();
    let b = Browser::launch();
    sign_in(&b, &hub, &hub.token);
    b.eval("document.getElementById('tokens-link').click()");
    let row =
        |name: &str| format!("document.querySelector('#token-table tr[data-name=\"{name}\"]')");
    b.wait_for("the token list", &row("admin"));
    // The Expires column: the first tokens live until revoked.
    let expires = |name: &str| b.eval(&format!("{}.cells[4].textContent", row(name)));
    assert_eq!(expires("admin"), "never");
    // An age the hub does not read: its words, and no token.
    type_into(&b, "token-name", "temp");
    type_into(&b, "token-expires", "2w");
    b.key("Enter", 0);
    b.wait_for(
        "the refusal",
        "document.getElementById('token-error').textContent.includes('the unit is d, h, m or s')",
    );
    assert!(!hub.token_command(&["list"]).contains("temp"));
    // The form keeps what was typed: mend the age.
    b.eval("document.getElementById('token-expires').value = ''");
    type_into(&b, "token-expires", "2h");
    b.key("Enter", 0);
    b.wait_for(
        "the new token, with its expiry",
        "!document.getElementById('new-token').hidden && \
         document.getElementById('new-token-name').textContent.includes(', until ')",
    );
    b.wait_for("the token listed", &row("temp"));
    let shown = expires("temp");
    assert!(
        !["never", ""].contains(&shown.as_str().unwrap())
            && !shown.as_str().unwrap().starts_with("expired"),
        "{shown}"
    );
    let listed = hub.token_command(&["list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("temp ") && l.contains(" expires in ")),
        "{listed}"
    );
    assert_eq!(b.eval("document.getElementById('token-expires').value"), "");
    // Signed in with it, the page says until when.
    let temp = b.eval("document.getElementById('new-token-value').value");
    b.eval("document.getElementById('signout').click()");
    sign_in(&b, &hub, temp.as_str().unwrap());
    let who = text_of(&b, "who");
    assert!(who.starts_with("temp (user, until "), "{who}");
    assert_no_errors_but(&b, &["400 (Bad Request) [http://"]);
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
