//! `xn -l [--json] [--state S] [--label L] [--name N] [--group G] [--owner O]`: the jobs the
//! hub knows (that this token may see), as a table or as JSON. The filters are applied by the
//! hub.

use crate::http::{query_escape, HubUrl};
use crate::wire::{JobRecord, JobState};
use anyhow::Result;
use hyper::Method;
use std::io::Write;

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
    let jobs: Vec<JobRecord> = hub.call::<(), _>(Method::GET, &path, None).await?;
    let mut out = std::io::stdout().lock();
    if json {
        // Written as bytes, so a closed pipe (`| head`) is an io::Error, which is no error.
        let mut text = serde_json::to_vec_pretty(&jobs)?;
        text.push(b'\n');
        out.write_all(&text)?;
        return Ok(0);
    }
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
            (Some(r), JobState::Queued) => format!("  [{r}]"),
            _ => String::new(),
        };
        let name = j.spec.name.as_deref().or(j.group.as_deref()).unwrap_or("-");
        writeln!(
            out,
            "{:>6}  {:<9}  {:>4}  {:<12}  {:>6}  {:<12}  {}{why}",
            j.id,
            j.state.as_str(),
            exit,
            truncate(j.slave.as_deref().unwrap_or("-"), 12),
            age(now.saturating_sub(j.created_ms)),
            truncate(name, 12),
            truncate(&j.spec.display_command().replace('\n', " "), 60),
        )?;
    }
    Ok(0)
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max - 1).collect();
        format!("{cut}…")
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
    #[test]
    fn ages_and_truncation() {
        assert_eq!(super::age(59_999), "59s");
        assert_eq!(super::age(60_000), "1m");
        assert_eq!(super::age(7_200_000), "2h");
        assert_eq!(super::truncate("abcdef", 4), "abc…");
        assert_eq!(super::truncate("abc", 4), "abc");
    }
}
