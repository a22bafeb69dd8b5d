//! One slave's WebSocket session: hello, version check and the name its token may serve as
//! (`Auth::admit_slave`), job events (output and ends go to the session's [`Intake`]),
//! heartbeats both ways, and what happens to its jobs when it goes away.

use super::auth::{Ending, Principal};
use super::intake::{Entry, Intake};
use super::respond::{self, HubResponse, ServerWs};
use super::state::{Joined, Joining, Orphan, SessionId};
use super::store::Present;
use super::Ctx;
use crate::conn::{self, ConnReader, ConnSender, Incoming, CLOSE_POLICY};
use crate::limits::{heartbeat_for, HANDSHAKE_TIMEOUT, HEARTBEAT_INTERVAL};
use crate::text::has_hidden_controls;
use crate::wire::{HubToSlave, JobId, SlaveMsg, PROTOCOL_VERSION};
use anyhow::{anyhow, bail, Result};
use hyper::body::Incoming as Body;
use hyper::Request;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Close code for a session replaced by a newer one of the same slave process (an
/// application code, 4000–4999, as RFC 6455 leaves them to us).
const CLOSE_REPLACED: u16 = 4000;

/// Longest slave name accepted.
const MAX_NAME: usize = 256;

/// What a hello accepts as a slave's name; a token can be bound only to such a name.
pub(super) fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME || has_hidden_controls(name) {
        bail!(
            "slave name must be 1 to {MAX_NAME} bytes of printable characters, \
             without control or bidirectional formatting characters"
        );
    }
    Ok(())
}

pub fn upgrade(ctx: &Arc<Ctx>, req: Request<Body>, who: Arc<Principal>) -> HubResponse {
    let ctx = ctx.clone();
    let peer = super::peer::addr_of(&req);
    respond::upgrade(&ctx.sessions.clone(), req, move |ws| {
        session(ctx, ws, who, peer)
    })
}

/// Marks `orphans` lost after the slave timeout unless a slave has taken them back by then
/// (and a job taken back and let go of again since has a timer of its own).
pub fn expire_later(ctx: &Arc<Ctx>, orphans: Vec<Orphan>, why: &'static str) {
    if orphans.is_empty() {
        return;
    }
    let ctx = ctx.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(ctx.hub.opts.slave_timeout) => {
                ctx.hub.expire_orphans_since(&orphans, why).await;
            }
            _ = ctx.shutdown.cancelled() => {}
        }
    });
}

type Reader = ConnReader<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;

