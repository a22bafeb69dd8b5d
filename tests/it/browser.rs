//! A small, synchronous Chrome DevTools Protocol client for tests that need a real browser: it
//! starts Debian's headless Chromium with `--remote-debugging-pipe` (NUL-terminated JSON
//! messages, commands to the browser's fd 3, replies and events from its fd 4), opens one page and
//! drives it as a user would. Every wait is bounded by `util::TIMEOUT`; a failure panics with
//! what was awaited and the tail of Chromium's stderr.
//!
//! This file has the protocol: the `Browser` itself, commands and their replies, and the reader
//! thread. Starting and ending Chromium is in `browser/process.rs`, what a test does with the
//! page in `browser/page.rs`, keys in `browser/keys.rs`.

#![allow(dead_code)]

use crate::util::TIMEOUT;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

mod keys;
mod page;
mod process;

pub use keys::CTRL;

/// One headless Chromium with one page, attached in flat session mode. Dropping it kills the
/// browser's whole process group and removes its profile.
pub struct Browser {
    child: Child,
    /// Our end of the browser's fd 3.
    to_browser: Mutex<File>,
    inbox: Arc<Inbox>,
    next_id: AtomicU64,
    /// The page's flat-mode session; empty only while `launch` is attaching.
    session: String,
    reader: Option<std::thread::JoinHandle<()>>,
    log: PathBuf,
    dir: tempfile::TempDir,
}

/// What the reader thread has seen: replies by command id, and every event, in order (kept for
/// the browser's life: `goto` looks for events after a mark, `errors` reads them all).
#[derive(Default)]
struct Seen {
    replies: HashMap<u64, Value>,
    events: Vec<Value>,
    /// fd 4 reached EOF or failed: the browser is gone, no reply will come.
    closed: bool,
}

#[derive(Default)]
struct Inbox {
    seen: Mutex<Seen>,
    changed: Condvar,
}

impl Browser {
    /// Sends a command on the page's session and waits (bounded by `TIMEOUT`) for its reply;
    /// returns its `result`. Panics with the method and the error on a protocol error.
    pub fn call(&self, method: &str, params: Value) -> Value {
        self.send(Some(&self.session), method, params)
    }

    /// Sends one command, on the page's session or (None) to the browser, and waits for its
    /// reply's `result`.
    fn send(&self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        // Bound first: the lock must be released before a panic, or it stays poisoned.
        let sent = self.to_browser.lock().unwrap().write_all(&bytes);
        if let Err(e) = sent {
            panic!("sending {method} to chromium: {e}{}", self.stderr_tail());
        }
        let reply = self.wait_inbox(&format!("chromium to answer {method}"), |seen| {
            seen.replies.remove(&id)
        });
        if let Some(error) = reply.get("error") {
            panic!("{method} failed: {error}");
        }
        reply.get("result").cloned().unwrap_or(Value::Null)
    }

    /// Waits for an event at index `mark` or later of our page's session that `matches`.
    fn wait_event(&self, what: &str, mark: usize, matches: impl Fn(&Value) -> bool) -> Value {
        let mut from = mark;
        self.wait_inbox(what, |seen| {
            let found = seen.events[from..]
                .iter()
                .find(|e| e["sessionId"] == self.session.as_str() && matches(e))
                .cloned();
            from = seen.events.len();
            found
        })
    }

    /// Waits until `found` finds something in the inbox, bounded by `TIMEOUT`; panics with
    /// `what` if it times out or Chromium exits first.
    fn wait_inbox<T>(&self, what: &str, mut found: impl FnMut(&mut Seen) -> Option<T>) -> T {
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = self.inbox.seen.lock().unwrap();
        let failure = loop {
            if let Some(it) = found(&mut seen) {
                return it;
            }
            if seen.closed {
                break "chromium exited while waiting for";
            }
            let now = Instant::now();
            if now >= deadline {
                break "timed out waiting for";
            }
            seen = self
                .inbox
                .changed
                .wait_timeout(seen, deadline - now)
                .unwrap()
                .0;
        };
        // Not while holding the lock: a poisoned inbox would fail every later look at it.
        drop(seen);
        panic!("{failure} {what}{}", self.stderr_tail());
    }

    /// The last lines Chromium wrote to stderr, for a panic message.
    fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        // Without a D-Bus (none here) it logs a few lines a second about that.
        let lines: Vec<&str> = text.lines().filter(|l| !l.contains("dbus/")).collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        format!("\n--- chromium stderr (last lines) ---\n{tail}")
    }
}

/// The reader thread: splits fd 4 on NUL bytes, files replies by id and events in order, until
/// EOF.
fn read_messages(from: OwnedFd, inbox: &Inbox) {
    let mut from = BufReader::new(File::from(from));
    let mut message = Vec::new();
    loop {
        message.clear();
        match from.read_until(0, &mut message) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if message.last() == Some(&0) {
            message.pop();
        }
        let value: Value = match serde_json::from_slice(&message) {
            Ok(value) => value,
            Err(e) => {
                eprintln!(
                    "browser: unparsable message from chromium ({e}): {}",
                    String::from_utf8_lossy(&message)
                );
                continue;
            }
        };
        let mut seen = inbox.seen.lock().unwrap();
        match value["id"].as_u64() {
            Some(id) => {
                seen.replies.insert(id, value);
            }
            None => seen.events.push(value),
        }
        inbox.changed.notify_all();
    }
    inbox.seen.lock().unwrap().closed = true;
    inbox.changed.notify_all();
}
