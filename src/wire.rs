//! Every message that crosses a socket, and nothing else.
//!
//! Control messages are JSON text frames: one serde enum per direction, tagged with `type`,
//! snake_case. Stream bytes (job output, job input) are binary frames: a fixed 18-byte header
//! ([`DataFrame`]) followed by the raw bytes, never decoded as text. REST bodies reuse the payload
//! structs defined here. This module is pure data: no I/O, no state.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bumped on any incompatible change to the messages below. Sent in every hello.
pub const PROTOCOL_VERSION: u32 = 1;

/// Job ids are small integers, increasing, never reused.
pub type JobId = u64;

/// What a client asks the hub to run. Its `Debug` shows environment names, never values, and
/// only the size of `stdin`.
///
/// Every field but one of `command`/`argv` has a default, so specs stored by older versions
/// (and written by older clients) still load.
#[derive(Serialize, Deserialize, Clone, PartialEq)]
pub struct JobSpec {
    /// The shell line, run as `sh -c LINE`. Empty when `argv` is given.
    #[serde(default)]
    pub command: String,
    /// The exact argument vector, run without a shell (`argv[0]` is looked up in `PATH`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// Extra environment variables for the job.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory on the slave; the slave's own when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Run in a pseudo-terminal (one output stream) or with pipes (stdout and stderr apart).
    #[serde(default = "default_tty")]
    pub tty: bool,
    /// Terminal size for tty jobs.
    #[serde(default = "default_rows")]
    pub rows: u16,
    #[serde(default = "default_cols")]
    pub cols: u16,
    /// The job's whole input: written to its stdin when it starts, then end of input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// Labels the slave must have, `key=value` or bare `key` (any value).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Run only on the slave of this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_slave: Option<String>,
    /// Seconds the job may run before it is terminated and ends `failed` (`timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    /// How many more times to run the job when an attempt ends `lost` (or fails, with
    /// `retries_on_failure`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
    /// Also retry when an attempt exits non-zero, is killed by a signal or fails.
    #[serde(default, skip_serializing_if = "is_false")]
    pub retries_on_failure: bool,
    /// A name for people and for `xn -l --name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Slots of its slave the job occupies.
    #[serde(default = "default_slots", skip_serializing_if = "is_one")]
    pub slots: u32,
}

impl std::fmt::Debug for JobSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobSpec")
            .field("command", &self.command)
            .field("argv", &self.argv)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("cwd", &self.cwd)
            .field("tty", &self.tty)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("stdin_bytes", &self.stdin.as_ref().map(String::len))
            .field("labels", &self.labels)
            .field("on_slave", &self.on_slave)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("retries_on_failure", &self.retries_on_failure)
            .field("name", &self.name)
            .field("slots", &self.slots)
            .finish()
    }
}

fn default_tty() -> bool {
    true
}
fn default_rows() -> u16 {
    24
}
fn default_cols() -> u16 {
    80
}
fn default_slots() -> u32 {
    1
}
fn is_zero(n: &u32) -> bool {
    *n == 0
}
fn is_one(n: &u32) -> bool {
    *n == 1
}
fn is_false(b: &bool) -> bool {
    !*b
}

impl Default for JobSpec {
    fn default() -> Self {
        JobSpec {
            command: String::new(),
            argv: None,
            env: BTreeMap::new(),
            cwd: None,
            tty: true,
            rows: default_rows(),
            cols: default_cols(),
            stdin: None,
            labels: Vec::new(),
            on_slave: None,
            timeout: None,
            retries: 0,
            retries_on_failure: false,
            name: None,
            slots: 1,
        }
    }
}

impl JobSpec {
    /// A tty job of the default size running `command`.
    pub fn shell(command: impl Into<String>) -> Self {
        JobSpec {
            command: command.into(),
            ..JobSpec::default()
        }
    }

    /// What the job runs, for people: the shell line, or the argv quoted as a shell would
    /// need it.
    pub fn display_command(&self) -> String {
        match &self.argv {
            Some(argv) if self.command.is_empty() => argv
                .iter()
                .map(|a| shell_quote(a))
                .collect::<Vec<_>>()
                .join(" "),
            _ => self.command.clone(),
        }
    }
}

/// Quotes a word for `sh` when it needs it.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Whether a slave with `slave_labels` has `wanted`: a bare `key` matches `key` and any
/// `key=value`; `key=value` matches only itself.
pub fn has_label(slave_labels: &[String], wanted: &str) -> bool {
    slave_labels.iter().any(|l| {
        l == wanted
            || (!wanted.contains('=') && l.split_once('=').is_some_and(|(k, _)| k == wanted))
    })
}

/// Where a job is in its life. The last five are terminal and final.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Assigned,
    Running,
    Exited,
    Signaled,
    Failed,
    Cancelled,
    Lost,
}

