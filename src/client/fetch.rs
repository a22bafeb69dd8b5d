//! `xn -f ID [--attempt N]`: the job's output stored so far (of its current attempt, or of an
//! earlier one), byte for byte (stderr to stderr for --no-tty jobs). Fetching never deletes
//! anything.

use super::output::{Fd, Sink};
use crate::http::{self, HubUrl};
use crate::wire::{JobId, JobRecord};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use hyper::Method;

pub async fn run(hub: &HubUrl, id: JobId, attempt: Option<u32>) -> Result<i32> {
    let rec: JobRecord = hub
        .call::<(), _>(Method::GET, &format!("/api/v1/jobs/{id}"), None)
        .await?;
    let lens = match attempt {
        None => (rec.stdout_len, rec.stderr_len),
        Some(n) if n == rec.attempt => (rec.stdout_len, rec.stderr_len),
        Some(n) => match rec.attempts.iter().find(|a| a.attempt == n) {
            Some(a) => (a.stdout_len, a.stderr_len),
            None => bail!(
                "job {id} has no attempt {n} (attempts 1 to {})",
                rec.attempt
            ),
        },
    };
    for (name, fd, len) in [
        ("stdout", Fd::Stdout, lens.0),
        ("stderr", Fd::Stderr, lens.1),
    ] {
        if len > 0 {
            copy(hub, id, attempt, name, fd, None).await?;
        }
    }
    Ok(0)
}

/// Writes one stream of a job's stored output to `fd`, each line after `prefix` if one is
/// given (a last line without a newline gets one). Returns whether what it wrote ends inside
/// a line.
pub async fn copy(
    hub: &HubUrl,
    id: JobId,
    attempt: Option<u32>,
    stream: &str,
    fd: Fd,
    prefix: Option<&str>,
) -> Result<bool> {
    let attempt = attempt.map(|n| format!("&attempt={n}")).unwrap_or_default();
    let resp = hub
        .request(
            Method::GET,
            &format!("/api/v1/jobs/{id}/output?stream={stream}{attempt}"),
            None,
        )
        .await?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body = http::read_all(resp).await?;
        return Err(http::error_from(status, &body).into());
    }
    let mut sink = Sink::new(fd);
    let mut lines = prefix.map(LinePrefixer::new);
    let mut body = resp.into_body();
    while let Some(frame) = http::body_frame(&mut body)
        .await
        .with_context(|| format!("reading the {stream} of job {id}"))?
    {
        if let Ok(data) = frame.into_data() {
            let data = match &mut lines {
                Some(p) => p.feed(&data),
                None => data,
            };
            sink.write(data).await?;
        }
    }
    if let Some(rest) = lines.and_then(|p| p.finish()) {
        sink.write(rest).await?;
    }
    sink.close()?;
    Ok(sink.ends_mid_line())
}

/// Puts a prefix in front of every line of a byte stream, across chunk boundaries.
pub struct LinePrefixer {
    prefix: Vec<u8>,
    at_line_start: bool,
}

impl LinePrefixer {
    pub fn new(prefix: &str) -> LinePrefixer {
        LinePrefixer {
            prefix: prefix.as_bytes().to_vec(),
            at_line_start: true,
        }
    }

    pub fn feed(&mut self, data: &[u8]) -> Bytes {
        let mut out = Vec::with_capacity(data.len() + self.prefix.len());
        for &b in data {
            if self.at_line_start {
                out.extend_from_slice(&self.prefix);
                self.at_line_start = false;
            }
            out.push(b);
            self.at_line_start = b == b'\n';
        }
        Bytes::from(out)
    }

    /// A newline if the last line had none.
    pub fn finish(self) -> Option<Bytes> {
        (!self.at_line_start).then(|| Bytes::from_static(b"\n"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefixes_every_line() {
        let mut p = super::LinePrefixer::new("a: ");
        let mut out = p.feed(b"one\ntw").to_vec();
        out.extend_from_slice(&p.feed(b"o\r\nthree"));
        out.extend_from_slice(&p.finish().unwrap());
        assert_eq!(out, b"a: one\na: two\r\na: three\n");
    }
}
