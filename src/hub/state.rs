//! The hub's in-memory picture: jobs, the queue, connected slaves, and the scheduler.
//!
//! One `std::sync::Mutex` guards it; it is never held across an `.await`. Every change that must
//! be durable before it is shown (a new job, a terminal state) is committed to the [`Store`]
//! first and applied here after. Every change a follower may care about bumps the job's watch.

use super::logs::{JobLog, Logs};
use super::store::Store;
use crate::conn::ConnSender;
use crate::wire::{HubToSlave, JobId, JobRecord, JobState, Outcome, Stream};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{watch, Notify};

/// Identifies one connection of one slave (a reconnect is a new session).
pub type SessionId = u64;

/// Settings the hub's operator chooses.
#[derive(Clone, Debug)]
pub struct HubOptions {
    /// A slave silent this long is gone; its running jobs become `lost`.
    pub slave_timeout: Duration,
    /// Between SIGTERM and SIGKILL when a job is cancelled.
    pub cancel_grace: Duration,
    /// Open connections one peer address may have.
    pub max_conns_per_addr: usize,
    /// Jobs one owner may have queued at once.
    pub max_queued_per_owner: usize,
}

/// Errors a request about a job can get; each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("no job with id {0}")]
    NotFound(JobId),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    TooMany(String),
    #[error("{0:#}")]
    Store(anyhow::Error),
}

pub struct Hub {
    pub(super) state: Mutex<State>,
    pub store: Store,
    pub logs: Logs,
    pub opts: HubOptions,
    /// Woken when a job is queued for a retry later, so the retry timer looks again.
    pub(super) retry_wake: Notify,
}

pub(super) struct State {
    pub(super) jobs: BTreeMap<JobId, JobEntry>,
    /// Queued job ids; the smallest goes first (FIFO).
    pub(super) queue: BTreeSet<JobId>,
    /// Queued jobs per owner, for `max_queued_per_owner`.
    pub(super) queued_by: HashMap<Option<String>, usize>,
    pub(super) slaves: HashMap<SessionId, SlaveEntry>,
    next_session: SessionId,
    /// The number of the next broadcast group (`g1`, `g2`, ...).
    pub(super) next_group: u64,
}

pub(super) struct JobEntry {
    pub(super) rec: JobRecord,
    /// Open log files of the current attempt while the job is live.
    pub(super) log: Option<Arc<JobLog>>,
    /// Bumped on new output and state changes; created when someone follows the job.
    watch: Option<watch::Sender<u64>>,
    /// The slave session that runs it; `None` while queued or while its slave is away.
    pub(super) session: Option<SessionId>,
    /// Set when a cancel was asked for: why.
    cancelled: Option<String>,
    /// Input bytes forwarded so far (the offset of the next input frame).
    input_sent: u64,
    /// The terminal size last sent to the slave.
    size: Option<(u16, u16)>,
    /// A queued retry waits until then (ms since the epoch); 0 for no wait.
    pub(super) not_before_ms: u64,
    /// The slave reported the end and it is being stored: a repeated report is refused.
    ending: bool,
}

pub(super) struct SlaveEntry {
    pub(super) name: String,
    pub(super) slots: u32,
    pub(super) labels: Vec<String>,
    /// Stopping: no new jobs.
    pub(super) draining: bool,
    pub(super) jobs: HashSet<JobId>,
    pub(super) tx: ConnSender,
}

/// What a connected slave looks like from outside (`GET /api/v1/slaves`).
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
pub struct SlaveInfo {
    pub name: String,
    pub slots: u32,
    pub running: Vec<JobId>,
    #[serde(default)]
    pub labels: Vec<String>,
}

