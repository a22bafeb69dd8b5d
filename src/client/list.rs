//! `xn -l [--json] [--state S] [--label L] [--name N] [--group G] [--owner O]`: the jobs the
//! hub knows (that this token may see), as a table or as JSON. The filters are applied by the
//! hub.

use crate::http::{query_escape, HubUrl};
use crate::wire::{JobId, JobRecord, JobSpec, JobState};
use anyhow::Result;
use hyper::Method;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::io::{BufWriter, Write};

/// Which jobs to list; every filter given must match.
#[derive(Default, Debug, Clone)]
pub struct Filters {
    pub state: Option<String>,
    pub labels: Vec<String>,
    pub name: Option<String>,
    pub group: Option<String>,
    pub owner: Option<String>,
}

impl Filters {
    fn query(&self) -> String {
        let mut q = Vec::new();
        if let Some(s) = &self.state {
            q.push(format!("state={}", query_escape(s)));
        }
        if !self.labels.is_empty() {
            q.push(format!("label={}", query_escape(&self.labels.join(","))));
        }
        if let Some(n) = &self.name {
            q.push(format!("name={}", query_escape(n)));
        }
        if let Some(g) = &self.group {
            q.push(format!("group={}", query_escape(g)));
        }
        if let Some(o) = &self.owner {
            q.push(format!("owner={}", query_escape(o)));
        }
        if q.is_empty() {
            String::new()
        } else {
            format!("?{}", q.join("&"))
        }
    }
}

pub async fn run(hub: &HubUrl, json: bool, filters: &Filters) -> Result<i32> {
    let path = format!("/api/v1/jobs{}", filters.query());
    let body = hub.call_raw(Method::GET, &path, None).await?;
    // Written to a buffer, as bytes, so a closed pipe (`| head`) is an io::Error, which is no
    // error; and 100,000 rows are not 100,000 writes.
    let mut out = BufWriter::with_capacity(64 << 10, std::io::stdout().lock());
    if json {
        let jobs: Vec<JobRecord> = hub.parse_answer(&body)?;
        let mut text = serde_json::to_vec_pretty(&jobs)?;
        text.push(b'\n');
        out.write_all(&text)?;
        out.flush()?;
        return Ok(0);
    }
    let jobs: Vec<Row> = hub.parse_answer(&body)?;
    let now = crate::hub::now_ms();
    writeln!(
        out,
        "{:>6}  {:<9}  {:>4}  {:<12}  {:>6}  {:<12}  COMMAND",
        "ID", "STATE", "EXIT", "SLAVE", "AGE", "NAME"
    )?;
    for j in &jobs {
        let exit = match (j.exit_code, j.signal) {
            (Some(c), _) => c.to_string(),
            (None, Some(s)) => format!("s{s}"),
            _ => "-".into(),
        };
        // A queued job that no connected slave can take says why.
        let why = match (&j.reason, j.state) {
            (Some(r), JobState::Queued) => format!("  [{}]", r.0),
            _ => String::new(),
        };
        let name = j.name.as_ref().or(j.group.as_ref()).map_or("-", |t| &t.0);
        let command = j.command();
        let command = match command.contains('\n') {
            true => Cow::Owned(command.replace('\n', " ")),
            false => command,
        };
        writeln!(
            out,
            "{:>6}  {:<9}  {:>4}  {:<12}  {:>6}  {:<12}  {}{why}",
            j.id,
            j.state.as_str(),
            exit,
            truncate(j.slave.as_ref().map_or("-", |t| &t.0), 12),
            age(now.saturating_sub(j.created_ms)),
            truncate(name, 12),
            truncate(&command, 60),
        )?;
    }
    out.flush()?;
    Ok(0)
}

/// What the table shows of a job (a [`JobRecord`] without what it does not print), its text
/// borrowed from the hub's answer: parsing whole records was most of `xn -l`'s time.
#[derive(Deserialize)]
struct Row<'a> {
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

fn truncate(s: &str, max: usize) -> Cow<'_, str> {
    if s.chars().count() <= max {
        Cow::Borrowed(s)
    } else {
        let cut: String = s.chars().take(max - 1).collect();
        Cow::Owned(format!("{cut}…"))
    }
}

/// A short human age: 42s, 5m, 3h, 2d.
fn age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::Row;
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

    #[test]
    fn ages_and_truncation() {
        assert_eq!(super::age(59_999), "59s");
        assert_eq!(super::age(60_000), "1m");
        assert_eq!(super::age(7_200_000), "2h");
        assert_eq!(super::truncate("abcdef", 4), "abc…");
        assert_eq!(super::truncate("abc", 4), "abc");
    }
}
