//! Runs one job: `sh -c -- LINE` (or its exact argv) in a session of its own, in a pty or with
//! pipes; feeds it input (its inline `stdin` first), resizes it, cancels it or ends it at its
//! timeout (SIGTERM to the group, a grace period, SIGKILL), and hands its output and its end to
//! the [`Outbox`]. When the job's main process exits, whatever it left running in its process
//! group is killed, so nothing outlives its job. The job's task owns all of this, the SIGKILL
//! after a cancel's grace period included, so the task ending means the job is over.

mod io;
mod start;

use super::confine::{Confinement, Place};
use super::outbox::{JobCtl, Outbox, Run};
use super::pty;
use crate::wire::{JobSpec, Outcome, Stream};
use io::{drain, input_task, read_err, read_out, resize, ReadBuf};
use nix::sys::signal::Signal;
use start::{start, why_not_started, Started};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The reason a job that ran past its timeout ends `failed` with.
pub const TIMEOUT_REASON: &str = "timeout";

/// The reason a run cancelled while it waited for an earlier run of its job ends `failed`
/// with (the hub records it as `cancelled`): its command never started.
pub const NOT_STARTED_REASON: &str = "cancelled before it started";

/// Runs the job to its end, confined as the operator chose, removes its work directory
/// (unless kept), and reports its end to the outbox. `grace` is the time between SIGTERM and
/// SIGKILL when its timeout passes.
pub async fn run(
    run: Run,
    spec: JobSpec,
    grace: Duration,
    confinement: Arc<Confinement>,
    outbox: Arc<Outbox>,
    mut ctl: mpsc::UnboundedReceiver<JobCtl>,
) {
    let id = run.job;
    // An earlier run of this job that the hub told us to forget may still be winding down:
    // its processes being killed, its work directory (the same one) being removed. That can
    // take long (a large tree to remove, a process in uninterruptible sleep), and a cancel
    // meanwhile must not wait for it, nor start the command only to stop it.
    let mut lane = outbox.lane(id);
    let mut early = Vec::new();
    {
        let turn = lane.turn();
        tokio::pin!(turn);
        loop {
            tokio::select! {
                () = &mut turn => break,
                order = ctl.recv() => match order {
                    Some(JobCtl::Cancel(_)) => {
                        tracing::info!(job = id, "cancelled before it started");
                        outbox.ended(run, Outcome::Failed { reason: NOT_STARTED_REASON.into() });
                        return;
                    }
                    // Forgotten: nobody wants to hear of it.
                    None => return,
                    // Input, a size: for the command once it runs.
                    Some(order) => early.push(order),
                },
            }
        }
    }
    let outcome = match place(&confinement, id).await {
        Err(e) => Outcome::Failed {
            reason: format!("cannot prepare the job: {e}"),
        },
        Ok(place) => {
            let outcome = match start(&spec, &confinement, &place) {
                Ok(started) => supervise(run, started, &spec, grace, &outbox, (early, ctl)).await,
                Err(e) => Outcome::Failed {
                    reason: format!(
                        "cannot start job: {}",
                        why_not_started(&e, &spec, &confinement, &place)
                    ),
                },
            };
            // Its processes are gone (the group was killed). Most jobs leave their work
            // directory empty, and removing an empty one is one quick syscall; a tree left
            // behind is removed off the runtime, as that can take long.
            if !confinement.clean_if_empty(&place) {
                let c = confinement.clone();
                let _ = tokio::task::spawn_blocking(move || c.clean(&place)).await;
            }
            outcome
        }
    };
    tracing::info!(job = id, ?outcome, "job ended");
    outbox.ended(run, outcome);
    drop(lane);
}

/// Makes the job's directories and cgroup on the spot; when an earlier job of the same id
/// left some behind, off the runtime, as clearing them may take long.
async fn place(confinement: &Arc<Confinement>, id: u64) -> std::io::Result<Place> {
    match confinement.place(&id.to_string(), false) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let c = confinement.clone();
            tokio::task::spawn_blocking(move || c.place(&id.to_string(), true))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)))
        }
        placed => placed,
    }
}

