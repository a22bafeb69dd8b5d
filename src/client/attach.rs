//! `xn -a ID`: attach to a job's terminal. Replays its output (all of it, or the last
//! `--tail` bytes), then continues live from the same offset-addressed stream. From a terminal,
//! to a job that has one, raw keystrokes go to the job and the escape key detaches or
//! terminates; otherwise (a pipe, or a `--no-tty` job) input goes line by line and `/term` or
//! `/detach` do the same. Whatever was read before a detach or a terminate is sent first.

use super::interrupt::{say_left, Interrupts};
use super::link::{said_on_closing, Link};
use super::output::{before_note, end_lines, Fd, Sink};
use super::tail::TailStart;
use super::terminal::{describe_escape, say, Escaper, Key, RawMode};
use super::visible::visible;
use super::EXIT_XN_ERROR;
use crate::conn::{ConnSender, Incoming};
use crate::http::HubUrl;
use crate::wire::{
    ClientMsg, DataFrame, JobId, JobRecord, JobState, Stream, StreamMsg, DATA_HEADER_LEN,
};
use anyhow::{bail, Context, Result};
use hyper::Method;
use std::io::{BufRead, IsTerminal, Read};
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

/// How `xn -a` behaves.
#[derive(Clone, Debug)]
pub struct AttachOptions {
    /// Replay only the last this many bytes of each stream.
    pub tail: Option<u64>,
    /// The escape key, or `None` for no escape key.
    pub escape: Option<u8>,
    /// Watch only: input is never sent.
    pub read_only: bool,
}

/// What the local side produced.
enum Input {
    /// Raw bytes from a terminal.
    Raw(Vec<u8>),
    /// One line (without its newline) from a pipe or file.
    Line(Vec<u8>),
    Eof,
}

/// Attaches to job `id` until it ends, the user detaches, or one of `interrupts` comes (caught
/// by the caller, from before it submitted the job with `xn -s LINE -a`).
pub async fn run(
    hub: &HubUrl,
    id: JobId,
    opts: &AttachOptions,
    interrupts: &mut Interrupts,
) -> Result<i32> {
    match attach(hub, id, opts, interrupts).await {
        // The hub's message said why it ended the stream (`[hub: token revoked]` is out): the
        // terminal is restored, and nothing repeats it.
        Err(e) if said_on_closing(&e) => Ok(EXIT_XN_ERROR),
        res => res,
    }
}

