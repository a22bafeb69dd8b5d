//! Where `xn` and `xnslave` find their hub and token: `--hub`/`--token`, then `XN_HUB`/
//! `XN_TOKEN` (clap reads both), then `~/.config/execnode/config.toml`, then the default hub.
//! The config file holds a secret and says where the token goes, so one that others can read
//! or write (or that someone else owns) is refused, and so is one in a directory where others
//! could put a file of their own in its place.

use crate::http::HubUrl;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
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
    // Checked on the open file, so that what is checked is what is read.
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(File::default()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let meta = file
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?;
    let me = nix::unistd::geteuid().as_raw();
    if let Err(why) = check_access(meta.permissions().mode(), meta.uid(), me) {
        bail!("{}: {why}", path.display());
    }
    for dir in holding_dirs(&path)? {
        let meta = std::fs::metadata(&dir).with_context(|| {
            format!("checking {}, which holds {}", dir.display(), path.display())
        })?;
        if let Err(why) = check_dir(&dir, meta.permissions().mode(), meta.uid(), me) {
            bail!(
                "{} (the directory that holds {}): {why}",
                dir.display(),
                path.display()
            );
        }
    }
    let mut text = String::new();
    file.read_to_string(&mut text)
        .with_context(|| format!("reading {}", path.display()))?;
    // As `FILE:LINE:COLUMN: what`, on one line: toml's own rendering is a multi-line
    // snippet, which xn's error line would show with its newlines written out.
    toml::from_str(&text).map_err(|e| {
        let at = e.span().map_or(String::new(), |span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            format!(":{line}:{column}")
        });
        let what = e.message().trim().replace('\n', "; ");
        anyhow::anyhow!("{}{at}: {what}", path.display())
    })
}

/// The directories whose owners and writers could replace the config file at `path`: the one
/// it is named in and, if a symbolic link leads elsewhere, the one that really holds it.
fn holding_dirs(path: &Path) -> Result<Vec<PathBuf>> {
    // `path()` always names a file in a directory.
    let named = path.parent().unwrap_or(Path::new("."));
    let real =
        std::fs::canonicalize(path).with_context(|| format!("reading {}", path.display()))?;
    let mut dirs = vec![named.to_path_buf()];
    if let Some(real) = real.parent() {
        if std::fs::canonicalize(named).ok().as_deref() != Some(real) {
            dirs.push(real.to_path_buf());
        }
    }
    Ok(dirs)
}

/// The token in `file` (`xnslave --token-file`), without surrounding whitespace.
pub fn read_token_file(file: &Path) -> Result<String> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the token file {}", file.display()))?;
    let token = text.trim();
    if token.is_empty() {
        bail!("the token file {} is empty", file.display());
    }
    check_token(token).with_context(|| format!("the token file {}", file.display()))?;
    Ok(token.to_string())
}

/// Whether group or others may read the token file `file`: anyone who can read it can act as
/// the slave that uses it. (A copy made with `scp` or `cp` under the usual umask is such a
/// file; the hub writes its token files 0600.)
pub fn token_file_is_readable_by_others(file: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(file).is_ok_and(|m| m.permissions().mode() & 0o044 != 0)
}

/// Refuses a token that could not go into an `Authorization` header as it is: one with a space,
/// a line break, a control or a non-ASCII character (no token the hub makes has any). Sent, it
/// failed as "failed to parse header value", which a slave took for a passing fault and dialled
/// again for ever; or, non-ASCII, it reached the hub as no token at all.
fn check_token(token: &str) -> Result<()> {
    if let Some(c) = token.chars().find(|c| !c.is_ascii_graphic()) {
        bail!(
            "the token has {}, which no token has: give the token alone (xn_ and 64 hex digits)",
            match c {
                ' ' | '\t' => "a space".to_string(),
                '\n' | '\r' => "a line break".to_string(),
                c if c.is_control() => format!("a control character ({c:?})"),
                c => format!("the character {c:?}"),
            }
        );
    }
    Ok(())
}

/// Whether a config file of this `mode`, owned by `owner`, may be used by user `me`. As ssh
/// does with its config: whoever can write the file can point xn at a hub of theirs, which
/// then gets the token (from the file or from `XN_TOKEN`); whoever can read it can read the
/// token it may hold; a file someone else owns, they can change.
fn check_access(mode: u32, owner: u32, me: u32) -> Result<(), String> {
    if mode & 0o022 != 0 {
        return Err(
            "group or others can write it, and so send xn to a hub of theirs, with your \
                    token: run chmod 600 on it"
                .into(),
        );
    }
    if mode & 0o044 != 0 {
        return Err(
            "group or others can read it, and the token it may hold: run chmod 600 on it".into(),
        );
    }
    if owner != me && owner != 0 {
        return Err(format!(
            "it belongs to user {owner}, who could change it: it must be yours (or root's)"
        ));
    }
    Ok(())
}

