//! Test harness: real `execnode` processes on ephemeral loopback ports in temp dirs, and `xn`
//! run as a user types it. Every wait is for an event, bounded by a timeout.

#![allow(dead_code)]

use execnode::wire::{JobRecord, JobState};
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
/// (`--no-tty`): a job that is surely running while the test does something to it.
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
            "echo before; while [ ! -e {} ]; do sleep 0.05; done; echo after",
            gate.display()
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
fn spawn_logged(cmd: &mut Command, what: &str) -> (Child, Arc<Mutex<Vec<String>>>) {
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

pub struct Hub {
    child: Option<Child>,
    pub url: String,
    /// The admin token the hub created on its first start.
    pub token: String,
    pub slave_token: String,
    pub addr: String,
    pub data: PathBuf,
    _dir: Option<tempfile::TempDir>,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Hub {
    pub fn start() -> Hub {
        Self::start_with(&[])
    }

    pub fn start_with(args: &[&str]) -> Hub {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut hub = Self::start_on(&data, "127.0.0.1:0", args);
        hub._dir = Some(dir);
        hub
    }

    /// Starts a hub on `data` (kept by the caller) listening on `listen`.
    pub fn start_on(data: &Path, listen: &str, args: &[&str]) -> Hub {
        let mut cmd = Command::new(exe());
        cmd.arg("hub")
            .args(["--listen", listen, "--data"])
            .arg(data)
            .args(args);
        let (child, log) = spawn_logged(&mut cmd, "hub");
        let mut addr = String::new();
        let mut scheme = "http";
        wait_until("the hub to listen", || {
            let l = log.lock().unwrap();
            if let Some(line) = l.iter().find(|l| l.contains("hub listening on ")) {
                let rest = &line[line.find("://").unwrap() + 3..];
                addr = rest.split_whitespace().next().unwrap().to_string();
                scheme = if line.contains("https://") {
                    "https"
                } else {
                    "http"
                };
                true
            } else {
                false
            }
        });
        let read = |name: &str| {
            std::fs::read_to_string(data.join(name))
                .map(|t| t.trim().to_string())
                .unwrap_or_default()
        };
        Hub {
            child: Some(child),
            token: read("admin.token"),
            slave_token: read("slave.token"),
            url: format!("{scheme}://{addr}"),
            addr,
            data: data.to_path_buf(),
            _dir: None,
            log,
        }
    }

    /// Restarts on the same data dir and port (after `kill` or `stop`).
    pub fn restart(&mut self, args: &[&str]) {
        assert!(self.child.is_none(), "stop the hub first");
        let mut new = Hub::start_on(&self.data, &self.addr, args);
        self.child = new.child.take();
        self.log = new.log.clone();
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("hub running");
        signal(c.id(), libc::SIGTERM);
        c.wait().unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn log_contains(&self, s: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(s))
    }

    /// `xn ARGS` as this hub's admin, stdio left for the caller to choose.
    pub fn xn_command(&self, args: &[&str]) -> Command {
        xn_command(&self.url, &self.token, args)
    }

    /// Runs `xn ARGS` against this hub, as its admin.
    pub fn xn(&self, args: &[&str]) -> Output {
        xn_as(&self.url, &self.token, args)
    }

    /// `xn ARGS`, which must succeed; its stdout as text.
    pub fn xn_ok(&self, args: &[&str]) -> String {
        let out = self.xn(args);
        assert!(
            out.status.success(),
            "xn {args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs `xnhub token ARGS --data DATA` on this hub's data dir (it works while the hub
    /// runs), which must succeed; its stdout, trimmed.
    pub fn token_command(&self, args: &[&str]) -> String {
        let out = Command::new(bin_dir().join("xnhub"))
            .arg("token")
            .args(args)
            .arg("--data")
            .arg(&self.data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Creates a token with `xnhub token create` and returns it.
    pub fn new_token(&self, name: &str, role: &str) -> String {
        let t = self.token_command(&["create", "--name", name, "--role", role]);
        assert!(t.starts_with("xn_") && t.len() == 3 + 64, "{t}");
        t
    }

    /// Submits a line, returns its id.
    pub fn submit(&self, line: &str, extra: &[&str]) -> u64 {
        let mut args = vec!["-s", line];
        args.extend_from_slice(extra);
        let out = self.xn_ok(&args);
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("not an id: {out:?}"))
    }

    pub fn jobs(&self) -> Vec<JobRecord> {
        serde_json::from_str(&self.xn_ok(&["-l", "--json"])).unwrap()
    }

    pub fn job(&self, id: u64) -> JobRecord {
        self.jobs()
            .into_iter()
            .find(|j| j.id == id)
            .expect("job listed")
    }

    /// Waits until job `id` is in a terminal state and returns it.
    pub fn wait_ended(&self, id: u64) -> JobRecord {
        let mut rec = None;
        wait_until(&format!("job {id} to end"), || {
            let j = self.job(id);
            let done = j.state.is_terminal();
            rec = Some(j);
            done
        });
        rec.unwrap()
    }

    pub fn wait_state(&self, id: u64, state: JobState) -> JobRecord {
        let mut rec = None;
        wait_until(&format!("job {id} to be {state:?}"), || {
            let j = self.job(id);
            let ok = j.state == state;
            rec = Some(j);
            ok
        });
        rec.unwrap()
    }

    pub fn fetch(&self, id: u64) -> Vec<u8> {
        let out = self.xn(&["-f", &id.to_string()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Starts a slave for this hub.
    pub fn slave(&self, name: &str, slots: u32) -> Slave {
        Slave::start(self, name, slots, &[])
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Slave {
    child: Option<Child>,
    pub log: Arc<Mutex<Vec<String>>>,
}

/// Whether the tests run as root (then slaves refuse to start without `--run-as` or
/// `--allow-root-jobs`).
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

impl Slave {
    /// Starts a slave and waits until it is connected. As root, it gets `--allow-root-jobs`
    /// unless `args` name a `--run-as` user.
    pub fn start(hub: &Hub, name: &str, slots: u32, args: &[&str]) -> Slave {
        Self::start_with_token(hub, &hub.slave_token, name, slots, args)
    }

    pub fn start_with_token(
        hub: &Hub,
        token: &str,
        name: &str,
        slots: u32,
        args: &[&str],
    ) -> Slave {
        Self::start_at(&hub.url, token, name, slots, args)
    }

    /// Starts a slave that dials `url` (the hub's, or a relay's in front of it).
    pub fn start_at(url: &str, token: &str, name: &str, slots: u32, args: &[&str]) -> Slave {
        let mut args = args.to_vec();
        if is_root() && !args.contains(&"--run-as") {
            args.push("--allow-root-jobs");
        }
        let mut cmd = Command::new(exe());
        cmd.arg("slave")
            .args(["--hub", url, "--name", name, "--slots", &slots.to_string()])
            .env("XN_TOKEN", token)
            .args(args);
        let (child, log) = spawn_logged(&mut cmd, "slave");
        let s = Slave {
            child: Some(child),
            log,
        };
        s.wait_connected();
        s
    }

    /// Runs `execnode slave --hub URL ARGS`, expecting it to exit on its own (a refusal to
    /// start); returns its exit status and stderr. As `uid`, if given.
    pub fn run_to_exit(
        hub_url: &str,
        args: &[&str],
        uid: Option<(u32, u32)>,
    ) -> std::io::Result<(std::process::ExitStatus, String)> {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(exe());
        cmd.arg("slave")
            .args(["--hub", hub_url])
            .args(args)
            // A token, so that no config file is read (another user's HOME may be closed to
            // it); the slave refuses before it would dial.
            .env("XN_TOKEN", "unused")
            .env("XN_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some((uid, gid)) = uid {
            cmd.uid(uid).gid(gid);
        }
        let mut child = cmd.spawn()?;
        let mut err = child.stderr.take().expect("stderr piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut err, &mut text);
            let _ = tx.send(text);
        });
        // The pipe closes when the slave exits.
        let Ok(text) = rx.recv_timeout(TIMEOUT) else {
            let _ = child.kill();
            panic!("the slave did not exit on its own");
        };
        Ok((child.wait()?, text))
    }

    pub fn wait_connected(&self) {
        wait_until("the slave to connect", || self.log_contains("connected"));
    }

    pub fn log_contains(&self, s: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(s))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGKILL and wait; also removes its default work directory, which a killed slave
    /// leaves behind.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            let _ = std::fs::remove_dir_all(
                std::env::temp_dir().join(format!("execnode-slave-{}", c.id())),
            );
        }
    }

    pub fn signal(&self, sig: i32) {
        signal(self.pid(), sig);
    }

    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        self.child.take().unwrap().wait().unwrap()
    }
}

impl Drop for Slave {
    fn drop(&mut self) {
        self.kill();
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

/// One raw HTTP/1.1 request; returns (status, body).
pub fn http(addr: &str, request: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(request).unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

/// A request with `Authorization: Bearer TOKEN` (none if `token` is empty).
pub fn request(addr: &str, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    let auth = if token.is_empty() {
        String::new()
    } else {
        format!("Authorization: Bearer {token}\r\n")
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    http(addr, req.as_bytes())
}

impl Hub {
    /// POST as admin.
    pub fn post(&self, path: &str, body: &str) -> (u16, String) {
        request(&self.addr, "POST", path, &self.token, body)
    }

    /// GET as admin.
    pub fn get(&self, path: &str) -> (u16, String) {
        request(&self.addr, "GET", path, &self.token, "")
    }
}
