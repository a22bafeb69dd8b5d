//! `Slave`: one `execnode slave` process dialling a hub (or a relay), started and waited on
//! until it is connected; and a slave that must refuse to start.

use super::{exe, signal, spawn_logged, wait_until, Hub, TIMEOUT};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

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

/// A user's uid and gid, as `id` tells them.
pub fn ids_of(user: &str) -> (u32, u32) {
    let id = |flag: &str| {
        let out = std::process::Command::new("id")
            .args([flag, user])
            .output()
            .unwrap();
        assert!(out.status.success(), "no user {user}");
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    (id("-u"), id("-g"))
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
        Self::start_cmd(Command::new(exe()), url, token, name, slots, args)
    }

    /// Starts a slave whose `sh` parent ignored `signals` (as `trap '' SIGNALS` names them)
    /// before it exec'd the slave: what nohup, or a careless init script, leaves it.
    pub fn start_ignoring(hub: &Hub, signals: &str, name: &str, args: &[&str]) -> Slave {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(format!("trap '' {signals}; exec \"$0\" \"$@\""))
            .arg(exe());
        Self::start_cmd(cmd, &hub.url, &hub.slave_token, name, 1, args)
    }

    fn start_cmd(
        mut cmd: Command,
        url: &str,
        token: &str,
        name: &str,
        slots: u32,
        args: &[&str],
    ) -> Slave {
        let mut args = args.to_vec();
        if is_root() && !args.contains(&"--run-as") {
            args.push("--allow-root-jobs");
        }
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
        if std::thread::panicking() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                eprintln!("--- the slave had exited by itself: {status}");
            }
        }
        self.kill();
        super::show_log_of_failed_test("slave", &self.log);
    }
}
