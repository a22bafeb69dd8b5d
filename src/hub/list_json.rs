//! A job record's JSON for the list, written straight into a buffer: byte for byte what
//! `serde_json::to_writer(out, rec)` writes for a [`JobRecord`], only faster.
//!
//! The derived serializer goes through serde's map path (the spec is `#[serde(flatten)]`ed)
//! and escapes every key as it writes it; for a list of 100,000 jobs that was most of the
//! hub's time. Here the keys are constants, a string without anything to escape is copied
//! as it is, and everything rarer (escapes, numbers, floats, maps, earlier attempts) is still
//! written by serde_json itself. It must never differ from the derived form: the unit tests
//! compare the two on records with every field set, unset and full of characters to escape.
//! A field added to `JobSpec` or `JobRecord` must be added here too (the tests fail until it is:
//! they fill every field).

use crate::wire::{JobRecord, JobSpec};
use serde::Serialize;

/// Appends `rec` as JSON to `out`, exactly as serde_json writes it.
pub(super) fn write_record(out: &mut Vec<u8>, rec: &JobRecord) {
    // Destructured, so that a new field is a compile error here, not a silent difference.
    let JobRecord {
        id,
        spec,
        state,
        exit_code,
        signal,
        reason,
        slave,
        created_ms,
        started_ms,
        ended_ms,
        stdout_len,
        stderr_len,
        owner,
        attempt,
        attempts,
        group,
    } = rec;
    out.extend_from_slice(b"{\"id\":");
    value(out, id);
    write_spec(out, spec);
    out.extend_from_slice(b",\"state\":\"");
    out.extend_from_slice(state.as_str().as_bytes());
    out.extend_from_slice(b"\",\"exit_code\":");
    value(out, exit_code);
    out.extend_from_slice(b",\"signal\":");
    value(out, signal);
    out.extend_from_slice(b",\"reason\":");
    opt_str(out, reason);
    out.extend_from_slice(b",\"slave\":");
    opt_str(out, slave);
    out.extend_from_slice(b",\"created_ms\":");
    value(out, created_ms);
    out.extend_from_slice(b",\"started_ms\":");
    value(out, started_ms);
    out.extend_from_slice(b",\"ended_ms\":");
    value(out, ended_ms);
    out.extend_from_slice(b",\"stdout_len\":");
    value(out, stdout_len);
    out.extend_from_slice(b",\"stderr_len\":");
    value(out, stderr_len);
    out.extend_from_slice(b",\"owner\":");
    opt_str(out, owner);
    if *attempt != 1 {
        out.extend_from_slice(b",\"attempt\":");
        value(out, attempt);
    }
    if !attempts.is_empty() {
        out.extend_from_slice(b",\"attempts\":");
        value(out, attempts);
    }
    if let Some(g) = group {
        out.extend_from_slice(b",\"group\":");
        string(out, g);
    }
    out.push(b'}');
}

/// The spec's fields, flattened into the record: each after a comma (the id comes first).
fn write_spec(out: &mut Vec<u8>, spec: &JobSpec) {
    let JobSpec {
        command,
        argv,
        env,
        cwd,
        tty,
        rows,
        cols,
        stdin,
        labels,
        on_slave,
        timeout,
        retries,
        retries_on_failure,
        name,
        slots,
    } = spec;
    out.extend_from_slice(b",\"command\":");
    string(out, command);
    if let Some(argv) = argv {
        out.extend_from_slice(b",\"argv\":");
        value(out, argv);
    }
    if !env.is_empty() {
        out.extend_from_slice(b",\"env\":");
        value(out, env);
    }
    if let Some(cwd) = cwd {
        out.extend_from_slice(b",\"cwd\":");
        string(out, cwd);
    }
    out.extend_from_slice(if *tty {
        b",\"tty\":true,\"rows\":"
    } else {
        b",\"tty\":false,\"rows\":"
    });
    value(out, rows);
    out.extend_from_slice(b",\"cols\":");
    value(out, cols);
    if let Some(stdin) = stdin {
        out.extend_from_slice(b",\"stdin\":");
        string(out, stdin);
    }
    if !labels.is_empty() {
        out.extend_from_slice(b",\"labels\":");
        value(out, labels);
    }
    if let Some(s) = on_slave {
        out.extend_from_slice(b",\"on_slave\":");
        string(out, s);
    }
    if timeout.is_some() {
        out.extend_from_slice(b",\"timeout\":");
        value(out, timeout);
    }
    if *retries != 0 {
        out.extend_from_slice(b",\"retries\":");
        value(out, retries);
    }
    if *retries_on_failure {
        out.extend_from_slice(b",\"retries_on_failure\":true");
    }
    if let Some(n) = name {
        out.extend_from_slice(b",\"name\":");
        string(out, n);
    }
    if *slots != 1 {
        out.extend_from_slice(b",\"slots\":");
        value(out, slots);
    }
}

