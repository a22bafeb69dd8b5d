//! Starting a job's process, and waiting for it. The slave's share of `unsafe` for process
//! creation, with `spawn/confined.rs` (with `pty.rs` and `sys.rs`; no other file has any).
//!
//! No job's child is a fork of the slave. A job that needs nothing done in the child but a
//! new session, its terminal or pipes and its directory is started with `posix_spawn(3)`:
//! glibc creates the child with `CLONE_VM | CLONE_VFORK`, so the slave's page tables are
//! neither copied nor torn down again at exec, which is most of what a fork of a
//! multi-threaded slave costs (perf: about a quarter of the slave's CPU per short job went to
//! `copy_process`, copy-on-write faults and `exit_mmap`). A confined job (another user,
//! limits, the sandbox, a cgroup) needs steps posix_spawn cannot take, so
//! [`spawn_confined`] does what glibc does, with those steps: a child on a stack of its own
//! that shares our memory, runs only system calls on data prepared before the clone, and
//! execs. Either way the caller gets a pid (a [`Proc`] to await its exit on a pidfd) and the
//! parent's ends of its pipes.

mod confined;

pub use confined::{spawn_confined, wait_blocking, ChildStdio};
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use tokio::io::unix::AsyncFd;

/// A started job process, reaped by [`Proc::wait`] (or, if dropped before that, by a task of
/// its own: no zombie is left behind).
pub struct Proc {
    pid: u32,
    exit: Exit,
    status: Option<ExitStatus>,
}

/// What tells us the process exited: its pidfd (Linux 5.3+), else SIGCHLD.
enum Exit {
    PidFd(AsyncFd<OwnedFd>),
    Sigchld(tokio::signal::unix::Signal),
}

/// The parent's ends of a pipe job's stdio.
pub struct Pipes {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

impl Proc {
    /// Takes charge of a child we started (and nobody else waits for).
    pub fn adopt(pid: u32) -> io::Result<Proc> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        let exit = if fd >= 0 {
            // SAFETY: the kernel just returned this descriptor; nothing else owns it.
            let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
            // SAFETY: as in `pty::async_master`: an owned, open descriptor.
            let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)?;
            Exit::PidFd(fd)
        } else {
            Exit::Sigchld(tokio::signal::unix::signal(
                tokio::signal::unix::SignalKind::child(),
            )?)
        };
        Ok(Proc {
            pid,
            exit,
            status: None,
        })
    }

    pub fn id(&self) -> u32 {
        self.pid
    }

    /// Waits for the process to exit and reaps it.
    ///
    /// A job's supervisor polls a fresh `wait` on every turn of its loop, one turn per read of
    /// output: with a pidfd, the kernel is asked only once the pidfd says the process exited
    /// (it was a `waitpid` per read: 30,000 per GiB streamed).
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(st) = self.status {
            return Ok(st);
        }
        loop {
            match &mut self.exit {
                Exit::PidFd(fd) => {
                    let mut exited = fd.readable().await?;
                    if let Some(st) = reap(self.pid, &mut self.status)? {
                        return Ok(st);
                    }
                    exited.clear_ready();
                }
                Exit::Sigchld(sig) => {
                    // A signal for any child; whether it was ours, only waitpid can tell.
                    if let Some(st) = reap(self.pid, &mut self.status)? {
                        return Ok(st);
                    }
                    sig.recv().await;
                }
            }
        }
    }
}

/// Reaps `pid` if it has exited (`waitpid` with `WNOHANG`), remembering its status in `status`.
fn reap(pid: u32, status: &mut Option<ExitStatus>) -> io::Result<Option<ExitStatus>> {
    if let Some(st) = *status {
        return Ok(Some(st));
    }
    let mut raw = 0;
    // SAFETY: waitpid writes the status into `raw`, a valid int.
    let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut raw, libc::WNOHANG) };
    match r {
        -1 => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(None)
            } else {
                Err(e)
            }
        }
        0 => Ok(None),
        _ => {
            let st = ExitStatus::from_raw(raw);
            *status = Some(st);
            Ok(Some(st))
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Reaped already, or reaped now.
        if matches!(reap(self.pid, &mut self.status), Ok(Some(_)) | Err(_)) {
            return;
        }
        // Still running: reap it when it ends.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pid = self.pid;
        let exit = std::mem::replace(
            &mut self.exit,
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child()) {
                Ok(s) => Exit::Sigchld(s),
                Err(_) => return,
            },
        );
        rt.spawn(async move {
            let mut p = Proc {
                pid,
                exit,
                status: None,
            };
            let _ = p.wait().await;
        });
    }
}

