//! The token table in `DATA/jobs.db`: made where it is missing, with the columns later
//! releases added (and the audit table beside it, which records every change to it).

use super::super::audit;
use super::super::store::DB_FILE;
use anyhow::{Context, Result};
use rusqlite::Connection;
use std::path::Path;

/// Opens the token table (creating it) in `DATA/jobs.db`.
pub fn open(data: &Path) -> Result<Connection> {
    let path = data.join(DB_FILE);
    let conn = Connection::open(&path).with_context(|| format!("opening {}", path.display()))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS tokens (
            name TEXT PRIMARY KEY,
            role TEXT NOT NULL,
            hash BLOB NOT NULL UNIQUE,
            created_ms INTEGER NOT NULL
        );",
    )?;
    add_column(&conn, "slave_name", "TEXT")?;
    add_column(&conn, "expires_ms", "INTEGER")?;
    audit::create_table(&conn).context("creating the audit table")?;
    Ok(conn)
}

/// Adds a column (NULL in the rows there are: `slave_name` unbound, `expires_ms` never) to a
/// table made before it existed. Two processes may open an old database at once: the one
/// that loses the race finds the column.
fn add_column(conn: &Connection, column: &str, decl: &str) -> Result<()> {
    let has = |conn: &Connection| -> Result<bool> {
        let mut stmt = conn.prepare("SELECT 1 FROM pragma_table_info('tokens') WHERE name = ?1")?;
        Ok(stmt.exists([column])?)
    };
    if has(conn)? {
        return Ok(());
    }
    if let Err(e) = conn.execute_batch(&format!("ALTER TABLE tokens ADD COLUMN {column} {decl}")) {
        if !has(conn)? {
            return Err(e)
                .with_context(|| format!("adding the {column} column to the tokens table"));
        }
    }
    Ok(())
}
