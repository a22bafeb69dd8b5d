//! One WebSocket connection: the only code that touches frames.
//!
//! A connection is split in two: a [`ConnReader`] that the owner polls with `recv()`, and a
//! [`ConnSender`] (cheap to clone) that queues frames for a writer task. The reader is never put
//! inside `select!` with the socket: fastwebsockets' `read_frame` is not cancel-safe, so the
//! owner runs `recv()` in its own task and the writer runs in another. Pongs and close replies the
//! reader owes the peer go through the same writer queue. A close frame, ours or our answer
//! to the peer's, is the last thing written, and the stream is shut down after it (a TLS
//! close_notify, then the TCP FIN).
//!
//! Text frames are JSON control messages (see `wire`), binary frames are [`crate::wire::DataFrame`]s.
//! Fragmented messages are refused: every message must fit in one frame of at most
//! [`MAX_WS_MESSAGE_BYTES`].

use crate::limits::{MAX_DATA_CHUNK, MAX_WS_MESSAGE_BYTES, WS_SEND_QUEUE, WS_WRITE_BUFFER};
use crate::wire::{DataFrame, JobId, Stream, DATA_HEADER_LEN};
use anyhow::{anyhow, Result};
use bytes::{Bytes, BytesMut};
use fastwebsockets::{Frame, OpCode, Payload, WebSocket, WebSocketError, WebSocketRead};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, BufWriter, ReadHalf};
use tokio::sync::mpsc;

/// Close code for a message we cannot accept (RFC 6455 1008: policy violation).
pub const CLOSE_POLICY: u16 = 1008;
/// Close code for a message that is too big (RFC 6455 1009).
pub const CLOSE_TOO_BIG: u16 = 1009;

/// What `recv` returns.
#[derive(Debug)]
pub enum Incoming<T> {
    /// A control message.
    Msg(T),
    /// A binary frame, header included; decode it with [`DataFrame::decode`].
    Data(Bytes),
    /// A text frame that is not a message we know. Answer it with an error and keep going.
    Bad(String),
}

enum Out {
    Frame(OpCode, Vec<u8>),
    Close(u16, String),
}

/// The sending half: queues frames for the connection's writer task.
#[derive(Clone)]
pub struct ConnSender {
    tx: mpsc::Sender<Out>,
    pool: BufPool,
}

/// Buffers of data frames already written, for the next frames to be built in. A fresh
/// allocation per 64 KiB frame costs page faults (the allocator gives the memory back to the
/// kernel and takes it again), a measurable part of streaming output.
#[derive(Clone, Default)]
struct BufPool(Arc<Mutex<Vec<Vec<u8>>>>);

/// Most buffers a connection keeps for reuse (each up to a data frame's size).
const POOL_BUFS: usize = 16;

impl BufPool {
    fn take(&self, cap: usize) -> Vec<u8> {
        let reused = self.lock().pop();
        match reused {
            Some(mut b) => {
                b.clear();
                b.reserve(cap);
                b
            }
            None => Vec::with_capacity(cap),
        }
    }

