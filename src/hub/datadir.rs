//! The hub's data directory as one owned resource: created private (0700) when it is new,
//! and a warning when an existing one is open to other users.
//!
//! It never changes the permissions of a directory it did not create: an operator who opened
//! it on purpose is told, not overruled.

use anyhow::{Context, Result};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// An open data directory.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
}

impl DataDir {
    /// Creates `path` (mode 0700) if needed, and warns if others may enter it.
    pub fn open(path: &Path) -> Result<DataDir> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .with_context(|| format!("creating data directory {}", path.display()))?;
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
        Ok(DataDir {
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
