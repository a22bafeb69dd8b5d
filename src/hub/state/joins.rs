//! A slave session joining and leaving the hub's picture: taking back the jobs its slave
//! reports, replacing earlier sessions of the same slave process, and what becomes of the jobs
//! a session leaves behind (orphans: given up as `lost` unless their slave takes them back).
//!
//! A slave process names itself with a random instance id in every hello. A hello with the
//! instance of an earlier session is the same process dialling again, so its `running` list is
//! everything it holds: a job that was assigned to the earlier session and is not on the list
//! never reached it (the assignment was lost with the connection) and is queued again at
//! once; an earlier session the hub still has open is dead to that process and is replaced.
//!
//! The instance id is also what lets a slave take a job back at all: every holder of a slave
//! token can list any job id in its hello, so a job is given back only to the process it was
//! assigned to, under the same name. It never gives a job to a slave on the slave's word alone.
//! A job the hub has as queued goes to a slave that lists it only with the claim its
//! assignment carried (see `hub::claim`): the hub crashed after sending that assignment and
//! before storing it, and the slave that runs it keeps it.

use super::*;
use crate::limits::{heartbeat_for, HEARTBEAT_INTERVAL};
use crate::wire::RunningJob;
use tokio_util::sync::CancellationToken;

/// What a slave says about itself in its hello.
pub struct Joining {
    pub name: String,
    pub slots: u32,
    pub labels: Vec<String>,
    /// The jobs it still holds, with the claims their assignments carried.
    pub running: Vec<RunningJob>,
    pub instance: Option<u64>,
    /// It understands `resend` (see [`crate::wire::HubToSlave::Resend`]).
    pub resend: bool,
}

/// A slave session, registered.
pub struct Joined {
    pub sid: SessionId,
    /// Jobs it reports that the hub does not give it (ended meanwhile, or never assigned to
    /// this slave process): the session cancels those.
    pub unwanted: Vec<JobId>,
    /// Jobs assigned to an earlier session of the same process that never reached it: queued
    /// again.
    pub requeued: Vec<JobId>,
    /// Jobs an earlier session of the same process had started and that it no longer holds:
    /// to be given up now, as no slave will come back with them.
    pub gone: Vec<JobId>,
    /// Earlier sessions of the same process that were still open, now replaced.
    pub replaced: usize,
    /// Cancelled when a later session of the same slave process replaces this one.
    pub replaced_by: CancellationToken,
}

