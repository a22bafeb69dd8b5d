//! New jobs: specs checked against the named limits, a batch stored in one transaction, and
//! broadcasts (one job per matching connected slave, pinned to it, all in one group).

use super::sched::{fits, why_not};
use super::state::{now_ms, Hub, JobEntry, JobError};
use crate::limits::{MAX_JOB_SPEC_BYTES, MAX_LABELS, MAX_LABEL_BYTES};
use crate::text::has_hidden_controls;
use crate::wire::{JobRecord, JobSpec};
use serde::de::IgnoredAny;
use std::collections::{BTreeMap, BTreeSet};

/// The number of a group id (`g7` → 7).
pub(super) fn group_number(group: &str) -> Option<u64> {
    group.strip_prefix('g')?.parse().ok()
}

/// Checks a list of labels (a job's or a slave's).
pub(super) fn check_labels(labels: &[String]) -> Result<(), String> {
    if labels.len() > MAX_LABELS {
        return Err(format!("at most {MAX_LABELS} labels are allowed"));
    }
    for l in labels {
        let ok = !l.is_empty()
            && l.len() <= MAX_LABEL_BYTES
            && !l.starts_with('=')
            && !l.chars().any(|c| c.is_whitespace() || c == ',')
            && !has_hidden_controls(l);
        if !ok {
            return Err(format!(
                "label {l:?} must be 1 to {MAX_LABEL_BYTES} bytes, `key` or `key=value`, \
                 without spaces, commas, control or bidirectional formatting characters"
            ));
        }
    }
    Ok(())
}

/// Checks a job's `cwd`: an absolute directory on the slave. An empty one names none (the
/// start failed with a blank path), and a relative one was taken from wherever the slave
/// process happened to start, which no submitter can know. Without a `cwd`, a job runs in a
/// fresh work directory of its own.
pub fn check_cwd(cwd: &str) -> Result<(), String> {
    let hint = "give an absolute directory on the slave (like /srv/checkout), or no cwd for a \
                fresh work directory";
    if cwd.is_empty() {
        return Err(format!("the cwd is empty: {hint}"));
    }
    if !cwd.starts_with('/') {
        return Err(format!("the cwd {cwd:?} is relative: {hint}"));
    }
    if cwd.contains('\0') {
        return Err("the cwd contains a NUL byte".into());
    }
    Ok(())
}

