//! `xn -k ID`: cancel a queued or running job; `xn --rm ID|GROUP`: delete one that has ended,
//! or every job of a broadcast group once all have.

use crate::http::{query_escape, HubUrl};
use crate::wire::{JobId, JobRecord, JobState};
use anyhow::{bail, Result};
use hyper::Method;

pub async fn run(hub: &HubUrl, id: JobId) -> Result<i32> {
    let rec: JobRecord = hub
        .call::<(), _>(Method::POST, &format!("/api/v1/jobs/{id}/cancel"), None)
        .await?;
    if rec.state == JobState::Cancelled {
        eprintln!("job {id} cancelled");
    } else {
        eprintln!(
            "job {id}: cancel sent to its slave (SIGTERM, then SIGKILL after the grace period)"
        );
    }
    Ok(0)
}

pub async fn delete(hub: &HubUrl, id: JobId) -> Result<i32> {
    let rec: JobRecord = hub
        .call::<(), _>(Method::DELETE, &format!("/api/v1/jobs/{id}"), None)
        .await?;
    eprintln!(
        "job {id} deleted with its output (it had ended: {})",
        rec.describe_end()
    );
    Ok(0)
}

pub async fn delete_group(hub: &HubUrl, group: &str) -> Result<i32> {
    let path = format!("/api/v1/jobs?group={}", query_escape(group));
    let jobs: Vec<JobRecord> = hub.call::<(), _>(Method::GET, &path, None).await?;
    if jobs.is_empty() {
        bail!("no group {group}");
    }
    let live: Vec<String> = jobs
        .iter()
        .filter(|j| !j.state.is_terminal())
        .map(|j| j.id.to_string())
        .collect();
    if !live.is_empty() {
        bail!(
            "group {group} has jobs that have not ended: {}; nothing was deleted",
            live.join(", ")
        );
    }
    for job in &jobs {
        hub.call::<(), JobRecord>(Method::DELETE, &format!("/api/v1/jobs/{}", job.id), None)
            .await?;
    }
    eprintln!(
        "group {group} deleted: {} jobs with their output",
        jobs.len()
    );
    Ok(0)
}
