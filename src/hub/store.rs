//! Durable job records: SQLite (WAL) on a thread of its own, with group commit.
//!
//! Every write goes through one queue to the store thread, which takes everything queued at that
//! moment and commits it in one transaction. Callers that must not show a change before it is
//! durable (a new job's id, a terminal state) await the commit; others only queue, and the queue
//! keeps their order (and lets them wait a little for an awaited one to share a transaction
//! with: see [`queue`]). This is the narrow interface a shared database could stand behind.
//!
//! It never holds output bytes: those live in [`super::logs`].

use super::audit;
use super::claim::KEY_LEN;
use crate::wire::{Attempt, AuditEntry, JobId, JobRecord, JobSpec};
use anyhow::{anyhow, Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::oneshot;

mod load;
mod present;
mod queue;
mod secrets;
use load::{load, migrate};
pub use present::Present;
use queue::Queue;

/// Most operations committed in one transaction.
const MAX_BATCH: usize = 4096;

/// The database's file in the data directory: job records, and the token table (`Auth`).
pub const DB_FILE: &str = "jobs.db";

enum Op {
    Insert(Vec<JobRecord>, oneshot::Sender<Result<Vec<JobId>>>),
    Save(Box<JobRecord>, Option<oneshot::Sender<Result<()>>>),
    Sync(oneshot::Sender<()>),
    /// The hub stops: like `Sync`, and then the write-ahead log is folded into the database
    /// file, so that a stopped hub's `jobs.db` holds every record by itself.
    Close(oneshot::Sender<()>),
    /// A record saved at its assignment, with the slave process (instance id) it went to.
    Assigned(Box<JobRecord>, Option<u64>),
    /// Jobs to delete, and the next broadcast group number to remember.
    Delete(Vec<JobId>, u64, oneshot::Sender<Result<()>>),
    /// A slave process connected (see [`present`]).
    Here(Present, oneshot::Sender<Result<()>>),
    /// Sessions of slave processes (instance, tag) that ended.
    Gone(Vec<(u64, u64)>),
    /// No slave process is connected: the hub stops cleanly.
    Nobody,
    /// A job's terminal was given a new size (rows, cols).
    Resized(JobId, u16, u16),
    /// A cancel was asked for a job out with a slave, for this reason.
    Cancel(JobId, String, oneshot::Sender<Result<()>>),
    /// Rows for the audit log (see `hub::audit`), awaited or not.
    Audit(Vec<AuditEntry>, Option<oneshot::Sender<Result<()>>>),
}

/// A job as it was stored.
pub struct Loaded {
    pub rec: JobRecord,
    /// Whether `rec`'s output lengths were stored with it (rows from before the lengths were
    /// stored have none). They are the log files' lengths only if the job had ended for good
    /// ([`JobState::is_final`]): a live job's log grew after its record was written.
    pub lens_stored: bool,
    /// The slave process (instance id) the job was last assigned to, if that slave sent one:
    /// after a crash of the hub, that process's hello says whether the job ever reached it.
    pub instance: Option<u64>,
    /// Why a cancel was asked for, if one was while it was out with a slave.
    pub cancel: Option<String>,
}

/// Handle to the store thread. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    queue: Arc<Handle>,
    /// The data directory the database is in (the audit log is read from it).
    pub dir: PathBuf,
    /// The next broadcast group number recorded when jobs were deleted: groups are numbered
    /// on from it even if every job of the later groups is gone.
    pub next_group: u64,
    /// The key job claims are signed with (see `hub::claim`), drawn on the first start.
    pub claim_key: [u8; KEY_LEN],
    /// The slave processes that were connected when the last hub on this database stopped
    /// without cleaning up (a crash): for the hub to take, once.
    pub present: Vec<Present>,
}

