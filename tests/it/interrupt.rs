//! Ctrl-C while `xn -s` waits for the hub to answer the submission: the hub may make the job
//! whatever becomes of xn, so xn waits for the answer and says the job's id, as Ctrl-C just
//! after the answer does; a second Ctrl-C gives up, saying that the job may exist all the same.
//! A stand-in hub holds the answer until the test lets it go, and Ctrl-C is typed into a real
//! terminal.

use crate::term::Term;
use crate::util::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// `xn -s 'sleep 600' --wait` in a terminal, once its submission has reached `hub`.
fn submitting(hub: &ScriptedHub, came: &AtomicBool) -> Term {
    let t = Term::xn_at(
        &hub.url,
        "xn_unused",
        &["-s", "sleep 600", "--wait"],
        24,
        80,
    );
    wait_until("the submission to reach the hub", || {
        came.load(Ordering::SeqCst)
    });
    t
}

/// A stand-in hub that answers a submission with job 7 once the test sends on the gate, and
/// sets the flag when the submission has come.
fn holding_hub() -> (ScriptedHub, mpsc::Sender<()>, Arc<AtomicBool>) {
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let gate_rx = Mutex::new(gate_rx);
    let came = Arc::new(AtomicBool::new(false));
    let flag = came.clone();
    let hub = ScriptedHub::start(move |method, path| match (method, path) {
        ("POST", "/api/v1/jobs") => {
            flag.store(true, Ordering::SeqCst);
            // Bounded: a test that failed drops the gate's sender, which ends the wait.
            let _ = gate_rx.lock().unwrap().recv_timeout(TIMEOUT);
            (200, r#"{"id":7}"#.to_string())
        }
        _ => (404, r#"{"error":"not scripted"}"#.to_string()),
    });
    (hub, gate_tx, came)
}

/// Types Ctrl-C and waits until xn says it waits for the hub's answer, or has exited.
fn ctrl_c(t: &mut Term) {
    let before = t.count("stopping as soon as the hub answers");
    t.send(b"\x03");
    let mut exited = None;
    wait_until("xn to take the Ctrl-C", || {
        exited = t.try_exit();
        exited.is_some() || t.count("stopping as soon as the hub answers") > before
    });
    assert!(
        exited.is_none(),
        "xn exited ({exited:?}) before the hub answered; screen:\n{}",
        t.text()
    );
}

#[test]
fn ctrl_c_before_the_hub_answers_a_submission_says_the_job_id() {
    let (hub, gate, came) = holding_hub();
    let mut t = submitting(&hub, &came);
    ctrl_c(&mut t);
    gate.send(()).unwrap();
    assert_eq!(t.wait_exit().code(), Some(130), "{}", t.text());
    assert!(
        t.text().contains(
            "[xn interrupted; job 7 keeps running: xn -k 7 cancels it, xn -f 7 --follow follows it]"
        ),
        "{}",
        t.text()
    );
}

#[test]
fn a_second_ctrl_c_before_the_hub_answers_gives_up_and_says_so() {
    let (hub, _gate, came) = holding_hub();
    let mut t = submitting(&hub, &came);
    ctrl_c(&mut t);
    t.send(b"\x03");
    assert_eq!(t.wait_exit().code(), Some(130), "{}", t.text());
    assert!(
        t.text()
            .contains("the hub had not answered: what was submitted may run all the same"),
        "{}",
        t.text()
    );
}