async fn attach(
    hub: &HubUrl,
    id: JobId,
    opts: &AttachOptions,
    interrupts: &mut Interrupts,
) -> Result<i32> {
    // Dialling may take a while (an unreachable hub): a signal ends that too.
    let (rec, mut starts, mut link) = tokio::select! {
        opened = open(hub, id, opts) => opened?,
        code = interrupts.recv() => {
            say_left(code, &format!("job {id} keeps running: xn -a {id} attaches to it"));
            return Ok(code);
        }
    };
    let from = [starts[0].from(), starts[1].from()];
    let terminal_in = std::io::stdin().is_terminal();
    // A viewer's terminal is raw too, so the job's bytes show exactly and keys do not echo. A
    // job with pipes has no terminal to take keys: ours stays as it is, so the user types and
    // edits lines, and Ctrl-D ends the job's input.
    let raw = if terminal_in && rec.spec.tty {
        Some(RawMode::enable().context("putting the terminal in raw mode")?)
    } else {
        None
    };
    say(&hint(id, opts, raw.is_some(), terminal_in));

    let (in_tx, mut inputs) = mpsc::channel::<Input>(64);
    let mut input_open = terminal_in || !opts.read_only;
    if input_open {
        spawn_stdin_reader(raw.is_some(), in_tx);
    }
    let mut escaper = Escaper::new(opts.escape);
    let mut winch = signal(SignalKind::window_change())?;
    let mut out = Sink::new(Fd::Stdout);
    let mut err = Sink::new(Fd::Stderr);
    let mut pos = from;
    // A retry starts a new attempt, whose output (and input) start at offset 0.
    let mut attempt = rec.attempt;
    let mut input_at = 0u64;
    // The state the stream last showed; `None` until its first message.
    let mut state: Option<JobState> = None;
    let first_state = rec.state;
    // Why the job waits in the queue, as last said.
    let mut said_why: Option<String> = None;
    // What was typed before the job started; sent when it does.
    let mut held: Vec<Order> = Vec::new();
    let sends_size = rec.spec.tty && raw.is_some() && !opts.read_only;

    loop {
        let orders: Vec<Order> = tokio::select! {
            ev = link.next(pos) => match ev? {
                Incoming::Data(frame) => {
                    let f = DataFrame::decode(&frame)?;
                    let i = f.stream.output_index();
                    if f.offset != pos[i] {
                        bail!("job {id}: the hub sent bytes from {} but {} were expected", f.offset, pos[i]);
                    }
                    let skip = starts[i].skip(f.offset, f.data);
                    pos[i] += f.data.len() as u64;
                    let sink = if i == 0 { &mut out } else { &mut err };
                    sink.write(frame.slice(DATA_HEADER_LEN + skip..)).await?;
                    continue;
                }
                Incoming::Msg(StreamMsg::Job { job }) => {
                    if job.attempt != attempt {
                        before_note(&mut out, &mut err);
                        say(&format!("[job {id}: retrying, attempt {}]", job.attempt));
                        attempt = job.attempt;
                        pos = [0, 0];
                        starts = [TailStart::whole(), TailStart::whole()];
                        input_at = 0;
                    }
                    // Why it waits, as `--wait` says it: first, and each time that changes.
                    if job.state == JobState::Queued
                        && (state.is_none() || job.reason != said_why)
                    {
                        let why = match &job.reason {
                            Some(why) => format!(": {}", visible(why)),
                            None => String::new(),
                        };
                        before_note(&mut out, &mut err);
                        say(&format!("[job {id} is queued{why}; waiting for it to start]"));
                        said_why = job.reason.clone();
                    }
                    let started = job.state == JobState::Running && state != Some(JobState::Running);
                    state = Some(job.state);
                    // A new connection (the hub restarted, the network came back) starts
                    // without this client's size: typing would not bring it back into force.
                    let resumed = link.take_reconnected() && job.state == JobState::Running;
                    if !started && !resumed {
                        continue;
                    }
                    let mut now = Vec::new();
                    if sends_size {
                        now.push(Order::Size);
                    }
                    now.append(&mut held);
                    now
                }
                Incoming::Msg(StreamMsg::End { job }) => {
                    out.close()?;
                    err.close()?;
                    drop(raw);
                    if pos != [job.stdout_len, job.stderr_len] {
                        bail!("job {id}: output truncated: received up to {pos:?} of {}+{} bytes",
                            job.stdout_len, job.stderr_len);
                    }
                    end_lines(&out, &err);
                    eprintln!("[job {id} {}]", visible(&job.describe_end()));
                    return Ok(job.client_exit_code().unwrap_or(1));
                }
                Incoming::Msg(StreamMsg::Error { message }) => {
                    before_note(&mut out, &mut err);
                    say(&format!("[hub: {}]", visible(&message)));
                    continue;
                }
                Incoming::Bad(e) => {
                    say(&format!("[unreadable message from hub: {}]", visible(&e)));
                    continue;
                }
            },
            input = inputs.recv(), if input_open => {
                let keys = match input {
                    Some(Input::Raw(bytes)) => escaper.feed(&bytes),
                    Some(Input::Line(line)) => match line.as_slice() {
                        b"/term" => vec![Key::Terminate],
                        b"/detach" => vec![Key::Detach],
                        _ => vec![Key::Send([line.as_slice(), b"\n"].concat())],
                    },
                    // End of piped input: the job's input ends too.
                    Some(Input::Eof) | None if raw.is_none() => {
                        input_open = false;
                        vec![Key::EndOfInput]
                    }
                    // The terminal itself went away: nothing more can be typed; detach.
                    Some(Input::Eof) | None => vec![Key::Detach],
                };
                let mut now = Vec::new();
                for key in keys {
                    match key {
                        // Sent after what came before it.
                        Key::Detach => {
                            now.push(Order::Detach);
                            break;
                        }
                        // A viewer's Ctrl-C stops watching.
                        Key::Send(bytes) if opts.read_only && bytes.contains(&3) => {
                            finish(&mut out, &mut err, raw);
                            eprintln!("[stopped watching job {id}]");
                            return Ok(0);
                        }
                        Key::Send(_) | Key::Terminate | Key::EndOfInput if opts.read_only => {}
                        Key::Terminate => {
                            say(&format!("[terminating job {id}]"));
                            now.push(Order::Terminate);
                        }
                        Key::Send(bytes) => now.push(Order::Input(bytes)),
                        Key::EndOfInput => now.push(Order::CloseStdin),
                    }
                }
                // Until the stream's first message, the job is as it was when we asked.
                if matches!(state.unwrap_or(first_state), JobState::Queued | JobState::Assigned) {
                    // Terminate works on a queued job; input waits for the job to start.
                    let (t, rest): (Vec<_>, Vec<_>) = now.into_iter().partition(|o| matches!(o, Order::Terminate | Order::Detach));
                    held.extend(rest);
                    t
                } else {
                    now
                }
            }
            _ = winch.recv(), if sends_size => vec![Order::Size],
            // SIGTERM, SIGHUP (the terminal is gone: nothing to say), or SIGINT: Ctrl-C when
            // the terminal is not raw (or someone's `kill -INT`).
            code = interrupts.recv() => {
                if code == 128 + libc::SIGHUP {
                    drop(raw);
                    return Ok(code);
                }
                finish(&mut out, &mut err, raw);
                let goes_on = goes_on(state.unwrap_or(first_state));
                if code == 128 + libc::SIGTERM {
                    eprintln!("[xn terminated; job {id} {goes_on}]");
                } else if opts.read_only {
                    eprintln!("[stopped watching job {id}]");
                } else {
                    eprintln!("[xn interrupted; job {id} {goes_on}: xn -a {id} to come back]");
                }
                return Ok(code);
            }
        };
        for order in orders {
            let sent = match order {
                Order::Input(bytes) => {
                    let r = match link.sender() {
                        Ok(tx) => tx.send_data(Stream::Stdin, id, input_at, &bytes).await,
                        Err(down) => Err(down.into()),
                    };
                    input_at += bytes.len() as u64;
                    r
                }
                Order::Terminate => send(&link, &ClientMsg::Terminate).await,
                Order::CloseStdin => send(&link, &ClientMsg::CloseStdin).await,
                Order::Size => match link.sender() {
                    Ok(tx) => send_size(tx).await,
                    Err(down) => Err(down.into()),
                },
                Order::Detach => {
                    if let Ok(tx) = link.sender() {
                        tx.close_and_flush("detached", Duration::from_secs(5)).await;
                    }
                    finish(&mut out, &mut err, raw);
                    if held.iter().any(|o| matches!(o, Order::Input(_))) {
                        eprintln!("[what was typed before job {id} started was not sent]");
                    }
                    eprintln!(
                        "[detached from job {id}; it {}: xn -a {id} to come back]",
                        goes_on(state.unwrap_or(first_state))
                    );
                    return Ok(0);
                }
            };
            // The stream reconnects by itself; what was typed meanwhile is not sent, and said so
            // (a key that ends up in a connection the hub has just left, before the link has
            // seen it go, is the one that cannot be told).
            if sent.is_err() {
                say("[not sent: the connection to the hub is down]");
            }
        }
    }
}

