//! A client's stream of one job (`/api/v1/jobs/ID/stream`): output from the offsets the
//! client asks for, replayed from the log and then followed live by the same loop, state
//! changes, and a final `end` message with the totals. With `input=1` the client may also type,
//! resize and terminate; without it, it is a viewer. When a retry starts a new attempt, the
//! stream says so with a `job` message and goes on with that attempt's output from offset 0.

use super::audit::Actor;
use super::auth::Principal;
use super::logs::{JobLog, ReadMark};
use super::peer::{self, PeerSocket};
use super::respond::{self, HubResponse, ServerWs};
use super::routes::{forbidden, query, query_u64};
use super::Ctx;
use crate::conn::{self, ConnReader, ConnSender, Incoming};
use crate::limits::{HEARTBEAT_INTERVAL, MAX_DATA_CHUNK};
use crate::wire::{
    AuditAction, ClientMsg, DataFrame, HubToSlave, JobId, JobRecord, JobState, Stream, StreamMsg,
    DATA_HEADER_LEN,
};
use anyhow::{anyhow, bail, Result};
use hyper::body::Incoming as Body;
use hyper::Request;
use std::sync::Arc;

pub fn upgrade(
    ctx: &Arc<Ctx>,
    id: JobId,
    req: Request<Body>,
    who: Arc<Principal>,
    rec: &JobRecord,
) -> HubResponse {
    let q = query(&req);
    let from = match (query_u64(&q, "stdout"), query_u64(&q, "stderr")) {
        (Ok(o), Ok(e)) => [o.unwrap_or(0), e.unwrap_or(0)],
        (Err(r), _) | (_, Err(r)) => return r.into(),
    };
    let interactive = q.get("input").is_some_and(|v| v == "1" || v == "true");
    if interactive && !who.can_control(rec) {
        return forbidden(&who, "type into this job: attach with --read-only");
    }
    let ctx = ctx.clone();
    let sock = req.extensions().get::<PeerSocket>().copied();
    // Who terminates the job from this stream, for the audit log.
    let by = Actor::of(&who, peer::addr_of(&req));
    respond::upgrade(&ctx.sessions.clone(), req, move |ws| {
        session(ctx, id, ws, from, interactive.then_some(by), who, sock)
    })
}

/// `interactive`: the client may type and control the job (`input=1`), as this actor.
async fn session(
    ctx: Arc<Ctx>,
    id: JobId,
    ws: ServerWs,
    from: [u64; 2],
    interactive: Option<Actor>,
    who: Arc<Principal>,
    sock: Option<PeerSocket>,
) {
    let (rd, tx) = conn::start(ws);
    // The first ping goes before any message: a client watches for silence only once pinged
    // (older hubs never ping), so one that already has output from us must also have had the
    // ping, or a route that goes away right after that output leaves it waiting for ever.
    tx.ping();
    let mut reader = {
        let (ctx, tx) = (ctx.clone(), tx.clone());
        tokio::spawn(async move { client_loop(&ctx, id, rd, &tx, interactive).await })
    };
    let pump = pump(&ctx, id, &tx, from);
    tokio::pin!(pump);
    // Pings tell the client that a quiet job's connection is still there: without them, one a
    // cut network left open would keep it waiting for ever.
    let first_beat = tokio::time::Instant::now() + HEARTBEAT_INTERVAL;
    let mut beat = tokio::time::interval_at(first_beat, HEARTBEAT_INTERVAL);
    loop {
        tokio::select! {
            res = &mut pump => {
                if let Err(e) = res {
                    tracing::debug!(job = id, "stream ended: {e:#}");
                }
                break;
            }
            _ = &mut reader => break,
            _ = beat.tick() => {
                // Checked while `ws` (in `rd` and `tx`) keeps the socket open.
                if let (Some(sock), Some(limit)) = (sock, ctx.hub.opts.peer_timeout) {
                    if peer::gone(sock, limit) {
                        tracing::info!(job = id, "a client acknowledged nothing for {limit:?}: its stream is dropped");
                        break;
                    }
                }
                tx.ping();
            }
            _ = ctx.shutdown.cancelled() => {
                let _ = tx.close(1001, "hub shutting down").await;
                break;
            }
            _ = who.revoked.cancelled() => {
                let why = who.ending().as_str();
                let _ = tx.send(&StreamMsg::Error { message: why.into() }).await;
                let _ = tx.close(crate::conn::CLOSE_POLICY, why).await;
                break;
            }
        }
    }
    reader.abort();
}

