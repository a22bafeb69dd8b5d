//! `xn -l [--json]`: the jobs the hub knows, as a table or as JSON.

use crate::http::HubUrl;
use crate::wire::JobRecord;
use anyhow::Result;
use hyper::Method;
use std::io::Write;

pub async fn run(hub: &HubUrl, json: bool) -> Result<i32> {
    let jobs: Vec<JobRecord> = hub.call::<(), _>(Method::GET, "/api/v1/jobs", None).await?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &jobs)?;
        writeln!(out)?;
        return Ok(0);
    }
    let now = crate::hub::now_ms();
    writeln!(
        out,
        "{:>6}  {:<9}  {:>4}  {:<12}  {:>6}  COMMAND",
        "ID", "STATE", "EXIT", "SLAVE", "AGE"
    )?;
    for j in &jobs {
        let exit = match (j.exit_code, j.signal) {
            (Some(c), _) => c.to_string(),
            (None, Some(s)) => format!("s{s}"),
            _ => "-".into(),
        };
        writeln!(
            out,
            "{:>6}  {:<9}  {:>4}  {:<12}  {:>6}  {}",
            j.id,
            j.state.as_str(),
            exit,
            truncate(j.slave.as_deref().unwrap_or("-"), 12),
            age(now.saturating_sub(j.created_ms)),
            truncate(&j.spec.command.replace('\n', " "), 60),
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
