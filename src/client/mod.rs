//! `xn`, the command line client: one file per command. Every command talks to the hub through
//! [`crate::http::HubUrl`] and returns the exit code `xn` should end with.

mod attach;
mod cancel;
mod fetch;
mod follow;
mod group;
mod interrupt;
mod jobfile;
mod link;
mod list;
mod output;
mod slaves;
mod submit;
mod tail;
mod terminal;
pub(crate) mod visible;

use crate::wire::JobId;
use anyhow::{bail, Result};
use clap::{ArgGroup, Args};
use interrupt::Interrupts;
use std::path::PathBuf;

/// Exit code for `xn`'s own failures (hub unreachable, unknown job, ...), as ssh does, so a
/// script can tell them from the job's own exit code.
pub const EXIT_XN_ERROR: i32 = 255;

/// Submit jobs to an execnode hub, list them, fetch, follow and attach to their output, cancel
/// and delete them.
#[derive(Args, Clone)]
#[command(group(ArgGroup::new("action").required(true).multiple(true).args(["submit", "file", "words", "list", "slaves", "fetch", "cancel", "delete", "attach"])))]
pub struct XnArgs {
    /// Submit LINE as a job (run as `sh -c -- LINE`); prints the new job's id. LINE is one
    /// argument (quote it; one that begins with `-` as `-s='-x; make'`) and may follow the
    /// other flags (`xn -s --wait 'make test'`).
    /// With --file instead of LINE: submit the jobs the file describes
    #[arg(short = 's', long, value_name = "LINE", num_args = 0..=1)]
    pub submit: Option<Option<String>>,

    /// Submit the job or jobs described in a JSON file (one object or an array; see
    /// docs/JOBS.md), all in one request; prints their ids, one per line (repeatable)
    #[arg(long, value_name = "FILE")]
    pub file: Vec<PathBuf>,

    /// `xn submit FILE...`: the same as `xn -s --file FILE...`
    #[arg(value_name = "submit FILE", num_args = 0..)]
    pub words: Vec<String>,

    /// List jobs, oldest first: id, state, exit code, slave, age, name, command. Only the
    /// newest 50 that match (see --limit and --all). A name with a space is shown "quoted"
    #[arg(short = 'l', long)]
    pub list: bool,

    /// List the connected slaves: name, state (ready or draining), slots, the jobs they hold,
    /// whether their token is bound to their name (for admins: which token), labels (what
    /// --slave and --on can name). A name with a space is shown "quoted"
    #[arg(long)]
    pub slaves: bool,

    /// Write job ID's output so far to stdout (stderr to stderr for --no-tty jobs); for a
    /// broadcast GROUP (g7), every job's output under a header naming its slave
    #[arg(short = 'f', long, value_name = "ID|GROUP")]
    pub fetch: Option<String>,

    /// With -f ID: the output of attempt N of a retried job (attempts count from 1)
    #[arg(long, value_name = "N", requires = "fetch")]
    pub attempt: Option<u32>,

    /// With -f GROUP or -s --all --wait: prefix every line with its slave's name instead of
    /// printing a header per slave
    #[arg(long)]
    pub prefix: bool,

    /// Cancel job ID: SIGTERM to everything it started (its session), a grace period, then
    /// SIGKILL. For a broadcast GROUP (g7): every job of it that has not ended
    #[arg(short = 'k', long, value_name = "ID|GROUP")]
    pub cancel: Option<String>,

    /// Delete job ID, which has ended, with all its output (every attempt's); its id is never
    /// used again. For a broadcast GROUP (g7): every job of it, once all have ended
    #[arg(long = "rm", visible_alias = "delete", value_name = "ID|GROUP")]
    pub delete: Option<String>,

    /// Attach to job ID's terminal: replay its output, then type into it live.
    /// With -s and no ID: submit, then attach (`xn -s bash -a`)
    #[arg(short = 'a', long, value_name = "ID", num_args = 0..=1)]
    pub attach: Option<Option<String>>,