/// Sends output from `pos` on, as it is stored, until the job has ended and all is sent.
async fn pump(ctx: &Ctx, id: JobId, tx: &ConnSender, mut pos: [u64; 2]) -> Result<()> {
    let mut sub = ctx.hub.subscribe(id)?;
    let mut marks = read_marks(&sub.log, pos);
    let mut shown = sub.rec.state;
    // A queued job's reason changes as slaves come and go; clients show it.
    let mut shown_reason = sub.rec.reason.clone();
    let mut attempt = sub.rec.attempt;
    // The job's terminal size, which an attached client may change: watchers follow it.
    let size = |r: &JobRecord| (r.spec.rows, r.spec.cols);
    let mut shown_size = size(&sub.rec);
    tx.send(&StreamMsg::Job {
        job: sub.rec.clone(),
    })
    .await?;
    loop {
        sub.changes.borrow_and_update();
        let Some(rec) = ctx.hub.snapshot(id) else {
            // Deleted (`xn --rm`, `--retain`) while this client was reading it.
            let message = format!("job {id} was deleted");
            tx.send(&StreamMsg::Error { message }).await?;
            tx.close(1000, "job deleted").await?;
            return Ok(());
        };
        if rec.attempt != attempt {
            // A retry: the new attempt has logs of its own, and its offsets start at 0. The
            // `job` message that says so goes before any of its bytes.
            attempt = rec.attempt;
            sub = ctx.hub.subscribe(id)?;
            pos = [0, 0];
            marks = read_marks(&sub.log, pos);
            shown = rec.state;
            shown_reason = rec.reason.clone();
            shown_size = size(&rec);
            tx.send(&StreamMsg::Job { job: rec.clone() }).await?;
            continue;
        }
        if rec.state != shown
            || (rec.state == JobState::Queued && rec.reason != shown_reason)
            || size(&rec) != shown_size
        {
            shown = rec.state;
            shown_reason = rec.reason.clone();
            shown_size = size(&rec);
            tx.send(&StreamMsg::Job { job: rec.clone() }).await?;
        }
        let mut sent = false;
        for (i, stream, len) in [
            (0, Stream::Stdout, rec.stdout_len),
            (1, Stream::Stderr, rec.stderr_len),
        ] {
            if pos[i] >= len {
                continue;
            }
            let n = (len - pos[i]).min(MAX_DATA_CHUNK as u64) as usize;
            let (log, at) = (sub.log.clone(), pos[i]);
            let kept = sub.recent.as_ref().and_then(|r| r.read(stream, at, n));
            let frames = match kept {
                // Caught up: the bytes are still in memory.
                Some(data) => {
                    let mut buf = tx.buffer(DATA_HEADER_LEN + data.len());
                    buf.extend_from_slice(&DataFrame::header(stream, id, at));
                    buf.extend_from_slice(&data);
                    vec![buf]
                }
                // Behind (or the job has ended): from the log, several frames per blocking hop.
                None => {
                    let count = (len - at).div_ceil(MAX_DATA_CHUNK as u64);
                    let bufs = (0..count.min(LOG_FRAMES_PER_READ))
                        .map(|_| tx.buffer(DATA_HEADER_LEN + MAX_DATA_CHUNK))
                        .collect();
                    tokio::task::spawn_blocking(move || {
                        read_frames(&log, stream, id, (at, len), bufs)
                    })
                    .await??
                }
            };
            if frames.is_empty() {
                bail!("output log of job {id} is shorter than recorded");
            }
            for frame in frames {
                pos[i] += (frame.len() - DATA_HEADER_LEN) as u64;
                tx.send_raw_data(frame).await?;
            }
            marks[i].set(pos[i]);
            sent = true;
        }
        if sent {
            continue;
        }
        if rec.state.is_terminal() {
            tx.send(&StreamMsg::End { job: rec }).await?;
            tx.close(1000, "end of job").await?;
            return Ok(());
        }
        if sub.changes.changed().await.is_err() {
            bail!("hub is shutting down");
        }
    }
}

