//! Retries: whether an attempt that ended is run again, after how long, and the timer that
//! schedules a retry once its backoff has passed. Every attempt's summary stays in the record's
//! `attempts` and its output in its own log files.

use super::state::{now_ms, Hub};
use crate::wire::{JobRecord, JobState};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Most retries a job may ask for.
pub const MAX_RETRIES: u32 = 100;

/// Wait before the first retry; it doubles for each further one, up to [`RETRY_BACKOFF_MAX`].
const RETRY_BACKOFF_MIN: Duration = Duration::from_secs(1);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(60);

/// The record to store instead of `rec` if the attempt that just ended is to be retried, and
/// how long to wait first. Only `lost` attempts are retried, and failures when the spec says
/// `retries_on_failure`; a cancelled job never is.
pub(super) fn retry_of(rec: &JobRecord) -> Option<(JobRecord, Duration)> {
    let spec = &rec.spec;
    if rec.attempt > spec.retries {
        return None;
    }
    let again = match rec.state {
        JobState::Lost => true,
        JobState::Exited => spec.retries_on_failure && rec.exit_code != Some(0),
        JobState::Signaled | JobState::Failed => spec.retries_on_failure,
        _ => false,
    };
    if !again {
        return None;
    }
    let mut next = rec.clone();
    next.attempts.push(rec.as_attempt());
    next.attempt += 1;
    next.state = JobState::Queued;
    next.exit_code = None;
    next.signal = None;
    next.reason = None;
    next.slave = None;
    next.started_ms = None;
    next.ended_ms = None;
    next.stdout_len = 0;
    next.stderr_len = 0;
    let wait = RETRY_BACKOFF_MIN
        .saturating_mul(1 << (rec.attempt - 1).min(16))
        .min(RETRY_BACKOFF_MAX);
    Some((next, wait))
}

/// Why a run set aside by [`set_aside`] ended.
pub const SET_ASIDE_REASON: &str =
    "its assignment was lost in a crash of the hub; the job was run again";

/// Makes the attempt a queued job is about to be assigned for a new one if its log files
/// already hold output: a run of it was assigned just before a crash of the hub, which lost
/// the assignment (see `hub::claim`), and that run's slave did not take the job back. A new
/// run's output, sent from offset 0, would otherwise be cut to fit behind the dead run's. The
/// dead run is kept as an attempt of its own, `lost`, with its output. So is the run of the
/// next attempt, if a second crash lost its assignment too: `lens_of` says what an attempt's
/// log files hold. Returns whether any run was set aside.
pub(super) fn set_aside(rec: &mut JobRecord, lens_of: impl Fn(u32) -> (u64, u64)) -> bool {
    let mut any = false;
    while rec.stdout_len != 0 || rec.stderr_len != 0 {
        let mut dead = rec.clone();
        dead.state = JobState::Lost;
        dead.reason = Some(SET_ASIDE_REASON.into());
        dead.ended_ms = Some(now_ms());
        rec.attempts.push(dead.as_attempt());
        rec.attempt += 1;
        (rec.stdout_len, rec.stderr_len) = lens_of(rec.attempt);
        any = true;
    }
    any
}

impl Hub {
    /// When the next queued retry's backoff ends (ms since the epoch), if one is waiting.
    fn next_retry_ms(&self) -> Option<u64> {
        let st = self.lock();
        let now = now_ms();
        st.queue
            .iter()
            .filter_map(|id| st.jobs.get(id))
            .map(|j| j.not_before_ms)
            .filter(|&t| t > now)
            .min()
    }
}

/// Runs the scheduler whenever a retry's backoff ends, until `shutdown`.
pub async fn timer(hub: Arc<Hub>, shutdown: CancellationToken) {
    loop {
        let wait = match hub.next_retry_ms() {
            Some(at) => Duration::from_millis(at.saturating_sub(now_ms())),
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = hub.retry_wake.notified() => {}
            _ = tokio::time::sleep(wait) => hub.schedule().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::JobSpec;

    #[test]
    fn lost_attempts_are_retried_with_backoff_and_kept() {
        let spec = JobSpec {
            retries: 2,
            ..JobSpec::shell("true")
        };
        let mut rec = JobRecord::queued(spec, 0);
        rec.state = JobState::Lost;
        rec.stdout_len = 5;
        let (second, wait) = retry_of(&rec).expect("retried");
        assert_eq!(
            (second.attempt, second.state, second.stdout_len),
            (2, JobState::Queued, 0)
        );
        assert_eq!(second.attempts[0].stdout_len, 5);
        assert_eq!(wait, Duration::from_secs(1));
        let mut second = second;
        second.state = JobState::Lost;
        let (third, wait) = retry_of(&second).expect("retried again");
        assert_eq!((third.attempt, third.attempts.len()), (3, 2));
        assert_eq!(wait, Duration::from_secs(2));
        let mut third = third;
        third.state = JobState::Lost;
        assert!(retry_of(&third).is_none(), "retries used up");

        // Failures only with retries_on_failure; cancels never.
        rec.state = JobState::Exited;
        rec.exit_code = Some(1);
        assert!(retry_of(&rec).is_none());
        rec.spec.retries_on_failure = true;
        assert!(retry_of(&rec).is_some());
        rec.exit_code = Some(0);
        assert!(retry_of(&rec).is_none());
        rec.state = JobState::Cancelled;
        assert!(retry_of(&rec).is_none());
    }
}
