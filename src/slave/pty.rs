//! The terminal's share of the slave's `unsafe` and raw system calls: pseudo-terminals, their
//! size, and signals to process groups and sessions. The rest is in `sys.rs` (users, limits,
//! the sandbox) and `spawn.rs` (starting a job's child in its session, with its controlling
//! terminal and default signal handling; pidfds); no other file has any.
//!
//! Nothing here knows about the hub or the protocol.

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::signal::{killpg, Signal};
use nix::sys::termios::{tcgetattr, SpecialCharacterIndices};
use nix::unistd::Pid;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

nix::ioctl_write_ptr_bad!(set_winsize, libc::TIOCSWINSZ, libc::winsize);

/// A new pseudo-terminal: the master (non-blocking, close-on-exec) and the slave side for the
/// child's stdio.
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
    /// The slave side's path (`/dev/pts/N`).
    pub path: std::path::PathBuf,
}

/// Opens a pty of the given size. `posix_openpt` with `O_CLOEXEC` rather than glibc's
/// `openpty()`, which would leak the master into every later job.
pub fn open(rows: u16, cols: u16) -> io::Result<Pty> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname_r(&master)?;
    let slave: OwnedFd = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(&name)?
        .into();
    let master: OwnedFd = master.into();
    resize(master.as_fd(), rows, cols)?;
    // Non-blocking, for tokio's AsyncFd. The flag lives on the open file description, which
    // only the hub-facing side (the master) shares, so the child's stdio stays blocking.
    let flags = OFlag::from_bits_truncate(fcntl(&master, FcntlArg::F_GETFL)?);
    fcntl(&master, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(Pty {
        master,
        slave,
        path: name.into(),
    })
}

/// Sets the terminal size; the kernel sends SIGWINCH to the foreground process group.
pub fn resize(master: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` from the pointer, which is valid for the call.
    unsafe { set_winsize(master.as_raw_fd(), &ws) }?;
    Ok(())
}

/// The terminal's end-of-file character (usually Ctrl-D).
pub fn eof_char(master: BorrowedFd<'_>) -> u8 {
    tcgetattr(master)
        .map(|t| t.control_chars[SpecialCharacterIndices::VEOF as usize])
        .unwrap_or(4)
}

/// Sends `sig` to a job's process group. Returns false when the group has no process left.
pub fn signal_group(pgid: u32, sig: Option<Signal>) -> bool {
    match killpg(Pid::from_raw(pgid as i32), sig) {
        Ok(()) => true,
        Err(nix::errno::Errno::ESRCH) => false,
        // EPERM: a process of the group changed its user; it is still there.
        Err(_) => true,
    }
}

/// Sends `sig` to one process; it may be gone already.
pub fn signal_pid(pid: u32, sig: Signal) {
    let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), sig);
}

/// Registers the pty master with tokio's reactor.
pub fn async_master(master: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: an `OwnedFd` is a valid, open descriptor that it alone owns, and `as_raw_fd`
    // returns that same descriptor for as long as the AsyncFd holds it.
    unsafe { tokio::io::unix::AsyncFd::register(master) }.map_err(|e| e.into_parts().1)
}

/// Sends `sig` to every process in session `sid` (the job's session: its id is the job's pid).
/// An interactive shell moves each pipeline into a process group of its own, so only the
/// session reaches all of them. `None` only looks. Returns whether any live process was found.
pub fn signal_session(sid: u32, sig: Option<Signal>) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    let mut found = false;
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name (which may hold spaces and parentheses): state, ppid,
        // pgrp, session.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let session = fields.nth(2).and_then(|s| s.parse::<u32>().ok());
        // Zombies are dead already; they only wait for their parent to reap them.
        if session == Some(sid) && !matches!(state, Some("Z" | "X")) {
            found = true;
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), sig);
        }
    }
    found
}
