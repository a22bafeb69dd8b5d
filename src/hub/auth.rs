//! Tokens and roles: who is calling, and what they may do.
//!
//! A token is 256 random bits, shown once and stored only as its SHA-256 (table `tokens` in
//! `DATA/jobs.db`). A request presents it as `Authorization: Bearer TOKEN`; its hash is looked
//! up and compared in constant time. Revoking a token cancels every connection opened with it.
//! Changes made by `xnhub token ...` while the hub runs are picked up within a second
//! (SQLite's `data_version` tells when another connection wrote).
//!
//! A slave token may be bound to a slave name (column `slave_name`, added to older databases
//! when they are opened): it may then serve only as that slave, and the name is reserved to
//! the tokens bound to it ([`Auth::admit_slave`]). Unbound tokens serve as any other name.
//!
//! A token may have a lifetime (column `expires_ms`, added likewise): past it the token is
//! refused as expired, its open connections end as a revoked token's do ([`Auth::expire_due`],
//! every second), and it stays listed, and its slave name reserved, until it is revoked.
//!
//! Each token made or revoked is a row of the audit log (`hub::audit`), written in the same
//! transaction as the change, whoever makes it: an admin over REST, `xnhub token ...`, or the
//! hub at its first start.

mod principal;
mod table;

pub use principal::{Ending, Principal};

use super::audit::{self, Actor};
use crate::wire::{AuditAction, NewToken, Role, TokenInfo};
use anyhow::{anyhow, bail, Context, Result};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

/// Why a request was not let in.
#[derive(Debug, thiserror::Error)]
pub enum Denied {
    #[error("a token is required: send Authorization: Bearer TOKEN")]
    Missing,
    #[error("the token is not valid (wrong, or revoked)")]
    Invalid,
    #[error("token {name} expired {ago} ago: ask an admin for a new one")]
    Expired { name: String, ago: String },
}

/// Why a slave's hello was refused for its name.
#[derive(Debug, thiserror::Error)]
pub enum NameRefused {
    #[error("token {token} is bound to slave name {bound:?}: it may not serve as {name:?}")]
    OtherName {
        token: String,
        bound: String,
        name: String,
    },
    #[error("slave name {name:?} is bound to another token: serve as it with a token bound to it")]
    Reserved { name: String },
}