    /// With -a: replay only the last BYTES of output before going live (from the first
    /// whole UTF-8 character)
    #[arg(long, value_name = "BYTES", requires = "attach")]
    pub tail: Option<u64>,

    /// With -a: the escape key (like ^] or ^A, or none); then d detaches, t terminates
    #[arg(long, value_name = "CHAR", default_value = "^]", requires = "attach")]
    pub escape: String,

    /// With -a: watch only; nothing you type is sent
    #[arg(long, requires = "attach")]
    pub read_only: bool,

    /// With -s: stream the job's output as it runs and exit with its exit code
    /// (128 + N when killed by signal N); with several jobs or --all, each output under a
    /// header, and the first non-zero code. Ctrl-C stops xn (the whole wait), not the jobs,
    /// and says their ids (once the hub has answered the submission). Sends no input: a job that reads stdin waits for it (use --stdin-file, or -a to pipe it)
    #[arg(long)]
    pub wait: bool,

    /// With -f: keep streaming until the job ends, then exit with its exit code; for a GROUP,
    /// wait for all its jobs (as -s --all --wait)
    #[arg(long, requires = "fetch", conflicts_with = "attempt")]
    pub follow: bool,

    /// With -s: run with pipes instead of a pseudo-terminal (stdout and stderr kept apart,
    /// stdin can be closed, lines end in \n, not a terminal's \r\n): for output kept in files
    #[arg(long)]
    pub no_tty: bool,

    /// With -s: set an environment variable for the job (repeatable)
    #[arg(long, value_name = "NAME=VALUE")]
    pub env: Vec<String>,

    /// With -s: the job's working directory on the slave, an absolute path [default: a fresh
    /// work directory for the job]
    #[arg(long, value_name = "DIR", value_parser = parse_cwd)]
    pub cwd: Option<String>,

    /// With -s: run only on a slave with this label, `key` or `key=value` (repeatable);
    /// with --all, on every connected slave that has it
    #[arg(long = "on", value_name = "LABEL")]
    pub on: Vec<String>,

    /// With -s: run only on the slave of this name; with -l: only jobs given to that slave
    #[arg(long, value_name = "NAME")]
    pub slave: Option<String>,

    /// With -s: terminate the job after SECS seconds of running; it ends `failed` (timeout)
    #[arg(long, value_name = "SECS", value_parser = submit::parse_timeout)]
    pub timeout: Option<f64>,

    /// With -s: run the job again, up to N more times, if its slave is lost
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,

    /// With -s and --retries: also retry when the job exits non-zero, is killed or fails
    #[arg(long, requires = "retries")]
    pub retries_on_failure: bool,

    /// With -s: a name for the job; with -l: only jobs of this name
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// With -s: slots of its slave the job occupies
    #[arg(long, value_name = "N")]
    pub slots: Option<u32>,

    /// With -s: send this local file's content as the job's whole stdin
    #[arg(long, value_name = "PATH")]
    pub stdin_file: Option<PathBuf>,

    /// With -s instead of LINE: run exactly these words, no shell (`xn -s --wait --argv printf
    /// '%s\n' 'a b'`). Everything after --argv belongs to it, so put it last
    #[arg(long, value_name = "WORD", num_args = 1.., allow_hyphen_values = true)]
    pub argv: Vec<String>,

    /// With -s: run the job once on every connected slave (with --on: that has the labels),
    /// as a group; prints the group id (like g7) for `xn -f GROUP`. With -l: list every job
    /// that matches, not only the newest 50
    #[arg(long)]
    pub all: bool,

    /// With -l: list only the newest N jobs that match [default: 50 for the table; every job
    /// with --json]. Jobs left out are counted on stderr
    #[arg(long, value_name = "N", requires = "list", conflicts_with = "all", value_parser = list::parse_limit)]
    pub limit: Option<usize>,

    /// With -l or --slaves: print a JSON array instead of a table
    #[arg(long)]
    pub json: bool,

    /// With -l: only jobs in this state (queued, running, exited, failed, lost, ...)
    #[arg(long, value_name = "STATE", requires = "list")]
    pub state: Option<String>,

