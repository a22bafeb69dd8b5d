//! `xn -k ID|GROUP`: cancel a queued or running job, or every job of a broadcast group that has
//! not ended; `xn --rm ID|GROUP`: delete one that has ended, or every job of a broadcast group
//! once all have.

use super::visible::visible;
use crate::http::{query_escape, HubError, HubUrl};
use crate::hub::SlaveInfo;
use crate::wire::{JobId, JobRecord, JobState};
use anyhow::{bail, Result};
use hyper::Method;

pub async fn run(hub: &HubUrl, id: JobId) -> Result<i32> {
    let rec: JobRecord = hub
        .call::<(), _>(Method::POST, &format!("/api/v1/jobs/{id}/cancel"), None)
        .await?;
    if rec.state == JobState::Cancelled {
        eprintln!("job {id} cancelled");
        return Ok(0);
    }
    match after_cancel(hub, id).await {
        After::Away => {
            let name = rec.slave.map(|n| format!(" {}", visible(&n)));
            eprintln!(
                "job {id}: its slave{} is away; the hub sends the cancel when it dials again, \
                 and the job ends cancelled if it is not back within the hub's --slave-timeout",
                name.unwrap_or_default()
            );
        }
        After::Ended(end) => eprintln!("job {id} {}", visible(&end.describe_end())),
        After::Sent => eprintln!(
            "job {id}: cancel sent to its slave (SIGTERM, then SIGKILL after the grace period)"
        ),
    }
    Ok(0)
}

/// Where a job whose cancel went to its slave's session is, a moment later.
enum After {
    /// With a connected slave, which was sent the cancel (or the hub cannot say).
    Sent,
    /// With no connected slave: its slave went away, and the hub keeps the cancel for it.
    Away,
    /// It ended (a job that dies of SIGTERM at once often has by now).
    Ended(Box<JobRecord>),
}

async fn after_cancel(hub: &HubUrl, id: JobId) -> After {
    let slaves = hub
        .call::<(), Vec<SlaveInfo>>(Method::GET, "/api/v1/slaves", None)
        .await;
    if !slaves.is_ok_and(|all| !all.iter().any(|s| s.running.contains(&id))) {
        return After::Sent;
    }
    // No slave holds it: its slave is away, or the job ended since the cancel. The hub lets
    // a job go from its slave as it stores its end, so a record read after the list tells
    // which.
    match hub
        .call::<(), JobRecord>(Method::GET, &format!("/api/v1/jobs/{id}"), None)
        .await
    {
        Ok(rec) if rec.state.is_terminal() => After::Ended(Box::new(rec)),
        Ok(_) => After::Away,
        Err(_) => After::Sent,
    }
}

/// Cancels every job of `group` that has not ended (those that have are left as they are).
pub async fn cancel_group(hub: &HubUrl, group: &str) -> Result<i32> {
    let jobs = group_jobs(hub, group).await?;
    let mut sent = 0;
    for job in jobs.iter().filter(|j| !j.state.is_terminal()) {
        let path = format!("/api/v1/jobs/{}/cancel", job.id);
        match hub.call::<(), JobRecord>(Method::POST, &path, None).await {
            Ok(_) => sent += 1,
            // It ended between the listing and the cancel: nothing left to do for it.
            Err(e) if job_ended_meanwhile(&e) => {}
            Err(e) => return Err(e.context(format!("cancelling job {} of {group}", job.id))),
        }
    }
    if sent == 0 {
        eprintln!("group {group}: every job of it has ended; nothing to cancel");
    } else if sent == 1 && jobs.len() == 1 {
        eprintln!("group {group}: cancel sent to its one job");
    } else if sent == jobs.len() {
        eprintln!("group {group}: cancel sent to its {sent} jobs");
    } else {
        eprintln!(
            "group {group}: cancel sent to {sent} of its {} jobs (the others had ended)",
            jobs.len()
        );
    }
    Ok(0)
}

/// Whether a cancel was refused because the job had already ended (409 Conflict).
fn job_ended_meanwhile(e: &anyhow::Error) -> bool {
    e.downcast_ref::<HubError>()
        .is_some_and(|h| h.status == hyper::StatusCode::CONFLICT)
}

async fn group_jobs(hub: &HubUrl, group: &str) -> Result<Vec<JobRecord>> {
    let path = format!("/api/v1/jobs?group={}", query_escape(group));
    let jobs: Vec<JobRecord> = hub.call::<(), _>(Method::GET, &path, None).await?;
    if jobs.is_empty() {
        bail!("no group {group}");
    }
    Ok(jobs)
}

pub async fn delete(hub: &HubUrl, id: JobId) -> Result<i32> {
    let rec: JobRecord = hub
        .call::<(), _>(Method::DELETE, &format!("/api/v1/jobs/{id}"), None)
        .await?;
    eprintln!(
        "job {id} deleted with its output (it had ended: {})",
        visible(&rec.describe_end())
    );
    Ok(0)
}

pub async fn delete_group(hub: &HubUrl, group: &str) -> Result<i32> {
    let jobs = group_jobs(hub, group).await?;
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
