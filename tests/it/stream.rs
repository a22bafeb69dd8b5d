//! Streaming output in bulk: many MiB through the slave's in-flight window, the hub's batched
//! intake and its in-memory recent frames, to followers that were there from the start, that
//! attach mid-stream, that attach after the end, and across a hub restart. Byte-exact, always.

use crate::util::*;
use execnode::wire::JobState;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::thread::JoinHandle;

/// `n` bytes that do not repeat in a simple pattern (so a lost, doubled or misplaced chunk
/// shows).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `xn ARGS` running in the background; its whole stdout is the thread's result.
fn background_xn(hub: &Hub, args: &[&str]) -> (Child, JoinHandle<Vec<u8>>) {
    let mut child = hub
        .xn_command(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        out.read_to_end(&mut all).unwrap();
        all
    });
    (child, reader)
}

/// Waits for a background `xn` and returns its stdout; it must have succeeded.
fn finish(mut child: Child, reader: JoinHandle<Vec<u8>>) -> Vec<u8> {
    let status = child.wait().unwrap();
    assert!(status.success(), "xn failed: {status}");
    reader.join().unwrap()
}

/// A shell line that prints `first` bytes of `file`, waits until `gate` exists, then prints
/// the rest (and a line on stderr).
fn gated_cat(file: &Path, first: usize, gate: &Path) -> String {
    format!(
        "head -c {first} {f}; while [ ! -e {g} ]; do sleep 0.02; done; tail -c +{next} {f}; echo done >&2",
        f = file.display(),
        g = gate.display(),
        next = first + 1
    )
}

fn assert_same(what: &str, got: &[u8], want: &[u8]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    assert!(got == want, "{what}: bytes differ");
}

#[test]
fn a_large_output_arrives_byte_exact_to_followers_early_late_and_after_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let (file, gate) = (dir.path().join("blob"), dir.path().join("go"));
    let data = noise(24 << 20, 7);
    std::fs::write(&file, &data).unwrap();
    let half = 12 << 20;
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let id = hub.submit(&gated_cat(&file, half, &gate), &["--no-tty"]);
    let ids = id.to_string();
    let early = background_xn(&hub, &["-f", &ids, "--follow"]);
    wait_until("the first half to be stored", || {
        hub.job(id).stdout_len == half as u64
    });
    // Attaches mid-stream: its first bytes are old (from the log), the rest live.
    let late = background_xn(&hub, &["-f", &ids, "--follow"]);
    std::fs::write(&gate, b"").unwrap();
    let rec = hub.wait_ended(id);
    assert_eq!(rec.state, JobState::Exited, "{rec:?}");
    assert_eq!(rec.stdout_len, data.len() as u64);
    assert_eq!(rec.stderr_len, 5);
    assert_same("follower from the start", &finish(early.0, early.1), &data);
    assert_same("follower from mid-stream", &finish(late.0, late.1), &data);
    let after = hub.xn(&["-f", &ids, "--follow"]);
    assert!(after.status.success());
    assert_same("follower after the end", &after.stdout, &data);
    assert_same("xn -f", &hub.fetch(id), &data);
    // The disk blocks the hub reserved ahead of the growing log are given back at its end.
    let log = std::fs::metadata(hub.data.join("logs").join(format!("{id}.out"))).unwrap();
    assert_eq!(log.len(), data.len() as u64);
    let allocated = log.blocks() * 512;
    assert!(
        allocated < log.len() + (1 << 20),
        "{allocated} bytes on disk for a log of {}",
        log.len()
    );
}

#[test]
fn xn_wait_gets_every_byte_of_a_fast_stream() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blob");
    let data = noise(32 << 20, 11);
    std::fs::write(&file, &data).unwrap();
    // The hub's one thread (the default), then a pool of workers.
    for args in [&[][..], &["--threads", "3"]] {
        let hub = Hub::start_with(args);
        let _s = hub.slave("s1", 1);
        let line = format!("cat {}", file.display());
        let out = hub.xn(&["-s", &line, "--no-tty", "--wait"]);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_same(&format!("xn -s --wait, hub {args:?}"), &out.stdout, &data);
    }
}

#[test]
fn a_hub_needs_at_least_one_thread_and_no_limit_of_zero() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, says) in [
        ("--threads", "0 is not in 1..=1024"),
        ("--slave-timeout", "must be at least 1"),
        ("--max-conns-per-addr", "must be at least 1"),
        ("--max-queued-per-user", "must be at least 1"),
    ] {
        let out = std::process::Command::new(exe())
            .args(["hub", "--listen", "127.0.0.1:0", flag, "0", "--data"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag) && err.contains(says), "{err}");
    }
    // Refused before anything was written.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_follower_keeps_every_byte_across_a_hub_restart_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    let (file, gate) = (dir.path().join("blob"), dir.path().join("go"));
    let data = noise(8 << 20, 13);
    std::fs::write(&file, &data).unwrap();
    let first = 3 << 20;
    let mut hub = Hub::start();
    let _s = Slave::start(&hub, "s1", 1, &["--output-buffer", "33554432"]);
    let id = hub.submit(&gated_cat(&file, first, &gate), &["--no-tty"]);
    let ids = id.to_string();
    let follower = background_xn(&hub, &["-f", &ids, "--follow"]);
    wait_until("the first part to be stored", || {
        hub.job(id).stdout_len == first as u64
    });
    hub.kill();
    // The rest is printed while the hub is away, and sent when it is back.
    std::fs::write(&gate, b"").unwrap();
    hub.restart(&[]);
    let rec = hub.wait_ended(id);
    assert_eq!(rec.state, JobState::Exited, "{rec:?}");
    assert_same(
        "follower across the restart",
        &finish(follower.0, follower.1),
        &data,
    );
    assert_same("xn -f", &hub.fetch(id), &data);
}
