//! `xnhub token create|list|revoke`: the subcommand's arguments, where it finds the data
//! directory, and what each action does to the token table there (beside a running hub, which
//! picks the change up, or not). It never starts a hub.
//!
//! `--data` may come before `token` (as for a hub: `xnhub --data DIR token list`) or after the
//! action (`xnhub token list --data DIR`), once: given in both places it is an error, whatever
//! the two values, as it is given twice in one place. On the command line it wins over
//! `XN_DATA`. The hub's other flags are refused beside `token`: they would do nothing. The
//! same holds for `xnhub audit` (`audit_cmd`), whose arguments live beside it in [`HubCmd`].
//!
//! `list` and `revoke` only read and change a hub's database: on a directory without one (no
//! hub has run there, or `--data` names the wrong place) they fail and create nothing. `create`
//! there makes the directory ready for a hub as its first start would: with the `admin` and
//! `slave` tokens and their files, and says so. Otherwise no action adds a token it was not
//! told to, even where none is left.

use super::age::{parse_age, show_age};
use super::audit::Actor;
use super::auth::Auth;
use super::store::DB_FILE;
use crate::client::visible::cell;
use crate::wire::Role;
use anyhow::{anyhow, bail, Context, Result};
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgMatches, Command, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The hub's subcommands.
#[derive(Subcommand)]
pub enum HubCmd {
    /// Manage tokens in a hub's data directory (works while the hub runs)
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    Audit(super::audit_cmd::AuditArgs),
}

#[derive(Subcommand)]
pub enum TokenAction {
    /// Create a token and print it (it is shown only this once)
    Create {
        /// The hub's data directory (may also come before `token`) [default: XN_DATA, else
        /// $XDG_DATA_HOME/execnode, else ~/.local/share/execnode]
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// A name for it; jobs submitted with it are owned by this name
        #[arg(long)]
        name: String,
        /// admin, user (own jobs), viewer (read-only) or slave
        #[arg(long, value_parser = ["admin", "user", "viewer", "slave"])]
        role: String,
        /// Bind a slave token to this slave name: it may serve only as `xnslave --name NAME`,
        /// and no other token may serve as that name (so jobs pinned with `xn -s --slave
        /// NAME` reach only its holder). Without it a slave token serves as any unbound name
        #[arg(long, value_name = "NAME")]
        slave_name: Option<String>,
        /// Let the token expire this long from now (30d, 12h, 90m, 45s): from then on it is
        /// refused, and the connections opened with it close. Without it, it lives until
        /// revoked
        #[arg(long, value_name = "AGE", value_parser = parse_age)]
        expires: Option<Duration>,
    },
    /// List tokens (names, roles, the slave name a slave token is bound to, and when a
    /// token expires; secrets are never stored)
    List {
        /// The hub's data directory (may also come before `token`) [default: XN_DATA, else
        /// $XDG_DATA_HOME/execnode, else ~/.local/share/execnode]
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
    },
    /// Revoke a token: its open connections close at once
    Revoke {
        /// The hub's data directory (may also come before `token`) [default: XN_DATA, else
        /// $XDG_DATA_HOME/execnode, else ~/.local/share/execnode]
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// The token's name, as `token list` shows it
        name: String,
    },
}

impl TokenAction {
    /// The `--data` given after the action, if any.
    pub fn data(&self) -> Option<&Path> {
        match self {
            TokenAction::Create { data, .. }
            | TokenAction::List { data }
            | TokenAction::Revoke { data, .. } => data.as_deref(),
        }
    }
}

/// Checks what clap cannot express about `xnhub [FLAGS] token ACTION [FLAGS]` and `xnhub
/// [FLAGS] audit [FLAGS]`: `hub` is the hub's command (`xnhub`, or `execnode hub`) and `m`
/// what it matched. Only `--data` of the hub's flags may come before `token` or `audit`, and
/// not when the action has one too.
pub fn check_args(hub: &mut Command, m: &ArgMatches) -> Result<(), clap::Error> {
    let (sub, action, am) = match m.subcommand() {
        Some(("token", token)) => match token.subcommand() {
            Some((action, am)) => ("token", format!("token {action}"), am),
            None => return Ok(()),
        },
        Some(("audit", am)) => ("audit", "audit".to_string(), am),
        _ => return Ok(()),
    };
    let given = |m: &ArgMatches, id: &str| m.value_source(id) == Some(ValueSource::CommandLine);
    if given(m, "data") && given(am, "data") {
        return Err(hub.error(
            ErrorKind::ArgumentConflict,
            format!("--data is given twice, before `{sub}` and after `{action}`: give it once"),
        ));
    }
    let serving = hub
        .get_arguments()
        .filter(|a| a.get_id() != "data" && given(m, a.get_id().as_str()))
        .find_map(|a| a.get_long());
    if let Some(flag) = serving {
        return Err(hub.error(
            ErrorKind::ArgumentConflict,
            format!("--{flag} is for running the hub: `{sub}` takes only --data"),
        ));
    }
    Ok(())
}

