//! Writes job output to our stdout or stderr from a thread of its own, so that a slow terminal
//! or pipe never blocks the async runtime, and bytes go out exactly as they came.

use bytes::Bytes;
use std::io::{self, Write};
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
    tx: Option<SyncSender<Bytes>>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Sink {
    pub fn new(fd: Fd) -> Sink {
        let (tx, rx) = sync_channel::<Bytes>(QUEUE);
        let thread = std::thread::spawn(move || -> io::Result<()> {
            while let Ok(chunk) = rx.recv() {
                // Lock per batch, not for the thread's life: messages on stderr (`eprintln!`)
                // take the same lock.
                let mut out: Box<dyn Write> = match fd {
                    Fd::Stdout => Box::new(io::stdout().lock()),
                    Fd::Stderr => Box::new(io::stderr().lock()),
                };
                out.write_all(&chunk)?;
                // Flush whenever we catch up, so interactive output is never held back.
                while let Ok(more) = rx.try_recv() {
                    out.write_all(&more)?;
                }
                out.flush()?;
            }
            Ok(())
        });
        Sink {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    /// Queues bytes. Fails (with the writer's error, e.g. a broken pipe) once the writer
    /// stopped.
    pub async fn write(&mut self, chunk: Bytes) -> io::Result<()> {
        let tx = self
            .tx
            .clone()
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
