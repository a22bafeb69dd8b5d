//! The slave: dials the hub (never the other way round), says how many slots it has, runs what
//! it is given, and streams output back. Jobs and their unacknowledged output live in the
//! [`Outbox`] and outlive any one connection; the connection loop dials again with backoff.

pub mod args;
mod cgroup;
mod confine;
mod job;
mod orders;
mod outbox;
mod pty;
mod spawn;
mod sys;

pub use confine::{parse_size, ConfineOptions, Limits};

use crate::conn::{self, ConnSender, Incoming};
use crate::http::HubUrl;
use crate::limits::{
    HANDSHAKE_TIMEOUT, HEARTBEAT_INTERVAL, HUB_SILENCE_LIMIT, MIN_HEARTBEAT_INTERVAL,
};
use crate::wire::{HubToSlave, SlaveMsg, PROTOCOL_VERSION};
use anyhow::{anyhow, bail, Result};
use confine::Confinement;
use orders::{Order, Orders};
use outbox::{Item, Outbox};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What the operator chose for this slave.
#[derive(Clone, Debug)]
pub struct SlaveOptions {
    pub hub: HubUrl,
    pub name: String,
    pub slots: u32,
    /// On shutdown, how long running jobs may take to finish before they are cancelled.
    pub drain_timeout: Duration,
    /// What this slave offers (`gpu`, `os=linux`); jobs may require labels.
    pub labels: Vec<String>,
    /// When cancelled at shutdown, how long jobs get between SIGTERM and SIGKILL.
    pub stop_grace: Duration,
    /// Unacknowledged output kept per job and stream (see [`Outbox::push`]).
    pub output_buffer: usize,
    /// The user, limits, sandbox and work directories of jobs.
    pub confine: ConfineOptions,
}

/// The hub refused us for a reason that dialling again will not fix.
#[derive(Debug, thiserror::Error)]
#[error("hub refused this slave: {0}")]
pub struct Refused(String);

const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// How long a stopping slave tries to tell the hub how its last jobs ended.
const FINAL_REPORT_WAIT: Duration = Duration::from_secs(5);

/// How long a stopping slave gives its connection to close: its close frame, the TLS
/// close_notify and the TCP FIN out, and the hub's close back.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Runs until `shutdown`. Then it takes no more jobs, lets running ones finish for up to
/// `drain_timeout`, cancels the rest, reports their end if the hub is there, and returns.
/// Nothing a job started is left running when this returns.
///
/// Before it dials, it checks how jobs are to be confined (see [`Confinement::new`]) and
/// returns an error rather than run them less confined than `opts.confine` asks.
pub async fn run(opts: SlaveOptions, shutdown: CancellationToken) -> Result<()> {
    let confinement = Arc::new(Confinement::new(&opts.confine).await?);
    tracing::info!(
        work_dirs = %confinement.root().display(),
        run_as = opts.confine.run_as.as_deref().unwrap_or("(the slave's user)"),
        sandbox = opts.confine.sandbox,
        network = if confinement.no_network() { "none (loopback only)" } else { "the machine's" },
        cgroups = confinement.cgroup_dir().map_or("(none)".into(), |d| d.display().to_string()),
        "jobs confined"
    );
    let res = serve_jobs(&opts, &confinement, shutdown).await;
    let c = confinement.clone();
    let _ = tokio::task::spawn_blocking(move || c.remove_root()).await;
    res
}

