//! The hub's in-memory picture: jobs, the queue, connected slaves, and the scheduler.
//!
//! One `std::sync::Mutex` guards it; it is never held across an `.await`. Every change that must
//! be durable before it is shown (a new job, a terminal state) is committed to the [`Store`]
//! first and applied here after. Every change a follower may care about bumps the job's watch.

use super::auth::Principal;
use super::claim::Claims;
use super::logs::{JobLog, Logs};
use super::recent::Recent;
use super::store::Store;
use crate::conn::ConnSender;
use crate::wire::{HubToSlave, JobId, JobRecord, JobState, Outcome, Stream};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{watch, Notify};

mod hold;
mod joins;
mod loading;
mod removal;
mod sessions;

pub use joins::{Joined, Joining};
pub(super) use loading::Loading;

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
    /// Jobs that ended longer ago than this are deleted with their output; `None` keeps all.
    pub retain: Option<Duration>,
    /// A job stream whose client acknowledged nothing for this long is dropped (see
    /// `hub::peer`); `None` leaves it to TCP.
    pub peer_timeout: Option<Duration>,
    /// After a crash, how long jobs queued at the start wait for the slaves that were
    /// connected to come back (see `state::hold`); zero: not at all.
    pub crash_hold: Duration,
    /// Rows the audit log keeps: the newest (see `hub::audit`).
    pub audit_rows: u64,
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
    /// Signs the claim each assignment carries, and checks those slaves bring back.
    pub(super) claims: Claims,
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
    /// Jobs the sessions of a slave process (by instance id) left behind that no slave has
    /// taken back yet; see `joins`.
    orphans_of: HashMap<u64, HashSet<JobId>>,
    next_session: SessionId,
    /// The number of the next broadcast group (`g1`, `g2`, ...).
    pub(super) next_group: u64,
    /// After a crash: queued jobs held back until the slaves that were connected are back.
    pub(super) hold: Option<hold::Hold>,
}

pub(super) struct JobEntry {
    pub(super) rec: JobRecord,
    /// Open log files of the current attempt while the job is live.
    pub(super) log: Option<Arc<JobLog>>,
    /// The current attempt's latest output, for followers, while the job is live.
    pub(super) recent: Option<Arc<Recent>>,
    /// Bumped on new output and state changes; created when someone follows the job.
    watch: Option<watch::Sender<u64>>,
    /// The slave session that runs it; `None` while queued or while its slave is away.
    pub(super) session: Option<SessionId>,
    /// The slave process (instance id) its current attempt was assigned to, while it is
    /// assigned, running or lost: only that process, under the name in `rec.slave`, may take
    /// it back (see `joins`). `None` while queued, or if that slave sent no instance id.
    pub(super) instance: Option<u64>,
    /// Set when a cancel was asked for: why.
    cancelled: Option<String>,
    /// Input bytes forwarded so far (the offset of the next input frame).
    input_sent: u64,
    /// The terminal size last sent to the slave.
    size: Option<(u16, u16)>,
    /// A queued retry waits until then (ms since the epoch); 0 for no wait.
    pub(super) not_before_ms: u64,
    /// The slave reported the end and it is being stored: a repeated report is refused.
    pub(super) ending: bool,
    /// How many times a slave session has let go of it (`joins`): an orphan timer gives up
    /// only the jobs still orphaned since it was set, not one that a slave took back and let
    /// go of again, which has a timer (and its full `--slave-timeout`) of its own.
    pub(super) orphanings: u64,
}

/// A job that lost its slave session, as an orphan timer sees it (see [`Hub::orphans`]).
#[derive(Clone, Copy, Debug)]
pub struct Orphan {
    pub id: JobId,
    /// Its `JobEntry::orphanings` when it was let go of.
    since: u64,
}

pub(super) struct SlaveEntry {
    pub(super) name: String,
    pub(super) slots: u32,
    pub(super) labels: Vec<String>,
    /// Stopping: no new jobs.
    pub(super) draining: bool,
    /// The token it serves with: whether that is bound to its name, and (for admins) which.
    pub(super) token: Arc<Principal>,
    pub(super) jobs: HashSet<JobId>,
    pub(super) tx: ConnSender,
    /// The slave process's instance id, if it sent one.
    pub(super) instance: Option<u64>,
    /// Cancelled when a later session of the same process replaces this one.
    replaced_by: tokio_util::sync::CancellationToken,
    /// Jobs its hello listed that the hub did not give back, until the session has sent
    /// their `cancel` and `done`: none of them is assigned to it before (see `joins`).
    pub(super) fenced: HashSet<JobId>,
}

