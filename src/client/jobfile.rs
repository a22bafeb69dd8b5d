//! Job files: JSON that describes one job (an object) or many (an array of objects), read by
//! `xn -s --file FILE` and `xn submit FILE`. Parsing is strict: an unknown field, a wrong type or
//! a contradiction is an error that names the file, the line and the column and says what was
//! expected. A `stdin_file` is read here and sent as the job's inline `stdin`. The hub's own
//! checks name a job by its place in the list it was sent; [`Places`] names its file instead.

use crate::limits::MAX_JOB_SPEC_BYTES;
use crate::wire::JobSpec;
use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One job as a file describes it, checked. See docs/JOBS.md (and docs/job.schema.json).
#[derive(Debug)]
pub struct JobFile {
    raw: RawJob,
}

#[derive(Deserialize, Debug)]
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

    /// The checks that need more than one field.
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
        if let Some(cwd) = &raw.cwd {
            crate::hub::check_cwd(cwd)?;
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
    String::from_utf8(bytes).map_err(|_| anyhow!("stdin file {} is not UTF-8 text", path.display()))
}

/// Reads and checks a job file; returns its jobs in order, and notes in `places` where they
/// came from.
pub fn load(path: &Path, places: &mut Places) -> Result<Vec<JobSpec>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading job file {}", path.display()))?;
    let jobs = parse(&text).map_err(|e| e.at(path))?;
    let listed = is_list(&text);
    let base = path.parent().unwrap_or(Path::new("."));
    let specs = jobs
        .into_iter()
        .enumerate()
        .map(|(i, j)| {
            j.into_spec(base)
                .with_context(|| Places::name(path, listed.then_some(i + 1)))
        })
        .collect::<Result<Vec<_>>>()?;
    places
        .jobs
        .extend((1..=specs.len()).map(|i| (path.to_path_buf(), listed.then_some(i))));
    Ok(specs)
}

/// Where each job of a submission came from, in the order they are sent: its file, and its
/// place in the file's list (none for a file of one object).
#[derive(Default, Debug)]
pub struct Places {
    jobs: Vec<(PathBuf, Option<usize>)>,
}

impl Places {
    /// The hub's error about one job of the list it was sent (`job N of the list: WHAT`, see
    /// docs/PROTOCOL.md), said of where that job came from: `FILE, job M: WHAT`, or `FILE: WHAT`
    /// for a file of one object. `None` for any other message.
    pub fn name_job(&self, message: &str) -> Option<String> {
        let rest = message.strip_prefix("job ")?;
        let (n, what) = rest.split_once(" of the list: ")?;
        let n: usize = n.parse().ok()?;
        let (path, place) = self.jobs.get(n.checked_sub(1)?)?;
        Some(format!("{}: {what}", Places::name(path, *place)))
    }

    fn name(path: &Path, place: Option<usize>) -> String {
        match place {
            Some(i) => format!("{}, job {i}", path.display()),
            None => path.display().to_string(),
        }
    }
}

/// Whether a file's text is a list of jobs rather than one object.
fn is_list(text: &str) -> bool {
    text.trim_start().starts_with('[')
}

/// What is wrong, and where in the file (1-based line and column).
#[derive(Debug)]
struct ParseError {
    line: usize,
    column: usize,
    message: String,
}

impl ParseError {
    /// From serde's error, whose position is relative to the text at (`line`, `column`).
    fn from_serde(e: &serde_json::Error, line: usize, column: usize) -> ParseError {
        let msg = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let message = msg.strip_suffix(&suffix).unwrap_or(&msg).to_string();
        let (line, column) = match e.line() {
            0 => (line, column),
            1 => (line, column + e.column().saturating_sub(1)),
            l => (line + l - 1, e.column()),
        };
        ParseError {
            line,
            // serde puts an end of file right after a newline at column 0.
            column: column.max(1),
            message,
        }
    }

    /// `FILE:LINE:COLUMN: message`, as compilers write it.
    fn at(&self, path: &Path) -> anyhow::Error {
        anyhow!(
            "{}:{}:{}: {}",
            path.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// One object or an array of them. Each job is first taken as raw text, so that every error,
/// serde's or ours, is reported at its own line and column (a contradiction between fields at
/// the start of its job's object).
fn parse(text: &str) -> Result<Vec<JobFile>, ParseError> {
    use serde_json::value::RawValue;
    let pieces: Vec<&RawValue> = if is_list(text) {
        serde_json::from_str(text)
    } else {
        serde_json::from_str(text).map(|one| vec![one])
    }
    .map_err(|e| ParseError::from_serde(&e, 1, 1))?;
    pieces
        .into_iter()
        .map(|piece| {
            // The raw value borrows from `text`: its offset there gives its position.
            let offset = (piece.get().as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
            let (line, column) = line_column(text, offset);
            let raw: RawJob = serde_json::from_str(piece.get())
                .map_err(|e| ParseError::from_serde(&e, line, column))?;
            JobFile::try_from(raw).map_err(|message| ParseError {
                line,
                column,
                message,
            })
        })
        .collect()
}

/// The 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text)
            .unwrap_err()
            .at(Path::new("job.json"))
            .to_string()
    }

    /// The hub's `job N of the list` is the Nth job of all the files sent: named by its file
    /// and its place there, and without a place for a file of one object.
    #[test]
    fn the_hubs_place_in_the_list_is_named_by_file_and_job() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let good = file("good.json", r#"{"command":"ls"}"#);
        let lab = file("lab.json", r#" [{"command":"ls"}, {"command":"ls"}]"#);
        let mut places = Places::default();
        load(&good, &mut places).unwrap();
        load(&lab, &mut places).unwrap();
        let lab_name = lab.display();
        assert_eq!(
            places
                .name_job(r#"job 3 of the list: label "a b" must be"#)
                .unwrap(),
            format!(r#"{lab_name}, job 2: label "a b" must be"#)
        );
        assert_eq!(
            places
                .name_job("job 1 of the list: the command is empty")
                .unwrap(),
            format!("{}: the command is empty", good.display())
        );
        for other in [
            "job 4 of the list: x",
            "job 0 of the list: x",
            "the list of jobs is empty",
        ] {
            assert_eq!(places.name_job(other), None, "{other}");
        }
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
    fn the_json_schema_has_exactly_the_fields_we_accept() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../docs/job.schema.json")).unwrap();
        let mut documented: Vec<&str> = schema["$defs"]["job"]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        documented.sort();
        // serde lists the fields it accepts when it meets an unknown one.
        let e = err(r#"{"no such field": 1}"#);
        let mut accepted: Vec<&str> = e
            .split("expected one of ")
            .nth(1)
            .unwrap()
            .split(", ")
            .map(|f| f.trim_matches('`'))
            .collect();
        accepted.sort();
        assert_eq!(documented, accepted);
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
        assert!(
            e.contains("not both") && e.starts_with("job.json:1:1:"),
            "{e}"
        );
        let e = err("[\n  {\"command\":\"ls\"},\n  {\"argv\":[]}\n]");
        assert!(e.starts_with("job.json:3:3: `argv` must start"), "{e}");
        let e = err("[\n  {\"command\":\"ls\"},\n  {\"argv\":[\"a\"], \"tty\": 1}\n]");
        assert!(
            e.starts_with("job.json:3:25: invalid type: integer `1`, expected a boolean"),
            "{e}"
        );
        // The file ends too early, after its last newline: still a 1-based column.
        let e = err("{\"command\":\"ls\"\n");
        assert!(e.starts_with("job.json:2:1: EOF while parsing"), "{e}");
    }
}
