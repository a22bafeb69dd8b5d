//! The output intake of one slave session: data frames are appended to the jobs' logs in
//! batches, one blocking hop for everything queued at that moment, and acknowledged in bulk;
//! a job's `ended` takes the same queue, so its end is stored only after the output that came
//! before it.
//!
//! Acknowledgements: a stream is acknowledged once [`ACK_EVERY`] bytes were stored since the
//! last `ack`, and whatever is still unacknowledged once the queue has been idle for
//! [`ACK_IDLE`]. A short frame (less than a full data chunk) is acknowledged as soon as the
//! queue runs empty: the slave sends one only when it has nothing else in flight, so it is
//! waiting for this answer (a keystroke's echo, say). A frame that is not valid (a gap, a job
//! not running here) is refused with an `error` and never acknowledged; the slave counts it as
//! answered.
//!
//! A frame that is valid but cannot be written (a full disk) stalls its stream: what follows
//! is dropped, and so is the job's end, until [`RESEND_AFTER`] later the slave is asked to send
//! it all again from the first byte missing (`resend`; the slave keeps unacknowledged output,
//! and its job waits once its buffer is full). So a full disk holds output up instead of
//! losing it. A slave that did not say it understands `resend` gets the `error` instead, and
//! the job's end records what was not stored.
//!
//! Nothing here touches the log files on the runtime: the appends run on `spawn_blocking`.

use super::logs::JobLog;
use super::recent::Recent;
use super::state::{Hub, SessionId};
use super::Ctx;
use crate::conn::ConnSender;
use crate::limits::MAX_DATA_CHUNK;
use crate::wire::{DataFrame, HubToSlave, JobId, Outcome, Stream, DATA_HEADER_LEN};
use anyhow::{anyhow, Result};
use bytes::Bytes;
use std::collections::hash_map::Entry as Slot;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Bytes stored for one stream before it is acknowledged even while more keeps coming.
pub const ACK_EVERY: u64 = 256 << 10;

/// Quiet time after which everything stored is acknowledged.
pub const ACK_IDLE: Duration = Duration::from_millis(1);

/// Entries queued for the intake before the session's reader waits (back-pressure on the
/// slave's connection).
const QUEUE: usize = 128;

/// Most frames stored in one blocking hop.
const BATCH_FRAMES: usize = 256;

/// How long after a failed write the hub asks the slave for the stream again.
pub const RESEND_AFTER: Duration = Duration::from_secs(1);

/// What a slave session hands the intake, in the order it arrived.
pub enum Entry {
    /// A data frame, header included.
    Data(Bytes),
    /// The job's end, stored after every frame queued before it.
    Ended {
        job: JobId,
        outcome: Outcome,
        lens: (u64, u64),
        cancelled: Option<String>,
    },
}

/// The queue into one session's intake task. The task and its queue start with the first
/// entry: an idle slave (most of them, in a large pool) costs the hub neither.
pub struct Intake {
    ctx: Arc<Ctx>,
    sid: SessionId,
    answer: ConnSender,
    /// The slave understands `resend`.
    resend: bool,
    tx: Option<mpsc::Sender<Entry>>,
}

impl Intake {
    /// The intake of session `sid`; its task answers the slave through `answer`, and ends
    /// when the [`Intake`] is dropped and its queue is empty.
    pub fn new(ctx: &Arc<Ctx>, sid: SessionId, answer: ConnSender, resend: bool) -> Intake {
        Intake {
            ctx: ctx.clone(),
            sid,
            answer,
            resend,
            tx: None,
        }
    }

    pub async fn push(&mut self, entry: Entry) -> Result<()> {
        let tx = self.tx.get_or_insert_with(|| {
            let (etx, erx) = mpsc::channel(QUEUE);
            let task = run(
                self.ctx.clone(),
                self.sid,
                erx,
                self.answer.clone(),
                self.resend,
            );
            self.ctx.sessions.spawn(task);
            etx
        });
        tx.send(entry)
            .await
            .map_err(|_| anyhow!("output intake stopped"))
    }
}

/// What was stored of one stream and what the slave has been told.
#[derive(Default)]
struct Acks {
    stored: u64,
    acked: u64,
    /// The last frame stored was short: the slave is waiting for its answer.
    short: bool,
}

type AckMap = HashMap<(JobId, Stream), Acks>;

/// A stream whose output could not be written.
#[derive(Clone, Copy)]
enum Stall {
    /// Everything from `offset` on is dropped until `at`, when the slave is asked for it again.
    Waiting {
        offset: u64,
        at: tokio::time::Instant,
    },
    /// The slave was asked to send again from the stored length: frames it sent before it
    /// heard that (beyond a gap) are dropped; the first stored ends the stall.
    Asked,
}

