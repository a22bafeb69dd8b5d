//! The HTTP client side shared by `xn` and `xnslave`: parse a hub URL, make one REST call, open
//! a WebSocket. Errors name the hub URL so a user knows what could not be reached.

use crate::limits::{HUB_ANSWER_TIMEOUT, HUB_CONNECT_TIMEOUT};
use crate::wire::ErrorBody;
use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use bytes::Bytes;
use fastwebsockets::{Role, WebSocket};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

mod url;

/// An upgraded client WebSocket.
pub type ClientWs = WebSocket<TokioIo<Upgraded>>;

/// Where the hub is, and the token to show it: parsed once from flags, environment or the
/// config file.
#[derive(Clone)]
pub struct HubUrl {
    /// As the user wrote it, for messages.
    pub url: String,
    /// `host:port`, for connecting and for the `Host` header.
    authority: String,
    /// `Bearer TOKEN`, sent with every request. Never printed.
    bearer: Option<String>,
    /// Set for `https://` hubs (see [`HubUrl::with_tls`]).
    tls: Option<Tls>,
    https: bool,
    /// The port a URL without one stands for (80 or 443), for messages: a hub listens on 5000
    /// unless told otherwise, and a URL of a host alone is an easy mistake.
    implied_port: Option<u16>,
    /// A connection whose last exchange is complete, for the next request or WebSocket to
    /// reuse (`xn -s LINE --wait` submits and then streams on one connection).
    idle: Arc<Mutex<Option<Sender>>>,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

#[derive(Clone)]
struct Tls {
    config: Arc<tokio_rustls::rustls::ClientConfig>,
    name: ServerName<'static>,
}

/// Any stream a request can travel on: plain TCP or TLS over it.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl std::fmt::Debug for HubUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubUrl")
            .field("url", &self.url)
            .field("token", &self.bearer.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The hub took the connection and the request but ended the connection without an answer:
/// it went away just then (a crash, a stop), or it refused the connection as one too many
/// from this address (`xnhub --max-conns-per-addr`), which it closes unread. Not the same as
/// a hub that cannot be reached.
#[derive(Debug, thiserror::Error)]
#[error(
    "hub at {0} closed the connection without an answer (it may be stopping, or refusing more \
     connections from this address: see its log and --max-conns-per-addr)"
)]
pub struct NoAnswer(pub String);

/// A REST call the hub answered with an error status.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct HubError {
    pub status: StatusCode,
    pub message: String,
}

impl HubUrl {
    pub fn parse(url: &str) -> Result<HubUrl> {
        let url::Parts {
            authority,
            https,
            implied_port,
        } = url::split(url)?;
        Ok(HubUrl {
            url: url.trim_end_matches('/').to_string(),
            authority,
            bearer: None,
            tls: None,
            https,
            implied_port,
            idle: Arc::default(),
        })
    }