impl Store {
    /// Opens (creating if needed) `DIR/jobs.db`, hands every job in it to `each` in id order
    /// (straight from SQLite's rows, with no list of them all in between) and returns the
    /// store. The audit log keeps its newest `audit_rows` rows from now on.
    pub fn open(dir: &Path, audit_rows: u64, each: impl FnMut(Loaded)) -> Result<Store> {
        let path = dir.join(DB_FILE);
        let conn =
            Connection::open(&path).with_context(|| format!("opening {}", path.display()))?;
        // WAL + NORMAL: a committed transaction survives a crash of the process; the last
        // commits before a power loss may be lost (documented in the README).
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS jobs (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                state TEXT NOT NULL,
                command TEXT NOT NULL,
                spec TEXT NOT NULL,
                exit_code INTEGER,
                signal INTEGER,
                reason TEXT,
                slave TEXT,
                created_ms INTEGER NOT NULL,
                started_ms INTEGER,
                ended_ms INTEGER
            );",
        )
        .context("creating the jobs table")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
        )
        .context("creating the meta table")?;
        migrate(&conn).context("upgrading the jobs table")?;
        audit::create_table(&conn).context("creating the audit table")?;
        audit::set_bound(&conn, audit_rows).context("bounding the audit table")?;
        load(&conn, each).context("loading jobs")?;
        let next_group = conn
            .query_row("SELECT value FROM meta WHERE key = 'next_group'", [], |r| {
                r.get::<_, i64>(0)
            })
            .optional()
            .context("reading the meta table")?
            .map_or(0, |v| v.max(0) as u64);
        let claim_key = secrets::claim_key(&conn).context("reading the claim key")?;
        let present = present::open(&conn).context("reading which slaves were connected")?;
        let queue = Queue::new(MAX_BATCH, queue::LATER);
        let theirs = queue.clone();
        std::thread::Builder::new()
            .name("store".into())
            .spawn(move || store_thread(conn, &theirs, audit_rows))
            .context("starting the store thread")?;
        Ok(Store {
            queue: Arc::new(Handle(queue)),
            dir: dir.to_path_buf(),
            next_group,
            claim_key,
            present,
        })
    }

    /// Stores new jobs in one transaction and returns their ids, in order.
    pub async fn insert(&self, jobs: Vec<JobRecord>) -> Result<Vec<JobId>> {
        let (tx, rx) = oneshot::channel();
        self.send(Op::Insert(jobs, tx))?;
        rx.await.map_err(|_| stopped())?
    }

    /// Stores a record and waits until it is committed.
    pub async fn save(&self, rec: JobRecord) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Op::Save(Box::new(rec), Some(tx)))?;
        rx.await.map_err(|_| stopped())?
    }

    /// Queues a record to be stored with the next batch; order with other writes is kept.
    pub fn save_later(&self, rec: JobRecord) {
        if self.send(Op::Save(Box::new(rec), None)).is_err() {
            tracing::error!("store is stopped; a job update was not saved");
        }
    }

    /// Deletes jobs' records (their ids are never given out again: the table is
    /// AUTOINCREMENT) and remembers `next_group`, so a group number is not given out again
    /// either once its jobs are gone.
    pub async fn delete(&self, ids: Vec<JobId>, next_group: u64) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Op::Delete(ids, next_group, tx))?;
        rx.await.map_err(|_| stopped())?
    }

    /// As [`Store::save_later`], for a job just assigned to slave process `instance` (none
    /// for a slave that sent no instance id): after a crash of the hub, that process's hello
    /// tells whether the assignment reached it.
    pub fn assigned_later(&self, rec: JobRecord, instance: Option<u64>) {
        if self.send(Op::Assigned(Box::new(rec), instance)).is_err() {
            tracing::error!("store is stopped; an assignment was not saved");
        }
    }

    /// Stores that a slave process is connected, and waits until that is committed: a hub
    /// restarting after a crash then waits for it before handing out queued jobs.
    pub async fn slave_here(&self, p: Present) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Op::Here(p, tx))?;
        rx.await.map_err(|_| stopped())?
    }

    /// Queues the end of sessions (instance, tag) of slave processes.
    pub fn slaves_gone_later(&self, which: Vec<(u64, u64)>) {
        if !which.is_empty() && self.send(Op::Gone(which)).is_err() {
            tracing::error!("store is stopped; a slave's leaving was not saved");
        }
    }

    /// Queues that no slave is connected (the hub stops cleanly).
    pub fn no_slaves_later(&self) {
        if self.send(Op::Nobody).is_err() {
            tracing::error!("store is stopped; the slaves' leaving was not saved");
        }
    }

    /// Queues a job's new terminal size: its record then keeps the size its output was drawn
    /// for, not the one it was submitted with.
    pub fn resized_later(&self, id: JobId, rows: u16, cols: u16) {
        if self.send(Op::Resized(id, rows, cols)).is_err() {
            tracing::error!("store is stopped; a job's terminal size was not saved");
        }
    }

    /// Stores that a cancel was asked for job `id` (assigned or running), and why, and waits
    /// for the commit: a hub restarted after a crash still ends the job as `cancelled`.
    pub async fn cancel_asked(&self, id: JobId, why: &str) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Op::Cancel(id, why.to_string(), tx))?;
        rx.await.map_err(|_| stopped())?
    }

    /// Stores rows of the audit log and waits for the commit.
    pub async fn audit(&self, rows: Vec<AuditEntry>) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Op::Audit(rows, Some(tx)))?;
        rx.await.map_err(|_| stopped())?
    }

    /// Queues rows of the audit log to be stored with the next batch.
    pub fn audit_later(&self, rows: Vec<AuditEntry>) {
        if self.send(Op::Audit(rows, None)).is_err() {
            tracing::error!("store is stopped; audit rows were not stored");
        }
    }

    /// Waits until everything queued before this call is committed.
    pub async fn sync(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Op::Sync(tx))?;
        rx.await.map_err(|_| stopped())
    }

    /// Waits for everything queued to be committed, then checkpoints the write-ahead log
    /// into `jobs.db` and truncates it: for a clean stop (operations queued later still work).
    pub async fn close(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Op::Close(tx))?;
        rx.await.map_err(|_| stopped())
    }

    fn send(&self, op: Op) -> Result<()> {
        let awaited = !matches!(
            op,
            Op::Save(_, None)
                | Op::Assigned(..)
                | Op::Gone(_)
                | Op::Nobody
                | Op::Resized(..)
                | Op::Audit(_, None)
        );
        self.queue.0.push(op, awaited).map_err(|_| stopped())
    }
}

