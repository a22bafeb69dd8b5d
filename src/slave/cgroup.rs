//! Each job in a cgroup of its own (`xnslave --cgroup DIR`, cgroup v2), so that nothing it
//! started outlives it: a process that left the job's session (`setsid`, a daemon's double
//! fork) is out of reach of the group and session kills, but not of `cgroup.kill`.
//!
//! A job's cgroup is `DIR/xn-PID@START-ID` (PID and START: the slave's pid and its start time,
//! in clock ticks since boot, which together name a process even after its pid is reused;
//! slaves may share DIR). The child moves itself into it between its clone and its exec
//! (through a `cgroup.procs` descriptor opened here), so every process it ever starts is born
//! inside. When the job's main process ends, or its
//! cancel or timeout comes to SIGKILL, the whole cgroup is killed, then removed. At start the
//! slave kills and removes what slaves that died left in DIR. No controller is enabled: this is
//! about finding processes, not about limits.

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a killed cgroup may take to empty before it is left behind with a warning (a
/// process in uninterruptible sleep dies only when its system call ends).
const EMPTY_WAIT: Duration = Duration::from_secs(10);

/// Where jobs' cgroups are made.
#[derive(Clone, Debug)]
pub struct Cgroups {
    dir: PathBuf,
    /// `PID@START` of this slave, in each of its cgroups' names.
    me: String,
}

/// One job's cgroup.
#[derive(Clone, Debug)]
pub struct JobCgroup {
    dir: PathBuf,
}

impl Cgroups {
    /// Checks that `dir` is a cgroup v2 directory in which this slave may make cgroups that
    /// can be killed whole (Linux 5.14+) and that its children can enter (a test child enters
    /// one, as a job's does), and clears what dead slaves left there.
    pub fn open(dir: &Path) -> Result<Cgroups> {
        let shown = dir.display();
        let dir = std::path::absolute(dir).with_context(|| format!("--cgroup {shown}"))?;
        match super::sys::is_cgroup2(&dir) {
            Err(e) => bail!("--cgroup {shown}: {e}"),
            Ok(false) => bail!(
                "--cgroup {shown} is not in a cgroup v2 hierarchy (give a directory under the \
                 cgroup2 mount, often /sys/fs/cgroup, that this slave may write)"
            ),
            Ok(true) => {}
        }
        let pid = std::process::id();
        let start = start_time(pid).context("reading this slave's start time in /proc")?;
        let cgroups = Cgroups {
            dir,
            me: format!("{pid}@{start}"),
        };
        cgroups.clear_dead();
        let probe = cgroups
            .create(&format!("probe-{}", std::process::id()), true)
            .with_context(|| {
                format!(
                    "--cgroup {shown}: cannot make a cgroup there (as root, or delegated to \
                     this slave's user: systemd's Delegate=yes)"
                )
            })?;
        let killable = probe.dir.join("cgroup.kill").exists();
        let entered = probe.procs().and_then(|procs| {
            super::sys::test_child(super::sys::ChildSetup {
                cgroup_procs: Some(procs),
                ..Default::default()
            })
        });
        probe.remove()?;
        if !killable {
            bail!("--cgroup {shown}: this kernel has no cgroup.kill (Linux 5.14 or later)");
        }
        if let Err(e) = entered {
            bail!(
                "--cgroup {shown}: a process of this slave cannot enter a cgroup made there \
                 ({e}), so no job could start. Moving a process needs write access to the \
                 cgroup.procs of the cgroup that holds both {shown} and the slave's own \
                 ({}): run the slave inside the tree it may write (systemd's Delegate=yes \
                 does, with --cgroup the service's own cgroup), or as root",
                own_cgroup()
            );
        }
        Ok(cgroups)
    }

    /// The directory jobs' cgroups are made in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes the cgroup of job `name` (one of the same name, left by a run of the job that
    /// could not be removed, is killed and made again).
    pub fn create(&self, name: &str, clear_stale: bool) -> io::Result<JobCgroup> {
        let cg = JobCgroup {
            dir: self.dir.join(format!("xn-{}-{name}", self.me)),
        };
        match std::fs::create_dir(&cg.dir) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && clear_stale => {
                tracing::warn!("killing and removing the stale cgroup {}", cg.dir.display());
                cg.kill()?;
                cg.remove()?;
                std::fs::create_dir(&cg.dir)?;
            }
            other => other?,
        }
        Ok(cg)
    }

    /// Kills and removes the jobs' cgroups of slaves that are gone: `xn-PID@START-*` whose
    /// process (that pid, started then) is not running (a zombie is not). Names without
    /// START, from slaves before it, go when their pid is not running (or is ours). A job
    /// whose slave was killed cannot be taken back by a new one, so its processes would
    /// otherwise run on unseen.
    fn clear_dead(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let me = std::process::id();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(slave) = name
                .to_str()
                .and_then(|n| n.strip_prefix("xn-"))
                .and_then(|n| n.split_once('-'))
                .map(|(slave, _)| slave)
            else {
                continue;
            };
            let (pid, start) = match slave.split_once('@') {
                Some((pid, start)) => (pid.parse::<u32>(), start.parse::<u64>().ok()),
                None => (slave.parse::<u32>(), None),
            };
            let Ok(pid) = pid else { continue };
            let alive = match (start, start_time(pid)) {
                (Some(start), running) => running == Some(start),
                (None, running) => pid != me && running.is_some(),
            };
            if alive {
                continue;
            }
            let cg = JobCgroup { dir: entry.path() };
            tracing::warn!(
                "killing what is left in {}: its slave (pid {pid}) is gone",
                cg.dir.display()
            );
            if let Err(e) = cg.kill().and_then(|()| cg.remove()) {
                tracing::warn!("clearing {}: {e}", cg.dir.display());
            }
        }
    }
}

