//! The table `xn -l` prints: the rows as the hub's answer gives them (borrowed, not parsed
//! into whole records), written as bytes without `fmt`, with text from the hub made visible.

use crate::client::visible::{cell, cut, visible, width};
use crate::wire::{JobId, JobSpec, JobState};
use anyhow::Result;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::io::{BufWriter, Write};

/// Writes the table of `jobs` to stdout.
pub(super) fn write_table(jobs: &[Row]) -> Result<()> {
    // Written to a buffer, as bytes, so a closed pipe (`| head`) is an io::Error, which is no
    // error; and 100,000 rows are not 100,000 writes.
    let mut out = BufWriter::with_capacity(64 << 10, std::io::stdout().lock());
    let now = crate::hub::now_ms();
    writeln!(
        out,
        "{:>6}  {:<9}  {:>4}  {:<12}  {:>6}  {:<12}  COMMAND",
        "ID", "STATE", "EXIT", "SLAVE", "AGE", "NAME"
    )?;
    let mut line = Vec::with_capacity(256);
    for j in jobs {
        line.clear();
        write_row(&mut line, j, now);
        out.write_all(&line)?;
    }
    out.flush()?;
    Ok(())
}

/// What the table shows of a job (a [`JobRecord`] without what it does not print), its text
/// borrowed from the hub's answer: parsing whole records was most of `xn -l`'s time.
#[derive(Deserialize)]
pub(super) struct Row<'a> {
    id: JobId,
    state: JobState,
    exit_code: Option<i32>,
    signal: Option<i32>,
    #[serde(borrow)]
    reason: Option<Text<'a>>,
    #[serde(borrow)]
    slave: Option<Text<'a>>,
    created_ms: u64,
    // The spec's fields are flattened into the record.
    #[serde(borrow, default)]
    command: Text<'a>,
    #[serde(default)]
    argv: Option<Vec<String>>,
    #[serde(borrow, default)]
    name: Option<Text<'a>>,
    #[serde(borrow, default)]
    group: Option<Text<'a>>,
}

impl Row<'_> {
    /// The command as [`JobSpec::display_command`] shows it.
    fn command(&self) -> Cow<'_, str> {
        match &self.argv {
            Some(argv) if self.command.0.is_empty() => Cow::Owned(
                JobSpec {
                    argv: Some(argv.clone()),
                    ..JobSpec::default()
                }
                .display_command(),
            ),
            _ => Cow::Borrowed(&self.command.0),
        }
    }
}

/// A JSON string, borrowed unless it had escapes. (serde borrows a bare `Cow<str>` field, but
/// not one inside an `Option`.)
#[derive(Default)]
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// One line of the table, as `format!("{:>6}  {:<9}  {:>4}  {:<12}  {:>6}  {:<12}  {}{why}\n")`
/// would write it (the test checks that), without `fmt`'s machinery: it was a fifth of the time
/// of listing 100,000 jobs.
fn write_row(out: &mut Vec<u8>, j: &Row, now: u64) {
    let mut num = Num::default();
    pad_left(out, num.of(j.id), 6);
    out.extend_from_slice(b"  ");
    pad_right(out, j.state.as_str(), 9);
    out.extend_from_slice(b"  ");
    match (j.exit_code, j.signal) {
        (Some(c), _) => pad_left(out, num.of_signed(c), 4),
        (None, Some(s)) => {
            let s = num.of_signed(s);
            out.extend(std::iter::repeat_n(b' ', 3usize.saturating_sub(s.len())));
            out.push(b's');
            out.extend_from_slice(s.as_bytes());
        }
        _ => pad_left(out, "-", 4),
    }
    out.extend_from_slice(b"  ");
    // Text from the hub is shown with its control characters escaped (see `visible`), and a
    // name with a space in quotes, so that it stays one column.
    pad_right(out, &column(j.slave.as_ref(), 12), 12);
    out.extend_from_slice(b"  ");
    let (n, unit) = age(now.saturating_sub(j.created_ms));
    let n = num.of(n);
    out.extend(std::iter::repeat_n(b' ', 5usize.saturating_sub(n.len())));
    out.extend_from_slice(n.as_bytes());
    out.push(unit);
    out.extend_from_slice(b"  ");
    pad_right(out, &column(j.name.as_ref().or(j.group.as_ref()), 12), 12);
    out.extend_from_slice(b"  ");
    // A newline is written out as `\n`, as any control character is: shown as a space, it made
    // `printf '%s\n' x` read as another command.
    out.extend_from_slice(truncate(&visible(&j.command()), 60).as_bytes());
    // A queued job that no connected slave can take says why.
    if let (Some(r), JobState::Queued) = (&j.reason, j.state) {
        out.extend_from_slice(b"  [");
        out.extend_from_slice(visible(&r.0).as_bytes());
        out.push(b']');
    }
    out.push(b'\n');
}