async fn supervise(
    run: Run,
    mut job: Started,
    spec: &JobSpec,
    grace: Duration,
    outbox: &Outbox,
    (early, mut ctl): (Vec<JobCtl>, mpsc::UnboundedReceiver<JobCtl>),
) -> Outcome {
    outbox.started(run, job.pgid);
    let input = input_task(&mut job);
    if let Some(text) = &spec.stdin {
        let _ = input.send(Some(text.as_bytes().to_vec()));
        let _ = input.send(None);
        // A terminal's EOF character ends a partial line first; a second one is end of input.
        if spec.tty && !text.is_empty() && !text.ends_with('\n') {
            let _ = input.send(None);
        }
    }
    // Orders that came while the run waited for its turn (never a cancel: that ends the wait).
    for order in early {
        match order {
            JobCtl::Input(data) => {
                let _ = input.send(Some(data));
            }
            JobCtl::CloseStdin => {
                let _ = input.send(None);
            }
            JobCtl::Resize(rows, cols) => resize(&job.out, rows, cols, run),
            JobCtl::Cancel(_) => {}
        }
    }
    // The timeout counts from the start of the process; a far-off instant stands for none.
    let start = tokio::time::Instant::now();
    let limit = spec
        .timeout
        .and_then(|t| Duration::try_from_secs_f64(t).ok());
    let deadline = limit
        .and_then(|d| start.checked_add(d))
        .unwrap_or_else(|| start + Duration::from_secs(100 * 365 * 86400));
    let mut timed_out = false;
    let mut buf = ReadBuf::new();
    let mut buf2 = ReadBuf::new();
    let mut out_open = true;
    // When a cancel's grace period runs out: then SIGKILL.
    let mut kill_at: Option<tokio::time::Instant> = None;
    let mut ctl_open = true;
    let mut cancelled = false;
    let status: ExitStatus = loop {
        tokio::select! {
            _ = sleep_until(kill_at), if kill_at.is_some() => {
                kill_all(&job, Signal::SIGKILL);
                kill_at = None;
            }
            n = read_out(&mut job.out, buf.space()), if out_open => match n {
                Some(n) => outbox.push(run, Stream::Stdout, buf.filled(n)).await,
                None => out_open = false,
            },
            n = read_err(&mut job.err, buf2.space()) => match n {
                Some(n) => outbox.push(run, Stream::Stderr, buf2.filled(n)).await,
                None => job.err = None,
            },
            order = ctl.recv(), if ctl_open => match order {
                Some(JobCtl::Input(data)) => { let _ = input.send(Some(data)); }
                Some(JobCtl::CloseStdin) => { let _ = input.send(None); }
                Some(JobCtl::Resize(rows, cols)) => resize(&job.out, rows, cols, run),
                Some(JobCtl::Cancel(grace)) => {
                    cancelled = true;
                    kill_all(&job, Signal::SIGTERM);
                    // Stopped processes must run to act on SIGTERM.
                    kill_all(&job, Signal::SIGCONT);
                    let at = tokio::time::Instant::now() + grace;
                    kill_at = Some(kill_at.map_or(at, |k| k.min(at)));
                }
                // The outbox forgot the job (the hub gave it up): stop it now.
                None => {
                    kill_all(&job, Signal::SIGKILL);
                    cancelled = true;
                    ctl_open = false;
                }
            },
            _ = tokio::time::sleep_until(deadline), if limit.is_some() && !timed_out => {
                tracing::info!(job = run.job, "timeout of {limit:?} passed; terminating");
                timed_out = true;
                cancelled = true;
                kill_all(&job, Signal::SIGTERM);
                kill_all(&job, Signal::SIGCONT);
                let at = tokio::time::Instant::now() + grace;
                kill_at = Some(kill_at.map_or(at, |k| k.min(at)));
            }
            st = job.child.wait() => match st {
                Ok(st) => break st,
                Err(e) => {
                    tracing::error!(job = run.job, "waiting for job: {e}");
                    kill_all(&job, Signal::SIGKILL);
                    return Outcome::Failed { reason: format!("lost track of the process: {e}") };
                }
            },
        }
    };
    // The main process is gone: end what it left in its group, then collect the last output.
    // A cancelled job's whole session goes; otherwise the group (a scan of every process in
    // the system is not worth it for each job that ends normally). With `--cgroup`, all that
    // it started, wherever it went.
    if cancelled {
        kill_all(&job, Signal::SIGKILL);
    } else {
        pty::signal_group(job.pgid, Some(Signal::SIGKILL));
        kill_cgroup(&job);
    }
    // Forgotten (the hub gave the run up): nobody will read its last output, so it is not
    // waited for. A process that left the job's session may hold the output open for as long
    // as it lives, and the job's next run waits for this one to be gone.
    if ctl_open {
        drain(run, &mut job, outbox, out_open, [&mut buf, &mut buf2]).await;
    }
    if timed_out {
        return Outcome::Failed {
            reason: TIMEOUT_REASON.into(),
        };
    }
    match (status.code(), status.signal()) {
        (Some(code), _) => Outcome::Exited { code },
        (None, Some(signal)) => Outcome::Signaled { signal },
        _ => Outcome::Failed {
            reason: format!("unknown exit status {status}"),
        },
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Signals the job's process group and every other process of its session (an interactive
/// shell's pipelines live in groups of their own), and with `--cgroup` every process in its
/// cgroup (those that left the session too).
fn kill_all(job: &Started, sig: Signal) {
    pty::signal_group(job.pgid, Some(sig));
    pty::signal_session(job.pgid, Some(sig));
    match &job.cgroup {
        Some(_) if sig == Signal::SIGKILL => kill_cgroup(job),
        Some(cg) => cg.signal(sig),
        None => {}
    }
}

/// With `--cgroup`, kills every process the job started, wherever it went.
fn kill_cgroup(job: &Started) {
    if let Some(cg) = &job.cgroup {
        if let Err(e) = cg.kill() {
            tracing::warn!("killing the job's cgroup: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MAX_DATA_CHUNK;
    use crate::slave::confine::ConfineOptions;
    use crate::slave::outbox::Item;
    use crate::wire::SlaveMsg;

    /// The earlier run of a job may take long to go (a large work directory to remove, a
    /// process in uninterruptible sleep): a cancel of the run waiting behind it ends that run
    /// at once, and its command never starts.
    #[test]
    fn a_run_cancelled_while_it_waits_for_the_earlier_run_never_starts() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        // Not the default work directory: that is the test process's, and
        // `confine::tests::a_work_dir_left_at_our_pid_is_cleared` removes it meanwhile.
        let opts = ConfineOptions {
            allow_root_jobs: true,
            work_dir: Some(dir.path().join("work")),
            ..Default::default()
        };
        let confinement = Arc::new(rt.block_on(Confinement::new(&opts)).unwrap());
        let outbox = Arc::new(Outbox::new(MAX_DATA_CHUNK));
        rt.block_on(async {
            // An earlier run of job 1, forgotten, still holds the lane.
            let mut earlier = outbox.lane(1);
            earlier.turn().await;
            let (tx, rx) = mpsc::unbounded_channel();
            let run = outbox.add(1, None, true, tx.clone()).unwrap();
            let spec = JobSpec {
                tty: false,
                ..JobSpec::shell(format!("touch {}", marker.display()))
            };
            let task = tokio::spawn(super::run(
                run,
                spec,
                Duration::from_secs(1),
                confinement.clone(),
                outbox.clone(),
                rx,
            ));
            tx.send(JobCtl::Cancel(Duration::from_secs(1))).unwrap();
            tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .expect("the cancelled run waited for the earlier one")
                .unwrap();
            drop(earlier);
        });
        assert!(!marker.exists(), "its command ran");
        let items = outbox.take(0, &mut Vec::with_capacity).unwrap();
        let ended = items.iter().any(|i| {
            matches!(i, Item::Msg(SlaveMsg::Ended { job: 1, outcome: Outcome::Failed { reason }, .. })
                if reason == NOT_STARTED_REASON)
        });
        assert!(ended, "no end reported");
        confinement.remove_root();
    }
}
