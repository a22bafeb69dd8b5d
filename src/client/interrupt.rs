//! The signals that end `xn` while it follows jobs that go on without it (`-s --wait`,
//! `-f --follow`, `--all --wait`): SIGINT, SIGTERM and SIGHUP. xn then says what keeps running
//! and how to reach it, and exits 128 + the signal, as a shell reports a killed command. They
//! are caught before a submission is sent, and kept until xn ends: once caught, a signal no
//! longer ends xn by itself, so every later wait must listen for them. (`xn -a` says its own
//! notes: its terminal may be raw, and Ctrl-C may belong to the job.)

use anyhow::{Context, Result};
use std::io::Write;
use tokio::signal::unix::{signal, Signal, SignalKind};

pub struct Interrupts {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl Interrupts {
    /// Catches the three signals from now on (instead of dying of them).
    pub fn catch() -> Result<Interrupts> {
        let catch = |kind: SignalKind| signal(kind).context("installing a signal handler");
        Ok(Interrupts {
            int: catch(SignalKind::interrupt())?,
            term: catch(SignalKind::terminate())?,
            hup: catch(SignalKind::hangup())?,
        })
    }

    /// Waits for one of them; returns the exit code it means (130, 143 or 129).
    pub async fn recv(&mut self) -> i32 {
        tokio::select! {
            _ = self.int.recv() => 128 + libc::SIGINT,
            _ = self.term.recv() => 128 + libc::SIGTERM,
            _ = self.hup.recv() => 128 + libc::SIGHUP,
        }
    }
}

/// Says on stderr that xn stopped (`code` from [`Interrupts::recv`]) and what keeps running.
/// A write error is ignored: after SIGHUP the terminal may be gone.
pub fn say_left(code: i32, what_runs: &str) {
    let how = match code - 128 {
        libc::SIGINT => "interrupted",
        libc::SIGHUP => "hung up",
        _ => "terminated",
    };
    let _ = writeln!(std::io::stderr(), "[xn {how}; {what_runs}]");
}
