//! `xn`, the command line client: one file per command. Every command talks to the hub through
//! [`crate::http::HubUrl`] and returns the exit code `xn` should end with.

mod cancel;
mod fetch;
mod follow;
mod list;
mod output;
mod submit;

use crate::http::HubUrl;
use crate::wire::JobId;
use anyhow::Result;
use clap::{ArgGroup, Args};

/// Exit code for `xn`'s own failures (hub unreachable, unknown job, ...), as ssh does, so a
/// script can tell them from the job's own exit code.
pub const EXIT_XN_ERROR: i32 = 255;

/// Submit jobs to an execnode hub, list them, fetch and follow their output, cancel them.
#[derive(Args, Debug, Clone)]
#[command(group(ArgGroup::new("action").required(true).args(["submit", "list", "fetch", "cancel"])))]
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

    /// The hub to talk to
    #[arg(
        long,
        env = "XN_HUB",
        default_value = "http://127.0.0.1:5000",
        value_name = "URL"
    )]
    pub hub: String,
}

/// Runs one `xn` command and returns the exit code.
pub async fn run(args: XnArgs) -> Result<i32> {
    let hub = HubUrl::parse(&args.hub)?;
    if let Some(line) = &args.submit {
        submit::run(&hub, line, !args.no_tty, args.wait).await
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
    } else {
        unreachable!("clap requires one action")
    }
}
