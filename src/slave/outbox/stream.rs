//! One stream of one job in the outbox: the bytes not yet acknowledged, what was sent, what
//! the hub has answered, and the drop-oldest-unsent rule for while the hub is away.

use crate::limits::{MAX_DATA_CHUNK, SLAVE_WINDOW_BYTES};
use crate::wire::JobId;
use std::collections::VecDeque;

#[derive(Default)]
pub(super) struct StreamBuf {
    /// Offset the hub has acknowledged; `buf` holds the bytes from here on.
    pub(super) acked: u64,
    /// Offset sent in this session.
    pub(super) sent: u64,
    /// Highest offset ever sent: the hub may hold bytes up to here, so they are never dropped.
    pub(super) sent_hw: u64,
    /// The hub answered every frame up to here in this session: acknowledged it, or refused
    /// it with an `error` (it could not store it). What lies between here (or `acked`) and
    /// `sent` is in flight. Refused bytes count as settled, or a hub that cannot store output
    /// would close the window for good and the job would never end.
    pub(super) settled: u64,
    pub(super) buf: VecDeque<u8>,
    /// The last drop marker not yet sent: (stream offset, its length, bytes it stands for). A
    /// drop right behind it replaces it with one marker counting both.
    pub(super) marker: Option<(u64, usize, usize)>,
}

impl StreamBuf {
    pub(super) fn produced(&self) -> u64 {
        self.acked + self.buf.len() as u64
    }

    /// Bytes never sent to the hub, in any session: the ones that may be dropped.
    pub(super) fn unsent_len(&self) -> usize {
        let sent = (self.sent_hw.max(self.acked) - self.acked) as usize;
        self.buf.len().saturating_sub(sent)
    }

    /// Bytes sent in this session that the hub has not answered yet.
    pub(super) fn in_flight(&self) -> u64 {
        self.sent - self.acked.max(self.settled).min(self.sent)
    }

    /// The next frame's length: with nothing in flight, whatever is there (so interactive
    /// output is not held back); otherwise only a full frame, and only while the window has
    /// room. What was read meanwhile waits for an answer and goes out coalesced.
    pub(super) fn next_frame_len(&self) -> usize {
        let ready = self.buf.len() - (self.sent - self.acked) as usize;
        let in_flight = self.in_flight();
        if in_flight == 0 {
            ready.min(MAX_DATA_CHUNK)
        } else if ready >= MAX_DATA_CHUNK && in_flight + MAX_DATA_CHUNK as u64 <= SLAVE_WINDOW_BYTES
        {
            MAX_DATA_CHUNK
        } else {
            0
        }
    }

    /// Appends `n` bytes from offset `sent` to `frame`, as at most two slice copies.
    pub(super) fn copy_unsent(&self, n: usize, frame: &mut Vec<u8>) {
        let from = (self.sent - self.acked) as usize;
        let (a, b) = self.buf.as_slices();
        if from < a.len() {
            let k = n.min(a.len() - from);
            frame.extend_from_slice(&a[from..from + k]);
            frame.extend_from_slice(&b[..n - k]);
        } else {
            let from = from - a.len();
            frame.extend_from_slice(&b[from..from + n]);
        }
    }
}

/// What replaces output dropped while the hub was away, so that the loss is never silent: a
/// line of its own, begun with a line break unless the output before it ended a line; its
/// line breaks a terminal's (`\r\n`) for a `tty` job, else `\n`.
fn drop_marker(n: usize, at_line_start: bool, tty: bool) -> Vec<u8> {
    let nl = if tty { "\r\n" } else { "\n" };
    let br = if at_line_start { "" } else { nl };
    format!("{br}[execnode: {n} bytes of output dropped here: the hub was unreachable]{nl}")
        .into_bytes()
}

/// Drops up to `want` bytes that were never sent, the oldest first, and puts a marker in their
/// place. Bytes that were sent once may be stored at the hub already, so they stay.
pub(super) fn drop_oldest_unsent(id: JobId, s: &mut StreamBuf, want: usize, tty: bool) {
    let at = s.sent_hw.max(s.acked);
    let start = (at - s.acked) as usize;
    // A marker still unsent at the start of the droppable region is merged into the new one,
    // so the count in the log is the whole loss.
    let (old_len, old_count) = match s.marker {
        Some((pos, len, count)) if pos == at => (len, count),
        _ => (0, 0),
    };
    let n = want.min(s.buf.len().saturating_sub(start + old_len));
    if n == 0 {
        return;
    }
    let mut tail = s.buf.split_off(start);
    tail.drain(..old_len + n);
    // The byte before the dropped ones, if it is still here (else it was acknowledged, unseen).
    let at_line_start = match start.checked_sub(1) {
        Some(i) => s.buf[i] == b'\n',
        None => s.acked == 0,
    };
    let marker = drop_marker(old_count + n, at_line_start, tty);
    s.marker = Some((at, marker.len(), old_count + n));
    s.buf.extend(marker);
    s.buf.append(&mut tail);
    tracing::warn!(
        job = id,
        "hub unreachable and output buffer full: dropped {n} bytes ({} in a row)",
        old_count + n
    );
}
