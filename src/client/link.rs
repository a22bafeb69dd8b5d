//! A job's stream that outlives the hub: when the connection drops before the job's end, or
//! goes silent (no ping from the hub for [`HUB_SILENCE_LIMIT`]), it dials again with backoff
//! (saying so on stderr) and resumes from the last byte received, so `xn -a`, `xn -f --follow`
//! and `xn -s --wait` neither lose nor repeat a byte. While the connection is down it offers
//! nothing to send on: input written into a connection the hub has left would vanish unsaid.

use super::terminal::say;
use crate::conn::{self, ConnSender, Incoming, CLOSE_POLICY};
use crate::http::{HubError, HubUrl, NoAnswer};
use crate::limits::{CLIENT_RECONNECT_LIMIT, HUB_SILENCE_LIMIT};
use crate::wire::{JobId, StreamMsg};
use anyhow::Result;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

type Event = Result<Option<Incoming<StreamMsg>>>;

/// The hub closed the stream for a policy (1008: the token was revoked).
#[derive(Debug, thiserror::Error)]
#[error("the hub ended the stream: {reason}")]
struct Refused {
    reason: String,
    /// The hub's `error` message just before the close said the same, and went to the caller
    /// (who shows every one): the user has read it.
    said: bool,
}

/// Whether `e` is the hub closing the stream for the reason its last message said (`token
/// revoked`): the caller showed that line, and ends without another that repeats it.
pub fn said_on_closing(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Refused>().is_some_and(|r| r.said)
}

/// Nothing was sent: the connection to the hub is down (xn is dialling again).
#[derive(Debug, thiserror::Error)]
#[error("the connection to the hub is down")]
pub struct Down;

pub struct Link {
    hub: HubUrl,
    id: JobId,
    input: bool,
    events: mpsc::Receiver<Event>,
    /// Where to send input and control messages; replaced on reconnect.
    tx: ConnSender,
    /// Set by the reading task the moment its connection ends, before the caller hears of
    /// it: the first write after the hub's FIN still succeeds, so a sender that only failed
    /// on a failed write would take the next key and lose it without a word.
    gone: Arc<AtomicBool>,
    /// Since when the connection has been known lost, until a new one is open. Survives a
    /// caller's `select!` dropping `next` in the middle of a reconnect (a key was typed):
    /// the next call goes on dialling, under the same time limit, without saying so again.
    lost: Option<Instant>,
    /// A new connection replaced a lost one since [`Link::take_reconnected`] last asked: the
    /// hub knows nothing of this client's terminal size on it.
    reconnected: bool,
}

impl Link {
    /// Opens the stream of job `id` from byte offsets `from` (stdout, stderr). A hub that
    /// cannot be reached is an error at once; one that took the connection and went away
    /// before it answered (it crashed or stopped just then: `xn -s --wait` right after the
    /// submission, say) is dialled again, as when it goes away mid-stream.
    pub async fn open(hub: &HubUrl, id: JobId, from: [u64; 2], input: bool) -> Result<Link> {
        let (events, tx, gone) = match connect(hub, id, from, input).await {
            Err(e) if e.is::<NoAnswer>() => {
                say(&format!(
                    "[connection to the hub lost: {}; reconnecting]",
                    super::error_line(&e)
                ));
                let link = redial(hub, id, from, input, Instant::now()).await?;
                say(&format!("[reconnected to {}]", hub.url));
                link
            }
            first => first?,
        };
        Ok(Link {
            hub: hub.clone(),
            id,
            input,
            events,
            tx,
            gone,
            lost: None,
            reconnected: false,
        })
    }

    /// The connection to send input and orders on, or [`Down`] while there is none.
    pub fn sender(&self) -> Result<&ConnSender, Down> {
        if self.lost.is_some() || self.gone.load(Ordering::SeqCst) {
            return Err(Down);
        }
        Ok(&self.tx)
    }

    /// Whether the link dialled again since the last call (and a connection's state on the
    /// hub, such as the terminal size, must be sent again).
    pub fn take_reconnected(&mut self) -> bool {
        std::mem::take(&mut self.reconnected)
    }

