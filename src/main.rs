//! The `execnode` binary: picks a personality from `argv[0]` (`xn`, `xnhub`, `xnslave`) or from
//! its first subcommand, sets up logging and signals, runs that role, and turns its result into
//! an exit code. Nothing else lives here.

use anyhow::{Context, Result};
use clap::{ArgMatches, Args, Command, CommandFactory, FromArgMatches, Parser, Subcommand};
use execnode::client::{self, XnArgs, EXIT_XN_ERROR};
use execnode::config::at_least_one;
use execnode::hub::auth::Auth;
use execnode::hub::datadir::DataDir;
use execnode::hub::token_cmd::{self, HubCmd};
use execnode::hub::{self, Hub, HubOptions};
use execnode::slave::{self, args::SlaveArgs};
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
    slave::run(args.into_options()?, shutdown_on_signals()?).await
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
