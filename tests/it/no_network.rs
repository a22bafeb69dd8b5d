//! `xnslave --no-network`: each job in a network namespace of its own whose only interface is
//! its loopback, up; the same job on a slave without the flag reaches the hub. A slave that
//! cannot make the namespace refuses to start. Needs root (skipped with a note elsewhere).

use crate::util::*;
use execnode::wire::JobState;

/// What a job sees of the network: its interfaces on the first line, then what became of a
/// connection to `port` on 127.0.0.1 (bash's /dev/tcp).
fn look_around(hub: &Hub, slave: &str, port: &str) -> String {
    let line = format!(
        "bash -c 'tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d \" \" | tr \"\\n\" \" \"; echo; \
         if exec 3<>/dev/tcp/127.0.0.1/{port}; then echo reached; fi' 2>&1"
    );
    let id = hub.submit(&line, &["--no-tty", "--slave", slave]);
    let rec = hub.wait_ended(id);
    assert_eq!(rec.state, JobState::Exited, "{rec:?}");
    String::from_utf8_lossy(&hub.fetch(id)).into_owned()
}

#[test]
fn a_job_off_the_network_reaches_nothing_but_itself() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let hub = Hub::start();
    let port = hub.url.rsplit(':').next().unwrap().trim_end_matches('/');
    // As another user too: the namespace is made before the switch, while still privileged.
    let _off = Slave::start(&hub, "off", 1, &["--no-network", "--run-as", "nobody"]);
    let _on = Slave::start(&hub, "on", 1, &[]);

    let off = look_around(&hub, "off", port);
    let mut lines = off.lines();
    assert_eq!(lines.next(), Some("lo "), "{off}");
    // Refused, not unreachable: the loopback is up, and nothing listens on it.
    assert!(off.contains("Connection refused"), "{off}");
    assert!(!off.contains("reached"), "{off}");

    // The same job on a slave without the flag sees the machine's interfaces and the hub.
    let on = look_around(&hub, "on", port);
    assert!(on.contains("reached"), "{on}");
    assert_ne!(on.lines().next(), Some("lo "), "{on}");
}

#[test]
fn a_slave_that_cannot_make_network_namespaces_refuses_to_start() {
    if !is_root() {
        eprintln!("skipped: needs root to start the slave as nobody");
        return;
    }
    let hub = Hub::start();
    match Slave::run_to_exit(&hub.url, &["--no-network"], Some(ids_of("nobody"))) {
        Ok((status, err)) => {
            assert_eq!(status.code(), Some(255), "{err}");
            assert!(
                err.contains("--no-network: a job's child cannot get a network namespace")
                    && err.contains("running as root")
                    && err.contains("Refusing to start"),
                "{err}"
            );
        }
        // The binary may sit where nobody cannot reach it.
        Err(e) => eprintln!("skipped: cannot run the slave as nobody: {e}"),
    }
    assert!(hub.jobs().is_empty());
}