type Stalls = HashMap<(JobId, Stream), Stall>;

async fn run(
    ctx: Arc<Ctx>,
    sid: SessionId,
    mut rx: mpsc::Receiver<Entry>,
    tx: ConnSender,
    resend: bool,
) {
    let mut acks = AckMap::new();
    let mut stalls = Stalls::new();
    loop {
        let owed = acks.values().any(|a| a.stored > a.acked);
        let ask_at = stalls
            .values()
            .filter_map(|s| match s {
                Stall::Waiting { at, .. } => Some(*at),
                Stall::Asked => None,
            })
            .min();
        let idle_at = owed.then(|| tokio::time::Instant::now() + ACK_IDLE);
        let first = match idle_at.into_iter().chain(ask_at).min() {
            None => rx.recv().await,
            Some(at) => match tokio::time::timeout_at(at, rx.recv()).await {
                Ok(e) => e,
                Err(_) => {
                    send_acks(&tx, &mut acks, |_| true).await;
                    ask_again(&tx, &mut stalls).await;
                    continue;
                }
            },
        };
        let Some(first) = first else { break };
        let mut frames = Vec::new();
        let mut end = None;
        match first {
            Entry::Data(f) => frames.push(f),
            e @ Entry::Ended { .. } => end = Some(e),
        }
        while end.is_none() && frames.len() < BATCH_FRAMES {
            match rx.try_recv() {
                Ok(Entry::Data(f)) => frames.push(f),
                Ok(e) => end = Some(e),
                Err(_) => break,
            }
        }
        if !frames.is_empty() {
            let hub = ctx.hub.clone();
            let stalled = stalls.clone();
            let results =
                tokio::task::spawn_blocking(move || store_batch(&hub, sid, &frames, stalled))
                    .await
                    .unwrap_or_else(|e| vec![Fate::Invalid(format!("storing output failed: {e}"))]);
            for r in results {
                match r {
                    Fate::Stored(key, len, short) => {
                        let a = acks.entry(key).or_default();
                        a.stored = a.stored.max(len);
                        a.short = short;
                        if !stalls.is_empty() {
                            stalls.remove(&key);
                        }
                    }
                    Fate::Dropped => {}
                    Fate::Unwritten(key, offset, message) if resend => {
                        if !matches!(stalls.get(&key), Some(Stall::Waiting { .. })) {
                            tracing::error!(
                                session = sid,
                                "{message}; asking the slave for it again in {RESEND_AFTER:?}"
                            );
                            let at = tokio::time::Instant::now() + RESEND_AFTER;
                            stalls.insert(key, Stall::Waiting { offset, at });
                        }
                    }
                    Fate::Unwritten(_, _, message) | Fate::Invalid(message) => {
                        tracing::warn!(session = sid, "slave output refused: {message}");
                        let _ = tx.send(&HubToSlave::Error { message }).await;
                    }
                }
            }
            let idle = rx.is_empty();
            send_acks(&tx, &mut acks, |a| {
                a.stored - a.acked >= ACK_EVERY || (idle && a.short)
            })
            .await;
        }
        if let Some(Entry::Ended {
            job,
            outcome,
            lens,
            cancelled,
        }) = end
        {
            if stalls.keys().any(|k| k.0 == job) {
                // Its output is not all stored: the slave sends the end again after it.
                tracing::debug!(
                    session = sid,
                    job,
                    "end dropped: its output is to come again"
                );
                continue;
            }
            send_acks(&tx, &mut acks, |_| true).await;
            acks.retain(|k, _| k.0 != job);
            // Storing an end waits for an fsync and a commit: beside this loop, so that one
            // job's end holds up neither the slave's other output nor its other ends (and
            // many ends share one commit). Its output is stored already.
            let (ctx2, tx) = (ctx.clone(), tx.clone());
            ctx.sessions.spawn(async move {
                let ended = ctx2.hub.job_ended(sid, job, outcome, lens, cancelled);
                // A commit that keeps failing is retried until the hub stops.
                let res = tokio::select! {
                    res = ended => res,
                    _ = ctx2.shutdown.cancelled() => Ok(()),
                };
                if let Err(e) = res {
                    tracing::warn!(session = sid, "slave message refused: {e:#}");
                    let message = format!("{e:#}");
                    let _ = tx.send(&HubToSlave::Error { message }).await;
                }
            });
        }
    }
    send_acks(&tx, &mut acks, |_| true).await;
}

