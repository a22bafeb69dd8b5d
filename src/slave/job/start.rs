//! Starting a job's process: its command line (`sh -c -- LINE` or its argv) and environment, a
//! pty or pipes, spawned with `posix_spawn` (or `spawn::spawn_confined`, when confinement
//! needs steps in the child), and what to tell the user when that fails.

use crate::slave::cgroup::JobCgroup;
use crate::slave::confine::{Confinement, Place};
use crate::slave::{pty, spawn};
use crate::wire::JobSpec;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;
use tokio::process::Command;

/// What the user needs to know of a failed start: errno alone does not say whether the
/// working directory or the program was missing, or whom it was denied to.
pub(super) fn why_not_started(
    e: &io::Error,
    spec: &JobSpec,
    confinement: &Confinement,
    place: &Place,
) -> String {
    let cwd = confinement.cwd(place, spec.cwd.as_deref());
    let dir = cwd.display();
    let program = match spec.argv.as_deref() {
        Some([program, ..]) => program.as_str(),
        _ => "/bin/sh",
    };
    let who = confinement
        .job_user()
        .map(|u| format!(" as user {u}"))
        .unwrap_or_default();
    match std::fs::metadata(&cwd) {
        Err(m) => format!("working directory {dir}: {m}"),
        Ok(m) if !m.is_dir() => format!("working directory {dir} is not a directory ({e})"),
        // A script whose #! interpreter (or a binary whose loader) is missing fails so too.
        Ok(_) if e.kind() == io::ErrorKind::NotFound && program.contains('/') && Path::new(program).exists() => {
            format!("{program:?} exists, but its interpreter (#!) or loader was not found ({e})")
        }
        Ok(_) if e.kind() == io::ErrorKind::NotFound => format!("program {program:?} not found ({e})"),
        Ok(_) if e.kind() == io::ErrorKind::PermissionDenied => format!(
            "{e}: running {program:?} in {dir}{who} (each directory on the way must let that user through)"
        ),
        Ok(_) => format!("{e} (running {program:?} in {dir}{who})"),
    }
}

/// The job's output side: the pty master, or the stdout pipe.
pub(super) enum Out {
    Pty(Arc<AsyncFd<OwnedFd>>),
    Pipe(pipe::Receiver),
}

pub(super) struct Started {
    pub(super) child: spawn::Proc,
    pub(super) pgid: u32,
    /// The job's cgroup, with `--cgroup`.
    pub(super) cgroup: Option<JobCgroup>,
    pub(super) out: Out,
    /// Stderr, for `tty: false` jobs.
    pub(super) err: Option<pipe::Receiver>,
    /// Stdin, for `tty: false` jobs (a pty job's input goes to the master).
    pub(super) stdin: Option<pipe::Sender>,
}

fn command(spec: &JobSpec) -> Command {
    let mut cmd = match spec.argv.as_deref() {
        // No shell: the words go to the program exactly as given.
        Some([program, args @ ..]) => {
            let mut cmd = Command::new(program);
            cmd.args(args);
            cmd
        }
        _ => {
            // `--`: a line that begins with `-` (`-x; make`) is the command, not options
            // for the shell, which would refuse it (POSIX sh, dash and bash all take `--`
            // after `-c`).
            let mut cmd = Command::new("/bin/sh");
            cmd.args(["-c", "--"]).arg(&spec.command);
            cmd
        }
    };
    // The slave's credentials are not the job's business.
    cmd.env_remove("XN_TOKEN");
    cmd.envs(&spec.env);
    if spec.tty && !spec.env.contains_key("TERM") {
        cmd.env(
            "TERM",
            std::env::var("TERM").unwrap_or_else(|_| "xterm-256color".into()),
        );
    }
    cmd.kill_on_drop(false);
    cmd
}

/// The part of the spec that holds a NUL byte, which no C string can carry. std would run
/// `<string-with-nul>` in its place through `get_args` (our posix_spawn's path).
fn nul_in(spec: &JobSpec) -> Option<&'static str> {
    let nul = |s: &str| s.contains('\0');
    if nul(&spec.command) || spec.argv.iter().flatten().any(|a| nul(a)) {
        Some("command")
    } else if spec.env.iter().any(|(k, v)| nul(k) || nul(v)) {
        Some("environment")
    } else if spec.cwd.as_deref().is_some_and(nul) {
        Some("working directory")
    } else {
        None
    }
}

pub(super) fn start(
    spec: &JobSpec,
    confinement: &Confinement,
    place: &Place,
) -> io::Result<Started> {
    if let Some(what) = nul_in(spec) {
        let e = format!("its {what} contains a NUL byte");
        return Err(io::Error::new(io::ErrorKind::InvalidInput, e));
    }
    let mut cmd = command(spec);
    let cwd = spec.cwd.as_deref();
    let pty = match spec.tty {
        true => Some(pty::open(spec.rows, spec.cols)?),
        false => None,
    };
    let (proc, pipes) = if confinement.needs_child_setup() {
        confined(cmd, spec, confinement, place, pty.as_ref())?
    } else {
        confinement.environment(&mut cmd, place, &spec.env);
        cmd.current_dir(confinement.cwd(place, cwd));
        spawn::posix_spawn(cmd.as_std(), pty.as_ref().map(|p| p.path.as_path()))?
    };
    let pgid = proc.id();
    match (pty, pipes) {
        (Some(p), _) => {
            // Our copy of the slave side goes, or the master never sees EOF.
            drop(p.slave);
            Ok(Started {
                child: proc,
                pgid,
                cgroup: place.cgroup.clone(),
                out: Out::Pty(Arc::new(pty::async_master(p.master)?)),
                err: None,
                stdin: None,
            })
        }
        (None, Some(pipes)) => Ok(Started {
            child: proc,
            pgid,
            cgroup: place.cgroup.clone(),
            out: Out::Pipe(pipe::Receiver::from_owned_fd(pipes.stdout)?),
            err: Some(pipe::Receiver::from_owned_fd(pipes.stderr)?),
            stdin: Some(pipe::Sender::from_owned_fd(pipes.stdin)?),
        }),
        (None, None) => Err(io::Error::other("a pipe job started without pipes")),
    }
}

/// Starts a confined job's child (`spawn::spawn_confined`): its session and terminal or
/// pipes, then its cgroup, limits, user, directory and sandbox, taken in the child before exec.
fn confined(
    mut cmd: Command,
    spec: &JobSpec,
    confinement: &Confinement,
    place: &Place,
    pty: Option<&pty::Pty>,
) -> io::Result<(spawn::Proc, Option<spawn::Pipes>)> {
    let cwd = spec.cwd.as_deref();
    let (setup, stdio) = match pty {
        Some(p) => {
            confinement.give_tty(&p.slave)?;
            let setup = confinement.setup(&mut cmd, place, cwd, &spec.env, Some(&p.path))?;
            (setup, spawn::ChildStdio::Tty(p.slave.as_fd()))
        }
        None => {
            let setup = confinement.setup(&mut cmd, place, cwd, &spec.env, None)?;
            (setup, spawn::ChildStdio::Pipes)
        }
    };
    let (pid, pipes) = spawn::spawn_confined(cmd.as_std(), stdio, &setup)?;
    Ok((spawn::Proc::adopt(pid)?, pipes))
}
