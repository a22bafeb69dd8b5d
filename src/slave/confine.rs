//! How a slave confines its jobs: the user they run as, resource limits, the Landlock sandbox,
//! a cgroup of their own (`cgroup.rs`) and a work directory of their own. [`Confinement::new`]
//! checks the operator's choices once,
//! when the slave starts, and refuses to start rather than run jobs less confined than asked
//! (as root by accident, or without a sandbox the kernel cannot give). For each job,
//! [`Confinement::prepare`] creates its directories and builds everything the child will need
//! before the spawn; the system calls themselves are in `sys.rs`. Never runs a job.

mod probe;
mod shared;

use super::cgroup::{Cgroups, JobCgroup};
use super::sys::{self, ChildSetup, Ids, UserInfo};
use anyhow::{bail, Context, Result};
use nix::fcntl::Flock;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::process::Command;

pub use sys::Rlimits as Limits;

/// What the operator asked for (`xnslave` flags).
#[derive(Clone, Debug, Default)]
pub struct ConfineOptions {
    /// Run jobs as this user (`--run-as`).
    pub run_as: Option<String>,
    /// Jobs may run as root (`--allow-root-jobs`).
    pub allow_root_jobs: bool,
    pub limits: Limits,
    /// Confine jobs with Landlock (`--sandbox`).
    pub sandbox: bool,
    /// Where job directories go (`--work-dir`); a directory of this slave's own in the
    /// system's temp dir when absent.
    pub work_dir: Option<PathBuf>,
    /// Leave job directories behind for inspection (`--keep-work-dirs`).
    pub keep_work_dirs: bool,
    /// Make each job's cgroup in this cgroup v2 directory (`--cgroup`).
    pub cgroup: Option<PathBuf>,
    /// Each job in a network namespace of its own, with only a loopback interface
    /// (`--no-network`).
    pub no_network: bool,
}

/// The checked form of [`ConfineOptions`], shared by every job.
#[derive(Clone, Debug)]
pub struct Confinement {
    /// The user jobs run as, when that is not the slave's own user.
    switch_to: Option<UserInfo>,
    /// The user whose HOME, USER and LOGNAME jobs get (`--run-as`, even the slave's own).
    user: Option<UserInfo>,
    limits: Limits,
    sandbox: bool,
    root: PathBuf,
    /// The root is ours alone (the default one): removed when the slave stops.
    own_root: bool,
    keep: bool,
    cgroups: Option<Cgroups>,
    no_network: bool,
    /// This slave's shared lock on a `--work-dir` (see `confine/shared.rs`), held while it
    /// runs.
    _shared: Option<Arc<Flock<File>>>,
}

/// A job's directories: its work directory, and its private temp dir when sandboxed; and its
/// cgroup with `--cgroup`.
#[derive(Debug)]
pub struct Place {
    pub work: PathBuf,
    pub tmp: Option<PathBuf>,
    pub cgroup: Option<JobCgroup>,
}

/// A size in bytes, as `4096`, `512K`, `512M`, `2G` or `1T` (powers of 1024; `KiB`, `MB`, ...
/// and lower case are taken too).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size (like 4096, 512M or 2G)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("{s:?}: unknown unit (use K, M, G or T)")),
    };
    n.checked_mul(1u64 << shift)
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("{s:?} is out of range"))
}

