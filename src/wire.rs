//! Every message that crosses a socket, and nothing else.
//!
//! Control messages are JSON text frames: one serde enum per direction, tagged with `type`,
//! snake_case. Stream bytes (job output, job input) are binary frames: a fixed 18-byte header
//! ([`DataFrame`]) followed by the raw bytes, never decoded as text. REST bodies reuse the payload
//! structs defined here. This module is pure data: no I/O, no state.

use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change to the messages below. Sent in every hello.
pub const PROTOCOL_VERSION: u32 = 1;

mod frame;
mod job;

pub use frame::*;
pub use job::*;

/// The header of the answer to `GET /api/v1/jobs` that says how many jobs matched its filters
/// (and the caller may see), however many the body holds: all of them, or with `last=N` the
/// newest N. What `xn -l` counts the jobs it left out with.
pub const TOTAL_COUNT_HEADER: &str = "x-total-count";

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
    /// A slave token bound to this slave name: it may serve only as that slave, and no other
    /// token may serve as it. Absent: unbound (any slave name not bound to another token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slave_name: Option<String>,
    /// When the token stops being accepted (ms since the epoch). Absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
}

/// `GET /api/v1/whoami`: the token a request was made with.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct WhoAmI {
    pub name: String,
    pub role: Role,
    /// When the token expires (ms since the epoch), if it has a lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
}

/// What an audit log row records (`GET /api/v1/audit`, `xnhub audit`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// A token was made (`target` its name; `detail` its role, binding and expiry).
    TokenCreated,
    /// A token was revoked (`target` its name).
    TokenRevoked,
    /// A job was cancelled (`target` `job ID`), over REST or from an attached client.
    JobCancelled,
    /// An ended job was deleted with its output (`target` `job ID`).
    JobDeleted,
    /// `xnhub --retain` deleted `count` jobs in one sweep.
    JobsExpired,
    /// Requests with a wrong, revoked or expired token were refused: `count` of them.
    Refused,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::TokenCreated => "token_created",
            AuditAction::TokenRevoked => "token_revoked",
            AuditAction::JobCancelled => "job_cancelled",
            AuditAction::JobDeleted => "job_deleted",
            AuditAction::JobsExpired => "jobs_expired",
            AuditAction::Refused => "refused",
        }
    }

    pub fn parse(s: &str) -> Option<AuditAction> {
        use AuditAction::*;
        [
            TokenCreated,
            TokenRevoked,
            JobCancelled,
            JobDeleted,
            JobsExpired,
            Refused,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

/// One row of the hub's audit log, as `GET /api/v1/audit` answers it (newest first).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// Increases with every row; rows past the table's bound are gone from the bottom.
    pub id: u64,
    /// When it happened (ms since the epoch); for a row that sums up refusals, the latest.
    pub time_ms: u64,
    /// A token's name; `hub machine` for `xnhub token ...` run where the hub's data is;
    /// `(hub)` for the hub itself (its first start, `--retain`); `(unknown)` for a token the
    /// hub does not know. Neither can be a token's name.
    pub actor: String,
    pub action: AuditAction,
    /// What it was done to: a token's name, `job ID`, a request (`GET /api/v1/jobs`).
    pub target: String,
    pub detail: String,
    /// The address the request came from, where there was a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// How many events the row stands for: 1, but for `jobs_expired` (jobs deleted) and
    /// `refused` rows that sum up repeats.
    pub count: u64,
}

/// Body of `POST /api/v1/tokens`. Unknown fields are refused: a hub that ignored one it did
/// not know (a lifetime, say) would make a token other than the one asked for.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub name: String,
    pub role: Role,
    /// Binds a `slave` token to this slave name (see [`TokenInfo::slave_name`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slave_name: Option<String>,
    /// How long the token lives, as `30d`, `12h`, `90m` or `45s`. Absent: until revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<String>,
}

/// Answer to `POST /api/v1/tokens`: the only time the secret is shown.
#[derive(Serialize, Deserialize, Clone)]
pub struct NewToken {
    pub name: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slave_name: Option<String>,
    /// See [`TokenInfo::expires_ms`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
    pub token: String,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("slave_name", &self.slave_name)
            .field("expires_ms", &self.expires_ms)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// A job a slave is running, reported in its hello after a reconnect.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RunningJob {
    pub job: JobId,
    /// The claim its `assign` carried, which proves the hub assigned it to this process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
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
        /// Random, drawn once per slave process and sent on each of its connections: a hello
        /// with the instance of an earlier session comes from the same process, so `running`
        /// is all it holds, and a job assigned to that session but not listed never reached it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<u64>,
        /// The slave understands [`HubToSlave::Resend`]: output the hub cannot store (a full
        /// disk) is asked for again rather than refused. Hubs that do not know it ignore it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        resend: bool,
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
        /// Jobs of the hello's `running` that the hub does not give back: the slave stops and
        /// forgets them before it sends anything, so that none of their reports can reach the
        /// hub after it has assigned one of them again (a retry) to this connection. The hub
        /// still sends `cancel` and `done` for each, for slaves that ignore this.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        forget: Vec<JobId>,
        /// How often the slave is to send a `heartbeat`, in milliseconds, when the hub wants
        /// it more often than every 5 s (its `--slave-timeout` is short); left out otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heartbeat_ms: Option<u64>,
    },
    /// Run this job. `grace_ms` is the time between SIGTERM and SIGKILL when its timeout
    /// passes.
    Assign {
        job: JobId,
        /// Boxed: a spec is far larger than every other message.
        spec: Box<JobSpec>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grace_ms: Option<u64>,
        /// For a slave that sent an instance id: what it lists with the job in a later hello
        /// to take it back, should the hub lose the assignment in a crash.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        claim: Option<String>,
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
    /// The hub could not store the stream from `offset` on (a full disk) and dropped what
    /// came after: send it again from there, and the job's end after it. Sent only to a
    /// slave whose hello said `resend`, a while after the failure; the slave keeps the bytes
    /// meanwhile, and its job waits once they fill its buffer.
    Resend {
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
