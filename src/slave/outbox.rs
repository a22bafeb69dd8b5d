//! The slave's jobs and everything it owes the hub about them, kept across reconnects.
//!
//! Each job's output waits here from the moment it is read until the hub acknowledges it, so a
//! lost connection loses nothing: a new session rewinds to the last acknowledged offset and
//! sends again (the hub skips what it already has). A job's end is reported only after all of
//! its output is sent, and the job is forgotten only when the hub says it stored the end.

use crate::limits::MAX_DATA_CHUNK;
use crate::wire::{DataFrame, JobId, Outcome, RunningJob, SlaveMsg, Stream, DATA_HEADER_LEN};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{mpsc, Notify};
use tokio_util::task::TaskTracker;

mod stream;
use stream::{drop_oldest_unsent, StreamBuf};

/// Orders for a running job, from the hub.
#[derive(Debug)]
pub enum JobCtl {
    Input(Vec<u8>),
    Resize(u16, u16),
    CloseStdin,
    Cancel(std::time::Duration),
}

/// Something to send to the hub.
pub enum Item {
    Msg(SlaveMsg),
    /// A data frame, header included.
    Data(Vec<u8>),
}

/// One run of a job on this slave. The hub can assign a job again (a retry) while the slave
/// still winds down an earlier run of it that the hub told it to forget: that run's reports
/// must not land on the new one, which is told apart by its number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub job: JobId,
    n: u64,
}

struct JobSlot {
    /// Which run of the job this is.
    run: u64,
    ctl: mpsc::UnboundedSender<JobCtl>,
    /// The claim its assignment carried, listed with it in a hello.
    claim: Option<String>,
    /// Its output is a terminal's (lines end in `\r\n`), not pipes'.
    tty: bool,
    out: [StreamBuf; 2],
    pid: Option<u32>,
    started_sent: bool,
    ended: Option<Outcome>,
    ended_sent: bool,
    /// Why the slave cancelled it on its own, if it did.
    cancelled: Option<String>,
    space: Arc<Notify>,
}

pub struct Outbox {
    jobs: Mutex<BTreeMap<JobId, JobSlot>>,
    /// Woken when there is something new to send.
    wake: Notify,
    /// Woken when a job ends or is forgotten.
    changed: Notify,
    /// Unacknowledged output kept per job and stream.
    limit: usize,
    connected: AtomicBool,
    /// Which session may take output to send. A session that has ended can still be running
    /// for a moment (task cancellation takes effect at its next yield): it must not take
    /// output meant for its successor and send it down a dead connection.
    epoch: AtomicU64,
    /// The jobs' tasks; a job's task ending means its processes are gone.
    pub tasks: TaskTracker,
    /// Names this outbox, i.e. this slave process, in every hello (see `SlaveMsg::Hello`).
    pub instance: u64,
    /// The number of the last run added.
    runs: AtomicU64,
    /// One lane per job id with a run alive: a run waits for the earlier one to be gone (its
    /// processes, its work directory) before it starts.
    lanes: Mutex<HashMap<JobId, Arc<tokio::sync::Mutex<()>>>>,
}

/// A run's place in its job's lane (see [`Outbox::lane`]): [`Lane::turn`] waits until the
/// earlier runs are gone; the next run goes when this drops, whether its turn came or not.
pub struct Lane<'a> {
    outbox: &'a Outbox,
    job: JobId,
    lane: Option<Arc<tokio::sync::Mutex<()>>>,
    turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Lane<'_> {
    /// Waits until no earlier run of the job is alive; the lane is this run's until it drops.
    /// Cancel-safe: dropped while waiting, it leaves its place in the queue.
    pub async fn turn(&mut self) {
        if let (Some(lane), None) = (&self.lane, &self.turn) {
            self.turn = Some(lane.clone().lock_owned().await);
        }
    }
}