/// Refuses a submission (one spec, or a list of them when `list`) that gives a field no job
/// spec has. Ignored, a misspelt `labels` or `timeout`, or a job file's `slave` or
/// `stdin_file` pasted into a request, would run a job other than the one asked for. (The
/// protocol ignores unknown fields elsewhere; a submission is where one changes what runs.)
/// Call it once the body has parsed as specs: it reads only the objects' keys.
pub fn check_fields(body: &[u8], list: bool) -> Result<(), String> {
    type Keys = BTreeMap<String, IgnoredAny>;
    let objects = if list {
        serde_json::from_slice::<Vec<Keys>>(body)
    } else {
        serde_json::from_slice::<Keys>(body).map(|k| vec![k])
    };
    // Not objects: the specs' own parse has said what is wrong.
    let Ok(objects) = objects else { return Ok(()) };
    for (i, keys) in objects.iter().enumerate() {
        let Some(field) = keys.keys().find(|k| !JobSpec::FIELDS.contains(&k.as_str())) else {
            continue;
        };
        let hint = match field.as_str() {
            "slave" => " (a request pins a job with `on_slave`; job files call it `slave`)",
            "stdin_file" => {
                " (xn reads a job file's `stdin_file` and sends its text; a request gives the \
                 text as `stdin`)"
            }
            _ => "",
        };
        let place = if list {
            format!("job {} of the list: ", i + 1)
        } else {
            String::new()
        };
        let known = JobSpec::FIELDS
            .iter()
            .map(|f| format!("`{f}`"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(format!(
            "{place}unknown field `{field}`{hint}; a job spec has {known}"
        ));
    }
    Ok(())
}

/// Checks a submitted spec against the rules and the named limits.
pub fn validate(spec: &JobSpec) -> Result<(), String> {
    match (&spec.argv, spec.command.trim().is_empty()) {
        (None, true) => return Err("the command is empty (give a command or an argv)".into()),
        (Some(_), false) => return Err("give either a command or an argv, not both".into()),
        (Some(argv), true) if argv.first().is_none_or(|p| p.is_empty()) => {
            return Err("the argv is empty: its first word is the program to run".into())
        }
        _ => {}
    }
    // A spec holds only strings, numbers and maps of strings: it always serializes.
    let size = serde_json::to_vec(spec).map_or(usize::MAX, |v| v.len());
    if size > MAX_JOB_SPEC_BYTES {
        return Err(format!(
            "the job is {size} bytes as JSON; at most {MAX_JOB_SPEC_BYTES} are allowed"
        ));
    }
    if spec
        .env
        .keys()
        .any(|k| k.is_empty() || k.contains('=') || k.contains('\0'))
    {
        return Err("environment names must be non-empty and contain no '=' or NUL".into());
    }
    // A C string ends at a NUL: the slave could only run something other than what was given.
    let nul = |s: &String| s.contains('\0');
    let where_nul = if nul(&spec.command) {
        Some("the command")
    } else if spec.argv.iter().flatten().any(nul) {
        Some("a word of the argv")
    } else if spec.env.values().any(nul) {
        Some("an environment value")
    } else {
        None
    };
    if let Some(what) = where_nul {
        return Err(format!(
            "{what} contains a NUL byte, which no program can be given"
        ));
    }
    if spec.tty && (spec.rows == 0 || spec.cols == 0) {
        return Err("terminal rows and cols must be positive".into());
    }
    check_labels(&spec.labels)?;
    if let Some(cwd) = &spec.cwd {
        check_cwd(cwd)?;
    }
    if spec.slots == 0 {
        return Err("a job needs at least one slot".into());
    }
    if let Some(t) = spec.timeout {
        if !(t.is_finite() && t > 0.0 && t <= 1e9) {
            return Err(format!("timeout {t} must be a positive number of seconds"));
        }
    }
    if spec.retries > super::retry::MAX_RETRIES {
        return Err(format!(
            "at most {} retries are allowed",
            super::retry::MAX_RETRIES
        ));
    }
    for (what, v) in [("name", &spec.name), ("slave name", &spec.on_slave)] {
        if let Some(v) = v {
            if v.is_empty() || v.len() > MAX_LABEL_BYTES || has_hidden_controls(v) {
                return Err(format!(
                    "the {what} must be 1 to {MAX_LABEL_BYTES} bytes of printable characters, \
                     without control or bidirectional formatting characters"
                ));
            }
        }
    }
    Ok(())
}

impl Hub {
    /// Stores one new job durably, queues it, and returns its record.
    pub async fn submit(
        &self,
        spec: JobSpec,
        owner: Option<String>,
    ) -> Result<JobRecord, JobError> {
        validate(&spec).map_err(JobError::Invalid)?;
        let mut rec = JobRecord::queued(spec, now_ms());
        rec.owner = owner;
        let mut recs = self.insert(vec![rec]).await?;
        recs.pop()
            .ok_or_else(|| JobError::Store(anyhow::anyhow!("the store returned no id")))
    }

    /// Stores many new jobs in one transaction (all or none), queues them in order, and
    /// returns their records.
    pub async fn submit_many(
        &self,
        specs: Vec<JobSpec>,
        owner: Option<String>,
    ) -> Result<Vec<JobRecord>, JobError> {
        if specs.is_empty() {
            return Err(JobError::Invalid("the list of jobs is empty".into()));
        }
        for (i, spec) in specs.iter().enumerate() {
            validate(spec)
                .map_err(|e| JobError::Invalid(format!("job {} of the list: {e}", i + 1)))?;
        }
        let now = now_ms();
        self.insert(
            specs
                .into_iter()
                .map(|s| JobRecord {
                    owner: owner.clone(),
                    ..JobRecord::queued(s, now)
                })
                .collect(),
        )
        .await
    }

    /// Runs `spec` once on every connected slave that has its labels and slots: one job per
    /// slave (by name), pinned to it, all in a new group. Returns the group and the records.
    pub async fn broadcast(
        &self,
        spec: JobSpec,
        owner: Option<String>,
    ) -> Result<(String, Vec<JobRecord>), JobError> {
        validate(&spec).map_err(JobError::Invalid)?;
        if spec.on_slave.is_some() {
            return Err(JobError::Invalid(
                "a broadcast runs on every matching slave: --slave (on_slave in a job) does not go with it".into(),
            ));
        }
        let (group, names) = {
            let mut st = self.lock();
            let names: BTreeSet<String> = st
                .slaves
                .values()
                .filter(|s| fits(s, &spec))
                .map(|s| s.name.clone())
                .collect();
            if names.is_empty() {
                let why = why_not(&st.slaves, &spec).unwrap_or_default();
                return Err(JobError::Conflict(format!(
                    "nothing to broadcast to: {why}"
                )));
            }
            let group = format!("g{}", st.next_group);
            st.next_group += 1;
            (group, names)
        };
        let now = now_ms();
        let recs = names
            .into_iter()
            .map(|name| {
                let mut rec = JobRecord::queued(
                    JobSpec {
                        on_slave: Some(name),
                        ..spec.clone()
                    },
                    now,
                );
                rec.group = Some(group.clone());
                rec.owner.clone_from(&owner);
                rec
            })
            .collect();
        Ok((group, self.insert(recs).await?))
    }

    /// Commits new records in one transaction, then queues them and schedules.
    async fn insert(&self, mut recs: Vec<JobRecord>) -> Result<Vec<JobRecord>, JobError> {
        // Every job of one request has the same owner.
        if let Some(owner) = recs.first().map(|r| r.owner.clone()) {
            let st = self.lock();
            let queued = st.queued_by.get(&owner).copied().unwrap_or(0);
            let max = self.opts.max_queued_per_owner;
            if queued + recs.len() > max {
                let more = match recs.len() {
                    1 => String::new(),
                    n => format!(", and this request has {n}"),
                };
                return Err(JobError::TooMany(format!(
                    "{queued} jobs of yours are queued already{more} (the hub allows {max})"
                )));
            }
        }
        let ids = self
            .store
            .insert(recs.clone())
            .await
            .map_err(JobError::Store)?;
        {
            let mut st = self.lock();
            let st = &mut *st;
            for (rec, id) in recs.iter_mut().zip(ids) {
                rec.id = id;
                rec.reason = why_not(&st.slaves, &rec.spec);
                st.queue.insert(id);
                *st.queued_by.entry(rec.owner.clone()).or_default() += 1;
                st.jobs.insert(id, JobEntry::new(rec.clone()));
            }
        }
        self.schedule().await;
        Ok(recs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_checked() {
        assert!(validate(&JobSpec::shell("ls")).is_ok());
        assert!(validate(&JobSpec::shell("  "))
            .unwrap_err()
            .contains("empty"));
        let argv = |v: &[&str]| JobSpec {
            argv: Some(v.iter().map(|s| s.to_string()).collect()),
            ..JobSpec::default()
        };
        assert!(validate(&argv(&["ls", "-l"])).is_ok());
        let in_dir = |cwd: &str| JobSpec {
            cwd: Some(cwd.into()),
            ..JobSpec::shell("pwd")
        };
        assert!(validate(&in_dir("/srv/x")).is_ok());
        for cwd in ["", "x", "./x", "~/x", "/a\0b"] {
            assert!(
                validate(&in_dir(cwd)).unwrap_err().contains("cwd"),
                "{cwd:?}"
            );
        }
        assert!(validate(&argv(&[])).is_err());
        assert!(validate(&JobSpec::shell("echo a\0b"))
            .unwrap_err()
            .contains("the command contains a NUL byte"));
        assert!(validate(&argv(&["echo", "a\0b"]))
            .unwrap_err()
            .contains("a word of the argv contains a NUL"));
        let env = JobSpec {
            env: [("A".to_string(), "x\0y".to_string())].into(),
            ..JobSpec::shell("ls")
        };
        assert!(validate(&env)
            .unwrap_err()
            .contains("an environment value contains a NUL"));
        let both = JobSpec {
            command: "ls".into(),
            ..argv(&["ls"])
        };
        assert!(validate(&both).unwrap_err().contains("not both"));
        let bad_label = JobSpec {
            labels: vec!["a b".into()],
            ..JobSpec::shell("ls")
        };
        assert!(validate(&bad_label).is_err());
        let bad_timeout = JobSpec {
            timeout: Some(f64::NAN),
            ..JobSpec::shell("ls")
        };
        assert!(validate(&bad_timeout).is_err());
        assert_eq!(group_number("g12"), Some(12));
        assert_eq!(group_number("12"), None);
    }
}
