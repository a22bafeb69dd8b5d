//! A scripted stand-in for a hub: it answers each REST request with what the test says, to
//! put `xn` in a moment a real hub gives only by chance (a job that ends between two of xn's
//! requests, say). HTTP/1.1 with keep-alive, bodies by Content-Length; no WebSockets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What the script answers to a request: (status, JSON body).
pub type Script = dyn Fn(&str, &str) -> (u16, String) + Send + Sync;

pub struct ScriptedHub {
    pub url: String,
    stop: Arc<AtomicBool>,
}

impl ScriptedHub {
    /// Listens on a loopback port and answers `(method, path)` with `script`.
    pub fn start(script: impl Fn(&str, &str) -> (u16, String) + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::new(script);
        let stopped = stop.clone();
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let script = script.clone();
                        std::thread::spawn(move || serve(conn, &*script));
                    }
                    // Nothing to accept: look at the stop flag again soon.
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        ScriptedHub { url, stop }
    }
}

impl Drop for ScriptedHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Answers the requests of one connection until the client closes it.
fn serve(conn: TcpStream, script: &Script) {
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(super::TIMEOUT)).unwrap();
    let mut out = conn.try_clone().unwrap();
    let mut rd = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if rd.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut words = line.split_whitespace();
        let (method, path) = (
            words.next().unwrap_or("").to_string(),
            words.next().unwrap_or("").to_string(),
        );
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if rd.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; len];
        if rd.read_exact(&mut body).is_err() {
            return;
        }
        let (status, answer) = script(&method, &path);
        let head = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            answer.len()
        );
        if out.write_all(head.as_bytes()).is_err() || out.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}
