//! `xn -s LINE`, `xn -s --file FILE`, `xn submit FILE`: submit one job, or every job of one or
//! more job files in one request; print the ids (or, with `--all`, the group), or follow the
//! jobs to their end (`--wait`; several, each under a header), or attach (`-a`). Flags such as
//! `--env` and `--on` apply to every job submitted, on top of what a file says.

use super::attach::{self, AttachOptions};
use super::interrupt::{say_left, Interrupts};
use super::visible::visible;
use super::{follow, group, jobfile};
use crate::http::{HubError, HubUrl};
use crate::wire::{BroadcastReply, JobId, JobSpec, SubmitManyReply, SubmitReply};
use anyhow::{bail, Context, Result};
use hyper::Method;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

/// What to do once the jobs are accepted.
pub enum Then {
    PrintId,
    Wait,
    Attach(AttachOptions),
}

/// Where the jobs come from.
pub enum Source {
    Line(String),
    /// Exact words, no shell.
    Argv(Vec<String>),
    Files(Vec<PathBuf>),
}

/// Job settings from the command line, applied to every job submitted.
#[derive(Default, Debug, Clone)]
pub struct Overrides {
    pub no_tty: bool,
    /// `K=V` pairs.
    pub env: Vec<String>,
    pub cwd: Option<String>,
    pub labels: Vec<String>,
    pub slave: Option<String>,
    pub timeout: Option<f64>,
    pub retries: Option<u32>,
    pub retries_on_failure: bool,
    pub name: Option<String>,
    pub slots: Option<u32>,
    pub stdin_file: Option<PathBuf>,
}

impl Overrides {
    fn apply(&self, spec: &mut JobSpec) -> Result<()> {
        if self.no_tty {
            spec.tty = false;
        }
        for kv in &self.env {
            let Some((k, v)) = kv.split_once('=') else {
                bail!("--env {kv:?}: expected NAME=VALUE");
            };
            spec.env.insert(k.to_string(), v.to_string());
        }
        for l in &self.labels {
            if !spec.labels.contains(l) {
                spec.labels.push(l.clone());
            }
        }
        let set = |field: &mut Option<String>, v: &Option<String>| {
            if v.is_some() {
                field.clone_from(v);
            }
        };
        set(&mut spec.cwd, &self.cwd);
        set(&mut spec.on_slave, &self.slave);
        set(&mut spec.name, &self.name);
        if self.timeout.is_some() {
            spec.timeout = self.timeout;
        }
        if let Some(r) = self.retries {
            spec.retries = r;
        }
        spec.retries_on_failure |= self.retries_on_failure;
        if let Some(s) = self.slots {
            spec.slots = s;
        }
        if let Some(f) = &self.stdin_file {
            spec.stdin = Some(jobfile::read_stdin_file(f)?);
        }
        Ok(())
    }
}

/// `--timeout SECS`: a positive number of seconds. `nan` and `inf` parse as numbers, but JSON
/// has no such number: sent, they became `null`, a job with no timeout at all.
pub(super) fn parse_timeout(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if t.is_finite() && t > 0.0 => Ok(t),
        Ok(_) => Err("must be a positive number of seconds (like 30 or 0.5)".into()),
        Err(e) => Err(e.to_string()),
    }
}