async fn serve_jobs(
    opts: &SlaveOptions,
    confinement: &Arc<Confinement>,
    shutdown: CancellationToken,
) -> Result<()> {
    let outbox = Arc::new(Outbox::new(opts.output_buffer));
    // Fired once the jobs are reported: the session closes its connection and returns.
    let hang_up = CancellationToken::new();
    let mut conn = {
        let (opts, outbox) = (opts.clone(), outbox.clone());
        let ends = Ends {
            shutdown: shutdown.clone(),
            hang_up: hang_up.clone(),
        };
        let confinement = confinement.clone();
        tokio::spawn(async move { connect_loop(&opts, &confinement, &outbox, &ends).await })
    };
    tokio::select! {
        res = &mut conn => {
            // Refused by the hub (a revoked token): nobody will hear how the jobs end, so they
            // are stopped now; nothing a job started outlives the slave.
            let res = res.map_err(|e| anyhow!("connection task failed: {e}")).and_then(|r| r);
            if outbox.running_count() > 0 {
                tracing::warn!("stopping {} job(s): the hub refused this slave", outbox.running_count());
                outbox.cancel_all(opts.stop_grace, "cancelled: the hub refused its slave");
            }
            outbox.tasks.close();
            outbox.tasks.wait().await;
            return res;
        }
        _ = shutdown.cancelled() => {}
    }
    let running = outbox.running_count();
    if running > 0 {
        tracing::info!(
            "stopping: waiting up to {:?} for {running} running job(s)",
            opts.drain_timeout
        );
        if tokio::time::timeout(opts.drain_timeout, outbox.settled(false))
            .await
            .is_err()
        {
            tracing::info!("stopping: cancelling {} job(s)", outbox.running_count());
            outbox.cancel_all(opts.stop_grace, "cancelled: its slave was stopped");
        }
    }
    // Every job task ends once its processes are gone (SIGKILL follows the grace period).
    outbox.tasks.close();
    outbox.tasks.wait().await;
    if !outbox.is_empty()
        && tokio::time::timeout(FINAL_REPORT_WAIT, outbox.settled(true))
            .await
            .is_err()
    {
        tracing::warn!("stopping without telling the hub how every job ended (hub unreachable)");
    }
    // A connected session closes its connection (see `serve`); one still dialling, or a
    // close that the hub does not answer, is cut short.
    hang_up.cancel();
    if tokio::time::timeout(CLOSE_WAIT, &mut conn).await.is_err() {
        conn.abort();
    }
    Ok(())
}

/// The two moments a stopping slave goes through: `shutdown` (drain: no new jobs), then
/// `hang_up` (every job reported, or given up on: close the connection).
struct Ends {
    shutdown: CancellationToken,
    hang_up: CancellationToken,
}

/// Dials the hub again and again, with backoff, until refused for good or told to hang up.
async fn connect_loop(
    opts: &SlaveOptions,
    confinement: &Arc<Confinement>,
    outbox: &Arc<Outbox>,
    ends: &Ends,
) -> Result<()> {
    let mut backoff = BACKOFF_MIN;
    loop {
        let began = Instant::now();
        let res = serve(opts, confinement, outbox, ends).await;
        outbox.set_connected(false);
        let err = match res {
            Ok(()) => return Ok(()),
            Err(e) if e.is::<Refused>() => return Err(e),
            Err(e) => e,
        };
        if began.elapsed() > BACKOFF_MAX {
            backoff = BACKOFF_MIN;
        }
        let wait = jitter(backoff);
        tracing::warn!("{err:#}; dialling again in {wait:.1?}");
        backoff = (backoff * 2).min(BACKOFF_MAX);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = ends.hang_up.cancelled() => return Ok(()),
        }
    }
}

/// Up to 25% less, so many slaves of a restarted hub do not all dial at once.
fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 1];
    let r = getrandom::fill(&mut b).map(|_| b[0]).unwrap_or(0);
    d - d * u32::from(r) / 1024
}