impl Hub {
    /// Registers a slave connection. Jobs it says it is running that were assigned to this
    /// very process (instance id and name) and that no other session holds are bound to it
    /// again, `lost` ones too.
    pub fn add_slave(&self, join: Joining, token: Arc<Principal>, tx: ConnSender) -> Joined {
        let mut st = self.lock();
        let st = &mut *st;
        let sid = st.next_session;
        st.next_session += 1;
        let (left, replaced) = match join.instance {
            Some(i) => st.replace_sessions_of(i),
            None => (HashSet::new(), 0),
        };
        let mut mine = HashSet::new();
        let mut unwanted = Vec::new();
        for RunningJob { job: id, claim } in &join.running {
            let id = *id;
            let Some(job) = st.jobs.get_mut(&id) else {
                // Deleted meanwhile.
                unwanted.push(id);
                continue;
            };
            let live = !job.rec.state.is_terminal() || job.rec.state == JobState::Lost;
            if job.rec.state == JobState::Queued {
                // The hub stopped (a crash) between sending this attempt's assignment and
                // storing it, and the claim proves the assignment went to this process.
                let proven = join
                    .instance
                    .zip(claim.as_deref())
                    .is_some_and(|(i, c)| self.claims.check(c, id, job.rec.attempt, &join.name, i));
                if proven {
                    tracing::info!(
                        slave = %join.name,
                        job = id,
                        "slave holds a job whose assignment was not stored before the hub stopped: it is the job's again"
                    );
                    job.rec.state = JobState::Running;
                    job.rec.slave = Some(join.name.clone());
                    job.rec.reason = None;
                    job.rec.started_ms.get_or_insert_with(now_ms);
                    job.instance = join.instance;
                    job.session = Some(sid);
                    job.log = Some(Arc::new(self.logs.job(id, job.rec.attempt)));
                    job.touch();
                    st.queue.remove(&id);
                    unqueued(&mut st.queued_by, &job.rec.owner);
                    self.store.assigned_later(job.rec.clone(), join.instance);
                    mine.insert(id);
                    continue;
                }
            }
            // Queued for a retry: the hub gave up the attempt this slave still runs, and will
            // run the job again. Or ended for good. Either way the slave stops it.
            let retrying = job.rec.state == JobState::Queued && !job.rec.attempts.is_empty();
            if !live || retrying {
                unwanted.push(id);
                continue;
            }
            // Any holder of a slave token can name any job in its hello: only the process the
            // job was assigned to (its instance id, which no other process knows), under the
            // same name, gets it back. That rules out a queued job without its claim and one
            // another session holds.
            if job.rec.state == JobState::Queued && job.session.is_none() {
                // Never assigned; or assigned by a hub that stopped before storing it, to a
                // slave that kept no claim (an older one): it is told to stop the job, which
                // runs again from the queue.
                tracing::info!(
                    slave = %join.name,
                    job = id,
                    "slave listed a job the hub has as queued, without its claim: it is told to stop it, and the job runs again from the queue"
                );
                unwanted.push(id);
                continue;
            }
            if job.session.is_some() || !job.assigned_to(&join.name, join.instance) {
                tracing::warn!(
                    slave = %join.name,
                    job = id,
                    "slave listed a job that was not assigned to it: not given to it, and it is told to stop it"
                );
                unwanted.push(id);
                continue;
            }
            job.session = Some(sid);
            if job.rec.state == JobState::Lost {
                // Given up as lost, but its slave was only out of touch: the record said
                // `lost` for a while; it now goes on to its real end.
                tracing::info!(job = id, slave = %join.name, "lost job is back with its slave");
                job.rec.state = JobState::Running;
                job.rec.reason = None;
                job.rec.ended_ms = None;
                job.log = Some(Arc::new(self.logs.job(id, job.rec.attempt)));
                job.touch();
                self.store.save_later(job.rec.clone());
            } else {
                // `assigned` (the `started` was lost with a connection or a crash of the hub):
                // the slave has it.
                if job.rec.state == JobState::Assigned {
                    job.rec.state = JobState::Running;
                    job.rec.started_ms.get_or_insert_with(now_ms);
                    job.touch();
                    self.store.save_later(job.rec.clone());
                }
                if job.log.is_none() {
                    job.log = Some(Arc::new(self.logs.job(id, job.rec.attempt)));
                }
            }
            mine.insert(id);
        }
        warn_same_name(st, &join);
        let (mut requeued, mut gone) = (Vec::new(), Vec::new());
        for id in left.into_iter().filter(|id| !mine.contains(id)) {
            let Some(job) = st.jobs.get_mut(&id) else {
                continue;
            };
            if job.session.is_some() || job.rec.state.is_terminal() {
                continue;
            }
            if job.rec.state == JobState::Assigned {
                job.rec.state = JobState::Queued;
                job.rec.slave = None;
                job.instance = None;
                job.log = None;
                job.recent = None;
                if st.queue.insert(id) {
                    *st.queued_by.entry(job.rec.owner.clone()).or_default() += 1;
                }
                job.touch();
                self.store.save_later(job.rec.clone());
                requeued.push(id);
            } else {
                gone.push(id);
            }
        }
        // The welcome goes first on the connection, queued before the session is registered:
        // from then on other tasks may queue `assign`s and `cancel`s on `tx`, and a slave
        // whose first answer is not `welcome` drops the session. It lists the jobs the slave
        // is to forget, which it does before it sends anything: a report it still owed for one
        // of them would otherwise reach the hub after a retry of that job was assigned to this
        // session, and be taken for the retry's.
        let beat = heartbeat_for(self.opts.slave_timeout);
        let welcome = HubToSlave::Welcome {
            protocol: crate::wire::PROTOCOL_VERSION,
            forget: unwanted.clone(),
            heartbeat_ms: (beat < HEARTBEAT_INTERVAL).then_some(beat.as_millis() as u64),
        };
        if let Err(e) = tx.send_now(&welcome) {
            // Its connection is gone already; the session ends as soon as it notices.
            tracing::debug!(slave = %join.name, "welcome not sent: {e:#}");
        }
        let replaced_by = CancellationToken::new();
        st.slaves.insert(
            sid,
            SlaveEntry {
                name: join.name,
                slots: join.slots,
                labels: join.labels,
                draining: false,
                token,
                jobs: mine,
                tx,
                instance: join.instance,
                replaced_by: replaced_by.clone(),
                fenced: unwanted.iter().copied().collect(),
            },
        );
        // What it holds is settled: if it was the last slave a crash left the queue waiting
        // for, the queued jobs go out.
        if let Some(i) = join.instance {
            st.slave_back(i);
        }
        crate::hub::sched::refresh_reasons(st);
        Joined {
            sid,
            unwanted,
            requeued,
            gone,
            replaced,
            replaced_by,
        }
    }

    /// The session has sent `cancel` and `done` for the jobs its hello listed that the hub
    /// did not give back: from now on they may be assigned to it again.
    pub fn unfence(&self, sid: SessionId) {
        if let Some(s) = self.lock().slaves.get_mut(&sid) {
            s.fenced.clear();
        }
    }

    /// Forgets a slave connection. Its jobs stay as they are, without a slave, until it comes
    /// back or the orphan timer gives them up. Returns those jobs.
    pub fn remove_slave(&self, sid: SessionId) -> Vec<Orphan> {
        let mut st = self.lock();
        let Some(slave) = st.slaves.remove(&sid) else {
            return Vec::new();
        };
        crate::hub::sched::refresh_reasons(&mut st);
        let orphans = st.orphan_jobs(sid, slave.jobs);
        if let Some(i) = slave.instance {
            st.orphans_of.entry(i).or_default().extend(&orphans);
        }
        orphans
            .iter()
            .filter_map(|id| st.jobs.get(id).map(JobEntry::as_orphan))
            .collect()
    }