pub struct Auth {
    /// `--no-auth`: everyone is an admin.
    open: Option<Arc<Principal>>,
    db: Mutex<Connection>,
    tokens: RwLock<HashMap<[u8; 32], Arc<Principal>>>,
    data_version: Mutex<i64>,
    /// Told when a slave name gets its first binding: a slave session already serving as that
    /// name with another token takes no new jobs from then on (see `src/hub/slaves.rs`).
    new_binding: tokio::sync::watch::Sender<()>,
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
                let made = auth.create(name, role, None, None, &Actor::hub())?;
                let path = data.join(format!("{name}.token"));
                write_secret(&path, &made.token)?;
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
        let db = table::open(data)?;
        Ok(Auth {
            open: no_auth.then(|| {
                Arc::new(Principal {
                    name: "anonymous".into(),
                    role: Role::Admin,
                    slave_name: None,
                    expires_ms: None,
                    revoked: CancellationToken::new(),
                })
            }),
            db: Mutex::new(db),
            tokens: RwLock::default(),
            data_version: Mutex::new(-1),
            new_binding: tokio::sync::watch::Sender::new(()),
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
        let found = self.find(&h).or_else(|| {
            // A token made by `xnhub token create` a moment ago: look again if the table
            // changed.
            if let Err(e) = self.reload_if_changed() {
                tracing::error!("reloading tokens: {e:#}");
            }
            self.find(&h)
        });
        let p = found.ok_or(Denied::Invalid)?;
        let now = crate::hub::now_ms();
        match p.expires_ms {
            Some(at) if now >= at => Err(Denied::Expired {
                name: p.name.clone(),
                ago: super::age::show_age(Duration::from_millis(now - at)),
            }),
            _ => Ok(p),
        }
    }

    fn find(&self, h: &[u8; 32]) -> Option<Arc<Principal>> {
        let tokens = self.tokens.read().unwrap_or_else(|p| p.into_inner());
        // The map finds a candidate by hash; the final comparison does not leak timing.
        match tokens.get_key_value(h) {
            Some((k, p)) if bool::from(k.ct_eq(h)) => Some(p.clone()),
            _ => None,
        }
    }

    /// Creates a token and returns it; it is not stored anywhere in clear. A `slave` token
    /// may be bound to `slave_name`; with a `lifetime` it expires that long from now. The
    /// audit log says `by` whom.
    pub fn create(
        &self,
        name: &str,
        role: Role,
        slave_name: Option<&str>,
        lifetime: Option<Duration>,
        by: &Actor,
    ) -> Result<NewToken> {
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
        {
            bail!("a token name is 1 to 64 letters, digits or - _ . @");
        }
        if let Some(slave) = slave_name {
            if role != Role::Slave {
                bail!("only a slave token can be bound to a slave name");
            }
            super::slaves::check_name(slave)?;
        }
        let now = crate::hub::now_ms();
        let expires_ms = match lifetime {
            None => None,
            Some(d) => Some(
                u64::try_from(d.as_millis())
                    .ok()
                    .and_then(|ms| now.checked_add(ms))
                    .filter(|&at| i64::try_from(at).is_ok())
                    .ok_or_else(|| anyhow!("the lifetime {d:?} is too long"))?,
            ),
        };
        let token = new_token()?;
        {
            let mut db = self.db();
            let tx = db
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .context("storing the token")?;
            let n = tx
                .execute(
                    "INSERT OR IGNORE INTO tokens (name, role, hash, created_ms, slave_name, expires_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        name,
                        role.as_str(),
                        &hash(&token)[..],
                        now as i64,
                        slave_name,
                        expires_ms.map(|at| at as i64)
                    ],
                )
                .context("storing the token")?;
            if n == 0 {
                bail!("a token named {name:?} exists already");
            }
            let mut detail = format!("role {}", role.as_str());
            if let Some(slave) = slave_name {
                detail += &format!(", bound to slave {slave}");
            }
            detail += &match lifetime {
                Some(d) => format!(", expires in {}", super::age::show_exact(d)),
                None => ", never expires".to_string(),
            };
            let row = by.did(AuditAction::TokenCreated, name.to_string(), detail);
            audit::record(&tx, &row).context("recording the token in the audit log")?;
            tx.commit().context("storing the token")?;
        }
        self.reload()?;
        Ok(NewToken {
            name: name.to_string(),
            role,
            slave_name: slave_name.map(str::to_string),
            expires_ms,
            token,
        })
    }

