//! Benchmark helper: opens many idle slave connections to one hub from this one process, so
//! `scripts/bench.sh` can measure how many idle slaves a hub holds and what each costs it.
//!
//! Each connection says hello (one slot), waits for the welcome, then only answers with
//! heartbeats. It prints `connected N` when all are up (or when it could open no more), then
//! waits for its stdin to close and exits, closing every connection.
//!
//! ```text
//! XN_TOKEN=$(cat DATA/slave.token) cargo run --release --example idle_slaves -- http://127.0.0.1:5000 10000
//! ```
//!
//! Never queue jobs on a hub while this runs: each connection has a free slot and would be given
//! work it will never do.

use anyhow::{anyhow, bail, Context, Result};
use execnode::conn::{self, Incoming};
use execnode::http::HubUrl;
use execnode::limits::HEARTBEAT_INTERVAL;
use execnode::wire::{HubToSlave, SlaveMsg, PROTOCOL_VERSION};
use std::sync::Arc;
use std::time::Instant;
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;

/// Connections being opened at once: keeps the hub's listen backlog from overflowing.
const DIAL_AT_ONCE: usize = 128;

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(count)) = (args.next(), args.next()) else {
        bail!("usage: idle_slaves HUB_URL COUNT");
    };
    // A token with the slave role, as for xnslave.
    let hub = HubUrl::parse(&url)?.with_token(std::env::var("XN_TOKEN").ok());
    let count: usize = count.parse().context("COUNT must be a number")?;

    let began = Instant::now();
    let gate = Arc::new(Semaphore::new(DIAL_AT_ONCE));
    let mut dials = Vec::with_capacity(count);
    for i in 0..count {
        let (hub, gate) = (hub.clone(), gate.clone());
        dials.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await?;
            idle_slave(&hub, i).await
        }));
    }
    let mut up = Vec::with_capacity(count);
    let mut first_error = None;
    for d in dials {
        match d.await? {
            Ok(keep) => up.push(keep),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = &first_error {
        eprintln!(
            "idle_slaves: {} connection(s) failed; first: {e:#}",
            count - up.len()
        );
    }
    println!("connected {} in {:.2?}", up.len(), began.elapsed());

    // Hold them until our stdin closes.
    let mut sink = Vec::new();
    tokio::io::stdin().read_to_end(&mut sink).await.ok();
    Ok(())
}

/// Opens one slave connection and keeps it alive (heartbeats) in tasks of its own. The
/// returned handle ends them when dropped.
async fn idle_slave(hub: &HubUrl, i: usize) -> Result<tokio_util::sync::DropGuard> {
    let ws = hub.websocket("/api/v1/slave").await?;
    let (mut rd, tx) = conn::start(ws);
    tx.send(&SlaveMsg::Hello {
        protocol: PROTOCOL_VERSION,
        name: format!("idle-{i}"),
        slots: 1,
        labels: Vec::new(),
        running: Vec::new(),
        instance: None,
        resend: true,
    })
    .await?;
    match rd.recv::<HubToSlave>().await? {
        Some(Incoming::Msg(HubToSlave::Welcome { .. })) => {}
        other => return Err(anyhow!("expected a welcome, got {other:?}")),
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = async { while let Ok(Some(_)) = rd.recv::<HubToSlave>().await {} } => {}
            _ = s.cancelled() => {}
        }
    });
    let s = stop.clone();
    tokio::spawn(async move {
        let mut beat = tokio::time::interval(HEARTBEAT_INTERVAL);
        loop {
            tokio::select! {
                _ = beat.tick() => if tx.send(&SlaveMsg::Heartbeat).await.is_err() { break },
                _ = s.cancelled() => break,
            }
        }
    });
    Ok(stop.drop_guard())
}
