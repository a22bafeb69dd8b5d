//! Disk blocks reserved ahead of a long log, a chunk at a time, and given back past its end
//! when the job ends.
//!
//! A log written a frame at a time leaves ext4 (delayed allocation) to reserve and later
//! allocate its blocks page by page, in the thread that appends and in the write-behind's
//! writeback; blocks allocated in advance (`fallocate` with `FALLOC_FL_KEEP_SIZE`, so the
//! file's length still says what was stored) take most of that work out of both: a sixth
//! less hub CPU per GiB streamed, and 8–17 % more MB/s (BENCHMARKS.md, round 8). Logs
//! shorter than [`FROM`] are left alone.
//!
//! Only an optimization: a file system that refuses, or has less than 1 GiB free, is left to
//! do as before, and what was reserved is given back by truncating the file to its length.
//! That truncation and the appends hold the same lock, so no byte appended meanwhile is cut
//! off.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::sync::{Mutex, MutexGuard};

/// A log gets blocks reserved once it is this long.
pub const FROM: u64 = 8 << 20;

/// Blocks are reserved up to the end of the chunk after the one being written.
pub const CHUNK: u64 = 64 << 20;

/// Nothing is reserved on a file system with less room than this: a reservation must never
/// be what fills the disk (and fails the job database's next commit).
const MIN_ROOM: u64 = 16 * CHUNK;

/// The reservation of one stream of one log.
#[derive(Debug, Default)]
pub struct Reserve(Mutex<State>);

#[derive(Debug, Default)]
struct State {
    /// Blocks were reserved, or skipped for want of room, up to here (0: not yet).
    upto: u64,
    /// The file system refused once: do not ask again.
    refused: bool,
}

impl Reserve {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Two numbers; a panic while they are held leaves them usable.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `write`, an append that takes the log `f` from `at` to `end`, after reserving
    /// blocks for it and a chunk beyond when the log is long enough.
    pub fn append<T>(
        &self,
        f: &File,
        span: (u64, u64),
        write: impl FnOnce() -> io::Result<T>,
    ) -> io::Result<T> {
        self.append_if_room(f, span, || room(f), write)
    }

    /// [`append`](Self::append), with `room` telling the bytes free on `f`'s file system
    /// (`None`: unknown), asked only when a reservation is due.
    fn append_if_room<T>(
        &self,
        f: &File,
        (at, end): (u64, u64),
        room: impl FnOnce() -> Option<u64>,
        write: impl FnOnce() -> io::Result<T>,
    ) -> io::Result<T> {
        let mut st = self.lock();
        if end >= FROM && end > st.upto && !st.refused {
            let from = at.max(st.upto);
            let to = (end / CHUNK + 1) * CHUNK;
            if room().is_some_and(|r| r >= MIN_ROOM) {
                st.refused = reserve(f, from, to).is_err();
            }
            // Reserved, or not this chunk: asked again at the next one.
            st.upto = to;
        }
        write()
    }

    /// Gives back the blocks reserved past the end of `f`: by this process, or, for a log
    /// long enough to have them, by an earlier hub on the same data that a crash stopped
    /// before the job ended.
    pub fn release(&self, f: &File) -> io::Result<()> {
        let mut st = self.lock();
        let len = f.metadata()?.len();
        if st.upto > 0 || len >= FROM {
            // Truncating to its own length frees the blocks past it; the length, and every
            // byte stored, stay.
            f.set_len(len)?;
            st.upto = 0;
        }
        Ok(())
    }
}

/// Bytes free on `f`'s file system for an unprivileged writer.
fn room(f: impl AsFd) -> Option<u64> {
    let st = nix::sys::statvfs::fstatvfs(f).ok()?;
    Some(st.blocks_available().saturating_mul(st.fragment_size()))
}

