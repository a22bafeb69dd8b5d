//! Follows a job's stream to its end (`xn -f ID --follow`, `xn -s LINE --wait`): output to
//! stdout/stderr as it is produced, then the job's exit code. The stream's closing message
//! carries the byte totals; a stream that ends short is an error, never a silent success. A
//! queued job that no connected slave can take says why; Ctrl-C says the job keeps running.

use super::interrupt::{say_left, Interrupts};
use super::link::Link;
use super::output::{before_note, Fd, Sink};
use super::visible::visible;
use crate::conn::Incoming;
use crate::http::HubUrl;
use crate::wire::{DataFrame, JobId, JobState, StreamMsg, DATA_HEADER_LEN};
use anyhow::{bail, Result};

/// How following a job ended.
pub struct Followed {
    /// The code xn exits with: the job's, or 128 + the signal that stopped xn.
    pub code: i32,
    /// Whether the job's stdout and stderr, as written, end inside a line (which a header
    /// after them must end first).
    pub open_lines: [bool; 2],
}

/// Follows job `id` to its end; returns the code xn exits with.
pub async fn run(hub: &HubUrl, id: JobId) -> Result<i32> {
    Ok(follow(hub, id).await?.code)
}

/// Follows job `id` to its end.
pub async fn follow(hub: &HubUrl, id: JobId) -> Result<Followed> {
    // Caught before anything else: a Ctrl-C from now on leaves the job running, and says so.
    let mut interrupts = Interrupts::catch()?;
    let mut pos = [0u64; 2];
    // The first connection may take a while (an unreachable hub): Ctrl-C ends that too.
    let mut link = tokio::select! {
        link = Link::open(hub, id, pos, false) => link?,
        code = interrupts.recv() => {
            say_left(code, &format!("job {id} keeps running: xn -k {id} cancels it, xn -f {id} --follow follows it"));
            return Ok(Followed { code, open_lines: [false; 2] });
        }
    };
    let mut out = Sink::new(Fd::Stdout);
    let mut err = Sink::new(Fd::Stderr);
    let mut attempt = None;
    // The last reason said for the job waiting in the queue.
    let mut said_queued: Option<String> = None;
    loop {
        // `Link::next` only awaits a channel (and a reconnect, which may be dropped): it may
        // lose the race without losing a message.
        let next = tokio::select! {
            next = link.next(pos) => next?,
            code = interrupts.recv() => {
                before_note(&mut out, &mut err);
                say_left(code, &format!(
                    "job {id} keeps running: xn -k {id} cancels it, xn -f {id} --follow follows it"
                ));
                return Ok(Followed { code, open_lines: open_lines(&out, &err) });
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
                sink.write(frame.slice(DATA_HEADER_LEN..)).await?;
            }
            Incoming::Msg(StreamMsg::End { job }) => {
                out.close()?;
                err.close()?;
                if pos != [job.stdout_len, job.stderr_len] {
                    bail!(
                        "job {id}: output truncated: received {}+{} of {}+{} bytes",
                        pos[0],
                        pos[1],
                        job.stdout_len,
                        job.stderr_len
                    );
                }
                if job.state != JobState::Exited {
                    before_note(&mut out, &mut err);
                    eprintln!("xn: job {id} {}", visible(&job.describe_end()));
                }
                return Ok(Followed {
                    code: job.client_exit_code().unwrap_or(1),
                    open_lines: open_lines(&out, &err),
                });
            }
            // A retry: the new attempt's output starts at offset 0.
            Incoming::Msg(StreamMsg::Job { job }) => {
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

fn open_lines(out: &Sink, err: &Sink) -> [bool; 2] {
    [out.ends_mid_line(), err.ends_mid_line()]
}
