//! execnode: remote subprocess execution. One binary, three roles.
//!
//! - [`hub`]: the central server. Keeps jobs and their output durably, schedules jobs onto
//!   slaves, streams output to clients. REST + WebSockets on one port.
//! - [`slave`]: a worker that dials the hub, runs jobs as process groups (in a pty by default)
//!   and streams their output back.
//! - [`client`]: `xn`, the command line: submit, list, fetch, follow, cancel.
//!
//! Shared pieces: [`wire`] (every message that crosses a socket), [`conn`] (WebSocket
//! framing), [`http`] (the client side of HTTP), [`config`] (hub URL and token for clients
//! and slaves), [`limits`] (bounds on peer input), [`text`] (the characters that make text
//! show other than it is), [`tls`] (rustls settings for the hub and its clients), [`malloc`]
//! (glibc malloc settings, made first thing in `main`).

pub mod client;
pub mod config;
pub mod conn;
pub mod http;
pub mod hub;
pub mod limits;
pub mod malloc;
pub mod slave;
pub mod text;
pub mod tls;
pub mod wire;

#[cfg(test)]
mod tests {
    /// build.rs links GCC's unwinder statically: a panic must still unwind, for tokio to catch
    /// it and keep the hub and slave serving when one of their tasks panics.
    #[test]
    fn a_panicking_task_unwinds_and_is_caught() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let res = rt.block_on(rt.spawn(async { panic!("a task panics") }));
        assert!(res.unwrap_err().is_panic());
        assert!(std::panic::catch_unwind(|| panic!("and unwinds")).is_err());
    }
}
