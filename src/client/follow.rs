//! Follows a job's stream to its end (`xn -f ID --follow`, `xn -s LINE --wait`): output to
//! stdout/stderr as it is produced, then the job's exit code. The stream's closing message
//! carries the byte totals; a stream that ends short is an error, never a silent success. A
//! queued job that no connected slave can take says why; Ctrl-C ends xn and says which jobs
//! keep running (the one followed and, for `xn submit FILE --wait`, those not yet followed), and
//! so does an output closed under xn (`| head`), which ends it with 141, not the job's code.

use super::interrupt::{say_left, Interrupts};
use super::link::{said_on_closing, Link};
use super::output::{before_note, Fd, Sink};
use super::visible::visible;
use super::EXIT_XN_ERROR;
use crate::conn::Incoming;
use crate::http::HubUrl;
use crate::wire::{DataFrame, JobId, JobState, StreamMsg, DATA_HEADER_LEN};
use anyhow::{bail, Result};
use std::io::Write;

/// How following a job ended.
pub struct Followed {
    /// The code xn exits with: the job's, or 128 + the signal that stopped xn.
    pub code: i32,
    /// Whether xn stops here, having said why: a signal (and the note of what keeps running
    /// is said), its output closed, or the hub ended the stream (a revoked token). Nothing
    /// more is to be followed.
    pub stopped: bool,
    /// Whether the job's stdout and stderr, as written, end inside a line (which a header
    /// after them must end first).
    pub open_lines: [bool; 2],
}

/// Follows job `id` to its end; returns the code xn exits with.
pub async fn run(hub: &HubUrl, id: JobId) -> Result<i32> {
    // Caught before anything else: a Ctrl-C from now on leaves the job running, and says so.
    let mut interrupts = Interrupts::catch()?;
    Ok(follow(hub, id, &[], &mut interrupts).await?.code)
}