    /// The next message; after a lost connection, reconnects and resumes at `pos`.
    /// Cancel-safe: dropped while it reconnects, it goes on reconnecting when called again.
    pub async fn next(&mut self, pos: [u64; 2]) -> Result<Incoming<StreamMsg>> {
        loop {
            let since = match self.lost {
                Some(since) => since,
                None => {
                    match self.events.recv().await {
                        Some(Ok(Some(msg))) => return Ok(msg),
                        // Closed for a policy (a revoked token): dialling again would be
                        // refused.
                        Some(Err(e)) if e.is::<Refused>() => return Err(e),
                        Some(Err(e)) => say(&format!(
                            "[connection to the hub lost: {}; reconnecting]",
                            super::error_line(&e)
                        )),
                        Some(Ok(None)) | None => say("[connection to the hub lost; reconnecting]"),
                    }
                    *self.lost.insert(Instant::now())
                }
            };
            // Assigned only once the new connection is open, in the same poll.
            (self.events, self.tx, self.gone) =
                redial(&self.hub, self.id, pos, self.input, since).await?;
            self.lost = None;
            self.reconnected = true;
            say(&format!("[reconnected to {}]", self.hub.url));
        }
    }
}

type Opened = (mpsc::Receiver<Event>, ConnSender, Arc<AtomicBool>);

/// Dials the stream again with backoff until it opens, the hub refuses, or
/// `CLIENT_RECONNECT_LIMIT` has passed since the connection was lost at `start`.
async fn redial(
    hub: &HubUrl,
    id: JobId,
    pos: [u64; 2],
    input: bool,
    start: Instant,
) -> Result<Opened> {
    let mut backoff = Duration::from_millis(100);
    loop {
        match connect(hub, id, pos, input).await {
            Ok(link) => return Ok(link),
            // The hub answered and refused: trying again will not help.
            Err(e) if e.is::<HubError>() => return Err(e),
            Err(e) if start.elapsed() > CLIENT_RECONNECT_LIMIT => {
                return Err(e.context(format!(
                    "gave up reconnecting after {CLIENT_RECONNECT_LIMIT:?}"
                )))
            }
            Err(_) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Opens the WebSocket and starts the task that reads it (a WebSocket read is not
/// cancel-safe, so it never sits in a `select!`).
async fn connect(hub: &HubUrl, id: JobId, from: [u64; 2], input: bool) -> Result<Opened> {
    let input = if input { "&input=1" } else { "" };
    let ws = hub
        .websocket(&format!(
            "/api/v1/jobs/{id}/stream?stdout={}&stderr={}{input}",
            from[0], from[1]
        ))
        .await?;
    let (mut rd, tx) = conn::start(ws);
    let (ev_tx, events) = mpsc::channel::<Event>(64);
    let gone = Arc::new(AtomicBool::new(false));
    let gone_flag = gone.clone();
    tokio::spawn(async move {
        // The text of the hub's last message, if it was an `error`: a revoked token's stream
        // gets `token revoked` and then a close that gives the same reason.
        let mut last_error: Option<String> = None;
        loop {
            // The hub pings every few seconds: silence means a connection that a cut network
            // left open, which no error would ever end.
            let mut next = rd.recv_watched::<StreamMsg>(HUB_SILENCE_LIMIT).await;
            if let (Ok(None), Some((CLOSE_POLICY, why))) = (&next, rd.closed_with()) {
                let said = last_error.as_ref() == Some(why);
                next = Err(Refused {
                    reason: why.clone(),
                    said,
                }
                .into());
            }
            last_error = match &next {
                Ok(Some(Incoming::Msg(StreamMsg::Error { message }))) => Some(message.clone()),
                _ => None,
            };
            let stop = !matches!(next, Ok(Some(_)));
            if stop {
                gone_flag.store(true, Ordering::SeqCst);
            }
            if ev_tx.send(next).await.is_err() || stop {
                break;
            }
        }
    });
    Ok((events, tx, gone))
}