    /// With -l: only jobs that require this label (repeatable)
    #[arg(long = "label", value_name = "LABEL", requires = "list")]
    pub label: Vec<String>,

    /// With -l: only the jobs of a broadcast group (like g7)
    #[arg(long, value_name = "GROUP", requires = "list")]
    pub group: Option<String>,

    /// With -l: only the jobs of this owner (the name of the token that submitted them)
    #[arg(long, value_name = "NAME", requires = "list")]
    pub owner: Option<String>,

    /// The hub to talk to [default: from ~/.config/execnode/config.toml, else
    /// http://127.0.0.1:5000]
    #[arg(long, env = "XN_HUB", value_name = "URL")]
    pub hub: Option<String>,

    /// The token to present (also read from ~/.config/execnode/config.toml)
    #[arg(long, env = "XN_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// CA certificate (PEM) to check an https:// hub with [default: the system's]
    #[arg(long, env = "XN_CA", value_name = "FILE")]
    pub ca: Option<std::path::PathBuf>,
}

/// An error of xn's as the one line it prints: the chain (`{:#}`) with its control characters
/// written out, since it may quote the hub, which may quote what another user sent.
pub fn error_line(e: &anyhow::Error) -> String {
    visible::visible(&format!("{e:#}")).into_owned()
}

/// Runs one `xn` command and returns the exit code.
pub async fn run(args: XnArgs) -> Result<i32> {
    let hub = crate::config::resolve(args.hub.clone(), args.token.clone(), args.ca.as_deref())?;
    let sent_token = hub.has_token();
    act(args, hub).await.map_err(|e| match unauthorized(&e) {
        // The hub's words are for any HTTP client; xn's user needs to know where xn takes a
        // token from. (A hub with --no-auth needs none, so xn cannot refuse beforehand.)
        Some(message) if !sent_token => anyhow::anyhow!(
            "{message}; xn sent none: give it one with --token TOKEN, XN_TOKEN or token = \"...\" \
             in {}",
            crate::config::path().map_or("its config file".into(), |p| p.display().to_string())
        ),
        _ => e,
    })
}

/// The hub's message, if it refused the request for want of a valid token (401).
fn unauthorized(e: &anyhow::Error) -> Option<String> {
    e.chain()
        .filter_map(|c| c.downcast_ref::<crate::http::HubError>())
        .find(|h| h.status == hyper::StatusCode::UNAUTHORIZED)
        .map(|h| h.message.clone())
}