impl Drop for Lane<'_> {
    fn drop(&mut self) {
        let mut lanes = self.outbox.lanes.lock().unwrap_or_else(|p| p.into_inner());
        self.turn = None;
        self.lane = None;
        // Nobody holds or waits for the lane any more: the map's is the last reference.
        if lanes
            .get(&self.job)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            lanes.remove(&self.job);
        }
    }
}

/// A random instance id of 53 bits, which every JSON reader keeps exact. Without the system's
/// randomness, the time and pid still tell two processes apart in practice.
fn new_instance() -> u64 {
    let mut b = [0u8; 8];
    let r = match getrandom::fill(&mut b) {
        Ok(()) => u64::from_le_bytes(b),
        Err(_) => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            t ^ (u64::from(std::process::id()) << 32)
        }
    };
    r & ((1 << 53) - 1)
}

impl Outbox {
    /// An empty outbox keeping at most `limit` unacknowledged bytes per job and stream.
    pub fn new(limit: usize) -> Outbox {
        Outbox {
            jobs: Mutex::default(),
            wake: Notify::new(),
            changed: Notify::new(),
            limit: limit.max(MAX_DATA_CHUNK),
            connected: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            tasks: TaskTracker::new(),
            instance: new_instance(),
            runs: AtomicU64::new(0),
            lanes: Mutex::default(),
        }
    }

