//! `xn -f GROUP [--prefix]`, `xn -f GROUP --follow` and `xn -s LINE --all --wait`: the output
//! of every job of a broadcast group, each under a header naming its slave (or each line
//! prefixed with the slave's name), and when following the first non-zero exit code of the
//! group. The header is also the one over each job's output when `--wait` follows several jobs
//! of job files.

use super::fetch;
use super::interrupt::{say_left, Interrupts};
use super::output::Fd;
use super::visible::visible;
use crate::conn::{self, Incoming};
use crate::http::{query_escape, HubUrl};
use crate::wire::{JobId, JobRecord, JobState, StreamMsg};
use anyhow::{bail, Result};
use hyper::Method;
use std::io::Write;

/// Whether `s` names a group (`g7`) rather than a job.
pub fn is_group(s: &str) -> bool {
    s.strip_prefix('g')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Waits for every job of `group` and prints their outputs as [`run`] does, with the first
/// non-zero exit code (`xn -s LINE --all --wait`, `xn -f GROUP --follow`). SIGINT, SIGTERM and
/// SIGHUP, or the reader of xn's output going away (`| head`), stop xn, not the group, and
/// xn says how to reach it again. `interrupts` are caught by the caller (from before the
/// submission, for `--all --wait`).
pub async fn follow(
    hub: &HubUrl,
    group: &str,
    prefix: bool,
    interrupts: &mut Interrupts,
) -> Result<i32> {
    let g = visible(group);
    let again = format!("xn -f {g} --follow follows it again, xn -k {g} cancels it");
    tokio::select! {
        res = run(hub, group, prefix, true) => match res {
            Err(e) if is_broken_pipe(&e) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "[xn: its output was closed; stopped following group {g}: {again}]"
                );
                Ok(128 + libc::SIGPIPE)
            }
            res => res,
        },
        code = interrupts.recv() => {
            say_left(code, &format!("group {g} keeps running: {again}"));
            Ok(code)
        }
    }
}

/// Whether `e` is a write to a closed pipe.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Prints the output of every job of `group` so far, or with `wait` once each has ended.
pub async fn run(hub: &HubUrl, group: &str, prefix: bool, wait: bool) -> Result<i32> {
    let jobs: Vec<JobRecord> = hub
        .call::<(), _>(
            Method::GET,
            &format!("/api/v1/jobs?group={}", query_escape(group)),
            None,
        )
        .await?;
    if jobs.is_empty() {
        bail!("no group {group}");
    }
    let mut code = 0;
    for job in jobs {
        let rec = if wait && !job.state.is_terminal() {
            wait_end(hub, job.id).await?
        } else {
            job
        };
        // A slave's name is its own, and a reason may quote a user's text: escaped.
        let who = rec
            .slave
            .as_deref()
            .or(rec.spec.on_slave.as_deref())
            .map_or_else(|| format!("job {}", rec.id), |n| visible(n).into_owned());
        if !prefix {
            let how = if rec.state.is_terminal() {
                rec.describe_end()
            } else {
                rec.state.as_str().to_string()
            };
            println!("{}", header(&who, rec.id, Some(&how)));
        }
        let p = prefix.then(|| format!("{who}: "));
        for (name, fd, len) in [
            ("stdout", Fd::Stdout, rec.stdout_len),
            ("stderr", Fd::Stderr, rec.stderr_len),
        ] {
            // The next header (or the next job's lines, on stderr) starts on a line of its own.
            if len > 0 && fetch::copy(hub, rec.id, None, name, fd, p.as_deref()).await? {
                match fd {
                    Fd::Stdout => println!(),
                    Fd::Stderr => eprintln!(),
                }
            }
        }
        if wait {
            let c = rec.client_exit_code().unwrap_or(1);
            if code == 0 {
                code = c;
            }
        }
    }
    Ok(code)
}

/// The line over one job's output among several: `==> WHO (job ID): HOW <==`, HOW (how the job
/// ended) when it is known, with control characters written out.
pub fn header(who: &str, id: JobId, how: Option<&str>) -> String {
    match how {
        Some(how) => format!("==> {} (job {id}): {} <==", visible(who), visible(how)),
        None => format!("==> {} (job {id}) <==", visible(who)),
    }
}

/// Before a header on stdout: ends the lines that the last job's stdout and stderr left open
/// (as [`super::follow::Followed::open_lines`]), so that it starts a line of its own.
pub fn end_open_lines(open: [bool; 2]) {
    if open[0] {
        println!();
    }
    if open[1] {
        eprintln!();
    }
}

/// Waits for a job to end (through its stream, without printing) and returns its record.
pub async fn wait_end(hub: &HubUrl, id: JobId) -> Result<JobRecord> {
    // Offsets past the end: the hub sends no output of this attempt, only state changes.
    let ws = hub
        .websocket(&format!(
            "/api/v1/jobs/{id}/stream?stdout={}&stderr={}",
            u64::MAX,
            u64::MAX
        ))
        .await?;
    let (mut rd, _tx) = conn::start(ws);
    let mut said_queued: Option<String> = None;
    while let Some(msg) = rd.recv::<StreamMsg>().await? {
        match msg {
            Incoming::Msg(StreamMsg::End { job }) => return Ok(job),
            // Why nobody runs it (its slave went away), each time that changes.
            Incoming::Msg(StreamMsg::Job { job }) => {
                if let (JobState::Queued, Some(why)) = (job.state, &job.reason) {
                    if said_queued.as_ref() != Some(why) {
                        eprintln!("[job {id} is queued: {}]", visible(why));
                        said_queued = Some(why.clone());
                    }
                }
            }
            _ => {}
        }
    }
    bail!("job {id}: the hub closed the stream before the job ended")
}
