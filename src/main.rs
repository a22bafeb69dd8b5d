//! The `execnode` binary: picks a personality from `argv[0]` (`xn`, `xnhub`, `xnslave`) or from
//! its first subcommand, sets up logging and signals, runs that role, and turns its result into
//! an exit code. Nothing else lives here.

use anyhow::{Context, Result};
use clap::{ArgMatches, Args, Command, CommandFactory, FromArgMatches, Parser, Subcommand};
use execnode::client::{self, XnArgs, EXIT_XN_ERROR};
use execnode::hub::auth::Auth;
use execnode::hub::datadir::DataDir;
use execnode::hub::token_cmd::{self, HubCmd};
use execnode::hub::{self, Hub, HubOptions};
use execnode::slave::{self, ConfineOptions, Limits, SlaveOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "execnode",
    version,
    // `execnode hub --version` as `xnhub --version`: every role (and `xnhub token ...`) has it.
    propagate_version = true,
    about = "Remote subprocess execution: a hub, slaves that dial it, and the xn client",
    long_about = "Remote subprocess execution: a hub, slaves that dial it, and the xn client.\n\n\
        One binary, three roles. Symlinked as xnhub, xnslave or xn it takes that role \
        (see `execnode install-links`); otherwise name the role as the first argument."
)]
struct Cli {
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    // Each says its version under the name its symlink has (`xnhub 0.1.0`), not `execnode-hub`.
    #[command(display_name = "xnhub")]
    Hub(HubArgs),
    #[command(display_name = "xnslave")]
    Slave(SlaveArgs),
    #[command(display_name = "xn")]
    Xn(Box<XnArgs>),
    /// Create the xn, xnhub and xnslave symlinks to this binary in DIR
    InstallLinks {
        /// Where to put the links (a directory on your PATH)
        dir: PathBuf,
    },
}

/// The execnode hub: accepts jobs, keeps them and their output, hands them to slaves.
///
/// On its first start on a data directory it creates an admin and a slave token and writes
/// them to DATA/admin.token and DATA/slave.token (mode 0600). It raises its soft open-file
/// limit to the hard one (each slave and client holds a descriptor), and warns if that is low.
#[derive(Args)]
struct HubArgs {
    #[command(subcommand)]
    cmd: Option<HubCmd>,
    /// Address to listen on (port 0 picks a free port; the bound address is logged)
    #[arg(
        long,
        env = "XN_LISTEN",
        default_value = "127.0.0.1:5000",
        value_name = "ADDR"
    )]
    listen: String,
    /// Directory for the job database, tokens and output logs (for `token ...` too)
    /// [default: $XDG_DATA_HOME/execnode, else ~/.local/share/execnode]
    #[arg(long, env = "XN_DATA", value_name = "DIR")]
    data: Option<PathBuf>,
    /// Seconds without word from a slave before its running jobs become `lost` (under 15,
    /// heartbeats go a third of it apart instead of every 5 s)
    #[arg(long, default_value_t = 30, value_name = "SECS", value_parser = at_least_one::<u64>)]
    slave_timeout: u64,
    /// Seconds between SIGTERM and SIGKILL when a job is cancelled
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    cancel_grace: u64,
    /// Open connections one peer address may have (slaves, clients and attached terminals
    /// all count)
    #[arg(long, default_value_t = 1024, value_name = "N", value_parser = at_least_one::<usize>)]
    max_conns_per_addr: usize,
    /// Jobs one token may have queued at once; more are refused with 429
    #[arg(long, default_value_t = 100_000, value_name = "N", value_parser = at_least_one::<usize>)]
    max_queued_per_user: usize,
    /// Delete jobs that ended longer ago than AGE (like 30d, 12h, 90m, 45s), with their output;
    /// checked at start and every tenth of AGE (at most hourly). Without it every job is kept
    #[arg(long, value_name = "AGE", value_parser = execnode::hub::age::parse_age)]
    retain: Option<Duration>,
    /// Rows the audit log keeps (`xnhub audit`): the newest; older ones are deleted
    #[arg(long, default_value_t = execnode::hub::audit::DEFAULT_ROWS, value_name = "N",
          value_parser = at_least_one::<u64>)]
    audit_rows: u64,
    /// Seconds a job stream's client (xn -f --follow, -s --wait, -a) may leave what the hub
    /// sent unacknowledged before the hub drops it: its machine or network went away. A
    /// client that only reads slowly still acknowledges, and is kept. 0: leave it to TCP
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    peer_timeout: u64,
    /// After a crash of the hub, seconds the jobs it had queued wait for the slaves that were
    /// connected to dial again, so that a job sent just before the crash is not run twice
    /// (one of them may hold it). Ends early once they are all back; 0: do not wait (at most
    /// 86400)
    #[arg(long, default_value_t = 10, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    crash_hold: u64,
    /// Accept every request without a token, as an admin. For local experiments only
    #[arg(long)]
    no_auth: bool,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Threads that serve connections. One serves thousands of slaves and clients (logs and
    /// the job database have threads of their own); more only for a hub whose main thread is
    /// busy all the time
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: u16,
}

