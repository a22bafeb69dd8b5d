//! Named bounds on everything a peer can make us read, hold or wait for, in one place.
//!
//! Every size or time that comes from the network is checked against one of these before it is
//! read. Changing one is a protocol-visible decision: say so in docs/PROTOCOL.md.

use std::time::Duration;

/// Largest WebSocket frame (and so message: fragmented messages are refused) we accept.
pub const MAX_WS_MESSAGE_BYTES: usize = 1 << 20;

/// Largest chunk of output or input carried by one binary frame. Well under
/// [`MAX_WS_MESSAGE_BYTES`] so a frame with its header always fits.
pub const MAX_DATA_CHUNK: usize = 64 << 10;

/// Most memory a client reserves ahead for a REST answer of announced length (it grows past
/// this as the bytes arrive).
pub const ANSWER_PREALLOC_BYTES: u64 = 256 << 20;

/// Largest REST request body, but for job submissions.
pub const MAX_REST_BODY_BYTES: usize = 1 << 20;

/// Largest `POST /api/v1/jobs` body: a batch of thousands of jobs goes in one request. Each job
/// in it is still held to [`MAX_JOB_SPEC_BYTES`].
pub const MAX_SUBMIT_BODY_BYTES: usize = 32 << 20;

/// Largest job spec, as JSON, its inline `stdin` included. Well under [`MAX_WS_MESSAGE_BYTES`],
/// so the `assign` that carries it to a slave always fits in one message.
pub const MAX_JOB_SPEC_BYTES: usize = 256 << 10;

/// Most labels a job may require or a slave may offer.
pub const MAX_LABELS: usize = 64;

/// Longest label, job name or slave name, in bytes.
pub const MAX_LABEL_BYTES: usize = 256;

/// Time a peer has to send its HTTP request headers, and a slave its hello.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often slaves and hub tell each other they are alive (at most: see [`heartbeat_for`]).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// Shortest heartbeat interval a slave accepts from a hub's `welcome`.
pub const MIN_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);

/// How often a slave and its hub send word to each other when the hub gives a silent slave up
/// after `slave_timeout` (`xnhub --slave-timeout`): [`HEARTBEAT_INTERVAL`], or a third of the
/// timeout when that is shorter. A healthy but idle slave then says something three times
/// within every timeout, instead of being given up (and its jobs lost) between two heartbeats.
pub fn heartbeat_for(slave_timeout: Duration) -> Duration {
    (slave_timeout / 3).clamp(MIN_HEARTBEAT_INTERVAL, HEARTBEAT_INTERVAL)
}

/// Frames queued for one WebSocket writer before senders wait (back-pressure).
pub const WS_SEND_QUEUE: usize = 64;

/// The write buffer of a WebSocket connection: small control frames (acks, keystrokes,
/// heartbeats) that queue up together go out in one write; bigger frames bypass it. Every
/// connection holds one, so it is small: 10,000 idle slaves cost the hub 60 MiB less than with
/// tokio's default of 8 KiB.
pub const WS_WRITE_BUFFER: usize = 2 << 10;

/// Default for the output a slave keeps per job and stream until the hub acknowledges it
/// (`xnslave --output-buffer`). A job this far ahead of a connected hub waits, as on a full
/// pipe; while the hub is unreachable, the oldest unsent output beyond it is dropped and a
/// marker put in its place.
pub const SLAVE_UNACKED_BYTES: usize = 8 << 20;

/// Output of one job stream a slave keeps in flight: sent, but neither acknowledged nor refused
/// by the hub. While frames are in flight, what the job prints meanwhile is coalesced into
/// full frames; a small frame goes out at once only when nothing is in flight.
pub const SLAVE_WINDOW_BYTES: u64 = 1 << 20;

/// A slave (or a client following a job) that hears nothing from its hub for this long drops
/// the connection and dials again.
pub const HUB_SILENCE_LIMIT: Duration = Duration::from_secs(20);

/// How long `xn` and slaves wait for a connection to the hub (TCP, and TLS over it) before
/// they report it unreachable: a hub behind a route that drops packets would otherwise take the
/// kernel's two minutes of retries.
pub const HUB_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request waits for the head of the hub's answer (a big request body adds a second
/// per 256 KiB), and then for each next piece of its body (a long output may take as long as
/// it takes, as long as it flows): a hub that accepted and then stopped (`SIGSTOP`, a hung
/// machine) must not leave `xn -l` waiting for ever.
pub const HUB_ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long `xn` keeps trying to reconnect to a hub that went away mid-stream.
pub const CLIENT_RECONNECT_LIMIT: Duration = Duration::from_secs(300);
