//! Characters that make text show other than it is: control characters, and the Unicode
//! bidirectional formatting characters that reorder what follows them on screen ("Trojan
//! Source", CVE-2021-42574). One list for both sides: the hub refuses them in the names and
//! labels it keeps ([`has_hidden_controls`]), and xn writes them out when it prints text from
//! the hub (`client::visible`). Nothing here reads or writes anything.

/// A bidirectional formatting character: the embeddings and overrides (U+202A–U+202E), the
/// isolates (U+2066–U+2069) and the marks (U+200E LRM, U+200F RLM, U+061C ALM). Rust's
/// `char::is_control` knows none of them (they are format characters, not controls).
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
    )
}

/// A character that may not appear in a name or label: a control character (C0 including ESC,
/// DEL, C1) or a bidirectional formatting character.
pub fn is_hidden_control(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

/// Whether `s` has a character that [`is_hidden_control`]: what the hub checks slave names, job
/// names, pinned slave names and labels with.
pub fn has_hidden_controls(s: &str) -> bool {
    s.chars().any(is_hidden_control)
}

#[cfg(test)]
mod tests {
    use super::has_hidden_controls;

    #[test]
    fn controls_and_bidi_formatting_are_hidden_controls() {
        for s in [
            "a\x1bb",
            "\t",
            "\x7f",
            "\u{85}",
            "\u{202a}",
            "\u{202e}",
            "\u{2066}",
            "\u{2069}",
            "\u{200e}",
            "\u{200f}",
            "x\u{061c}",
        ] {
            assert!(has_hidden_controls(s), "{s:?}");
        }
        // Letters of right-to-left scripts, other format characters and plain text are fine.
        for s in [
            "box-1",
            "\u{5d0}\u{5d1}",
            "\u{627}",
            "\u{200d}",
            "\u{e9}t\u{e9}",
            "\u{2014}",
        ] {
            assert!(!has_hidden_controls(s), "{s:?}");
        }
    }
}