impl JobState {
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            JobState::Queued | JobState::Assigned | JobState::Running
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Assigned => "assigned",
            JobState::Running => "running",
            JobState::Exited => "exited",
            JobState::Signaled => "signaled",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Lost => "lost",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        ALL_STATES.iter().copied().find(|st| st.as_str() == s)
    }
}

pub const ALL_STATES: [JobState; 8] = [
    JobState::Queued,
    JobState::Assigned,
    JobState::Running,
    JobState::Exited,
    JobState::Signaled,
    JobState::Failed,
    JobState::Cancelled,
    JobState::Lost,
];

/// A job as the hub keeps it and shows it (`GET /api/v1/jobs`, `xn -l --json`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct JobRecord {
    pub id: JobId,
    #[serde(flatten)]
    pub spec: JobSpec,
    pub state: JobState,
    /// Set when the state is `exited`.
    pub exit_code: Option<i32>,
    /// Set when the job was killed by a signal (`signaled`, and `cancelled` jobs that were running).
    pub signal: Option<i32>,
    /// Why a job `failed`, was `cancelled` or `lost`; for a `queued` job, why no connected
    /// slave can take it.
    pub reason: Option<String>,
    /// Name of the slave it was given to.
    pub slave: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_ms: u64,
    pub started_ms: Option<u64>,
    pub ended_ms: Option<u64>,
    /// Bytes of output stored so far, per stream.
    pub stdout_len: u64,
    pub stderr_len: u64,
    /// Name of the token that submitted it (`None` with `--no-auth` or from older hubs).
    #[serde(default)]
    pub owner: Option<String>,
    /// Which run of the job this record describes, from 1; retries add one. Left out when 1.
    #[serde(default = "default_attempt", skip_serializing_if = "is_one")]
    pub attempt: u32,
    /// The earlier attempts, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// The broadcast group the job belongs to (`g7`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

fn default_attempt() -> u32 {
    1
}

/// How an earlier attempt of a retried job ended. Its output stays readable
/// (`GET /api/v1/jobs/ID/output?attempt=N`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub attempt: u32,
    pub state: JobState,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub reason: Option<String>,
    pub slave: Option<String>,
    pub started_ms: Option<u64>,
    pub ended_ms: Option<u64>,
    pub stdout_len: u64,
    pub stderr_len: u64,
}

impl JobRecord {
    /// A new queued record for `spec` (the store gives it its id).
    pub fn queued(spec: JobSpec, created_ms: u64) -> JobRecord {
        JobRecord {
            id: 0,
            spec,
            state: JobState::Queued,
            exit_code: None,
            signal: None,
            reason: None,
            slave: None,
            created_ms,
            started_ms: None,
            ended_ms: None,
            stdout_len: 0,
            stderr_len: 0,
            attempt: 1,
            attempts: Vec::new(),
            group: None,
            owner: None,
        }
    }

    /// This attempt's summary, kept when the job is retried.
    pub fn as_attempt(&self) -> Attempt {
        Attempt {
            attempt: self.attempt,
            state: self.state,
            exit_code: self.exit_code,
            signal: self.signal,
            reason: self.reason.clone(),
            slave: self.slave.clone(),
            started_ms: self.started_ms,
            ended_ms: self.ended_ms,
            stdout_len: self.stdout_len,
            stderr_len: self.stderr_len,
        }
    }

    /// The exit code a client reports for this job: the code itself, 128 + signal, or 1 for any
    /// other terminal state. `None` while the job has not ended.
    pub fn client_exit_code(&self) -> Option<i32> {
        if !self.state.is_terminal() {
            return None;
        }
        Some(match (self.state, self.exit_code, self.signal) {
            (JobState::Exited, Some(code), _) => code,
            (_, _, Some(sig)) => 128 + sig,
            _ => 1,
        })
    }

    /// A short human description of how the job ended, e.g. `exited with code 0`.
    pub fn describe_end(&self) -> String {
        let mut s = match (self.state, self.exit_code, self.signal) {
            (JobState::Exited, Some(code), _) => format!("exited with code {code}"),
            (JobState::Signaled, _, Some(sig)) => format!("killed by signal {sig}"),
            (st, _, Some(sig)) => format!("{} (signal {sig})", st.as_str()),
            (st, _, _) => st.as_str().to_string(),
        };
        if let Some(reason) = &self.reason {
            s.push_str(": ");
            s.push_str(reason);
        }
        s
    }
}

/// How a job's process ended, as a slave reports it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    Exited {
        code: i32,
    },
    Signaled {
        signal: i32,
    },
    /// The job could not be started or run (bad cwd, no pty, ...).
    Failed {
        reason: String,
    },
}

/// Answer to `POST /api/v1/jobs` with one job spec.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct SubmitReply {
    pub id: JobId,
}

