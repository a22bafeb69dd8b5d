//! A job stream whose client went away without a word (its machine or route gone: no FIN, no
//! RST) is let go after `--peer-timeout`, instead of lingering until TCP gives up; a client
//! that is only paused, and so reads nothing for far longer, keeps its stream.

use crate::netns::Netns;
use crate::util::*;
use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A child killed and reaped when the test ends, however it ends.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Established TCP connections whose local end is `port` and whose peer is `from`.
fn conns(port: u16, from: Ipv4Addr) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let addr = |s: &str| {
        let (ip, port) = s.split_once(':').unwrap();
        // The address in the kernel's byte order (little-endian here), the port as a number.
        let ip = Ipv4Addr::from(u32::from_str_radix(ip, 16).unwrap().swap_bytes());
        (ip, u16::from_str_radix(port, 16).unwrap())
    };
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f[3] == "01")
        .filter(|f| addr(f[1]).1 == port && addr(f[2]).0 == from)
        .count()
}

#[test]
fn a_follower_whose_network_vanished_is_let_go_and_a_paused_one_is_kept() {
    let Some(ns) = Netns::create() else { return };
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("{}:0", ns.host_ip);
    let hub = Hub::start_on(&dir.path().join("data"), &listen, &["--peer-timeout", "2"]);
    let port: u16 = hub.addr.rsplit_once(':').unwrap().1.parse().unwrap();
    let _slave = hub.slave("s1", 2);
    let host: Ipv4Addr = ns.host_ip.parse().unwrap();
    let inner = Ipv4Addr::from(u32::from(host) + 1);

    // A follower in the namespace, then its link goes down.
    let job = GatedJob::submit(&hub);
    let mut far = ns.command(&bin_dir().join("xn"));
    let mut far = Reap(
        far.args(["-f", &job.id.to_string(), "--follow"])
            .env("XN_HUB", &hub.url)
            .env("XN_TOKEN", &hub.token)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (seen, _reader) = collect(far.0.stdout.take().unwrap());
    wait_until("the far follower to stream", || {
        seen.lock().unwrap().as_slice() == b"before\n"
    });
    assert_eq!(conns(port, inner), 1);
    ns.cut();
    wait_until("the hub to let the far follower go", || {
        conns(port, inner) == 0
    });
    wait_until("the hub to log why", || {
        hub.log_contains("acknowledged nothing for 2s: its stream is dropped")
    });
    drop(far);

    // A follower that stops reading for longer than that still acknowledges (with a closed
    // window): its stream stays, and it misses nothing.
    let size = 64 << 20;
    let big = hub.submit(&format!("head -c {size} /dev/zero"), &["--no-tty"]);
    hub.wait_ended(big);
    let before = conns(port, host);
    let near = Collected::spawn(&mut hub.xn_command(&["-f", &big.to_string(), "--follow"]));
    wait_until("the near follower to stream", || {
        !near.out.lock().unwrap().is_empty()
    });
    signal(near.child.id(), libc::SIGSTOP);
    // Several of the hub's checks (every 5 s) with its last acknowledgement older than 2 s.
    let paused = Instant::now();
    while paused.elapsed() < Duration::from_secs(12) {
        assert_eq!(
            conns(port, host),
            before + 1,
            "the paused follower was dropped"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    signal(near.child.id(), libc::SIGCONT);
    let (status, out, err) = near.finish();
    assert!(status.success(), "{err}");
    assert_eq!(out.len(), size);
    assert!(!err.contains("reconnect"), "{err}");
    job.finish(&hub);
}
