//! What a test does with the page: navigate, evaluate and wait for a script, type, press keys,
//! read the errors the page reported, download, take a screenshot.

use super::keys::KeySpec;
use super::Browser;
use crate::util::TIMEOUT;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

impl Browser {
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
