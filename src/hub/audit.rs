//! The audit log: who made and revoked tokens, who cancelled and deleted jobs, what `--retain`
//! deleted, and which requests were refused for their token. One table, `audit`, in
//! `DATA/jobs.db`: written by the store thread (jobs, refusals), by the token table's
//! connection (in the transaction that changes the token), and by `xnhub token ...` on the
//! hub's machine. Read by `GET /api/v1/audit` (admins only) and `xnhub audit`.
//!
//! The table keeps its newest rows only: every writer deletes what is past the bound after it
//! adds a row. The bound is the running hub's `--audit-rows`, which it writes to the `meta`
//! table at its start, so that `xnhub token ...` holds the table to it too. Refusals are
//! counted rather than written one by one ([`Refusals`]), so a client that keeps trying a bad
//! token cannot flood it.
//!
//! It never records a secret: no token, no job environment, no command line.

mod refusals;
mod rest;

pub use refusals::Refusals;
pub use rest::route;

use super::auth::{Denied, Principal};
use super::store::{Store, DB_FILE};
use crate::wire::{AuditAction, AuditEntry, JobRecord};
use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

/// Rows kept when the hub is not told otherwise (`xnhub --audit-rows`): some 20 MB.
pub const DEFAULT_ROWS: u64 = 100_000;

/// The actor of what `xnhub token ...` does on the hub's machine (a space: no token's name).
pub const HUB_MACHINE: &str = "hub machine";
/// The actor of what the hub does by itself: the first tokens, `--retain`.
pub const HUB: &str = "(hub)";
/// The actor of a request whose token the hub does not know (wrong, or revoked).
pub const UNKNOWN: &str = "(unknown)";

/// Who does something, for the rows it leads to.
#[derive(Clone, Debug)]
pub struct Actor {
    /// A token's name, or [`HUB_MACHINE`] or [`HUB`].
    pub name: String,
    /// The address a request came from.
    pub peer: Option<String>,
}

impl Actor {
    pub fn hub_machine() -> Actor {
        Actor {
            name: HUB_MACHINE.into(),
            peer: None,
        }
    }

    pub fn hub() -> Actor {
        Actor {
            name: HUB.into(),
            peer: None,
        }
    }

    /// A token's holder, making a request from `peer`.
    pub fn of(who: &Principal, peer: String) -> Actor {
        Actor {
            name: who.name.clone(),
            peer: Some(peer),
        }
    }

    /// A row of this actor's, now; its id is the store's to give.
    pub fn did(&self, action: AuditAction, target: String, detail: String) -> AuditEntry {
        AuditEntry {
            id: 0,
            time_ms: crate::hub::now_ms(),
            actor: self.name.clone(),
            action,
            target,
            detail,
            peer: self.peer.clone(),
            count: 1,
        }
    }

    /// A row about a job this actor cancelled or deleted; `rec` is the job as it was before.
    pub fn on_job(&self, action: AuditAction, rec: &JobRecord) -> AuditEntry {
        let owner = rec.owner.as_deref().unwrap_or("nobody");
        let detail = match action {
            AuditAction::JobDeleted => format!("owner {owner}, {}", rec.describe_end()),
            _ => match &rec.slave {
                Some(slave) => format!("owner {owner}, was {} on {slave}", rec.state.as_str()),
                None => format!("owner {owner}, was {}", rec.state.as_str()),
            },
        };
        self.did(action, format!("job {}", rec.id), detail)
    }
}

/// Creates the `audit` table (and `meta`, where its bound is kept) if they are not there.
pub fn create_table(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS audit (
            id INTEGER PRIMARY KEY,
            time_ms INTEGER NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            detail TEXT NOT NULL,
            peer TEXT,
            count INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
    )
}

/// Makes `rows` the table's bound for every writer, and holds the table to it now.
pub fn set_bound(conn: &Connection, rows: u64) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('audit_rows', ?1)
            ON CONFLICT (key) DO UPDATE SET value = ?1",
        params![rows as i64],
    )?;
    prune(conn, rows)
}

/// The bound the last hub set, or [`DEFAULT_ROWS`].
fn bound(conn: &Connection) -> rusqlite::Result<u64> {
    let v: Option<i64> = conn
        .query_row("SELECT value FROM meta WHERE key = 'audit_rows'", [], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(v.map_or(DEFAULT_ROWS, |v| v.max(1) as u64))
}

/// Adds a row (its `id` is ignored: the table gives the next).
pub fn insert(conn: &Connection, e: &AuditEntry) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit (time_ms, actor, action, target, detail, peer, count)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        e.time_ms as i64,
        e.actor,
        e.action.as_str(),
        e.target,
        e.detail,
        e.peer,
        e.count as i64
    ])?;
    Ok(())
}

/// Deletes all but the newest `keep` rows. Ids only grow and rows only go from the bottom, so
/// the newest `keep` are those above the largest id less `keep`.
pub fn prune(conn: &Connection, keep: u64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM audit WHERE id <= (SELECT MAX(id) FROM audit) - ?1")?
        .execute(params![keep.min(i64::MAX as u64) as i64])?;
    Ok(())
}