/// What a connected slave looks like from outside (`GET /api/v1/slaves`).
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
pub struct SlaveInfo {
    pub name: String,
    pub slots: u32,
    pub running: Vec<JobId>,
    #[serde(default)]
    pub labels: Vec<String>,
    /// Stopping: it finishes the jobs it holds and takes no new ones.
    #[serde(default)]
    pub draining: bool,
    /// It serves with a token bound to its name (`xnhub token create --slave-name`), so no
    /// other token can serve as it: a job pinned to it reaches only that token's holder.
    #[serde(default)]
    pub bound: bool,
    /// The name of the token it serves with, for admins only (only they may see token names):
    /// which slaves still use a shared token, before it is revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// What a follower needs to read a job: its record, a wake-up channel and its log.
pub struct Subscription {
    pub rec: JobRecord,
    pub changes: watch::Receiver<u64>,
    pub log: Arc<JobLog>,
    /// The attempt's latest output in memory, while the job is live.
    pub recent: Option<Arc<Recent>>,
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
            recent: None,
            watch: None,
            session: None,
            instance: None,
            cancelled: None,
            input_sent: 0,
            size: None,
            not_before_ms: 0,
            ending: false,
            orphanings: 0,
        }
    }

    pub(super) fn as_orphan(&self) -> Orphan {
        Orphan {
            id: self.rec.id,
            since: self.orphanings,
        }
    }

    pub(super) fn touch(&self) {
        if let Some(w) = &self.watch {
            w.send_modify(|v| *v = v.wrapping_add(1));
        }
    }
}

impl Hub {
    /// The hub, from the jobs loaded at start-up. The caller starts the orphan timer for the
    /// jobs that were assigned or running ([`Hub::orphans`]). Lengths measured for old rows are
    /// stored now, so the next start does not measure them again.
    pub(super) fn new(mut store: Store, logs: Logs, mut loaded: Loading, opts: HubOptions) -> Hub {
        for rec in std::mem::take(&mut loaded.measured) {
            store.save_later(rec);
        }
        let present = std::mem::take(&mut store.present);
        let hold = hold::Hold::start(present, &loaded.queue, opts.crash_hold, &store);
        if let Some(hold) = &hold {
            for id in &loaded.queue {
                if let Some(job) = loaded.jobs.get_mut(id) {
                    job.rec.reason = Some(hold.reason.clone());
                }
            }
        }
        Hub {
            state: Mutex::new(State {
                jobs: loaded.jobs,
                queue: loaded.queue,
                queued_by: loaded.queued_by,
                slaves: HashMap::new(),
                orphans_of: loaded.orphans_of,
                next_session: 1,
                next_group: loaded.next_group.max(store.next_group).max(1),
                hold,
            }),
            claims: Claims::new(&store.claim_key),
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
    pub fn orphans(&self) -> Vec<Orphan> {
        let st = self.lock();
        st.jobs
            .values()
            .filter(|j| j.session.is_none() && !j.rec.state.is_terminal())
            .filter(|j| j.rec.state != JobState::Queued)
            .map(JobEntry::as_orphan)
            .collect()
    }

    pub fn get(&self, id: JobId) -> Result<JobRecord, JobError> {
        self.lock()
            .jobs
            .get(&id)
            .map(|j| j.rec.clone())
            .ok_or(JobError::NotFound(id))
    }

    /// The connected slaves, by name; `with_tokens` names the token each serves with.
    pub fn slaves(&self, with_tokens: bool) -> Vec<SlaveInfo> {
        let st = self.lock();
        let mut v: Vec<SlaveInfo> = st
            .slaves
            .values()
            .map(|s| SlaveInfo {
                name: s.name.clone(),
                slots: s.slots,
                labels: s.labels.clone(),
                draining: s.draining,
                bound: s.token.slave_name.is_some(),
                token: with_tokens.then(|| s.token.name.clone()),
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
        if rec.state == JobState::Cancelled {
            self.finish(rec.clone()).await?;
            return Ok(rec);
        }
        // Stored before it is answered, so that a hub that crashes meanwhile still carries it
        // out when the slave comes back, or ends the job `cancelled` when it does not. It is
        // sent to the slave even if it could not be stored (a full disk): it then holds only
        // as long as this hub runs, and the answer says why.
        let stored = self.store.cancel_asked(id, why).await;
        if let Some(tx) = to_slave {
            let grace_ms = self.opts.cancel_grace.as_millis() as u64;
            let _ = tx.send(&HubToSlave::Cancel { job: id, grace_ms }).await;
        }
        // Without `tx`, its slave is away: the cancel is sent when it comes back, or the job
        // ends `cancelled` when the hub gives the slave up.
        stored.map_err(JobError::Store)?;
        Ok(rec)
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
        // A job that printed nothing has no file to flush: no hop to a blocking thread.
        if let Some(log) = log.filter(|l| l.has_files()) {
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
                job.recent = None;
                if let Some(wait) = retry_in {
                    tracing::info!(job = id, attempt = job.rec.attempt, "retrying in {wait:?}");
                    job.not_before_ms = now_ms() + wait.as_millis() as u64;
                    job.instance = None;
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
        let recent = match job.rec.state.is_terminal() {
            true => None,
            false => Some(job.recent.get_or_insert_with(Default::default).clone()),
        };
        Ok(Subscription {
            rec: job.rec.clone(),
            changes,
            log,
            recent,
        })
    }

    /// The job's current record (for followers, after a wake-up).
    pub fn snapshot(&self, id: JobId) -> Option<JobRecord> {
        self.lock().jobs.get(&id).map(|j| j.rec.clone())
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
