//! The slave's proofs at start, in test children through a job's code path, that the
//! confinement it was asked for holds: the job's user can enter a job's work directory, the
//! Landlock sandbox holds there, and a job can have a network namespace of its own. A failure is an error for the
//! operator that says which of the options cannot be met, and why. Never runs a job.

use super::{Confinement, Limits, Place};
use crate::slave::spawn;
use crate::slave::sys::{self, ChildSetup, Ids};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use tokio::process::Command;

impl Confinement {
    /// Runs a test child under the sandbox, as the job user, with the real code path: it must
    /// be able to write in its work directory and must not be able to write in a directory
    /// beside it that file permissions alone would let it write. Before it, a child as the
    /// job user without the sandbox must be able to enter that work directory, so that a
    /// directory on the way closed to that user is told apart from a Landlock that fails.
    pub(super) async fn probe_sandbox(&self) -> Result<()> {
        // The real code path, without the limits (a tight memory limit must not fail the probe).
        let probe = Confinement {
            limits: Limits::default(),
            cgroups: None,
            ..self.clone()
        };
        // Named by our pid: slaves may share a --work-dir.
        let name = format!("sandbox-probe-{}", std::process::id());
        let place = probe
            .place(&name, true)
            .context("creating the probe's directories")?;
        let outside =
            probe.fresh_dir(&self.root.join("tmp").join(format!("{name}-outside")), true)?;
        let proved = match self.check_reachable(&place.work).await {
            Ok(()) => probe.landlock_test(&place, &outside).await,
            Err(e) => Err(e),
        };
        for dir in [Some(&place.work), place.tmp.as_ref(), Some(&outside)]
            .into_iter()
            .flatten()
        {
            let _ = std::fs::remove_dir_all(dir);
        }
        proved
    }

    /// With `--run-as` and no sandbox: proves that the job user can enter a job's work
    /// directory (see [`Confinement::check_reachable`]), so that a directory on the way
    /// closed to that user stops the start rather than fail every job.
    pub(super) async fn probe_work_dir(&self) -> Result<()> {
        let name = format!("work-probe-{}", std::process::id());
        let probe = Confinement {
            cgroups: None,
            ..self.clone()
        };
        let place = probe
            .place(&name, true)
            .context("creating the probe's directories")?;
        let reachable = self.check_reachable(&place.work).await;
        for dir in [Some(&place.work), place.tmp.as_ref()]
            .into_iter()
            .flatten()
        {
            let _ = std::fs::remove_dir_all(dir);
        }
        reachable
    }

    /// The sandboxed test child of [`Confinement::probe_sandbox`], in `place`, with `outside`
    /// the directory it must not be able to write.
    async fn landlock_test(&self, place: &Place, outside: &Path) -> Result<()> {
        let refuse = "refusing to start with --sandbox rather than run jobs unconfined";
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(r#"echo ok > inside && ! { echo no > "$1/f"; } 2>/dev/null && ! [ -e "$1/f" ]"#)
            .arg("sh")
            .arg(outside);
        let status = async {
            let setup = self.setup(&mut cmd, place, None, &BTreeMap::new(), None)?;
            let (pid, _) = spawn::spawn_confined(cmd.as_std(), spawn::ChildStdio::Null, &setup)?;
            spawn::Proc::adopt(pid)?.wait().await
        }
        .await;
        let inside_ok = place.work.join("inside").exists();
        match status {
            Err(e) => bail!("--sandbox: Landlock is not available here: {e}; {refuse}"),
            Ok(st) if !st.success() || !inside_ok => bail!(
                "--sandbox: a test job under Landlock could write outside its work directory, \
                 or not inside it ({st}); {refuse}"
            ),
            Ok(_) => Ok(()),
        }
    }

    /// Proves that a child as the job user (with `--run-as`) can enter the work directory
    /// `work`; if not, an error that names the first directory on the way closed to that
    /// user and what to do, as `job::start` tells of a job's working directory.
    async fn check_reachable(&self, work: &Path) -> Result<()> {
        let Some(user) = &self.switch_to else {
            // The slave's own user made every directory down to it.
            return Ok(());
        };
        let ids = Ids {
            uid: user.uid,
            gid: user.gid,
            groups: user.groups.clone(),
        };
        let (name, root, work) = (user.name.clone(), self.root.clone(), work.to_path_buf());
        tokio::task::spawn_blocking(move || {
            let Err(e) = enter(&ids, &work) else {
                return Ok(());
            };
            let (shown, root) = (work.display(), root.display());
            let why = format!(
                "--run-as {name} --work-dir {root}: a job as user {name} cannot enter its work \
                 directory {shown}: {e}"
            );
            if enter(&ids, Path::new("/")).is_err() {
                // Not the path: no child can become that user at all.
                bail!("{why}; refusing to start");
            }
            // From the root down: the first that fails is closed itself, its parents not.
            let mut on_the_way: Vec<PathBuf> = work.ancestors().map(Path::to_path_buf).collect();
            on_the_way.reverse();
            let closed = on_the_way
                .into_iter()
                .find(|dir| enter(&ids, dir).is_err())
                .unwrap_or(work);
            let closed = closed.display();
            bail!(
                "{why}; {closed} does not let that user through (each directory on the way \
                 must). Open it to that user (chmod o+x {closed}, or give it to a group of \
                 that user's), or give a --work-dir that user can reach; refusing to start"
            )
        })
        .await?
    }
}

/// Whether a test child with `ids` can change to `dir` (a job's child takes the same steps
/// before its exec).
fn enter(ids: &Ids, dir: &Path) -> io::Result<()> {
    sys::test_child(ChildSetup {
        ids: Some(ids.clone()),
        cwd: Some(CString::new(dir.as_os_str().as_bytes())?),
        ..ChildSetup::default()
    })
}

/// Proves in a test child, through a job's code path, that jobs can be put in a network
/// namespace of their own with their loopback up; an error for the operator otherwise.
pub(super) async fn private_network() -> Result<()> {
    let setup = ChildSetup {
        private_network: true,
        ..ChildSetup::default()
    };
    match tokio::task::spawn_blocking(move || sys::test_child(setup)).await? {
        Ok(()) => Ok(()),
        Err(e) => bail!(
            "--no-network: a job's child cannot get a network namespace of its own ({e}); that \
             takes a slave running as root (CAP_SYS_ADMIN). Refusing to start rather than run \
             jobs with the network"
        ),
    }
}
