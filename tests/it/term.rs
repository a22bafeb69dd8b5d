//! A pseudo-terminal harness: runs `xn` with a real terminal as its stdin, stdout and stderr,
//! types into it, reads what it shows, resizes it.

#![allow(dead_code)]

use crate::util::{collect, wait_until, xn_command, Hub, TIMEOUT};
use nix::pty::{openpty, Winsize};
use nix::sys::termios::{tcgetattr, LocalFlags};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, ExitStatus};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub struct Term {
    master: File,
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
}

nix::ioctl_write_ptr_bad!(set_winsize, libc::TIOCSWINSZ, libc::winsize);

impl Term {
    /// Runs `xn ARGS` in a new terminal of `rows` x `cols`.
    pub fn xn(hub: &Hub, args: &[&str], rows: u16, cols: u16) -> Term {
        Self::xn_as(hub, &hub.token, args, rows, cols)
    }

    /// `xn ARGS` presenting `token`.
    pub fn xn_as(hub: &Hub, token: &str, args: &[&str], rows: u16, cols: u16) -> Term {
        Self::xn_at(&hub.url, token, args, rows, cols)
    }

    /// `xn ARGS` dialling `url` (a hub, or a stand-in for one) with `token`.
    pub fn xn_at(url: &str, token: &str, args: &[&str], rows: u16, cols: u16) -> Term {
        let ws = Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = openpty(Some(&ws), None).unwrap();
        // Keep the master out of the child, or it would never see its terminal close.
        nix::fcntl::fcntl(
            &pty.master,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .unwrap();
        let slave: OwnedFd = pty.slave;
        let mut cmd = xn_command(url, token, args);
        cmd.env("TERM", "xterm")
            .stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave.try_clone().unwrap());
        // SAFETY: setsid and ioctl are async-signal-safe; nothing is allocated.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()?;
                if libc::ioctl(0, libc::TIOCSCTTY as _, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        drop(cmd);
        drop(slave);
        let master = File::from(pty.master);
        let (out, _reader) = collect(master.try_clone().unwrap());
        Term { master, child, out }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).unwrap();
    }

    /// Everything the terminal showed so far.
    pub fn screen(&self) -> Vec<u8> {
        self.out.lock().unwrap().clone()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.screen()).into_owned()
    }

    pub fn count(&self, needle: &str) -> usize {
        self.text().matches(needle).count()
    }

    /// Waits until `needle` has been shown `n` times.
    pub fn wait_for_n(&self, needle: &str, n: usize) {
        let start = Instant::now();
        while self.count(needle) < n {
            assert!(
                start.elapsed() < TIMEOUT,
                "timed out waiting for {needle:?} x{n}; screen:\n{}",
                self.text()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    pub fn wait_for(&self, needle: &str) {
        self.wait_for_n(needle, 1);
    }

    pub fn resize(&self, rows: u16, cols: u16) {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
        unsafe { set_winsize(self.master.as_raw_fd(), &ws) }.unwrap();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status, if it has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut status = None;
        wait_until("xn to exit", || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        status.unwrap()
    }

    /// Whether the terminal is in its normal (cooked, echoing) mode.
    pub fn is_cooked(&self) -> bool {
        let t = tcgetattr(self.master.as_fd()).unwrap();
        t.local_flags
            .contains(LocalFlags::ICANON | LocalFlags::ECHO)
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