/// Adds a row and holds the table to the bound the hub set: for writers other than the store
/// (tokens), inside the transaction that does what the row records.
pub fn record(conn: &Connection, e: &AuditEntry) -> rusqlite::Result<()> {
    insert(conn, e)?;
    prune(conn, bound(conn)?)
}

/// The newest `limit` rows with an id below `before` (if given), newest first.
pub fn read(conn: &Connection, limit: u64, before: Option<u64>) -> Result<Vec<AuditEntry>> {
    let mut stmt = conn.prepare(
        "SELECT id, time_ms, actor, action, target, detail, peer, count FROM audit
            WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let before = before.map_or(i64::MAX, |b| b.min(i64::MAX as u64) as i64);
    let limit = limit.min(i64::MAX as u64) as i64;
    let rows = stmt.query_map(params![before, limit], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, Option<String>>(6)?,
            r.get::<_, i64>(7)?,
        ))
    })?;
    let mut v = Vec::new();
    for row in rows {
        let (id, time, actor, action, target, detail, peer, count) = row?;
        // A row of an action only a newer hub knows (a hub downgraded on its data).
        let Some(action) = AuditAction::parse(&action) else {
            tracing::warn!(id, "audit row with an unknown action {action:?} skipped");
            continue;
        };
        v.push(AuditEntry {
            id: id as u64,
            time_ms: time.max(0) as u64,
            actor,
            action,
            target,
            detail,
            peer,
            count: count.max(0) as u64,
        });
    }
    Ok(v)
}

/// Opens `DATA/jobs.db` to read the audit table; `None` if no hub has made one there yet.
pub fn open_to_read(data: &Path) -> Result<Option<Connection>> {
    let path = data.join(DB_FILE);
    let conn = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
        .with_context(|| format!("opening {}", path.display()))?;
    let has: bool = conn
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit'")?
        .exists([])?;
    Ok(has.then_some(conn))
}

/// What the hub records as it runs: rows through the store, and refusals counted first.
pub struct Audit {
    store: Store,
    refusals: Refusals,
}

impl Audit {
    pub fn new(store: Store) -> Audit {
        Audit {
            store,
            refusals: Refusals::default(),
        }
    }

    /// Stores a row and waits for the commit, so that what a request did is in the log by the
    /// time it is answered. A row that cannot be stored is logged; what it records stands.
    pub async fn record(&self, e: AuditEntry) {
        if let Err(err) = self.store.audit(vec![e.clone()]).await {
            tracing::error!(
                actor = %e.actor,
                action = e.action.as_str(),
                target = %e.target,
                "audit row not stored: {err:#}"
            );
        }
    }

    /// A request refused for its token, from `peer`: recorded if it is the first of its
    /// address and token this minute, else counted (see [`Refusals`]). A request with no
    /// token at all is not recorded: it is no attempt to use one.
    pub fn refused(&self, peer: Option<std::net::IpAddr>, target: &str, denied: &Denied) {
        let token = match denied {
            Denied::Missing => return,
            Denied::Invalid => None,
            Denied::Expired { name, .. } => Some(name.as_str()),
        };
        let why = denied.to_string();
        let now = crate::hub::now_ms();
        if let Some(row) = self.refusals.refused(now, peer, token, target, &why) {
            self.store.audit_later(vec![row]);
        }
    }

    /// Stores the rows that sum up the minutes of refusals that are over (all of them when
    /// the hub stops, with `all`).
    pub fn flush_refusals(&self, all: bool) {
        let rows = self.refusals.due(crate::hub::now_ms(), all);
        if !rows.is_empty() {
            self.store.audit_later(rows);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: u64) -> AuditEntry {
        Actor::hub_machine().did(
            AuditAction::TokenCreated,
            format!("t{n}"),
            "role user".into(),
        )
    }

    #[test]
    fn the_table_keeps_the_newest_rows_its_bound_allows_and_reads_newest_first() {
        let conn = Connection::open_in_memory().unwrap();
        create_table(&conn).unwrap();
        // No hub has set a bound: the default holds.
        assert_eq!(bound(&conn).unwrap(), DEFAULT_ROWS);
        set_bound(&conn, 5).unwrap();
        for n in 1..=12 {
            record(&conn, &row(n)).unwrap();
        }
        let rows = read(&conn, 100, None).unwrap();
        let targets: Vec<&str> = rows.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(targets, ["t12", "t11", "t10", "t9", "t8"]);
        assert_eq!(rows[0].actor, HUB_MACHINE);
        // Older rows a page at a time.
        let page = read(&conn, 2, Some(rows[1].id)).unwrap();
        let targets: Vec<&str> = page.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(targets, ["t10", "t9"]);
        // A smaller bound at a hub's start cuts the table at once.
        set_bound(&conn, 2).unwrap();
        assert_eq!(read(&conn, 100, None).unwrap().len(), 2);
    }
}