    /// Prepares TLS for an `https://` hub, trusting `ca` or the system's roots. A no-op for
    /// `http://`.
    pub fn with_tls(mut self, ca: Option<&std::path::Path>) -> Result<HubUrl> {
        if !self.https {
            return Ok(self);
        }
        let host = match self.authority.rsplit_once(':') {
            Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']').to_string(),
            None => self.authority.clone(),
        };
        let name = ServerName::try_from(host)
            .with_context(|| format!("hub URL {}: not a valid TLS server name", self.url))?;
        self.tls = Some(Tls {
            config: crate::tls::client_config(ca)?,
            name,
        });
        Ok(self)
    }

    /// The same hub, with a token to present.
    pub fn with_token(mut self, token: Option<String>) -> HubUrl {
        self.bearer = token.map(|t| format!("Bearer {t}"));
        self
    }

    /// Whether a token is presented.
    pub fn has_token(&self) -> bool {
        self.bearer.is_some()
    }

    /// Names a hub that cannot be reached: its URL, and the port it was dialled on when the
    /// URL gave none.
    fn unreachable(&self) -> String {
        match self.implied_port {
            Some(port) => format!(
                "cannot reach hub at {} (on port {port}: the URL gives none; xnhub listens on \
                 port 5000 unless its --listen says otherwise)",
                self.url
            ),
            None => format!("cannot reach hub at {}", self.url),
        }
    }

    fn authorize(&self, req: hyper::http::request::Builder) -> hyper::http::request::Builder {
        match &self.bearer {
            Some(b) => req.header(hyper::header::AUTHORIZATION, b),
            None => req,
        }
    }

    async fn connect(&self) -> Result<Box<dyn Io>> {
        tokio::time::timeout(HUB_CONNECT_TIMEOUT, self.dial())
            .await
            .unwrap_or_else(|_| {
                Err(anyhow!(
                    "{}: no connection within {HUB_CONNECT_TIMEOUT:?}",
                    self.unreachable()
                ))
            })
    }

    async fn dial(&self) -> Result<Box<dyn Io>> {
        let stream = TcpStream::connect(&self.authority)
            .await
            .with_context(|| self.unreachable())?;
        // Keystrokes and small control messages must not wait for Nagle.
        stream.set_nodelay(true).ok();
        if !self.https {
            return Ok(Box::new(stream));
        }
        let tls = self
            .tls
            .as_ref()
            .ok_or_else(|| anyhow!("hub URL {}: TLS was not set up", self.url))?;
        let stream = tokio_rustls::TlsConnector::from(tls.config.clone())
            .connect(tls.name.clone(), stream)
            .await
            .map_err(|e| {
                let hint = tls_hint(&e);
                anyhow::Error::new(e).context(format!("TLS with hub at {} failed{hint}", self.url))
            })?;
        Ok(Box::new(stream))
    }

    /// The idle connection if it is still open, else a new one. Its task serves upgrades too,
    /// so any request on it may become a WebSocket.
    async fn sender(&self) -> Result<Sender> {
        let idle = self.idle.lock().map(|mut i| i.take()).unwrap_or(None);
        if let Some(mut sender) = idle {
            if sender.ready().await.is_ok() {
                return Ok(sender);
            }
        }
        let stream = self.connect().await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| self.unreachable())?;
        tokio::spawn(async move {
            // Errors surface through `send_request` and the body; nothing more to report here.
            let _ = conn.with_upgrades().await;
        });
        Ok(sender)
    }

    /// Keeps a connection whose exchange is complete for the next request.
    fn keep(&self, sender: Sender) {
        if !sender.is_closed() {
            if let Ok(mut idle) = self.idle.lock() {
                *idle = Some(sender);
            }
        }
    }

    /// Sends one request and returns the response with its body unread (the connection is not
    /// reused: the caller may read the body for as long as it likes).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response<Incoming>> {
        let mut sender = self.sender().await?;
        self.send(&mut sender, method, path, body).await
    }

    async fn send(
        &self,
        sender: &mut Sender,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response<Incoming>> {
        let mut req = self.authorize(
            Request::builder()
                .method(method)
                .uri(path)
                .header(hyper::header::HOST, &self.authority),
        );
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let body = Bytes::from(body.unwrap_or_default());
        // The answer comes after the body is sent: a big one (up to 32 MiB of job specs) gets
        // a second more per 256 KiB, for a slow link.
        let limit = HUB_ANSWER_TIMEOUT + Duration::from_secs(body.len() as u64 / (256 << 10));
        let req = req.body(Full::new(body)).context("building request")?;
        self.answer(sender.send_request(req), limit).await
    }

    /// The head of the hub's answer to a request sent, within `limit`.
    async fn answer(
        &self,
        sent: impl std::future::Future<Output = hyper::Result<Response<Incoming>>>,
        limit: Duration,
    ) -> Result<Response<Incoming>> {
        match tokio::time::timeout(limit, sent).await {
            // A TLS hub's alert, read as HTTP.
            Ok(Err(e)) if e.is_parse() && !self.https => {
                Err(anyhow::Error::new(e).context(format!(
                    "hub at {} did not answer in plain HTTP: if it speaks TLS, use https://{}",
                    self.url, self.authority
                )))
            }
            Ok(resp) => resp.with_context(|| NoAnswer(self.url.clone())),
            Err(_) => bail!("hub at {} did not answer within {limit:?}", self.url),
        }
    }

    /// A REST call with a JSON answer; an error status becomes a [`HubError`].
    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T> {
        let body = body.map(|b| serde_json::to_vec(b).expect("request bodies serialize"));
        let bytes = self.call_raw(method, path, body).await?;
        self.parse_answer(&bytes)
    }

    /// A REST call whose answer the caller parses itself (with [`HubUrl::parse_answer`]), e.g. into
    /// types that borrow from it; an error status becomes a [`HubError`].
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes> {
        Ok(self.call_raw_with_headers(method, path, body).await?.1)
    }

    /// As [`HubUrl::call_raw`], with the answer's headers.
    pub async fn call_raw_with_headers(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(HeaderMap, Bytes)> {
        let mut sender = self.sender().await?;
        let resp = self.send(&mut sender, method, path, body).await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = read_all(resp).await?;
        self.keep(sender);
        if !status.is_success() {
            return Err(error_from(status, &bytes).into());
        }
        Ok((headers, bytes))
    }

    /// Parses a JSON answer of this hub's.
    pub fn parse_answer<'a, T: Deserialize<'a>>(&self, bytes: &'a [u8]) -> Result<T> {
        let cannot = || format!("hub at {} sent an answer we cannot read", self.url);
        // Checked as UTF-8 once, in one pass: parsing bytes checks every string again.
        let text = std::str::from_utf8(bytes).with_context(cannot)?;
        serde_json::from_str(text).with_context(cannot)
    }

    /// Opens a WebSocket at `path`. A refusal is reported with the hub's own error message.
    pub async fn websocket(&self, path: &str) -> Result<ClientWs> {
        let mut sender = self.sender().await?;
        let mut key = [0u8; 16];
        getrandom::fill(&mut key).map_err(|e| anyhow!("no randomness: {e}"))?;
        let req = self
            .authorize(Request::builder())
            .method(Method::GET)
            .uri(path)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::UPGRADE, "websocket")
            .header(hyper::header::CONNECTION, "upgrade")
            .header(
                "Sec-WebSocket-Key",
                base64::engine::general_purpose::STANDARD.encode(key),
            )
            .header("Sec-WebSocket-Version", "13")
            .body(Full::new(Bytes::new()))
            .context("building request")?;
        let mut resp = self
            .answer(sender.send_request(req), HUB_ANSWER_TIMEOUT)
            .await?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            let status = resp.status();
            let bytes = read_all(resp).await?;
            return Err(error_from(status, &bytes).into());
        }
        let upgraded = hyper::upgrade::on(&mut resp)
            .await
            .with_context(|| format!("websocket upgrade with {} failed", self.url))?;
        Ok(WebSocket::after_handshake(
            TokioIo::new(upgraded),
            Role::Client,
        ))
    }
}