/// One connection: hello, then orders in and job events out until it drops (an error says
/// why) or `ends.hang_up` fires (then it closes the connection and returns `Ok`).
async fn serve(
    opts: &SlaveOptions,
    confinement: &Arc<Confinement>,
    outbox: &Arc<Outbox>,
    ends: &Ends,
) -> Result<()> {
    let ws = match opts.hub.websocket("/api/v1/slave").await {
        Ok(ws) => ws,
        // A refused token will not become valid by dialling again.
        Err(e) => match e.downcast_ref::<crate::http::HubError>() {
            Some(h) if h.status.as_u16() == 401 && !opts.hub.has_token() => {
                return Err(Refused(format!(
                    "{}; this slave has none: give it one with --token-file DATA/slave.token \
                     or XN_TOKEN",
                    h.message
                ))
                .into())
            }
            Some(h) if matches!(h.status.as_u16(), 401 | 403) => {
                return Err(Refused(h.message.clone()).into())
            }
            _ => return Err(e),
        },
    };
    let (mut rd, tx) = conn::start(ws);
    tx.send(&SlaveMsg::Hello {
        protocol: PROTOCOL_VERSION,
        name: opts.name.clone(),
        slots: opts.slots,
        running: outbox.running(),
        labels: opts.labels.clone(),
        instance: Some(outbox.instance),
        resend: true,
    })
    .await?;
    let mut beat_every = HEARTBEAT_INTERVAL;
    let mut forgotten = std::collections::HashSet::new();
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, rd.recv::<HubToSlave>()).await {
        Err(_) => bail!("hub at {} did not answer the hello", opts.hub.url),
        Ok(Ok(Some(Incoming::Msg(HubToSlave::Welcome {
            forget,
            heartbeat_ms,
            ..
        })))) => {
            // A hub with a short --slave-timeout asks for word more often than the default;
            // without it, an idle slave would be given up between two heartbeats.
            if let Some(ms) = heartbeat_ms {
                beat_every =
                    Duration::from_millis(ms).clamp(MIN_HEARTBEAT_INTERVAL, HEARTBEAT_INTERVAL);
            }
            // Before anything is sent (`rewind` below starts that): a report still owed for
            // one of these must not reach the hub, which may assign the job again at once.
            for job in forget {
                tracing::info!(job, "the hub does not want this job back: stopping it");
                outbox.forget(job);
                forgotten.insert(job);
            }
        }
        Ok(Ok(Some(Incoming::Msg(HubToSlave::Error { message })))) => {
            return Err(Refused(message).into())
        }
        Ok(Ok(_)) => bail!("hub at {} did not welcome us", opts.hub.url),
        Ok(Err(e)) => return Err(e),
    }
    tracing::info!(hub = %opts.hub.url, name = %opts.name, slots = opts.slots, "connected");
    let epoch = outbox.rewind();
    outbox.set_connected(true);

    let started = Instant::now();
    let last_heard = Arc::new(AtomicU64::new(0));
    let mut reader = {
        let last_heard = last_heard.clone();
        let orders = Orders {
            opts: opts.clone(),
            confinement: confinement.clone(),
            outbox: outbox.clone(),
            forgotten,
        };
        tokio::spawn(async move {
            while let Some(msg) = rd.recv::<Order>().await? {
                last_heard.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                orders.obey(msg);
            }
            Ok::<_, anyhow::Error>(())
        })
    };
    let mut writer = {
        let (outbox, tx) = (outbox.clone(), tx.clone());
        tokio::spawn(async move { forward(&outbox, &tx, epoch).await })
    };
    let mut beat = tokio::time::interval(beat_every);
    let mut drain_sent = false;
    let result = loop {
        tokio::select! {
            // In this order: a stop that finds nothing to wait for fires `shutdown` and
            // `hang_up` at once, and the `drain` goes before the close.
            biased;
            res = &mut reader => break match res {
                Ok(Ok(())) => anyhow!("hub at {} closed the connection", opts.hub.url),
                // The connection's own errors (a frame too big, fragmented) name no hub.
                Ok(Err(e)) => e.context(format!("hub at {}", opts.hub.url)),
                Err(e) => anyhow!("reader failed: {e}"),
            },
            res = &mut writer => break match res {
                Ok(Err(e)) => e,
                _ => anyhow!("writer stopped"),
            },
            _ = beat.tick() => {
                let heard = started + Duration::from_millis(last_heard.load(Ordering::Relaxed));
                if heard.elapsed() > HUB_SILENCE_LIMIT {
                    break anyhow!("no word from hub at {} for {:?}", opts.hub.url, heard.elapsed());
                }
                let _ = tx.send(&SlaveMsg::Heartbeat).await;
            }
            _ = ends.shutdown.cancelled(), if !drain_sent => {
                drain_sent = true;
                let _ = tx.send(&SlaveMsg::Drain).await;
            }
            _ = ends.hang_up.cancelled() => {
                // After what is queued: a close frame, then (conn.rs) the stream's end. The
                // hub answers with its own close, and the reader ends on it.
                tx.close_and_flush("slave stopping", CLOSE_WAIT).await;
                let _ = tokio::time::timeout(CLOSE_WAIT, &mut reader).await;
                reader.abort();
                writer.abort();
                return Ok(());
            }
        }
    };
    reader.abort();
    writer.abort();
    Err(result)
}

/// Sends what the outbox has due, for as long as the connection lasts.
async fn forward(outbox: &Outbox, tx: &ConnSender, epoch: u64) -> Result<()> {
    loop {
        let Some(items) = outbox.next(epoch, &mut |n| tx.buffer(n)).await else {
            return Ok(());
        };
        for item in items {
            match item {
                Item::Msg(m) => tx.send(&m).await?,
                Item::Data(frame) => tx.send_raw_data(frame).await?,
            }
        }
    }
}