/// `s` right-aligned in `columns` terminal columns (see [`width`]), as `{:>columns}` does when
/// every character takes one.
fn pad_left(out: &mut Vec<u8>, s: &str, columns: usize) {
    out.extend(std::iter::repeat_n(b' ', columns.saturating_sub(width(s))));
    out.extend_from_slice(s.as_bytes());
}

/// `s` left-aligned in `columns` terminal columns, as `{:<columns}` does when every character
/// takes one. A name in a double-width script takes twice its characters.
fn pad_right(out: &mut Vec<u8>, s: &str, columns: usize) {
    out.extend_from_slice(s.as_bytes());
    out.extend(std::iter::repeat_n(b' ', columns.saturating_sub(width(s))));
}

/// A number's decimal digits, without an allocation.
#[derive(Default)]
struct Num([u8; 20]);

impl Num {
    fn of(&mut self, mut n: u64) -> &str {
        let mut at = self.0.len();
        loop {
            at -= 1;
            self.0[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        // Only ASCII digits were written.
        std::str::from_utf8(&self.0[at..]).expect("digits are UTF-8")
    }

    fn of_signed(&mut self, n: i32) -> &str {
        if n >= 0 {
            return self.of(n as u64);
        }
        let len = self.of(n.unsigned_abs() as u64).len();
        let at = self.0.len() - len - 1;
        self.0[at] = b'-';
        std::str::from_utf8(&self.0[at..]).expect("digits are UTF-8")
    }
}

/// A column of at most `max` terminal columns: `-` for none, else the text as a [`cell`], cut
/// short (inside its quotes, when it has them) with an ellipsis.
fn column<'a>(text: Option<&'a Text<'a>>, max: usize) -> Cow<'a, str> {
    let Some(text) = text else {
        return Cow::Borrowed("-");
    };
    match cell(&text.0) {
        // Only a quoted cell starts with a quote (a text that does is quoted).
        Cow::Owned(c) if c.starts_with('"') && width(&c) > max => {
            let (cut, _) = cut(&c, max.saturating_sub(2));
            Cow::Owned(format!("{cut}…\""))
        }
        Cow::Owned(c) => Cow::Owned(truncate(&c, max).into_owned()),
        Cow::Borrowed(c) => truncate(c, max),
    }
}

/// `s` if it takes at most `max` terminal columns, else as much of it as takes `max - 1` and an
/// ellipsis.
pub(in crate::client) fn truncate(s: &str, max: usize) -> Cow<'_, str> {
    // No more bytes than `max` is no more columns either.
    if s.len() <= max || width(s) <= max {
        Cow::Borrowed(s)
    } else {
        let (cut, _) = cut(s, max.saturating_sub(1));
        Cow::Owned(format!("{cut}…"))
    }
}

/// A short human age: (42, s), (5, m), (3, h), (2, d).
fn age(ms: u64) -> (u64, u8) {
    let s = ms / 1000;
    match s {
        0..=59 => (s, b's'),
        60..=3599 => (s / 60, b'm'),
        3600..=86399 => (s / 3600, b'h'),
        _ => (s / 86400, b'd'),
    }
}

#[cfg(test)]
mod tests {
    use super::Row;
    use crate::client::visible::visible;
    use crate::wire::{JobRecord, JobSpec, JobState};

