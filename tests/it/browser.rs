//! A small, synchronous Chrome DevTools Protocol client for tests that need a real browser: it
//! starts Debian's headless Chromium with `--remote-debugging-pipe` (NUL-terminated JSON
//! messages, commands to the browser's fd 3, replies and events from its fd 4), opens one page and
//! drives it as a user would. Every wait is bounded by `util::TIMEOUT`; a failure panics with
//! what was awaited and the tail of Chromium's stderr.

#![allow(dead_code)]

use crate::util::TIMEOUT;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";

mod keys;

use keys::KeySpec;
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
    /// Starts headless Chromium with a fresh temp `--user-data-dir` and opens one blank page
    /// (`Target.createTarget`, then `Target.attachToTarget` with `flatten: true`: page commands
    /// carry its `sessionId`). Enables the Page, Runtime and Log domains.
    pub fn launch() -> Browser {
        if !Path::new(CHROMIUM).exists() {
            panic!(
                "chromium is not installed: run scripts/test.sh, which installs it \
                 (apt-get install chromium)"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("execnode-browser-")
            .tempdir()
            .unwrap();
        let log = dir.path().join("chromium.log");
        let log_file = File::create(&log).unwrap();
        // CLOEXEC: no other child the test process spawns meanwhile may inherit these.
        let (cmd_read, cmd_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let (out_read, out_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let mut cmd = Command::new(CHROMIUM);
        cmd.args([
            "--headless",
            // We run as root, where Chromium refuses its sandbox.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--remote-debugging-pipe",
            "--window-size=1200,800",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        // Chromium's crash handlers keep their database under $HOME, and are not in its process
        // group: this keeps the database out of the real home, and lets Drop find them by path.
        .env("HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        // Its singleton socket goes in a directory of $TMPDIR that it does not remove.
        .env("TMPDIR", dir.path())
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        // Its own process group: Drop kills zygote and renderers with it.
        .process_group(0);
        let (fd3, fd4) = (cmd_read.as_raw_fd(), out_write.as_raw_fd());
        // SAFETY: between fork and exec only async-signal-safe calls (fcntl, dup2, close) on fds
        // this process owns until `spawn` returns.
        unsafe {
            cmd.pre_exec(move || {
                // First above 4, so that dup2 below cannot clobber one with the other when the
                // pipe happened to land on fd 3 or 4; F_DUPFD and dup2 leave CLOEXEC clear.
                let high3 = libc::fcntl(fd3, libc::F_DUPFD, 10);
                let high4 = libc::fcntl(fd4, libc::F_DUPFD, 10);
                if high3 < 0 || high4 < 0 || libc::dup2(high3, 3) < 0 || libc::dup2(high4, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(high3);
                libc::close(high4);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("starting chromium");
        // The child's ends must close here, or fd 4 never reaches EOF when Chromium dies.
        drop(cmd);
        drop((cmd_read, out_write));

        let inbox = Arc::new(Inbox::default());
        let reader = {
            let inbox = inbox.clone();
            std::thread::spawn(move || read_messages(out_read, &inbox))
        };
        let mut browser = Browser {
            child,
            to_browser: Mutex::new(File::from(cmd_write)),
            inbox,
            next_id: AtomicU64::new(1),
            session: String::new(),
            reader: Some(reader),
            log,
            dir,
        };
        let target = browser.send(None, "Target.createTarget", json!({"url": "about:blank"}));
        let target_id = target["targetId"].as_str().expect("targetId").to_owned();
        let attached = browser.send(
            None,
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        );
        browser.session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_owned();
        for method in ["Page.enable", "Runtime.enable", "Log.enable"] {
            browser.call(method, json!({}));
        }
        // Lifecycle events carry the loader id, which tells the load of one navigation from a
        // late one of the page before (see `goto`).
        browser.call("Page.setLifecycleEventsEnabled", json!({"enabled": true}));
        browser
    }

    /// Sends a command on the page's session and waits (bounded by `TIMEOUT`) for its reply;
    /// returns its `result`. Panics with the method and the error on a protocol error.
    pub fn call(&self, method: &str, params: Value) -> Value {
        self.send(Some(&self.session), method, params)
    }

    /// `Page.navigate`, then waits for the load event of that navigation.
    pub fn goto(&self, url: &str) {
        let mark = self.inbox.seen.lock().unwrap().events.len();
        let nav = self.call("Page.navigate", json!({"url": url}));
        if let Some(error) = nav["errorText"].as_str() {
            panic!("navigating to {url}: {error}");
        }
        // No loader id: a same-document navigation (fragment), which fires no load event.
        let Some(loader) = nav["loaderId"].as_str() else {
            return;
        };
        let frame = nav["frameId"].as_str().unwrap_or_default();
        // `Page.loadEventFired` has no loader id; the lifecycle event "load" of the main frame
        // comes with it and does.
        self.wait_event(&format!("the load event of {url}"), mark, |event| {
            event["method"] == "Page.lifecycleEvent"
                && event["params"]["name"] == "load"
                && event["params"]["loaderId"] == loader
                && event["params"]["frameId"] == frame
        });
    }

    /// `Runtime.evaluate` with `awaitPromise` and `returnByValue`: the value (`null` for
    /// `undefined`). Panics with the exception's text if the script threw.
    pub fn eval(&self, js: &str) -> Value {
        let reply = self.call(
            "Runtime.evaluate",
            json!({"expression": js, "awaitPromise": true, "returnByValue": true}),
        );
        if let Some(details) = reply.get("exceptionDetails") {
            panic!("script threw: {}\nscript: {js}", exception_text(details));
        }
        reply["result"].get("value").cloned().unwrap_or(Value::Null)
    }

    /// Polls the expression `js` every ~50 ms until it evaluates truthy (not false, null, 0, ""
    /// or undefined) and returns that value; panics after `TIMEOUT` naming `what` and the last
    /// value.
    pub fn wait_for(&self, what: &str, js: &str) -> Value {
        let start = Instant::now();
        loop {
            let value = self.eval(js);
            if truthy(&value) {
                return value;
            }
            assert!(
                start.elapsed() < TIMEOUT,
                "timed out waiting for {what}: `{js}` is still {value}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `Input.insertText`: puts `text` into the focused element as an IME would (an `input`
    /// event, no key events).
    pub fn insert_text(&self, text: &str) {
        self.call("Input.insertText", json!({"text": text}));
    }

    /// Presses and releases a key: a name (Enter, Backspace, Tab, Escape, Delete, Home, End,
    /// PageUp, PageDown, ArrowUp/Down/Left/Right) or a single character, with `modifiers`
    /// ([`ALT`] | [`CTRL`] | [`META`] | [`SHIFT`]), so page handlers see `e.key`, `e.code`,
    /// `e.keyCode`, `e.ctrlKey`… A character without Ctrl, Alt or Meta also types itself.
    pub fn key(&self, key: &str, modifiers: u32) {
        let k = KeySpec::of(key, modifiers);
        let mut down = json!({
            "type": if k.text.is_empty() { "rawKeyDown" } else { "keyDown" },
            "modifiers": modifiers,
            "key": k.key,
            "code": k.code,
            "windowsVirtualKeyCode": k.key_code,
            "nativeVirtualKeyCode": k.key_code,
        });
        if !k.text.is_empty() {
            down["text"] = json!(k.text);
            down["unmodifiedText"] = json!(k.text);
        }
        self.call("Input.dispatchKeyEvent", down);
        self.call(
            "Input.dispatchKeyEvent",
            json!({
                "type": "keyUp",
                "modifiers": modifiers,
                "key": k.key,
                "code": k.code,
                "windowsVirtualKeyCode": k.key_code,
                "nativeVirtualKeyCode": k.key_code,
            }),
        );
    }

    /// Everything the page reported as an error so far, one line each: uncaught exceptions
    /// (`Runtime.exceptionThrown`), `console.error` calls, and `Log.entryAdded` entries of level
    /// error (where Content-Security-Policy violations and failed loads show up).
    pub fn errors(&self) -> Vec<String> {
        let seen = self.inbox.seen.lock().unwrap();
        seen.events
            .iter()
            .filter_map(|event| {
                let params = &event["params"];
                match event["method"].as_str()? {
                    "Runtime.exceptionThrown" => Some(format!(
                        "exception: {}",
                        exception_text(&params["exceptionDetails"])
                    )),
                    "Runtime.consoleAPICalled" if params["type"] == "error" => {
                        let args = params["args"].as_array()?.iter().map(|arg| {
                            match (&arg["value"], &arg["description"]) {
                                (Value::String(s), _) => s.clone(),
                                (Value::Null, Value::String(d)) => d.clone(),
                                (v, _) => v.to_string(),
                            }
                        });
                        Some(format!(
                            "console.error: {}",
                            args.collect::<Vec<_>>().join(" ")
                        ))
                    }
                    "Log.entryAdded" if params["entry"]["level"] == "error" => {
                        let entry = &params["entry"];
                        let mut line = format!(
                            "log ({}): {}",
                            entry["source"].as_str().unwrap_or("?"),
                            entry["text"].as_str().unwrap_or_default()
                        );
                        if let Some(url) = entry["url"].as_str() {
                            line += &format!(" [{url}]");
                        }
                        Some(line)
                    }
                    _ => None,
                }
            })
            .collect()
    }

    /// Lets the page download files, into `dir` (`Browser.setDownloadBehavior`).
    pub fn download_to(&self, dir: &Path) {
        let params = json!({"behavior": "allow", "downloadPath": dir.to_str().unwrap()});
        self.send(None, "Browser.setDownloadBehavior", params);
    }

    /// `Page.captureScreenshot` into a PNG file at `path` (for a person debugging a failure).
    pub fn screenshot(&self, path: &Path) {
        use base64::Engine as _;
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("screenshot is base64");
        std::fs::write(path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
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

impl Drop for Browser {
    /// Kills Chromium's whole process group (it forks zygotes and renderers) and its crash
    /// handlers, reaps the browser, waits until they are all gone, and lets the temp dir go.
    fn drop(&mut self) {
        let group = self.child.id() as i32;
        let _ = nix::sys::signal::killpg(Pid::from_raw(group), Signal::SIGKILL);
        let _ = self.child.wait();
        // The rest now belong to init (which reaps their zombies); until they are dead they could
        // still write into the temp dir while it is being removed, or outlive the test.
        let start = Instant::now();
        let mut left = leftovers(group, self.dir.path());
        while !left.is_empty() && start.elapsed() < TIMEOUT {
            for &pid in &left {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(10));
            left = leftovers(group, self.dir.path());
        }
        // Every writer of fd 4 is dead now: the reader has its EOF. (If something survived,
        // leave the thread blocked rather than hang the test.)
        if let Some(reader) = self.reader.take() {
            if left.is_empty() {
                let _ = reader.join();
            }
        }
    }
}

/// Live (not zombie) processes that one browser started: those in its process group, and the
/// crash handlers, which leave the group but name `dir` (their database) on their command line.
fn leftovers(group: i32, dir: &Path) -> Vec<i32> {
    let dir = dir.as_os_str().as_encoded_bytes();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // "pid (comm) state ppid pgrp …", where comm may hold spaces and parentheses.
            let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
            let state = fields.next()?;
            let pgrp: i32 = fields.nth(1)?.parse().ok()?;
            if state == "Z" || state == "X" {
                return None;
            }
            let ours = pgrp == group
                || std::fs::read(entry.path().join("cmdline"))
                    .is_ok_and(|cmdline| cmdline.windows(dir.len()).any(|w| w == dir));
            ours.then_some(pid)
        })
        .collect()
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

/// One line from a `Runtime.ExceptionDetails`: the exception's description (message and stack)
/// if it has one, else the text, plus where it was thrown.
fn exception_text(details: &Value) -> String {
    let text = details["exception"]["description"]
        .as_str()
        .or(details["exception"]["value"].as_str())
        .or(details["text"].as_str())
        .unwrap_or("?");
    let url = details["url"].as_str().unwrap_or_default();
    let line = details["lineNumber"].as_u64().unwrap_or(0) + 1;
    let column = details["columnNumber"].as_u64().unwrap_or(0) + 1;
    // A data: URL is the whole page.
    let url = if url.chars().count() > 80 {
        format!("{}…", url.chars().take(80).collect::<String>())
    } else {
        url.to_owned()
    };
    let text = text.replace('\n', " | ");
    if url.is_empty() {
        // Thrown by a script given to `eval`: the stack in `text` says where.
        text
    } else {
        format!("{text} (at {url}:{line}:{column})")
    }
}

/// JavaScript truthiness of a value that came back by value.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}
