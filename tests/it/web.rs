//! The web interface: its files and the rules a browser meets (a token as a WebSocket
//! subprotocol, other origins refused by a hub without tokens), over raw HTTP; then the page
//! itself, in headless Chromium.

use crate::util::{http, request, Hub, TIMEOUT};
use std::io::{Read, Write};

/// The status line and headers of a WebSocket upgrade to `path` offering `protocols`.
fn upgrade_head(addr: &str, path: &str, protocols: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: {protocols}\r\nOrigin: http://{addr}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).to_lowercase()
}

/// A whole plain GET answer, headers and body, without a token.
fn get_all(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    String::from_utf8_lossy(&all).to_string()
}

#[test]
fn the_page_loads_without_a_token_under_a_strict_policy() {
    let hub = Hub::start();
    let page = get_all(&hub.addr, "/");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let lower = page.to_lowercase();
    assert!(lower.contains("content-type: text/html"), "{page}");
    assert!(
        lower.contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "{page}"
    );
    assert!(lower.contains("x-content-type-options: nosniff"), "{page}");
    assert!(page.contains(r#"<script type="module" src="/ui/app.js">"#));
    for file in [
        "/ui/app.js",
        "/ui/session.js",
        "/ui/job.js",
        "/ui/tokens.js",
        "/ui/audit.js",
        "/ui/term.js",
        "/ui/screen.js",
        "/ui/cells.js",
        "/ui/app.css",
        "/ui/term.css",
        "/ui/icon.svg",
        "/favicon.ico",
    ] {
        let r = get_all(&hub.addr, file);
        assert!(r.starts_with("HTTP/1.1 200"), "{file}: {r}");
    }
    // The files hold no secret; everything else still wants a token.
    let (status, body) = request(&hub.addr, "GET", "/api/v1/whoami", "", "");
    assert_eq!(status, 401, "{body}");
    let (status, body) = hub.get("/api/v1/whoami");
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"name":"admin","role":"admin"}"#)
    );
    let (status, _) = request(&hub.addr, "GET", "/ui/nope.js", "", "");
    assert_eq!(
        status, 401,
        "not a file of the page: an API path like any other"
    );
}

#[test]
fn a_browser_token_rides_the_websocket_subprotocol() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let id = hub.submit("echo hi", &[]);
    hub.wait_ended(id);
    let path = format!("/api/v1/jobs/{id}/stream?input=1");
    let head = upgrade_head(&hub.addr, &path, &format!("execnode, bearer.{}", hub.token));
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        head.contains("sec-websocket-protocol: execnode\r\n"),
        "{head}"
    );
    // A wrong token there is refused like a wrong header.
    let wrong = format!("execnode, bearer.xn_{}", "0".repeat(64));
    let head = upgrade_head(&hub.addr, &path, &wrong);
    assert!(head.starts_with("http/1.1 401"), "{head}");
    // A viewer's token is a viewer's: it may watch, not type.
    let viewer = hub.new_token("watch", "viewer");
    let head = upgrade_head(&hub.addr, &path, &format!("execnode, bearer.{viewer}"));
    assert!(head.starts_with("http/1.1 403"), "{head}");
    let path = format!("/api/v1/jobs/{id}/stream");
    let head = upgrade_head(&hub.addr, &path, &format!("execnode, bearer.{viewer}"));
    assert!(head.starts_with("http/1.1 101"), "{head}");
}

#[test]
fn a_hub_without_tokens_refuses_pages_of_other_origins() {
    let hub = Hub::start_with(&["--no-auth"]);
    // What a form on another site can send without asking: a plain-text POST.
    let submit = |origin: &str| {
        let body = r#"{"command":"true"}"#;
        let req = format!(
            "POST /api/v1/jobs HTTP/1.1\r\nHost: {}\r\n{origin}Content-Type: text/plain\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            hub.addr,
            body.len()
        );
        http(&hub.addr, req.as_bytes())
    };
    let (status, body) = submit("Origin: https://evil.example\r\n");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("another origin"), "{body}");
    let (status, body) = submit("Origin: null\r\n");
    assert_eq!(status, 403, "{body}");
    let (_, list) = request(&hub.addr, "GET", "/api/v1/jobs", "", "");
    assert_eq!(list, "[]", "nothing was submitted");
    // The page's own origin, and clients that send none (xn, curl), are let in.
    let (status, body) = submit(&format!("Origin: http://{}\r\n", hub.addr));
    assert_eq!(status, 201, "{body}");
    let (status, body) = submit("");
    assert_eq!(status, 201, "{body}");
    // The page itself loads from anywhere: it is only files.
    let page = get_all(&hub.addr, "/");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");

    // A page whose own name was pointed at the hub (DNS rebinding): same origin to the
    // browser, but the Host is a name, so it is refused. localhost is fine.
    let port = hub.addr.rsplit_once(':').unwrap().1;
    let to_host = |host: &str| {
        let body = r#"{"command":"true"}"#;
        let req = format!(
            "POST /api/v1/jobs HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        http(&hub.addr, req.as_bytes())
    };
    let (status, body) = to_host(&format!("attacker.example:{port}"));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("DNS rebinding"), "{body}");
    let (_, list) = request(&hub.addr, "GET", "/api/v1/jobs", "", "");
    assert_eq!(
        list.matches("\"id\"").count(),
        2,
        "only the two let in above: {list}"
    );
    let (status, body) = to_host(&format!("localhost:{port}"));
    assert_eq!(status, 201, "{body}");
}

#[test]
fn the_list_can_hold_only_the_newest_jobs() {
    let hub = Hub::start();
    for i in 0..5 {
        hub.submit(&format!("echo {i}"), &[]);
    }
    let ids = |q: &str| -> Vec<u64> {
        let (status, body) = hub.get(&format!("/api/v1/jobs?{q}"));
        assert_eq!(status, 200, "{body}");
        let jobs: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        jobs.iter().map(|j| j["id"].as_u64().unwrap()).collect()
    };
    assert_eq!(ids("last=2"), [4, 5]);
    assert_eq!(ids("last=0"), Vec::<u64>::new());
    assert_eq!(ids("last=100"), [1, 2, 3, 4, 5]);
    assert_eq!(ids("last=2&state=queued"), [4, 5]);
    let (status, body) = hub.get("/api/v1/jobs?last=some");
    assert_eq!(status, 400, "{body}");
}
