//! The scheduler: which queued job goes to which connected slave, and why a job that no
//! connected slave can take is waiting. It decides under the state lock and sends the `assign`
//! messages after releasing it.

use super::state::{now_ms, unqueued, Hub, SessionId, SlaveEntry, State};
use crate::wire::{has_label, HubToSlave, JobSpec, JobState, Stream};
use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::Arc;

/// Whether a slave could ever run a job: it is not draining, and its name, labels and size
/// fit, busy or not.
pub(super) fn fits(slave: &SlaveEntry, spec: &JobSpec) -> bool {
    !slave.draining
        && spec.on_slave.as_ref().is_none_or(|n| *n == slave.name)
        && spec.slots <= slave.slots
        && spec.labels.iter().all(|l| has_label(&slave.labels, l))
}

/// Why no connected slave can take a job, or `None` if one can (even if it is busy now).
pub(super) fn why_not(slaves: &HashMap<SessionId, SlaveEntry>, spec: &JobSpec) -> Option<String> {
    if slaves.values().any(|s| fits(s, spec)) {
        return None;
    }
    if slaves.is_empty() {
        return Some("no slave is connected".into());
    }
    // A draining slave takes nothing new, whatever its labels: it does not count below, or a
    // job waiting only for one to come back would be said to need labels or slots it has.
    let named_at_all = |s: &&SlaveEntry| spec.on_slave.as_ref().is_none_or(|n| *n == s.name);
    let named: Vec<&SlaveEntry> = slaves
        .values()
        .filter(|s| !s.draining)
        .filter(named_at_all)
        .collect();
    if named.is_empty() && slaves.values().any(|s| named_at_all(&s)) {
        return Some(match &spec.on_slave {
            Some(n) => format!("slave {n} is draining: it takes no new jobs"),
            None => "every connected slave is draining: they take no new jobs".into(),
        });
    }
    let who = match &spec.on_slave {
        Some(n) if named.is_empty() => return Some(format!("no connected slave is named {n}")),
        Some(n) => format!("slave {n} does not have"),
        None => "no connected slave has".to_string(),
    };
    if let Some(l) = spec
        .labels
        .iter()
        .find(|l| !named.iter().any(|s| has_label(&s.labels, l)))
    {
        return Some(format!("{who} label {l}"));
    }
    if !named
        .iter()
        .any(|s| spec.labels.iter().all(|l| has_label(&s.labels, l)))
    {
        return Some(format!(
            "{who} all of the labels {}",
            spec.labels.join(", ")
        ));
    }
    Some(format!("{who} {} slots", spec.slots))
}

/// Recomputes the reason of every queued job, after a slave came or went.
pub(super) fn refresh_reasons(st: &mut State) {
    let State {
        jobs,
        queue,
        slaves,
        hold,
        ..
    } = st;
    for id in queue.iter() {
        if let Some(job) = jobs.get_mut(id) {
            let why = match hold {
                Some(h) if h.holds(*id) => Some(h.reason.clone()),
                _ => why_not(slaves, &job.rec.spec),
            };
            if job.rec.reason != why {
                job.rec.reason = why;
                job.touch();
            }
        }
    }
}

impl Hub {
    /// Hands queued jobs to slaves with room, oldest job first (a job that no free slave can
    /// take does not hold up the jobs behind it). Each goes to the slave with the most free
    /// slots among those that can take it; a tie goes to the slave that connected first.
    pub async fn schedule(&self) {
        let mut sends = Vec::new();
        {
            let mut st = self.lock();
            let State {
                jobs,
                queue,
                queued_by,
                slaves,
                hold,
                ..
            } = &mut *st;
            let mut free: HashMap<SessionId, u32> = slaves
                .iter()
                .map(|(&sid, s)| {
                    // A job whose end the slave reported holds no slot: its process is gone,
                    // and the slave keeps the end until the hub has stored it.
                    let used: u32 = s
                        .jobs
                        .iter()
                        .filter_map(|id| jobs.get(id))
                        .filter(|j| !j.ending)
                        .map(|j| j.rec.spec.slots)
                        .sum();
                    (sid, s.slots.saturating_sub(used))
                })
                .collect();
            let mut total: u32 = free.values().sum();
            let now = now_ms();
            let mut taken = Vec::new();
            for &id in queue.iter() {
                if total == 0 {
                    break;
                }
                let Some(job) = jobs.get_mut(&id) else {
                    taken.push(id);
                    continue;
                };
                if job.not_before_ms > now || hold.as_ref().is_some_and(|h| h.holds(id)) {
                    continue;
                }
                let need = job.rec.spec.slots;
                let Some(sid) = slaves
                    .iter()
                    .filter(|(sid, s)| {
                        free[*sid] >= need && fits(s, &job.rec.spec) && !s.fenced.contains(&id)
                    })
                    .max_by_key(|(sid, _)| (free[*sid], Reverse(**sid)))
                    .map(|(&sid, _)| sid)
                else {
                    continue;
                };
                let Some(slave) = slaves.get_mut(&sid) else {
                    continue;
                };
                if let Some(f) = free.get_mut(&sid) {
                    *f -= need;
                }
                total -= need;
                taken.push(id);
                unqueued(queued_by, &job.rec.owner);
                let lens_of = |attempt| {
                    let len = |stream| self.logs.len(id, attempt, stream);
                    (len(Stream::Stdout), len(Stream::Stderr))
                };
                if super::retry::set_aside(&mut job.rec, lens_of) {
                    tracing::warn!(
                        job = id,
                        attempt = job.rec.attempt,
                        "the job has output of a run whose assignment a crash of the hub lost: that run is kept as an attempt of its own, and this one is the next"
                    );
                }
                slave.jobs.insert(id);
                job.session = Some(sid);
                job.instance = slave.instance;
                job.rec.state = JobState::Assigned;
                job.rec.slave = Some(slave.name.clone());
                job.rec.reason = None;
                job.log = Some(Arc::new(self.logs.job(id, job.rec.attempt)));
                job.touch();
                self.store.assigned_later(job.rec.clone(), slave.instance);
                let claim = slave
                    .instance
                    .map(|i| self.claims.sign(id, job.rec.attempt, &slave.name, i));
                let msg = HubToSlave::Assign {
                    job: id,
                    spec: Box::new(job.rec.spec.clone()),
                    grace_ms: Some(self.opts.cancel_grace.as_millis() as u64),
                    claim,
                };
                sends.push((slave.tx.clone(), msg));
            }
            for id in taken {
                queue.remove(&id);
            }
        }
        for (tx, msg) in sends {
            // A failed send means that slave's connection is ending; its session cleanup
            // orphans the job, and the orphan timer decides its fate.
            let _ = tx.send(&msg).await;
        }
    }
}
