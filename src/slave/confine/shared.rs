//! A `--work-dir` that slaves may share: each slave holds a shared lock on its
//! `.xnslave.lock` for as long as it runs. A slave that starts and finds no other holding it
//! is the only one there, so every job directory it finds was left by slaves that are gone
//! (killed, crashed: their jobs cannot be taken back), and it removes them, unless
//! `--keep-work-dirs` asks for them to stay. The default work directory, one per slave pid,
//! needs none of this.

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

const LOCK_FILE: &str = ".xnslave.lock";

/// Takes this slave's place in `root` (see the module's doc); the lock lasts as long as the
/// value. Clears the left job directories first when it is alone there and `!keep`.
pub(super) fn claim(root: &Path, keep: bool) -> Result<Flock<File>> {
    let path = root.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(alone) => {
            if !keep {
                clear_left(root);
            }
            // Shared from now on: slaves that start later see this one.
            alone
                .relock(FlockArg::LockShared)
                .with_context(|| format!("locking {}", path.display()))?;
            alone
        }
        // Another slave runs here: what is in `root` may be its jobs'.
        Err((file, Errno::EWOULDBLOCK)) => Flock::lock(file, FlockArg::LockShared)
            .map_err(|(_, e)| e)
            .with_context(|| format!("locking {}", path.display()))?,
        Err((_, e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    };
    Ok(lock)
}

/// Removes what is in `root/jobs` and `root/tmp`: no live slave uses `root` but this one,
/// which has no job yet.
fn clear_left(root: &Path) {
    for sub in ["jobs", "tmp"] {
        let Ok(entries) = std::fs::read_dir(root.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            tracing::warn!(
                "removing {}, left by a slave that is gone (killed, or crashed)",
                path.display()
            );
            // remove_dir_all does not follow symlinks a job may have left.
            if let Err(e) = std::fs::remove_dir_all(&path) {
                tracing::warn!("removing {}: {e}", path.display());
            }
        }
    }
}
