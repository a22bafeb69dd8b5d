//! `xnslave`'s command line: its flags (clap), and what they come to, checked, as the
//! [`SlaveOptions`] that [`super::run`] takes: the slot count, the labels every slave offers,
//! the token (with warnings for one others can read) and the confinement.

use super::{ConfineOptions, Limits, SlaveOptions};
use crate::config::at_least_one;
use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// An execnode slave: dials the hub, runs the jobs it is given, streams their output back.
#[derive(Args)]
pub struct SlaveArgs {
    /// The hub to dial [default: from ~/.config/execnode/config.toml, else
    /// http://127.0.0.1:5000]
    #[arg(long, env = "XN_HUB", value_name = "URL")]
    hub: Option<String>,
    /// A token with the slave (or admin) role (the hub wrote one to DATA/slave.token). On the
    /// command line every local user can read it (ps, /proc/PID/cmdline), jobs included:
    /// prefer --token-file or XN_TOKEN
    #[arg(long, env = "XN_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Read the token from FILE, e.g. DATA/slave.token (takes the place of XN_TOKEN)
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// CA certificate (PEM) to check an https:// hub with [default: the system's]
    #[arg(long, env = "XN_CA", value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Jobs to run at once [default: number of CPUs]
    #[arg(long, value_name = "N")]
    slots: Option<u32>,
    /// Name shown in `xn -l` [default: host name]
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// On SIGTERM/Ctrl-C: take no more jobs and give running ones this many seconds to
    /// finish before cancelling them
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    drain_timeout: u64,
    /// When jobs are cancelled at shutdown, seconds between SIGTERM and SIGKILL
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    stop_grace: u64,
    /// Output kept per job and stream until the hub has stored it. A job that far ahead of a
    /// connected hub waits; while the hub is unreachable the oldest unsent output beyond it is
    /// dropped and a marker put in its place
    #[arg(long, default_value_t = crate::limits::SLAVE_UNACKED_BYTES, value_name = "BYTES")]
    output_buffer: usize,
    /// A label this slave offers, `key` or `key=value` (repeatable). hostname=, os= and arch=
    /// are added unless given
    #[arg(long = "label", value_name = "LABEL")]
    labels: Vec<String>,
    /// Run jobs as this user (setgid, supplementary groups, setuid before exec; HOME, USER and
    /// LOGNAME set). Needs a slave running as root. A root slave refuses to start without
    /// this or --allow-root-jobs
    #[arg(long, value_name = "USER", help_heading = "Confining jobs")]
    run_as: Option<String>,
    /// Let jobs run as root: needed for a root slave without --run-as, or with --run-as of a
    /// user whose uid is 0
    #[arg(long, help_heading = "Confining jobs")]
    allow_root_jobs: bool,
    /// Address space limit per job process (RLIMIT_AS), in bytes or with a unit: 512M, 2G
    #[arg(long, value_name = "SIZE", value_parser = super::parse_size, help_heading = "Confining jobs")]
    max_memory: Option<u64>,
    /// Processes the job's user may have, all of its processes counted (RLIMIT_NPROC; not
    /// enforced for root)
    #[arg(long, value_name = "N", value_parser = at_least_one::<u64>, help_heading = "Confining jobs")]
    max_procs: Option<u64>,
    /// CPU seconds per job process (RLIMIT_CPU): SIGXCPU then, SIGKILL a second later
    #[arg(long, value_name = "N", value_parser = at_least_one::<u64>, help_heading = "Confining jobs")]
    max_cpu_seconds: Option<u64>,
    /// Open files per job process (RLIMIT_NOFILE)
    #[arg(long, value_name = "N", value_parser = at_least_one::<u64>, help_heading = "Confining jobs")]
    max_open_files: Option<u64>,
    /// Confine jobs with Landlock: they may write only in their work directory and a private
    /// temp dir (TMPDIR), read and execute anywhere, and gain no privileges (no-new-privs).
    /// The slave refuses to start if the kernel cannot enforce this fully (Linux 6.2+)
    #[arg(long, help_heading = "Confining jobs")]
    sandbox: bool,
    /// Where job directories go: a job without a cwd of its own runs in DIR/jobs/ID (and,
    /// with --sandbox, gets DIR/tmp/ID as TMPDIR) [default: $TMPDIR/execnode-slave-PID,
    /// removed when the slave stops]
    #[arg(long, value_name = "DIR", help_heading = "Confining jobs")]
    work_dir: Option<PathBuf>,
    /// Keep each job's directories after it ends, instead of removing them
    #[arg(long, help_heading = "Confining jobs")]
    keep_work_dirs: bool,
    /// Run each job in a cgroup of its own made in DIR, a cgroup v2 directory this slave may
    /// write (as root, or delegated: systemd's Delegate=yes). When the job ends, or is
    /// cancelled, everything it started is killed, even processes that left its session
    /// (setsid, daemons). Linux 5.14+; the slave refuses to start if DIR cannot serve
    #[arg(long, value_name = "DIR", help_heading = "Confining jobs")]
    cgroup: Option<PathBuf>,
    /// Keep jobs off the network: each runs in a network namespace of its own whose only
    /// interface is loopback (up), so it can reach itself on 127.0.0.1 but nothing else, the
    /// hub and this machine's services included. Needs a slave running as root; costs about
    /// half a millisecond per job
    #[arg(long, help_heading = "Confining jobs")]
    no_network: bool,
}

