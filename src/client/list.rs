//! `xn -l [--json] [--limit N | --all] [--state S] [--label L] [--name N] [--group G]
//! [--owner O] [--slave S]`: the jobs the hub knows (that this token may see), as a table or
//! as JSON. The filters and the limit are applied by the hub, which serializes only the jobs
//! shown and says how many matched; the jobs left out are counted on stderr, after the list, so
//! that stdout stays the table or the JSON array alone; so is a note that nothing matched.

mod table;

use super::visible::visible;
use crate::http::{query_escape, HubUrl};
use crate::wire::{JobRecord, TOTAL_COUNT_HEADER};
use anyhow::Result;
use hyper::Method;
use std::io::Write;
pub(super) use table::truncate;
use table::{write_table, Row};

/// Which jobs to list; every filter given must match.
#[derive(Default, Debug, Clone)]
pub struct Filters {
    pub state: Option<String>,
    pub labels: Vec<String>,
    pub name: Option<String>,
    pub group: Option<String>,
    pub owner: Option<String>,
    /// The slave the job was given to.
    pub slave: Option<String>,
}

/// Jobs the table shows without `--limit` or `--all`: the newest 50 (named in `--limit`'s
/// help). A screenful or two of what was run last, which is what a look at the list is for
/// (older jobs are a `--limit`, a filter or `--all` away), and a small answer for the hub
/// however many jobs it keeps. `--json` lists every job unless given `--limit`: programs
/// would rather have every job than a list cut without their asking.
pub const DEFAULT_LIMIT: usize = 50;

/// Parses `--limit N`: a number of jobs, at least 1.
pub(super) fn parse_limit(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1 (--all lists every job)".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

impl Filters {
    /// The note for a list that came back empty: what was asked for, as the flags name it.
    fn none_matched(&self) -> String {
        let flags: Vec<String> = [
            ("--state", self.state.clone()),
            (
                "--label",
                Some(self.labels.join(",")).filter(|l| !l.is_empty()),
            ),
            ("--name", self.name.clone()),
            ("--group", self.group.clone()),
            ("--owner", self.owner.clone()),
            ("--slave", self.slave.clone()),
        ]
        .into_iter()
        .filter_map(|(flag, v)| v.map(|v| format!("{flag} {}", visible(&v))))
        .collect();
        match flags.is_empty() {
            true => "xn: no jobs to list".to_string(),
            false => format!("xn: no job matches {}", flags.join(" ")),
        }
    }

    /// The query string of the filters, and of `last=N` for a limit.
    fn query(&self, limit: Option<usize>) -> String {
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
        if let Some(s) = &self.slave {
            q.push(format!("slave={}", query_escape(s)));
        }
        if let Some(n) = limit {
            q.push(format!("last={n}"));
        }
        if q.is_empty() {
            String::new()
        } else {
            format!("?{}", q.join("&"))
        }
    }
}

/// Lists the jobs that match `filters`, the newest `limit` of them if given.
pub async fn run(hub: &HubUrl, json: bool, filters: &Filters, limit: Option<usize>) -> Result<i32> {
    let path = format!("/api/v1/jobs{}", filters.query(limit));
    let (headers, body) = hub.call_raw_with_headers(Method::GET, &path, None).await?;
    // An older hub does not count: then nothing is said about what it left out.
    let total = headers
        .get(TOTAL_COUNT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let shown = if json {
        let jobs: Vec<JobRecord> = hub.parse_answer(&body)?;
        let mut text = serde_json::to_vec_pretty(&jobs)?;
        text.push(b'\n');
        let mut out = std::io::stdout().lock();
        out.write_all(&text)?;
        out.flush()?;
        jobs.len()
    } else {
        let jobs: Vec<Row> = hub.parse_answer(&body)?;
        write_table(&jobs)?;
        jobs.len()
    };
    if let Some(left) = total.map(|t| t.saturating_sub(shown)).filter(|&n| n > 0) {
        eprintln!("{}", left_out(left));
    } else if shown == 0 && !json {
        // A bare header would leave the reader to guess whether the filter was wrong.
        eprintln!("{}", filters.none_matched());
    }
    Ok(0)
}

/// The note for `left` jobs that matched but were not shown, older than those that were.
fn left_out(left: usize) -> String {
    let jobs = if left == 1 { "job" } else { "jobs" };
    format!(
        "xn: {} older {jobs} not shown (xn -l --limit N, or --all)",
        thousands(left)
    )
}

/// `n` with a comma between groups of three digits: 1,234,567.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() * 4 / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(d);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn jobs_left_out_are_counted_with_thousands_apart() {
        assert_eq!(
            super::left_out(1),
            "xn: 1 older job not shown (xn -l --limit N, or --all)"
        );
        assert!(super::left_out(1234).starts_with("xn: 1,234 older jobs"));
        for (n, text) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (99_950, "99,950"),
            (123_456, "123,456"),
            (1_234_567, "1,234,567"),
        ] {
            assert_eq!(super::thousands(n), text);
        }
    }
}
