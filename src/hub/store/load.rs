//! Reading the jobs table at start: the columns later releases added (so an older
//! database opens), and every stored job, as [`Loaded`].

use super::Loaded;
use crate::wire::{Attempt, JobId, JobRecord, JobSpec, JobState};
use anyhow::{anyhow, Context, Result};
use rusqlite::Connection;

/// Columns added after the first release, with defaults that describe the old rows.
/// The output lengths are NULL in rows written before they were stored: unknown, so the hub
/// measures the log files of those jobs instead. The terminal size is NULL until a client
/// resizes the job: the spec's size holds until then. `cancel` is NULL unless a cancel was
/// asked for while the job was out with a slave.
const ADDED_COLUMNS: [(&str, &str); 10] = [
    ("owner", "TEXT"),
    ("grp", "TEXT"),
    ("attempt", "INTEGER NOT NULL DEFAULT 1"),
    ("attempts", "TEXT NOT NULL DEFAULT '[]'"),
    ("stdout_len", "INTEGER"),
    ("stderr_len", "INTEGER"),
    ("instance", "INTEGER"),
    ("term_rows", "INTEGER"),
    ("term_cols", "INTEGER"),
    ("cancel", "TEXT"),
];

/// Adds the columns an older database lacks.
pub(super) fn migrate(conn: &Connection) -> Result<()> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('jobs')")?;
    let have: Vec<String> = stmt
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<rusqlite::Result<_>>()?;
    for (name, decl) in ADDED_COLUMNS {
        if !have.iter().any(|h| h == name) {
            conn.execute_batch(&format!("ALTER TABLE jobs ADD COLUMN {name} {decl};"))?;
        }
    }
    Ok(())
}

pub(super) fn load(conn: &Connection, mut each: impl FnMut(Loaded)) -> Result<()> {
    let mut stmt = conn.prepare(
        "SELECT id, state, spec, exit_code, signal, reason, slave, created_ms, started_ms, ended_ms,
            owner, grp, attempt, attempts, stdout_len, stderr_len, instance, term_rows, term_cols,
            cancel
         FROM jobs ORDER BY id",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let id = row.get::<_, i64>(0)? as JobId;
        // Borrowed straight from SQLite's row: no String for the state, spec and attempts.
        let state = row.get_ref(1)?.as_str()?;
        let state = JobState::parse(state)
            .ok_or_else(|| anyhow!("job {id} has an unknown state {state:?}"))?;
        let mut spec: JobSpec = serde_json::from_str(row.get_ref(2)?.as_str()?)
            .with_context(|| format!("job {id} has a bad spec"))?;
        if let (Some(rows), Some(cols)) = (row.get(17)?, row.get(18)?) {
            (spec.rows, spec.cols) = (rows, cols);
        }
        let attempts = row.get_ref(13)?.as_str()?;
        let attempts: Vec<Attempt> = if attempts == "[]" {
            Vec::new()
        } else {
            serde_json::from_str(attempts).with_context(|| format!("job {id} has bad attempts"))?
        };
        let lens = match (
            row.get::<_, Option<i64>>(14)?,
            row.get::<_, Option<i64>>(15)?,
        ) {
            (Some(out), Some(err)) => Some((out as u64, err as u64)),
            _ => None,
        };
        let rec = JobRecord {
            id,
            spec,
            state,
            exit_code: row.get(3)?,
            signal: row.get(4)?,
            reason: row.get(5)?,
            slave: row.get(6)?,
            created_ms: row.get::<_, i64>(7)? as u64,
            started_ms: row.get::<_, Option<i64>>(8)?.map(|v| v as u64),
            ended_ms: row.get::<_, Option<i64>>(9)?.map(|v| v as u64),
            stdout_len: lens.map_or(0, |l| l.0),
            stderr_len: lens.map_or(0, |l| l.1),
            owner: row.get(10)?,
            attempt: row.get::<_, u32>(12)?.max(1),
            attempts,
            group: row.get(11)?,
        };
        each(Loaded {
            rec,
            lens_stored: lens.is_some(),
            instance: row.get::<_, Option<i64>>(16)?.map(|v| v as u64),
            cancel: row.get(19)?,
        });
    }
    Ok(())
}
