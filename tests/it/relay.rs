//! A TCP relay in front of a hub that cuts connections the way a network does: the side of the
//! dialler (a slave) ends at once, while the hub's side stays open and silent, so the hub hears
//! nothing until its own timeouts. A cut can wait for a pattern in what the hub sends, which is
//! then never delivered. A frozen connection stays open on both sides and carries nothing more
//! either way (what is sent is taken and dropped), as when a route goes away. New connections
//! can be refused for a while, as by a hub that is down. What the hub sends can be counted:
//! its messages are plain text on the wire (only a dialler's frames are masked).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub struct Relay {
    pub url: String,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// Cut the next connection whose hub side sends this.
    cut_on: Mutex<Option<Vec<u8>>>,
    /// What the hub sends that is counted, and how often it was sent, over every connection.
    counted: Mutex<Option<Vec<u8>>>,
    count: AtomicUsize,
    /// Live connections: (dialler side, hub side, cut).
    live: Mutex<Vec<Link>>,
    /// Hub sides of cut connections, kept open and unread.
    held: Mutex<Vec<TcpStream>>,
    /// Close new connections at once, as a hub that is down would.
    refuse: AtomicBool,
    accepted: AtomicUsize,
    cuts: AtomicUsize,
}

#[derive(Clone)]
struct Link {
    near: Arc<TcpStream>,
    far: Arc<TcpStream>,
    cut: Arc<AtomicBool>,
    frozen: Arc<AtomicBool>,
}

impl Link {
    /// Ends the dialler's side; the hub's side stays open, and nothing more is relayed.
    fn cut(&self, shared: &Shared) {
        if self.cut.swap(true, Ordering::SeqCst) {
            return;
        }
        shared
            .held
            .lock()
            .unwrap()
            .push(self.far.try_clone().unwrap());
        let _ = self.near.shutdown(Shutdown::Both);
        shared.cuts.fetch_add(1, Ordering::SeqCst);
    }
}

impl Relay {
    /// Relays connections from a loopback port of its own to `hub_addr` (`host:port`).
    pub fn start(hub_addr: &str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared::default());
        let (s, hub_addr) = (shared.clone(), hub_addr.to_string());
        std::thread::spawn(move || {
            for near in listener.incoming() {
                let Ok(near) = near else { return };
                if s.refuse.load(Ordering::SeqCst) {
                    drop(near);
                    continue;
                }
                let Ok(far) = TcpStream::connect(&hub_addr) else {
                    continue;
                };
                let link = Link {
                    near: Arc::new(near),
                    far: Arc::new(far),
                    cut: Arc::default(),
                    frozen: Arc::default(),
                };
                s.live.lock().unwrap().push(link.clone());
                s.accepted.fetch_add(1, Ordering::SeqCst);
                let up = link.clone();
                std::thread::spawn(move || pump_up(&up));
                let s = s.clone();
                std::thread::spawn(move || pump_down(&s, &link));
            }
        });
        Relay { url, shared }
    }

    /// Cuts every live connection now.
    pub fn cut_now(&self) {
        for link in self.shared.live.lock().unwrap().drain(..) {
            link.cut(&self.shared);
        }
    }

    /// Freezes every live connection now; new ones are relayed as before.
    pub fn freeze_now(&self) {
        for link in self.shared.live.lock().unwrap().drain(..) {
            link.frozen.store(true, Ordering::SeqCst);
        }
    }

    /// Cuts the next connection whose hub side sends `pattern`, before it is delivered.
    pub fn cut_on(&self, pattern: &[u8]) {
        *self.shared.cut_on.lock().unwrap() = Some(pattern.to_vec());
    }

    /// Counts from now on how often the hub sends `pattern` (read with [`Relay::count`]).
    pub fn count_from_hub(&self, pattern: &[u8]) {
        *self.shared.counted.lock().unwrap() = Some(pattern.to_vec());
    }

    /// How often the hub has sent the pattern given to [`Relay::count_from_hub`] so far.
    pub fn count(&self) -> usize {
        self.shared.count.load(Ordering::SeqCst)
    }

    /// While `on`, new connections are closed at once and never reach the hub.
    pub fn refuse_new(&self, on: bool) {
        self.shared.refuse.store(on, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    pub fn cuts(&self) -> usize {
        self.shared.cuts.load(Ordering::SeqCst)
    }
}

/// Dialler to hub, until either side ends; a cut leaves the hub's side as it is.
fn pump_up(link: &Link) {
    let mut buf = [0u8; 16 << 10];
    loop {
        let n = match (&*link.near).read(&mut buf) {
            Ok(n) if n > 0 && !link.cut.load(Ordering::SeqCst) => n,
            _ => break,
        };
        if link.frozen.load(Ordering::SeqCst) {
            continue;
        }
        if (&*link.far).write_all(&buf[..n]).is_err() {
            break;
        }
    }
    if !link.cut.load(Ordering::SeqCst) {
        let _ = link.far.shutdown(Shutdown::Write);
    }
}

/// Hub to dialler, watching for the pattern to cut on.
fn pump_down(shared: &Shared, link: &Link) {
    let mut buf = [0u8; 16 << 10];
    // The end of what came before, so that a pattern split across reads is seen too.
    let mut seen: Vec<u8> = Vec::new();
    let mut counting: Vec<u8> = Vec::new();
    loop {
        let n = match (&*link.far).read(&mut buf) {
            Ok(n) if n > 0 && !link.cut.load(Ordering::SeqCst) => n,
            _ => break,
        };
        if link.frozen.load(Ordering::SeqCst) {
            continue;
        }
        if let Some(p) = shared.counted.lock().unwrap().as_ref() {
            counting.extend_from_slice(&buf[..n]);
            let mut at = 0;
            while let Some(i) = counting[at..]
                .windows(p.len())
                .position(|w| w == p.as_slice())
            {
                shared.count.fetch_add(1, Ordering::SeqCst);
                at += i + p.len();
            }
            // Keep what could still be the start of the next one.
            let keep = at.max(counting.len().saturating_sub(p.len() - 1));
            counting.drain(..keep);
        }
        seen.extend_from_slice(&buf[..n]);
        let mut armed = shared.cut_on.lock().unwrap();
        if let Some(p) = armed.as_ref() {
            if seen.windows(p.len()).any(|w| w == p.as_slice()) {
                *armed = None;
                drop(armed);
                link.cut(shared);
                return;
            }
            let keep = seen.len().saturating_sub(p.len());
            seen.drain(..keep);
        } else {
            seen.clear();
        }
        drop(armed);
        if (&*link.near).write_all(&buf[..n]).is_err() {
            break;
        }
    }
    if !link.cut.load(Ordering::SeqCst) {
        let _ = link.near.shutdown(Shutdown::Write);
    }
}
