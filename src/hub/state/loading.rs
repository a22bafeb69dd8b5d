//! Building the hub's in-memory picture at start-up from the jobs the store reads, one at a
//! time. It measures log files only where the stored record cannot say how long they are; it
//! never writes (the measured lengths are handed to the store by `Hub::new`).

use super::JobEntry;
use crate::hub::logs::Logs;
use crate::hub::store::Loaded;
use crate::wire::{JobId, JobRecord, JobState, Stream};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// The picture being built from the stored jobs at start-up, one job at a time as the store
/// reads them.
#[derive(Default)]
pub(in crate::hub) struct Loading {
    pub(super) jobs: BTreeMap<JobId, JobEntry>,
    pub(super) queue: BTreeSet<JobId>,
    pub(super) queued_by: HashMap<Option<String>, usize>,
    pub(super) next_group: u64,
    /// Assigned and running jobs by the slave process they were assigned to: the jobs each
    /// process left behind, as `State::orphans_of` after a slave's connection ends.
    pub(super) orphans_of: HashMap<u64, HashSet<JobId>>,
    /// Ended jobs from before the lengths were stored, measured: to store.
    pub(super) measured: Vec<JobRecord>,
}

impl Loading {
    /// Adds a stored job. Jobs that were assigned or running have no slave until one
    /// reconnects with them.
    ///
    /// A job that ended for good keeps the output lengths stored with its end (its logs were
    /// fsynced before that commit and never grow again); only live and lost jobs, and rows from
    /// before the lengths were stored, have their log files measured.
    pub(in crate::hub) fn add(&mut self, logs: &Logs, job: Loaded) {
        let Loaded {
            mut rec,
            lens_stored,
            instance,
            cancel,
        } = job;
        if let (Some(i), JobState::Assigned | JobState::Running) = (instance, rec.state) {
            self.orphans_of.entry(i).or_default().insert(rec.id);
        }
        if !(lens_stored && rec.state.is_final()) {
            rec.stdout_len = logs.len(rec.id, rec.attempt, Stream::Stdout);
            rec.stderr_len = logs.len(rec.id, rec.attempt, Stream::Stderr);
            if rec.state.is_final() {
                self.measured.push(rec.clone());
            }
        }
        if rec.state == JobState::Queued {
            self.queue.insert(rec.id);
            *self.queued_by.entry(rec.owner.clone()).or_default() += 1;
        }
        if let Some(n) = rec
            .group
            .as_deref()
            .and_then(crate::hub::submit::group_number)
        {
            self.next_group = self.next_group.max(n + 1);
        }
        let log = (!rec.state.is_terminal()).then(|| Arc::new(logs.job(rec.id, rec.attempt)));
        let mut entry = JobEntry::new(rec);
        entry.log = log;
        // Only the process it went to may take back a job that was out with a slave.
        if matches!(
            entry.rec.state,
            JobState::Assigned | JobState::Running | JobState::Lost
        ) {
            entry.instance = instance;
        }
        // A cancel asked for before a crash still holds: the job ends `cancelled` when its
        // slave reports the end, or when the hub gives the slave up.
        if matches!(entry.rec.state, JobState::Assigned | JobState::Running) {
            entry.cancelled = cancel;
        }
        self.jobs.insert(entry.rec.id, entry);
    }
}