impl SlaveArgs {
    /// The options these flags give, or why they cannot serve.
    pub fn into_options(self) -> Result<SlaveOptions> {
        let args = self;
        let slots = match args.slots {
            Some(0) => bail!("--slots must be at least 1"),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        };
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "slave".into());
        let name = args.name.unwrap_or_else(|| hostname.clone());
        let mut labels = args.labels;
        for (key, value) in [
            ("hostname", hostname.as_str()),
            ("os", std::env::consts::OS),
            ("arch", std::env::consts::ARCH),
        ] {
            if !labels.iter().any(|l| l.split('=').next() == Some(key)) {
                labels.push(format!("{key}={value}"));
            }
        }
        // A long-lived process whose command line anyone on the machine can read.
        let token_in_argv = std::env::args_os()
            .skip(1)
            .any(|a| a == "--token" || a.as_encoded_bytes().starts_with(b"--token="));
        let token = match &args.token_file {
            Some(_) if token_in_argv => bail!("give --token or --token-file, not both"),
            Some(file) => Some(crate::config::read_token_file(file)?),
            None => args.token,
        };
        if let Some(file) = args
            .token_file
            .as_deref()
            .filter(|f| crate::config::token_file_is_readable_by_others(f))
        {
            tracing::warn!(
            "the token file {} can be read by group or others, who can then act as this slave: run chmod 600 on it",
            file.display()
        );
        }
        if token_in_argv {
            tracing::warn!("--token on the command line can be read by every local user (ps, /proc/PID/cmdline), jobs included: pass it with --token-file FILE or in XN_TOKEN");
        }
        let opts = SlaveOptions {
            hub: crate::config::resolve(args.hub, token, args.ca.as_deref())?,
            name,
            slots,
            drain_timeout: Duration::from_secs(args.drain_timeout),
            labels,
            stop_grace: Duration::from_secs(args.stop_grace),
            output_buffer: args.output_buffer,
            confine: ConfineOptions {
                run_as: args.run_as,
                allow_root_jobs: args.allow_root_jobs,
                limits: Limits {
                    memory: args.max_memory,
                    procs: args.max_procs,
                    cpu_seconds: args.max_cpu_seconds,
                    open_files: args.max_open_files,
                },
                sandbox: args.sandbox,
                work_dir: args.work_dir,
                keep_work_dirs: args.keep_work_dirs,
                cgroup: args.cgroup,
                no_network: args.no_network,
            },
        };
        Ok(opts)
    }
}
