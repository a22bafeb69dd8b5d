//! Deleting jobs that have ended, with their output: one on request (`DELETE
//! /api/v1/jobs/ID`, `xn --rm ID`), or every job that ended before a cutoff (`xnhub --retain`,
//! see `hub::retention`). A deleted job's id is never given out again, nor its group's.

use super::{now_ms, Hub, JobEntry, JobError, State};
use crate::wire::JobId;

/// Most jobs deleted in one go (one lock hold, one transaction).
const BATCH: usize = 1000;

impl Hub {
    /// Deletes job `id`, which must have ended, with its output.
    pub async fn delete(&self, id: JobId) -> Result<(), JobError> {
        {
            let st = self.lock();
            let job = st.jobs.get(&id).ok_or(JobError::NotFound(id))?;
            if !job.rec.state.is_terminal() {
                return Err(JobError::Conflict(format!(
                    "job {id} is {}: cancel it first (xn -k {id}), then delete it",
                    job.rec.state.as_str()
                )));
            }
        }
        match self.remove(|_| vec![id]).await? {
            0 => Err(JobError::NotFound(id)),
            _ => Ok(()),
        }
    }

    /// Deletes every job that ended more than `age_ms` ago, with its output; returns how many.
    /// It takes them [`BATCH`] at a time, so the hub's lock is never held for long.
    pub async fn expire(&self, age_ms: u64) -> Result<usize, JobError> {
        let cutoff = now_ms().saturating_sub(age_ms);
        let mut total = 0;
        loop {
            let n = self
                .remove(|st| {
                    st.jobs
                        .values()
                        .filter(|j| {
                            // A record without an end time (none should lack one) counts from
                            // its creation.
                            let ended = j.rec.ended_ms.unwrap_or(j.rec.created_ms);
                            j.rec.state.is_terminal() && ended < cutoff
                        })
                        .map(|j| j.rec.id)
                        .take(BATCH)
                        .collect()
                })
                .await?;
            total += n;
            if n < BATCH {
                return Ok(total);
            }
        }
    }

    /// Takes the jobs `choose` names out of the hub (those that have ended; at most [`BATCH`]),
    /// deletes their records, then their log files. If the store refuses, they are put back:
    /// nothing is half deleted. A live job (or one queued for a retry) is never taken.
    async fn remove(&self, choose: impl FnOnce(&State) -> Vec<JobId>) -> Result<usize, JobError> {
        let (taken, next_group): (Vec<JobEntry>, u64) = {
            let mut st = self.lock();
            let ids = choose(&st);
            let mut taken = Vec::new();
            for id in ids.into_iter().take(BATCH) {
                if st.jobs.get(&id).is_some_and(|j| j.rec.state.is_terminal()) {
                    taken.extend(st.jobs.remove(&id));
                }
            }
            (taken, st.next_group)
        };
        if taken.is_empty() {
            return Ok(0);
        }
        let ids = taken.iter().map(|j| j.rec.id).collect();
        if let Err(e) = self.store.delete(ids, next_group).await {
            let mut st = self.lock();
            for j in taken {
                st.jobs.insert(j.rec.id, j);
            }
            return Err(JobError::Store(e));
        }
        let n = taken.len();
        let logs = self.logs.clone();
        let files: Vec<_> = taken.iter().map(|j| (j.rec.id, j.rec.attempt)).collect();
        drop(taken);
        let removed = tokio::task::spawn_blocking(move || {
            for (id, attempts) in files {
                if let Err(e) = logs.remove(id, attempts) {
                    tracing::warn!(job = id, "removing the output of a deleted job: {e}");
                }
            }
        })
        .await;
        if let Err(e) = removed {
            tracing::error!("removing deleted jobs' output: {e}");
        }
        Ok(n)
    }
}
