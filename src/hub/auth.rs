//! Tokens and roles: who is calling, and what they may do.
//!
//! A token is 256 random bits, shown once and stored only as its SHA-256 (table `tokens` in
//! `DATA/jobs.db`). A request presents it as `Authorization: Bearer TOKEN`; its hash is looked
//! up and compared in constant time. Revoking a token cancels every connection opened with it.
//! Changes made by `xnhub token ...` while the hub runs are picked up within a second
//! (SQLite's `data_version` tells when another connection wrote).

use crate::wire::{JobRecord, Role, TokenInfo};
use anyhow::{anyhow, bail, Context, Result};
use rusqlite::{params, Connection};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

/// Who made a request.
#[derive(Debug)]
pub struct Principal {
    /// The token's name; jobs submitted with it are owned by this name.
    pub name: String,
    pub role: Role,
    /// Cancelled when the token is revoked: every connection opened with it ends.
    pub revoked: CancellationToken,
}

impl Principal {
    /// Sees every job (admin, viewer) or only its own (user).
    pub fn can_see(&self, job: &JobRecord) -> bool {
        match self.role {
            Role::Admin | Role::Viewer => true,
            Role::User => job.owner.as_deref() == Some(self.name.as_str()),
            Role::Slave => false,
        }
    }

    /// May type into, resize or cancel the job.
    pub fn can_control(&self, job: &JobRecord) -> bool {
        match self.role {
            Role::Admin => true,
            Role::User => self.can_see(job),
            Role::Viewer | Role::Slave => false,
        }
    }

    pub fn can_submit(&self) -> bool {
        matches!(self.role, Role::Admin | Role::User)
    }
}

/// Why a request was not let in.
#[derive(Debug, thiserror::Error)]
pub enum Denied {
    #[error("a token is required: send Authorization: Bearer TOKEN")]
    Missing,
    #[error("the token is not valid (wrong, or revoked)")]
    Invalid,
}

pub struct Auth {
    /// `--no-auth`: everyone is an admin.
    open: Option<Arc<Principal>>,
    db: Mutex<Connection>,
    tokens: RwLock<HashMap<[u8; 32], Arc<Principal>>>,
    data_version: Mutex<i64>,
}

