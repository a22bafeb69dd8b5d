//! The local terminal while attached: raw mode that is restored on every way out (normal
//! return, error, panic, signal), and the telnet-style escape key.

use anyhow::{bail, Result};
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether raw mode is on, for the panic hook.
static RAW: AtomicBool = AtomicBool::new(false);

/// Puts the terminal in raw mode until dropped.
pub struct RawMode(());

impl RawMode {
    pub fn enable() -> Result<RawMode> {
        install_panic_hook();
        crossterm::terminal::enable_raw_mode()?;
        RAW.store(true, Ordering::SeqCst);
        Ok(RawMode(()))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore();
    }
}

/// Whether this process put the terminal in raw mode (and has not restored it yet).
pub fn is_raw() -> bool {
    RAW.load(Ordering::SeqCst)
}

/// Prints a note on stderr, with the `\r` that raw mode no longer adds.
pub fn say(msg: &str) {
    if is_raw() {
        eprint!("{msg}\r\n");
    } else {
        eprintln!("{msg}");
    }
}

/// Leaves raw mode if it is on. Safe to call more than once.
pub fn restore() {
    if RAW.swap(false, Ordering::SeqCst) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}

/// Parses `--escape`: `^]` style, a single character, or `none`.
pub fn parse_escape(s: &str) -> Result<Option<u8>> {
    if s == "none" {
        return Ok(None);
    }
    let b = s.as_bytes();
    match b {
        [b'^', c] if (b'@'..=b'_').contains(&c.to_ascii_uppercase()) => {
            Ok(Some(c.to_ascii_uppercase() - b'@'))
        }
        [c] if c.is_ascii() => Ok(Some(*c)),
        _ => bail!("--escape takes a character like ^] or ^A, one ASCII character, or none"),
    }
}

/// How an escape key is written for people: 0x1d is `Ctrl-]`.
pub fn describe_escape(key: u8) -> String {
    if key < 0x20 {
        format!("Ctrl-{}", (key + b'@') as char)
    } else {
        (key as char).to_string()
    }
}

/// What the user's keystrokes mean.
#[derive(Debug, PartialEq, Eq)]
pub enum Key {
    /// Bytes to send to the job.
    Send(Vec<u8>),
    Detach,
    Terminate,
    /// No more input (end of a pipe).
    EndOfInput,
}

/// Splits raw input into bytes for the job and escape commands. The escape key followed by
/// `d` detaches, by `t` terminates, by itself sends it once; followed by anything else, both
/// bytes go to the job.
pub struct Escaper {
    key: Option<u8>,
    pending: bool,
}

impl Escaper {
    pub fn new(key: Option<u8>) -> Escaper {
        Escaper {
            key,
            pending: false,
        }
    }

    pub fn feed(&mut self, input: &[u8]) -> Vec<Key> {
        let Some(esc) = self.key else {
            return vec![Key::Send(input.to_vec())];
        };
        let mut keys = Vec::new();
        let mut buf = Vec::new();
        for &b in input {
            if self.pending {
                self.pending = false;
                match b {
                    b'd' | b'D' => {
                        flush(&mut buf, &mut keys);
                        keys.push(Key::Detach);
                    }
                    b't' | b'T' => {
                        flush(&mut buf, &mut keys);
                        keys.push(Key::Terminate);
                    }
                    _ if b == esc => buf.push(esc),
                    _ => buf.extend([esc, b]),
                }
            } else if b == esc {
                self.pending = true;
            } else {
                buf.push(b);
            }
        }
        flush(&mut buf, &mut keys);
        keys
    }
}

fn flush(buf: &mut Vec<u8>, keys: &mut Vec<Key>) {
    if !buf.is_empty() {
        keys.push(Key::Send(std::mem::take(buf)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences() {
        let mut e = Escaper::new(Some(0x1d));
        assert_eq!(e.feed(b"ls\r"), vec![Key::Send(b"ls\r".to_vec())]);
        assert_eq!(
            e.feed(b"a\x1dd"),
            vec![Key::Send(b"a".to_vec()), Key::Detach]
        );
        assert_eq!(e.feed(b"\x1d"), vec![]);
        assert_eq!(e.feed(b"t"), vec![Key::Terminate]);
        assert_eq!(e.feed(b"\x1d\x1d"), vec![Key::Send(vec![0x1d])]);
        assert_eq!(e.feed(b"\x1dx"), vec![Key::Send(vec![0x1d, b'x'])]);
        let mut none = Escaper::new(None);
        assert_eq!(none.feed(b"\x1dd"), vec![Key::Send(b"\x1dd".to_vec())]);
    }

    #[test]
    fn escape_key_names() {
        assert_eq!(parse_escape("^]").unwrap(), Some(0x1d));
        assert_eq!(parse_escape("^a").unwrap(), Some(1));
        assert_eq!(parse_escape("~").unwrap(), Some(b'~'));
        assert_eq!(parse_escape("none").unwrap(), None);
        assert!(parse_escape("ab").is_err());
        assert_eq!(describe_escape(0x1d), "Ctrl-]");
        assert_eq!(describe_escape(b'~'), "~");
    }
}