    /// Whether a session with the hub is up. While it is not, a job whose output overflows
    /// the limit loses its oldest unsent output (replaced by a marker) instead of waiting.
    pub fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::SeqCst);
        if !up {
            for j in self.lock().values() {
                j.space.notify_one();
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<JobId, JobSlot>> {
        // Nothing here panics while holding the lock; recover the data rather than die.
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new run of a job (`tty`: its output is a terminal's, whose lines end in
    /// `\r\n`); `None` if the job is known already (a repeated assignment).
    pub fn add(
        &self,
        id: JobId,
        claim: Option<String>,
        tty: bool,
        ctl: mpsc::UnboundedSender<JobCtl>,
    ) -> Option<Run> {
        let mut jobs = self.lock();
        if jobs.contains_key(&id) {
            return None;
        }
        let n = self.runs.fetch_add(1, Ordering::Relaxed) + 1;
        jobs.insert(
            id,
            JobSlot {
                run: n,
                ctl,
                claim,
                tty,
                out: Default::default(),
                pid: None,
                started_sent: false,
                ended: None,
                ended_sent: false,
                cancelled: None,
                space: Arc::new(Notify::new()),
            },
        );
        Some(Run { job: id, n })
    }

    /// A place in the job's lane, behind the runs of the job that are alive: see
    /// [`Lane::turn`].
    pub fn lane(&self, job: JobId) -> Lane<'_> {
        let lane = {
            let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
            lanes.entry(job).or_default().clone()
        };
        Lane {
            outbox: self,
            job,
            lane: Some(lane),
            turn: None,
        }
    }

    /// The slot of `run`, if it is still the job's current run.
    fn slot(jobs: &mut BTreeMap<JobId, JobSlot>, run: Run) -> Option<&mut JobSlot> {
        jobs.get_mut(&run.job).filter(|j| j.run == run.n)
    }

    pub fn ctl(&self, id: JobId) -> Option<mpsc::UnboundedSender<JobCtl>> {
        self.lock().get(&id).map(|j| j.ctl.clone())
    }

    /// Every job not yet forgotten, for the hello after a reconnect.
    pub fn running(&self) -> Vec<RunningJob> {
        let jobs = self.lock();
        jobs.iter()
            .map(|(&job, j)| RunningJob {
                job,
                claim: j.claim.clone(),
            })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Cancels every job that has not ended, saying why.
    pub fn cancel_all(&self, grace: std::time::Duration, why: &str) {
        for job in self.lock().values_mut().filter(|j| j.ended.is_none()) {
            job.cancelled = Some(why.to_string());
            let _ = job.ctl.send(JobCtl::Cancel(grace));
        }
    }

    pub fn started(&self, run: Run, pid: u32) {
        if let Some(j) = Self::slot(&mut self.lock(), run) {
            j.pid = Some(pid);
        }
        self.wake.notify_one();
    }

    /// Queues output. While the hub is connected and the job already has `limit` bytes
    /// unacknowledged, this waits (back-pressure on the job, like a full pipe); while it is
    /// not, the oldest output never sent is dropped to make room, and a marker says so.
    pub async fn push(&self, run: Run, stream: Stream, data: &[u8]) {
        let id = run.job;
        loop {
            let space = {
                let mut jobs = self.lock();
                let Some(j) = Self::slot(&mut jobs, run) else {
                    return;
                };
                let s = &mut j.out[stream.output_index()];
                // While the hub is away, the job never waits: the oldest bytes never sent make
                // room. Bytes sent before (the hub may have stored them) are kept and do not
                // count, or a buffer full of them would hold the job until the hub is back.
                let away = !self.connected.load(Ordering::SeqCst);
                let unsent = s.unsent_len();
                if away && unsent + data.len() > self.limit {
                    let want = (unsent + data.len() - self.limit).max(self.limit / 8);
                    drop_oldest_unsent(id, s, want, j.tty);
                }
                if away || s.buf.len() < self.limit {
                    s.buf.extend(data);
                    drop(jobs);
                    self.wake.notify_one();
                    return;
                }
                j.space.clone()
            };
            space.notified().await;
        }
    }

    pub fn ended(&self, run: Run, outcome: Outcome) {
        if let Some(j) = Self::slot(&mut self.lock(), run) {
            j.ended = Some(outcome);
        }
        self.wake.notify_one();
        self.changed.notify_waiters();
    }

    /// Waits until every job has ended (`all: false`) or been forgotten (`all: true`).
    pub async fn settled(&self, all: bool) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let done = {
                let jobs = self.lock();
                if all {
                    jobs.is_empty()
                } else {
                    jobs.values().all(|j| j.ended.is_some())
                }
            };
            if done {
                return;
            }
            changed.await;
        }
    }

    /// Jobs whose process has not ended.
    pub fn running_count(&self) -> usize {
        self.lock().values().filter(|j| j.ended.is_none()).count()
    }

    /// The hub stored a stream up to `offset`. An ack of bytes already acknowledged changes
    /// nothing; one of bytes never sent (a hub in error) is refused, and they are kept.
    pub fn ack(&self, id: JobId, stream: Stream, offset: u64) -> Result<(), String> {
        let mut jobs = self.lock();
        let Some(j) = jobs.get_mut(&id) else {
            return Err("this slave does not hold the job".into());
        };
        let s = &mut j.out[stream.output_index()];
        // Bytes sent in an earlier session count: the hub may have stored them.
        if offset > s.sent_hw.max(s.acked) {
            return Err(format!(
                "{stream:?} offset {offset} is beyond the {} bytes sent",
                s.sent_hw.max(s.acked)
            ));
        }
        if offset > s.acked {
            s.buf.drain(..(offset - s.acked) as usize);
            s.acked = offset;
            s.sent = s.sent.max(offset);
            j.space.notify_one();
            drop(jobs);
            // The window may have room again.
            self.wake.notify_one();
        }
        Ok(())
    }

    /// The hub could not store a stream from `offset` on and asks for it again (a full disk):
    /// it is sent again from there, and the job's end after it. The bytes are still here (not
    /// acknowledged); one of bytes it acknowledged or never got is refused.
    pub fn resend(&self, id: JobId, stream: Stream, offset: u64) -> Result<(), String> {
        let mut jobs = self.lock();
        let Some(j) = jobs.get_mut(&id) else {
            return Err("this slave does not hold the job".into());
        };
        let s = &mut j.out[stream.output_index()];
        if offset < s.acked || offset > s.sent {
            return Err(format!(
                "{stream:?} offset {offset} is not between the {} bytes acknowledged and the {} \
                 sent",
                s.acked, s.sent
            ));
        }
        s.sent = offset;
        // Everything before `offset` is stored: the window counts from there.
        s.settled = offset;
        j.ended_sent = false;
        drop(jobs);
        self.wake.notify_one();
        Ok(())
    }

    /// The hub refused something (an `error`): typically a frame it could not store, which
    /// it will never acknowledge. Everything sent so far counts as answered, so the window
    /// reopens; the hub's log and the job's end say what was lost.
    pub fn refused(&self) {
        for j in self.lock().values_mut() {
            for s in &mut j.out {
                s.settled = s.sent;
            }
        }
        self.wake.notify_one();
    }

    /// The hub stored the job's end: forget it. Whether it was held.
    pub fn forget(&self, id: JobId) -> bool {
        let held = self.lock().remove(&id);
        if let Some(j) = &held {
            // Its run may be waiting in `push` for room that no ack will make now: it must
            // get on to see its control channel closed, and stop.
            j.space.notify_one();
        }
        self.changed.notify_waiters();
        held.is_some()
    }

    /// A new session: everything not acknowledged is to be sent again, by it alone. Returns
    /// the session's epoch, for [`Outbox::next`].
    pub fn rewind(&self) -> u64 {
        let mut jobs = self.lock();
        // Changed under the lock that `take` holds, so no older session takes anything after.
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        for (id, j) in jobs.iter_mut() {
            tracing::debug!(
                job = id,
                stdout = j.out[0].acked,
                stderr = j.out[1].acked,
                "resending from the last acknowledged offsets"
            );
            for s in &mut j.out {
                s.sent = s.acked;
                s.settled = s.acked;
            }
            j.started_sent = false;
            j.ended_sent = false;
        }
        drop(jobs);
        self.wake.notify_one();
        epoch
    }

    /// Takes what is due now (marking it sent), or waits until something is. A session whose
    /// `epoch` is no longer current gets nothing, ever. Data frames are built in buffers from
    /// `buffer` (which gets the size wanted).
    pub async fn next(
        &self,
        epoch: u64,
        buffer: &mut impl FnMut(usize) -> Vec<u8>,
    ) -> Option<Vec<Item>> {
        loop {
            let Some(items) = self.take(epoch, buffer) else {
                // Pass on a wake-up this stale session may have taken from the current one.
                self.wake.notify_one();
                return None;
            };
            if !items.is_empty() {
                return Some(items);
            }
            self.wake.notified().await;
        }
    }

    pub(super) fn take(
        &self,
        epoch: u64,
        buffer: &mut impl FnMut(usize) -> Vec<u8>,
    ) -> Option<Vec<Item>> {
        let mut items = Vec::new();
        let mut jobs = self.lock();
        if self.epoch.load(Ordering::SeqCst) != epoch {
            return None;
        }
        for (&job, j) in jobs.iter_mut() {
            if let (Some(pid), false) = (j.pid, j.started_sent) {
                j.started_sent = true;
                items.push(Item::Msg(SlaveMsg::Started { job, pid }));
            }
            for (i, stream) in [(0, Stream::Stdout), (1, Stream::Stderr)] {
                let s = &mut j.out[i];
                loop {
                    let n = s.next_frame_len();
                    if n == 0 {
                        break;
                    }
                    let mut frame = buffer(DATA_HEADER_LEN + n);
                    frame.extend_from_slice(&DataFrame::header(stream, job, s.sent));
                    s.copy_unsent(n, &mut frame);
                    s.sent += n as u64;
                    s.sent_hw = s.sent_hw.max(s.sent);
                    items.push(Item::Data(frame));
                }
            }
            let all_sent = j.out.iter().all(|s| s.sent == s.produced());
            if let (Some(outcome), false, true) = (&j.ended, j.ended_sent, all_sent) {
                j.ended_sent = true;
                items.push(Item::Msg(SlaveMsg::Ended {
                    job,
                    outcome: outcome.clone(),
                    stdout_len: j.out[0].produced(),
                    stderr_len: j.out[1].produced(),
                    cancelled: j.cancelled.clone(),
                }));
            }
        }
        Some(items)
    }
}

#[cfg(test)]
mod tests;
