//! Write-behind for output logs: what a long stream leaves in the page cache.
//!
//! Without it, every byte of a long stream stays in the cache as a dirty page until the kernel
//! writes it out on its own schedule (or throttles the writer), and a stream of many GiB
//! pushes everything else out of the cache. With it, each [`WINDOW`] of a log is handed to the
//! disk as soon as it is full, and the cache keeps the last two windows plus whatever a live
//! follower has yet to read: windows behind both are dropped once written (a page still dirty
//! is kept by the kernel, and a later call drops it). The pages freed are the next ones the
//! log takes, which on a VM that backs fresh guest memory lazily is most of the cost of
//! storing (BENCHMARKS.md).
//!
//! The advice is given on a thread of its own ([`behind`]): starting a window's writeback (ext4
//! allocates its blocks then) takes milliseconds, and in the thread that appends it held up
//! the acknowledgements the slave waits for, so the whole pipeline stalled with it.
//!
//! Advice only: nothing stored depends on it, a failed call is ignored, and a reader that
//! finds its bytes dropped reads them from the disk.

use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// A log is written out and dropped from the cache in windows of this size; logs shorter than
/// one are left entirely to the kernel.
pub const WINDOW: u64 = 8 << 20;

/// Windows a trim looks back over, for pages that were still dirty at the previous one.
const LOOK_BACK: u64 = 8;

/// Advice waiting for the write-behind thread before the threads that append or read give it
/// themselves (then the disk is slower than the output, and they should wait for it).
const QUEUE: usize = 16;

/// The cache state of one stream of one log, shared by its writer and its followers.
#[derive(Debug, Default)]
pub struct Trim {
    /// The length written through this log handle (0 while it has written nothing).
    written: AtomicU64,
    /// Where the live followers of the stream are.
    readers: Mutex<Vec<Weak<AtomicU64>>>,
}

/// A follower's position in a stream: nothing it has yet to read is dropped from the cache
/// while the mark lives.
#[derive(Debug)]
pub struct ReadMark(Arc<AtomicU64>);

impl ReadMark {
    pub fn set(&self, pos: u64) {
        self.0.store(pos, Ordering::Relaxed);
    }
}

impl Trim {
    fn readers(&self) -> std::sync::MutexGuard<'_, Vec<Weak<AtomicU64>>> {
        // Positions only; a panic elsewhere leaves nothing half-done here.
        self.readers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a follower at `pos`.
    pub fn reader(&self, pos: u64) -> ReadMark {
        let mark = Arc::new(AtomicU64::new(pos));
        let mut readers = self.readers();
        readers.retain(|r| r.strong_count() > 0);
        readers.push(Arc::downgrade(&mark));
        ReadMark(mark)
    }

    /// The writer appended `[at, end)`: a window that just filled goes to the disk, and what
    /// everyone is done with leaves the cache.
    pub fn appended(&self, f: &File, at: u64, end: u64) {
        self.written.store(end, Ordering::Relaxed);
        let filled = end / WINDOW * WINDOW;
        if filled > at && filled >= WINDOW {
            // DONTNEED on dirty pages starts their writeback (and drops nothing yet).
            let window = (filled - WINDOW, filled);
            let trim = self.trim_range();
            advise_behind(f, move |f| {
                advise(f, window);
                if let Some(r) = trim {
                    advise(f, r);
                }
            });
        }
    }

    /// A reader read `[at, end)`: when it crossed into another window, the cache behind it
    /// may go.
    pub fn read(&self, f: &File, at: u64, end: u64) {
        if end / WINDOW > at / WINDOW {
            if let Some(r) = self.trim_range() {
                advise_behind(f, move |f| advise(f, r));
            }
        }
    }

    /// What to drop: the windows behind the last two written and behind every live follower.
    fn trim_range(&self) -> Option<(u64, u64)> {
        let keep = keep_from(self.written.load(Ordering::Relaxed), &self.positions());
        (keep > 0).then(|| (keep.saturating_sub(LOOK_BACK * WINDOW), keep))
    }

    /// The positions of the live followers.
    fn positions(&self) -> Vec<u64> {
        self.readers()
            .iter()
            .filter_map(Weak::upgrade)
            .map(|r| r.load(Ordering::Relaxed))
            .collect()
    }
}

