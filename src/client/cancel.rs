//! `xn -k ID`: cancel a queued or running job; `xn --rm ID`: delete one that has ended.

use crate::http::HubUrl;
use crate::wire::{JobId, JobRecord, JobState};
use anyhow::Result;
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