/// The queue as the `Store` handles share it: when the last is dropped, the thread commits
/// what is queued and ends.
struct Handle(Arc<Queue<Op>>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.close();
    }
}

fn stopped() -> anyhow::Error {
    anyhow!("the job store has stopped")
}

fn store_thread(mut conn: Connection, queue: &Queue<Op>, audit_rows: u64) {
    // Should the thread die, callers get "stopped" instead of waiting for ever; operations
    // still queued are dropped with it, and their waiters get the same.
    struct Stop<'a>(&'a Queue<Op>);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.close();
            while self.0.take().is_some() {}
        }
    }
    let _stop = Stop(queue);
    while let Some(mut batch) = queue.take() {
        commit(&mut conn, &mut batch, audit_rows);
    }
}

/// Commits a batch in one transaction and answers each operation. If the transaction fails,
/// every operation in it gets the error: nothing is acknowledged that was not stored. Audit
/// rows added are pruned to the newest `audit_rows` in the same transaction.
fn commit(conn: &mut Connection, batch: &mut Vec<Op>, audit_rows: u64) {
    let mut results: Vec<Result<Vec<JobId>, String>> = Vec::with_capacity(batch.len());
    let outcome = (|| -> rusqlite::Result<()> {
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO jobs (state, command, spec, exit_code, signal, reason, slave,
                    created_ms, started_ms, ended_ms, owner, grp, attempt, attempts,
                    stdout_len, stderr_len)
                    VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16)",
            )?;
            let mut update = tx.prepare_cached(&format!("UPDATE jobs SET {SAVED} WHERE id=?1"))?;
            let mut assign = tx.prepare_cached(&format!(
                "UPDATE jobs SET {SAVED}, instance=?13 WHERE id=?1"
            ))?;
            for op in batch.iter() {
                match op {
                    Op::Insert(recs, _) => {
                        let mut ids = Vec::with_capacity(recs.len());
                        for r in recs {
                            insert.execute(params![
                                r.state.as_str(),
                                r.spec.display_command(),
                                spec_json(&r.spec),
                                r.exit_code,
                                r.signal,
                                r.reason,
                                r.slave,
                                r.created_ms as i64,
                                r.started_ms.map(|v| v as i64),
                                r.ended_ms.map(|v| v as i64),
                                r.owner,
                                r.group,
                                r.attempt,
                                attempts_json(&r.attempts),
                                r.stdout_len as i64,
                                r.stderr_len as i64,
                            ])?;
                            ids.push(tx.last_insert_rowid() as JobId);
                        }
                        results.push(Ok(ids));
                    }
                    Op::Save(r, _) => {
                        save(&mut update, r, None)?;
                        results.push(Ok(Vec::new()));
                    }
                    Op::Sync(_) | Op::Close(_) => results.push(Ok(Vec::new())),
                    Op::Assigned(r, instance) => {
                        let instance = instance.map(|i| i as i64);
                        save(&mut assign, r, Some(&instance))?;
                        results.push(Ok(Vec::new()));
                    }
                    Op::Delete(ids, next_group, _) => {
                        let mut delete = tx.prepare_cached("DELETE FROM jobs WHERE id = ?1")?;
                        for id in ids {
                            delete.execute(params![*id as i64])?;
                        }
                        tx.execute(
                            "INSERT INTO meta (key, value) VALUES ('next_group', ?1)
                                ON CONFLICT (key) DO UPDATE SET value = MAX(value, ?1)",
                            params![*next_group as i64],
                        )?;
                        results.push(Ok(Vec::new()));
                    }
                    Op::Here(p, _) => {
                        present::here(&tx, p)?;
                        results.push(Ok(Vec::new()));
                    }
                    Op::Gone(which) => {
                        present::gone(&tx, which)?;
                        results.push(Ok(Vec::new()));
                    }
                    Op::Nobody => {
                        present::nobody(&tx)?;
                        results.push(Ok(Vec::new()));
                    }
                    Op::Resized(id, rows, cols) => {
                        tx.prepare_cached(
                            "UPDATE jobs SET term_rows = ?2, term_cols = ?3 WHERE id = ?1",
                        )?
                        .execute(params![*id as i64, rows, cols])?;
                        results.push(Ok(Vec::new()));
                    }
                    Op::Cancel(id, why, _) => {
                        tx.prepare_cached("UPDATE jobs SET cancel = ?2 WHERE id = ?1")?
                            .execute(params![*id as i64, why])?;
                        results.push(Ok(Vec::new()));
                    }
                    Op::Audit(rows, _) => {
                        for row in rows {
                            audit::insert(&tx, row)?;
                        }
                        results.push(Ok(Vec::new()));
                    }
                }
            }
            if batch.iter().any(|op| matches!(op, Op::Audit(..))) {
                audit::prune(&tx, audit_rows)?;
            }
        }
        tx.commit()
    })();
    if let Err(e) = outcome {
        tracing::error!("store commit failed: {e}");
        results = batch.iter().map(|_| Err(format!("store: {e}"))).collect();
    }
    if batch.iter().any(|op| matches!(op, Op::Close(_))) {
        // Not in a transaction; a reader still in the middle of one keeps part of the log.
        if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);") {
            tracing::warn!("folding the write-ahead log into jobs.db: {e}");
        }
    }
    for (op, res) in batch.drain(..).zip(results) {
        match op {
            Op::Insert(_, reply) => {
                let _ = reply.send(res.map_err(|e| anyhow!(e)));
            }
            Op::Save(_, Some(reply)) => {
                let _ = reply.send(res.map(|_| ()).map_err(|e| anyhow!(e)));
            }
            Op::Save(_, None) => {
                if let Err(e) = res {
                    tracing::error!("job update not saved: {e}");
                }
            }
            Op::Sync(reply) | Op::Close(reply) => {
                let _ = reply.send(());
            }
            Op::Assigned(r, _) => {
                if let Err(e) = res {
                    tracing::error!(job = r.id, "assignment not saved: {e}");
                }
            }
            Op::Delete(_, _, reply)
            | Op::Here(_, reply)
            | Op::Cancel(_, _, reply)
            | Op::Audit(_, Some(reply)) => {
                let _ = reply.send(res.map(|_| ()).map_err(|e| anyhow!(e)));
            }
            Op::Audit(_, None) => {
                if let Err(e) = res {
                    tracing::error!("audit rows not stored: {e}");
                }
            }
            Op::Gone(_) | Op::Nobody => {
                if let Err(e) = res {
                    tracing::error!("which slaves are connected was not saved: {e}");
                }
            }
            Op::Resized(id, ..) => {
                if let Err(e) = res {
                    tracing::error!(job = id, "terminal size not saved: {e}");
                }
            }
        }
    }
}

