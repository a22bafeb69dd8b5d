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

/// Answers each line typed with the line and the terminal's size (`LINE ROWS COLS`).
const SIZES: &str =
    r#"stty -echo; echo ready; while IFS= read -r l; do echo "$l $(stty size)"; done"#;

/// The size in force follows the client that types (`attach::the_last_client_to_type_sets_the_size`),
/// and a client that reconnected after a hub restart still brings its own back: the new
/// connection tells the hub its size again, as the first one did.
#[test]
fn a_client_that_reconnects_still_brings_its_terminal_size_back() {
    let mut hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let id = hub.submit(SIZES, &[]);
    hub.wait_state(id, JobState::Running);
    let mut a = Term::xn(&hub, &["-a", &id.to_string()], 30, 100);
    let mut b = Term::xn(&hub, &["-a", &id.to_string()], 40, 120);
    a.wait_for("ready\r\n");
    b.wait_for("ready\r\n");
    b.send(b"b0\r");
    b.wait_for("b0 40 120\r\n");
    a.send(b"a0\r");
    a.wait_for("a0 30 100\r\n");

    hub.kill();
    a.wait_for("[connection to the hub lost");
    b.wait_for("[connection to the hub lost");
    hub.restart(&[]);
    a.wait_for("[reconnected to");
    b.wait_for("[reconnected to");
    wait_until("the job to be with its slave again", || {
        on_a_slave(&hub, id)
    });
    // b's size message follows the job's record on its new connection, which it may not have
    // read yet when the first line goes: a line or two may still see a's size.
    let mut n = 0;
    wait_until("b's size to be in force again", || {
        n += 1;
        b.send(format!("b{n}\r").as_bytes());
        b.wait_for(&format!("b{n} "));
        b.text().contains(&format!("b{n} 40 120\r\n"))
    });
    a.send(b"a1\r");
    a.wait_for("a1 30 100\r\n");
    for t in [&mut a, &mut b] {
        t.send(b"\x1dd");
        assert_eq!(t.wait_exit().code(), Some(0));
    }
}