/// An execnode slave: dials the hub, runs the jobs it is given, streams their output back.
#[derive(Args)]
struct SlaveArgs {
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
    #[arg(long, default_value_t = execnode::limits::SLAVE_UNACKED_BYTES, value_name = "BYTES")]
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
    #[arg(long, value_name = "SIZE", value_parser = slave::parse_size, help_heading = "Confining jobs")]
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

fn main() -> ExitCode {
    execnode::malloc::tune();
    let argv0 = std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let role = match argv0.as_str() {
        "xn" => Role::Xn(Box::new(parse_as::<XnArgs>("xn", no_check))),
        "xnhub" => Role::Hub(parse_as::<HubArgs>("xnhub", token_cmd::check_args)),
        "xnslave" => Role::Slave(parse_as::<SlaveArgs>("xnslave", no_check)),
        _ => parse_cli(),
    };
    let is_client = matches!(role, Role::Xn(_));
    init_logging(is_client);
    // One thread runs everything but blocking work (files, the job database, which have
    // threads of their own). `xn` waits on a socket or two. A slave's CPUs are its jobs', and
    // its part is to start them and relay bytes. A hub's work per message is small: with a
    // worker per CPU, most of its events woke an idle worker first, a futex and a context
    // switch each (BENCHMARKS.md, round 7). `xnhub --threads N` for more.
    let rt = match &role {
        Role::Hub(args) if args.threads > 1 => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads.into())
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("execnode: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_XN_ERROR as u8);
        }
    };
    // Errors are prefixed with the name the user ran: `xnhub: ...`, not `execnode: ...`.
    let name = match argv0.as_str() {
        "xn" | "xnhub" | "xnslave" => argv0.as_str(),
        _ if is_client => "xn",
        _ => "execnode",
    };
    let res = if is_client {
        rt.block_on(run(role))
    } else {
        // With workers (`xnhub --threads N`), the future given to `block_on` runs on this
        // thread, outside their pool: a hub that accepted there handed every new connection to
        // a worker with a cross-thread wake-up. Spawned, the accept loop runs on a worker and
        // its connections start there (and a panic in it is an error, not an abort).
        rt.block_on(async move {
            tokio::spawn(run(role))
                .await
                .unwrap_or_else(|e| Err(anyhow::anyhow!("{e}")))
        })
    };
    match res {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let text = if is_client {
                client::error_line(&e)
            } else {
                format!("{e:#}")
            };
            eprintln!("{name}: {text}");
            ExitCode::from(EXIT_XN_ERROR as u8)
        }
    }
}

/// What clap's attributes cannot say about a command's arguments, checked on its matches.
type Check = fn(&mut Command, &ArgMatches) -> Result<(), clap::Error>;

fn no_check(_: &mut Command, _: &ArgMatches) -> Result<(), clap::Error> {
    Ok(())
}

