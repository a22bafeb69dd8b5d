//! Writes job output to our stdout or stderr from a thread of its own (started with the first
//! bytes), so that a slow terminal or pipe never blocks the async runtime, and bytes go out
//! exactly as they came.

use bytes::Bytes;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::thread::JoinHandle;

/// Chunks queued for the writer thread before the producer waits.
const QUEUE: usize = 64;

/// Which of our own streams to write to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fd {
    Stdout,
    Stderr,
}

pub struct Sink {
    fd: Fd,
    tx: Option<SyncSender<Bytes>>,
    thread: Option<JoinHandle<io::Result<()>>>,
    closed: bool,
}

impl Sink {
    /// A sink whose writer thread starts with the first bytes (a job that prints nothing
    /// costs no thread).
    pub fn new(fd: Fd) -> Sink {
        Sink {
            fd,
            tx: None,
            thread: None,
            closed: false,
        }
    }

    fn start(&mut self) -> Option<SyncSender<Bytes>> {
        if self.closed {
            return None;
        }
        if self.tx.is_none() {
            let (tx, rx) = sync_channel::<Bytes>(QUEUE);
            let fd = self.fd;
            self.thread = Some(std::thread::spawn(move || -> io::Result<()> {
                // Our own handle on the descriptor, written to directly: `io::stdout()` is
                // line-buffered and scanned every chunk for its last newline (8 % of xn's CPU
                // while streaming 1 GiB), and nothing waits in a buffer of ours.
                let mut raw = File::from(match fd {
                    Fd::Stdout => io::stdout().as_fd().try_clone_to_owned()?,
                    Fd::Stderr => io::stderr().as_fd().try_clone_to_owned()?,
                });
                while let Ok(chunk) = rx.recv() {
                    // Hold std's lock for the batch (not for the thread's life), so that a
                    // message printed meanwhile (`println!`, `eprintln!`) lands between
                    // chunks, not inside one; what it buffered goes out first.
                    let mut std: Box<dyn Write> = match fd {
                        Fd::Stdout => Box::new(io::stdout().lock()),
                        Fd::Stderr => Box::new(io::stderr().lock()),
                    };
                    std.flush()?;
                    raw.write_all(&chunk)?;
                    while let Ok(more) = rx.try_recv() {
                        raw.write_all(&more)?;
                    }
                }
                Ok(())
            }));
            self.tx = Some(tx);
        }
        self.tx.clone()
    }

    /// Queues bytes. Fails (with the writer's error, e.g. a broken pipe) once the writer
    /// stopped.
    pub async fn write(&mut self, chunk: Bytes) -> io::Result<()> {
        let tx = self
            .start()
            .ok_or_else(|| io::Error::other("output closed"))?;
        let sent = match tx.try_send(chunk) {
            Ok(()) => true,
            // The writer is behind: wait for room off the runtime.
            Err(TrySendError::Full(chunk)) => {
                tokio::task::spawn_blocking(move || tx.send(chunk).is_ok())
                    .await
                    .unwrap_or(false)
            }
            Err(TrySendError::Disconnected(_)) => false,
        };
        if sent {
            Ok(())
        } else {
            Err(self.finish_err())
        }
    }

    fn finish_err(&mut self) -> io::Error {
        match self.close() {
            Err(e) => e,
            Ok(()) => io::Error::other("output closed"),
        }
    }

    /// Waits until everything queued is written.
    pub fn close(&mut self) -> io::Result<()> {
        self.closed = true;
        self.tx.take();
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("writer panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
