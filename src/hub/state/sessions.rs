//! What slave sessions report to the hub's picture (starts, ends and output) and what they
//! receive for their jobs (input, sizes, cancels). Joining and leaving are in `joins`.

use super::*;

/// How long to wait before trying again to commit a job's end that could not be stored, the
/// first time; each wait after is twice as long.
const END_RETRY: Duration = Duration::from_millis(500);
/// The longest wait between two tries, so that a disk full for an hour logs a line a few
/// seconds, not two a second.
const END_RETRY_MAX: Duration = Duration::from_secs(8);

impl Hub {
    /// The slave started a job's process.
    pub fn job_started(&self, sid: SessionId, id: JobId) {
        let mut st = self.lock();
        if let Some(job) = st.jobs.get_mut(&id) {
            if job.session == Some(sid) && job.rec.state == JobState::Assigned {
                job.rec.state = JobState::Running;
                job.rec.started_ms = Some(now_ms());
                job.touch();
                self.store.save_later(job.rec.clone());
            }
        }
    }

    /// The slave reports a job's end. The terminal state is stored before it is shown.
    pub async fn job_ended(
        &self,
        sid: SessionId,
        id: JobId,
        outcome: Outcome,
        lens: (u64, u64),
        cancelled_by_slave: Option<String>,
    ) -> Result<(), JobError> {
        let rec = {
            let mut st = self.lock();
            let job = st.jobs.get_mut(&id).ok_or(JobError::NotFound(id))?;
            if job.session != Some(sid) || job.rec.state.is_terminal() || job.ending {
                return Err(JobError::Conflict(format!("job {id} is not running here")));
            }
            job.ending = true;
            let mut rec = job.rec.clone();
            let (code, signal, reason) = match outcome {
                Outcome::Exited { code } => (Some(code), None, None),
                Outcome::Signaled { signal } => (None, Some(signal), None),
                Outcome::Failed { reason } => (None, None, Some(reason)),
            };
            let cancelled = job.cancelled.clone().or(cancelled_by_slave);
            rec.state = match (cancelled.is_some(), code, signal) {
                (true, _, _) => JobState::Cancelled,
                (false, Some(_), _) => JobState::Exited,
                (false, _, Some(_)) => JobState::Signaled,
                _ => JobState::Failed,
            };
            rec.exit_code = code;
            rec.signal = signal;
            rec.reason = reason.or(cancelled);
            if (rec.stdout_len, rec.stderr_len) != lens {
                let msg = format!(
                    "output incomplete: stored {}+{} of {}+{} bytes",
                    rec.stdout_len, rec.stderr_len, lens.0, lens.1
                );
                tracing::error!(job = id, "{msg}");
                rec.reason = Some(msg);
            }
            if rec.started_ms.is_none() {
                rec.started_ms = Some(now_ms());
            }
            rec.ended_ms = Some(now_ms());
            rec
        };
        // The slot is free now: the next job starts while this end is being stored.
        self.schedule().await;
        // A commit that failed (a full disk) is tried again until it succeeds: the slave
        // keeps the job until it hears `done`, and a lost end would leave the job running in
        // the records for ever. Nothing changed in memory when it failed, so a retry is the
        // same commit.
        let mut pause = END_RETRY;
        loop {
            match self.finish(rec.clone()).await {
                Err(JobError::Store(e)) => {
                    tracing::error!(
                        job = id,
                        "storing the job's end failed; trying again in {pause:?}: {e:#}"
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(END_RETRY_MAX);
                }
                other => return other,
            }
        }
    }

    /// Where to append a slave's output for a job, how much is stored already, and where to
    /// keep a copy of the latest for followers.
    pub fn output_target(
        &self,
        sid: SessionId,
        id: JobId,
        stream: Stream,
    ) -> Option<(Arc<JobLog>, u64, Arc<Recent>)> {
        let mut st = self.lock();
        let job = st.jobs.get_mut(&id)?;
        if job.session != Some(sid) {
            return None;
        }
        let len = match stream {
            Stream::Stderr => job.rec.stderr_len,
            _ => job.rec.stdout_len,
        };
        let recent = job.recent.get_or_insert_with(Default::default).clone();
        Some((job.log.clone()?, len, recent))
    }

    /// Records that a stream now holds `len` bytes and wakes its followers.
    pub fn output_stored(&self, id: JobId, stream: Stream, len: u64) {
        let mut st = self.lock();
        if let Some(job) = st.jobs.get_mut(&id) {
            match stream {
                Stream::Stderr => job.rec.stderr_len = len,
                _ => job.rec.stdout_len = len,
            }
            job.touch();
        }
    }

    /// The connection to the slave running a job, for input, resize and signals.
    pub fn slave_of(&self, id: JobId) -> Result<Option<ConnSender>, JobError> {
        let st = self.lock();
        let job = st.jobs.get(&id).ok_or(JobError::NotFound(id))?;
        Ok(job
            .session
            .and_then(|sid| st.slaves.get(&sid))
            .map(|s| s.tx.clone()))
    }

    /// Reserves `n` bytes of input for a job and returns the offset they start at.
    pub fn take_input_offset(&self, id: JobId, n: usize) -> u64 {
        let mut st = self.lock();
        match st.jobs.get_mut(&id) {
            Some(job) => {
                let at = job.input_sent;
                job.input_sent += n as u64;
                at
            }
            None => 0,
        }
    }

    /// Records `size` as the job's terminal size; true if that changes it (and so the slave
    /// must be told). With several clients attached, the last one to type or resize wins.
    /// The record keeps the size too (stored, and sent to followers), so that a watcher, or
    /// anyone reading the output after the job ended, sees it at the size it was drawn for.
    pub fn claim_size(&self, id: JobId, size: (u16, u16)) -> bool {
        let mut st = self.lock();
        let Some(job) = st.jobs.get_mut(&id) else {
            return false;
        };
        if job.size == Some(size) {
            return false;
        }
        job.size = Some(size);
        if (job.rec.spec.rows, job.rec.spec.cols) != size {
            (job.rec.spec.rows, job.rec.spec.cols) = size;
            job.touch();
            self.store.resized_later(id, size.0, size.1);
        }
        true
    }

    /// The slave is stopping: it gets no new jobs.
    pub fn drain_slave(&self, sid: SessionId) {
        let mut st = self.lock();
        if let Some(s) = st.slaves.get_mut(&sid) {
            tracing::info!(slave = %s.name, "slave is draining");
            s.draining = true;
            // A job that only it could take now waits for another: say so.
            crate::hub::sched::refresh_reasons(&mut st);
        }
    }

    /// Names of the jobs a session is running (for the cancel sent after a reconnect).
    pub fn cancels_pending(&self, sid: SessionId) -> Vec<JobId> {
        let st = self.lock();
        st.slaves
            .get(&sid)
            .map(|s| {
                s.jobs
                    .iter()
                    .filter(|id| st.jobs.get(id).is_some_and(|j| j.cancelled.is_some()))
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }
}
