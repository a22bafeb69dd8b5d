//! Test harness: real `execnode` processes on ephemeral loopback ports in temp dirs, and `xn`
//! run as a user types it. Every wait is for an event, bounded by a timeout.
//!
//! This file has the shared pieces (timeouts, waits, collected output, signals, `xn`); the hub,
//! the slave, raw HTTP requests, a scripted stand-in for a hub's REST API and a hub a slave
//! dials played frame by frame each have their own file under `util/`.

#![allow(dead_code)]

mod http;
mod hub;
pub mod played_hub;
mod scripted;
mod slave;

pub use http::{http, http_with_head, request};
pub use hub::Hub;
pub use played_hub::PlayedHub;
pub use scripted::ScriptedHub;
pub use slave::{ids_of, is_root, Slave};

use execnode::wire::JobState;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Generous: CI machines are small and run tests in parallel. Only a hang reaches it.
pub const TIMEOUT: Duration = Duration::from_secs(60);

pub fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_execnode"))
}

/// A directory with `xn`, `xnhub` and `xnslave` symlinks to the binary under test: in the
/// target directory's scratch space, so that test runs leave nothing behind in /tmp. Each
/// link is made under a name of this process's and renamed into place, so that another run
/// of the suite on the same checkout never finds one missing.
pub fn bin_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bin");
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["xn", "xnhub", "xnslave"] {
            let fresh = dir.join(format!("{name}.{}", std::process::id()));
            let _ = std::fs::remove_file(&fresh);
            std::os::unix::fs::symlink(exe(), &fresh).unwrap();
            std::fs::rename(&fresh, dir.join(name)).unwrap();
        }
        dir
    })
}

/// Polls `cond` until it holds or `TIMEOUT` passes (then panics with `what`).
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < TIMEOUT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Bytes read from `from` so far, collected by a thread until it ends (join the handle to wait
/// for that).
pub fn collect(
    mut from: impl std::io::Read + Send + 'static,
) -> (Arc<Mutex<Vec<u8>>>, std::thread::JoinHandle<()>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    let thread = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    (got, thread)
}

/// A child whose stdout and stderr are collected by threads as they come.
pub struct Collected {
    pub child: Child,
    /// Its stdout so far.
    pub out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
    readers: [std::thread::JoinHandle<()>; 2],
}

impl Collected {
    /// Spawns `cmd` with its stdout and stderr piped.
    pub fn spawn(cmd: &mut Command) -> Collected {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (out, r1) = collect(child.stdout.take().unwrap());
        let (err, r2) = collect(child.stderr.take().unwrap());
        Collected {
            child,
            out,
            err,
            readers: [r1, r2],
        }
    }

    /// Its stderr so far, as text.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().unwrap()).into_owned()
    }

    /// As [`Collected::finish`], for a child that should exit by itself: one that has not
    /// within `TIMEOUT` is killed (no stray process), and the test fails.
    pub fn finish_within(mut self) -> (std::process::ExitStatus, Vec<u8>, String) {
        let start = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            if start.elapsed() > TIMEOUT {
                let _ = self.child.kill();
                let (_, out, err) = self.finish();
                let out = String::from_utf8_lossy(&out);
                panic!("still running after {TIMEOUT:?}; stdout {out:?}, stderr {err:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.finish()
    }

    /// Waits until it exits: its status, its whole stdout, and its stderr as text.
    pub fn finish(mut self) -> (std::process::ExitStatus, Vec<u8>, String) {
        let status = self.child.wait().unwrap();
        for r in self.readers {
            r.join().unwrap();
        }
        let out = std::mem::take(&mut *self.out.lock().unwrap());
        let err = String::from_utf8_lossy(&self.err.lock().unwrap()).into_owned();
        (status, out, err)
    }
}

/// A job that prints `before`, waits until the test opens its gate, prints `after` and exits 0
/// (`--no-tty`): a job that is surely running while the test does something to it. It also ends
/// once its gate's directory is gone (the `GatedJob` dropped): a pipe job outlives a slave the
/// test killed, and one that waited for a gate that can no longer open would poll for ever,
/// after a failed test too, loading the machine the rest of the suite runs on.
pub struct GatedJob {
    pub id: u64,
    gate: PathBuf,
    _dir: tempfile::TempDir,
}

impl GatedJob {
    /// Submits it and waits until `before` is stored.
    pub fn submit(hub: &Hub) -> GatedJob {
        let dir = tempfile::tempdir().unwrap();
        let gate = dir.path().join("go");
        let line = format!(
            "echo before; while [ ! -e {} ] && [ -d {} ]; do sleep 0.05; done; echo after",
            gate.display(),
            dir.path().display()
        );
        let id = hub.submit(&line, &["--no-tty"]);
        wait_until("output", || hub.job(id).stdout_len >= 7);
        GatedJob {
            id,
            gate,
            _dir: dir,
        }
    }

    /// Lets it finish (without waiting for that).
    pub fn open(&self) {
        std::fs::write(&self.gate, b"").unwrap();
    }

    /// Lets it finish, and checks that it did, with all its output.
    pub fn finish(&self, hub: &Hub) {
        self.open();
        let rec = hub.wait_ended(self.id);
        assert_eq!((rec.state, rec.exit_code), (JobState::Exited, Some(0)));
        assert_eq!(hub.fetch(self.id), b"before\nafter\n");
    }
}

/// Starts a hub or slave with its log on a pipe (level from `TEST_XN_LOG`, default info) and
/// collects its lines.
pub fn spawn_logged(cmd: &mut Command, what: &str) -> (Child, Arc<Mutex<Vec<String>>>) {
    let mut child = cmd
        .env(
            "XN_LOG",
            std::env::var("TEST_XN_LOG").unwrap_or("info".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let log = capture(&mut child);
    (child, log)
}

/// Collects a child's stderr lines on a thread.
fn capture(child: &mut Child) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let err = child.stderr.take().expect("stderr piped");
    let l = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            l.lock().unwrap().push(line);
        }
    });
    lines
}

