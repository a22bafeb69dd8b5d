//! The most recent output of each live job, kept in memory so that followers who are caught up
//! (the usual case: `xn -s --wait`, `xn -a`) get new bytes without reading back what was just
//! written to the log. A follower that falls behind what is kept here reads the log file, as
//! every reader did before; the file stays the truth, and this is only ever a copy of its tail.
//!
//! Bounded: at most [`RECENT_BYTES`] per job and stream, held only while the job is live.

use crate::wire::Stream;
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

/// Output kept in memory per live job and stream.
pub const RECENT_BYTES: usize = 512 << 10;

/// The tails of one attempt's two output streams.
#[derive(Default)]
pub struct Recent {
    streams: [Mutex<Tail>; 2],
}

/// Contiguous bytes `[start, start + len)` of one stream, as the chunks that were stored.
#[derive(Default)]
struct Tail {
    start: u64,
    len: usize,
    chunks: VecDeque<Bytes>,
}

impl Recent {
    fn lock(&self, stream: Stream) -> MutexGuard<'_, Tail> {
        // Nothing panics while holding it; the data is a cache, so go on with it.
        self.streams[stream.output_index()]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Records bytes just appended to the log at `offset`. Bytes that do not follow what is
    /// kept (after a hub restart, say) start the tail afresh. `data` is kept as it is, not
    /// copied: a slice of the frame received keeps that frame's buffer alive, so the memory
    /// held is at most about [`RECENT_BYTES`] plus the rest of the last frames' buffers.
    pub fn push(&self, stream: Stream, offset: u64, data: Bytes) {
        if data.is_empty() {
            return;
        }
        let mut t = self.lock(stream);
        if t.start + t.len as u64 != offset || t.chunks.is_empty() {
            t.chunks.clear();
            t.start = offset;
            t.len = 0;
        }
        t.len += data.len();
        t.chunks.push_back(data);
        while t.len > RECENT_BYTES {
            let Some(old) = t.chunks.pop_front() else {
                break;
            };
            t.len -= old.len();
            t.start += old.len() as u64;
        }
    }

    /// Up to `max` bytes of `stream` from offset `at`, if they are still kept (no copy).
    pub fn read(&self, stream: Stream, at: u64, max: usize) -> Option<Bytes> {
        let t = self.lock(stream);
        if at < t.start || at >= t.start + t.len as u64 {
            return None;
        }
        let mut pos = t.start;
        for c in &t.chunks {
            let end = pos + c.len() as u64;
            if at < end {
                let from = (at - pos) as usize;
                return Some(c.slice(from..c.len().min(from + max)));
            }
            pos = end;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_bounded_contiguous_tail() {
        let r = Recent::default();
        let chunk = Bytes::from(vec![7u8; 100 << 10]);
        for i in 0..10u64 {
            r.push(Stream::Stdout, i * (100 << 10), chunk.clone());
        }
        assert!(r.read(Stream::Stdout, 0, 10).is_none(), "oldest evicted");
        let last = 9 * (100 << 10);
        assert_eq!(
            r.read(Stream::Stdout, last + 5, 1 << 20).unwrap().len(),
            (100 << 10) - 5
        );
        assert!(
            r.read(Stream::Stdout, 10 * (100 << 10), 10).is_none(),
            "not yet stored"
        );
        assert!(r.read(Stream::Stderr, last, 10).is_none());
        let kept: usize = r.lock(Stream::Stdout).len;
        assert!(kept <= RECENT_BYTES);
        // A gap starts afresh.
        r.push(Stream::Stdout, 1 << 30, Bytes::from_static(b"xyz"));
        assert!(r.read(Stream::Stdout, last, 10).is_none());
        assert_eq!(
            &r.read(Stream::Stdout, (1 << 30) + 1, 10).unwrap()[..],
            b"yz"
        );
    }
}