impl Confinement {
    /// Checks the options against who we are and what the kernel can do, creates the root of
    /// the job directories, and, with `--sandbox`, proves in a test child that Landlock stops
    /// a write outside the work directory. Any shortfall is an error that names the options.
    pub async fn new(opts: &ConfineOptions) -> Result<Confinement> {
        let euid = sys::euid();
        let user = match &opts.run_as {
            None => None,
            Some(name) => Some(
                sys::lookup_user(name)
                    .with_context(|| format!("--run-as {name}: cannot look the user up"))?
                    .with_context(|| format!("--run-as {name}: no such user"))?,
            ),
        };
        match &user {
            None if euid == 0 && !opts.allow_root_jobs => bail!(
                "refusing to run jobs as root: this slave runs as root, so give --run-as USER \
                 to run jobs as that user, or --allow-root-jobs if they really must run as root"
            ),
            Some(u) if u.uid != euid && euid != 0 => bail!(
                "--run-as {}: only a slave running as root can run jobs as another user (this \
                 one runs as uid {euid}); start it as {} instead, or without --run-as",
                u.name,
                u.name
            ),
            Some(u) if u.uid == 0 && !opts.allow_root_jobs => bail!(
                "--run-as {}: that user is root (uid 0); add --allow-root-jobs if jobs really \
                 must run as root",
                u.name
            ),
            _ => {}
        }
        let switch_to = user.clone().filter(|u| u.uid != euid);
        let cgroups = opts.cgroup.as_deref().map(Cgroups::open).transpose()?;
        let (root, own_root) = match &opts.work_dir {
            // Absolute: it becomes jobs' cwd and TMPDIR, which must not depend on theirs.
            Some(d) => (
                std::path::absolute(d).with_context(|| format!("--work-dir {}", d.display()))?,
                false,
            ),
            None => (
                std::env::temp_dir().join(format!("execnode-slave-{}", std::process::id())),
                true,
            ),
        };
        let mut c = Confinement {
            switch_to,
            user,
            limits: opts.limits,
            sandbox: opts.sandbox,
            root,
            own_root,
            keep: opts.keep_work_dirs,
            cgroups,
            no_network: opts.no_network,
            _shared: None,
        };
        if c.no_network {
            probe::private_network().await?;
        }
        c.make_root()?;
        if !c.own_root {
            c._shared = Some(Arc::new(shared::claim(&c.root, c.keep)?));
        }
        if c.sandbox {
            c.probe_sandbox().await.inspect_err(|_| c.remove_root())?;
        } else if c.switch_to.is_some() {
            c.probe_work_dir().await.inspect_err(|_| c.remove_root())?;
        }
        Ok(c)
    }

