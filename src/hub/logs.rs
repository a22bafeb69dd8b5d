//! Output logs: one append-only file per job and stream, `DATA/logs/ID.out` and `ID.err`; a
//! retried job's later attempts get files of their own, `ID.N.out` and `ID.N.err` (N ≥ 2), so
//! every attempt's output is kept apart and nothing is ever renamed.
//!
//! The hub is the only writer. Every consumer reads by offset, from the file (the page cache
//! keeps recent bytes hot), so replaying history and following live output are one code path,
//! and a slow reader costs a file offset, not memory. All calls here block: run them on
//! `spawn_blocking`, never on the async runtime. What a long stream leaves in the page cache
//! is bounded by `cache` (write-behind).

use crate::wire::{JobId, Stream};
pub use cache::ReadMark;
use cache::Trim;
use reserve::Reserve;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

mod cache;
mod reserve;

/// The log directory.
#[derive(Clone, Debug)]
pub struct Logs {
    dir: PathBuf,
}

/// One job's two log files, opened on first use and closed when dropped.
#[derive(Debug)]
pub struct JobLog {
    out_path: PathBuf,
    err_path: PathBuf,
    out: OnceLock<File>,
    err: OnceLock<File>,
    /// Write-behind state of stdout and stderr.
    trims: [Trim; 2],
    /// Disk blocks reserved ahead of stdout and stderr.
    reserves: [Reserve; 2],
}

impl Logs {
    pub fn open(data: &Path) -> io::Result<Logs> {
        let dir = data.join("logs");
        std::fs::create_dir_all(&dir)?;
        Ok(Logs { dir })
    }

    /// The log of one attempt of a job (the first attempt is 1).
    pub fn job(&self, id: JobId, attempt: u32) -> JobLog {
        JobLog {
            out_path: self.path(id, attempt, Stream::Stdout),
            err_path: self.path(id, attempt, Stream::Stderr),
            out: OnceLock::new(),
            err: OnceLock::new(),
            trims: Default::default(),
            reserves: Default::default(),
        }
    }

    fn path(&self, id: JobId, attempt: u32, stream: Stream) -> PathBuf {
        let ext = if stream == Stream::Stderr {
            "err"
        } else {
            "out"
        };
        if attempt <= 1 {
            self.dir.join(format!("{id}.{ext}"))
        } else {
            self.dir.join(format!("{id}.{attempt}.{ext}"))
        }
    }