/// This follower's positions, so the log's cache keeps what it has yet to read.
fn read_marks(log: &JobLog, pos: [u64; 2]) -> [ReadMark; 2] {
    [
        log.reader(Stream::Stdout, pos[0]),
        log.reader(Stream::Stderr, pos[1]),
    ]
}

/// Frames a follower that is behind reads from the log in one blocking hop: a hop costs two
/// thread wake-ups, and a follower slower than the job (the usual case when output streams
/// into a pipe) is behind for most of its frames.
const LOG_FRAMES_PER_READ: u64 = 16;

/// Reads `stream` from `at` up to `len` into data frames, one per buffer in `bufs` (blocking);
/// fewer when the log ends sooner, none when it has nothing at `at`.
fn read_frames(
    log: &JobLog,
    stream: Stream,
    id: JobId,
    (mut at, len): (u64, u64),
    bufs: Vec<Vec<u8>>,
) -> std::io::Result<Vec<Vec<u8>>> {
    let mut frames = Vec::with_capacity(bufs.len());
    for mut buf in bufs {
        if at >= len {
            break;
        }
        let n = (len - at).min(MAX_DATA_CHUNK as u64) as usize;
        buf.extend_from_slice(&DataFrame::header(stream, id, at));
        let got = log.read_into(stream, at, n, &mut buf)?;
        if got == 0 {
            break;
        }
        at += got as u64;
        frames.push(buf);
    }
    Ok(frames)
}

/// Handles what the client sends: input, resize, close of stdin, terminate.
async fn client_loop<S: tokio::io::AsyncRead + Unpin>(
    ctx: &Ctx,
    id: JobId,
    mut rd: ConnReader<S>,
    tx: &ConnSender,
    interactive: Option<Actor>,
) -> Result<()> {
    // This client's terminal size, re-applied when it types after another client resized.
    let mut size = None;
    while let Some(msg) = rd.recv::<ClientMsg>().await? {
        if let Err(e) = handle(ctx, id, msg, interactive.as_ref(), &mut size).await {
            tx.send(&StreamMsg::Error {
                message: format!("{e:#}"),
            })
            .await?;
        }
    }
    Ok(())
}

async fn handle(
    ctx: &Ctx,
    id: JobId,
    msg: Incoming<ClientMsg>,
    interactive: Option<&Actor>,
    size: &mut Option<(u16, u16)>,
) -> Result<()> {
    let Some(by) = interactive else {
        bail!("this stream is read-only: open it with input=1 to type or control the job");
    };
    let order = match msg {
        Incoming::Bad(e) => bail!(e),
        Incoming::Msg(ClientMsg::Terminate) => {
            let was = ctx.hub.get(id)?;
            ctx.hub
                .cancel(id, "terminated from an attached client")
                .await?;
            ctx.audit
                .record(by.on_job(AuditAction::JobCancelled, &was))
                .await;
            return Ok(());
        }
        Incoming::Msg(ClientMsg::Resize { rows, cols }) => {
            if rows == 0 || cols == 0 {
                bail!("terminal size must be positive");
            }
            *size = Some((rows, cols));
            Order::Resize
        }
        Incoming::Msg(ClientMsg::CloseStdin) => Order::Msg(HubToSlave::CloseStdin { job: id }),
        Incoming::Data(frame) => {
            let f = DataFrame::decode(&frame)?;
            if f.stream != Stream::Stdin {
                bail!("clients send input (stream 0) only");
            }
            Order::Input(f.data.to_vec())
        }
    };
    let slave = ctx
        .hub
        .slave_of(id)?
        .ok_or_else(|| anyhow!("job {id} is not running on a slave now; input dropped"))?;
    match order {
        Order::Msg(m) => slave.send(&m).await,
        Order::Resize | Order::Input(_) => {
            if let Some((rows, cols)) = *size {
                if ctx.hub.claim_size(id, (rows, cols)) {
                    slave
                        .send(&HubToSlave::Resize {
                            job: id,
                            rows,
                            cols,
                        })
                        .await?;
                }
            }
            match order {
                Order::Input(data) => {
                    let at = ctx.hub.take_input_offset(id, data.len());
                    slave.send_data(Stream::Stdin, id, at, &data).await
                }
                _ => Ok(()),
            }
        }
    }
}

enum Order {
    Msg(HubToSlave),
    /// Apply this client's size (if another size is in force).
    Resize,
    Input(Vec<u8>),
}