/// An idle slave's session is this future, waiting in its loop, for as long as the slave stays:
/// its size is paid per slave. The async calls made once, before or after the loop, are boxed,
/// so their state is not laid out in it (3,696 bytes before, 1,256 after; `expire_orphans`
/// alone was some 2.4 KiB).
async fn session(ctx: Arc<Ctx>, ws: ServerWs, who: Arc<Principal>, peer: String) {
    let (mut rd, tx) = conn::start(ws);
    // Before the name is admitted, so that no binding made after that check goes unseen.
    let mut new_bindings = ctx.auth.new_bindings();
    let said = async {
        let join = hello(&mut rd).await?;
        ctx.auth.admit_slave(&who, &join.name)?;
        anyhow::Ok(join)
    };
    let join = match Box::pin(said).await {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(%peer, token = %who.name, "slave refused: {e:#}");
            let _ = tx
                .send(&HubToSlave::Error {
                    message: format!("{e:#}"),
                })
                .await;
            let _ = tx.close(CLOSE_POLICY, "refused").await;
            return;
        }
    };
    let (name, slots, label_list) = (join.name.clone(), join.slots, join.labels.join(","));
    let (reported, resend) = (join.running.len(), join.resend);
    // Stored before the session can be given a job: a hub restarting after a crash waits for
    // this slave before it hands out queued jobs (see `state::hold`).
    let present = Box::pin(record_present(&ctx, join.instance, &name)).await;
    // `add_slave` queues the welcome, with the jobs the slave is to forget, before any other
    // task can send on `tx`.
    let Joined {
        sid,
        unwanted,
        requeued,
        gone,
        replaced,
        replaced_by,
    } = ctx.hub.add_slave(join, who.clone(), tx.clone());
    // With the token's name: which slaves still use a shared token before it is revoked.
    tracing::info!(slave = %name, %peer, token = %who.name, slots, labels = %label_list, reclaimed = reported - unwanted.len(), replaced, "slave connected");
    if !requeued.is_empty() {
        tracing::info!(slave = %name, jobs = ?requeued, "assignments that never reached the slave are queued again");
    }
    Box::pin(
        ctx.hub
            .expire_orphans(&gone, "its slave came back without it"),
    )
    .await;
    let grace_ms = ctx.hub.opts.cancel_grace.as_millis() as u64;
    // Jobs the hub no longer wants (ended meanwhile): stop them and let the slave forget them.
    // The welcome listed them already; these are for slaves that do not read that list. None
    // of them is assigned to this session until they are queued (see `Hub::unfence`), or a
    // retry's run would get the `cancel` and `done` meant for the run before it.
    for &job in &unwanted {
        let _ = tx.send(&HubToSlave::Cancel { job, grace_ms }).await;
        let _ = tx.send(&HubToSlave::Done { job }).await;
    }
    ctx.hub.unfence(sid);
    for job in ctx.hub.cancels_pending(sid) {
        let _ = tx.send(&HubToSlave::Cancel { job, grace_ms }).await;
    }
    Box::pin(ctx.hub.schedule()).await;

    let last_seen = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let reader = {
        let (ctx, tx, last_seen) = (ctx.clone(), tx.clone(), last_seen.clone());
        tokio::spawn(
            async move { read_loop(&ctx, sid, rd, &tx, &last_seen, started, resend).await },
        )
    };
    tokio::pin!(reader);
    let silent_limit = ctx.hub.opts.slave_timeout;
    // As often as the slave was told to send word (see the welcome): a short timeout is then
    // also checked often enough to hold roughly.
    let mut beat = tokio::time::interval(heartbeat_for(silent_limit));
    // Why its jobs are lost at once, when they are: the slave will not be back for them.
    let gone_for_good: Option<&str> = loop {
        tokio::select! {
            res = &mut reader => {
                match res {
                    Ok(Ok(())) => tracing::info!(slave = %name, "slave disconnected"),
                    Ok(Err(e)) => tracing::warn!(slave = %name, "slave session ended: {e:#}"),
                    Err(e) => tracing::error!(slave = %name, "slave session failed: {e}"),
                }
                break None;
            }
            _ = beat.tick() => {
                let seen = started + std::time::Duration::from_millis(last_seen.load(Ordering::Relaxed));
                if seen.elapsed() > silent_limit {
                    tracing::warn!(slave = %name, "no word from slave for {:?}; giving it up", seen.elapsed());
                    reader.abort();
                    break Some("its slave stopped answering");
                }
                let _ = tx.send(&HubToSlave::Heartbeat).await;
            }
            _ = ctx.shutdown.cancelled() => {
                let _ = tx.close(1001, "hub shutting down").await;
                reader.abort();
                break None;
            }
            // The slave dialled again and its new session took over; this one's peer is gone.
            _ = replaced_by.cancelled() => {
                reader.abort();
                let _ = tokio::time::timeout(
                    HEARTBEAT_INTERVAL,
                    tx.close(CLOSE_REPLACED, "replaced by a newer connection of this slave"),
                )
                .await;
                break None;
            }
            // Its name was just bound to another token: no new jobs (the ones it runs go on;
            // ending them is the operator's call), and refused when it dials again.
            Ok(()) = new_bindings.changed() => {
                if ctx.auth.admits(&who, &name).is_err() {
                    tracing::warn!(slave = %name, %peer, token = %who.name, "the slave's name was bound to another token: no new jobs for it (its running jobs go on)");
                    ctx.hub.drain_slave(sid);
                }
            }
            _ = who.revoked.cancelled() => {
                let ending = who.ending();
                let why = ending.as_str();
                tracing::warn!(slave = %name, token = %who.name, "{why}: disconnecting slave");
                let _ = tx.send(&HubToSlave::Error { message: why.into() }).await;
                let _ = tx.close(CLOSE_POLICY, why).await;
                reader.abort();
                // Refused from now on, it stops its jobs (see the slave's `Refused`).
                break Some(match ending {
                    Ending::Expired => "its slave's token expired",
                    Ending::Revoked => "its slave's token was revoked",
                });
            }
        }
    };
    let orphans = ctx.hub.remove_slave(sid);
    ctx.hub
        .store
        .slaves_gone_later(present.into_iter().collect());
    if let Some(reason) = gone_for_good {
        let ids: Vec<JobId> = orphans.iter().map(|o| o.id).collect();
        Box::pin(ctx.hub.expire_orphans(&ids, reason)).await;
    } else if !ctx.shutdown.is_cancelled() {
        expire_later(&ctx, orphans, "its slave went away and did not come back");
    }
}

