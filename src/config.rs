//! Where `xn` and `xnslave` find their hub and token: `--hub`/`--token`, then `XN_HUB`/
//! `XN_TOKEN` (clap reads both), then `~/.config/execnode/config.toml`, then the default hub.
//! The config file holds a secret, so one that others can read is refused.

use crate::http::HubUrl;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The hub of the original execnode, on this machine.
pub const DEFAULT_HUB: &str = "http://127.0.0.1:5000";

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    hub: Option<String>,
    token: Option<String>,
}

/// `$XDG_CONFIG_HOME/execnode/config.toml`, or `~/.config/execnode/config.toml`.
pub fn path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("execnode/config.toml"))
}

fn read_file() -> Result<File> {
    let Some(path) = path() else {
        return Ok(File::default());
    };
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(File::default()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    if meta.permissions().mode() & 0o077 != 0 {
        bail!(
            "{} holds a token but others can read it: run chmod 600 {}",
            path.display(),
            path.display()
        );
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{} is not valid", path.display()))
}

/// The hub to talk to and the token to show it; `ca` checks an `https://` hub.
pub fn resolve(hub: Option<String>, token: Option<String>, ca: Option<&Path>) -> Result<HubUrl> {
    let file = if hub.is_some() && token.is_some() {
        File::default()
    } else {
        read_file()?
    };
    let url = hub.or(file.hub).unwrap_or_else(|| DEFAULT_HUB.to_string());
    let token = token.or(file.token).filter(|t| !t.trim().is_empty());
    HubUrl::parse(&url)?
        .with_token(token.map(|t| t.trim().to_string()))
        .with_tls(ca)
}
