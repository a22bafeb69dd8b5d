//! `xnhub audit`: the audit log of a hub's data directory, newest first, as a table or as the
//! JSON `GET /api/v1/audit` answers. It only reads (beside a running hub too) and never starts
//! a hub; `--data` is found as for `xnhub token ...` (see `token_cmd`).

use super::audit;
use super::store::DB_FILE;
use crate::client::visible::{cell, pad, visible, width};
use crate::wire::AuditEntry;
use anyhow::{anyhow, Result};
use clap::Args;
use std::path::{Path, PathBuf};

/// Show the hub's audit log, newest first (works while the hub runs)
///
/// One row per token created or revoked, job cancelled or deleted, `--retain` sweep that
/// deleted jobs, and for requests refused for a wrong, revoked or expired token: the first
/// from an address (and token) at once, then one a minute counting the rest. `hub machine` is
/// `xnhub token ...` on this machine, `(hub)` the hub itself, `(unknown)` a token the hub does
/// not know. The hub keeps the newest rows only (`xnhub --audit-rows`).
#[derive(Args)]
pub struct AuditArgs {
    /// The hub's data directory (may also come before `audit`) [default: XN_DATA, else
    /// $XDG_DATA_HOME/execnode, else ~/.local/share/execnode]
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Show the newest N rows
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: u64,
    /// Print the rows as a JSON array, as GET /api/v1/audit answers them
    #[arg(long)]
    pub json: bool,
}

/// Runs `xnhub audit` on the data directory `data`.
pub fn run(args: &AuditArgs, data: &Path) -> Result<()> {
    if !data.join(DB_FILE).exists() {
        // Most likely a wrong --data or XN_DATA: an error, not an empty answer.
        return Err(anyhow!(
            "no hub data in {} (no {DB_FILE}): no audit log to show (is --data or XN_DATA right?)",
            data.display()
        ));
    }
    let rows = match audit::open_to_read(data)? {
        Some(conn) => audit::read(&conn, args.limit, None)?,
        None => Vec::new(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        eprintln!("the audit log in {} is empty", data.display());
        return Ok(());
    }
    print!("{}", table(&rows));
    Ok(())
}

/// The rows as a table: TIME (UTC), ACTOR, ACTION, TARGET, PEER, DETAIL, every cell made
/// harmless for a terminal (a request's path comes from anyone who can reach the hub).
fn table(rows: &[AuditEntry]) -> String {
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                utc(r.time_ms),
                cell(&r.actor).into_owned(),
                r.action.as_str().to_string(),
                cell(&r.target).into_owned(),
                r.peer
                    .as_deref()
                    .map_or("-".into(), |p| cell(p).into_owned()),
                visible(&r.detail).into_owned(),
            ]
        })
        .collect();
    let head = ["TIME", "ACTOR", "ACTION", "TARGET", "PEER", "DETAIL"];
    let mut widths = head.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(c));
        }
    }
    let mut out = String::new();
    let mut line = |row: [&str; 6]| {
        let mut l = String::new();
        for (i, c) in row.iter().enumerate() {
            if i == 5 {
                l += c;
            } else {
                l += &pad(c, widths[i]);
                l += "  ";
            }
        }
        out += l.trim_end();
        out.push('\n');
    };
    line(head);
    for row in &cells {
        line([&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]]);
    }
    out
}

/// A time (ms since the epoch) as `2025-06-01 12:34:56Z`.
fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil(days as i64);
    let (h, min, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
    format!("{y:04}-{m:02}-{d:02} {h:02}:{min:02}:{s:02}Z")
}

/// The proleptic Gregorian date `days` after 1970-01-01 (by eras of 400 years, 146,097 days).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::AuditAction;

    #[test]
    fn times_are_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00Z");
        assert_eq!(utc(1_709_251_199_999), "2024-02-29 23:59:59Z");
        assert_eq!(utc(4_102_444_800_000), "2100-01-01 00:00:00Z");
    }

    #[test]
    fn the_table_lines_up_and_shows_no_control_character() {
        let row = |actor: &str, target: &str, peer: Option<&str>| AuditEntry {
            id: 1,
            time_ms: 0,
            actor: actor.into(),
            action: AuditAction::Refused,
            target: target.into(),
            detail: "why".into(),
            peer: peer.map(Into::into),
            count: 1,
        };
        let t = table(&[
            row("(unknown)", "GET /\x1b[2J", Some("10.0.0.1")),
            row("hub machine", "x", None),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(!t.contains('\x1b'), "{t}");
        assert!(lines[1].contains("GET /\\e[2J"), "{t}");
        assert!(lines[2].contains("\"hub machine\""), "{t}");
        let at = |l: &str| l.find("refused").unwrap();
        assert_eq!(at(lines[1]), at(lines[2]), "{t}");
        assert!(lines[2].contains(" -  "), "no peer: {t}");
        // A name of double-width characters takes the columns it shows in.
        let t = table(&[row("名前", "x", None), row("ab", "y", None)]);
        let lines: Vec<&str> = t.lines().collect();
        let col = |l: &str| crate::client::visible::width(&l[..l.find("refused").unwrap()]);
        assert_eq!(col(lines[1]), col(lines[2]), "{t}");
    }
}
