//! Every `unsafe` and raw system call that confines a job: user lookups, resource limits, the
//! switch to the job's user, no-new-privileges and Landlock. `pty.rs` holds the terminal's
//! share; between them, these two files hold all of the slave's `unsafe` and `nix` calls.
//!
//! Between `fork` and `exec` only async-signal-safe system calls may run: another thread of
//! the slave may hold the allocator's lock at the moment of the fork. So everything the child
//! needs (the user's ids and groups, the working directory as a C string, the Landlock ruleset
//! as an open descriptor) is prepared in a [`ChildSetup`] before the spawn, and the `pre_exec`
//! closure only makes system calls with it. Nothing here knows about the hub or jobs.

use landlock::{
    AccessFs, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, ABI,
};
use nix::unistd::{Gid, Uid, User};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use tokio::process::Command;

/// The Landlock ABI whose write rights must all be enforced: ABI 3 (Linux 6.2) is the first
/// that also controls `truncate`, without which a job could still truncate any file it may
/// write by permissions alone.
pub const LANDLOCK_ABI: ABI = ABI::V3;

/// A user jobs may run as, looked up once, before any job is spawned.
#[derive(Clone, Debug)]
pub struct UserInfo {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, as `initgroups` would set them (the primary group included).
    pub groups: Vec<u32>,
    pub home: PathBuf,
}

/// Looks `name` up in the user database (NSS: may read files or ask a directory service).
/// `Ok(None)` when there is no such user.
pub fn lookup_user(name: &str) -> io::Result<Option<UserInfo>> {
    let Some(user) = User::from_name(name)? else {
        return Ok(None);
    };
    let cname = CString::new(name).map_err(|_| io::Error::other("user name holds a NUL byte"))?;
    let groups = nix::unistd::getgrouplist(&cname, user.gid)?;
    Ok(Some(UserInfo {
        name: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        groups: groups.into_iter().map(Gid::as_raw).collect(),
        home: user.dir,
    }))
}

/// The slave's effective user id.
pub fn euid() -> u32 {
    Uid::effective().as_raw()
}

/// Resource limits for a job; `None` leaves the slave's own limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rlimits {
    /// Address space, bytes (`RLIMIT_AS`).
    pub memory: Option<u64>,
    /// Processes of the job's user, all of them, not only this job's (`RLIMIT_NPROC`).
    pub procs: Option<u64>,
    /// CPU seconds per process (`RLIMIT_CPU`): SIGXCPU then, SIGKILL one second later.
    pub cpu_seconds: Option<u64>,
    /// Open file descriptors per process (`RLIMIT_NOFILE`).
    pub open_files: Option<u64>,
}

impl Rlimits {
    /// (resource, soft, hard) for each limit that is set.
    fn each(&self) -> [Option<(libc::__rlimit_resource_t, u64, u64)>; 4] {
        [
            self.memory.map(|n| (libc::RLIMIT_AS, n, n)),
            self.procs.map(|n| (libc::RLIMIT_NPROC, n, n)),
            // A hard limit one second above the soft one: the job gets SIGXCPU first and a
            // chance to act on it before the kernel's SIGKILL.
            self.cpu_seconds
                .map(|n| (libc::RLIMIT_CPU, n, n.saturating_add(1))),
            self.open_files.map(|n| (libc::RLIMIT_NOFILE, n, n)),
        ]
    }
}

/// The ids a child switches to.
#[derive(Clone, Debug)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// Everything the child needs between fork and exec, prepared in the parent.
#[derive(Debug, Default)]
pub struct ChildSetup {
    pub rlimits: Rlimits,
    /// Switch to these ids (only a root slave can).
    pub ids: Option<Ids>,
    /// Change to this directory, after the switch, so that it is entered with the job's rights.
    pub cwd: Option<CString>,
    /// A Landlock ruleset to enforce (with no-new-privileges first), from [`write_ruleset`].
    pub landlock: Option<OwnedFd>,
    /// The job's cgroup's `cgroup.procs`, open for writing (close-on-exec): the child moves
    /// itself in first, so that everything it starts is born there.
    pub cgroup_procs: Option<OwnedFd>,
}