/// Follows job `id` to its end, or until one of `interrupts` comes: then says that `id` and
/// `later` (jobs the caller would have followed next) keep running, and returns at once.
pub async fn follow(
    hub: &HubUrl,
    id: JobId,
    later: &[JobId],
    interrupts: &mut Interrupts,
) -> Result<Followed> {
    let mut pos = [0u64; 2];
    // The first connection may take a while (an unreachable hub): Ctrl-C ends that too.
    let mut link = tokio::select! {
        link = Link::open(hub, id, pos, false) => link?,
        code = interrupts.recv() => {
            say_left(code, &keep_running(id, later, false));
            return Ok(Followed { code, stopped: true, open_lines: [false; 2] });
        }
    };
    let mut out = Sink::new(Fd::Stdout);
    let mut err = Sink::new(Fd::Stderr);
    let mut attempt = None;
    // Whether the job waits in the queue, as the stream last said: a note on leaving says it
    // stays queued rather than that it keeps running.
    let mut queued = false;
    // The last reason said for the job waiting in the queue.
    let mut said_queued: Option<String> = None;
    loop {
        // `Link::next` only awaits a channel (and a reconnect, which may be dropped): it may
        // lose the race without losing a message.
        let next = tokio::select! {
            next = link.next(pos) => match next {
                // The hub's message said why (its line is out): not again, and no other job
                // can be followed with the token either. Which jobs run on, though: `--wait`
                // has not said their ids.
                Err(e) if said_on_closing(&e) => {
                    before_note(&mut out, &mut err);
                    let _ = writeln!(std::io::stderr(), "xn: {}", cut_off(id, later));
                    return Ok(Followed {
                        code: EXIT_XN_ERROR,
                        stopped: true,
                        open_lines: open_lines(&out, &err),
                    });
                }
                next => next?,
            },
            code = interrupts.recv() => {
                before_note(&mut out, &mut err);
                say_left(code, &keep_running(id, later, queued));
                return Ok(Followed {
                    code,
                    stopped: true,
                    open_lines: open_lines(&out, &err),
                });
            }
        };
        match next {
            Incoming::Data(frame) => {
                let f = DataFrame::decode(&frame)?;
                let i = f.stream.output_index();
                if f.offset != pos[i] {
                    bail!(
                        "job {id}: the hub sent {:?} from byte {} but {} bytes were received",
                        f.stream,
                        f.offset,
                        pos[i]
                    );
                }
                pos[i] += f.data.len() as u64;
                let sink = if i == 0 { &mut out } else { &mut err };
                if let Err(e) = sink.write(frame.slice(DATA_HEADER_LEN..)).await {
                    return output_closed(e, id, later);
                }
            }
            Incoming::Msg(StreamMsg::End { job }) => {
                if let Err(e) = out.close().and_then(|()| err.close()) {
                    return output_closed(e, id, later);
                }
                if pos != [job.stdout_len, job.stderr_len] {
                    bail!(
                        "job {id}: output truncated: received {}+{} of {}+{} bytes",
                        pos[0],
                        pos[1],
                        job.stdout_len,
                        job.stderr_len
                    );
                }
                // A job that exited or was killed with a reason: the hub could not store all
                // of its output (`output incomplete: ...`). What was written is not the job's
                // whole output, so xn does not exit as if it were.
                let incomplete = matches!(job.state, JobState::Exited | JobState::Signaled)
                    && job.reason.is_some();
                if job.state != JobState::Exited || incomplete {
                    before_note(&mut out, &mut err);
                    eprintln!("xn: job {id} {}", visible(&job.describe_end()));
                }
                return Ok(Followed {
                    code: match incomplete {
                        true => super::EXIT_XN_ERROR,
                        false => job.client_exit_code().unwrap_or(1),
                    },
                    stopped: false,
                    open_lines: open_lines(&out, &err),
                });
            }
            // A retry: the new attempt's output starts at offset 0.
            Incoming::Msg(StreamMsg::Job { job }) => {
                queued = job.state == JobState::Queued;
                // Why nobody runs it, each time that changes (the hub sends the record as the
                // stream starts, at each change of state, and when a queued job's reason
                // changes).
                if let (JobState::Queued, Some(why)) = (job.state, &job.reason) {
                    if said_queued.as_ref() != Some(why) {
                        before_note(&mut out, &mut err);
                        eprintln!("[job {id} is queued: {}]", visible(why));
                        said_queued = Some(why.clone());
                    }
                }
                if attempt.is_some_and(|a| a != job.attempt) {
                    before_note(&mut out, &mut err);
                    eprintln!("xn: job {id}: retrying, attempt {}", job.attempt);
                    pos = [0, 0];
                }
                attempt = Some(job.attempt);
            }
            Incoming::Msg(StreamMsg::Error { message }) => {
                before_note(&mut out, &mut err);
                eprintln!("xn: hub: {}", visible(&message));
            }
            Incoming::Bad(e) => eprintln!("xn: unreadable message from hub: {}", visible(&e)),
        }
    }
}

/// What follows a failed write of the job's output: the reader went away (`xn ... --wait |
/// head`), and xn with it, but the job does not. Not the job's exit code (xn does not know it,
/// and 0 would say that the job succeeded): 128 + SIGPIPE, as for a program that a closed pipe
/// killed, and the note that Ctrl-C gets, on stderr if that is still open.
fn output_closed(e: std::io::Error, id: JobId, later: &[JobId]) -> Result<Followed> {
    if e.kind() != std::io::ErrorKind::BrokenPipe {
        return Err(e.into());
    }
    let _ = writeln!(
        std::io::stderr(),
        "[xn: its output was closed; {}]",
        stopped_following(id, later)
    );
    Ok(Followed {
        code: 128 + libc::SIGPIPE,
        stopped: true,
        open_lines: [false; 2],
    })
}

fn open_lines(out: &Sink, err: &Sink) -> [bool; 2] {
    [out.ends_mid_line(), err.ends_mid_line()]
}

