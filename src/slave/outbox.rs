//! The slave's jobs and everything it owes the hub about them, kept across reconnects.
//!
//! Each job's output waits here from the moment it is read until the hub acknowledges it, so a
//! lost connection loses nothing: a new session rewinds to the last acknowledged offset and
//! sends again (the hub skips what it already has). A job's end is reported only after all of
//! its output is sent, and the job is forgotten only when the hub says it stored the end.

use crate::limits::{MAX_DATA_CHUNK, SLAVE_UNACKED_BYTES};
use crate::wire::{DataFrame, JobId, Outcome, RunningJob, SlaveMsg, Stream};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{mpsc, Notify};

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

#[derive(Default)]
struct StreamBuf {
    /// Offset the hub has acknowledged; `buf` holds the bytes from here on.
    acked: u64,
    /// Offset sent in this session.
    sent: u64,
    buf: VecDeque<u8>,
}

impl StreamBuf {
    fn produced(&self) -> u64 {
        self.acked + self.buf.len() as u64
    }
}

struct JobSlot {
    ctl: mpsc::UnboundedSender<JobCtl>,
    out: [StreamBuf; 2],
    pid: Option<u32>,
    started_sent: bool,
    ended: Option<Outcome>,
    ended_sent: bool,
    space: Arc<Notify>,
}

#[derive(Default)]
pub struct Outbox {
    jobs: Mutex<BTreeMap<JobId, JobSlot>>,
    /// Woken when there is something new to send.
    wake: Notify,
}

fn idx(stream: Stream) -> usize {
    usize::from(stream == Stream::Stderr)
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<JobId, JobSlot>> {
        // Nothing here panics while holding the lock; recover the data rather than die.
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a job; false if it is known already (a repeated assignment).
    pub fn add(&self, id: JobId, ctl: mpsc::UnboundedSender<JobCtl>) -> bool {
        let mut jobs = self.lock();
        if jobs.contains_key(&id) {
            return false;
        }
        jobs.insert(
            id,
            JobSlot {
                ctl,
                out: Default::default(),
                pid: None,
                started_sent: false,
                ended: None,
                ended_sent: false,
                space: Arc::new(Notify::new()),
            },
        );
        true
    }

    pub fn ctl(&self, id: JobId) -> Option<mpsc::UnboundedSender<JobCtl>> {
        self.lock().get(&id).map(|j| j.ctl.clone())
    }

    /// Every job not yet forgotten, for the hello after a reconnect.
    pub fn running(&self) -> Vec<RunningJob> {
        self.lock().keys().map(|&job| RunningJob { job }).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Sends an order to every job that has not ended.
    pub fn cancel_all(&self, grace: std::time::Duration) {
        for job in self.lock().values().filter(|j| j.ended.is_none()) {
            let _ = job.ctl.send(JobCtl::Cancel(grace));
        }
    }

    pub fn started(&self, id: JobId, pid: u32) {
        if let Some(j) = self.lock().get_mut(&id) {
            j.pid = Some(pid);
        }
        self.wake.notify_one();
    }

    /// Queues output, waiting while the job already has [`SLAVE_UNACKED_BYTES`] unacknowledged
    /// (back-pressure on the job, like a full pipe).
    pub async fn push(&self, id: JobId, stream: Stream, data: &[u8]) {
        loop {
            let space = {
                let mut jobs = self.lock();
                let Some(j) = jobs.get_mut(&id) else { return };
                let s = &mut j.out[idx(stream)];
                if s.buf.len() < SLAVE_UNACKED_BYTES {
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

    pub fn ended(&self, id: JobId, outcome: Outcome) {
        if let Some(j) = self.lock().get_mut(&id) {
            j.ended = Some(outcome);
        }
        self.wake.notify_one();
    }

    /// The hub stored a stream up to `offset`.
    pub fn ack(&self, id: JobId, stream: Stream, offset: u64) {
        let mut jobs = self.lock();
        let Some(j) = jobs.get_mut(&id) else { return };
        let s = &mut j.out[idx(stream)];
        if offset > s.acked && offset <= s.produced() {
            s.buf.drain(..(offset - s.acked) as usize);
            s.acked = offset;
            s.sent = s.sent.max(offset);
            j.space.notify_one();
        }
    }

    /// The hub stored the job's end: forget it.
    pub fn forget(&self, id: JobId) {
        self.lock().remove(&id);
    }

    /// A new session: everything not acknowledged is to be sent again.
    pub fn rewind(&self) {
        for j in self.lock().values_mut() {
            for s in &mut j.out {
                s.sent = s.acked;
            }
            j.started_sent = false;
            j.ended_sent = false;
        }
        self.wake.notify_one();
    }

    /// Takes what is due now (marking it sent), or waits until something is.
    pub async fn next(&self) -> Vec<Item> {
        loop {
            let items = self.take();
            if !items.is_empty() {
                return items;
            }
            self.wake.notified().await;
        }
    }

    fn take(&self) -> Vec<Item> {
        let mut items = Vec::new();
        for (&job, j) in self.lock().iter_mut() {
            if let (Some(pid), false) = (j.pid, j.started_sent) {
                j.started_sent = true;
                items.push(Item::Msg(SlaveMsg::Started { job, pid }));
            }
            for (i, stream) in [(0, Stream::Stdout), (1, Stream::Stderr)] {
                let s = &mut j.out[i];
                let from = (s.sent - s.acked) as usize;
                let n = (s.buf.len() - from).min(MAX_DATA_CHUNK);
                if n > 0 {
                    let mut frame = DataFrame::header(stream, job, s.sent).to_vec();
                    frame.extend(s.buf.range(from..from + n));
                    s.sent += n as u64;
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
                }));
            }
        }
        items
    }
}