/// Parses the arguments for one personality, with its own name in `--help`.
fn parse_as<T: Args>(name: &'static str, check: Check) -> T {
    let mut cmd = T::augment_args(
        Command::new(name)
            .version(env!("CARGO_PKG_VERSION"))
            .propagate_version(true),
    );
    let matches = cmd.get_matches_mut();
    check(&mut cmd, &matches).unwrap_or_else(|e| e.exit());
    T::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// Parses `execnode ROLE ...`.
fn parse_cli() -> Role {
    let mut cmd = Cli::command();
    let matches = cmd.get_matches_mut();
    if let (Some(("hub", m)), Some(hub)) = (matches.subcommand(), cmd.find_subcommand_mut("hub")) {
        token_cmd::check_args(hub, m).unwrap_or_else(|e| e.exit());
    }
    Cli::from_arg_matches(&matches)
        .unwrap_or_else(|e| e.exit())
        .role
}

fn init_logging(is_client: bool) {
    let default = if is_client { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("XN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

async fn run(role: Role) -> Result<i32> {
    match role {
        Role::Xn(args) => client::run(*args).await,
        Role::Hub(args) => run_hub(args).await.map(|()| 0),
        Role::Slave(args) => run_slave(args).await.map(|()| 0),
        Role::InstallLinks { dir } => install_links(&dir).map(|()| 0),
    }
}

/// Cancelled on SIGINT or SIGTERM.
fn shutdown_on_signals() -> Result<CancellationToken> {
    use tokio::signal::unix::{signal, SignalKind};
    let token = CancellationToken::new();
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let t = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        t.cancel();
    });
    Ok(token)
}

async fn run_hub(args: HubArgs) -> Result<()> {
    // Everything the hub and its token commands create is private to its user: job output,
    // environments, token files. (A process-wide setting: the hub creates nothing else.)
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    if let Some(cmd) = args.cmd {
        // `check_args` made sure that at most one of the two came from the command line.
        let given = match &cmd {
            HubCmd::Token { action } => action.data(),
            HubCmd::Audit(a) => a.data.as_deref(),
        };
        let data = match given.or(args.data.as_deref()) {
            Some(d) => d.to_path_buf(),
            None => execnode::hub::datadir::default_path()?,
        };
        return match cmd {
            HubCmd::Token { action } => token_cmd::run(action, &data),
            HubCmd::Audit(a) => execnode::hub::audit_cmd::run(&a, &data),
        };
    }
    let data = match args.data {
        Some(d) => d,
        None => execnode::hub::datadir::default_path()?,
    };
    // Each slave and client holds a descriptor; the usual soft limit (1024) is far too few.
    hub::nofile::raise();
    let opts = HubOptions {
        slave_timeout: Duration::from_secs(args.slave_timeout),
        cancel_grace: Duration::from_secs(args.cancel_grace),
        max_conns_per_addr: args.max_conns_per_addr,
        max_queued_per_owner: args.max_queued_per_user,
        retain: args.retain,
        peer_timeout: (args.peer_timeout > 0).then(|| Duration::from_secs(args.peer_timeout)),
        crash_hold: Duration::from_secs(args.crash_hold),
        audit_rows: args.audit_rows,
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(execnode::tls::server_config(cert, key)?),
        _ => None,
    };
    // Before anything is written, so a start that cannot listen leaves nothing behind.
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    // Locked before anything in it is touched; held until the hub has stopped.
    let data = DataDir::open(&data)?;
    let hub = Hub::open(&data, opts)?;
    let auth = Auth::open(data.path(), args.no_auth)?;
    if args.no_auth {
        tracing::warn!(
            "--no-auth: ANYONE who can reach this hub can run commands as the slaves' users. \
             Use it for local experiments only."
        );
    }
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(data = %data.path().display(), "hub listening on {scheme}://{addr}");
    if tls.is_none() && !addr.ip().is_loopback() {
        tracing::warn!("listening beyond this machine without TLS: tokens and job output cross the network in clear (use --tls-cert and --tls-key, or a proxy that speaks TLS)");
    }
    hub::run(listener, hub, auth, tls, shutdown_on_signals()?).await?;
    drop(data);
    Ok(())
}

async fn run_slave(args: SlaveArgs) -> Result<()> {
    let slots = match args.slots {
        Some(0) => anyhow::bail!("--slots must be at least 1"),
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
        Some(_) if token_in_argv => anyhow::bail!("give --token or --token-file, not both"),
        Some(file) => Some(execnode::config::read_token_file(file)?),
        None => args.token,
    };
    if let Some(file) = args
        .token_file
        .as_deref()
        .filter(|f| execnode::config::token_file_is_readable_by_others(f))
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
        hub: execnode::config::resolve(args.hub, token, args.ca.as_deref())?,
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
    slave::run(opts, shutdown_on_signals()?).await
}

/// A number that must be at least 1 (clap's own range check would print the type's maximum).
fn at_least_one<T>(s: &str) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + From<u8>,
    T::Err: std::fmt::Display,
{
    match s.parse::<T>() {
        Ok(n) if n < T::from(1) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn install_links(dir: &std::path::Path) -> Result<()> {
    let exe = std::env::current_exe().context("finding this binary")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for name in ["xn", "xnhub", "xnslave"] {
        let link = dir.join(name);
        if link.symlink_metadata().is_ok() {
            std::fs::remove_file(&link).with_context(|| format!("replacing {}", link.display()))?;
        }
        std::os::unix::fs::symlink(&exe, &link)
            .with_context(|| format!("linking {}", link.display()))?;
        println!("{} -> {}", link.display(), exe.display());
    }
    Ok(())
}
