//! Where `xn -a --tail BYTES` starts each output stream: `BYTES` before its end, moved on past
//! the rest of a UTF-8 character when the cut falls inside one, so that the replay does not
//! open with a broken character. The stream is asked for from a few bytes before the cut, to
//! see the character's first byte; those bytes, and at most three after the cut, are never
//! written. Output that is not UTF-8 there (binary data) starts exactly at the cut.

/// The bytes before the cut that are read to find the first byte of a character: a UTF-8
/// character is at most 4 bytes, so at most 3 of them come before the cut.
const LOOKBACK: u64 = 3;

/// One stream's start: which bytes at the beginning of the replay are left out.
#[derive(Debug)]
pub struct TailStart {
    /// The offset the stream is asked for from.
    from: u64,
    cut: u64,
    /// The bytes read before the cut, to find where the character around it starts.
    before: Vec<u8>,
    /// Once the cut is reached: the end of the character it falls in. Continuation bytes up to
    /// there are left out.
    skip_until: Option<u64>,
    done: bool,
}

impl TailStart {
    /// The last `tail` of a stream of `len` bytes (all of it if `tail` is `None` or at least
    /// `len`).
    pub fn new(len: u64, tail: Option<u64>) -> TailStart {
        let cut = tail.map_or(0, |t| len.saturating_sub(t));
        TailStart {
            from: cut.saturating_sub(LOOKBACK),
            cut,
            before: Vec::new(),
            skip_until: None,
            done: cut == 0,
        }
    }

    /// Where to ask the hub to start this stream.
    pub fn from(&self) -> u64 {
        self.from
    }

    /// Nothing is left out any more: a new attempt's output, which starts at 0.
    pub fn whole() -> TailStart {
        TailStart::new(0, None)
    }

    /// How many bytes at the start of `data`, received at stream offset `offset` (the byte
    /// after all received so far), are not to be written.
    pub fn skip(&mut self, offset: u64, data: &[u8]) -> usize {
        if self.done {
            return 0;
        }
        for (n, (at, &b)) in (offset..).zip(data).enumerate() {
            if at < self.cut {
                self.before.push(b);
            } else {
                let until = *self
                    .skip_until
                    .get_or_insert_with(|| char_end(&self.before, self.cut));
                if at >= until || !is_continuation(b) {
                    self.done = true;
                    self.before = Vec::new();
                    return n;
                }
            }
        }
        data.len()
    }
}

fn is_continuation(b: u8) -> bool {
    b & 0xc0 == 0x80
}

/// The end of the character that the bytes `before` (up to `cut`) begin but may not finish:
/// `cut` itself if they end with a whole character, or with no valid start of one.
fn char_end(before: &[u8], cut: u64) -> u64 {
    // The last byte that is not a continuation byte: where the character would start.
    let Some(i) = before.iter().rposition(|&b| !is_continuation(b)) else {
        return cut;
    };
    let len = match before[i] {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        // ASCII, or a byte that starts no character.
        _ => return cut,
    };
    let start = cut - (before.len() - i) as u64;
    (start + len).max(cut)
}

#[cfg(test)]
mod tests {
    use super::TailStart;

    /// What a replay of the last `tail` bytes of `data` writes, fed in chunks of `chunk`.
    fn replay(data: &[u8], tail: u64, chunk: usize) -> Vec<u8> {
        let mut t = TailStart::new(data.len() as u64, Some(tail));
        let mut out = Vec::new();
        let mut at = t.from();
        for piece in data[at as usize..].chunks(chunk) {
            let skip = t.skip(at, piece);
            out.extend_from_slice(&piece[skip..]);
            at += piece.len() as u64;
        }
        out
    }

    #[test]
    fn a_cut_inside_a_character_moves_past_it() {
        let text = "a\u{e9}\u{20ac}\u{1f600}b".repeat(20);
        let data = text.as_bytes();
        for chunk in [1, 2, 5, 4096] {
            for tail in 1..=data.len() as u64 + 2 {
                let out = replay(data, tail, chunk);
                let got = std::str::from_utf8(&out)
                    .unwrap_or_else(|e| panic!("tail {tail}, chunk {chunk}: {e}"));
                assert!(text.ends_with(got), "tail {tail}");
                let tail = tail.min(data.len() as u64) as usize;
                assert!(out.len() <= tail && out.len() + 3 >= tail, "tail {tail}");
            }
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_start_exactly_at_the_cut() {
        let data: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        for tail in [1000, 1001, 1500, 4999] {
            assert_eq!(replay(&data, tail, 7), &data[data.len() - tail as usize..]);
        }
        // A stray continuation byte after an ASCII one is output, not a broken character.
        assert_eq!(replay(b"ab\x80cd", 3, 1), b"\x80cd");
        // Continuation bytes beyond the character's length are not left out.
        assert_eq!(replay(b"x\xc3\xa9\xa9\xa9z", 3, 2), b"\xa9\xa9z");
    }

    #[test]
    fn a_character_still_being_written_is_left_out_as_it_comes() {
        // The stored output ends inside a character: its rest comes live, later.
        let mut t = TailStart::new(3, Some(1));
        assert_eq!(t.from(), 0);
        assert_eq!(t.skip(0, b"a\xe2\x82"), 3);
        assert_eq!(t.skip(3, b"\xac"), 1);
        assert_eq!(t.skip(4, b"ok\xac"), 0);
        // No tail, or a tail longer than the output: everything.
        assert_eq!(TailStart::new(10, None).skip(0, b"\x80"), 0);
        assert_eq!(TailStart::new(3, Some(5)).skip(0, b"\x80"), 0);
    }
}