/// Stores that slave process `instance` is connected, under a tag drawn for this session;
/// returns the (instance, tag) to delete when the session ends. A slave without an instance
/// id cannot prove it holds a job, so there is nothing to wait for; a store that fails is
/// logged, and the slave served all the same.
async fn record_present(ctx: &Ctx, instance: Option<u64>, name: &str) -> Option<(u64, u64)> {
    let instance = instance?;
    let mut tag = [0u8; 8];
    if let Err(e) = getrandom::fill(&mut tag) {
        tracing::error!(slave = %name, "no randomness for the slave's session tag: {e}");
        return None;
    }
    let tag = u64::from_le_bytes(tag);
    let here = Present {
        instance,
        tag,
        name: name.to_string(),
    };
    match ctx.hub.store.slave_here(here).await {
        Ok(()) => Some((instance, tag)),
        Err(e) => {
            tracing::error!(slave = %name, "storing that the slave is connected failed (after a crash of the hub, queued jobs will not wait for it): {e:#}");
            None
        }
    }
}

async fn hello(rd: &mut Reader) -> Result<Joining> {
    let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, rd.recv::<SlaveMsg>())
        .await
        .map_err(|_| anyhow!("no hello within {HANDSHAKE_TIMEOUT:?}"))??;
    match first {
        Some(Incoming::Msg(SlaveMsg::Hello {
            protocol,
            name,
            slots,
            running,
            labels,
            instance,
            resend,
        })) => {
            if protocol != PROTOCOL_VERSION {
                bail!(
                    "protocol version mismatch: slave speaks version {protocol}, hub speaks version {PROTOCOL_VERSION}"
                );
            }
            check_name(&name)?;
            if slots == 0 {
                bail!("a slave needs at least one slot");
            }
            super::submit::check_labels(&labels).map_err(|e| anyhow!("slave labels: {e}"))?;
            Ok(Joining {
                name,
                slots,
                labels,
                running,
                instance,
                resend,
            })
        }
        Some(Incoming::Bad(e)) => bail!("expected a hello message: {e}"),
        Some(_) => bail!("expected a hello message first"),
        None => bail!("connection closed before hello"),
    }
}

async fn read_loop(
    ctx: &Arc<Ctx>,
    sid: SessionId,
    mut rd: Reader,
    tx: &ConnSender,
    last_seen: &AtomicU64,
    started: Instant,
    resend: bool,
) -> Result<()> {
    // Output and ends go through the intake, in order; the rest is handled here at once.
    let mut intake = Intake::new(ctx, sid, tx.clone(), resend);
    while let Some(msg) = rd.recv::<SlaveMsg>().await? {
        last_seen.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        let answer = match msg {
            Incoming::Data(frame) => intake.push(Entry::Data(frame)).await,
            Incoming::Msg(SlaveMsg::Started { job, .. }) => {
                ctx.hub.job_started(sid, job);
                Ok(())
            }
            Incoming::Msg(SlaveMsg::Ended {
                job,
                outcome,
                stdout_len,
                stderr_len,
                cancelled,
            }) => {
                let lens = (stdout_len, stderr_len);
                let end = Entry::Ended {
                    job,
                    outcome,
                    lens,
                    cancelled,
                };
                intake.push(end).await
            }
            Incoming::Msg(SlaveMsg::Heartbeat) => Ok(()),
            Incoming::Msg(SlaveMsg::Drain) => {
                ctx.hub.drain_slave(sid);
                Ok(())
            }
            Incoming::Msg(SlaveMsg::Hello { .. }) => Err(anyhow!("hello was already said")),
            Incoming::Bad(e) => Err(anyhow!(e)),
        };
        if let Err(e) = answer {
            tracing::warn!(session = sid, "slave message refused: {e:#}");
            tx.send(&HubToSlave::Error {
                message: format!("{e:#}"),
            })
            .await?;
        }
    }
    Ok(())
}
