//! The hub's open-file limit. Every slave, every following or attached client and every browser
//! tab holds a socket, and running jobs hold their log files: on the usual default soft limit
//! of 1024 descriptors a hub runs out long before the 10,000 idle slaves it is built for. So at
//! start it raises its soft `RLIMIT_NOFILE` to the hard limit (which needs no privilege) and
//! warns when even that is low. It never lowers a limit and never touches the hard one.

use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};

/// Below this many open files the hub warns: a few thousand connections, not ten thousand.
pub const WANTED_OPEN_FILES: u64 = 16_384;

/// The kernel's ceiling for a process's descriptors when the hard limit says "unlimited"
/// (`RLIMIT_NOFILE` may not be set to infinity); `fs.nr_open`'s default.
const NR_OPEN_DEFAULT: u64 = 1 << 20;

/// Raises the soft open-file limit to the hard one, and logs what it is: at debug when it was
/// already there, at info when raised, with a warning when it stays under
/// [`WANTED_OPEN_FILES`].
pub fn raise() {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            tracing::warn!("cannot read the open-file limit: {e}");
            return;
        }
    };
    let target = if hard == RLIM_INFINITY {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(NR_OPEN_DEFAULT)
    } else {
        hard
    };
    let now = if soft < target {
        match setrlimit(Resource::RLIMIT_NOFILE, target, hard) {
            Ok(()) => {
                tracing::info!("open-file limit raised from {soft} to {target}");
                target
            }
            Err(e) => {
                tracing::warn!("cannot raise the open-file limit from {soft} to {target}: {e}");
                soft
            }
        }
    } else {
        tracing::debug!("open-file limit: {soft}");
        soft
    };
    if now < WANTED_OPEN_FILES {
        tracing::warn!(
            "the open-file limit is {now} (hard limit {}): the hub can hold only about that \
             many slaves, clients and browser tabs at once; raise the hard limit to at least \
             {WANTED_OPEN_FILES} (systemd: LimitNOFILE=65536; elsewhere \
             /etc/security/limits.conf)",
            if hard == RLIM_INFINITY {
                "unlimited".to_string()
            } else {
                hard.to_string()
            }
        );
    }
}
