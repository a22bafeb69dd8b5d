//! The `secrets` table of the job database: keys the hub draws once and keeps, which never
//! leave it (the claim key, see `hub::claim`).

use super::super::claim::KEY_LEN;
use anyhow::{anyhow, Result};
use rusqlite::{params, Connection, OptionalExtension};

/// The claim key from the `secrets` table, drawn and stored there if it has none.
pub fn claim_key(conn: &Connection) -> Result<[u8; KEY_LEN]> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL);",
    )?;
    let stored: Option<Vec<u8>> = conn
        .query_row(
            "SELECT value FROM secrets WHERE name = 'claim_key'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(key) = stored.and_then(|k| <[u8; KEY_LEN]>::try_from(k).ok()) {
        return Ok(key);
    }
    let mut key = [0; KEY_LEN];
    getrandom::fill(&mut key).map_err(|e| anyhow!("no randomness: {e}"))?;
    conn.execute(
        "INSERT OR REPLACE INTO secrets (name, value) VALUES ('claim_key', ?1)",
        params![&key[..]],
    )?;
    Ok(key)
}