pub async fn run(
    hub: &HubUrl,
    source: Source,
    ov: &Overrides,
    all: bool,
    prefix: bool,
    then: Then,
) -> Result<i32> {
    // Refused before anything is submitted: a refusal after it would leave jobs running that
    // the user was told (exit 255) did not go through.
    if all && matches!(then, Then::Attach(_)) {
        bail!("-a attaches to one job; it does not go with --all");
    }
    let mut places = jobfile::Places::default();
    let (specs, one_line) = match source {
        Source::Line(_) | Source::Argv(_) => {
            let mut spec = match source {
                Source::Argv(words) => JobSpec {
                    command: String::new(),
                    argv: Some(words),
                    ..JobSpec::default()
                },
                Source::Line(line) => JobSpec::shell(line),
                Source::Files(_) => unreachable!("matched above"),
            };
            // A job submitted from a terminal starts with that terminal's size.
            if !ov.no_tty && std::io::stdout().is_terminal() {
                if let Ok((cols, rows)) = crossterm::terminal::size() {
                    if rows > 0 && cols > 0 {
                        (spec.rows, spec.cols) = (rows, cols);
                    }
                }
            }
            (vec![spec], true)
        }
        Source::Files(files) => {
            let mut specs = Vec::new();
            for f in &files {
                specs.extend(jobfile::load(f, &mut places)?);
            }
            (specs, false)
        }
    };
    if matches!(then, Then::Attach(_)) && specs.len() != 1 {
        bail!(
            "-a attaches to one job; the files hold {} jobs (nothing was submitted)",
            specs.len()
        );
    }
    let mut specs = specs;
    for spec in &mut specs {
        ov.apply(spec)?;
    }
    if all && specs.len() != 1 {
        bail!(
            "--all runs one job on every slave; got {} jobs",
            specs.len()
        );
    }
    // Caught before the request goes: the hub may create the jobs whatever becomes of xn, and
    // a signal must not leave the user without their ids. Kept for `--wait` and `-a`, so that
    // none is lost on the way.
    let mut interrupts = Interrupts::catch()?;
    let (submitted, signal) =
        match answer(&mut interrupts, send(hub, &specs, &places, all, one_line)).await? {
            Answer::Reply(submitted, signal) => (submitted, signal),
            Answer::GaveUp(code) => return Ok(code),
        };
    if let Some(code) = signal {
        // As for a signal just after the answer: what was made, and how to reach it.
        if matches!(then, Then::PrintId) {
            print_ids(&submitted);
        }
        say_left(code, &submitted.keeps_running());
        return Ok(code);
    }
    let ids = match (submitted, then) {
        (Submitted::Group(g), Then::Wait) => {
            return group::follow(hub, &g, prefix, &mut interrupts).await
        }
        (s, Then::PrintId) => {
            print_ids(&s);
            return Ok(0);
        }
        (Submitted::Group(_), Then::Attach(_)) => {
            unreachable!("refused above, before the broadcast")
        }
        (Submitted::Jobs(ids), Then::Attach(opts)) => {
            return match ids.as_slice() {
                [id] => attach::run(hub, *id, &opts, &mut interrupts).await,
                // One spec was sent (checked above), so only a hub that breaks the protocol gets
                // here.
                _ => bail!("the hub answered {} job ids for one job", ids.len()),
            };
        }
        (Submitted::Jobs(ids), Then::Wait) => ids,
    };
    // Followed one after the other; the exit code is the first non-zero one. Several jobs'
    // outputs each come under a header, as a group's do. A signal ends the whole wait (caught
    // once, so that none is lost between two jobs), and the note names the job followed and
    // every one after it.
    let mut code = 0;
    let mut open_lines = [false; 2];
    for (i, &id) in ids.iter().enumerate() {
        if ids.len() > 1 {
            group::end_open_lines(open_lines);
            let who = specs.get(i).map_or_else(|| format!("job {id}"), label);
            println!("{}", group::header(&who, id, None));
        }
        let followed = follow::follow(hub, id, &ids[i + 1..], &mut interrupts).await?;
        if followed.stopped {
            return Ok(followed.code);
        }
        open_lines = followed.open_lines;
        if code == 0 {
            code = followed.code;
        }
    }
    Ok(code)
}

/// What the hub made of a submission.
enum Submitted {
    /// A broadcast's group (`--all`).
    Group(String),
    /// The new jobs' ids, in the order of their specs.
    Jobs(Vec<JobId>),
}