/// As a failed test unwinds, prints what a hub or slave it started logged (the test harness
/// shows it with the failure): what a flaky test needs to be understood from one CI run.
pub fn show_log_of_failed_test(what: &str, log: &Mutex<Vec<String>>) {
    if std::thread::panicking() {
        let lines = log.lock().map(|l| l.join("\n")).unwrap_or_default();
        eprintln!("--- {what} log ---\n{lines}");
    }
}

pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a pid we started; no memory is involved.
    unsafe { libc::kill(pid as i32, sig) };
}

/// Whether a process is alive (a zombie counts as dead).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

/// The directory of xn's config file with `home` as `XDG_CONFIG_HOME`, created private (0700,
/// whatever the umask): xn refuses a config file in a directory others can write.
pub fn config_dir(home: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = home.join("execnode");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

/// `xn ARGS` through the `xn` symlink, with `XN_HUB` set and no token.
pub fn xn(hub_url: &str, args: &[&str]) -> Output {
    xn_as(hub_url, "", args)
}

/// `xn ARGS` presenting `token` (none if empty).
pub fn xn_as(hub_url: &str, token: &str, args: &[&str]) -> Output {
    xn_command(hub_url, token, args)
        .stdin(Stdio::null())
        .output()
        .expect("run xn")
}

/// `xn ARGS` through the `xn` symlink, dialling `hub_url` with `token` (none if empty), stdio
/// left for the caller to choose.
pub fn xn_command(hub_url: &str, token: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin_dir().join("xn"));
    cmd.args(args).env("XN_HUB", hub_url).env_remove("XN_TOKEN");
    if !token.is_empty() {
        cmd.env("XN_TOKEN", token);
    }
    cmd
}