    fn give(&self, buf: Vec<u8>) {
        // Only buffers worth keeping: small frames are cheap to allocate, big ones rare.
        let cap = buf.capacity();
        if (MAX_DATA_CHUNK..=2 * MAX_DATA_CHUNK).contains(&cap) {
            let mut pool = self.lock();
            if pool.len() < POOL_BUFS {
                pool.push(buf);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        // Held for a push or a pop only; the buffers are interchangeable.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The receiving half.
pub struct ConnReader<S> {
    ws: WebSocketRead<ReadHalf<S>>,
    tx: mpsc::Sender<Out>,
    /// The peer has pinged us: it is expected to go on doing so (see [`ConnReader::recv_watched`]).
    pinged: bool,
    /// The code and reason of the peer's close frame, once `recv` has returned it.
    closed_with: Option<(u16, String)>,
}

/// Splits an upgraded WebSocket and starts its writer task. The task ends when every
/// [`ConnSender`] (the reader holds one for pongs) is dropped, after sending what was queued.
pub fn start<S>(mut ws: WebSocket<S>) -> (ConnReader<S>, ConnSender)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    ws.set_max_message_size(MAX_WS_MESSAGE_BYTES);
    // Pings are answered in `recv`, which also notes that the peer is alive.
    ws.set_auto_pong(false);
    ws.set_auto_close(true);
    let ending = Arc::new(AtomicBool::new(false));
    let end_at_flush = ending.clone();
    let (rd, wr) = ws.split(move |s| {
        let (r, w) = tokio::io::split(s);
        let w = Ending {
            inner: BufWriter::with_capacity(WS_WRITE_BUFFER, w),
            end_at_flush: end_at_flush.clone(),
        };
        (r, w)
    });
    let (tx, mut rx) = mpsc::channel::<Out>(WS_SEND_QUEUE);
    let pool = BufPool::default();
    let sink_pool = pool.clone();
    tokio::spawn(async move {
        // The buffered writer batches small frames (acks, keystrokes) into one write; it is
        // flushed whenever the queue runs empty, so nothing waits in it.
        let mut sink = WsSink {
            ws: wr,
            closed: false,
            ending,
            pool: sink_pool,
        };
        while let Some(out) = rx.recv().await {
            if sink.write(out).await.is_err() {
                break;
            }
            while let Ok(out) = rx.try_recv() {
                if sink.write(out).await.is_err() {
                    return;
                }
            }
            if sink.ws.flush().await.is_err() || sink.closed {
                break;
            }
        }
    });
    (
        ConnReader {
            ws: rd,
            tx: tx.clone(),
            pinged: false,
            closed_with: None,
        },
        ConnSender { tx, pool },
    )
}

struct WsSink<W> {
    ws: fastwebsockets::WebSocketWrite<W>,
    closed: bool,
    /// Shared with the [`Ending`] inside `ws`: set with `closed`.
    ending: Arc<AtomicBool>,
    pool: BufPool,
}

/// The write side of a connection: once a close frame is written, the flush after it also
/// ends the stream (`poll_shutdown`: a TLS close_notify, then the TCP FIN), so the peer sees
/// the session end cleanly rather than a socket that merely vanishes with our process. Our
/// read side stays open for the peer's close in answer. `WebSocketWrite` lends no access to
/// its stream, hence the flag.
struct Ending<W> {
    inner: W,
    end_at_flush: Arc<AtomicBool>,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Ending<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.end_at_flush.load(Ordering::Relaxed) {
            // A buffered writer's shutdown flushes its buffer first.
            Pin::new(&mut self.inner).poll_shutdown(cx)
        } else {
            Pin::new(&mut self.inner).poll_flush(cx)
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<W: AsyncWrite + Unpin> WsSink<W> {
    async fn write(&mut self, out: Out) -> Result<(), WebSocketError> {
        if self.closed {
            return Ok(());
        }
        let frame = match out {
            Out::Frame(OpCode::Close, payload) => {
                self.closed = true;
                self.ending.store(true, Ordering::Relaxed);
                Frame::close_raw(Payload::Owned(payload))
            }
            Out::Frame(op, mut payload) => {
                // Borrowed mutably (a client masks it in place), so the buffer comes back.
                let frame = Frame::new(true, op, None, Payload::BorrowedMut(&mut payload));
                let res = self.ws.write_frame(frame).await;
                self.pool.give(payload);
                return res;
            }
            Out::Close(code, reason) => {
                self.closed = true;
                self.ending.store(true, Ordering::Relaxed);
                Frame::close(code, reason.as_bytes())
            }
        };
        self.ws.write_frame(frame).await
    }
}

impl ConnSender {
    /// Queues a control message. Fails only when the connection is gone.
    pub async fn send<T: Serialize>(&self, msg: &T) -> Result<()> {
        // Serializing our own wire types cannot fail: they hold only strings, numbers and maps
        // with string keys.
        let text = serde_json::to_vec(msg).expect("wire messages serialize");
        self.queue(Out::Frame(OpCode::Text, text)).await
    }

    /// Queues a control message without waiting: fails when the connection is gone or its
    /// queue is full. For a message that must be first on a new connection, queued while a
    /// lock keeps every other sender out.
    pub fn send_now<T: Serialize>(&self, msg: &T) -> Result<()> {
        let text = serde_json::to_vec(msg).expect("wire messages serialize");
        self.tx
            .try_send(Out::Frame(OpCode::Text, text))
            .map_err(|_| anyhow!("connection closed or its queue full"))
    }

    /// Queues a data frame: the header and a copy of `data`.
    pub async fn send_data(
        &self,
        stream: Stream,
        job: JobId,
        offset: u64,
        data: &[u8],
    ) -> Result<()> {
        let mut buf = Vec::with_capacity(DATA_HEADER_LEN + data.len());
        buf.extend_from_slice(&DataFrame::header(stream, job, offset));
        buf.extend_from_slice(data);
        self.queue(Out::Frame(OpCode::Binary, buf)).await
    }

    /// An empty buffer with room for `cap` bytes to build a data frame in, reused from frames
    /// this connection has written when there is one.
    pub fn buffer(&self, cap: usize) -> Vec<u8> {
        self.pool.take(cap)
    }

    /// Queues a data frame already laid out as header + bytes.
    pub async fn send_raw_data(&self, frame: Vec<u8>) -> Result<()> {
        self.queue(Out::Frame(OpCode::Binary, frame)).await
    }

    /// Queues a close frame; nothing is sent after it.
    pub async fn close(&self, code: u16, reason: &str) -> Result<()> {
        self.queue(Out::Close(code, reason.to_string())).await
    }

    /// Queues a normal close (1000) after everything queued, and waits until the writer has
    /// sent all of it, or `limit` passed: for a client about to exit, whose last messages
    /// would otherwise die with its runtime.
    pub async fn close_and_flush(&self, reason: &str, limit: Duration) {
        let done = async {
            if self.close(1000, reason).await.is_ok() {
                self.tx.closed().await;
            }
        };
        let _ = tokio::time::timeout(limit, done).await;
    }

    /// Queues a ping, unless the queue is full (then frames are on their way anyway, and they
    /// tell the peer as much). The peer answers with a pong; see [`ConnReader::recv_watched`].
    pub fn ping(&self) {
        let _ = self.tx.try_send(Out::Frame(OpCode::Ping, Vec::new()));
    }

    /// Whether the writer task has stopped (peer gone or close sent).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    async fn queue(&self, out: Out) -> Result<()> {
        self.tx
            .send(out)
            .await
            .map_err(|_| anyhow!("connection closed"))
    }
}

impl<S: AsyncRead + Unpin> ConnReader<S> {
    /// The next message; `Ok(None)` when the peer closed the connection cleanly or went away.
    /// The code and reason the peer closed the connection with, once [`recv`](Self::recv) has
    /// returned `None` for its close frame (`None` for a close without a code).
    pub fn closed_with(&self) -> Option<&(u16, String)> {
        self.closed_with.as_ref()
    }

    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<Option<Incoming<T>>> {
        self.recv_inner(None).await
    }

    /// [`recv`](Self::recv) for a connection that a cut network could leave open and silent:
    /// once the peer has pinged us (a hub pings its clients every few seconds), a time of
    /// `silence` without any frame from it, pings included, is an error. After that error
    /// the reader is unusable (a frame may be half read): drop the connection.
    pub async fn recv_watched<T: DeserializeOwned>(
        &mut self,
        silence: Duration,
    ) -> Result<Option<Incoming<T>>> {
        self.recv_inner(Some(silence)).await
    }

    async fn recv_inner<T: DeserializeOwned>(
        &mut self,
        silence: Option<Duration>,
    ) -> Result<Option<Incoming<T>>> {
        loop {
            let next = match silence.filter(|_| self.pinged) {
                Some(limit) => match tokio::time::timeout(limit, self.read_frame()).await {
                    Ok(f) => f?,
                    Err(_) => return Err(anyhow!("no word from the other end for {limit:?}")),
                },
                None => self.read_frame().await?,
            };
            let frame = match next {
                Some(f) => f,
                None => return Ok(None),
            };
            if frame.opcode == OpCode::Ping {
                let pong = Out::Frame(OpCode::Pong, frame.payload.to_vec());
                self.pinged = true;
                let _ = self.tx.send(pong).await;
                continue;
            }
            if !frame.fin || frame.opcode == OpCode::Continuation {
                let reason = "fragmented messages are not supported";
                let _ = self.tx.send(Out::Close(CLOSE_POLICY, reason.into())).await;
                return Err(anyhow!(reason));
            }
            return Ok(Some(match frame.opcode {
                OpCode::Close => {
                    self.closed_with = close_code(&frame.payload);
                    return Ok(None);
                }
                OpCode::Text => match serde_json::from_slice::<T>(&frame.payload) {
                    Ok(msg) => Incoming::Msg(msg),
                    Err(e) => Incoming::Bad(format!("bad message: {e}")),
                },
                OpCode::Binary => Incoming::Data(payload_bytes(frame.payload)),
                // Pongs answer our pings; that they arrive is all they say.
                _ => continue,
            }));
        }
    }

    async fn read_frame(&mut self) -> Result<Option<Frame<'_>>> {
        let tx = self.tx.clone();
        let mut obligated = move |f: Frame<'_>| {
            let out = Out::Frame(f.opcode, f.payload.to_vec());
            let tx = tx.clone();
            async move { tx.send(out).await.map_err(|_| anyhow!("connection closed")) }
        };
        match self.ws.read_frame(&mut obligated).await {
            Ok(f) => Ok(Some(f)),
            Err(WebSocketError::ConnectionClosed | WebSocketError::UnexpectedEOF) => Ok(None),
            // UnexpectedEof: a TLS peer that closed its socket without a close_notify (a slave
            // that stops, a client that exits) went away as a plain one whose read returns 0.
            Err(WebSocketError::IoError(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::BrokenPipe
                        | std::io::ErrorKind::UnexpectedEof
                ) =>
            {
                Ok(None)
            }
            Err(WebSocketError::FrameTooLarge) => {
                let reason = format!("message larger than {MAX_WS_MESSAGE_BYTES} bytes");
                let _ = self
                    .tx
                    .send(Out::Close(CLOSE_TOO_BIG, reason.clone()))
                    .await;
                Err(anyhow!(reason))
            }
            Err(e) => Err(anyhow!("websocket: {e}")),
        }
    }
}

fn payload_bytes(p: Payload<'_>) -> Bytes {
    match p {
        Payload::Bytes(b) => b.freeze(),
        other => BytesMut::from(&other[..]).freeze(),
    }
}

/// A close frame's code and reason (RFC 6455 5.5.1: a two-byte code, then UTF-8).
fn close_code(payload: &[u8]) -> Option<(u16, String)> {
    let code = u16::from_be_bytes([*payload.first()?, *payload.get(1)?]);
    Some((code, String::from_utf8_lossy(&payload[2..]).into_owned()))
}