/// Before a note on leaving: writes what is queued (a write error no longer matters: xn is
/// leaving), restores the terminal, and ends the line the job's output left open.
/// The job's record, where each stream's replay starts (all of it, or `--tail`), and its
/// stream opened from there.
async fn open(
    hub: &HubUrl,
    id: JobId,
    opts: &AttachOptions,
) -> Result<(JobRecord, [TailStart; 2], Link)> {
    let rec: JobRecord = hub
        .call::<(), _>(Method::GET, &format!("/api/v1/jobs/{id}"), None)
        .await?;
    // With --tail, each stream starts at a character boundary near its cut.
    let starts = [
        TailStart::new(rec.stdout_len, opts.tail),
        TailStart::new(rec.stderr_len, opts.tail),
    ];
    let from = [starts[0].from(), starts[1].from()];
    let link = Link::open(hub, id, from, !opts.read_only).await?;
    Ok((rec, starts, link))
}

fn finish(out: &mut Sink, err: &mut Sink, raw: Option<RawMode>) {
    let _ = out.close();
    let _ = err.close();
    drop(raw);
    end_lines(out, err);
}

/// What a job does while xn is away: it keeps running, or, not started yet, stays queued.
fn goes_on(state: JobState) -> &'static str {
    match state {
        JobState::Queued => "stays queued",
        _ => "keeps running",
    }
}

/// What to tell the hub, in order; `Detach` comes last.
enum Order {
    Input(Vec<u8>),
    Terminate,
    CloseStdin,
    Size,
    Detach,
}

fn hint(id: JobId, opts: &AttachOptions, raw: bool, terminal: bool) -> String {
    if opts.read_only {
        return format!("[watching job {id}, read-only; Ctrl-C stops watching]");
    }
    match (raw, opts.escape) {
        (true, Some(k)) => {
            let k = describe_escape(k);
            format!("[attached to job {id}: {k} d detaches, {k} t terminates, {k} {k} sends {k}]")
        }
        (true, None) => format!("[attached to job {id}; no escape key]"),
        (false, _) => format!(
            "[attached to job {id}: lines go to the job; /detach detaches, /term terminates{}]",
            if terminal {
                ", Ctrl-D ends its input"
            } else {
                ""
            }
        ),
    }
}

/// Sends a control message on the link's connection, if it has one now.
async fn send(link: &Link, msg: &ClientMsg) -> Result<()> {
    link.sender()?.send(msg).await
}

async fn send_size(tx: &ConnSender) -> Result<()> {
    if let Ok((cols, rows)) = crossterm::terminal::size() {
        if rows > 0 && cols > 0 {
            tx.send(&ClientMsg::Resize { rows, cols }).await?;
        }
    }
    Ok(())
}

/// Reads stdin on a thread of its own (a blocking read; fd 0 stays blocking, as the shell that
/// shares it expects): raw chunks from a terminal, lines from anything else.
fn spawn_stdin_reader(terminal: bool, tx: mpsc::Sender<Input>) {
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        if terminal {
            let mut buf = [0u8; 4096];
            loop {
                match lock.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.blocking_send(Input::Raw(buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                }
            }
        } else {
            let mut line = Vec::new();
            loop {
                line.clear();
                match lock.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if line.last() == Some(&b'\n') {
                            line.pop();
                        }
                        if tx.blocking_send(Input::Line(line.clone())).is_err() {
                            return;
                        }
                    }
                }
            }
        }
        let _ = tx.blocking_send(Input::Eof);
    });
}
