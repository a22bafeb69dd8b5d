//! What the slave does with each message from its hub once welcomed: the orders carried out,
//! and the bad ones (unreadable, unknown, about a job this slave does not hold, an ack of
//! bytes never sent) logged as a warning that says what came and what was done about it. A bad
//! message never ends the session and never costs a job or its output; an assignment that
//! cannot be read is reported `failed`, so the hub does not wait for it for ever.

use super::confine::Confinement;
use super::job;
use super::outbox::{JobCtl, Outbox};
use super::SlaveOptions;
use crate::conn::Incoming;
use crate::wire::{DataFrame, HubToSlave, JobId, Outcome, Stream};
use serde::de::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// A message from the hub: one the slave knows, or what can be read of one it does not.
#[derive(Debug)]
pub enum Order {
    Known(HubToSlave),
    /// Valid JSON, but not a message of this protocol (an unknown type, a missing or mistyped
    /// field): its type and job, where they can be read, and why it was refused.
    Unreadable {
        kind: Option<String>,
        job: Option<JobId>,
        error: String,
    },
}

/// The fields of any message that say what it is about.
#[derive(serde::Deserialize)]
struct Probe {
    #[serde(rename = "type")]
    kind: Option<String>,
    job: Option<JobId>,
}

impl<'de> Deserialize<'de> for Order {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Kept raw, so that a message that is not a `HubToSlave` can be read again for its
        // type and job. Text that is not JSON at all is refused here, as before.
        let raw = <&RawValue>::deserialize(d)?;
        Ok(match serde_json::from_str::<HubToSlave>(raw.get()) {
            Ok(msg) => Order::Known(msg),
            Err(e) => {
                let probe = serde_json::from_str::<Probe>(raw.get()).ok();
                let (kind, job) = probe.map_or((None, None), |p| (p.kind, p.job));
                Order::Unreadable {
                    kind,
                    job,
                    error: e.to_string(),
                }
            }
        })
    }
}

/// What one session needs to carry out orders.
pub struct Orders {
    pub opts: SlaveOptions,
    pub confinement: Arc<Confinement>,
    pub outbox: Arc<Outbox>,
    /// Jobs the welcome told us to forget: the hub still sends `cancel` and `done` for them,
    /// which are expected, not bad.
    pub forgotten: HashSet<JobId>,
}

impl Orders {
    /// Carries out one message from the hub.
    pub fn obey(&self, msg: Incoming<Order>) {
        match msg {
            Incoming::Msg(Order::Known(msg)) => self.known(msg),
            Incoming::Msg(Order::Unreadable {
                kind: Some(kind),
                job: Some(job),
                error,
            }) if kind == "assign" => self.unreadable_assignment(job, &error),
            Incoming::Msg(Order::Unreadable { kind, error, .. }) => tracing::warn!(
                kind = kind.as_deref().unwrap_or("(none)"),
                "unreadable message from hub, ignored: {error}"
            ),
            Incoming::Data(frame) => match DataFrame::decode(&frame) {
                Ok(f) if f.stream == Stream::Stdin => {
                    self.send(f.job, JobCtl::Input(f.data.to_vec()), "input")
                }
                Ok(f) => tracing::warn!(
                    job = f.job,
                    "data frame of stream {:?} from hub, ignored: only stdin goes to a slave",
                    f.stream
                ),
                Err(e) => tracing::warn!("bad data frame from hub, ignored: {e}"),
            },
            Incoming::Bad(e) => tracing::warn!("unreadable message from hub, ignored: {e}"),
        }
    }

    fn known(&self, msg: HubToSlave) {
        let outbox = &self.outbox;
        match msg {
            HubToSlave::Assign {
                job,
                spec,
                grace_ms,
                claim,
            } => {
                let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
                let Some(run) = outbox.add(job, claim, spec.tty, ctl_tx) else {
                    tracing::warn!(
                        job,
                        "the hub assigned a job this slave already holds: ignored"
                    );
                    return;
                };
                // Quoted (`?`), escapes and all: any user chooses a command, and a newline or
                // an escape sequence in it would forge log lines or drive the operator's
                // terminal.
                tracing::info!(job, command = ?spec.display_command(), "starting job");
                let grace = grace_ms.map_or(self.opts.stop_grace, Duration::from_millis);
                outbox.tasks.spawn(job::run(
                    run,
                    *spec,
                    grace,
                    self.confinement.clone(),
                    outbox.clone(),
                    ctl_rx,
                ));
            }
            HubToSlave::Cancel { job, grace_ms } => self.send(
                job,
                JobCtl::Cancel(Duration::from_millis(grace_ms)),
                "cancel",
            ),
            HubToSlave::Resize { job, rows, cols } => {
                self.send(job, JobCtl::Resize(rows, cols), "resize")
            }
            HubToSlave::CloseStdin { job } => self.send(job, JobCtl::CloseStdin, "close_stdin"),
            HubToSlave::Ack {
                job,
                stream,
                offset,
            } => {
                if let Err(e) = outbox.ack(job, stream, offset) {
                    tracing::warn!(job, "ack from hub ignored: {e}");
                }
            }
            HubToSlave::Resend {
                job,
                stream,
                offset,
            } => match outbox.resend(job, stream, offset) {
                Ok(()) => tracing::warn!(
                    job,
                    ?stream,
                    offset,
                    "the hub could not store this output: sending it again"
                ),
                Err(e) => tracing::warn!(job, "resend from hub ignored: {e}"),
            },
            HubToSlave::Done { job } => {
                if !outbox.forget(job) && !self.forgotten.contains(&job) {
                    tracing::warn!(
                        job,
                        "the hub says done with a job this slave does not hold: nothing to forget"
                    );
                }
            }
            HubToSlave::Heartbeat | HubToSlave::Welcome { .. } => {}
            HubToSlave::Error { message } => {
                tracing::warn!(hub = %self.opts.hub.url, "hub says: {message}");
                outbox.refused();
            }
        }
    }

    /// Hands an order to its job's task.
    fn send(&self, job: JobId, order: JobCtl, what: &str) {
        match self.outbox.ctl(job) {
            // A job that has ended but is not yet forgotten has no task to take it: too late,
            // and nothing to say.
            Some(ctl) => {
                let _ = ctl.send(order);
            }
            None if self.forgotten.contains(&job) => {}
            None => tracing::warn!(
                job,
                "{what} from hub for a job this slave does not hold: ignored"
            ),
        }
    }

    /// An `assign` whose job can be read but not its spec (a hub of another version, say):
    /// the job ends `failed` with the reason, rather than wait as `assigned` for ever.
    fn unreadable_assignment(&self, job: JobId, error: &str) {
        let (ctl_tx, _) = mpsc::unbounded_channel();
        let Some(run) = self.outbox.add(job, None, true, ctl_tx) else {
            tracing::warn!(
                job,
                "unreadable assignment of a job this slave already holds, ignored: {error}"
            );
            return;
        };
        tracing::warn!(
            job,
            "the hub's assignment cannot be read, reporting the job failed: {error}"
        );
        self.outbox.ended(
            run,
            Outcome::Failed {
                reason: format!("its slave could not read the assignment: {error}"),
            },
        );
    }
}