/// Reads a whole (small) response body.
pub async fn read_all(resp: Response<Incoming>) -> Result<Bytes> {
    let mut body = resp.into_body();
    // One buffer of the announced size: collecting the frames and then joining them copied
    // every byte of a 29 MB job list twice. Only reserved up to a bound: the length is the
    // peer's word.
    let announced = hyper::body::Body::size_hint(&body).exact().unwrap_or(0);
    let mut all = Vec::with_capacity(announced.min(crate::limits::ANSWER_PREALLOC_BYTES) as usize);
    while let Some(frame) = body_frame(&mut body)
        .await
        .context("reading the hub's answer")?
    {
        if let Ok(data) = frame.into_data() {
            all.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(all))
}

/// The next piece of an answer's body; an error after [`HUB_ANSWER_TIMEOUT`] without a byte:
/// the hub sends what it has at once, so that long a silence is a dead connection.
pub async fn body_frame(body: &mut Incoming) -> Result<Option<hyper::body::Frame<Bytes>>> {
    match tokio::time::timeout(HUB_ANSWER_TIMEOUT, body.frame()).await {
        Ok(Some(frame)) => Ok(Some(frame?)),
        Ok(None) => Ok(None),
        Err(_) => bail!("nothing more came for {HUB_ANSWER_TIMEOUT:?}"),
    }
}

/// Escapes a value for a query string: everything but unreserved characters as `%XX`.
pub fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The hub's error message from an error body, or the bare status.
pub fn error_from(status: StatusCode, body: &[u8]) -> HubError {
    let message = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => e.error,
        Err(_) => format!("hub answered {status}"),
    };
    HubError { status, message }
}

/// What a TLS failure most likely means, when rustls's words would not tell a user.
fn tls_hint(e: &std::io::Error) -> &'static str {
    let text = e.to_string();
    if text.contains("InvalidContentType") || text.contains("corrupt message") {
        " (the hub answered in plain HTTP: if it has no TLS, use http://)"
    } else if text.contains("CaUsedAsEndEntity") || text.contains("BadSignature") {
        " (give --ca the certificate of the CA that signed the hub's, not the hub's own)"
    } else if text.contains("UnknownIssuer") {
        " (no CA this client trusts signed the hub's certificate: give its CA with --ca or XN_CA)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A URL without a port is dialled on 80 (443), not on the hub's 5000: an unreachable
    /// one says so, and one with a port does not.
    #[test]
    fn an_unreachable_hub_without_a_port_names_the_port_dialled() {
        let plain = HubUrl::parse("hubhost").unwrap().unreachable();
        assert_eq!(
            plain,
            "cannot reach hub at hubhost (on port 80: the URL gives none; xnhub listens on port \
             5000 unless its --listen says otherwise)"
        );
        let tls = HubUrl::parse("https://hubhost/").unwrap().unreachable();
        assert!(
            tls.starts_with("cannot reach hub at https://hubhost (on port 443: "),
            "{tls}"
        );
        let given = HubUrl::parse("http://hubhost:5000").unwrap().unreachable();
        assert_eq!(given, "cannot reach hub at http://hubhost:5000");
    }

    #[test]
    fn escapes_query_values() {
        assert_eq!(query_escape("os=linux"), "os%3Dlinux");
        assert_eq!(query_escape("a b&c,d"), "a%20b%26c%2Cd");
        assert_eq!(query_escape("g7"), "g7");
    }
}
