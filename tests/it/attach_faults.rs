//! `xn -a` through the hub's faults, from a real terminal: what is typed while the hub is
//! away is not sent and xn says so, and the session carries on when the hub is back.

use crate::term::Term;
use crate::util::*;
use execnode::wire::JobState;

/// Answers each line typed with `got LINE`; the terminal's echo is off, so only answers show.
const ANSWERING: &str = r#"stty -echo; echo ready; while IFS= read -r l; do echo "got $l"; done"#;

/// Whether job `id` is with a connected slave: the hub takes input for it again.
fn on_a_slave(hub: &Hub, id: u64) -> bool {
    let (code, body) = hub.get("/api/v1/slaves");
    code == 200
        && serde_json::from_str::<Vec<serde_json::Value>>(&body)
            .unwrap()
            .iter()
            .any(|s| {
                s["running"]
                    .as_array()
                    .is_some_and(|r| r.contains(&id.into()))
            })
}

#[test]
fn a_key_typed_while_the_hub_is_away_is_reported_as_not_sent() {
    let mut hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let id = hub.submit(ANSWERING, &[]);
    hub.wait_state(id, JobState::Running);
    let mut t = Term::xn(&hub, &["-a", &id.to_string()], 24, 80);
    t.wait_for("ready\r\n");
    t.send(b"one\r");
    t.wait_for("got one\r\n");

    hub.kill();
    t.wait_for("[connection to the hub lost");
    // xn knows the connection is gone: the line must not vanish into it unsaid. (The first
    // write after the hub's FIN succeeds, so only xn's own knowledge can tell.)
    t.send(b"two\r");
    t.wait_for("[not sent: the connection to the hub is down]");

    hub.restart(&[]);
    t.wait_for("[reconnected to");
    wait_until("the job to be with its slave again", || {
        on_a_slave(&hub, id)
    });
    t.send(b"three\r");
    t.wait_for("got three\r\n");
    assert!(!t.text().contains("got two"), "{}", t.text());
    // Said once per lost connection, however many keys are typed while it is down.
    assert_eq!(t.count("[connection to the hub lost"), 1, "{}", t.text());

    t.send(b"\x1dd");
    assert_eq!(t.wait_exit().code(), Some(0));
    t.wait_for("[detached from job");
    assert!(hub.fetch(id).ends_with(b"got one\r\ngot three\r\n"));
}
