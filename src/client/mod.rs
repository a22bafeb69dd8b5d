//! `xn`, the command line client: one file per command. Every command talks to the hub through
//! [`crate::http::HubUrl`] and returns the exit code `xn` should end with.

mod attach;
mod cancel;
mod fetch;
mod follow;
mod link;
mod list;
mod output;
mod submit;
mod terminal;

use crate::wire::JobId;
use anyhow::{bail, Result};
use clap::{ArgGroup, Args};

/// Exit code for `xn`'s own failures (hub unreachable, unknown job, ...), as ssh does, so a
/// script can tell them from the job's own exit code.
pub const EXIT_XN_ERROR: i32 = 255;

/// Submit jobs to an execnode hub, list them, fetch and follow their output, cancel them.
#[derive(Args, Clone)]
#[command(group(ArgGroup::new("action").required(true).multiple(true).args(["submit", "list", "fetch", "cancel", "attach"])))]
pub struct XnArgs {
    /// Submit LINE as a job (run as `sh -c LINE`); prints the new job's id
    #[arg(short = 's', long, value_name = "LINE")]
    pub submit: Option<String>,

    /// List jobs: id, state, exit code, slave, age, command
    #[arg(short = 'l', long)]
    pub list: bool,

    /// Write job ID's output so far to stdout (stderr to stderr for --no-tty jobs)
    #[arg(short = 'f', long, value_name = "ID")]
    pub fetch: Option<JobId>,

    /// Cancel job ID: SIGTERM to its process group, a grace period, then SIGKILL
    #[arg(short = 'k', long, value_name = "ID")]
    pub cancel: Option<JobId>,

    /// Attach to job ID's terminal: replay its output, then type into it live.
    /// With -s and no ID: submit, then attach (`xn -s bash -a`)
    #[arg(short = 'a', long, value_name = "ID", num_args = 0..=1)]
    pub attach: Option<Option<JobId>>,

    /// With -a: replay only the last BYTES of output before going live
    #[arg(long, value_name = "BYTES", requires = "attach")]
    pub tail: Option<u64>,

    /// With -a: the escape key (like ^] or ^A, or none); then d detaches, t terminates
    #[arg(long, value_name = "CHAR", default_value = "^]", requires = "attach")]
    pub escape: String,

    /// With -a: watch only; nothing you type is sent
    #[arg(long, requires = "attach")]
    pub read_only: bool,

    /// With -s: stream the job's output as it runs and exit with its exit code
    /// (128 + N when killed by signal N)
    #[arg(long, requires = "submit")]
    pub wait: bool,

    /// With -f: keep streaming until the job ends, then exit with its exit code
    #[arg(long, requires = "fetch")]
    pub follow: bool,

    /// With -s: run with pipes instead of a pseudo-terminal (stdout and stderr kept apart,
    /// stdin can be closed)
    #[arg(long, requires = "submit")]
    pub no_tty: bool,

    /// With -l: print a JSON array instead of a table
    #[arg(long, requires = "list")]
    pub json: bool,

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

/// Runs one `xn` command and returns the exit code.
pub async fn run(args: XnArgs) -> Result<i32> {
    let hub = crate::config::resolve(args.hub.clone(), args.token.clone(), args.ca.as_deref())?;
    let attach = match args.attach {
        Some(id) => Some((
            id,
            attach::AttachOptions {
                tail: args.tail,
                escape: terminal::parse_escape(&args.escape)?,
                read_only: args.read_only,
            },
        )),
        None => None,
    };
    let others = [args.list, args.fetch.is_some(), args.cancel.is_some()];
    let others = others.iter().filter(|a| **a).count();
    let valid = match (&args.submit, &attach) {
        (Some(_), Some((None, _))) => others == 0 && !args.wait,
        (Some(_), Some(_)) => false,
        (Some(_), None) => others == 0,
        (None, Some((Some(_), _))) => others == 0,
        (None, Some((None, _))) => bail!("-a needs a job id (or -s LINE -a to submit and attach)"),
        (None, None) => others == 1,
    };
    if !valid {
        bail!("give one action: -s, -l, -f, -k or -a ID (only -s LINE -a go together)");
    }
    if let Some(line) = &args.submit {
        let then = match &attach {
            Some((_, opts)) => submit::Then::Attach(opts.clone()),
            None if args.wait => submit::Then::Wait,
            None => submit::Then::PrintId,
        };
        submit::run(&hub, line, !args.no_tty, then).await
    } else if args.list {
        list::run(&hub, args.json).await
    } else if let Some(id) = args.fetch {
        if args.follow {
            follow::run(&hub, id).await
        } else {
            fetch::run(&hub, id).await
        }
    } else if let Some(id) = args.cancel {
        cancel::run(&hub, id).await
    } else if let Some((id, opts)) = attach {
        let id = id.expect("checked above: -a without -s has an id");
        attach::run(&hub, id, &opts).await
    } else {
        unreachable!("clap requires one action")
    }
}
