//! Starting a confined job's child without a fork (see the parent module): a child that
//! shares the slave's memory, on a stack of its own, takes the confinement steps and execs.
//! Part of `spawn.rs`'s share of the slave's `unsafe`.

use super::super::sys::{self, ChildSetup};
use super::{argv, candidates, environment, envp, pipe, pipes, pointers, Pipes};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// What a confined child's stdin, stdout and stderr are.
pub enum ChildStdio<'a> {
    /// The pty's slave side, which also becomes the controlling terminal of its new session.
    Tty(BorrowedFd<'a>),
    /// Three new pipes, whose parent ends [`spawn_confined`] returns.
    Pipes,
    /// `/dev/null` (for the slave's own test children).
    Null,
}

/// The stack a confined child runs on until its exec, above a guard page.
const CHILD_STACK_BYTES: usize = 64 * 1024;

/// Starts `cmd` confined as `setup` says, without a fork: the child is made with
/// `clone(CLONE_VM | CLONE_VFORK)` on a stack of its own, as glibc's posix_spawn makes its
/// children, so the slave's page tables are not copied, and this thread waits until the
/// child has exec'd or exited. In the child, in this order: default dispositions for every
/// signal, a new session, its stdio (with a tty, that terminal as the session's controlling
/// terminal), an empty signal mask, the steps of [`ChildSetup::enter`] (cgroup, limits, user,
/// directory, sandbox), then the exec, trying the program on the child's `PATH` as execvp
/// does. If a step fails, the spawn fails with its errno (reported through a close-on-exec
/// pipe, as std does) and nothing runs. The environment is ours with `cmd`'s changes.
///
/// Returns the child's pid, which the caller must wait for ([`Proc::adopt`] or
/// [`wait_blocking`]), and with [`ChildStdio::Pipes`] our ends of its pipes.
pub fn spawn_confined(
    cmd: &std::process::Command,
    stdio: ChildStdio<'_>,
    setup: &ChildSetup,
) -> io::Result<(u32, Option<Pipes>)> {
    // Everything the child reads, made here: it may not allocate.
    let env = environment(cmd);
    let candidates = candidates(cmd.get_program(), &env)?;
    let (argv, envp) = (argv(cmd)?, envp(&env)?);
    let (argv_p, envp_p) = (pointers(&argv), pointers(&envp));
    let (pipes, null);
    let (fds, tty, ours) = match stdio {
        ChildStdio::Tty(fd) => ([fd.as_raw_fd(); 3], true, None),
        ChildStdio::Pipes => {
            let (child, ours) = self::pipes()?;
            pipes = child;
            (pipes.each_ref().map(AsRawFd::as_raw_fd), false, Some(ours))
        }
        ChildStdio::Null => {
            null = std::fs::File::options()
                .read(true)
                .write(true)
                .open("/dev/null")?;
            ([null.as_raw_fd(); 3], false, None)
        }
    };
    // The child's errno comes back on this pipe; its end closes at the exec.
    let (report_r, report_w) = pipe()?;
    let child = Child {
        stdio: fds,
        tty,
        setup,
        candidates: &candidates,
        argv: argv_p.as_ptr().cast(),
        envp: envp_p.as_ptr().cast(),
        report: report_w.as_raw_fd(),
    };
    let stack = Stack::new()?;

    // Every signal blocked around the clone, glibc's internal ones too: the child inherits
    // our handlers and our memory, and must not run one of them before it has reset them.
    let all: u64 = !0;
    let mut old: u64 = 0;
    // SAFETY: rt_sigprocmask reads and writes one 64-bit signal set each (the kernel's
    // sigset_t on Linux's 64-bit ports), both valid for the call.
    if unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &all,
            &mut old,
            8,
        )
    } == -1
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the child runs `child_main` on `stack` (mapped, writable, ours until we unmap
    // it below) with a pointer to `child`, which lives on this frame. CLONE_VFORK suspends
    // this thread until the child has exec'd or exited, so `child` and everything it points
    // to (the setup, the C strings and their pointer arrays, the descriptors) outlive every
    // use of them. The child shares our memory (CLONE_VM) while the slave's other threads go
    // on: `child_main` only reads `child` and makes system calls (see there). The executable
    // is linked with `-z now` (Rust's default on Linux), so no lazy symbol binding runs in
    // the child either.
    let pid = unsafe {
        libc::clone(
            child_main,
            stack.top(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&child as *const Child<'_>).cast_mut().cast(),
        )
    };
    // Before anything else touches errno: the child's steps set it too (it shares our
    // thread's errno location), but only a failed clone means nothing ran.
    let cloned = if pid == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(pid)
    };
    // SAFETY: as above; restores the mask we had.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &old,
            std::ptr::null_mut::<u64>(),
            8,
        )
    };
    drop(stack);
    let pid = cloned?;
    drop(report_w);
    // The child has exec'd (EOF: the pipe's write end closed with the exec) or failed and
    // exited after writing its errno.
    let mut buf = [0u8; 4];
    let n = loop {
        match nix::unistd::read(&report_r, &mut buf) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r,
        }
    };
    match n {
        Ok(0) => Ok((pid as u32, ours)),
        Ok(n) => {
            let _ = wait_blocking(pid as u32);
            Err(if n == buf.len() {
                io::Error::from_raw_os_error(i32::from_ne_bytes(buf))
            } else {
                io::Error::other("the job's child failed and its report was cut short")
            })
        }
        Err(e) => {
            let _ = wait_blocking(pid as u32);
            Err(e.into())
        }
    }
}

