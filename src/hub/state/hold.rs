//! Holding queued jobs back after a crash of the hub, until the slaves that were connected
//! come back, for at most `--crash-hold`.
//!
//! The hub stores an assignment after sending it (see `hub::claim`), so a crash can leave a
//! job queued in the database while a slave runs it. That slave keeps the job when it dials
//! the restarted hub, proving the assignment with the claim it carried; but had another slave
//! with room dialled first, the job would have gone to that one too and run twice. So a hub
//! that finds slaves recorded as connected (a clean stop leaves none; see
//! `hub::store::present`) hands out none of the jobs it loaded as queued until each of those
//! slave processes has dialled again and said what it holds, or until `--crash-hold` has
//! passed. Jobs submitted after the restart are not held.

use super::*;
use crate::hub::store::Present;
use std::time::Instant;

/// Slave names the start's warning lists; a hub of thousands says how many more.
const NAMES_LOGGED: usize = 10;

pub(in crate::hub) struct Hold {
    pub(super) until: Instant,
    /// Slave processes connected when the hub stopped that have not dialled again, with the
    /// tag of their row.
    awaited: HashMap<u64, u64>,
    /// The jobs queued when the hub started.
    jobs: HashSet<JobId>,
    /// Why those jobs wait, as `xn -l` shows it.
    pub(in crate::hub) reason: String,
}

impl Hold {
    /// The hold of a hub that loaded `queue` and found `present` recorded as connected, if
    /// there is anything to hold; otherwise the stale rows are deleted.
    pub(super) fn start(
        present: Vec<Present>,
        queue: &BTreeSet<JobId>,
        hold_for: Duration,
        store: &Store,
    ) -> Option<Hold> {
        if present.is_empty() || queue.is_empty() || hold_for.is_zero() {
            store.slaves_gone_later(present.iter().map(|p| (p.instance, p.tag)).collect());
            return None;
        }
        let names: BTreeSet<&str> = present.iter().map(|p| p.name.as_str()).collect();
        let mut shown: Vec<&str> = names.iter().take(NAMES_LOGGED).copied().collect();
        let more = format!("and {} more", names.len().saturating_sub(NAMES_LOGGED));
        if names.len() > NAMES_LOGGED {
            shown.push(&more);
        }
        tracing::warn!(
            "the hub did not stop cleanly: the {} queued job(s) wait up to {hold_for:?} for the {} slave process(es) connected before ({}) to come back, as one of them may run a job whose assignment was not stored",
            queue.len(),
            present.len(),
            shown.join(", "),
        );
        Some(Hold {
            until: Instant::now() + hold_for,
            awaited: present.iter().map(|p| (p.instance, p.tag)).collect(),
            jobs: queue.iter().copied().collect(),
            reason: format!(
                "held after a crash of the hub until the slaves connected before are back (at most {}s)",
                hold_for.as_secs()
            ),
        })
    }

    pub(in crate::hub) fn holds(&self, id: JobId) -> bool {
        self.jobs.contains(&id)
    }
}

impl State {
    /// Slave process `instance` has dialled again, and its hello was taken: the hold ends if
    /// it was the last one awaited.
    pub(super) fn slave_back(&mut self, instance: u64) {
        let Some(hold) = &mut self.hold else {
            return;
        };
        if hold.awaited.remove(&instance).is_some() && hold.awaited.is_empty() {
            tracing::info!(
                "the slaves connected before the hub stopped are back: queued jobs go out"
            );
            self.hold = None;
        }
    }
}

impl Hub {
    /// When the hold ends at the latest, if there is one.
    pub fn hold_deadline(&self) -> Option<Instant> {
        self.lock().hold.as_ref().map(|h| h.until)
    }

    /// Ends the hold, `--crash-hold` after the start: the slaves still awaited are not coming
    /// back (their rows are deleted), and the queued jobs go out.
    pub async fn end_hold(&self) {
        {
            let mut st = self.lock();
            let Some(hold) = st.hold.take() else {
                return;
            };
            tracing::warn!(
                "{} slave(s) connected before the hub stopped did not come back within --crash-hold: queued jobs go out",
                hold.awaited.len()
            );
            self.store
                .slaves_gone_later(hold.awaited.into_iter().collect());
            crate::hub::sched::refresh_reasons(&mut st);
        }
        self.schedule().await;
    }
}
