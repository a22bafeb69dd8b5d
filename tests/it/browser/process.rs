//! Chromium's process: `Browser::launch` starts it on its pipes and attaches to one page;
//! dropping the `Browser` kills it with everything it started.

use super::{read_messages, Browser, Inbox};
use crate::util::TIMEOUT;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde_json::json;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";

impl Browser {
    /// Starts headless Chromium with a fresh temp `--user-data-dir` and opens one blank page
    /// (`Target.createTarget`, then `Target.attachToTarget` with `flatten: true`: page commands
    /// carry its `sessionId`). Enables the Page, Runtime and Log domains.
    pub fn launch() -> Browser {
        if !Path::new(CHROMIUM).exists() {
            panic!(
                "chromium is not installed: run scripts/test.sh, which installs it \
                 (apt-get install chromium)"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("execnode-browser-")
            .tempdir()
            .unwrap();
        let log = dir.path().join("chromium.log");
        let log_file = File::create(&log).unwrap();
        // CLOEXEC: no other child the test process spawns meanwhile may inherit these.
        let (cmd_read, cmd_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let (out_read, out_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let mut cmd = Command::new(CHROMIUM);
        cmd.args([
            "--headless",
            // We run as root, where Chromium refuses its sandbox.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--remote-debugging-pipe",
            "--window-size=1200,800",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        // Chromium's crash handlers keep their database under $HOME, and are not in its process
        // group: this keeps the database out of the real home, and lets Drop find them by path.
        .env("HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        // Its singleton socket goes in a directory of $TMPDIR that it does not remove.
        .env("TMPDIR", dir.path())
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        // Its own process group: Drop kills zygote and renderers with it.
        .process_group(0);
        let (fd3, fd4) = (cmd_read.as_raw_fd(), out_write.as_raw_fd());
        // SAFETY: between fork and exec only async-signal-safe calls (fcntl, dup2, close) on fds
        // this process owns until `spawn` returns.
        unsafe {
            cmd.pre_exec(move || {
                // First above 4, so that dup2 below cannot clobber one with the other when the
                // pipe happened to land on fd 3 or 4; F_DUPFD and dup2 leave CLOEXEC clear.
                let high3 = libc::fcntl(fd3, libc::F_DUPFD, 10);
                let high4 = libc::fcntl(fd4, libc::F_DUPFD, 10);
                if high3 < 0 || high4 < 0 || libc::dup2(high3, 3) < 0 || libc::dup2(high4, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(high3);
                libc::close(high4);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("starting chromium");
        // The child's ends must close here, or fd 4 never reaches EOF when Chromium dies.
        drop(cmd);
        drop((cmd_read, out_write));

        let inbox = Arc::new(Inbox::default());
        let reader = {
            let inbox = inbox.clone();
            std::thread::spawn(move || read_messages(out_read, &inbox))
        };
        let mut browser = Browser {
            child,
            to_browser: Mutex::new(File::from(cmd_write)),
            inbox,
            next_id: AtomicU64::new(1),
            session: String::new(),
            reader: Some(reader),
            log,
            dir,
        };
        let target = browser.send(None, "Target.createTarget", json!({"url": "about:blank"}));
        let target_id = target["targetId"].as_str().expect("targetId").to_owned();
        let attached = browser.send(
            None,
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        );
        browser.session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_owned();
        for method in ["Page.enable", "Runtime.enable", "Log.enable"] {
            browser.call(method, json!({}));
        }
        // Lifecycle events carry the loader id, which tells the load of one navigation from a
        // late one of the page before (see `goto`).
        browser.call("Page.setLifecycleEventsEnabled", json!({"enabled": true}));
        browser
    }
}

impl Drop for Browser {
    /// Kills Chromium's whole process group (it forks zygotes and renderers) and its crash
    /// handlers, reaps the browser, waits until they are all gone, and lets the temp dir go.
    fn drop(&mut self) {
        let group = self.child.id() as i32;
        let _ = nix::sys::signal::killpg(Pid::from_raw(group), Signal::SIGKILL);
        let _ = self.child.wait();
        // The rest now belong to init (which reaps their zombies); until they are dead they could
        // still write into the temp dir while it is being removed, or outlive the test.
        let start = Instant::now();
        let mut left = leftovers(group, self.dir.path());
        while !left.is_empty() && start.elapsed() < TIMEOUT {
            for &pid in &left {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(10));
            left = leftovers(group, self.dir.path());
        }
        // Every writer of fd 4 is dead now: the reader has its EOF. (If something survived,
        // leave the thread blocked rather than hang the test.)
        if let Some(reader) = self.reader.take() {
            if left.is_empty() {
                let _ = reader.join();
            }
        }
    }
}

/// Live (not zombie) processes that one browser started: those in its process group, and the
/// crash handlers, which leave the group but name `dir` (their database) on their command line.
fn leftovers(group: i32, dir: &Path) -> Vec<i32> {
    let dir = dir.as_os_str().as_encoded_bytes();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // "pid (comm) state ppid pgrp …", where comm may hold spaces and parentheses.
            let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
            let state = fields.next()?;
            let pgrp: i32 = fields.nth(1)?.parse().ok()?;
            if state == "Z" || state == "X" {
                return None;
            }
            let ours = pgrp == group
                || std::fs::read(entry.path().join("cmdline"))
                    .is_ok_and(|cmdline| cmdline.windows(dir.len()).any(|w| w == dir));
            ours.then_some(pid)
        })
        .collect()
}