/// What a confined child reads, prepared by [`spawn_confined`] before the clone.
struct Child<'a> {
    /// The descriptors to make its stdin, stdout and stderr.
    stdio: [RawFd; 3],
    /// Whether stdin is a terminal to make its controlling terminal.
    tty: bool,
    setup: &'a ChildSetup,
    /// The paths to try in turn (one, unless the program is found on PATH).
    candidates: &'a [CString],
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    /// Where to write its errno if a step fails (close-on-exec).
    report: RawFd,
}

/// The confined child, between clone and exec: reports why it could not exec, then exits.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Child` that `spawn_confined` keeps alive while we run; see
    // `child_steps` for what runs here.
    unsafe {
        let child = &*(arg as *const Child<'_>);
        let bytes = child_steps(child).to_ne_bytes();
        libc::write(child.report, bytes.as_ptr().cast(), bytes.len());
    }
    // SAFETY: _exit ends this child alone (it is a process of its own, not a thread of
    // ours); no exit handler of the slave runs.
    unsafe { libc::_exit(127) }
}

/// The child's steps up to its exec; returns the errno of the first that failed.
///
/// # Safety
///
/// Only in the child of `spawn_confined`. It shares the slave's memory while other threads of
/// the slave run, so it only reads `child` and makes async-signal-safe system calls: nothing
/// allocates, takes a lock or panics.
unsafe fn child_steps(child: &Child<'_>) -> libc::c_int {
    // SAFETY: each call below is a system call on integers, on descriptors that `child` names
    // or on C strings and arrays it points to, all valid until our exec.
    unsafe {
        // Default dispositions first, all signals still blocked: a handler of the slave's must
        // never run here, on the slave's memory. The raw call reaches glibc's internal signals
        // too, which its sigaction refuses. All zeros is SIG_DFL, no flags, an empty mask.
        let default = [0u64; 4];
        for sig in 1..=64 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    default.as_ptr(),
                    std::ptr::null_mut::<u64>(),
                    8,
                );
            }
        }
        // A session of its own: its pid is then its process group's and its session's id.
        if libc::setsid() == -1 {
            return sys::errno();
        }
        for (target, &fd) in (0..).zip(&child.stdio) {
            // Our descriptors are close-on-exec; a dup2 onto 0, 1 or 2 makes a copy without
            // that flag. One already in place keeps it unless cleared.
            let r = if fd == target {
                libc::fcntl(fd, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, target)
            };
            if r == -1 {
                return sys::errno();
            }
        }
        // The new session's leader takes its terminal as the controlling terminal.
        if child.tty && libc::ioctl(0, libc::TIOCSCTTY as _, 0) == -1 {
            return sys::errno();
        }
        let none: u64 = 0;
        if libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &none,
            std::ptr::null_mut::<u64>(),
            8,
        ) == -1
        {
            return sys::errno();
        }
        if let Err(errno) = child.setup.enter() {
            return errno;
        }
        // As execvp searches PATH: on to the next directory when a candidate is missing or
        // not executable; EACCES if any was refused, else the last error.
        let mut errno = libc::ENOENT;
        let mut refused = false;
        for path in child.candidates {
            libc::execve(path.as_ptr(), child.argv, child.envp);
            errno = sys::errno();
            match errno {
                libc::EACCES => refused = true,
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
                _ => return errno,
            }
        }
        if refused {
            libc::EACCES
        } else {
            errno
        }
    }
}

/// A mapped stack for a confined child, with a guard page below it; unmapped when dropped.
struct Stack {
    base: *mut libc::c_void,
    len: usize,
}

impl Stack {
    fn new() -> io::Result<Stack> {
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let len = CHILD_STACK_BYTES + page;
        // SAFETY: a new private anonymous mapping; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = Stack { base, len };
        // SAFETY: the lowest page of the mapping just made: an overflow faults there instead
        // of writing into whatever lies below.
        if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// The highest address: stacks grow down on the architectures Linux runs the slave on.
    fn top(&self) -> *mut libc::c_void {
        // SAFETY: one past the end of the mapping, which is page-aligned (so 16-byte aligned).
        unsafe { self.base.cast::<u8>().add(self.len).cast() }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once; the child that ran on it has exec'd or
        // exited by the time a stack is dropped.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// Waits for `pid` to exit and reaps it, blocking the thread.
pub fn wait_blocking(pid: u32) -> io::Result<ExitStatus> {
    loop {
        let mut raw = 0;
        // SAFETY: waitpid writes the status into `raw`, a valid int.
        let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut raw, 0) };
        if r != -1 {
            return Ok(ExitStatus::from_raw(raw));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
