//! The hub's data directory as one owned resource: created private (0700) when it is new,
//! a warning when an existing one is open to other users, and an exclusive lock on
//! `DATA/hub.lock` held for as long as the hub runs, so that a second hub on the same
//! directory refuses to start instead of writing the same database (each would take the
//! other's running jobs for orphans and mark them lost).
//!
//! It never changes the permissions of a directory it did not create: an operator who opened
//! it on purpose is told, not overruled. `xnhub token ...` does not take the lock: it edits the
//! token table beside a running hub by design (SQLite arbitrates that).

use anyhow::{bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The lock file's name in the data directory. It holds the pid of the hub that has it.
pub const LOCK_FILE: &str = "hub.lock";

/// An open, locked data directory. Dropping it releases the lock (so does the hub's death).
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    _lock: Flock<File>,
}

/// Where the hub keeps its data when neither `--data` nor `XN_DATA` says:
/// `$XDG_DATA_HOME/execnode`, else `~/.local/share/execnode`.
pub fn default_path() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("execnode"));
    }
    let home = std::env::var_os("HOME").context("neither --data, XDG_DATA_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".local/share/execnode"))
}

/// Creates the data directory `path` (mode 0700) and its parents if need be. A file in its
/// place is named as such: `create` says only "File exists", which reads as no error at all.
pub fn create(path: &Path) -> Result<()> {
    if path.exists() && !path.is_dir() {
        bail!(
            "data directory {} is not a directory (is --data or XN_DATA right?)",
            path.display()
        );
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("creating data directory {}", path.display()))
}

impl DataDir {
    /// Creates `path` (mode 0700) if needed, warns if others may enter it, and locks it.
    /// Fails if another hub holds the lock.
    pub fn open(path: &Path) -> Result<DataDir> {
        create(path)?;
        let mode = std::fs::metadata(path)
            .with_context(|| format!("reading data directory {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                "data directory {} has mode {:o}: other users may read job output and \
                 environments in it; make it private with: chmod 700 {}",
                path.display(),
                mode & 0o7777,
                path.display()
            );
        }
        let lock_path = path.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let pid = match text.trim().parse::<u32>() {
                    Ok(pid) => format!(" (pid {pid})"),
                    Err(_) => String::new(),
                };
                bail!(
                    "another hub is already using {}{pid}: one data directory serves one hub",
                    path.display()
                );
            }
            Err((_, e)) => bail!("locking {}: {e}", lock_path.display()),
        };
        // Only for the message above: the lock is what counts, not the pid.
        let pid = std::process::id();
        let written = lock
            .set_len(0)
            .and_then(|()| lock.rewind())
            .and_then(|()| writeln!(lock, "{pid}"));
        if let Err(e) = written {
            tracing::warn!("writing the hub's pid to {}: {e}", lock_path.display());
        }
        Ok(DataDir {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
