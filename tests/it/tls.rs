//! TLS end to end with a private CA made for the test.

use crate::util::*;
use std::path::Path;

/// Writes ca.pem, cert.pem and key.pem for `localhost` and 127.0.0.1 into `dir`.
fn make_certs(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
}

/// A hub serving HTTPS with a certificate made in `dir` (`make_certs`; `dir/ca.pem` trusts it).
fn tls_hub(dir: &Path) -> Hub {
    make_certs(dir);
    let file = |name: &str| dir.join(name).to_str().unwrap().to_string();
    Hub::start_with(&[
        "--tls-cert",
        &file("cert.pem"),
        "--tls-key",
        &file("key.pem"),
    ])
}

#[test]
fn jobs_run_over_tls_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let hub = tls_hub(dir.path());
    let (cert, ca) = (dir.path().join("cert.pem"), dir.path().join("ca.pem"));
    assert!(hub.url.starts_with("https://127.0.0.1:"), "{}", hub.url);
    let _s = Slave::start(&hub, "s1", 1, &["--ca", ca.to_str().unwrap()]);
    let xn = |extra_env: &[(&str, &Path)], args: &[&str]| {
        let mut cmd = hub.xn_command(args);
        cmd.env_remove("XN_CA");
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let out = xn(
        &[("XN_CA", &ca)],
        &["-s", "echo over tls; exit 6", "--no-tty", "--wait"],
    );
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"over tls\n");
    // Without the CA the hub's certificate is not trusted, and nothing is sent.
    let out = xn(&[], &["-l"]);
    assert_eq!(out.status.code(), Some(255));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TLS with hub at") && err.contains("give its CA with --ca or XN_CA"),
        "{err}"
    );
    // Plain HTTP to the TLS port gets nowhere.
    let (status, _) = request(&hub.addr, "GET", "/api/v1/jobs", &hub.token, "");
    assert_ne!(status, 200);
    // The wrong scheme either way, and the hub's own certificate given as a CA: each error
    // says what to change.
    let plain_url = format!("http://{}", hub.addr);
    let out = xn_as(&plain_url, &hub.token, &["-l"]);
    assert_eq!(out.status.code(), Some(255));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("if it speaks TLS, use https://"), "{err}");
    let out = xn(&[("XN_CA", &cert)], &["-l"]);
    assert_eq!(out.status.code(), Some(255));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not the hub's own"), "{err}");
}

#[test]
fn https_to_a_plain_hub_says_to_use_http() {
    let hub = Hub::start();
    let tls_url = format!("https://{}", hub.addr);
    let out = xn_as(&tls_url, &hub.token, &["-l"]);
    assert_eq!(out.status.code(), Some(255));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("if it has no TLS, use http://"), "{err}");
}

#[test]
fn a_hub_open_beyond_loopback_without_tls_warns() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(exe());
    cmd.args(["hub", "--listen", "0.0.0.0:0", "--data"])
        .arg(dir.path());
    let (mut child, log) = spawn_logged(&mut cmd, "hub");
    wait_until("the warning", || {
        log.lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("without TLS: tokens and job output cross the network in clear"))
    });
    let _ = child.kill();
    let _ = child.wait();
}

/// A slave that stops (SIGTERM, as `systemctl stop` sends) leaves a TLS hub as it leaves a
/// plain one: the hub logs that it disconnected, not a warning about a missing TLS
/// close_notify at every routine stop.
#[test]
fn a_slave_that_stops_leaves_a_tls_hub_without_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let hub = tls_hub(dir.path());
    let ca = dir.path().join("ca.pem");
    let mut slave = Slave::start(&hub, "s1", 1, &["--ca", ca.to_str().unwrap()]);
    wait_until("the hub to see the slave", || {
        hub.log_contains("slave connected")
    });
    slave.signal(libc::SIGTERM);
    assert!(slave.wait_exit().success());
    wait_until("the hub to see the slave go", || {
        hub.log_contains("slave disconnected") || hub.log_contains("slave session ended")
    });
    assert!(
        hub.log_contains("slave disconnected") && !hub.log_contains("slave session ended"),
        "the hub took a slave's clean stop for a failure"
    );
}

/// The same seen from the hub's side, played by the test (the real hub takes a missing
/// close_notify for a plain close, so its log cannot tell): a stopping slave says `drain`,
/// then ends the session cleanly, with a WebSocket close and then a TLS close_notify, where it
/// once merely exited and let the kernel close its socket.
#[test]
fn a_stopping_slave_closes_its_websocket_and_then_its_tls_session() {
    use crate::util::played_hub::CLOSE;
    use execnode::wire::SlaveMsg;
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let config =
        execnode::tls::server_config(&dir.path().join("cert.pem"), &dir.path().join("key.pem"))
            .unwrap();
    let hub = PlayedHub::start_tls(config);
    let ca = dir.path().join("ca.pem");
    std::thread::scope(|s| {
        let accepted = s.spawn(|| hub.accept());
        let mut slave =
            Slave::start_at(&hub.url, "played", "s1", 1, &["--ca", ca.to_str().unwrap()]);
        let mut side = accepted.join().unwrap();
        slave.signal(libc::SIGTERM);
        assert_eq!(side.next_msg(), Some(SlaveMsg::Drain));
        let close = side.recv();
        assert_eq!(
            (close.opcode, &close.payload[..2]),
            (CLOSE, &1000u16.to_be_bytes()[..]),
            "a normal close: {close:?}"
        );
        let (after, end) = side.read_to_end();
        assert!(after.is_empty(), "nothing after the close frame: {after:?}");
        assert!(
            end.is_ok(),
            "the TLS session ended without a close_notify: {end:?}"
        );
        side.close(1000);
        assert!(slave.wait_exit().success());
    });
}