/// When process `pid` started, in clock ticks since boot (`/proc/PID/stat`, field 22); `None`
/// if there is no such process, or it has ended and only waits to be reaped (state `Z`, or
/// `X` on its way out): a slave that died keeps its pid and start time until its parent
/// waits for it, and what it left must not count as a live slave's until then.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name (which may hold spaces and parentheses): field 3 on.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    if matches!(fields.next()?, "Z" | "X" | "x") {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// The slave's own cgroup v2, as `/proc/self/cgroup` names it (relative to the mount).
fn own_cgroup() -> String {
    std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("0::").map(str::to_string))
        })
        .unwrap_or_else(|| "unknown".into())
}

impl JobCgroup {
    /// `cgroup.procs`, open for writing (close-on-exec): the child writes `0` to it between
    /// its clone and its exec to move itself in.
    pub fn procs(&self) -> io::Result<OwnedFd> {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(self.dir.join("cgroup.procs"))?;
        Ok(f.into())
    }

    /// SIGKILLs every process in the cgroup at once (nothing to do if it is removed).
    pub fn kill(&self) -> io::Result<()> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(self.dir.join("cgroup.kill"));
        match file {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            file => file?.write_all(b"1"),
        }
    }

    /// Sends `sig` to every process in the cgroup, and in the cgroups below it (SIGTERM
    /// before a cancel's SIGKILL).
    pub fn signal(&self, sig: Signal) {
        for dir in self.tree() {
            let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) else {
                continue;
            };
            for pid in procs.lines().filter_map(|l| l.parse::<u32>().ok()) {
                super::pty::signal_pid(pid, sig);
            }
        }
    }

    /// Whether any process is left in it.
    pub fn populated(&self) -> bool {
        std::fs::read_to_string(self.dir.join("cgroup.events"))
            .map(|e| e.lines().any(|l| l == "populated 1"))
            .unwrap_or(false)
    }

    /// Removes the cgroup if it is empty, at once (one `rmdir`); false if processes are left
    /// (the killed may still be exiting), for [`JobCgroup::remove`] to wait for.
    pub fn try_remove(&self) -> bool {
        match std::fs::remove_dir(&self.dir) {
            Ok(()) => true,
            Err(e) => e.kind() == io::ErrorKind::NotFound,
        }
    }

    /// Removes the cgroup once its killed processes are gone, waiting for them up to
    /// [`EMPTY_WAIT`]; with it the cgroups the job made inside its own (a container runtime
    /// or systemd-run in a job does), deepest first: a cgroup with children cannot be removed.
    /// `cgroup.kill` reached their processes too. Blocking: call it off the runtime.
    pub fn remove(&self) -> io::Result<()> {
        let start = Instant::now();
        for dir in self.tree().iter().rev() {
            remove_one(dir, start)?;
        }
        Ok(())
    }

    /// The cgroup and every cgroup below it, each after its parent. A loop rather than a
    /// recursion: a job may nest its cgroups as deep as it likes.
    fn tree(&self) -> Vec<PathBuf> {
        let mut tree = vec![self.dir.clone()];
        let mut next = 0;
        while let Some(dir) = tree.get(next) {
            let children: Vec<PathBuf> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect();
            tree.extend(children);
            next += 1;
        }
        tree
    }
}

/// Removes one (childless) cgroup, waiting up to [`EMPTY_WAIT`] from `start` for its killed
/// processes to go. One that is gone already is fine.
fn remove_one(dir: &Path, start: Instant) -> io::Result<()> {
    let mut pause = Duration::from_micros(100);
    loop {
        match std::fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && start.elapsed() < EMPTY_WAIT => {
                // SIGKILL is delivered, not yet acted on: the processes are exiting.
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            other => {
                return other.map_err(|e| {
                    let populated = JobCgroup {
                        dir: dir.to_path_buf(),
                    }
                    .populated();
                    io::Error::other(format!(
                        "removing cgroup {}: {e} (processes left: {populated})",
                        dir.display()
                    ))
                })
            }
        }
    }
}