/// Answer to `POST /api/v1/jobs` with an array of job specs: their ids, in order.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct SubmitManyReply {
    pub ids: Vec<JobId>,
}

/// Answer to `POST /api/v1/broadcast`: one job per matching slave, all in one group.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct BroadcastReply {
    pub group: String,
    pub ids: Vec<JobId>,
}

/// The body of every error answer, REST or WebSocket.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: String,
}

/// What a token may do.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything.
    Admin,
    /// Submit; list, fetch, attach to and cancel its own jobs.
    User,
    /// Read-only: list, fetch, watch every job.
    Viewer,
    /// The slave endpoint only.
    Slave,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
            Role::Viewer => "viewer",
            Role::Slave => "slave",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::Admin, Role::User, Role::Viewer, Role::Slave]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// A token as listed (never the secret itself).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    pub name: String,
    pub role: Role,
    pub created_ms: u64,
}

/// Body of `POST /api/v1/tokens`.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct CreateToken {
    pub name: String,
    pub role: Role,
}

/// Answer to `POST /api/v1/tokens`: the only time the secret is shown.
#[derive(Serialize, Deserialize, Clone)]
pub struct NewToken {
    pub name: String,
    pub role: Role,
    pub token: String,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// A job a slave is running, reported in its hello after a reconnect.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RunningJob {
    pub job: JobId,
}

/// Slave → hub control messages.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SlaveMsg {
    /// First message on the connection.
    Hello {
        protocol: u32,
        name: String,
        slots: u32,
        #[serde(default)]
        running: Vec<RunningJob>,
        /// What the slave offers (`gpu`, `os=linux`); jobs may require labels.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        labels: Vec<String>,
    },
    /// The job's process is running.
    Started {
        job: JobId,
        pid: u32,
    },
    /// The job ended; every output byte (`stdout_len`/`stderr_len` in all) was sent before this.
    Ended {
        job: JobId,
        outcome: Outcome,
        stdout_len: u64,
        stderr_len: u64,
        /// Set when the slave itself cancelled the job (it was stopping): why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cancelled: Option<String>,
    },
    /// The slave is stopping: give it no more jobs.
    Drain,
    Heartbeat,
}

/// Hub → slave control messages.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HubToSlave {
    /// Answer to a good hello.
    Welcome {
        protocol: u32,
    },
    /// Run this job. `grace_ms` is the time between SIGTERM and SIGKILL when its timeout
    /// passes.
    Assign {
        job: JobId,
        /// Boxed: a spec is far larger than every other message.
        spec: Box<JobSpec>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grace_ms: Option<u64>,
    },
    /// SIGTERM to the job's process group, `grace_ms`, then SIGKILL.
    Cancel {
        job: JobId,
        grace_ms: u64,
    },
    /// New terminal size for a tty job.
    Resize {
        job: JobId,
        rows: u16,
        cols: u16,
    },
    /// End of input: close stdin (pipes) or send the terminal's EOF character (pty).
    CloseStdin {
        job: JobId,
    },
    /// The hub has stored the stream up to `offset`.
    Ack {
        job: JobId,
        stream: Stream,
        offset: u64,
    },
    /// The hub has stored the job's end: the slave may forget it.
    Done {
        job: JobId,
    },
    Heartbeat,
    /// The hub refuses or ends the session; the slave should not simply retry the same thing.
    Error {
        message: String,
    },
}

/// Client → hub messages on a job stream (`/api/v1/jobs/ID/stream`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    Resize {
        rows: u16,
        cols: u16,
    },
    /// End of the client's input.
    CloseStdin,
    /// Terminate the job (the original's `/term`).
    Terminate,
}

/// Hub → client messages on a job stream.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamMsg {
    /// The job's record, sent first and on every state change.
    Job { job: JobRecord },
    /// Every byte of the job's output has been sent; the totals let the client check it.
    End { job: JobRecord },
    /// A request on this stream was refused; the stream stays open.
    Error { message: String },
}

/// Which stream a data frame belongs to.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Stream {
    Stdin = 0,
    /// The pty's output, or stdout for a `tty: false` job.
    Stdout = 1,
    Stderr = 2,
}

impl Stream {
    fn from_u8(b: u8) -> Option<Stream> {
        match b {
            0 => Some(Stream::Stdin),
            1 => Some(Stream::Stdout),
            2 => Some(Stream::Stderr),
            _ => None,
        }
    }
}

/// A binary frame: `[stream u8][reserved u8][job u64 BE][offset u64 BE]` then the bytes.
///
/// `offset` is the position of the first byte within that job's stream; for input it counts the
/// bytes the sender has sent on that stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataFrame<'a> {
    pub stream: Stream,
    pub job: JobId,
    pub offset: u64,
    pub data: &'a [u8],
}

/// Length of a [`DataFrame`] header.
pub const DATA_HEADER_LEN: usize = 18;