/// The columns a saved record updates (`?1` is its id).
const SAVED: &str = "state=?2, exit_code=?3, signal=?4, reason=?5, slave=?6, started_ms=?7,
    ended_ms=?8, attempt=?9, attempts=?10, stdout_len=?11, stderr_len=?12";

/// Runs an update of [`SAVED`] for `r`, with `?13` bound to `extra` if given.
fn save(
    stmt: &mut rusqlite::CachedStatement<'_>,
    r: &JobRecord,
    extra: Option<&dyn rusqlite::ToSql>,
) -> rusqlite::Result<usize> {
    let (id, state, attempts) = (r.id as i64, r.state.as_str(), attempts_json(&r.attempts));
    let (started, ended) = (r.started_ms.map(|v| v as i64), r.ended_ms.map(|v| v as i64));
    let (out, err) = (r.stdout_len as i64, r.stderr_len as i64);
    let mut values: Vec<&dyn rusqlite::ToSql> = vec![
        &id,
        &state,
        &r.exit_code,
        &r.signal,
        &r.reason,
        &r.slave,
        &started,
        &ended,
        &r.attempt,
        &attempts,
        &out,
        &err,
    ];
    values.extend(extra);
    stmt.execute(values.as_slice())
}

fn spec_json(spec: &JobSpec) -> String {
    // A JobSpec holds only strings, numbers and string maps: it always serializes.
    serde_json::to_string(spec).expect("job specs serialize")
}

fn attempts_json(attempts: &[Attempt]) -> String {
    // Attempts hold only strings, numbers and states: they always serialize.
    serde_json::to_string(attempts).expect("attempts serialize")
}