    /// Gives up jobs that still have no slave: they become `lost`, or `cancelled` if a cancel
    /// was asked for.
    pub async fn expire_orphans(&self, ids: &[JobId], why: &str) {
        let all: Vec<_> = ids.iter().map(|&id| (id, None)).collect();
        self.give_up(&all, why).await
    }

    /// As [`Hub::expire_orphans`], when an orphan timer set for `orphans` runs out: a job that
    /// a slave took back and let go of again since then waits for its own timer.
    pub async fn expire_orphans_since(&self, orphans: &[Orphan], why: &str) {
        let all: Vec<_> = orphans.iter().map(|o| (o.id, Some(o.since))).collect();
        self.give_up(&all, why).await
    }

    /// Gives up `jobs` that still have no slave (and, where given, have not been let go of
    /// again since that orphaning): they become `lost`, or `cancelled` if a cancel was asked
    /// for.
    async fn give_up(&self, jobs: &[(JobId, Option<u64>)], why: &str) {
        let lost: Vec<JobRecord> = {
            let mut st = self.lock();
            let lost: Vec<JobRecord> = jobs
                .iter()
                .filter_map(|(id, since)| st.jobs.get(id).zip(Some(since)))
                .filter(|(j, since)| since.is_none_or(|s| j.orphanings == s))
                .map(|(j, _)| j)
                .filter(|j| j.session.is_none() && !j.rec.state.is_terminal())
                .map(|j| {
                    let mut rec = j.rec.clone();
                    // A cancel that never reached the slave still ends the job cancelled, and
                    // says who asked and why it ended without their cancel arriving.
                    (rec.state, rec.reason) = match &j.cancelled {
                        Some(by) => (JobState::Cancelled, Some(format!("{by}; {why}"))),
                        None => (JobState::Lost, Some(why.to_string())),
                    };
                    rec.ended_ms = Some(now_ms());
                    rec
                })
                .collect();
            // No slave process takes these back as orphans any more.
            if !lost.is_empty() {
                let ended: HashSet<JobId> = lost.iter().map(|r| r.id).collect();
                st.orphans_of.retain(|_, jobs| {
                    jobs.retain(|id| !ended.contains(id));
                    !jobs.is_empty()
                });
            }
            lost
        };
        for rec in lost {
            match rec.state {
                JobState::Cancelled => tracing::warn!(job = rec.id, "job cancelled: {why}"),
                _ => tracing::warn!(job = rec.id, "job lost: {why}"),
            }
            if let Err(e) = self.finish(rec).await {
                tracing::error!("{e}");
            }
        }
    }
}

/// Warns when another slave process already connected under the joining one's name: jobs
/// pinned to that name (`xn --slave NAME`) go to either, which is rarely what was meant.
fn warn_same_name(st: &State, join: &Joining) {
    let show = |i: Option<u64>| i.map_or_else(|| "none".to_string(), |i| i.to_string());
    for other in st.slaves.values() {
        // Without instance ids (older slaves) two processes cannot be told apart: warn too.
        if other.name == join.name && (other.instance.is_none() || other.instance != join.instance)
        {
            tracing::warn!(
                "two slaves named {name} are connected (instance {} and {}): --slave {name} picks either; give each its own --name",
                show(other.instance),
                show(join.instance),
                name = join.name,
            );
        }
    }
}

impl JobEntry {
    /// Whether this job's current attempt went to slave process `instance` named `name`. A
    /// slave that sent no instance id can prove nothing, so it matches nothing.
    fn assigned_to(&self, name: &str, instance: Option<u64>) -> bool {
        instance.is_some() && self.instance == instance && self.rec.slave.as_deref() == Some(name)
    }
}

impl State {
    /// Replaces the sessions of slave process `instance` still registered (it has dialled
    /// again, so they are dead to it). Returns the jobs its earlier sessions left, and how many
    /// sessions were replaced.
    fn replace_sessions_of(&mut self, instance: u64) -> (HashSet<JobId>, usize) {
        let stale: Vec<SessionId> = self
            .slaves
            .iter()
            .filter(|(_, s)| s.instance == Some(instance))
            .map(|(&sid, _)| sid)
            .collect();
        let mut left = self.orphans_of.remove(&instance).unwrap_or_default();
        for sid in &stale {
            if let Some(old) = self.slaves.remove(sid) {
                tracing::info!(slave = %old.name, session = sid, "slave dialled again: its earlier connection is replaced");
                old.replaced_by.cancel();
                left.extend(self.orphan_jobs(*sid, old.jobs));
            }
        }
        (left, stale.len())
    }

    /// Detaches the jobs of session `sid` from it; returns those that were still its own.
    fn orphan_jobs(&mut self, sid: SessionId, jobs: HashSet<JobId>) -> Vec<JobId> {
        jobs.into_iter()
            .filter(|id| match self.jobs.get_mut(id) {
                Some(job) if job.session == Some(sid) => {
                    job.session = None;
                    job.orphanings += 1;
                    true
                }
                _ => false,
            })
            .collect()
    }
}