    #[test]
    fn a_row_reads_what_the_table_shows_of_a_record() {
        let mut line = JobRecord::queued(JobSpec::shell("echo \"a\"\nb"), 5);
        line.reason = Some("no slave has \"gpu\"".into());
        line.spec.name = Some("n\u{e9}".into());
        let mut argv = JobRecord::queued(JobSpec::default(), 6);
        argv.spec.argv = Some(vec!["ls".into(), "a b".into()]);
        argv.state = JobState::Exited;
        argv.exit_code = Some(3);
        argv.slave = Some("s1".into());
        argv.group = Some("g2".into());
        let json = serde_json::to_vec(&[&line, &argv]).unwrap();
        let rows: Vec<Row> = serde_json::from_slice(&json).unwrap();
        for (row, rec) in rows.iter().zip([&line, &argv]) {
            assert_eq!(row.id, rec.id);
            assert_eq!(row.state, rec.state);
            assert_eq!((row.exit_code, row.signal), (rec.exit_code, rec.signal));
            assert_eq!(row.reason.as_ref().map(|t| &*t.0), rec.reason.as_deref());
            assert_eq!(row.slave.as_ref().map(|t| &*t.0), rec.slave.as_deref());
            assert_eq!(row.created_ms, rec.created_ms);
            assert_eq!(row.command(), rec.spec.display_command());
            assert_eq!(row.name.as_ref().map(|t| &*t.0), rec.spec.name.as_deref());
            assert_eq!(row.group.as_ref().map(|t| &*t.0), rec.group.as_deref());
        }
    }

    /// The table's line as it was written with `format!`, before `write_row`.
    fn formatted(j: &Row, now: u64) -> String {
        let exit = match (j.exit_code, j.signal) {
            (Some(c), _) => c.to_string(),
            (None, Some(s)) => format!("s{s}"),
            _ => "-".into(),
        };
        let why = match (&j.reason, j.state) {
            (Some(r), JobState::Queued) => format!("  [{}]", visible(&r.0)),
            _ => String::new(),
        };
        let (n, unit) = super::age(now.saturating_sub(j.created_ms));
        format!(
            "{:>6}  {:<9}  {:>4}  {:<12}  {:>6}  {:<12}  {}{why}\n",
            j.id,
            j.state.as_str(),
            exit,
            super::column(j.slave.as_ref(), 12),
            format!("{n}{}", unit as char),
            super::column(j.name.as_ref().or(j.group.as_ref()), 12),
            super::truncate(&visible(&j.command()), 60),
        )
    }

    #[test]
    fn rows_are_written_as_format_wrote_them() {
        let mut recs = Vec::new();
        let texts = [
            "",
            "x",
            "s\u{e9}rveur-\u{e9}t\u{e9}",
            "a-very-long-slave-name-indeed",
            "\n",
            "\x1b[31mred\u{9b}\t\x7f",
        ];
        for (i, text) in texts.into_iter().enumerate() {
            let mut r = JobRecord::queued(JobSpec::shell(format!("echo {text}\nnext")), 0);
            r.id = [0, 7, 123_456, 9_999_999, u64::MAX, 8][i];
            r.slave = Some(text.into());
            r.spec.name = (!text.is_empty()).then(|| text.repeat(3));
            r.reason = Some(format!("why {text}"));
            recs.push(r.clone());
            r.state = JobState::Exited;
            r.exit_code = Some([0, -1, 255, i32::MIN, 7, 1][i]);
            r.group = Some("g1".into());
            recs.push(r.clone());
            r.state = JobState::Signaled;
            r.exit_code = None;
            r.signal = Some([9, 15, -3, 100, i32::MAX, 2][i]);
            r.spec.argv = Some(vec!["ls".into(), text.into()]);
            r.spec.command = String::new();
            recs.push(r.clone());
            r.state = JobState::Failed;
            r.signal = None;
            r.slave = None;
            r.created_ms = 1_000 * [1, 59, 61, 3601, 86_401_000, 5][i];
            recs.push(r);
        }
        let json = serde_json::to_vec(&recs).unwrap();
        let rows: Vec<Row> = serde_json::from_slice(&json).unwrap();
        for now in [0, 5_000, 90_000_000_000] {
            for row in &rows {
                let mut line = Vec::new();
                super::write_row(&mut line, row, now);
                let line = String::from_utf8(line).unwrap();
                assert_eq!(line, formatted(row, now));
                assert!(
                    !line.trim_end_matches('\n').chars().any(char::is_control),
                    "{line:?}"
                );
            }
        }
    }