/// Anything, as serde_json writes it.
fn value<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    // Only numbers, strings, lists and string maps come here: they always serialize, and
    // writing to a Vec cannot fail.
    serde_json::to_writer(&mut *out, v).expect("job fields serialize");
}

fn opt_str(out: &mut Vec<u8>, s: &Option<String>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// A JSON string: copied as it is when nothing in it needs an escape (serde_json escapes
/// exactly the control characters, `"` and `\`), else written by serde_json.
fn string(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        value(out, s);
    }
}

#[cfg(test)]
mod tests {
    use super::write_record;
    use crate::wire::{Attempt, JobRecord, JobSpec, JobState, ALL_STATES};

    fn same(rec: &JobRecord) {
        let mut fast = Vec::new();
        write_record(&mut fast, rec);
        let derived = serde_json::to_vec(rec).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&fast),
            String::from_utf8_lossy(&derived)
        );
    }

    /// A record with every field set, its strings made of `text`.
    fn full(text: &str) -> JobRecord {
        let t = |s: &str| format!("{s}{text}");
        let spec = JobSpec {
            command: t("echo "),
            argv: Some(vec![t("a"), String::new()]),
            env: [(t("K"), t("v")), ("B".into(), String::new())].into(),
            cwd: Some(t("/tmp/")),
            tty: false,
            rows: 0,
            cols: u16::MAX,
            stdin: Some(t("in")),
            labels: vec![t("gpu="), "x".into()],
            on_slave: Some(t("s")),
            timeout: Some(1.5e-3),
            retries: u32::MAX,
            retries_on_failure: true,
            name: Some(t("n")),
            slots: 0,
        };
        let mut rec = JobRecord::queued(spec, u64::MAX);
        rec.id = 42;
        rec.state = JobState::Signaled;
        rec.exit_code = Some(i32::MIN);
        rec.signal = Some(-1);
        rec.reason = Some(t("why "));
        rec.slave = Some(t("slave"));
        rec.started_ms = Some(0);
        rec.ended_ms = Some(7);
        rec.stdout_len = 1 << 40;
        rec.stderr_len = 3;
        rec.owner = Some(t("me"));
        rec.attempt = 3;
        rec.attempts = vec![
            rec.as_attempt(),
            Attempt {
                attempt: 2,
                ..rec.as_attempt()
            },
        ];
        rec.group = Some(t("g"));
        rec
    }

    #[test]
    fn every_field_set_is_written_as_serde_writes_it() {
        let texts = [
            "",
            "plain",
            "quote\" back\\slash",
            "\n\r\t\u{0}\u{1f}\u{7f}",
            "\u{e9}t\u{e9} \u{1f600} \u{2028}",
            "</script>",
        ];
        for text in texts {
            same(&full(text));
        }
    }

    #[test]
    fn defaults_and_absent_fields_are_written_as_serde_writes_them() {
        let mut rec = JobRecord::queued(JobSpec::shell("true"), 1);
        same(&rec);
        for state in ALL_STATES {
            rec.state = state;
            same(&rec);
        }
        rec.spec.timeout = Some(f64::NAN);
        same(&rec);
        rec.spec.timeout = Some(30.0);
        rec.spec.rows = 50;
        rec.spec.slots = 2;
        rec.attempt = 0;
        same(&rec);
    }
}
