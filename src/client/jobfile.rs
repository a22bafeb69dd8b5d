//! Job files: JSON that describes one job (an object) or many (an array of objects), read by
//! `xn -s --file FILE` and `xn submit FILE`. Parsing is strict: an unknown field, a wrong type or
//! a contradiction is an error that names the file, the line and the column and says what was
//! expected. A `stdin_file` is read here and sent as the job's inline `stdin`.

use crate::limits::MAX_JOB_SPEC_BYTES;
use crate::wire::JobSpec;
use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One job as a file describes it. See docs/JOBS.md (and docs/job.schema.json).
#[derive(Deserialize, Debug, Default)]
#[serde(try_from = "RawJob")]
pub struct JobFile {
    raw: RawJob,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct RawJob {
    command: Option<String>,
    argv: Option<Vec<String>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    cwd: Option<String>,
    tty: Option<bool>,
    rows: Option<u16>,
    cols: Option<u16>,
    stdin: Option<String>,
    stdin_file: Option<PathBuf>,
    #[serde(default)]
    labels: Vec<String>,
    slave: Option<String>,
    timeout: Option<f64>,
    #[serde(default)]
    retries: u32,
    #[serde(default)]
    retries_on_failure: bool,
    name: Option<String>,
    slots: Option<u32>,
}

impl TryFrom<RawJob> for JobFile {
    type Error = String;

    /// The checks that need more than one field. serde_json reports the error at the end of
    /// the job's object, so it too gets a line and column.
    fn try_from(raw: RawJob) -> Result<JobFile, String> {
        match (&raw.command, &raw.argv) {
            (None, None) => return Err("a job needs `command` (a shell line) or `argv`".into()),
            (Some(_), Some(_)) => {
                return Err("give either `command` or `argv`, not both".into());
            }
            (None, Some(argv)) if argv.first().is_none_or(|p| p.is_empty()) => {
                return Err("`argv` must start with the program to run".into());
            }
            _ => {}
        }
        if raw.stdin.is_some() && raw.stdin_file.is_some() {
            return Err("give either `stdin` or `stdin_file`, not both".into());
        }
        Ok(JobFile { raw })
    }
}

impl JobFile {
    /// The spec to send. `base` is the job file's directory, for a relative `stdin_file`.
    fn into_spec(self, base: &Path) -> Result<JobSpec> {
        let r = self.raw;
        let defaults = JobSpec::default();
        let stdin = match r.stdin_file {
            Some(p) => Some(read_stdin_file(&base.join(p))?),
            None => r.stdin,
        };
        Ok(JobSpec {
            command: r.command.unwrap_or_default(),
            argv: r.argv,
            env: r.env,
            cwd: r.cwd,
            tty: r.tty.unwrap_or(defaults.tty),
            rows: r.rows.unwrap_or(defaults.rows),
            cols: r.cols.unwrap_or(defaults.cols),
            stdin,
            labels: r.labels,
            on_slave: r.slave,
            timeout: r.timeout,
            retries: r.retries,
            retries_on_failure: r.retries_on_failure,
            name: r.name,
            slots: r.slots.unwrap_or(defaults.slots),
        })
    }
}

/// Reads a local file to send as a job's stdin (text, within the job size limit).
pub fn read_stdin_file(path: &Path) -> Result<String> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("stdin file {}", path.display()))?
        .len();
    if len > MAX_JOB_SPEC_BYTES as u64 {
        bail!(
            "stdin file {} is {len} bytes; a job's stdin goes inline, at most {MAX_JOB_SPEC_BYTES} bytes",
            path.display()
        );
    }
    let bytes =
        std::fs::read(path).with_context(|| format!("reading stdin file {}", path.display()))?;
    String::from_utf8(bytes)
        .map_err(|_| anyhow!("stdin file {} is not UTF-8 text", path.display()))
}

/// Reads and checks a job file; returns its jobs in order.
pub fn load(path: &Path) -> Result<Vec<JobSpec>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading job file {}", path.display()))?;
    let jobs = parse(&text).map_err(|e| located(path, &e))?;
    let base = path.parent().unwrap_or(Path::new("."));
    jobs.into_iter()
        .enumerate()
        .map(|(i, j)| {
            j.into_spec(base)
                .with_context(|| format!("{}: job {}", path.display(), i + 1))
        })
        .collect()
}

/// One object or an array of them. Which one is decided by the first character, so serde's
/// own error (with its position) is what the user sees, not a vague "matched no variant".
fn parse(text: &str) -> Result<Vec<JobFile>, serde_json::Error> {
    if text.trim_start().starts_with('[') {
        serde_json::from_str(text)
    } else {
        serde_json::from_str(text).map(|j| vec![j])
    }
}

/// `FILE:LINE:COLUMN: message`, as compilers write it.
fn located(path: &Path, e: &serde_json::Error) -> anyhow::Error {
    let msg = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let msg = msg.strip_suffix(&suffix).unwrap_or(&msg);
    anyhow!("{}:{}:{}: {msg}", path.display(), e.line(), e.column())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        let e = parse(text).unwrap_err();
        located(Path::new("job.json"), &e).to_string()
    }

    #[test]
    fn one_or_many_jobs() {
        assert_eq!(parse(r#"{"command":"ls"}"#).unwrap().len(), 1);
        let many = parse(r#" [{"command":"ls"}, {"argv":["echo","a b"],"slots":2}]"#).unwrap();
        let spec = many
            .into_iter()
            .nth(1)
            .unwrap()
            .into_spec(Path::new("."))
            .unwrap();
        assert_eq!(spec.argv.unwrap(), vec!["echo", "a b"]);
        assert_eq!(spec.slots, 2);
    }

    #[test]
    fn errors_name_the_line_column_and_what_was_expected() {
        let e = err("{\n  \"command\": \"ls\",\n  \"comand\": 1\n}");
        assert!(e.starts_with("job.json:3:"), "{e}");
        assert!(e.contains("unknown field `comand`, expected one of"), "{e}");
        let e = err("[{\"command\":\"ls\",\n\"retries\":\"two\"}]");
        assert!(e.starts_with("job.json:2:"), "{e}");
        assert!(e.contains("expected u32"), "{e}");
        let e = err("{\"command\":\"ls\",\"argv\":[\"ls\"]}");
        assert!(e.contains("not both") && e.starts_with("job.json:1:"), "{e}");
    }
}