/// Why a binary frame could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("binary frame of {0} bytes is shorter than its {DATA_HEADER_LEN}-byte header")]
    Short(usize),
    #[error("unknown stream kind {0} in binary frame")]
    UnknownStream(u8),
    #[error("reserved byte of a binary frame is {0}, not 0")]
    Reserved(u8),
}

impl<'a> DataFrame<'a> {
    pub fn header(stream: Stream, job: JobId, offset: u64) -> [u8; DATA_HEADER_LEN] {
        let mut h = [0u8; DATA_HEADER_LEN];
        h[0] = stream as u8;
        h[2..10].copy_from_slice(&job.to_be_bytes());
        h[10..18].copy_from_slice(&offset.to_be_bytes());
        h
    }

    /// Header and bytes in one buffer, ready to send.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(DATA_HEADER_LEN + self.data.len());
        v.extend_from_slice(&Self::header(self.stream, self.job, self.offset));
        v.extend_from_slice(self.data);
        v
    }

    pub fn decode(buf: &'a [u8]) -> Result<DataFrame<'a>, FrameError> {
        if buf.len() < DATA_HEADER_LEN {
            return Err(FrameError::Short(buf.len()));
        }
        let stream = Stream::from_u8(buf[0]).ok_or(FrameError::UnknownStream(buf[0]))?;
        if buf[1] != 0 {
            return Err(FrameError::Reserved(buf[1]));
        }
        // The slices are exactly 8 bytes long, so the conversions cannot fail.
        let job = u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes"));
        let offset = u64::from_be_bytes(buf[10..18].try_into().expect("8 bytes"));
        Ok(DataFrame {
            stream,
            job,
            offset,
            data: &buf[DATA_HEADER_LEN..],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_frame_round_trip() {
        let data = [0u8, 255, 10, 13, 0xc3];
        let f = DataFrame {
            stream: Stream::Stderr,
            job: 42,
            offset: 1 << 40,
            data: &data,
        };
        let buf = f.encode();
        assert_eq!(buf.len(), DATA_HEADER_LEN + data.len());
        assert_eq!(DataFrame::decode(&buf).unwrap(), f);
    }

    #[test]
    fn data_frame_rejects_bad_input() {
        assert_eq!(DataFrame::decode(&[1, 0, 0]), Err(FrameError::Short(3)));
        let mut buf = DataFrame::header(Stream::Stdout, 1, 0).to_vec();
        buf[0] = 9;
        assert_eq!(DataFrame::decode(&buf), Err(FrameError::UnknownStream(9)));
    }

    #[test]
    fn job_spec_debug_hides_environment_values() {
        let mut spec = JobSpec::shell("true");
        spec.env.insert("API_KEY".into(), "hunter2".into());
        spec.stdin = Some("password: hunter3".into());
        let shown = format!("{spec:?}");
        assert!(
            shown.contains("API_KEY") && !shown.contains("hunter2") && !shown.contains("hunter3"),
            "{shown}"
        );
    }

    #[test]
    fn labels_and_quoting() {
        let have = vec!["gpu".to_string(), "os=linux".to_string()];
        assert!(has_label(&have, "gpu"));
        assert!(has_label(&have, "os"));
        assert!(has_label(&have, "os=linux"));
        assert!(!has_label(&have, "os=mac"));
        assert!(!has_label(&have, "gpu=a100"));
        let spec = JobSpec {
            argv: Some(vec![
                "printf".into(),
                "%s".into(),
                "a b".into(),
                "it's".into(),
            ]),
            ..JobSpec::default()
        };
        assert_eq!(spec.display_command(), "printf %s 'a b' 'it'\\''s'");
    }

    #[test]
    fn old_specs_still_load() {
        let spec: JobSpec = serde_json::from_str(r#"{"command":"ls","tty":false}"#).unwrap();
        assert_eq!(spec.slots, 1);
        assert!(spec.labels.is_empty() && spec.argv.is_none() && spec.retries == 0);
        let text = serde_json::to_string(&JobSpec::shell("ls")).unwrap();
        assert_eq!(text, r#"{"command":"ls","tty":true,"rows":24,"cols":80}"#);
    }

    #[test]
    fn exit_codes_for_clients() {
        let mut r = JobRecord::queued(JobSpec::shell("true"), 0);
        r.state = JobState::Running;
        assert_eq!(r.client_exit_code(), None);
        r.state = JobState::Exited;
        r.exit_code = Some(3);
        assert_eq!(r.client_exit_code(), Some(3));
        r.state = JobState::Signaled;
        r.exit_code = None;
        r.signal = Some(9);
        assert_eq!(r.client_exit_code(), Some(137));
        r.state = JobState::Lost;
        r.signal = None;
        assert_eq!(r.client_exit_code(), Some(1));
    }
}
