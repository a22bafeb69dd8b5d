//! The web interface: static files built into the binary, served without a token, and the
//! rules that let a browser use the API safely.
//!
//! The page holds no secret; the user types a token into it, and the page sends it as
//! `Authorization: Bearer` on REST calls and, because a browser cannot set headers on a
//! WebSocket, as the subprotocol `bearer.TOKEN` next to `execnode` (never in a URL, which
//! ends up in logs and history). Every file is sent with a strict Content-Security-Policy: only
//! this origin's scripts, styles and connections, no inline script, no framing.

use super::respond::{self, HubResponse};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, StatusCode};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// The subprotocol a browser offers and the hub picks.
pub const PROTOCOL: &str = "execnode";
/// The prefix of the subprotocol that carries a token.
const BEARER: &str = "bearer.";

/// No script, style, connection or image from anywhere but this origin; no inline script or
/// style, no plugins, no forms posting elsewhere, no framing by other sites.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const HTML: &str = "text/html";
const JS: &str = "text/javascript";
const CSS: &str = "text/css";
const SVG: &str = "image/svg+xml";

/// Path, content type, content.
const FILES: &[(&str, &str, &str)] = &[
    ("/", HTML, include_str!("web/index.html")),
    ("/ui/app.js", JS, include_str!("web/app.js")),
    ("/ui/session.js", JS, include_str!("web/session.js")),
    ("/ui/job.js", JS, include_str!("web/job.js")),
    ("/ui/tokens.js", JS, include_str!("web/tokens.js")),
    ("/ui/audit.js", JS, include_str!("web/audit.js")),
    ("/ui/term.js", JS, include_str!("web/term.js")),
    ("/ui/screen.js", JS, include_str!("web/screen.js")),
    ("/ui/cells.js", JS, include_str!("web/cells.js")),
    ("/ui/app.css", CSS, include_str!("web/app.css")),
    ("/ui/term.css", CSS, include_str!("web/term.css")),
    ("/ui/icon.svg", SVG, include_str!("web/icon.svg")),
];

/// The answer for a static file's path, or `None` when `path` is not one.
pub fn serve(method: &Method, path: &str, headers: &HeaderMap) -> Option<HubResponse> {
    let path = if path == "/favicon.ico" {
        "/ui/icon.svg"
    } else {
        path
    };
    let i = FILES.iter().position(|f| f.0 == path)?;
    if method != Method::GET && method != Method::HEAD {
        return Some(respond::error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {method} is not allowed here"),
        ));
    }
    let (_, kind, body) = FILES[i];
    let etag = &etags()[i];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let mut r = hyper::Response::builder()
        .status(if fresh {
            StatusCode::NOT_MODIFIED
        } else {
            StatusCode::OK
        })
        .header(header::CONTENT_TYPE, format!("{kind}; charset=utf-8"))
        .header(header::ETAG, etag.as_str())
        // Always asks whether the file changed (a new hub binary may have new files).
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::CONTENT_SECURITY_POLICY, CSP)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header(header::X_FRAME_OPTIONS, "DENY");
    if fresh || method == Method::HEAD {
        r = r.header(header::CONTENT_LENGTH, body.len());
    }
    let body = if fresh || method == Method::HEAD {
        Vec::new()
    } else {
        body.as_bytes().to_vec()
    };
    Some(
        r.body(respond::full(body))
            .expect("static headers are valid"),
    )
}

/// A strong validator per file: the start of its SHA-256.
fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        FILES
            .iter()
            .map(|(_, _, body)| {
                let h = Sha256::digest(body.as_bytes());
                let hex: String = h[..12].iter().map(|b| format!("{b:02x}")).collect();
                format!("\"{hex}\"")
            })
            .collect()
    })
}