/// What an interrupt leaves running: job `id` (which, `queued`, has not started: it stays
/// queued), and the `later` jobs not yet followed.
pub(super) fn keep_running(id: JobId, later: &[JobId], queued: bool) -> String {
    match (later, queued) {
        ([], false) => {
            format!("job {id} keeps running: xn -k {id} cancels it, xn -f {id} --follow follows it")
        }
        ([], true) => {
            format!("job {id} stays queued: xn -k {id} cancels it, xn -f {id} --follow follows it")
        }
        (_, false) => format!(
            "jobs {} keep running: xn -k ID cancels one, xn -f ID --follow follows it",
            with_later(id, later)
        ),
        // The later ones may be queued or running: xn has not looked.
        (_, true) => format!(
            "job {id} stays queued and {} {} on: xn -k ID cancels one, xn -f ID --follow \
             follows it",
            match later {
                [_] => "job",
                _ => "jobs",
            },
            match later {
                [one] => format!("{one} goes"),
                _ => format!("{} go", id_list(later)),
            }
        ),
    }
}

/// What a token the hub stopped taking (revoked, expired) leaves: job `id` and the `later` jobs
/// not yet followed, running on.
fn cut_off(id: JobId, later: &[JobId]) -> String {
    if later.is_empty() {
        return format!(
            "stopped following job {id} (it runs on): this token can no longer reach it"
        );
    }
    format!(
        "stopped following jobs {} (they run on): this token can no longer reach them",
        with_later(id, later)
    )
}

/// What an output closed under xn leaves: job `id` (which may have ended meanwhile: xn stopped
/// reading before it knew) and the `later` jobs not yet followed.
fn stopped_following(id: JobId, later: &[JobId]) -> String {
    if later.is_empty() {
        return format!(
            "stopped following job {id}: xn -f {id} --follow follows it again, xn -k {id} cancels it"
        );
    }
    format!(
        "stopped following jobs {}: xn -f ID --follow follows one, xn -k ID cancels one",
        with_later(id, later)
    )
}

/// Job `id` and the `later` ones, as [`id_list`] writes them.
fn with_later(id: JobId, later: &[JobId]) -> String {
    let ids: Vec<JobId> = std::iter::once(id).chain(later.iter().copied()).collect();
    id_list(&ids)
}

/// Ids as a reader takes them in: in order, a run of three or more consecutive ones as
/// `FIRST-LAST` (a job file's jobs get consecutive ids, and may be thousands).
fn id_list(ids: &[JobId]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
            j += 1;
        }
        if j - i >= 2 {
            parts.push(format!("{}-{}", ids[i], ids[j]));
        } else {
            parts.extend(ids[i..=j].iter().map(JobId::to_string));
        }
        i = j + 1;
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::{id_list, keep_running};

    #[test]
    fn the_note_names_every_job_left_running() {
        assert_eq!(
            keep_running(7, &[], false),
            "job 7 keeps running: xn -k 7 cancels it, xn -f 7 --follow follows it"
        );
        assert_eq!(
            keep_running(7, &[8], false),
            "jobs 7, 8 keep running: xn -k ID cancels one, xn -f ID --follow follows it"
        );
    }

    /// A job that has not started is not said to keep running.
    #[test]
    fn a_queued_job_stays_queued() {
        assert_eq!(
            keep_running(7, &[], true),
            "job 7 stays queued: xn -k 7 cancels it, xn -f 7 --follow follows it"
        );
        assert_eq!(
            keep_running(7, &[8], true),
            "job 7 stays queued and job 8 goes on: xn -k ID cancels one, xn -f ID --follow \
             follows it"
        );
        assert_eq!(
            keep_running(7, &[8, 9, 10], true),
            "job 7 stays queued and jobs 8-10 go on: xn -k ID cancels one, xn -f ID --follow \
             follows it"
        );
        assert_eq!(
            id_list(&[3, 4, 5, 9, 10, 12, 13, 14, 15]),
            "3-5, 9, 10, 12-15"
        );
    }
}
