//! The hub: one server that keeps every job and every output byte, hands jobs to slaves and
//! streams output to clients. It never runs a job itself and never dials a slave.
//!
//! `run` takes an already bound listener, an opened [`Hub`] and a cancellation token, so tests
//! and `main` start it the same way.

pub mod age;
pub mod audit;
pub mod audit_cmd;
pub mod auth;
mod claim;
pub mod datadir;
mod intake;
mod list;
mod list_json;
mod logs;
pub mod nofile;
mod peer;
mod recent;
mod respond;
pub mod retention;
mod retry;
mod routes;
mod sched;
mod slaves;
mod state;
mod store;
mod stream;
mod submit;
pub mod token_cmd;
mod tokens;
mod web;

pub use state::{now_ms, Hub, HubOptions, SlaveInfo};
pub use submit::{check_cwd, validate};

use crate::limits::HANDSHAKE_TIMEOUT;
use anyhow::{Context, Result};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a graceful stop waits for open connections.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// What every connection handler shares.
pub struct Ctx {
    pub hub: Arc<Hub>,
    pub auth: Arc<auth::Auth>,
    pub shutdown: CancellationToken,
    /// The audit log's writer, and its count of refused requests.
    pub audit: Arc<audit::Audit>,
    /// Upgraded WebSocket sessions, which hyper's graceful shutdown does not track.
    pub sessions: TaskTracker,
}

impl Hub {
    /// Opens the job store and the output logs in a locked data directory.
    pub fn open(data: &datadir::DataDir, opts: HubOptions) -> Result<Hub> {
        let data = data.path();
        let logs = logs::Logs::open(data)
            .with_context(|| format!("opening logs under {}", data.display()))?;
        let mut loading = state::Loading::default();
        let store = store::Store::open(data, opts.audit_rows, |job| loading.add(&logs, job))?;
        Ok(Hub::new(store, logs, loading, opts))
    }
}

/// Serves until `shutdown` is cancelled, then stops accepting, ends sessions, flushes the
/// store and returns.
pub async fn run(
    listener: TcpListener,
    hub: Hub,
    auth: auth::Auth,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    shutdown: CancellationToken,
) -> Result<()> {
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let hub = Arc::new(hub);
    let auth = Arc::new(auth);
    let audit = Arc::new(audit::Audit::new(hub.store.clone()));
    let ctx = Arc::new(Ctx {
        hub: hub.clone(),
        auth: auth.clone(),
        shutdown: shutdown.clone(),
        audit: audit.clone(),
        sessions: TaskTracker::new(),
    });
    let orphans = hub.orphans();
    if !orphans.is_empty() {
        tracing::info!(
            "{} job(s) were running when the hub stopped; waiting {:?} for their slaves",
            orphans.len(),
            hub.opts.slave_timeout
        );
        slaves::expire_later(
            &ctx,
            orphans,
            "its slave did not come back after a hub restart",
        );
    }
    // After a crash: queued jobs go out once the slaves connected before are back, or now.
    if let Some(until) = hub.hold_deadline() {
        let (hub, shutdown) = (hub.clone(), shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => hub.end_hold().await,
                _ = shutdown.cancelled() => {}
            }
        });
    }
    // Tokens created or revoked with `xnhub token ...` while we run take effect within a second,
    // and so does the end of a token's lifetime. The audit log gets the counts of refusals
    // whose minute is over.
    {
        let (auth, audit, shutdown) = (auth.clone(), audit.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.cancelled() => return,
                }
                audit.flush_refusals(false);
                let auth = auth.clone();
                let reloaded = tokio::task::spawn_blocking(move || {
                    let reloaded = auth.reload_if_changed();
                    auth.expire_due();
                    reloaded
                });
                if let Ok(Err(e)) = reloaded.await {
                    tracing::error!("reloading tokens: {e:#}");
                }
            }
        });
    }
    let conns = TaskTracker::new();
    conns.spawn(retry::timer(hub.clone(), shutdown.clone()));
    if let Some(retain) = hub.opts.retain {
        conns.spawn(retention::timer(
            hub.clone(),
            audit.clone(),
            retain,
            shutdown.clone(),
        ));
    }
    let per_addr = PerAddr::new(hub.opts.max_conns_per_addr);
    loop {
        let (sock, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            acc = listener.accept() => match acc {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: log, wait a moment, keep serving.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // One address may not take every connection the hub can hold.
        let Some(slot) = per_addr.admit(peer.ip()) else {
            tracing::warn!(%peer, "refused: {} connections from this address already", hub.opts.max_conns_per_addr);
            drop(sock);
            continue;
        };
        sock.set_nodelay(true).ok();
        let fd = peer::PeerSocket(std::os::fd::AsRawFd::as_raw_fd(&sock));
        let ctx = ctx.clone();
        let tls = tls.clone();
        // Held by the connection, and by the WebSocket session it may be upgraded to.
        let slot = ConnSlot(Arc::new(slot));
        conns.spawn(async move {
            match tls {
                None => serve(ctx, sock, peer, fd, slot).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(sock)).await {
                        Ok(Ok(stream)) => serve(ctx, stream, peer, fd, slot).await,
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    tracing::info!("shutting down");
    conns.close();
    ctx.sessions.close();
    let drained = tokio::time::timeout(SHUTDOWN_WAIT, async {
        conns.wait().await;
        ctx.sessions.wait().await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!("some connections did not close within {SHUTDOWN_WAIT:?}");
    }
    // Every assignment is stored by the close below: the next start need wait for no slave.
    // The close leaves every record in jobs.db itself, with an empty write-ahead log.
    audit.flush_refusals(true);
    hub.store.no_slaves_later();
    hub.store.close().await?;
    Ok(())
}

/// Serves HTTP/1.1 (with upgrades) on one connection until it ends or the hub stops.
async fn serve<S>(
    ctx: Arc<Ctx>,
    sock: S,
    peer: std::net::SocketAddr,
    fd: peer::PeerSocket,
    slot: ConnSlot,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(|mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(fd);
        req.extensions_mut().insert(peer::PeerAddr(peer));
        req.extensions_mut().insert(slot.clone());
        routes::route(ctx.clone(), req)
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT);
    let conn = builder
        .serve_connection(TokioIo::new(sock), svc)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!(%peer, "connection: {e}");
            }
        }
        _ = ctx.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Counts open connections per peer address.
#[derive(Clone)]
struct PerAddr {
    max: usize,
    open: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
}

/// A connection's place in its address's count, shared with the WebSocket session an upgrade
/// hands it to (see [`respond::upgrade`]): the place is freed when both have ended.
#[derive(Clone)]
pub(crate) struct ConnSlot(#[allow(dead_code)] Arc<Slot>);

/// One admitted connection; dropping it frees its place.
struct Slot {
    addr: std::net::IpAddr,
    of: PerAddr,
}

impl PerAddr {
    fn new(max: usize) -> PerAddr {
        PerAddr {
            max,
            open: Arc::default(),
        }
    }

    fn admit(&self, addr: std::net::IpAddr) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(addr).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Slot {
            addr,
            of: self.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.of.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.addr);
            }
        }
    }
}