    /// Removes the log files of every attempt of a job up to `attempts` (blocking). Files
    /// that were never written are not an error.
    pub fn remove(&self, id: JobId, attempts: u32) -> io::Result<()> {
        for attempt in 1..=attempts.max(1) {
            for stream in [Stream::Stdout, Stream::Stderr] {
                match std::fs::remove_file(self.path(id, attempt, stream)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Bytes stored for a job's stream in one attempt (0 when it has none).
    pub fn len(&self, id: JobId, attempt: u32, stream: Stream) -> u64 {
        std::fs::metadata(self.path(id, attempt, stream))
            .map(|m| m.len())
            .unwrap_or(0)
    }
}

impl JobLog {
    /// The stream's file, opened for reading and appending; created only for a writer
    /// (`create`), so that a reader of a deleted job leaves no empty file behind.
    fn file(&self, stream: Stream, create: bool) -> io::Result<&File> {
        let (cell, path) = match stream {
            Stream::Stderr => (&self.err, &self.err_path),
            _ => (&self.out, &self.out_path),
        };
        if let Some(f) = cell.get() {
            return Ok(f);
        }
        let f = OpenOptions::new()
            .read(true)
            .append(true)
            .create(create)
            .open(path)?;
        // Another thread may have won the race; either file handle is equally good.
        Ok(cell.get_or_init(|| f))
    }

    fn trim(&self, stream: Stream) -> &Trim {
        &self.trims[stream.output_index()]
    }

    /// Appends bytes at `at`, the stream's stored length (the caller knows it and passes only
    /// new bytes). A write that fails (a full disk) leaves the file at `at`: the bytes it may
    /// have written in part are cut off again, so that the same bytes can be appended later.
    pub fn append(&self, stream: Stream, at: u64, data: &[u8]) -> io::Result<()> {
        let f = self.file(stream, true)?;
        let end = at + data.len() as u64;
        let write = || {
            (&*f).write_all(data).inspect_err(|_| {
                if let Err(e) = f.set_len(at) {
                    tracing::error!("cutting a failed append back to {at} bytes: {e}");
                }
            })
        };
        self.reserves[stream.output_index()].append(f, (at, end), write)?;
        self.trim(stream).appended(f, at, end);
        Ok(())
    }

    /// Marks a follower's position in `stream`, so the cache keeps what it has yet to read.
    pub fn reader(&self, stream: Stream, pos: u64) -> ReadMark {
        self.trim(stream).reader(pos)
    }

    /// Reads up to `max` bytes at `offset`; shorter only at the end of what is stored.
    pub fn read_at(&self, stream: Stream, offset: u64, max: usize) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.read_into(stream, offset, max, &mut buf)?;
        Ok(buf)
    }

    /// Appends up to `max` bytes read at `offset` to `buf` (which may already hold a frame
    /// header, so the bytes are read straight into the frame that will be sent).
    pub fn read_into(
        &self,
        stream: Stream,
        offset: u64,
        max: usize,
        buf: &mut Vec<u8>,
    ) -> io::Result<usize> {
        let f = match self.file(stream, false) {
            Ok(f) => f,
            // Nothing stored yet, or the job was deleted.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let start = buf.len();
        buf.resize(start + max, 0);
        let mut got = 0;
        while got < max {
            match f.read_at(&mut buf[start + got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    buf.truncate(start);
                    return Err(e);
                }
            }
        }
        buf.truncate(start + got);
        self.trim(stream).read(f, offset, offset + got as u64);
        Ok(got)
    }

    /// The length of the stream's file as it is on disk (0 without one; blocking): never
    /// less than the hub recorded, unless the file was removed or cut short outside the hub.
    pub fn file_len(&self, stream: Stream) -> u64 {
        std::fs::metadata(self.path(stream))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// The stream's file, for messages.
    pub fn path(&self, stream: Stream) -> &Path {
        match stream {
            Stream::Stderr => &self.err_path,
            _ => &self.out_path,
        }
    }

    /// Whether a file was opened, i.e. [`JobLog::sync`] has anything to flush.
    pub fn has_files(&self) -> bool {
        self.out.get().is_some() || self.err.get().is_some()
    }

    /// Flushes both files to disk (those that were opened), after giving back the disk
    /// blocks reserved past their ends: the job has ended.
    pub fn sync(&self) -> io::Result<()> {
        for (f, reserve) in [self.out.get(), self.err.get()].iter().zip(&self.reserves) {
            if let Some(f) = f {
                reserve.release(f)?;
                f.sync_data()?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_creates_nothing_and_removal_takes_every_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let logs = Logs::open(dir.path()).unwrap();
        let file = |name: &str| dir.path().join("logs").join(name);
        let first = logs.job(5, 1);
        // Nothing stored yet (or the job was deleted): nothing to read, and no file made.
        assert_eq!(first.read_at(Stream::Stdout, 0, 10).unwrap(), b"");
        assert!(!file("5.out").exists());
        assert!(!first.has_files(), "nothing to sync");
        first.append(Stream::Stdout, 0, b"one").unwrap();
        assert!(first.has_files());
        logs.job(5, 2).append(Stream::Stderr, 0, b"two").unwrap();
        assert_eq!(first.read_at(Stream::Stdout, 0, 10).unwrap(), b"one");
        logs.remove(5, 2).unwrap();
        assert!(!file("5.out").exists() && !file("5.2.err").exists());
        // Files that are not there are no error.
        logs.remove(5, 2).unwrap();
    }
}
