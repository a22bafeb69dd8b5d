//! A running job's input and output: the task that writes its input, reads of its pty or
//! pipes into a buffer that grows only for jobs that print much, the last reads after its
//! main process exited, and terminal resizes.

use super::start::{Out, Started};
use crate::limits::MAX_DATA_CHUNK;
use crate::slave::outbox::{Outbox, Run};
use crate::slave::pty;
use crate::wire::Stream;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::mpsc;

/// After the main process exits, how long to keep reading output that is still buffered.
const DRAIN_IDLE: Duration = Duration::from_millis(300);

/// Where input for the job goes: a task of its own, so a job that does not read its input
/// never stops us from reading its output.
pub(super) fn input_task(job: &mut Started) -> mpsc::UnboundedSender<Option<Vec<u8>>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Option<Vec<u8>>>();
    match &job.out {
        Out::Pty(master) => {
            let master = master.clone();
            let eof = pty::eof_char(master.get_ref().as_fd());
            tokio::spawn(async move {
                while let Some(msg) = rx.recv().await {
                    let data = msg.unwrap_or_else(|| vec![eof]);
                    if write_pty(&master, &data).await.is_err() {
                        break;
                    }
                }
            });
        }
        Out::Pipe(_) => {
            let mut stdin = job.stdin.take();
            tokio::spawn(async move {
                while let Some(msg) = rx.recv().await {
                    match (msg, stdin.as_mut()) {
                        (Some(data), Some(w)) => {
                            if w.write_all(&data).await.is_err() {
                                stdin = None;
                            }
                        }
                        // End of input: closing our end gives the job EOF.
                        (None, _) => stdin = None,
                        (Some(_), None) => {}
                    }
                }
            });
        }
    }
    tx
}

/// A new terminal size for a tty job.
pub(super) fn resize(out: &Out, rows: u16, cols: u16, run: Run) {
    if let Out::Pty(m) = out {
        if let Err(e) = pty::resize(m.get_ref().as_fd(), rows, cols) {
            tracing::warn!(job = run.job, "resize: {e}");
        }
    }
}

/// Reads what is still buffered after the main process exited, until EOF or a quiet spell.
pub(super) async fn drain(
    run: Run,
    job: &mut Started,
    outbox: &Outbox,
    mut out_open: bool,
    [buf, buf2]: [&mut ReadBuf; 2],
) {
    while out_open || job.err.is_some() {
        tokio::select! {
            n = read_out(&mut job.out, buf.space()), if out_open => match n {
                Some(n) => outbox.push(run, Stream::Stdout, buf.filled(n)).await,
                None => out_open = false,
            },
            n = read_err(&mut job.err, buf2.space()) => match n {
                Some(n) => outbox.push(run, Stream::Stderr, buf2.filled(n)).await,
                None => job.err = None,
            },
            _ = tokio::time::sleep(DRAIN_IDLE) => return,
        }
    }
}

/// A read buffer that starts small and grows to a whole data frame once a read fills it: most
/// jobs print a few lines, and zeroing (and faulting in) 64 KiB per stream per job showed up
/// in the slave's profile when jobs are short.
pub(super) struct ReadBuf(Vec<u8>);

impl ReadBuf {
    const FIRST: usize = 4096;

    pub(super) fn new() -> ReadBuf {
        ReadBuf(vec![0; Self::FIRST])
    }

    pub(super) fn space(&mut self) -> &mut [u8] {
        &mut self.0
    }

    /// The `n` bytes just read; grows the buffer for the next read if they filled it.
    pub(super) fn filled(&mut self, n: usize) -> &[u8] {
        if n == self.0.len() && n < MAX_DATA_CHUNK {
            self.0.resize(MAX_DATA_CHUNK, 0);
        }
        &self.0[..n]
    }
}

pub(super) async fn read_out(out: &mut Out, buf: &mut [u8]) -> Option<usize> {
    match out {
        Out::Pty(master) => read_pty(master, buf).await,
        Out::Pipe(stdout) => read_pipe(stdout, buf).await,
    }
}

/// Reads stderr; never ready when there is none.
pub(super) async fn read_err(err: &mut Option<pipe::Receiver>, buf: &mut [u8]) -> Option<usize> {
    match err {
        Some(e) => read_pipe(e, buf).await,
        None => std::future::pending().await,
    }
}

async fn read_pipe<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> Option<usize> {
    match r.read(buf).await {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(n),
    }
}

/// One read from the pty master; `None` at the end (EIO: every slave-side fd is closed).
async fn read_pty(master: &AsyncFd<OwnedFd>, buf: &mut [u8]) -> Option<usize> {
    loop {
        let mut guard = master.readable().await.ok()?;
        match guard
            .try_io(|fd| nix::unistd::read(fd.get_ref().as_fd(), buf).map_err(io::Error::from))
        {
            Ok(Ok(0)) => return None,
            Ok(Ok(n)) => return Some(n),
            Ok(Err(_)) => return None,
            Err(_would_block) => continue,
        }
    }
}

async fn write_pty(master: &AsyncFd<OwnedFd>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let mut guard = master.writable().await?;
        match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), data).map_err(io::Error::from)) {
            Ok(Ok(n)) => data = &data[n..],
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
    Ok(())
}