impl Submitted {
    /// What keeps running when xn stops now, and how to reach it.
    fn keeps_running(&self) -> String {
        match self {
            Submitted::Group(g) => {
                let g = visible(g);
                format!(
                    "group {g} keeps running: xn -k {g} cancels it, xn -f {g} --follow follows it"
                )
            }
            Submitted::Jobs(ids) => match ids.split_first() {
                // Not yet followed: xn has not seen whether it started.
                Some((&first, later)) => follow::keep_running(first, later, false),
                None => "the hub made no job".into(),
            },
        }
    }
}

/// Prints the group, or the ids one per line.
fn print_ids(submitted: &Submitted) {
    match submitted {
        Submitted::Group(g) => println!("{}", visible(g)),
        Submitted::Jobs(ids) => {
            let mut text = String::with_capacity(ids.len() * 8);
            for id in ids {
                text.push_str(&format!("{id}\n"));
            }
            print!("{text}");
        }
    }
}

/// Sends the specs: one to every matching slave (`all`), one alone (`one_line`, answered with
/// one id), or a list of them, whose files `places` names when the hub refuses one of them.
async fn send(
    hub: &HubUrl,
    specs: &[JobSpec],
    places: &jobfile::Places,
    all: bool,
    one_line: bool,
) -> Result<Submitted> {
    if all {
        let reply: BroadcastReply = hub
            .call(Method::POST, "/api/v1/broadcast", Some(&specs[0]))
            .await?;
        return Ok(Submitted::Group(reply.group));
    }
    if one_line {
        let reply: SubmitReply = hub
            .call(Method::POST, "/api/v1/jobs", Some(&specs[0]))
            .await?;
        return Ok(Submitted::Jobs(vec![reply.id]));
    }
    let reply: SubmitManyReply = hub
        .call(Method::POST, "/api/v1/jobs", Some(&specs))
        .await
        .map_err(|e| match e.downcast::<HubError>() {
            Ok(HubError { status, message }) => {
                let message = places.name_job(&message).unwrap_or(message);
                anyhow::Error::new(HubError { status, message })
            }
            Err(e) => e,
        })
        .context("submitting the jobs")?;
    Ok(Submitted::Jobs(reply.ids))
}

/// How waiting for the hub's answer to a submission ended.
enum Answer<T> {
    /// The answer, and the signal that came while xn waited for it (if one did).
    Reply(T, Option<i32>),
    /// A second signal came before the answer: xn said so, and exits with this code.
    GaveUp(i32),
}

/// Waits for the hub's answer to a submission (`call`). A signal meanwhile does not end xn at
/// once: the hub may have made the jobs already, and the user would never learn their ids. xn
/// says that it waits for the answer (bounded by the request's own time limit); a second
/// signal gives up, saying that the jobs may exist all the same.
async fn answer<T>(
    interrupts: &mut Interrupts,
    call: impl std::future::Future<Output = Result<T>>,
) -> Result<Answer<T>> {
    tokio::pin!(call);
    let mut signal = None;
    loop {
        tokio::select! {
            reply = &mut call => return Ok(Answer::Reply(reply?, signal)),
            code = interrupts.recv() => {
                if signal.is_some() {
                    say_left(code, "the hub had not answered: what was submitted may run all the same (xn -l lists it)");
                    return Ok(Answer::GaveUp(code));
                }
                signal = Some(code);
                let again = if code == 128 + libc::SIGINT { "Ctrl-C" } else { "a signal" };
                let _ = writeln!(
                    std::io::stderr(),
                    "[xn: stopping as soon as the hub answers, to tell the id of what was submitted; {again} again stops xn now]"
                );
            }
        }
    }
}

/// What a job's header calls it: its name, or else its command, shortened (the header writes a
/// newline in it out as `\n`, as `xn -l` does).
fn label(spec: &JobSpec) -> String {
    match &spec.name {
        Some(name) => name.clone(),
        None => super::list::truncate(&spec.display_command(), 60).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{group, label, JobSpec};

    #[test]
    fn a_header_writes_a_newline_in_a_command_out() {
        let spec = JobSpec::shell("echo a\necho b");
        assert_eq!(
            group::header(&label(&spec), 7, None),
            "==> echo a\\necho b (job 7) <=="
        );
    }
}