    /// Where job directories go: `ROOT/jobs/ID` and `ROOT/tmp/ID`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn make_root(&self) -> Result<()> {
        let what = || format!("work directory {}", self.root.display());
        if self.own_root {
            // Named by our pid, so one that exists was left by a dead slave that had this pid
            // (killed, or crashed). Ours to clear if our user made it; anyone else's is refused
            // below (in a sticky /tmp nobody else can swap ours).
            if let Ok(meta) = std::fs::symlink_metadata(&self.root) {
                if meta.is_dir() && meta.uid() == sys::euid() {
                    tracing::info!("removing {}, left by a dead slave", self.root.display());
                    std::fs::remove_dir_all(&self.root).with_context(what)?;
                }
            }
            std::fs::DirBuilder::new()
                .mode(0o711)
                .create(&self.root)
                .with_context(what)?;
        } else {
            if self.root.exists() && !self.root.is_dir() {
                bail!("--work-dir {} is not a directory", self.root.display());
            }
            std::fs::create_dir_all(&self.root).with_context(what)?;
        }
        let meta = std::fs::symlink_metadata(&self.root).with_context(what)?;
        if !meta.is_dir() || meta.uid() != sys::euid() {
            bail!(
                "{}: not a directory owned by this slave's user",
                self.root.display()
            );
        }
        for sub in ["jobs", "tmp"] {
            let dir = self.root.join(sub);
            match std::fs::DirBuilder::new().mode(0o711).create(&dir) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                    return Err(e).with_context(|| format!("creating {}", dir.display()))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Removes the job directory root if it is the slave's own default one.
    pub fn remove_root(&self) {
        if self.own_root && !self.keep {
            if let Err(e) = std::fs::remove_dir_all(&self.root) {
                tracing::warn!("removing {}: {e}", self.root.display());
            }
        }
    }

    /// Creates the directories of job `name`, owned by the job's user, mode 0700, and its
    /// cgroup. An error names what could not be made. What an earlier job of the same name
    /// left (the hub's data was reset) is removed first if `clear_stale`, which may block for
    /// long (a large tree, a cgroup whose processes take their time to die); otherwise the
    /// error is of kind `AlreadyExists` and nothing is left made, so that the caller can try
    /// again off the runtime.
    pub fn place(&self, name: &str, clear_stale: bool) -> io::Result<Place> {
        let dir = |sub: &str| {
            let dir = self.root.join(sub).join(name);
            self.fresh_dir(&dir, clear_stale).map_err(|e| {
                io::Error::new(e.kind(), format!("work directory {}: {e}", dir.display()))
            })
        };
        let work = dir("jobs")?;
        let tmp = if self.sandbox {
            match dir("tmp") {
                Ok(tmp) => Some(tmp),
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&work);
                    return Err(e);
                }
            }
        } else {
            None
        };
        let mut place = Place {
            work,
            tmp,
            cgroup: None,
        };
        if let Some(c) = &self.cgroups {
            match c.create(name, clear_stale) {
                Ok(cg) => place.cgroup = Some(cg),
                Err(e) => {
                    // Just made, so ours to remove, --keep-work-dirs or not.
                    for dir in [Some(&place.work), place.tmp.as_ref()]
                        .into_iter()
                        .flatten()
                    {
                        let _ = std::fs::remove_dir_all(dir);
                    }
                    let dir = c.dir().display();
                    return Err(io::Error::new(e.kind(), format!("cgroup in {dir}: {e}")));
                }
            }
        }
        Ok(place)
    }

    fn fresh_dir(&self, dir: &Path, clear_stale: bool) -> io::Result<PathBuf> {
        let mkdir = || std::fs::DirBuilder::new().mode(0o700).create(dir);
        if let Err(e) = mkdir() {
            if e.kind() != io::ErrorKind::AlreadyExists || !clear_stale {
                return Err(e);
            }
            // Left from an earlier job with the same id (the hub's data was reset), and kept.
            tracing::warn!("removing stale job directory {}", dir.display());
            std::fs::remove_dir_all(dir)?;
            mkdir()?;
        }
        if let Some(u) = &self.switch_to {
            std::os::unix::fs::chown(dir, Some(u.uid), Some(u.gid))?;
        }
        Ok(dir.to_path_buf())
    }

    /// Removes a job's cgroup (killing what is left in it), and its directories unless they
    /// are to be kept. Blocking: call it off the runtime. Everything the job started is gone
    /// by then (its process group, or its cgroup, was killed).
    pub fn clean(&self, place: &Place) {
        if let Some(cg) = &place.cgroup {
            if let Err(e) = cg.kill().and_then(|()| cg.remove()) {
                tracing::warn!("{e}");
            }
        }
        if self.keep {
            return;
        }
        for dir in [Some(&place.work), place.tmp.as_ref()]
            .into_iter()
            .flatten()
        {
            // remove_dir_all does not follow symlinks the job may have left.
            if let Err(e) = std::fs::remove_dir_all(dir) {
                tracing::warn!("removing job directory {}: {e}", dir.display());
            }
        }
    }

    /// Removes a job's cgroup if it is empty and its directories if they are (or are to be
    /// kept), without blocking for long; false if something is left, for
    /// [`Confinement::clean`] to remove.
    pub fn clean_if_empty(&self, place: &Place) -> bool {
        // Killed when the job's main process ended: most often empty by now.
        if place.cgroup.as_ref().is_some_and(|cg| !cg.try_remove()) {
            return false;
        }
        if self.keep {
            return true;
        }
        [Some(&place.work), place.tmp.as_ref()]
            .into_iter()
            .flatten()
            .all(|dir| match std::fs::remove_dir(dir) {
                Ok(()) => true,
                Err(e) => e.kind() == std::io::ErrorKind::NotFound,
            })
    }

    /// Makes the pty's slave side belong to the job's user, as `login` does, so that the job
    /// can open its own terminal again (`/dev/tty`, `tty`).
    pub fn give_tty(&self, tty: impl AsFd) -> io::Result<()> {
        match &self.switch_to {
            Some(u) => std::os::unix::fs::fchown(tty, Some(u.uid), None),
            None => Ok(()),
        }
    }

    /// Applies the confinement to the job's command: its environment (HOME, USER, LOGNAME,
    /// TMPDIR, unless the job sets them); and returns what its child does before exec, for
    /// `spawn::spawn_confined`, with its working directory (its own `cwd`, else its work
    /// directory). `tty` is the path of the job's terminal, which the sandbox lets it write.
    pub fn setup(
        &self,
        cmd: &mut Command,
        place: &Place,
        cwd: Option<&str>,
        env: &BTreeMap<String, String>,
        tty: Option<&Path>,
    ) -> io::Result<ChildSetup> {
        self.environment(cmd, place, env);
        let cwd = self.cwd(place, cwd);
        let landlock = if self.sandbox {
            Some(self.ruleset(place, tty)?)
        } else {
            None
        };
        Ok(ChildSetup {
            rlimits: self.limits,
            ids: self.switch_to.as_ref().map(|u| Ids {
                uid: u.uid,
                gid: u.gid,
                groups: u.groups.clone(),
            }),
            cwd: Some(CString::new(cwd.as_os_str().as_bytes())?),
            landlock,
            cgroup_procs: place.cgroup.as_ref().map(JobCgroup::procs).transpose()?,
            private_network: self.no_network,
        })
    }

    /// Whether a job's child must do more before exec than posix_spawn can (switch user, set
    /// limits, enter the sandbox, its cgroup or its network namespace), so that it needs [`Confinement::setup`] and
    /// `spawn::spawn_confined`; if not, [`Confinement::environment`] and
    /// [`Confinement::cwd`] are all it needs.
    pub fn needs_child_setup(&self) -> bool {
        self.switch_to.is_some()
            || self.limits != Limits::default()
            || self.sandbox
            || self.cgroups.is_some()
            || self.no_network
    }

    /// Whether jobs run off the network (`--no-network`).
    pub fn no_network(&self) -> bool {
        self.no_network
    }

    /// Where jobs' cgroups are made, with `--cgroup`.
    pub fn cgroup_dir(&self) -> Option<&Path> {
        self.cgroups.as_ref().map(Cgroups::dir)
    }

    /// The user jobs run as, when not the slave's own.
    pub fn job_user(&self) -> Option<&str> {
        self.switch_to.as_ref().map(|u| u.name.as_str())
    }

    /// The job's directory: its own `cwd`, else its work directory.
    pub fn cwd(&self, place: &Place, cwd: Option<&str>) -> PathBuf {
        cwd.map_or_else(|| place.work.clone(), PathBuf::from)
    }

    /// Sets HOME, USER, LOGNAME and TMPDIR as the confinement says, unless the job sets them.
    pub fn environment(&self, cmd: &mut Command, place: &Place, env: &BTreeMap<String, String>) {
        let mut set = |k: &str, v: &std::ffi::OsStr| {
            if !env.contains_key(k) {
                cmd.env(k, v);
            }
        };
        if let Some(u) = &self.user {
            set("HOME", u.home.as_os_str());
            set("USER", u.name.as_ref());
            set("LOGNAME", u.name.as_ref());
        }
        if let Some(tmp) = &place.tmp {
            set("TMPDIR", tmp.as_os_str());
        }
    }

    /// The job may write beneath its work and temp directories, and to its terminal and the
    /// harmless devices; nowhere else.
    fn ruleset(&self, place: &Place, tty: Option<&Path>) -> io::Result<std::os::fd::OwnedFd> {
        let mut dirs = vec![place.work.as_path()];
        dirs.extend(place.tmp.as_deref());
        let mut files = vec![
            Path::new("/dev/null"),
            Path::new("/dev/zero"),
            Path::new("/dev/full"),
            Path::new("/dev/tty"),
        ];
        files.extend(tty);
        sys::write_ruleset(&dirs, &files).map_err(io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_size, ConfineOptions, Confinement};

    /// A slave killed with SIGKILL leaves its default work dir; a later slave that gets the
    /// same pid must clear it, not refuse to start.
    #[tokio::test]
    async fn a_work_dir_left_at_our_pid_is_cleared() {
        let root = std::env::temp_dir().join(format!("execnode-slave-{}", std::process::id()));
        std::fs::create_dir_all(root.join("jobs/7")).unwrap();
        std::fs::write(root.join("jobs/7/stale"), b"x").unwrap();
        let opts = ConfineOptions {
            allow_root_jobs: true,
            ..ConfineOptions::default()
        };
        let c = Confinement::new(&opts).await.unwrap();
        assert_eq!(c.root(), root);
        assert!(root.join("jobs").is_dir());
        assert!(!root.join("jobs/7").exists());
        c.remove_root();
        assert!(!root.exists());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("2gib"), Ok(2 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        for bad in ["", "M", "0", "-1", "1.5G", "12Q", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }
}
