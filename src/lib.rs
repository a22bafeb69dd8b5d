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
//! and slaves), [`limits`] (bounds on peer input).

pub mod client;
pub mod config;
pub mod conn;
pub mod http;
pub mod hub;
pub mod limits;
pub mod malloc;
pub mod slave;
pub mod tls;
pub mod wire;
