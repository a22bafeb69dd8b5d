//! `xn -f ID`: the job's output stored so far, byte for byte (stderr to stderr for --no-tty
//! jobs). Fetching never deletes anything.

use super::output::{Fd, Sink};
use crate::http::{self, HubUrl};
use crate::wire::{JobId, JobRecord};
use anyhow::{Context, Result};
use http_body_util::BodyExt;
use hyper::Method;

pub async fn run(hub: &HubUrl, id: JobId) -> Result<i32> {
    let rec: JobRecord = hub
        .call::<(), _>(Method::GET, &format!("/api/v1/jobs/{id}"), None)
        .await?;
    for (name, fd, len) in [
        ("stdout", Fd::Stdout, rec.stdout_len),
        ("stderr", Fd::Stderr, rec.stderr_len),
    ] {
        if len > 0 {
            copy(hub, id, name, fd).await?;
        }
    }
    Ok(0)
}

async fn copy(hub: &HubUrl, id: JobId, stream: &str, fd: Fd) -> Result<()> {
    let resp = hub
        .request(
            Method::GET,
            &format!("/api/v1/jobs/{id}/output?stream={stream}"),
            None,
        )
        .await?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body = http::read_all(resp).await?;
        return Err(http::error_from(status, &body).into());
    }
    let mut sink = Sink::new(fd);
    let mut body = resp.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.with_context(|| format!("reading the {stream} of job {id}"))?;
        if let Ok(data) = frame.into_data() {
            sink.write(data).await?;
        }
    }
    sink.close()?;
    Ok(())
}