/// Where the cache must start keeping a log written up to `written` and read by followers at
/// `readers`: a window boundary at least two windows behind the end and behind every follower.
fn keep_from(written: u64, readers: &[u64]) -> u64 {
    let keep = readers
        .iter()
        .fold(written.saturating_sub(2 * WINDOW), |k, &r| k.min(r));
    keep / WINDOW * WINDOW
}

/// Gives advice on `f` on the write-behind thread (with a descriptor of its own), or here when
/// that thread is [`QUEUE`] behind or cannot be had.
fn advise_behind(f: &File, advice: impl FnOnce(&File) + Send + 'static) {
    match f.try_clone() {
        Ok(own) => behind(Box::new(move || advice(&own))),
        Err(_) => advice(f),
    }
}

type Advice = Box<dyn FnOnce() + Send>;

/// Runs `advice` on the write-behind thread, which is started on first use and lives as long as
/// the process; in order, one at a time. When its queue is full or it could not be started,
/// `advice` is given here.
fn behind(advice: Advice) {
    static THREAD: OnceLock<Option<SyncSender<Advice>>> = OnceLock::new();
    let tx = THREAD.get_or_init(|| {
        let (tx, rx) = mpsc::sync_channel::<Advice>(QUEUE);
        std::thread::Builder::new()
            .name("log-writeback".into())
            .spawn(move || rx.into_iter().for_each(|advice| advice()))
            .ok()
            .map(|_| tx)
    });
    match tx {
        Some(tx) => match tx.try_send(advice) {
            Ok(()) => {}
            Err(TrySendError::Full(advice) | TrySendError::Disconnected(advice)) => advice(),
        },
        None => advice(),
    }
}

fn advise(f: &File, (from, to): (u64, u64)) {
    if let (Ok(from), Ok(len)) = (i64::try_from(from), i64::try_from(to - from)) {
        // On Linux, DONTNEED writes back dirty pages in the range (without waiting) and drops
        // the clean ones.
        let _ = posix_fadvise(f, from, len, PosixFadviseAdvice::POSIX_FADV_DONTNEED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_two_windows_and_everything_a_follower_has_yet_to_read() {
        assert_eq!(keep_from(0, &[]), 0);
        assert_eq!(keep_from(2 * WINDOW + 5, &[]), 0);
        assert_eq!(keep_from(5 * WINDOW + 5, &[]), 3 * WINDOW);
        // A follower behind holds the cache from the window it is in.
        assert_eq!(keep_from(5 * WINDOW, &[WINDOW + 7]), WINDOW);
        assert_eq!(
            keep_from(5 * WINDOW, &[4 * WINDOW, 2 * WINDOW + 1]),
            2 * WINDOW
        );
        // One that is caught up holds nothing back.
        assert_eq!(keep_from(5 * WINDOW, &[5 * WINDOW]), 3 * WINDOW);
        // A follower at 0 (attached from the start, nothing read yet) keeps it all.
        assert_eq!(keep_from(50 * WINDOW, &[0]), 0);
    }

    #[test]
    fn advice_is_given_on_the_write_behind_thread_in_order() {
        let (tx, rx) = mpsc::channel();
        for i in 0..3 {
            let tx = tx.clone();
            behind(Box::new(move || {
                let name = std::thread::current().name().map(str::to_string);
                tx.send((i, name)).unwrap();
            }));
        }
        let wait = std::time::Duration::from_secs(10);
        for i in 0..3 {
            let (got, name) = rx.recv_timeout(wait).unwrap();
            assert_eq!(got, i);
            assert_eq!(name.as_deref(), Some("log-writeback"));
        }
    }

    #[test]
    fn marks_follow_their_readers_and_go_with_them() {
        let t = Trim::default();
        let a = t.reader(0);
        let b = t.reader(3 * WINDOW);
        a.set(2 * WINDOW);
        assert_eq!(t.positions(), [2 * WINDOW, 3 * WINDOW]);
        drop(a);
        assert_eq!(t.positions(), [3 * WINDOW]);
        drop(b);
        let _c = t.reader(7);
        // Registering prunes the marks of followers that are gone.
        assert_eq!(t.readers().len(), 1);
        assert_eq!(t.positions(), [7]);
    }
}