    pub fn list(&self) -> Result<Vec<TokenInfo>> {
        let db = self.db();
        let mut stmt = db.prepare(
            "SELECT name, role, created_ms, slave_name, expires_ms FROM tokens ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<i64>>(4)?,
            ))
        })?;
        let mut v = Vec::new();
        for row in rows {
            let (name, role, created, slave_name, expires) = row?;
            let role = Role::parse(&role)
                .ok_or_else(|| anyhow!("token {name} has unknown role {role}"))?;
            v.push(TokenInfo {
                name,
                role,
                created_ms: created as u64,
                slave_name,
                expires_ms: expires.map(|at| at.max(0) as u64),
            });
        }
        Ok(v)
    }

    /// Whether `who` may serve as the slave `name`: a bound token only as the name it is
    /// bound to, and a name some token is bound to only with such a token (admin and unbound
    /// slave tokens included). The table is read again first if another process changed it,
    /// so a binding `xnhub token create` made a moment ago already holds. Every name passes
    /// with `--no-auth`.
    ///
    /// On the caller's thread, as [`Auth::check`] does: `PRAGMA data_version` costs
    /// microseconds, and a blocking task per hello started a thread (and a malloc arena) for
    /// each of a burst of slaves dialling in at once, some 12 MB for 10,000.
    pub fn admit_slave(&self, who: &Principal, name: &str) -> Result<()> {
        if self.is_open() {
            return Ok(());
        }
        if let Err(e) = self.reload_if_changed() {
            tracing::error!("reloading tokens: {e:#}");
        }
        Ok(self.admits(who, name)?)
    }

    /// Changes each time a slave name gets its first binding: a session subscribed before
    /// its hello was admitted misses none.
    pub fn new_bindings(&self) -> tokio::sync::watch::Receiver<()> {
        self.new_binding.subscribe()
    }

    /// [`Auth::admit_slave`] on the tokens as last read, without reading the table.
    pub fn admits(&self, who: &Principal, name: &str) -> Result<(), NameRefused> {
        if self.is_open() {
            return Ok(());
        }
        match &who.slave_name {
            Some(bound) if bound != name => Err(NameRefused::OtherName {
                token: who.name.clone(),
                bound: bound.clone(),
                name: name.to_string(),
            }),
            Some(_) => Ok(()),
            None => {
                let tokens = self.tokens.read().unwrap_or_else(|p| p.into_inner());
                if tokens
                    .values()
                    .any(|p| p.slave_name.as_deref() == Some(name))
                {
                    return Err(NameRefused::Reserved {
                        name: name.to_string(),
                    });
                }
                Ok(())
            }
        }
    }

    /// Revokes a token; its open connections end at once. False if there was none. The
    /// audit log says `by` whom.
    pub fn revoke(&self, name: &str, by: &Actor) -> Result<bool> {
        let found = {
            let mut db = self.db();
            let tx = db
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .context("revoking the token")?;
            let role: Option<String> = tx
                .query_row(
                    "DELETE FROM tokens WHERE name = ?1 RETURNING role",
                    params![name],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(role) = &role {
                let row = by.did(
                    AuditAction::TokenRevoked,
                    name.to_string(),
                    format!("role {role}"),
                );
                audit::record(&tx, &row).context("recording the revocation in the audit log")?;
            }
            tx.commit().context("revoking the token")?;
            role.is_some()
        };
        self.reload()?;
        Ok(found)
    }

    /// Ends the connections of tokens whose lifetime is over (once each: a fired `revoked`
    /// stays fired). Every second, from the hub's token loop.
    pub fn expire_due(&self) {
        let now = crate::hub::now_ms();
        let tokens = self.tokens.read().unwrap_or_else(|p| p.into_inner());
        for p in tokens.values() {
            if p.expired(now) && !p.revoked.is_cancelled() {
                tracing::info!(token = %p.name, "token expired: closing its connections");
                p.revoked.cancel();
            }
        }
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
        type Row = (String, String, Vec<u8>, Option<String>, Option<i64>);
        let rows: Vec<Row> = {
            let db = self.db();
            let version: i64 = db.query_row("PRAGMA data_version", [], |r| r.get(0))?;
            *self.data_version.lock().unwrap_or_else(|p| p.into_inner()) = version;
            let mut stmt =
                db.prepare("SELECT name, role, hash, slave_name, expires_ms FROM tokens")?;
            let rows = stmt.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut tokens = self.tokens.write().unwrap_or_else(|p| p.into_inner());
        let bound = |m: &HashMap<[u8; 32], Arc<Principal>>| -> HashSet<String> {
            m.values().filter_map(|p| p.slave_name.clone()).collect()
        };
        let bound_before = bound(&tokens);
        let mut next = HashMap::new();
        for (name, role, h, slave_name, expires) in rows {
            let expires_ms = expires.map(|at: i64| at.max(0) as u64);
            let (Some(role), Ok(h)) = (Role::parse(&role), <[u8; 32]>::try_from(h.as_slice()))
            else {
                tracing::error!("token {name} is damaged in the database; ignored");
                continue;
            };
            // Keep the same principal (and its open connections) for tokens that stay.
            let p = tokens
                .get(&h)
                .filter(|p| {
                    p.name == name
                        && p.role == role
                        && p.slave_name == slave_name
                        && p.expires_ms == expires_ms
                })
                .cloned()
                .unwrap_or_else(|| {
                    let p = Principal {
                        name,
                        role,
                        slave_name,
                        expires_ms,
                        revoked: CancellationToken::new(),
                    };
                    // Expired already (at a hub's start, say): no connection to close, and
                    // nothing for `expire_due` to say.
                    if p.expired(crate::hub::now_ms()) {
                        p.revoked.cancel();
                    }
                    Arc::new(p)
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
        if !bound(&tokens).is_subset(&bound_before) {
            self.new_binding.send_replace(());
        }
        Ok(())
    }
}
