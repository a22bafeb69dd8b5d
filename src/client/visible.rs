//! Text from the hub made harmless to print on a terminal. Job commands, names, reasons, slave
//! names and labels come from other users (a command someone submitted reaches the terminal of
//! whoever lists jobs), and the hub's messages quote them, so xn never prints their control
//! characters raw: not in the tables, its notes (`[hub: ...]`, how a job ended, why it
//! waits), nor its error line (`xn: ...`). An escape sequence in them would drive the reader's
//! terminal. JSON output (`--json`) and job output (`-f`, `--wait`, `-a`) are never changed
//! here: they are the bytes as they are. A table's cell is also quoted when it holds a space
//! ([`cell`]), so that a name stays one column, and padded and cut by the columns a terminal
//! gives it ([`width`]), so that a name in a double-width script keeps the table aligned.

use crate::text::{is_bidi_control, is_hidden_control};
use std::borrow::Cow;
use std::fmt::Write;
use unicode_width::UnicodeWidthChar;

/// `s` with every control character (C0 including ESC, DEL, C1, and the bidirectional
/// formatting characters of [`crate::text`]) written out visibly: `\e`, `\t`, `\r`, `\n`, or
/// `\xNN` / `\u{NNNN}` with its code point. Borrowed when there is none (the usual case).
pub fn visible(s: &str) -> Cow<'_, str> {
    // A cheap look at the bytes first: C1 characters are U+0080..U+009F, encoded 0xC2 0x80..0x9F;
    // the bidirectional controls start with 0xE2, but for U+061C (0xD8 0x9C).
    let maybe = s
        .bytes()
        .any(|b| b < 0x20 || b == 0x7f || b == 0xc2 || b == 0xe2 || b == 0xd8);
    if !maybe || !s.chars().any(is_hidden_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\x1b' => out.push_str("\\e"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            // Writing to a String cannot fail.
            c if c.is_control() => write!(out, "\\x{:02x}", c as u32).expect("String write"),
            c if is_bidi_control(c) => {
                write!(out, "\\u{{{:04x}}}", c as u32).expect("String write")
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `s` as one cell of a table whose columns are set apart by spaces: as [`visible`] writes it,
/// and in double quotes when it would not read as one cell otherwise: when it holds whitespace
/// (a slave or job name may: `"build box"`), is empty, is `-` (what a table shows for none),
/// or starts with a quote. Inside the quotes `"` and `\` are escaped as `\"` and `\\`, so a
/// quoted cell reads back as one word. Borrowed when no quotes are needed.
pub fn cell(s: &str) -> Cow<'_, str> {
    if !needs_quotes(s) {
        return visible(s);
    }
    let mut out = String::with_capacity(s.len() + 4);
    out.push('"');
    for c in s.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Cow::Owned(visible(&out).into_owned())
}

/// Whether [`cell`] must quote `s`. Controls do not count: [`visible`] writes them out.
fn needs_quotes(s: &str) -> bool {
    // A look at the bytes first: plain ASCII without a space or a quote is the usual case.
    if !s.is_empty() && s != "-" && s.bytes().all(|b| b > b' ' && b < 0x7f && b != b'"') {
        return false;
    }
    s.is_empty()
        || s == "-"
        || s.starts_with('"')
        || s.chars().any(|c| c.is_whitespace() && !c.is_control())
}

/// The columns a terminal gives `s`: two for a double-width (East Asian wide) character, none
/// for a combining mark, one for others. For text [`visible`] has made printable; a control
/// character counts as none.
pub fn width(s: &str) -> usize {
    if s.is_ascii() {
        return s.len();
    }
    s.chars().map(char_width).sum()
}

fn char_width(c: char) -> usize {
    c.width().unwrap_or(0)
}

/// The longest start of `s` that takes no more than `max` columns, and the columns it takes.
pub fn cut(s: &str, max: usize) -> (&str, usize) {
    let mut used = 0;
    for (at, c) in s.char_indices() {
        let w = char_width(c);
        if used + w > max {
            return (&s[..at], used);
        }
        used += w;
    }
    (s, used)
}

/// `s` padded with spaces to `columns` columns, as `{:<columns}` would pad it if every
/// character took one.
pub fn pad(s: &str, columns: usize) -> String {
    let mut out = String::with_capacity(s.len() + columns);
    out.push_str(s);
    out.extend(std::iter::repeat_n(' ', columns.saturating_sub(width(s))));
    out
}

#[cfg(test)]
mod tests {
    use super::{cell, cut, pad, visible, width};

    #[test]
    fn widths_are_terminal_columns() {
        assert_eq!(width("box-1"), 5);
        assert_eq!(width("s\u{e9}rveur"), 7);
        assert_eq!(width("\u{6784}\u{5efa}\u{673a}"), 6);
        assert_eq!(width("e\u{301}"), 1);
        assert_eq!(pad("\u{6784}\u{5efa}", 6), "\u{6784}\u{5efa}  ");
        assert_eq!(pad("toolong", 3), "toolong");
        // A wide character that does not fit whole is left out.
        assert_eq!(cut("a\u{6784}\u{5efa}", 4), ("a\u{6784}", 3));
        assert_eq!(cut("abc", 9), ("abc", 3));
    }
    use std::borrow::Cow;

    #[test]
    fn a_cell_with_whitespace_is_quoted_and_reads_as_one() {
        for s in ["box-1", "s\u{e9}rveur", "a\"b", "a\\b", "-x"] {
            assert!(matches!(cell(s), Cow::Borrowed(_)), "{s:?}");
        }
        assert_eq!(cell("build box"), "\"build box\"");
        assert_eq!(cell("no\u{a0}break"), "\"no\u{a0}break\"");
        assert_eq!(cell("ideo\u{3000}space"), "\"ideo\u{3000}space\"");
        assert_eq!(cell(""), "\"\"");
        assert_eq!(cell("-"), "\"-\"");
        assert_eq!(cell("\"quoted\""), "\"\\\"quoted\\\"\"");
        assert_eq!(cell("say \"hi\" \\o/"), "\"say \\\"hi\\\" \\\\o/\"");
        // Controls are written out as `visible` does, quoted or not: a tab is no space.
        assert_eq!(cell("a\tb"), "a\\tb");
        assert_eq!(cell("a b\x1b[2J"), "\"a b\\e[2J\"");
    }

    #[test]
    fn control_characters_are_shown_not_sent() {
        assert!(matches!(
            visible("make test \u{e9}t\u{e9} \\e"),
            Cow::Borrowed(_)
        ));
        assert_eq!(visible("echo \x1b[31mRED"), "echo \\e[31mRED");
        assert_eq!(visible("a\tb\r\nc"), "a\\tb\\r\\nc");
        assert_eq!(visible("\x00\x07\x7f"), "\\x00\\x07\\x7f");
        // C1: U+009B is a one-character CSI on some terminals.
        assert_eq!(visible("x\u{9b}31my\u{85}"), "x\\x9b31my\\x85");
        // Characters encoded with a 0xC2 lead byte that are not controls stay.
        assert_eq!(visible("\u{a0}\u{b5}"), "\u{a0}\u{b5}");
        // A right-to-left override would show `rm -rf /` as something else.
        assert_eq!(visible("ls \u{202e}txt.exe"), "ls \\u{202e}txt.exe");
        // The marks too; letters of right-to-left scripts stay.
        assert_eq!(
            visible("a\u{200f}b\u{61c}\u{627}"),
            "a\\u{200f}b\\u{061c}\u{627}"
        );
        assert!(matches!(visible("\u{2014} \u{20ac}"), Cow::Borrowed(_)));
        for s in ["\x1b]0;title\x07", "\u{90}P", "\x1bc"] {
            assert!(!visible(s).chars().any(char::is_control), "{s:?}");
        }
    }
}
