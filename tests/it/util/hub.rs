//! `Hub`: one `execnode hub` process on its own data dir, and what a test asks of it (`xn` as
//! its admin, tokens, jobs and their states, output).

use super::{bin_dir, exe, signal, spawn_logged, wait_until, xn_as, xn_command, Slave};
use execnode::wire::{JobRecord, JobState};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::{Arc, Mutex};

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
        Self::start_cmd(Command::new(exe()), data, listen, args)
    }

    /// Starts a hub on `data` with its umask set to `mask` (the test process's own umask is
    /// shared by every test running, so it is set in the child only).
    pub fn start_with_umask(data: &Path, mask: u32) -> Hub {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(exe());
        // SAFETY: umask(2) is async-signal-safe and touches no memory.
        unsafe {
            cmd.pre_exec(move || {
                libc::umask(mask as libc::mode_t);
                Ok(())
            });
        }
        Self::start_cmd(cmd, data, "127.0.0.1:0", &[])
    }

    /// Starts a hub on `data` whose open-file limits are `soft` and `hard` when it starts, as
    /// on a machine whose default `ulimit -n` is that (set in the child only).
    pub fn start_with_open_files(data: &Path, soft: u64, hard: u64) -> Hub {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(exe());
        // SAFETY: setrlimit(2) is async-signal-safe and reads one struct from the stack.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: soft as libc::rlim_t,
                    rlim_max: hard as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Self::start_cmd(cmd, data, "127.0.0.1:0", &[])
    }

    fn start_cmd(cmd: Command, data: &Path, listen: &str, args: &[&str]) -> Hub {
        Self::try_start(cmd, data, listen, args)
            .unwrap_or_else(|e| panic!("the hub did not start: {e}"))
    }

    /// Starts a hub, or returns why it could not listen.
    fn try_start(
        mut cmd: Command,
        data: &Path,
        listen: &str,
        args: &[&str],
    ) -> Result<Hub, String> {
        cmd.arg("hub")
            .args(["--listen", listen, "--data"])
            .arg(data)
            .args(args);
        let (child, log) = spawn_logged(&mut cmd, "hub");
        let mut addr = String::new();
        let mut scheme = "http";
        let mut refused = None;
        wait_until("the hub to listen", || {
            let l = log.lock().unwrap();
            if let Some(line) = l.iter().find(|l| l.contains("cannot listen on ")) {
                refused = Some(line.clone());
                true
            } else if let Some(line) = l.iter().find(|l| l.contains("hub listening on ")) {
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
        if let Some(line) = refused {
            let mut child = child;
            let _ = child.wait();
            return Err(line);
        }
        let read = |name: &str| {
            std::fs::read_to_string(data.join(name))
                .map(|t| t.trim().to_string())
                .unwrap_or_default()
        };
        Ok(Hub {
            child: Some(child),
            token: read("admin.token"),
            slave_token: read("slave.token"),
            url: format!("{scheme}://{addr}"),
            addr,
            data: data.to_path_buf(),
            _dir: None,
            log,
        })
    }

    /// Restarts on the same data dir and port (after `kill` or `stop`). The port was free for
    /// a moment, and another test's outgoing connection may have been given it as its local
    /// port: the hub is started again until that connection is gone.
    pub fn restart(&mut self, args: &[&str]) {
        assert!(self.child.is_none(), "stop the hub first");
        let started = std::time::Instant::now();
        let mut new = loop {
            match Hub::try_start(Command::new(exe()), &self.data, &self.addr, args) {
                Ok(hub) => break hub,
                Err(e) if e.contains("in use") && started.elapsed() < super::TIMEOUT => {
                    std::thread::sleep(std::time::Duration::from_millis(100))
                }
                Err(e) => panic!("the hub did not start again: {e}"),
            }
        };
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
        if std::thread::panicking() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                eprintln!("--- the hub had exited by itself: {status}");
            }
        }
        self.kill();
        super::show_log_of_failed_test("hub", &self.log);
    }
}
