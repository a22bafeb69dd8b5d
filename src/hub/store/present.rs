//! Which slave processes are connected, kept in the job database, so that a hub restarting
//! after a crash knows whom to wait for before it hands out the jobs it has as queued: any of
//! them may be running one whose assignment the crash kept from being stored (see
//! `hub::claim` and `hub::state::hold`).
//!
//! One row per slave process (its instance id), with a tag drawn for each of its sessions: a
//! session's end deletes its own row only, never one that a newer session of the same process
//! wrote meanwhile. A clean stop empties the table, as it leaves no assignment unstored.

use rusqlite::{params, Connection, Transaction};

/// A slave process that was connected when the hub stopped (or is connected now).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Present {
    pub instance: u64,
    /// Drawn for the session that wrote the row.
    pub tag: u64,
    pub name: String,
}

/// Creates the table if needed and reads what it holds: the slave processes that were
/// connected when the last hub on this database stopped, if it did not stop cleanly.
pub(super) fn open(conn: &Connection) -> rusqlite::Result<Vec<Present>> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS slaves_present (
            instance INTEGER PRIMARY KEY,
            tag INTEGER NOT NULL,
            name TEXT NOT NULL
        );",
    )?;
    let mut stmt = conn.prepare("SELECT instance, tag, name FROM slaves_present")?;
    let rows = stmt.query_map([], |r| {
        Ok(Present {
            instance: r.get::<_, i64>(0)? as u64,
            tag: r.get::<_, i64>(1)? as u64,
            name: r.get(2)?,
        })
    })?;
    rows.collect()
}

pub(super) fn here(tx: &Transaction<'_>, p: &Present) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO slaves_present (instance, tag, name) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![p.instance as i64, p.tag as i64, p.name])?;
    Ok(())
}

/// Deletes the rows of these (instance, tag) pairs; a row a later session rewrote stays.
pub(super) fn gone(tx: &Transaction<'_>, which: &[(u64, u64)]) -> rusqlite::Result<()> {
    let mut stmt =
        tx.prepare_cached("DELETE FROM slaves_present WHERE instance = ?1 AND tag = ?2")?;
    for &(instance, tag) in which {
        stmt.execute(params![instance as i64, tag as i64])?;
    }
    Ok(())
}

pub(super) fn nobody(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM slaves_present", [])?;
    Ok(())
}
