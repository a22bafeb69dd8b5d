//! Keys for `Browser::key`: what `Input.dispatchKeyEvent` needs to know about a key on a US
//! layout, and the browser's smoke test (typing, keys and chords, errors in a page).

use super::Browser;
use serde_json::json;

/// Modifier bits of `Input.dispatchKeyEvent`, as CDP defines them; combine with `|`.
pub const ALT: u32 = 1;
/// See [`ALT`].
pub const CTRL: u32 = 2;
/// See [`ALT`].
pub const META: u32 = 4;
/// See [`ALT`].
pub const SHIFT: u32 = 8;

/// Keys `Browser::key` knows by name, with their Windows virtual key codes; their `code` is
/// their name too.
const NAMED_KEYS: &[(&str, u32)] = &[
    ("Backspace", 8),
    ("Tab", 9),
    ("Enter", 13),
    ("Escape", 27),
    ("PageUp", 33),
    ("PageDown", 34),
    ("End", 35),
    ("Home", 36),
    ("ArrowLeft", 37),
    ("ArrowUp", 38),
    ("ArrowRight", 39),
    ("ArrowDown", 40),
    ("Delete", 46),
];

/// Punctuation keys of a US layout: character, `code`, Windows virtual key code.
const PUNCTUATION_KEYS: &[(char, &str, u32)] = &[
    (' ', "Space", 32),
    (';', "Semicolon", 186),
    ('=', "Equal", 187),
    (',', "Comma", 188),
    ('-', "Minus", 189),
    ('.', "Period", 190),
    ('/', "Slash", 191),
    ('`', "Backquote", 192),
    ('[', "BracketLeft", 219),
    ('\\', "Backslash", 220),
    (']', "BracketRight", 221),
    ('\'', "Quote", 222),
];

/// What `Input.dispatchKeyEvent` needs to know about one key on a US layout.
pub(super) struct KeySpec {
    pub key: String,
    pub code: String,
    pub key_code: u32,
    /// What it types; empty for keys that type nothing (and for chords with Ctrl, Alt, Meta).
    pub text: String,
}

impl KeySpec {
    pub fn of(name: &str, modifiers: u32) -> KeySpec {
        let chord = modifiers & (ALT | CTRL | META) != 0;
        if let Some(&(_, key_code)) = NAMED_KEYS.iter().find(|(n, _)| *n == name) {
            return KeySpec {
                key: name.to_owned(),
                code: name.to_owned(),
                key_code,
                // Chromium types a newline for "\r", as for a real Enter.
                text: if name == "Enter" && !chord { "\r" } else { "" }.to_owned(),
            };
        }
        let mut chars = name.chars();
        let (Some(c), None) = (chars.next(), chars.next()) else {
            panic!("key: unknown key name {name:?}");
        };
        let c = if modifiers & SHIFT != 0 {
            c.to_ascii_uppercase()
        } else {
            c
        };
        let upper = c.to_ascii_uppercase();
        let (code, key_code) = match c {
            'a'..='z' | 'A'..='Z' => (format!("Key{upper}"), upper as u32),
            '0'..='9' => (format!("Digit{c}"), c as u32),
            // Not on the layout (é…): still a key event with this `key`, as from an IME.
            _ => PUNCTUATION_KEYS
                .iter()
                .find(|(p, _, _)| *p == c)
                .map_or((String::new(), 0), |&(_, code, key_code)| {
                    (code.to_owned(), key_code)
                }),
        };
        KeySpec {
            key: c.to_string(),
            code,
            key_code,
            text: if chord { String::new() } else { c.to_string() },
        }
    }
}

#[test]
fn browser_runs_a_page() {
    let browser = Browser::launch();
    let page = "<!doctype html><meta charset=utf-8><textarea id=t></textarea><script>\
        window.keys = [];\
        document.getElementById('t').addEventListener('keydown', e => \
            window.keys.push([e.key, e.ctrlKey]));\
        </script>";
    browser.goto(&format!("data:text/html,{}", percent_encode(page)));
    browser.eval("document.getElementById('t').focus()");
    browser.insert_text("héllo");
    browser.key("Enter", 0);
    browser.key("c", CTRL);
    browser.key("x", 0);
    browser.key("Backspace", 0);
    // Input.dispatchKeyEvent answers once the page has handled the event.
    assert_eq!(
        browser.eval("document.getElementById('t').value"),
        "héllo\n"
    );
    assert_eq!(
        browser.eval("window.keys"),
        json!([
            ["Enter", false],
            ["c", true],
            ["x", false],
            ["Backspace", false]
        ])
    );
    assert_eq!(browser.errors(), Vec::<String>::new());

    browser.eval("setTimeout(() => { throw new Error('boom from the page') }, 0)");
    browser.wait_event("the page's exception", 0, |e| {
        e["method"] == "Runtime.exceptionThrown"
    });
    let errors = browser.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("boom from the page"), "{errors:?}");
}

/// Just enough percent-encoding for a `data:text/html,` URL.
fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~=;:/()[]'<>!,".contains(&byte) {
            out.push(byte as char);
        } else {
            out += &format!("%{byte:02X}");
        }
    }
    out
}