/// What a follower needs to read a job: its record, a wake-up channel and its log.
pub struct Subscription {
    pub rec: JobRecord,
    pub changes: watch::Receiver<u64>,
    pub log: Arc<JobLog>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl JobEntry {
    pub(super) fn new(rec: JobRecord) -> JobEntry {
        JobEntry {
            rec,
            log: None,
            watch: None,
            session: None,
            cancelled: None,
            input_sent: 0,
            size: None,
            not_before_ms: 0,
            ending: false,
        }
    }

    pub(super) fn touch(&self) {
        if let Some(w) = &self.watch {
            w.send_modify(|v| *v = v.wrapping_add(1));
        }
    }
}

impl Hub {
    /// Builds the picture from what the store loaded. Jobs that were assigned or running when
    /// the hub stopped have no slave until one reconnects with them; the caller starts the
    /// orphan timer for them ([`Hub::orphans`]).
    pub fn new(store: Store, logs: Logs, loaded: Vec<JobRecord>, opts: HubOptions) -> Hub {
        let mut jobs = BTreeMap::new();
        let mut queue = BTreeSet::new();
        let mut queued_by: HashMap<Option<String>, usize> = HashMap::new();
        let mut next_group = 1;
        for mut rec in loaded {
            rec.stdout_len = logs.len(rec.id, rec.attempt, Stream::Stdout);
            rec.stderr_len = logs.len(rec.id, rec.attempt, Stream::Stderr);
            if rec.state == JobState::Queued {
                queue.insert(rec.id);
                *queued_by.entry(rec.owner.clone()).or_default() += 1;
            }
            if let Some(n) = rec.group.as_deref().and_then(super::submit::group_number) {
                next_group = next_group.max(n + 1);
            }
            let log = (!rec.state.is_terminal()).then(|| Arc::new(logs.job(rec.id, rec.attempt)));
            let mut entry = JobEntry::new(rec);
            entry.log = log;
            jobs.insert(entry.rec.id, entry);
        }
        Hub {
            state: Mutex::new(State {
                jobs,
                queue,
                queued_by,
                slaves: HashMap::new(),
                next_session: 1,
                next_group,
            }),
            store,
            logs,
            opts,
            retry_wake: Notify::new(),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would already have been a bug report; the state is
        // still the best we have, so keep serving rather than poisoning every request.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Jobs that are assigned or running but have no connected slave.
    pub fn orphans(&self) -> Vec<JobId> {
        let st = self.lock();
        st.jobs
            .values()
            .filter(|j| j.session.is_none() && !j.rec.state.is_terminal())
            .filter(|j| j.rec.state != JobState::Queued)
            .map(|j| j.rec.id)
            .collect()
    }

    pub fn list(&self) -> Vec<JobRecord> {
        self.lock().jobs.values().map(|j| j.rec.clone()).collect()
    }

    pub fn get(&self, id: JobId) -> Result<JobRecord, JobError> {
        self.lock()
            .jobs
            .get(&id)
            .map(|j| j.rec.clone())
            .ok_or(JobError::NotFound(id))
    }

    pub fn slaves(&self) -> Vec<SlaveInfo> {
        let st = self.lock();
        let mut v: Vec<SlaveInfo> = st
            .slaves
            .values()
            .map(|s| SlaveInfo {
                name: s.name.clone(),
                slots: s.slots,
                labels: s.labels.clone(),
                running: {
                    let mut r: Vec<_> = s.jobs.iter().copied().collect();
                    r.sort();
                    r
                },
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Cancels a job: a queued one at once, a running one through its slave.
    pub async fn cancel(&self, id: JobId, why: &str) -> Result<JobRecord, JobError> {
        let (to_slave, rec) = {
            let mut st = self.lock();
            let st = &mut *st;
            let job = st.jobs.get_mut(&id).ok_or(JobError::NotFound(id))?;
            if job.rec.state.is_terminal() {
                return Err(JobError::Conflict(format!(
                    "job {id} has already ended ({})",
                    job.rec.describe_end()
                )));
            }
            if job.rec.state == JobState::Queued {
                st.queue.remove(&id);
                unqueued(&mut st.queued_by, &job.rec.owner);
                let mut rec = job.rec.clone();
                rec.state = JobState::Cancelled;
                rec.reason = Some(why.to_string());
                rec.ended_ms = Some(now_ms());
                (None, rec)
            } else {
                job.cancelled = Some(why.to_string());
                let tx = job
                    .session
                    .and_then(|sid| st.slaves.get(&sid))
                    .map(|s| s.tx.clone());
                (tx, job.rec.clone())
            }
        };
        match to_slave {
            Some(tx) => {
                let grace_ms = self.opts.cancel_grace.as_millis() as u64;
                let _ = tx.send(&HubToSlave::Cancel { job: id, grace_ms }).await;
                Ok(rec)
            }
            None if rec.state == JobState::Cancelled => {
                self.finish(rec.clone()).await?;
                Ok(rec)
            }
            // Its slave is away: the cancel is sent when it comes back, or the job is lost.
            None => Ok(rec),
        }
    }

    /// Makes a terminal record durable, then shows it and frees the slot. An attempt that its
    /// spec says to retry is stored as such (the job queued again, this attempt kept in
    /// `attempts`) instead.
    async fn finish(&self, mut rec: JobRecord) -> Result<(), JobError> {
        let (log, lens) = {
            let st = self.lock();
            match st.jobs.get(&rec.id) {
                Some(j) => (j.log.clone(), (j.rec.stdout_len, j.rec.stderr_len)),
                None => (None, (rec.stdout_len, rec.stderr_len)),
            }
        };
        if let Some(log) = log {
            let synced = tokio::task::spawn_blocking(move || log.sync()).await;
            if let Ok(Err(e)) = synced {
                tracing::error!(job = rec.id, "syncing output log: {e}");
            }
        }
        // Keep the byte counts the hub has; the record from the caller may be older.
        (rec.stdout_len, rec.stderr_len) = lens;
        let (rec, retry_in) = match super::retry::retry_of(&rec) {
            Some((again, wait)) => (again, Some(wait)),
            None => (rec, None),
        };
        self.store
            .save(rec.clone())
            .await
            .map_err(JobError::Store)?;
        let id = rec.id;
        let mut slave_tx = None;
        {
            let mut st = self.lock();
            let st = &mut *st;
            if let Some(job) = st.jobs.get_mut(&id) {
                if let Some(sid) = job.session.take() {
                    if let Some(s) = st.slaves.get_mut(&sid) {
                        s.jobs.remove(&id);
                        slave_tx = Some(s.tx.clone());
                    }
                }
                job.rec = rec;
                job.log = None;
                if let Some(wait) = retry_in {
                    tracing::info!(job = id, attempt = job.rec.attempt, "retrying in {wait:?}");
                    job.not_before_ms = now_ms() + wait.as_millis() as u64;
                    job.cancelled = None;
                    job.input_sent = 0;
                    job.size = None;
                    job.ending = false;
                    job.rec.reason = super::sched::why_not(&st.slaves, &job.rec.spec);
                    if st.queue.insert(id) {
                        *st.queued_by.entry(job.rec.owner.clone()).or_default() += 1;
                    }
                }
                job.touch();
            }
        }
        if let Some(tx) = slave_tx {
            let _ = tx.send(&HubToSlave::Done { job: id }).await;
        }
        if retry_in.is_some() {
            self.retry_wake.notify_one();
        }
        self.schedule().await;
        Ok(())
    }

    /// Follows a job: its record now, a channel that changes with it, and its log.
    pub fn subscribe(&self, id: JobId) -> Result<Subscription, JobError> {
        let mut st = self.lock();
        let job = st.jobs.get_mut(&id).ok_or(JobError::NotFound(id))?;
        let changes = match &job.watch {
            Some(w) => w.subscribe(),
            None => {
                let (tx, rx) = watch::channel(0);
                job.watch = Some(tx);
                rx
            }
        };
        let log = job
            .log
            .clone()
            .unwrap_or_else(|| Arc::new(self.logs.job(id, job.rec.attempt)));
        Ok(Subscription {
            rec: job.rec.clone(),
            changes,
            log,
        })
    }

    /// The job's current record (for followers, after a wake-up).
    pub fn snapshot(&self, id: JobId) -> Option<JobRecord> {
        self.lock().jobs.get(&id).map(|j| j.rec.clone())
    }

    // ---- slave sessions -------------------------------------------------------------------

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
        super::sched::refresh_reasons(st);
        (sid, unwanted)
    }

    /// Forgets a slave connection. Its jobs stay as they are, without a slave, until it comes
    /// back or the orphan timer gives them up. Returns those jobs.
    pub fn remove_slave(&self, sid: SessionId) -> Vec<JobId> {
        let mut st = self.lock();
        let Some(slave) = st.slaves.remove(&sid) else {
            return Vec::new();
        };
        super::sched::refresh_reasons(&mut st);
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
        self.finish(rec).await
    }

    /// Where to append a slave's output for a job, and how much is stored already.
    pub fn output_target(
        &self,
        sid: SessionId,
        id: JobId,
        stream: Stream,
    ) -> Option<(Arc<JobLog>, u64)> {
        let st = self.lock();
        let job = st.jobs.get(&id)?;
        if job.session != Some(sid) {
            return None;
        }
        let len = match stream {
            Stream::Stderr => job.rec.stderr_len,
            _ => job.rec.stdout_len,
        };
        Some((job.log.clone()?, len))
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

/// One fewer queued job for `owner`.
pub(super) fn unqueued(queued_by: &mut HashMap<Option<String>, usize>, owner: &Option<String>) {
    if let Some(n) = queued_by.get_mut(owner) {
        *n -= 1;
        if *n == 0 {
            queued_by.remove(owner);
        }
    }
}