    /// A newline is written out as a tab is: `printf '%s\n' x` is not `printf '%s ' x`.
    #[test]
    fn a_newline_in_a_command_or_argv_is_written_out() {
        let mut argv = JobRecord::queued(JobSpec::default(), 0);
        argv.spec.argv = Some(vec!["printf".into(), "%s\n".into(), "x".into()]);
        let line = JobRecord::queued(JobSpec::shell("echo a\r\necho\tb"), 0);
        let json = serde_json::to_vec(&[&argv, &line]).unwrap();
        let rows: Vec<Row> = serde_json::from_slice(&json).unwrap();
        let written: Vec<String> = rows
            .iter()
            .map(|row| {
                let mut out = Vec::new();
                super::write_row(&mut out, row, 0);
                String::from_utf8(out).unwrap()
            })
            .collect();
        assert!(
            written[0].ends_with("  printf '%s\\n' x\n"),
            "{:?}",
            written[0]
        );
        assert!(
            written[1].ends_with("  echo a\\r\\necho\\tb\n"),
            "{:?}",
            written[1]
        );
    }

    /// Names in a double-width script take two columns a character: the columns after them
    /// stay aligned, and one too wide is cut to the column's width, not its characters.
    #[test]
    fn double_width_names_keep_the_columns_aligned() {
        use crate::client::visible::width;
        let names = [
            "build",
            "\u{6784}\u{5efa}",
            "\u{6784}\u{5efa}\u{673a}\u{5668}\u{4e00}\u{53f7}\u{673a}",
        ];
        let recs: Vec<JobRecord> = names
            .iter()
            .map(|n| {
                let mut r = JobRecord::queued(JobSpec::shell("true"), 0);
                r.spec.name = Some(n.to_string());
                r.slave = Some(format!("{n}-s"));
                r
            })
            .collect();
        let json = serde_json::to_vec(&recs).unwrap();
        let rows: Vec<Row> = serde_json::from_slice(&json).unwrap();
        for row in &rows {
            let mut out = Vec::new();
            super::write_row(&mut out, row, 0);
            let line = String::from_utf8(out).unwrap();
            let (before, command) = line.rsplit_once("  ").unwrap();
            assert_eq!(command, "true\n");
            // ID, STATE, EXIT, SLAVE, AGE and NAME with the two spaces after each but the last.
            assert_eq!(width(before), 6 + 9 + 4 + 12 + 6 + 12 + 2 * 5, "{line:?}");
        }
        assert_eq!(
            super::truncate(
                "\u{6784}\u{5efa}\u{673a}\u{5668}\u{4e00}\u{53f7}\u{673a}",
                12
            ),
            "\u{6784}\u{5efa}\u{673a}\u{5668}\u{4e00}…"
        );
    }

    #[test]
    fn a_name_with_a_space_is_one_quoted_column_cut_inside_its_quotes() {
        let t = |s: &'static str| super::Text(s.into());
        assert_eq!(super::column(None, 12), "-");
        assert_eq!(super::column(Some(&t("box-1")), 12), "box-1");
        assert_eq!(super::column(Some(&t("two words")), 12), "\"two words\"");
        assert_eq!(
            super::column(Some(&t("a very long name")), 12),
            "\"a very lo…\""
        );
        assert_eq!(super::column(Some(&t("-")), 12), "\"-\"");
        assert_eq!(
            super::column(Some(&t("\x1b[2J\x1b[2J\x1b[2J")), 12),
            "\\e[2J\\e[2J\\…"
        );
    }

    #[test]
    fn ages_and_truncation() {
        assert_eq!(super::age(59_999), (59, b's'));
        assert_eq!(super::age(60_000), (1, b'm'));
        assert_eq!(super::age(7_200_000), (2, b'h'));
        assert_eq!(super::age(86_400_000 * 400), (400, b'd'));
        assert_eq!(super::truncate("abcdef", 4), "abc…");
        assert_eq!(super::truncate("abc", 4), "abc");
    }
}