/// Asks the slave to send again the streams whose wait after a failed write is over.
async fn ask_again(tx: &ConnSender, stalls: &mut Stalls) {
    let now = tokio::time::Instant::now();
    for (&(job, stream), stall) in stalls.iter_mut() {
        if let Stall::Waiting { offset, at } = *stall {
            if at <= now {
                *stall = Stall::Asked;
                let _ = tx
                    .send(&HubToSlave::Resend {
                        job,
                        stream,
                        offset,
                    })
                    .await;
            }
        }
    }
}

/// Acknowledges every stream `due` picks that has something unacknowledged.
async fn send_acks(tx: &ConnSender, acks: &mut AckMap, due: impl Fn(&Acks) -> bool) {
    for (&(job, stream), a) in acks.iter_mut() {
        if a.stored > a.acked && due(a) {
            a.acked = a.stored;
            a.short = false;
            let offset = a.stored;
            if tx
                .send(&HubToSlave::Ack {
                    job,
                    stream,
                    offset,
                })
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// One frame's fate.
enum Fate {
    /// Stored: the stream, its stored length to acknowledge, whether the frame was short.
    Stored((JobId, Stream), u64, bool),
    /// Dropped without a word: its stream is stalled (see [`Stall`]).
    Dropped,
    /// Valid, but the write failed: the stream, its stored length, why.
    Unwritten((JobId, Stream), u64, String),
    /// Refused: why.
    Invalid(String),
}

/// Appends a batch of frames to their logs, in order (blocking). Bytes the hub has already (a
/// resend after a reconnect) are skipped; a gap is refused. Once a frame of a stream could
/// not be written, the stream's later frames are dropped, and so are those of a stream that
/// was stalled before the batch (past a gap, once it was asked again). Followers are woken
/// once per stream.
fn store_batch(hub: &Hub, sid: SessionId, frames: &[Bytes], mut stalls: Stalls) -> Vec<Fate> {
    let mut targets = HashMap::new();
    let mut results = Vec::with_capacity(frames.len());
    for frame in frames {
        let fate = store_one(hub, sid, frame, &mut targets, &stalls);
        match &fate {
            Fate::Stored(key, ..) if !stalls.is_empty() => {
                stalls.remove(key);
            }
            // Only for this batch: its later frames are dropped. The caller keeps the stall
            // with its offset and when to ask again.
            Fate::Unwritten(key, ..) => {
                let at = tokio::time::Instant::now();
                stalls.insert(*key, Stall::Waiting { offset: 0, at });
            }
            _ => {}
        }
        results.push(fate);
    }
    for ((job, stream), (_, have, changed, _)) in targets {
        if changed {
            hub.output_stored(job, stream, have);
        }
    }
    results
}

/// A stream's log, its stored length, whether this batch changed it, its in-memory tail.
type Target = (Arc<JobLog>, u64, bool, Arc<Recent>);

fn store_one(
    hub: &Hub,
    sid: SessionId,
    frame: &Bytes,
    targets: &mut HashMap<(JobId, Stream), Target>,
    stalls: &Stalls,
) -> Fate {
    let f = match DataFrame::decode(frame) {
        Ok(f) => f,
        Err(e) => return Fate::Invalid(format!("{e:#}")),
    };
    if f.stream == Stream::Stdin {
        return Fate::Invalid("slaves send output, not input".into());
    }
    let (job, stream, offset) = (f.job, f.stream, f.offset);
    let key = (job, stream);
    let stall = stalls.get(&key);
    if matches!(stall, Some(Stall::Waiting { .. })) {
        return Fate::Dropped;
    }
    let short = f.data.len() < MAX_DATA_CHUNK;
    let end = offset + f.data.len() as u64;
    let (log, have, changed, recent) = match targets.entry(key) {
        Slot::Occupied(o) => o.into_mut(),
        Slot::Vacant(v) => match hub.output_target(sid, job, stream) {
            Some((log, have, recent)) => v.insert((log, have, false, recent)),
            None => return Fate::Invalid(format!("job {job} is not running on this slave")),
        },
    };
    if offset > *have {
        // Sent before the slave heard it was to send again from `have`.
        if matches!(stall, Some(Stall::Asked)) {
            return Fate::Dropped;
        }
        return Fate::Invalid(format!(
            "output of job {job} resumes at byte {offset}, but the hub has {have}"
        ));
    }
    if end > *have {
        let data = frame.slice(DATA_HEADER_LEN + (*have - offset) as usize..);
        if let Err(e) = log.append(stream, *have, &data) {
            return Fate::Unwritten(key, *have, format!("storing output of job {job}: {e}"));
        }
        recent.push(stream, *have, data);
        *have = end;
        *changed = true;
    }
    Fate::Stored(key, *have, short)
}