/// Arranges for `cmd`'s child to apply `setup` just before exec, after any `pre_exec` added
/// earlier (the new session and controlling terminal come first). If any step fails, the
/// spawn fails with that error and nothing runs: a job never runs less confined than asked.
pub fn confine(cmd: &mut Command, setup: ChildSetup) {
    let rlimits = setup.rlimits.each();
    let ids = setup.ids.map(|i| {
        let groups: Vec<libc::gid_t> = i.groups;
        (i.uid, i.gid, groups)
    });
    let cwd = setup.cwd;
    let landlock = setup.landlock;
    let cgroup_procs = setup.cgroup_procs;
    // SAFETY: the closure runs in the forked child before exec. It only reads data prepared
    // before the fork and makes system calls that are async-signal-safe (write, setrlimit,
    // setgroups, setgid, setuid, chdir, prctl, landlock_restrict_self); it allocates nothing
    // and takes no lock. `io::Error::last_os_error` only stores the errno.
    unsafe {
        cmd.pre_exec(move || {
            // Into the job's cgroup first, while still privileged ("0": this process).
            if let Some(procs) = &cgroup_procs {
                if libc::write(procs.as_raw_fd(), b"0".as_ptr().cast(), 1) != 1 {
                    return Err(io::Error::last_os_error());
                }
            }
            // Limits first, while still privileged: lowering is always allowed, and the hard
            // limits then bind the job's user too.
            for (resource, soft, hard) in rlimits.iter().flatten() {
                let lim = libc::rlimit {
                    rlim_cur: *soft,
                    rlim_max: *hard,
                };
                if libc::setrlimit(*resource, &lim) == -1 {
                    return Err(io::Error::last_os_error());
                }
            }
            if let Some((uid, gid, groups)) = &ids {
                // Groups, then group, then user: after setuid the others are no longer ours to
                // change. glibc's set*id wrappers are safe here: the child has one thread.
                if libc::setgroups(groups.len(), groups.as_ptr()) == -1
                    || libc::setgid(*gid) == -1
                    || libc::setuid(*uid) == -1
                {
                    return Err(io::Error::last_os_error());
                }
            }
            if let Some(dir) = &cwd {
                if libc::chdir(dir.as_ptr()) == -1 {
                    return Err(io::Error::last_os_error());
                }
            }
            if let Some(ruleset) = &landlock {
                // No-new-privileges: no setuid binary or file capability can lift the job out
                // of its user or its sandbox. Landlock also requires it of an unprivileged
                // process.
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1
                    || libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0) == -1
                {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Runs a test child that moves itself into the cgroup of `procs` (its `cgroup.procs`) as a
/// job's child does, then exits; the error the move met, if any. Blocking (it waits for the
/// child): for the slave's start.
pub fn enter_and_exit(procs: OwnedFd) -> io::Result<()> {
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", ":"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    confine(
        &mut cmd,
        ChildSetup {
            cgroup_procs: Some(procs),
            ..ChildSetup::default()
        },
    );
    let status = cmd.as_std_mut().status()?;
    if !status.success() {
        return Err(io::Error::other(format!("the test child ended {status}")));
    }
    Ok(())
}

/// Whether `dir` is on a cgroup v2 file system.
pub fn is_cgroup2(dir: &Path) -> io::Result<bool> {
    let fs = nix::sys::statfs::statfs(dir)?;
    Ok(fs.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

/// What Landlock could not give us, in words for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SandboxUnavailable(String);

/// A Landlock ruleset, as an open descriptor, that lets a process write (create, remove,
/// rename, truncate) only beneath `dirs` and write (not create) the existing `files`
/// (terminals, `/dev/null`); reading and executing stay allowed everywhere.
///
/// Every write right of [`LANDLOCK_ABI`] must be enforced: a kernel without Landlock, or with
/// an older ABI, is an error rather than a weaker sandbox. Paths that do not exist are
/// skipped (a missing `/dev/full` must not stop a job).
pub fn write_ruleset(dirs: &[&Path], files: &[&Path]) -> Result<OwnedFd, SandboxUnavailable> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        SandboxUnavailable(format!(
            "{what}: {e} (the sandbox needs Landlock ABI {} or later, Linux 6.2+, enabled in \
             the kernel's lsm= list)",
            LANDLOCK_ABI as i32
        ))
    };
    let handled = AccessFs::from_write(LANDLOCK_ABI);
    let file_rights = AccessFs::WriteFile | AccessFs::Truncate;
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(handled)
        .map_err(|e| fail("Landlock cannot handle the write rights", &e))?
        .create()
        .map_err(|e| fail("cannot create a Landlock ruleset", &e))?;
    for (paths, rights) in [(dirs, handled), (files, file_rights)] {
        for path in paths {
            let fd = match PathFd::new(path) {
                Ok(fd) => fd,
                Err(_) if !path.exists() => continue,
                Err(e) => return Err(fail(&format!("cannot open {}", path.display()), &e)),
            };
            ruleset = ruleset
                .add_rule(PathBeneath::new(fd, rights))
                .map_err(|e| fail(&format!("cannot allow {}", path.display()), &e))?;
        }
    }
    let fd: Option<OwnedFd> = ruleset.into();
    // With HardRequirement, creation fails rather than leave us without a ruleset.
    fd.ok_or_else(|| SandboxUnavailable("Landlock is not enabled in this kernel".into()))
}