async fn act(args: XnArgs, hub: crate::http::HubUrl) -> Result<i32> {
    let attach = match &args.attach {
        Some(id) => Some((
            match id {
                Some(id) => match Target::parse("-a", id)? {
                    Target::Job(id) => Some(id),
                    Target::Group(g) => bail!(
                        "-a attaches to one job: give a job id (the jobs of {g}: xn -l --group {g})"
                    ),
                },
                None => None,
            },
            attach::AttachOptions {
                tail: args.tail,
                escape: terminal::parse_escape(&args.escape)?,
                read_only: args.read_only,
            },
        )),
        None => None,
    };
    let source = submit_source(&args)?;
    let others = [
        args.list,
        args.slaves,
        args.fetch.is_some(),
        args.cancel.is_some(),
        args.delete.is_some(),
    ];
    let others = others.iter().filter(|a| **a).count();
    let valid = match (&source, &attach) {
        (Some(_), Some((None, _))) => others == 0 && !args.wait,
        (Some(_), Some(_)) => false,
        (Some(_), None) => others == 0,
        (None, Some((Some(_), _))) => others == 0,
        (None, Some((None, _))) => bail!("-a needs a job id (or -s LINE -a to submit and attach)"),
        (None, None) => others == 1,
    };
    if !valid {
        // `xn -s ls -l` (or `tail -f FILE`): the command's own flags taken for xn's.
        let hint = match &source {
            Some(submit::Source::Line(_)) if others > 0 => {
                "; a command's own flags go inside its quotes (xn -s 'ls -l')"
            }
            _ => "",
        };
        bail!(
            "give one action: -s, -l, --slaves, -f, -k, --rm or -a ID (only -s LINE -a go together){hint}"
        );
    }
    let group_fetch = args.fetch.as_deref().is_some_and(group::is_group);
    if args.prefix && !(group_fetch || (source.is_some() && args.all && args.wait)) {
        bail!("--prefix goes with -f GROUP or -s LINE --all --wait");
    }
    let all = args.all && !args.list;
    if source.is_none() && (args.wait || all || args.no_tty || has_job_flags(&args)) {
        bail!("--wait, --all, --no-tty, --env, --cwd, --on, --slave, --name, --timeout, --retries, --slots and --stdin-file go with -s (--all, --slave and --name with -l too)");
    }
    if args.json && !(args.list || args.slaves) {
        bail!("--json goes with -l or --slaves");
    }
    if let Some(source) = source {
        let then = match &attach {
            Some((_, opts)) => submit::Then::Attach(opts.clone()),
            None if args.wait => submit::Then::Wait,
            None => submit::Then::PrintId,
        };
        let ov = submit::Overrides {
            no_tty: args.no_tty,
            env: args.env.clone(),
            cwd: args.cwd.clone(),
            labels: args.on.clone(),
            slave: args.slave.clone(),
            timeout: args.timeout,
            retries: args.retries,
            retries_on_failure: args.retries_on_failure,
            name: args.name.clone(),
            slots: args.slots,
            stdin_file: args.stdin_file.clone(),
        };
        submit::run(&hub, source, &ov, args.all, args.prefix, then).await
    } else if args.list {
        // Checked here, since a filter the hub cannot match would list nothing, and an empty
        // list reads as "no such jobs" (`--group 3` for g3).
        if let Some(g) = args.group.as_deref().filter(|g| !group::is_group(g)) {
            bail!("--group {g:?}: a group id is g and a number, like g3 (as xn -s --all printed)");
        }
        if let Some(s) = args.state.as_deref() {
            if crate::wire::JobState::parse(s).is_none() {
                bail!(
                    "--state {s:?}: a state is {}",
                    crate::wire::JobState::one_of()
                );
            }
        }
        let filters = list::Filters {
            state: args.state.clone(),
            labels: args.label.clone(),
            name: args.name.clone(),
            group: args.group.clone(),
            owner: args.owner.clone(),
            slave: args.slave.clone(),
        };
        let limit = match (args.all, args.limit) {
            (true, _) => None,
            (false, Some(n)) => Some(n),
            (false, None) if args.json => None,
            (false, None) => Some(list::DEFAULT_LIMIT),
        };
        list::run(&hub, args.json, &filters, limit).await
    } else if args.slaves {
        slaves::run(&hub, args.json).await
    } else if let Some(target) = &args.fetch {
        match Target::parse("-f", target)? {
            Target::Group(g) => {
                if args.attempt.is_some() {
                    bail!(
                        "--attempt takes a job id, not a group (xn -l --group {g} lists its jobs)"
                    );
                }
                if args.follow {
                    // Caught before anything else: a signal from now on leaves the group
                    // running, and says so.
                    group::follow(&hub, &g, args.prefix, &mut Interrupts::catch()?).await
                } else {
                    group::run(&hub, &g, args.prefix, false).await
                }
            }
            Target::Job(id) if args.follow => follow::run(&hub, id).await,
            Target::Job(id) => fetch::run(&hub, id, args.attempt).await,
        }
    } else if let Some(target) = &args.cancel {
        match Target::parse("-k", target)? {
            Target::Job(id) => cancel::run(&hub, id).await,
            Target::Group(g) => cancel::cancel_group(&hub, &g).await,
        }
    } else if let Some(target) = &args.delete {
        match Target::parse("--rm", target)? {
            Target::Job(id) => cancel::delete(&hub, id).await,
            Target::Group(g) => cancel::delete_group(&hub, &g).await,
        }
    } else if let Some((id, opts)) = attach {
        let id = id.expect("checked above: -a without -s has an id");
        attach::run(&hub, id, &opts, &mut Interrupts::catch()?).await
    } else {
        unreachable!("clap requires one action")
    }
}

