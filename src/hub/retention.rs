//! `xnhub --retain AGE` (read by [`super::age::parse_age`]): jobs that ended longer ago than
//! AGE are deleted with their output, at start-up and then every so often (a tenth of AGE,
//! between a second and an hour). Live jobs are never touched, however old. Each sweep that
//! deletes any is one row of the audit log, with the count.

use super::audit::{Actor, Audit};
use super::state::Hub;
use crate::wire::AuditAction;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Deletes what has expired now, and again after every interval, until shutdown.
pub async fn timer(
    hub: Arc<Hub>,
    audit: Arc<Audit>,
    retain: Duration,
    shutdown: CancellationToken,
) {
    let every = (retain / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    let age_ms = u64::try_from(retain.as_millis()).unwrap_or(u64::MAX);
    loop {
        match hub.expire(age_ms).await {
            Ok(0) => {}
            Ok(n) => {
                let jobs = if n == 1 { "job" } else { "jobs" };
                tracing::info!("deleted {n} {jobs} that ended more than {retain:?} ago");
                let ago = super::age::show_exact(retain);
                let mut row = Actor::hub().did(
                    AuditAction::JobsExpired,
                    format!("{n} {jobs}"),
                    format!("ended more than {ago} ago (--retain {ago})"),
                );
                row.count = n as u64;
                audit.record(row).await;
            }
            Err(e) => tracing::error!("deleting expired jobs: {e}"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