/// A new token: `xn_` and 64 hex digits.
fn new_token() -> Result<String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| anyhow!("no randomness: {e}"))?;
    Ok(format!(
        "xn_{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    ))
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Opens the token table (creating it) in `DATA/jobs.db`.
fn open_db(data: &Path) -> Result<Connection> {
    let path = data.join(super::store::DB_FILE);
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
    Ok(conn)
}

/// Writes a secret to a file only its owner can read.
fn write_secret(path: &Path, secret: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(f, "{secret}")?;
    Ok(())
}

impl Auth {
    /// Opens the tokens of `data`. On a data dir with no token at all, creates `admin` and
    /// `slave` tokens and writes them to `DATA/admin.token` and `DATA/slave.token` (mode 0600).
    pub fn open(data: &Path, no_auth: bool) -> Result<Auth> {
        let auth = Auth::open_table(data, no_auth)?;
        if !no_auth && auth.list()?.is_empty() {
            for (name, role) in [("admin", Role::Admin), ("slave", Role::Slave)] {
                let token = auth.create(name, role)?;
                let path = data.join(format!("{name}.token"));
                write_secret(&path, &token)?;
                tracing::info!("created the {name} token: {}", path.display());
            }
        }
        auth.reload()?;
        Ok(auth)
    }

    /// Opens the tokens of `data` as they are, none created: for `xnhub token ...`, which
    /// lists, adds or revokes exactly what it is told to.
    pub fn open_as_is(data: &Path) -> Result<Auth> {
        let auth = Auth::open_table(data, false)?;
        auth.reload()?;
        Ok(auth)
    }

    fn open_table(data: &Path, no_auth: bool) -> Result<Auth> {
        let db = open_db(data)?;
        Ok(Auth {
            open: no_auth.then(|| {
                Arc::new(Principal {
                    name: "anonymous".into(),
                    role: Role::Admin,
                    revoked: CancellationToken::new(),
                })
            }),
            db: Mutex::new(db),
            tokens: RwLock::default(),
            data_version: Mutex::new(-1),
        })
    }

    /// `--no-auth`: every request is an admin's.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Who presents this `Authorization` header value.
    pub fn check(&self, header: Option<&str>) -> Result<Arc<Principal>, Denied> {
        if let Some(p) = &self.open {
            return Ok(p.clone());
        }
        let token = header
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(Denied::Missing)?;
        let h = hash(token);
        if let Some(p) = self.find(&h) {
            return Ok(p);
        }
        // A token made by `xnhub token create` a moment ago: look again if the table changed.
        if let Err(e) = self.reload_if_changed() {
            tracing::error!("reloading tokens: {e:#}");
        }
        self.find(&h).ok_or(Denied::Invalid)
    }

    fn find(&self, h: &[u8; 32]) -> Option<Arc<Principal>> {
        let tokens = self.tokens.read().unwrap_or_else(|p| p.into_inner());
        // The map finds a candidate by hash; the final comparison does not leak timing.
        match tokens.get_key_value(h) {
            Some((k, p)) if bool::from(k.ct_eq(h)) => Some(p.clone()),
            _ => None,
        }
    }

    /// Creates a token and returns it; it is not stored anywhere in clear.
    pub fn create(&self, name: &str, role: Role) -> Result<String> {
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
        {
            bail!("a token name is 1 to 64 letters, digits or - _ . @");
        }
        let token = new_token()?;
        let n = self
            .db()
            .execute(
                "INSERT OR IGNORE INTO tokens (name, role, hash, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![name, role.as_str(), &hash(&token)[..], crate::hub::now_ms() as i64],
            )
            .context("storing the token")?;
        if n == 0 {
            bail!("a token named {name:?} exists already");
        }
        self.reload()?;
        Ok(token)
    }

    pub fn list(&self) -> Result<Vec<TokenInfo>> {
        let db = self.db();
        let mut stmt = db.prepare("SELECT name, role, created_ms FROM tokens ORDER BY name")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let mut v = Vec::new();
        for row in rows {
            let (name, role, created) = row?;
            let role = Role::parse(&role)
                .ok_or_else(|| anyhow!("token {name} has unknown role {role}"))?;
            v.push(TokenInfo {
                name,
                role,
                created_ms: created as u64,
            });
        }
        Ok(v)
    }

    /// Revokes a token; its open connections end at once. False if there was none.
    pub fn revoke(&self, name: &str) -> Result<bool> {
        let n = self
            .db()
            .execute("DELETE FROM tokens WHERE name = ?1", params![name])?;
        self.reload()?;
        Ok(n > 0)
    }

    /// Re-reads the table if another process changed it.
    pub fn reload_if_changed(&self) -> Result<()> {
        let version: i64 = self
            .db()
            .query_row("PRAGMA data_version", [], |r| r.get(0))?;
        if *self.data_version.lock().unwrap_or_else(|p| p.into_inner()) != version {
            self.reload()?;
        }
        Ok(())
    }

    fn reload(&self) -> Result<()> {
        let rows: Vec<(String, String, Vec<u8>)> = {
            let db = self.db();
            let version: i64 = db.query_row("PRAGMA data_version", [], |r| r.get(0))?;
            *self.data_version.lock().unwrap_or_else(|p| p.into_inner()) = version;
            let mut stmt = db.prepare("SELECT name, role, hash FROM tokens")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut tokens = self.tokens.write().unwrap_or_else(|p| p.into_inner());
        let mut next = HashMap::new();
        for (name, role, h) in rows {
            let (Some(role), Ok(h)) = (Role::parse(&role), <[u8; 32]>::try_from(h.as_slice()))
            else {
                tracing::error!("token {name} is damaged in the database; ignored");
                continue;
            };
            // Keep the same principal (and its open connections) for tokens that stay.
            let p = tokens
                .get(&h)
                .filter(|p| p.name == name && p.role == role)
                .cloned()
                .unwrap_or_else(|| {
                    Arc::new(Principal {
                        name,
                        role,
                        revoked: CancellationToken::new(),
                    })
                });
            next.insert(h, p);
        }
        for (h, p) in tokens.iter() {
            if !next.contains_key(h) {
                tracing::info!(token = %p.name, "token revoked: closing its connections");
                p.revoked.cancel();
            }
        }
        *tokens = next;
        Ok(())
    }
}