/// When a token that expires at `at` does, seen at `now` (ms): `expires in 30d`, the time left
/// counted in whole seconds up (a token made with `--expires 30d` a moment ago shows 30d, not
/// 29d), or `EXPIRED 2h ago`.
fn expiry(at: u64, now: u64) -> String {
    match at.checked_sub(now) {
        Some(left) if left > 0 => {
            let secs = left.div_ceil(1000);
            format!("expires in {}", show_age(Duration::from_secs(secs)))
        }
        _ => format!("EXPIRED {} ago", show_age(Duration::from_millis(now - at))),
    }
}

/// Runs `action` on the data directory `data`.
pub fn run(action: TokenAction, data: &Path) -> Result<()> {
    let by = Actor::hub_machine();
    let has_db = data.join(DB_FILE).exists();
    // Most likely a wrong --data or XN_DATA: an error, not an empty answer.
    let nothing_there = |what: &str| {
        anyhow!(
            "no hub data in {} (no {DB_FILE}): {what} (is --data or XN_DATA right?)",
            data.display()
        )
    };
    match action {
        TokenAction::Create {
            name,
            role,
            slave_name,
            expires,
            ..
        } => {
            let role = Role::parse(&role).context("unknown role")?;
            let slave_name = slave_name.as_deref();
            let made = if has_db {
                Auth::open_as_is(data)?.create(&name, role, slave_name, expires, &by)?
            } else {
                super::datadir::create(data)?;
                let made =
                    Auth::open(data, false)?.create(&name, role, slave_name, expires, &by)?;
                eprintln!(
                    "{} had no hub data: made it ready for a hub, with the admin and slave \
                     tokens a hub makes on its first start, in {} and {}",
                    data.display(),
                    data.join("admin.token").display(),
                    data.join("slave.token").display()
                );
                made
            };
            println!("{}", made.token);
        }
        TokenAction::List { .. } => {
            if !has_db {
                return Err(nothing_there(
                    "no tokens to list; a hub started there creates its admin and slave tokens",
                ));
            }
            let tokens = Auth::open_as_is(data)?.list()?;
            if tokens.is_empty() {
                eprintln!("no tokens in {}", data.display());
            }
            let now = crate::hub::now_ms();
            for t in tokens {
                let mut line = format!("{:<24} {:<6}", t.name, t.role.as_str());
                if let Some(at) = t.expires_ms {
                    line += &format!(" {}", expiry(at, now));
                }
                if let Some(s) = &t.slave_name {
                    // As xn's tables show a slave's name: quoted when it has a space.
                    line += &format!(" bound to slave {}", cell(s));
                }
                println!("{}", line.trim_end());
            }
        }
        TokenAction::Revoke { name, .. } => {
            if !has_db {
                return Err(nothing_there(&format!("no token named {name:?} to revoke")));
            }
            if !Auth::open_as_is(data)?.revoke(&name, &by)? {
                bail!("no token named {name:?}");
            }
            eprintln!("revoked {name}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::expiry;

    #[test]
    fn a_lifetime_left_is_counted_up_to_whole_seconds_and_one_past_down() {
        let now = 1_000_000_000;
        assert_eq!(expiry(now + 30 * 86_400_000 - 5, now), "expires in 30d");
        assert_eq!(expiry(now + 8_000 - 3, now), "expires in 8s");
        assert_eq!(expiry(now + 1, now), "expires in 1s");
        assert_eq!(expiry(now, now), "EXPIRED 0s ago");
        assert_eq!(expiry(now - 7_200_500, now), "EXPIRED 2h ago");
    }
}
