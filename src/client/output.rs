//! Writes job output to our stdout or stderr from a thread of its own (started with the first
//! bytes), so that a slow terminal or pipe never blocks the async runtime, and bytes go out
//! exactly as they came. It remembers the last byte, so that a note of xn's own never runs
//! into a line the job left open.

use bytes::Bytes;
use std::fs::File;
use std::io::{self, IsTerminal, Write};
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
    /// The last byte queued (so, once closed, the last byte written).
    last: Option<u8>,
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
            last: None,
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
        if let Some(&b) = chunk.last() {
            self.last = Some(b);
        }
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

    /// Whether what was written ends inside a line (there was output, and its last byte is not
    /// a newline).
    pub fn ends_mid_line(&self) -> bool {
        self.last.is_some_and(|b| b != b'\n')
    }

    /// Waits until everything queued is written; the next write starts a new writer. For a
    /// note of xn's own in the middle of the output, which must not overtake it.
    pub fn drain(&mut self) -> io::Result<()> {
        self.tx.take();
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("writer panicked"))),
            None => Ok(()),
        }
    }

    /// Waits until everything queued is written; nothing more is written after.
    pub fn close(&mut self) -> io::Result<()> {
        self.closed = true;
        self.drain()
    }
}

/// Before a note of xn's own while the job's output goes on: writes out what is queued, then
/// ends a line it left open (as [`end_lines`]), and remembers that it did.
pub fn before_note(out: &mut Sink, err: &mut Sink) {
    let _ = out.drain();
    let _ = err.drain();
    end_lines(out, err);
    if err.ends_mid_line() {
        err.last = Some(b'\n');
    } else if out.ends_mid_line() && io::stdout().is_terminal() && io::stderr().is_terminal() {
        out.last = Some(b'\n');
    }
}

/// Ends a line the job's output left open before xn writes a note of its own to stderr: on
/// stderr, where the note follows; on stdout only when it and stderr are terminals (the note
/// would show right after it there), so that stdout in a file or pipe stays the job's bytes
/// exactly. Call it once both sinks are closed (everything queued is written).
pub fn end_lines(out: &Sink, err: &Sink) {
    // A raw terminal does not add the carriage return.
    let eol: &[u8] = if super::terminal::is_raw() {
        b"\r\n"
    } else {
        b"\n"
    };
    if err.ends_mid_line() {
        let _ = io::stderr().write_all(eol);
    } else if out.ends_mid_line() && io::stdout().is_terminal() && io::stderr().is_terminal() {
        let mut stdout = io::stdout();
        let _ = stdout.write_all(eol).and_then(|()| stdout.flush());
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::{Fd, Sink};
    use bytes::Bytes;

    #[tokio::test]
    async fn a_sink_knows_whether_its_output_ends_mid_line() {
        let mut sink = Sink::new(Fd::Stderr);
        assert!(!sink.ends_mid_line(), "no output, no open line");
        sink.write(Bytes::from_static(b"a\nb")).await.unwrap();
        assert!(sink.ends_mid_line());
        sink.write(Bytes::new()).await.unwrap();
        assert!(sink.ends_mid_line(), "an empty chunk changes nothing");
        sink.write(Bytes::from_static(b"\n")).await.unwrap();
        sink.close().unwrap();
        assert!(!sink.ends_mid_line());
    }
}
