//! A hub played by the test, frame by frame: a real slave dials it (over plain TCP or TLS), and
//! the test decides every byte the slave gets and reads every frame it sends, down to how the
//! stream ends (a TLS close_notify, or none). For what a real hub never sends: malformed or
//! oversized messages, orders it would not give.

use super::TIMEOUT;
use base64::Engine;
use execnode::wire::{HubToSlave, SlaveMsg, PROTOCOL_VERSION};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_rustls::rustls::{ServerConfig, ServerConnection, StreamOwned};

pub struct PlayedHub {
    pub url: String,
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
}

/// One frame a slave sent, unmasked.
#[derive(Debug)]
pub struct Frame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;

/// Plain TCP or TLS over it.
trait Stream: Read + Write + Send {
    /// Ends our side: close_notify over TLS, then the TCP FIN.
    fn end(&mut self);
}

impl Stream for TcpStream {
    fn end(&mut self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

impl Stream for StreamOwned<ServerConnection, TcpStream> {
    fn end(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush();
        let _ = self.sock.shutdown(std::net::Shutdown::Write);
    }
}

/// The hub's side of one slave connection, welcomed.
pub struct HubSide {
    stream: Box<dyn Stream>,
    /// The slave's hello.
    pub hello: SlaveMsg,
}

impl PlayedHub {
    /// Listens on a loopback port, plain HTTP.
    pub fn start() -> PlayedHub {
        Self::listen(None)
    }

    /// Listens on a loopback port with TLS (`execnode::tls::server_config`'s settings).
    pub fn start_tls(config: Arc<ServerConfig>) -> PlayedHub {
        Self::listen(Some(config))
    }

    fn listen(tls: Option<Arc<ServerConfig>>) -> PlayedHub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", listener.local_addr().unwrap());
        PlayedHub { url, listener, tls }
    }

    /// Takes the next connection (within `TIMEOUT`), upgrades it to a WebSocket, reads the
    /// hello and answers with a welcome. Run it on a thread while the slave starts.
    pub fn accept(&self) -> HubSide {
        let start = Instant::now();
        let tcp = loop {
            match self.listener.accept() {
                Ok((tcp, _)) => break tcp,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(start.elapsed() < TIMEOUT, "no slave dialled");
                    // No event to wait on with a non-blocking std listener: look again soon.
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        tcp.set_nonblocking(false).unwrap();
        tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
        let stream: Box<dyn Stream> = match &self.tls {
            Some(config) => Box::new(StreamOwned::new(
                ServerConnection::new(config.clone()).unwrap(),
                tcp,
            )),
            None => Box::new(tcp),
        };
        let mut side = HubSide {
            stream,
            hello: SlaveMsg::Heartbeat,
        };
        side.upgrade();
        side.hello = side.next_msg().expect("a hello");
        side.send(&HubToSlave::Welcome {
            protocol: PROTOCOL_VERSION,
            forget: vec![],
            heartbeat_ms: None,
        });
        side
    }
}

impl HubSide {
    /// Reads the request head and answers 101 with the key's accept value (RFC 6455 4.2.2).
    fn upgrade(&mut self) {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            self.stream.read_exact(&mut byte).expect("the request head");
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let key = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| v.trim().to_string())
            })
            .expect("a Sec-WebSocket-Key");
        let digest = ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes(),
        );
        let accept = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
             sec-websocket-accept: {accept}\r\n\r\n"
        );
        self.stream.write_all(answer.as_bytes()).unwrap();
        self.stream.flush().unwrap();
    }

    /// Sends one message, as the hub serializes it.
    pub fn send(&mut self, msg: &HubToSlave) {
        self.send_frame(TEXT, &serde_json::to_vec(msg).unwrap());
    }

    /// Sends one unfragmented frame (a server's: unmasked) with any payload.
    pub fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        self.try_send_frame(opcode, payload).unwrap();
    }

    /// As [`HubSide::send_frame`], for a frame the slave may hang up on halfway.
    pub fn try_send_frame(&mut self, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        let mut frame = vec![0x80 | opcode];
        match payload.len() {
            n @ 0..=125 => frame.push(n as u8),
            n @ 126..=0xffff => {
                frame.push(126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame)?;
        self.stream.flush()
    }

    /// The slave's next frame other than a ping.
    pub fn recv(&mut self) -> Frame {
        loop {
            let mut h = [0u8; 2];
            self.stream
                .read_exact(&mut h)
                .expect("a frame from the slave");
            let opcode = h[0] & 0x0f;
            let len = match h[1] & 0x7f {
                126 => {
                    let mut b = [0u8; 2];
                    self.stream.read_exact(&mut b).unwrap();
                    u64::from(u16::from_be_bytes(b))
                }
                127 => {
                    let mut b = [0u8; 8];
                    self.stream.read_exact(&mut b).unwrap();
                    u64::from_be_bytes(b)
                }
                n => u64::from(n),
            };
            assert!(h[1] & 0x80 != 0, "a slave's frames are masked");
            let mut mask = [0u8; 4];
            self.stream.read_exact(&mut mask).unwrap();
            let mut payload = vec![0u8; len as usize];
            self.stream.read_exact(&mut payload).unwrap();
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i % 4];
            }
            if opcode != PING {
                return Frame { opcode, payload };
            }
        }
    }

    /// The slave's next message other than a heartbeat; `None` at its close frame.
    pub fn next_msg(&mut self) -> Option<SlaveMsg> {
        loop {
            let f = self.recv();
            match f.opcode {
                CLOSE => return None,
                TEXT => match serde_json::from_slice(&f.payload).unwrap() {
                    SlaveMsg::Heartbeat => continue,
                    m => return Some(m),
                },
                _ => panic!("expected a message, got {f:?}"),
            }
        }
    }

    /// Reads until the stream ends: `Ok` for a clean end (over TLS: a close_notify came
    /// first), the read's error otherwise (rustls: `UnexpectedEof` when the socket closed
    /// without one). Bytes read meanwhile are returned with it.
    pub fn read_to_end(&mut self) -> (Vec<u8>, std::io::Result<()>) {
        let mut rest = Vec::new();
        let res = self.stream.read_to_end(&mut rest).map(|_| ());
        (rest, res)
    }

    /// Sends a close frame with `code`, then ends the stream (close_notify over TLS).
    pub fn close(mut self, code: u16) {
        self.send_frame(CLOSE, &code.to_be_bytes());
        self.stream.end();
    }
}