fn reserve(f: impl AsFd, from: u64, to: u64) -> io::Result<()> {
    let (Ok(offset), Ok(len)) = (i64::try_from(from), i64::try_from(to - from)) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    let keep = nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE;
    nix::fcntl::fallocate(f, keep, offset, len)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;

    fn allocated(f: &File) -> u64 {
        f.metadata().unwrap().blocks() * 512
    }

    #[test]
    fn a_long_log_has_blocks_ahead_until_released_and_keeps_its_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let f = File::options()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .unwrap();
        if reserve(&f, 0, 4096).is_err() {
            eprintln!("skipped: this file system does not reserve blocks (fallocate)");
            return;
        }
        f.set_len(0).unwrap();
        let r = Reserve::default();
        let chunk = vec![7u8; 1 << 20];
        let mut at = 0;
        while at < FROM {
            let end = at + chunk.len() as u64;
            r.append(&f, (at, end), || (&f).write_all(&chunk)).unwrap();
            at = end;
        }
        assert_eq!(
            f.metadata().unwrap().len(),
            FROM,
            "the length says what was written"
        );
        assert!(
            allocated(&f) >= CHUNK,
            "blocks reserved up to the chunk's end"
        );
        r.release(&f).unwrap();
        assert_eq!(f.metadata().unwrap().len(), FROM);
        assert!(
            allocated(&f) < FROM + (1 << 20),
            "given back: {}",
            allocated(&f)
        );
        assert_eq!(std::fs::read(&path).unwrap(), vec![7u8; FROM as usize]);
        // What a hub that crashed had reserved is given back by the next one's release.
        reserve(&f, FROM, CHUNK).unwrap();
        assert!(allocated(&f) >= CHUNK);
        Reserve::default().release(&f).unwrap();
        assert!(
            allocated(&f) < FROM + (1 << 20),
            "given back: {}",
            allocated(&f)
        );
        assert_eq!(f.metadata().unwrap().len(), FROM);
        // Short logs reserve nothing.
        let short = File::create(dir.path().join("short")).unwrap();
        Reserve::default()
            .append(&short, (0, 5), || (&short).write_all(b"hello"))
            .unwrap();
        assert!(allocated(&short) < 1 << 20);
    }

    #[test]
    fn nothing_is_reserved_on_a_file_system_short_of_room() {
        let dir = tempfile::tempdir().unwrap();
        let f = File::options()
            .create(true)
            .append(true)
            .open(dir.path().join("log"))
            .unwrap();
        if reserve(&f, 0, 4096).is_err() {
            eprintln!("skipped: this file system does not reserve blocks (fallocate)");
            return;
        }
        f.set_len(0).unwrap();
        assert!(
            room(&f).is_some_and(|r| r > 0),
            "room of a real file system"
        );
        let r = Reserve::default();
        let mib = 1u64 << 20;
        let chunk = vec![1u8; mib as usize];
        // Appends 1 MiB at the end, telling `free` as the room (a hole stands for the bytes
        // before it, so that the test writes little).
        let append = |free: Option<u64>| {
            let at = f.metadata().unwrap().len();
            r.append_if_room(&f, (at, at + mib), || free, || (&f).write_all(&chunk))
                .unwrap();
        };
        let skip_to = |len: u64| f.set_len(len).unwrap();
        let reserved = || allocated(&f);
        // Below the threshold: nothing, whatever the room.
        skip_to(FROM - 2 * mib);
        append(Some(u64::MAX));
        assert!(reserved() < 2 * mib, "reserved: {}", reserved());
        // The threshold reached with the room unknown: nothing.
        append(None);
        assert!(reserved() < 3 * mib, "reserved: {}", reserved());
        // The next chunk begun with too little room: nothing.
        skip_to(CHUNK);
        append(Some(MIN_ROOM - 1));
        assert!(reserved() < 4 * mib, "reserved: {}", reserved());
        // Room again, within a chunk already decided: nothing yet.
        append(Some(MIN_ROOM));
        assert!(reserved() < 5 * mib, "reserved: {}", reserved());
        // Room again at the next chunk: reserved to its end.
        skip_to(2 * CHUNK);
        append(Some(MIN_ROOM));
        assert!(reserved() >= CHUNK, "reserved: {}", reserved());
    }
}
