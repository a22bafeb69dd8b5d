//! Jobs as the wire carries them: what a client asks to run (`JobSpec`), what the hub keeps
//! and shows (`JobRecord`), their states and how they end. Pure data.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Job ids are small integers, increasing, never reused.
pub type JobId = u64;

/// What a client asks the hub to run. Its `Debug` shows environment names, never values, and
/// only the size of `stdin`.
///
/// Every field but one of `command`/`argv` has a default, so specs stored by older versions
/// (and written by older clients) still load.
#[derive(Serialize, Deserialize, Clone, PartialEq)]
pub struct JobSpec {
    /// The shell line, run as `sh -c -- LINE`. Empty when `argv` is given.
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
    /// The spec's fields as JSON names them: what a submission may hold.
    pub const FIELDS: &'static [&'static str] = &[
        "command",
        "argv",
        "env",
        "cwd",
        "tty",
        "rows",
        "cols",
        "stdin",
        "labels",
        "on_slave",
        "timeout",
        "retries",
        "retries_on_failure",
        "name",
        "slots",
    ];

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

    /// Ended for good: terminal and not `lost` (a slave that comes back with a lost job takes
    /// it back, and its output grows again).
    pub fn is_final(self) -> bool {
        self.is_terminal() && self != JobState::Lost
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

    /// What a state may be, for the error about one that is not: `one of queued, ...`.
    pub fn one_of() -> String {
        format!("one of {}", ALL_STATES.map(JobState::as_str).join(", "))
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
    /// Name of the token that submitted it (`anonymous` with `--no-auth`; `None` from older hubs).
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `FIELDS` names every field a spec serializes, and nothing else.
    #[test]
    fn the_field_list_is_the_fields_of_a_spec() {
        let full = JobSpec {
            command: "x".into(),
            argv: Some(vec!["x".into()]),
            env: [("A".into(), "1".into())].into(),
            cwd: Some("/".into()),
            tty: false,
            rows: 1,
            cols: 1,
            stdin: Some("in".into()),
            labels: vec!["l".into()],
            on_slave: Some("s".into()),
            timeout: Some(1.0),
            retries: 1,
            retries_on_failure: true,
            name: Some("n".into()),
            slots: 2,
        };
        let json: BTreeMap<String, serde_json::Value> =
            serde_json::from_value(serde_json::to_value(&full).unwrap()).unwrap();
        let mut said: Vec<&str> = json.keys().map(String::as_str).collect();
        let mut listed = JobSpec::FIELDS.to_vec();
        said.sort_unstable();
        listed.sort_unstable();
        assert_eq!(said, listed);
    }
}