/// What `-f`, `-k`, `--rm` and `-a` name: a job (`7`) or a broadcast group (`g7`).
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Job(JobId),
    Group(String),
}

impl Target {
    /// Parses `flag`'s value, with an error that says what was expected.
    fn parse(flag: &str, s: &str) -> Result<Target> {
        if group::is_group(s) {
            return Ok(Target::Group(s.to_string()));
        }
        match s.parse() {
            Ok(id) => Ok(Target::Job(id)),
            Err(_) => bail!("{flag} {s:?}: expected a job id (like 7) or a group id (like g7)"),
        }
    }
}

/// Where the jobs to submit come from, if this is a submission.
fn submit_source(args: &XnArgs) -> Result<Option<submit::Source>> {
    let mut files = args.file.clone();
    // `-s` takes an optional value, so in `xn -s --wait 'ls /'` the line comes after the
    // flags, as a word of its own.
    let mut submit = args.submit.clone();
    match args.words.split_first() {
        None => {}
        Some((cmd, rest)) if cmd == "submit" && !rest.is_empty() => {
            files.extend(rest.iter().map(PathBuf::from))
        }
        Some((cmd, _)) if cmd == "submit" => bail!("xn submit needs a job file: xn submit FILE"),
        Some((line, [])) if submit == Some(None) && files.is_empty() && args.argv.is_empty() => {
            submit = Some(Some(line.clone()))
        }
        Some((_, [_, ..])) if submit == Some(None) => bail!(
            "-s takes the shell line as one argument: quote it (xn -s {:?})",
            args.words.join(" ")
        ),
        Some((word, _)) => bail!(
            "unexpected argument {word:?}: the only command is `xn submit FILE` (quote a shell line for -s)"
        ),
    }
    if !args.argv.is_empty() {
        return match (&submit, files.is_empty()) {
            (Some(None), true) => Ok(Some(submit::Source::Argv(args.argv.clone()))),
            _ => bail!("--argv goes with -s and no LINE or job file: xn -s --argv PROGRAM ARG..."),
        };
    }
    Ok(match (&submit, files.is_empty()) {
        (Some(Some(_)), false) => bail!("give -s LINE or job files, not both"),
        (Some(Some(line)), true) => Some(submit::Source::Line(line.clone())),
        (Some(None), true) => bail!("-s needs a LINE, or --file FILE"),
        (_, false) => Some(submit::Source::Files(files)),
        (None, true) => None,
    })
}

/// `--cwd DIR`: an absolute directory (the hub refuses anything else; refused here, nothing is
/// sent).
fn parse_cwd(s: &str) -> Result<String, String> {
    crate::hub::check_cwd(s).map(|()| s.to_string())
}

/// Whether a job setting for -s was given (`--slave` and `--name` are filters for -l too).
fn has_job_flags(args: &XnArgs) -> bool {
    !args.env.is_empty()
        || args.cwd.is_some()
        || !args.on.is_empty()
        || (args.slave.is_some() && !args.list)
        || (args.name.is_some() && !args.list)
        || args.timeout.is_some()
        || args.retries.is_some()
        || args.retries_on_failure
        || args.slots.is_some()
        || args.stdin_file.is_some()
}

#[cfg(test)]
mod tests {
    use super::Target;

    #[test]
    fn targets_are_jobs_or_groups() {
        assert_eq!(Target::parse("-k", "7").unwrap(), Target::Job(7));
        assert_eq!(
            Target::parse("-k", "g7").unwrap(),
            Target::Group("g7".into())
        );
        for bad in ["abc", "g", "7x", "-1", ""] {
            let e = Target::parse("-k", bad).unwrap_err().to_string();
            assert!(
                e.starts_with("-k ") && e.contains("expected a job id"),
                "{e}"
            );
        }
    }
}
