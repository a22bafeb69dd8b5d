//! The output intake of one slave session: data frames are appended to the jobs' logs in
//! batches, one blocking hop for everything queued at that moment, and acknowledged in bulk;
//! a job's `ended` takes the same queue, so its end is stored only after the output that came
//! before it.
//!
//! Acknowledgements: a stream is acknowledged once [`ACK_EVERY`] bytes were stored since the
//! last `ack`, and whatever is still unacknowledged once the queue has been idle for
//! [`ACK_IDLE`]. A short frame (less than a full data chunk) is acknowledged as soon as the
//! queue runs empty: the slave sends one only when it has nothing else in flight, so it is
//! waiting for this answer (a keystroke's echo, say). A frame that cannot be stored is
//! refused with an `error` and never acknowledged; the slave counts it as answered.
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
    tx: Option<mpsc::Sender<Entry>>,
}

impl Intake {
    /// The intake of session `sid`; its task answers the slave through `answer`, and ends
    /// when the [`Intake`] is dropped and its queue is empty.
    pub fn new(ctx: &Arc<Ctx>, sid: SessionId, answer: ConnSender) -> Intake {
        Intake {
            ctx: ctx.clone(),
            sid,
            answer,
            tx: None,
        }
    }

    pub async fn push(&mut self, entry: Entry) -> Result<()> {
        let tx = self.tx.get_or_insert_with(|| {
            let (etx, erx) = mpsc::channel(QUEUE);
            let task = run(self.ctx.clone(), self.sid, erx, self.answer.clone());
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

async fn run(ctx: Arc<Ctx>, sid: SessionId, mut rx: mpsc::Receiver<Entry>, tx: ConnSender) {
    let mut acks = AckMap::new();
    loop {
        let owed = acks.values().any(|a| a.stored > a.acked);
        let first = if owed {
            match tokio::time::timeout(ACK_IDLE, rx.recv()).await {
                Ok(e) => e,
                Err(_) => {
                    send_acks(&tx, &mut acks, |_| true).await;
                    continue;
                }
            }
        } else {
            rx.recv().await
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
            let results = tokio::task::spawn_blocking(move || store_batch(&hub, sid, &frames))
                .await
                .unwrap_or_else(|e| vec![Err(format!("storing output failed: {e}"))]);
            for r in results {
                match r {
                    Ok((key, len, short)) => {
                        let a = acks.entry(key).or_default();
                        a.stored = a.stored.max(len);
                        a.short = short;
                    }
                    Err(message) => {
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

/// One frame's fate: the stream, its stored length to acknowledge and whether the frame was
/// short; or why it was refused.
type Stored = std::result::Result<((JobId, Stream), u64, bool), String>;

/// Appends a batch of frames to their logs, in order (blocking). Bytes the hub has already (a
/// resend after a reconnect) are skipped; a gap is refused, and so is every later frame of a
/// stream once one of its frames could not be stored. Followers are woken once per stream.
fn store_batch(hub: &Hub, sid: SessionId, frames: &[Bytes]) -> Vec<Stored> {
    let mut targets = HashMap::new();
    let mut results = Vec::with_capacity(frames.len());
    for frame in frames {
        results.push(store_one(hub, sid, frame, &mut targets));
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
) -> Stored {
    let f = DataFrame::decode(frame).map_err(|e| format!("{e:#}"))?;
    if f.stream == Stream::Stdin {
        return Err("slaves send output, not input".into());
    }
    let (job, stream, offset) = (f.job, f.stream, f.offset);
    let key = (job, stream);
    let short = f.data.len() < MAX_DATA_CHUNK;
    let end = offset + f.data.len() as u64;
    let (log, have, changed, recent) = match targets.entry(key) {
        Slot::Occupied(o) => o.into_mut(),
        Slot::Vacant(v) => {
            let (log, have, recent) = hub
                .output_target(sid, job, stream)
                .ok_or_else(|| format!("job {job} is not running on this slave"))?;
            v.insert((log, have, false, recent))
        }
    };
    if offset > *have {
        return Err(format!(
            "output of job {job} resumes at byte {offset}, but the hub has {have}"
        ));
    }
    if end > *have {
        let data = frame.slice(DATA_HEADER_LEN + (*have - offset) as usize..);
        log.append(stream, *have, &data)
            .map_err(|e| format!("storing output of job {job}: {e}"))?;
        recent.push(stream, *have, data);
        *have = end;
        *changed = true;
    }
    Ok((key, *have, short))
}
