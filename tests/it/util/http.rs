//! Raw HTTP/1.1 requests to the hub's API, and the hub's admin shorthands for them.

use super::{Hub, TIMEOUT};

/// One raw HTTP/1.1 request; returns (status, body).
pub fn http(addr: &str, request: &[u8]) -> (u16, String) {
    let (status, _, body) = http_with_head(addr, request);
    (status, body)
}

/// One raw HTTP/1.1 request; returns (status, head, body), the head with its status line.
pub fn http_with_head(addr: &str, request: &[u8]) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(request).unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut parts = text.split("\r\n\r\n");
    let head = parts.next().unwrap_or("").to_string();
    let body = parts.next().unwrap_or("").to_string();
    (status, head, body)
}

/// A request with `Authorization: Bearer TOKEN` (none if `token` is empty).
pub fn request(addr: &str, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    http(
        addr,
        request_text(addr, method, path, token, body).as_bytes(),
    )
}

fn request_text(addr: &str, method: &str, path: &str, token: &str, body: &str) -> String {
    let auth = if token.is_empty() {
        String::new()
    } else {
        format!("Authorization: Bearer {token}\r\n")
    };
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

impl Hub {
    /// POST as admin.
    pub fn post(&self, path: &str, body: &str) -> (u16, String) {
        request(&self.addr, "POST", path, &self.token, body)
    }

    /// GET as admin.
    pub fn get(&self, path: &str) -> (u16, String) {
        request(&self.addr, "GET", path, &self.token, "")
    }

    /// GET as admin: (status, head, body).
    pub fn get_with_head(&self, path: &str) -> (u16, String, String) {
        let req = request_text(&self.addr, "GET", path, &self.token, "");
        http_with_head(&self.addr, req.as_bytes())
    }
}
