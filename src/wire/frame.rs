//! Binary data frames: a fixed 18-byte header (stream, job, offset) and raw bytes, never
//! decoded as text. Pure data.

use super::JobId;
use serde::{Deserialize, Serialize};

/// Which stream a data frame belongs to.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Stream {
    Stdin = 0,
    /// The pty's output, or stdout for a `tty: false` job.
    Stdout = 1,
    Stderr = 2,
}

impl Stream {
    /// Where an output stream goes in a pair kept per job: 0 for stdout (stdin too, which
    /// has no such pair), 1 for stderr.
    pub fn output_index(self) -> usize {
        usize::from(self == Stream::Stderr)
    }

    fn from_u8(b: u8) -> Option<Stream> {
        match b {
            0 => Some(Stream::Stdin),
            1 => Some(Stream::Stdout),
            2 => Some(Stream::Stderr),
            _ => None,
        }
    }
}

/// A binary frame: `[stream u8][reserved u8][job u64 BE][offset u64 BE]` then the bytes.
///
/// `offset` is the position of the first byte within that job's stream; for input it counts the
/// bytes the sender has sent on that stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataFrame<'a> {
    pub stream: Stream,
    pub job: JobId,
    pub offset: u64,
    pub data: &'a [u8],
}

/// Length of a [`DataFrame`] header.
pub const DATA_HEADER_LEN: usize = 18;

/// Why a binary frame could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("binary frame of {0} bytes is shorter than its {DATA_HEADER_LEN}-byte header")]
    Short(usize),
    #[error("unknown stream kind {0} in binary frame")]
    UnknownStream(u8),
    #[error("reserved byte of a binary frame is {0}, not 0")]
    Reserved(u8),
}

impl<'a> DataFrame<'a> {
    pub fn header(stream: Stream, job: JobId, offset: u64) -> [u8; DATA_HEADER_LEN] {
        let mut h = [0u8; DATA_HEADER_LEN];
        h[0] = stream as u8;
        h[2..10].copy_from_slice(&job.to_be_bytes());
        h[10..18].copy_from_slice(&offset.to_be_bytes());
        h
    }

    /// Header and bytes in one buffer, ready to send.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(DATA_HEADER_LEN + self.data.len());
        v.extend_from_slice(&Self::header(self.stream, self.job, self.offset));
        v.extend_from_slice(self.data);
        v
    }

    pub fn decode(buf: &'a [u8]) -> Result<DataFrame<'a>, FrameError> {
        if buf.len() < DATA_HEADER_LEN {
            return Err(FrameError::Short(buf.len()));
        }
        let stream = Stream::from_u8(buf[0]).ok_or(FrameError::UnknownStream(buf[0]))?;
        if buf[1] != 0 {
            return Err(FrameError::Reserved(buf[1]));
        }
        // The slices are exactly 8 bytes long, so the conversions cannot fail.
        let job = u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes"));
        let offset = u64::from_be_bytes(buf[10..18].try_into().expect("8 bytes"));
        Ok(DataFrame {
            stream,
            job,
            offset,
            data: &buf[DATA_HEADER_LEN..],
        })
    }
}