/// Whether directory `dir`, of this `mode`, owned by `owner`, keeps the config file in it safe
/// for user `me`. As ssh's StrictModes: whoever may write in a directory may rename or remove
/// the file in it and put their own in its place, unless the directory is sticky (like `/tmp`:
/// only a file's owner may do that there); its owner may do so in any case.
fn check_dir(dir: &Path, mode: u32, owner: u32, me: u32) -> Result<(), String> {
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(format!(
            "group or others can write in it, and so put a config file of theirs in place of \
             yours: run chmod go-w {}",
            dir.display()
        ));
    }
    if owner != me && owner != 0 {
        return Err(format!(
            "it belongs to user {owner}, who could replace the config file: it must be yours \
             (or root's)"
        ));
    }
    Ok(())
}

/// The hub to talk to and the token to show it; `ca` checks an `https://` hub.
pub fn resolve(hub: Option<String>, token: Option<String>, ca: Option<&Path>) -> Result<HubUrl> {
    // An empty value (`XN_HUB= xn ...`) means none, as for the token.
    let hub = hub.filter(|h| !h.trim().is_empty());
    let file = if hub.is_some() && token.is_some() {
        File::default()
    } else {
        read_file()?
    };
    let url = hub.or(file.hub).unwrap_or_else(|| DEFAULT_HUB.to_string());
    let token = token
        .or(file.token)
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    if let Some(t) = &token {
        check_token(t)?;
    }
    HubUrl::parse(&url)?.with_token(token).with_tls(ca)
}

/// A number that must be at least 1 (clap's own range check would print the type's maximum).
pub fn at_least_one<T>(s: &str) -> Result<T, String>
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

#[cfg(test)]
mod tests {
    use super::{check_access, check_dir};

    #[test]
    fn a_config_file_in_a_directory_only_its_owner_can_change() {
        let d = std::path::Path::new("/home/me/.config/execnode");
        for mode in [0o40700, 0o40755, 0o40500, 0o41777, 0o41770] {
            assert!(check_dir(d, mode, 1000, 1000).is_ok(), "{mode:o}");
        }
        // A root-owned directory, as /etc or a sticky /tmp.
        assert!(check_dir(d, 0o41777, 0, 1000).is_ok());
        assert!(check_dir(d, 0o40755, 0, 1000).is_ok());
        for mode in [0o40775, 0o40757, 0o40777, 0o40720] {
            let e = check_dir(d, mode, 1000, 1000).unwrap_err();
            assert!(
                e.contains("can write in it") && e.contains("chmod go-w /home/me/.config/execnode"),
                "{mode:o}: {e}"
            );
        }
        // Sticky or not, its owner can replace any file in it.
        for mode in [0o40755, 0o41777] {
            let e = check_dir(d, mode, 1001, 1000).unwrap_err();
            assert!(e.contains("belongs to user 1001"), "{mode:o}: {e}");
        }
    }

    #[test]
    fn a_config_file_only_its_owner_can_touch() {
        assert!(check_access(0o100600, 1000, 1000).is_ok());
        assert!(check_access(0o100400, 1000, 1000).is_ok());
        // Root's own files are fine for anyone (as with ssh).
        assert!(check_access(0o100600, 0, 1000).is_ok());
        for mode in [0o602, 0o620, 0o622, 0o666] {
            let e = check_access(mode, 1000, 1000).unwrap_err();
            assert!(
                e.contains("can write it") && e.contains("chmod 600"),
                "{mode:o}: {e}"
            );
        }
        for mode in [0o604, 0o640, 0o644] {
            let e = check_access(mode, 1000, 1000).unwrap_err();
            assert!(
                e.contains("can read it") && e.contains("chmod 600"),
                "{mode:o}: {e}"
            );
        }
        // Execute bits alone are harmless.
        assert!(check_access(0o100711, 1000, 1000).is_ok());
        let e = check_access(0o100600, 1001, 1000).unwrap_err();
        assert!(e.contains("belongs to user 1001"), "{e}");
    }
}