/// The `Authorization` value a request carries: its header, or else, on a WebSocket upgrade,
/// the token a browser offered as the subprotocol `bearer.TOKEN`.
pub fn credentials(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        return v.to_str().ok().map(str::to_string);
    }
    offered(headers)
        .find_map(|p| p.strip_prefix(BEARER))
        .map(|t| format!("Bearer {t}"))
}

/// The subprotocols an upgrade request offers.
fn offered(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// The subprotocol to answer an upgrade with: `execnode` if the client offered it. A browser
/// that offered subprotocols fails a connection whose answer names none.
pub fn chosen_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    offered(headers)
        .any(|p| p == PROTOCOL)
        .then(|| HeaderValue::from_static(PROTOCOL))
}

/// Whether a browser sent this request from a page of another origin: its `Origin` names a
/// host and port other than the `Host` it was sent to. Clients other than browsers send no
/// `Origin`.
pub fn cross_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let authority = origin.split_once("://").map(|(_, a)| a);
    match (authority, host) {
        (Some(a), Some(h)) => !a.eq_ignore_ascii_case(h),
        _ => true,
    }
}

/// Whether the `Host` a request was sent to names a host no DNS answer can move: an IP
/// address or `localhost` (or no `Host` at all: not a browser). A page of another site that
/// points its own name at the hub (DNS rebinding) is of the same origin as far as its browser
/// knows, so only this tells its requests apart on a hub without tokens.
pub fn fixed_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST) else {
        return true;
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        // [v6 address]:port
        Some(rest) => {
            return rest
                .split_once(']')
                .is_some_and(|(a, _)| a.parse::<std::net::Ipv6Addr>().is_ok())
        }
        None => host.rsplit_once(':').map_or(host, |(n, _)| n),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    header::HeaderName::from_static(k),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn the_token_comes_from_the_header_first_then_the_subprotocol() {
        let h = headers(&[("sec-websocket-protocol", "execnode, bearer.xn_abc")]);
        assert_eq!(credentials(&h).as_deref(), Some("Bearer xn_abc"));
        assert_eq!(chosen_protocol(&h).unwrap(), "execnode");
        let h = headers(&[
            ("authorization", "Bearer xn_1"),
            ("sec-websocket-protocol", "bearer.xn_2"),
        ]);
        assert_eq!(credentials(&h).as_deref(), Some("Bearer xn_1"));
        assert!(chosen_protocol(&h).is_none());
        assert!(credentials(&headers(&[])).is_none());
    }

    #[test]
    fn only_another_origin_is_cross_origin() {
        let same = headers(&[("origin", "http://127.0.0.1:80"), ("host", "127.0.0.1:80")]);
        assert!(!cross_origin(&same));
        let other = headers(&[("origin", "https://evil.example"), ("host", "127.0.0.1:80")]);
        assert!(cross_origin(&other));
        assert!(cross_origin(&headers(&[("origin", "null"), ("host", "h")])));
        assert!(!cross_origin(&headers(&[("host", "h")])));
    }

    #[test]
    fn only_addresses_and_localhost_are_fixed_hosts() {
        for h in [
            "127.0.0.1:5000",
            "10.1.2.3",
            "localhost:80",
            "LOCALHOST",
            "[::1]:5000",
        ] {
            assert!(fixed_host(&headers(&[("host", h)])), "{h}");
        }
        for h in [
            "evil.example:5000",
            "evil.example",
            "127.0.0.1.nip.io:80",
            "[evil]:80",
            "",
        ] {
            assert!(!fixed_host(&headers(&[("host", h)])), "{h}");
        }
        assert!(fixed_host(&headers(&[])));
    }

    #[test]
    fn files_answer_with_the_policy_and_revalidate() {
        let r = serve(&Method::GET, "/", &HeaderMap::new()).unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        let etag = r.headers()[header::ETAG].clone();
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, etag);
        let r = serve(&Method::GET, "/", &h).unwrap();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert!(serve(&Method::GET, "/api/v1/jobs", &h).is_none());
        let r = serve(&Method::POST, "/ui/app.js", &h).unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