/// Starts `cmd` with posix_spawn: in a session of its own, with default signal handling and
/// an empty signal mask, in `cmd`'s directory, with `cmd`'s environment on top of ours. With
/// `tty`, the pty's slave side (opened after setsid, so it becomes the controlling terminal)
/// is its stdin, stdout and stderr; otherwise three pipes, whose parent ends are returned.
pub fn posix_spawn(
    cmd: &std::process::Command,
    tty: Option<&Path>,
) -> io::Result<(Proc, Option<Pipes>)> {
    let env = environment(cmd);
    let program = resolve(cmd.get_program(), &env)?;
    let (argv, envp) = (argv(cmd)?, envp(&env)?);
    let cwd = cmd
        .get_current_dir()
        .map(|d| cstring(d.as_os_str().as_bytes()))
        .transpose()?;
    let tty = tty.map(|p| cstring(p.as_os_str().as_bytes())).transpose()?;
    let (argv_p, envp_p) = (pointers(&argv), pointers(&envp));

    // The child's ends of the pipes, and ours.
    let pipes = match tty {
        Some(_) => None,
        None => Some(pipes()?),
    };

    let mut actions = FileActions::new()?;
    let mut attr = Attr::new()?;
    // SAFETY: every pointer passed below points into a CString or sigset that outlives the
    // posix_spawn call; the file actions and attributes were initialized by their `new`.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigfillset(&mut all);
        check(libc::posix_spawnattr_setsigmask(&mut attr.0, &none))?;
        check(libc::posix_spawnattr_setsigdefault(&mut attr.0, &all))?;
        let flags = libc::POSIX_SPAWN_SETSID as libc::c_int
            | libc::POSIX_SPAWN_SETSIGMASK
            | libc::POSIX_SPAWN_SETSIGDEF;
        check(libc::posix_spawnattr_setflags(
            &mut attr.0,
            flags as libc::c_short,
        ))?;
        if let Some(cwd) = &cwd {
            check(libc::posix_spawn_file_actions_addchdir_np(
                &mut actions.0,
                cwd.as_ptr(),
            ))?;
        }
        match (&tty, &pipes) {
            (Some(tty), _) => {
                // Without O_NOCTTY: the new session's leader opening a terminal makes it the
                // session's controlling terminal.
                check(libc::posix_spawn_file_actions_addopen(
                    &mut actions.0,
                    0,
                    tty.as_ptr(),
                    libc::O_RDWR,
                    0,
                ))?;
                check(libc::posix_spawn_file_actions_adddup2(&mut actions.0, 0, 1))?;
                check(libc::posix_spawn_file_actions_adddup2(&mut actions.0, 0, 2))?;
            }
            (None, Some((child, _))) => {
                for (fd, target) in child.iter().zip(0..) {
                    check(libc::posix_spawn_file_actions_adddup2(
                        &mut actions.0,
                        fd.as_raw_fd(),
                        target,
                    ))?;
                }
            }
            (None, None) => unreachable!("pipes exist without a tty"),
        }
        let mut pid: libc::pid_t = 0;
        check(libc::posix_spawn(
            &mut pid,
            program.as_ptr(),
            &actions.0,
            &attr.0,
            argv_p.as_ptr(),
            envp_p.as_ptr(),
        ))?;
        // The child's pipe ends close here, with `pipes`' first half.
        Ok((Proc::adopt(pid as u32)?, pipes.map(|(_, ours)| ours)))
    }
}

/// The child's ends of a pipe job's three pipes (stdin, stdout, stderr), and ours.
fn pipes() -> io::Result<([OwnedFd; 3], Pipes)> {
    let (in_r, in_w) = pipe()?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    Ok((
        [in_r, out_w, err_w],
        Pipes {
            stdin: in_w,
            stdout: out_r,
            stderr: err_r,
        },
    ))
}

