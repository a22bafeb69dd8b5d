//! What slave sessions do to the hub's picture: connect (and take back their jobs), go away,
//! report starts, ends and output, and receive input, sizes and cancels for their jobs.

use super::*;

/// How long to wait before trying again to commit a job's end that could not be stored.
const END_RETRY: Duration = Duration::from_millis(500);

impl Hub {
    /// Registers a slave connection. Jobs it says it is running and that the hub has no slave
    /// for are bound to it again. Returns the session id and the jobs it reports that the hub
    /// no longer wants (ended meanwhile): the session cancels those.
    pub fn add_slave(
        &self,
        name: String,
        slots: u32,
        labels: Vec<String>,
        tx: ConnSender,
        running: &[JobId],
    ) -> (SessionId, Vec<JobId>) {
        let mut st = self.lock();
        let st = &mut *st;
        let sid = st.next_session;
        st.next_session += 1;
        let mut mine = HashSet::new();
        let mut unwanted = Vec::new();
        for &id in running {
            match st.jobs.get_mut(&id) {
                // Queued for a retry: the hub gave up the attempt this slave still runs, and
                // will run the job again; the old attempt is cancelled.
                Some(job) if job.rec.state == JobState::Queued && !job.rec.attempts.is_empty() => {
                    unwanted.push(id)
                }
                Some(job) if !job.rec.state.is_terminal() && job.session.is_none() => {
                    job.session = Some(sid);
                    job.rec.slave = Some(name.clone());
                    // The slave has it, whatever the hub managed to store before a crash
                    // (`assigned` is not waited for): it must not be handed out again.
                    let was_queued = st.queue.remove(&id);
                    if was_queued {
                        unqueued(&mut st.queued_by, &job.rec.owner);
                    }
                    if was_queued || job.rec.state == JobState::Assigned {
                        job.rec.state = JobState::Running;
                        job.rec.started_ms.get_or_insert_with(now_ms);
                        job.touch();
                        self.store.save_later(job.rec.clone());
                    }
                    if job.log.is_none() {
                        job.log = Some(Arc::new(self.logs.job(id, job.rec.attempt)));
                    }
                    mine.insert(id);
                }
                // Given up as lost, but its slave was only out of touch: take it back. The
                // record said `lost` for a while; it now goes on to its real end.
                Some(job) if job.rec.state == JobState::Lost && job.session.is_none() => {
                    tracing::info!(job = id, slave = %name, "lost job is back with its slave");
                    job.session = Some(sid);
                    job.rec.slave = Some(name.clone());
                    job.rec.state = JobState::Running;
                    job.rec.reason = None;
                    job.rec.ended_ms = None;
                    job.log = Some(Arc::new(self.logs.job(id, job.rec.attempt)));
                    job.touch();
                    self.store.save_later(job.rec.clone());
                    mine.insert(id);
                }
                _ => unwanted.push(id),
            }
        }
        st.slaves.insert(
            sid,
            SlaveEntry {
                name,
                slots,
                labels,
                draining: false,
                jobs: mine,
                tx,
            },
        );
        crate::hub::sched::refresh_reasons(st);
        (sid, unwanted)
    }

    /// Forgets a slave connection. Its jobs stay as they are, without a slave, until it comes
    /// back or the orphan timer gives them up. Returns those jobs.
    pub fn remove_slave(&self, sid: SessionId) -> Vec<JobId> {
        let mut st = self.lock();
        let Some(slave) = st.slaves.remove(&sid) else {
            return Vec::new();
        };
        crate::hub::sched::refresh_reasons(&mut st);
        let mut orphans = Vec::new();
        for id in slave.jobs {
            if let Some(job) = st.jobs.get_mut(&id) {
                if job.session == Some(sid) {
                    job.session = None;
                    orphans.push(id);
                }
            }
        }
        orphans
    }

    /// Gives up jobs that still have no slave: they become `lost`.
    pub async fn expire_orphans(&self, ids: &[JobId], why: &str) {
        let lost: Vec<JobRecord> = {
            let st = self.lock();
            ids.iter()
                .filter_map(|id| st.jobs.get(id))
                .filter(|j| j.session.is_none() && !j.rec.state.is_terminal())
                .map(|j| {
                    let mut rec = j.rec.clone();
                    rec.state = if j.cancelled.is_some() {
                        JobState::Cancelled
                    } else {
                        JobState::Lost
                    };
                    rec.reason = Some(why.to_string());
                    rec.ended_ms = Some(now_ms());
                    rec
                })
                .collect()
        };
        for rec in lost {
            tracing::warn!(job = rec.id, "job lost: {why}");
            if let Err(e) = self.finish(rec).await {
                tracing::error!("{e}");
            }
        }
    }

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
        loop {
            match self.finish(rec.clone()).await {
                Err(JobError::Store(e)) => {
                    tracing::error!(
                        job = id,
                        "storing the job's end failed; trying again in {END_RETRY:?}: {e:#}"
                    );
                    tokio::time::sleep(END_RETRY).await;
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
    pub fn claim_size(&self, id: JobId, size: (u16, u16)) -> bool {
        let mut st = self.lock();
        match st.jobs.get_mut(&id) {
            Some(job) if job.size != Some(size) => {
                job.size = Some(size);
                true
            }
            _ => false,
        }
    }

    /// The slave is stopping: it gets no new jobs.
    pub fn drain_slave(&self, sid: SessionId) {
        if let Some(s) = self.lock().slaves.get_mut(&sid) {
            tracing::info!(slave = %s.name, "slave is draining");
            s.draining = true;
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
