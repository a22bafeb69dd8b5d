//! Every `unsafe` and raw system call that confines a job: user lookups, resource limits, the
//! switch to the job's user, no-new-privileges, Landlock and the job's network namespace. `pty.rs` holds the terminal's
//! share and `spawn.rs` (with `spawn/confined.rs`) process creation; between them, these hold
//! all of the slave's `unsafe` and `nix` calls.
//!
//! Between the clone and the exec of a job's child only async-signal-safe system calls may
//! run: the child shares the slave's memory (`spawn.rs`), and another thread of the slave may
//! hold the allocator's lock meanwhile. So everything the child needs (the user's ids and
//! groups, the working directory as a C string, the Landlock ruleset and the cgroup's
//! `cgroup.procs` as open descriptors) is prepared in a [`ChildSetup`] before the spawn, and
//! [`ChildSetup::enter`] only makes system calls with it. Nothing here knows about the hub or
//! jobs.

use landlock::{
    AccessFs, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, ABI,
};
use nix::unistd::{Gid, Uid, User};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

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

/// Everything the child needs between its clone and its exec, prepared in the parent.
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
    /// A network namespace of its own, with only its loopback interface, up (`--no-network`;
    /// only a root slave can).
    pub private_network: bool,
}

impl ChildSetup {
    /// Takes the confinement steps in a job's child, just before its exec, in this order: into
    /// the cgroup, off the network, the limits, the user, the directory, the sandbox. On the first that fails,
    /// returns its errno: the caller reports it and exits, so a job never runs less confined
    /// than asked.
    ///
    /// # Safety
    ///
    /// Only for the child of `spawn::spawn_confined`, which shares the slave's memory
    /// (`CLONE_VM`) while the thread that made it is suspended: it must not allocate, take a
    /// lock or touch anything but `self`, which that thread prepared before the clone and
    /// keeps alive until the child has exec'd or exited.
    pub(super) unsafe fn enter(&self) -> Result<(), libc::c_int> {
        // SAFETY (of each call below): plain system calls on descriptors and C strings owned
        // by `self`, and on integers; none allocates or takes a lock. glibc's wrappers for
        // write, setrlimit (prlimit64), chdir and prctl only make the system call. The ids
        // are changed with raw system calls, not glibc's setgroups/setgid/setuid: those see
        // the slave's threads (the memory is shared) and would signal each of them to change
        // its ids too, taking glibc's thread-list lock on the way. The raw calls change this
        // child's credentials alone, which is all we want.
        unsafe {
            // Into the job's cgroup first, while still privileged ("0": this process).
            if let Some(procs) = &self.cgroup_procs {
                if libc::write(procs.as_raw_fd(), b"0".as_ptr().cast(), 1) != 1 {
                    return Err(errno());
                }
            }
            // Off the network, while still privileged: a namespace with nothing but `lo`.
            if self.private_network {
                private_network()?;
            }
            // Limits next, while still privileged: lowering is always allowed, and the hard
            // limits then bind the job's user too.
            for (resource, soft, hard) in self.rlimits.each().iter().flatten() {
                let lim = libc::rlimit {
                    rlim_cur: *soft,
                    rlim_max: *hard,
                };
                if libc::setrlimit(*resource, &lim) == -1 {
                    return Err(errno());
                }
            }
            if let Some(ids) = &self.ids {
                // Groups, then group, then user: after setuid the others are no longer ours
                // to change.
                if libc::syscall(libc::SYS_setgroups, ids.groups.len(), ids.groups.as_ptr()) == -1
                    || libc::syscall(libc::SYS_setgid, libc::c_ulong::from(ids.gid)) == -1
                    || libc::syscall(libc::SYS_setuid, libc::c_ulong::from(ids.uid)) == -1
                {
                    return Err(errno());
                }
            }
            // After the switch, so that the directory is entered with the job's rights.
            if let Some(dir) = &self.cwd {
                if libc::chdir(dir.as_ptr()) == -1 {
                    return Err(errno());
                }
            }
            if let Some(ruleset) = &self.landlock {
                // No-new-privileges: no setuid binary or file capability can lift the job out
                // of its user or its sandbox. Landlock also requires it of an unprivileged
                // process.
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1
                    || libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0) == -1
                {
                    return Err(errno());
                }
            }
        }
        Ok(())
    }
}

/// Moves the calling process into a new network namespace and brings its loopback interface
/// up, so that a job can still serve and reach itself on 127.0.0.1 and ::1, but nothing
/// else. Needs CAP_SYS_ADMIN.
///
/// # Safety
///
/// As [`ChildSetup::enter`]: system calls only, on this frame's memory.
unsafe fn private_network() -> Result<(), libc::c_int> {
    // SAFETY: unshare, socket, ioctl and close on integers and on `req`, which lives on this
    // frame; `ifreq` is plain data, valid all zeros.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNET) == -1 {
            return Err(errno());
        }
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock == -1 {
            return Err(errno());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        req.ifr_name[0] = b'l' as libc::c_char;
        req.ifr_name[1] = b'o' as libc::c_char;
        let up = if libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) == -1 {
            Err(errno())
        } else {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(sock, libc::SIOCSIFFLAGS, &req) == -1 {
                Err(errno())
            } else {
                Ok(())
            }
        };
        libc::close(sock);
        up
    }
}

/// The calling thread's errno (reading it allocates nothing).
pub(super) fn errno() -> libc::c_int {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Runs a test child that takes `setup`'s steps as a job's child does, through the same
/// spawn, then exits; the error the first failed step met, if any. Blocking (it waits for
/// the child): for the slave's start.
pub fn test_child(setup: ChildSetup) -> io::Result<()> {
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.args(["-c", ":"]);
    let (pid, _) = super::spawn::spawn_confined(&cmd, super::spawn::ChildStdio::Null, &setup)?;
    let status = super::spawn::wait_blocking(pid)?;
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
