//! HTTP answers: JSON bodies, JSON errors, bounded request bodies, and output streamed from a
//! log file without holding it in memory.

use super::logs::JobLog;
use super::state::JobError;
use crate::wire::{ErrorBody, Stream};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Request, Response, StatusCode};
use serde::Serialize;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::task::JoinHandle;

/// Every response body the hub sends.
pub type HubBody = BoxBody<Bytes, io::Error>;
pub type HubResponse = Response<HubBody>;

/// Bytes read from a log per body chunk.
const OUTPUT_CHUNK: usize = 256 << 10;

/// A request refused before any work was done: a status and a message for the JSON body.
#[derive(Debug)]
pub struct Reject(pub StatusCode, pub String);

impl Reject {
    pub fn bad(message: impl Into<String>) -> Reject {
        Reject(StatusCode::BAD_REQUEST, message.into())
    }
}

impl From<Reject> for HubResponse {
    fn from(r: Reject) -> HubResponse {
        error(r.0, r.1)
    }
}

pub fn json<T: Serialize>(status: StatusCode, value: &T) -> HubResponse {
    // Our reply types hold only strings, numbers and string maps: they always serialize.
    json_body(
        status,
        serde_json::to_vec(value).expect("replies serialize"),
    )
}

/// An answer whose JSON is already written; sent whole, with its length.
pub fn json_body(status: StatusCode, body: Vec<u8>) -> HubResponse {
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(full(body))
        .expect("static headers are valid")
}

pub fn error(status: StatusCode, message: impl Into<String>) -> HubResponse {
    json(
        status,
        &ErrorBody {
            error: message.into(),
        },
    )
}

/// 401 with the challenge a client needs.
pub fn unauthorized(message: &str) -> HubResponse {
    let mut r = error(StatusCode::UNAUTHORIZED, message);
    r.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        hyper::header::HeaderValue::from_static("Bearer"),
    );
    r
}

pub fn job_error(e: JobError) -> HubResponse {
    let status = match e {
        JobError::NotFound(_) => StatusCode::NOT_FOUND,
        JobError::Conflict(_) => StatusCode::CONFLICT,
        JobError::Invalid(_) => StatusCode::BAD_REQUEST,
        JobError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
        JobError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(status, e.to_string())
}

pub fn text(status: StatusCode, body: &'static str) -> HubResponse {
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(full(body.as_bytes().to_vec()))
        .expect("static headers are valid")
}

pub fn full(body: Vec<u8>) -> HubBody {
    Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed()
}

/// Reads a request body of at most `max` bytes; a larger one is refused before it is read
/// whole.
pub async fn read_body(req: Request<Incoming>, max: usize) -> Result<Bytes, Reject> {
    let too_big = || {
        Reject(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {max} bytes"),
        )
    };
    if let Some(len) = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > max as u64 {
            return Err(too_big());
        }
    }
    match Limited::new(req.into_body(), max).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_big()),
        Err(e) => Err(Reject::bad(format!("reading request body: {e}"))),
    }
}

/// Parses a JSON request body into `T`, answering 400 with serde's message on failure.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Reject> {
    serde_json::from_slice(body).map_err(|e| Reject::bad(format!("bad request body: {e}")))
}

/// A response body that reads `[from, to)` of a log stream, chunk by chunk, off the runtime.
pub struct LogBody {
    log: Arc<JobLog>,
    stream: Stream,
    pos: u64,
    end: u64,
    pending: Option<JoinHandle<io::Result<Vec<u8>>>>,
}

impl LogBody {
    pub fn new(log: Arc<JobLog>, stream: Stream, from: u64, to: u64) -> LogBody {
        LogBody {
            log,
            stream,
            pos: from.min(to),
            end: to,
            pending: None,
        }
    }
}

impl Body for LogBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.pos >= self.end && self.pending.is_none() {
            return Poll::Ready(None);
        }
        if self.pending.is_none() {
            let (log, stream, pos) = (self.log.clone(), self.stream, self.pos);
            let n = (self.end - self.pos).min(OUTPUT_CHUNK as u64) as usize;
            self.pending = Some(tokio::task::spawn_blocking(move || {
                log.read_at(stream, pos, n)
            }));
        }
        let handle = self.pending.as_mut().expect("set just above");
        let res = match Pin::new(handle).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(r) => r,
        };
        self.pending = None;
        let chunk = match res {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Poll::Ready(Some(Err(e))),
            Err(e) => return Poll::Ready(Some(Err(io::Error::other(e)))),
        };
        if chunk.is_empty() {
            // The file is shorter than the hub's count: it was damaged outside the hub.
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "output log is shorter than recorded",
            ))));
        }
        self.pos += chunk.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }

    fn is_end_stream(&self) -> bool {
        self.pos >= self.end && self.pending.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.end - self.pos)
    }
}

/// An upgraded server-side WebSocket.
pub type ServerWs = fastwebsockets::WebSocket<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;

/// Answers a WebSocket upgrade and runs `session` on the socket as a tracked task.
pub fn upgrade<F, Fut>(
    sessions: &tokio_util::task::TaskTracker,
    mut req: Request<Incoming>,
    session: F,
) -> HubResponse
where
    F: FnOnce(ServerWs) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    if !fastwebsockets::upgrade::is_upgrade_request(&req) {
        return error(
            StatusCode::BAD_REQUEST,
            "this endpoint speaks WebSocket: send an upgrade request",
        );
    }
    let protocol = super::web::chosen_protocol(req.headers());
    // The session goes on counting against its address's --max-conns-per-addr.
    let slot = req.extensions_mut().remove::<super::ConnSlot>();
    match fastwebsockets::upgrade::upgrade(&mut req) {
        Ok((mut resp, fut)) => {
            if let Some(p) = protocol {
                resp.headers_mut()
                    .insert(hyper::header::SEC_WEBSOCKET_PROTOCOL, p);
            }
            sessions.spawn(async move {
                let _slot = slot;
                match fut.await {
                    Ok(ws) => session(ws).await,
                    Err(e) => tracing::debug!("websocket upgrade failed: {e}"),
                }
            });
            resp.map(|b| b.map_err(|never| match never {}).boxed())
        }
        Err(e) => error(StatusCode::BAD_REQUEST, format!("bad upgrade request: {e}")),
    }
}