/// `cmd`'s argv: the program as given, then its arguments.
fn argv(cmd: &std::process::Command) -> io::Result<Vec<CString>> {
    let mut argv = vec![cstring(cmd.get_program().as_bytes())?];
    for a in cmd.get_args() {
        argv.push(cstring(a.as_bytes())?);
    }
    Ok(argv)
}

/// `KEY=VALUE` strings for execve.
fn envp(env: &[(OsString, OsString)]) -> io::Result<Vec<CString>> {
    let mut envp = Vec::with_capacity(env.len());
    for (k, v) in env {
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        envp.push(cstring(&kv)?);
    }
    Ok(envp)
}

/// A NULL-terminated array of pointers into `v`, for execve (valid while `v` lives).
fn pointers(v: &[CString]) -> Vec<*mut libc::c_char> {
    let mut p: Vec<*mut libc::c_char> = v.iter().map(|s| s.as_ptr() as *mut _).collect();
    p.push(std::ptr::null_mut());
    p
}

/// Our environment with `cmd`'s changes applied, as the child gets it.
fn environment(cmd: &std::process::Command) -> Vec<(OsString, OsString)> {
    let mut env: std::collections::BTreeMap<OsString, OsString> = std::env::vars_os().collect();
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => env.insert(k.to_owned(), v.to_owned()),
            None => env.remove(k),
        };
    }
    env.into_iter().collect()
}

/// The program to run: a name with a slash as it is, else the first executable of that name
/// on the child's PATH (as std does when the job sets PATH itself).
fn resolve(program: &OsStr, env: &[(OsString, OsString)]) -> io::Result<CString> {
    if program.as_bytes().contains(&b'/') {
        return cstring(program.as_bytes());
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin"));
    for dir in std::env::split_paths(&path) {
        let candidate: PathBuf = dir.join(program);
        let c = cstring(candidate.as_os_str().as_bytes())?;
        // SAFETY: access only reads the NUL-terminated path.
        if unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0 && candidate.is_file() {
            return Ok(c);
        }
    }
    Err(io::Error::from_raw_os_error(libc::ENOENT))
}

/// The paths execvp would try for `program`: itself if it has a slash, else each directory of
/// the child's PATH (glibc's default when it has none) joined with it. Tried in the child, as
/// the job's user: which of them it may run is for the kernel to say.
fn candidates(program: &OsStr, env: &[(OsString, OsString)]) -> io::Result<Vec<CString>> {
    let bytes = program.as_bytes();
    if bytes.contains(&b'/') {
        return Ok(vec![cstring(bytes)?]);
    }
    if bytes.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map_or_else(|| OsString::from("/bin:/usr/bin"), |(_, v)| v.clone());
    std::env::split_paths(&path)
        .map(|dir| cstring(dir.join(program).as_os_str().as_bytes()))
        .collect()
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes.to_vec()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "nul byte found in provided data",
        )
    })
}

/// A close-on-exec pipe whose ends are not 0, 1 or 2 (so that the child's dup2 onto those
/// always makes a copy without close-on-exec).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    Ok((above_stdio(r)?, above_stdio(w)?))
}

fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    let new = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that we alone own.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
}

struct FileActions(libc::posix_spawn_file_actions_t);
struct Attr(libc::posix_spawnattr_t);

impl FileActions {
    fn new() -> io::Result<FileActions> {
        // SAFETY: init fills in the zeroed struct before any other use.
        unsafe {
            let mut a = FileActions(std::mem::zeroed());
            check(libc::posix_spawn_file_actions_init(&mut a.0))?;
            Ok(a)
        }
    }
}

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: initialized in `new`, destroyed once.
        unsafe { libc::posix_spawn_file_actions_destroy(&mut self.0) };
    }
}

impl Attr {
    fn new() -> io::Result<Attr> {
        // SAFETY: as for FileActions.
        unsafe {
            let mut a = Attr(std::mem::zeroed());
            check(libc::posix_spawnattr_init(&mut a.0))?;
            Ok(a)
        }
    }
}

impl Drop for Attr {
    fn drop(&mut self) {
        // SAFETY: initialized in `new`, destroyed once.
        unsafe { libc::posix_spawnattr_destroy(&mut self.0) };
    }
}
