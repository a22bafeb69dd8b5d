//! A slave process that dials its hub again: its hello carries the same instance id, so the hub
//! knows what that process holds. An assignment the cut connection swallowed is queued again at
//! once (not `lost` after the slave timeout), an earlier connection the hub still has open is
//! replaced (its running jobs are not cancelled), and a started job the process no longer
//! holds is given up at once; the same after a crash of the hub, which stores the instance
//! each job went to. Most tests here play the slave over the real protocol, so they decide
//! exactly what reached it; some cut a real slave's connection with a relay. Two processes of
//! one name are not one slave dialling again: both are served, with a warning.

use crate::relay::Relay;
use crate::util::*;
use execnode::conn::{self, ConnReader, ConnSender, Incoming};
use execnode::http::HubUrl;
use execnode::wire::{
    HubToSlave, JobId, JobState, Outcome, RunningJob, SlaveMsg, PROTOCOL_VERSION,
};

pub type Reader = ConnReader<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;

/// The slave timeout of these hubs: far longer than any wait here, so nothing below can pass
/// by waiting for it.
const SLAVE_TIMEOUT: &str = "600";

/// With a worker thread of its own: the connections' writer tasks go on while the test blocks
/// on `xn` or on a wait.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// One connection of a played slave process `instance` with `slots`, welcomed.
async fn dial(hub: &Hub, instance: u64, slots: u32, running: &[JobId]) -> (Reader, ConnSender) {
    dial_as(hub, "played", Some(instance), slots, running).await
}

/// One connection of a played slave process named `name`, welcomed.
pub async fn dial_as(
    hub: &Hub,
    name: &str,
    instance: Option<u64>,
    slots: u32,
    running: &[JobId],
) -> (Reader, ConnSender) {
    let running = running
        .iter()
        .map(|&job| RunningJob { job, claim: None })
        .collect();
    dial_holding(hub, name, instance, slots, running).await
}

/// As [`dial_as`], listing jobs with their claims.
pub async fn dial_holding(
    hub: &Hub,
    name: &str,
    instance: Option<u64>,
    slots: u32,
    running: Vec<RunningJob>,
) -> (Reader, ConnSender) {
    let (rd, tx, _) = dial_welcome(hub, name, instance, slots, running).await;
    (rd, tx)
}

/// As [`dial_holding`], with the hub's welcome (what it asks of the slave, such as how often
/// to send word).
pub async fn dial_welcome(
    hub: &Hub,
    name: &str,
    instance: Option<u64>,
    slots: u32,
    running: Vec<RunningJob>,
) -> (Reader, ConnSender, HubToSlave) {
    let url = HubUrl::parse(&hub.url)
        .unwrap()
        .with_token(Some(hub.slave_token.clone()));
    let ws = url.websocket("/api/v1/slave").await.unwrap();
    let (mut rd, tx) = conn::start(ws);
    tx.send(&SlaveMsg::Hello {
        protocol: PROTOCOL_VERSION,
        name: name.into(),
        slots,
        running,
        labels: vec![],
        instance,
        resend: false,
    })
    .await
    .unwrap();
    match next(&mut rd).await {
        Some(welcome @ HubToSlave::Welcome { .. }) => (rd, tx, welcome),
        other => panic!("expected a welcome, got {other:?}"),
    }
}

/// The hub's next message other than a heartbeat; `None` once it closed the connection.
pub async fn next(rd: &mut Reader) -> Option<HubToSlave> {
    loop {
        let msg = tokio::time::timeout(TIMEOUT, rd.recv::<HubToSlave>())
            .await
            .expect("the hub said nothing")
            .unwrap_or(None);
        match msg {
            Some(Incoming::Msg(HubToSlave::Heartbeat)) => continue,
            Some(Incoming::Msg(m)) => return Some(m),
            Some(other) => panic!("unexpected from the hub: {other:?}"),
            None => return None,
        }
    }
}

async fn assigned(rd: &mut Reader) -> JobId {
    match next(rd).await {
        Some(HubToSlave::Assign { job, .. }) => job,
        other => panic!("expected an assignment, got {other:?}"),
    }
}

/// Submits `line`, takes its assignment on this played connection and reports it started;
/// returns its id once the hub shows it running.
pub async fn start_one(hub: &Hub, rd: &mut Reader, tx: &ConnSender, line: &str) -> JobId {
    let id = hub.submit(line, &[]);
    assert_eq!(assigned(rd).await, id);
    tx.send(&SlaveMsg::Started { job: id, pid: 4242 })
        .await
        .unwrap();
    wait_until("the job to run", || hub.job(id).state == JobState::Running);
    id
}

/// Reports on this played connection that job `id` exited with `code`, after `stdout_len`
/// bytes of output.
pub async fn report_exit(tx: &ConnSender, id: JobId, code: i32, stdout_len: u64) {
    tx.send(&SlaveMsg::Ended {
        job: id,
        outcome: Outcome::Exited { code },
        stdout_len,
        stderr_len: 0,
        cancelled: None,
    })
    .await
    .unwrap();
}

/// Reports job `id` exited 0 on this played connection; the hub must answer `done` (not a
/// `cancel`: the job is this connection's) and record the end.
pub async fn end_ok(hub: &Hub, rd: &mut Reader, tx: &ConnSender, id: JobId) {
    report_exit(tx, id, 0, 0).await;
    assert_eq!(next(rd).await, Some(HubToSlave::Done { job: id }));
    let rec = hub.wait_ended(id);
    assert_eq!((rec.state, rec.exit_code), (JobState::Exited, Some(0)));
}

/// Waits until the hub has `n` slaves connected.
pub fn wait_slaves(hub: &Hub, n: usize) {
    wait_until(&format!("{n} connected slave(s)"), || {
        let (code, body) = hub.get("/api/v1/slaves");
        code == 200
            && serde_json::from_str::<Vec<serde_json::Value>>(&body)
                .unwrap()
                .len()
                == n
    });
}

#[test]
fn an_assignment_lost_with_the_connection_is_queued_again_at_once() {
    let hub = Hub::start_with(&["--slave-timeout", SLAVE_TIMEOUT]);
    runtime().block_on(async {
        let (mut rd, tx) = dial(&hub, 7, 1, &[]).await;
        let id = hub.submit("true", &[]);
        assert_eq!(assigned(&mut rd).await, id);
        // The connection ends; as far as the hub can tell, the assignment never arrived.
        drop((rd, tx));
        wait_slaves(&hub, 0);
        assert_eq!(hub.job(id).state, JobState::Assigned);
        // The same process dials again holding nothing: the job is handed out again.
        let (mut rd, _tx) = dial(&hub, 7, 1, &[]).await;
        assert_eq!(assigned(&mut rd).await, id);
        let rec = hub.job(id);
        assert_eq!(rec.state, JobState::Assigned);
        assert_eq!((rec.attempt, rec.attempts.len()), (1, 0), "not a retry");
        wait_until("the hub to log why", || hub.log_contains("queued again"));
    });
}

#[test]
fn a_connection_the_hub_still_holds_is_replaced_and_its_jobs_go_on() {
    let hub = Hub::start_with(&["--slave-timeout", SLAVE_TIMEOUT]);
    runtime().block_on(async {
        let (mut old_rd, old_tx) = dial(&hub, 8, 2, &[]).await;
        let running = start_one(&hub, &mut old_rd, &old_tx, "true").await;
        // A second job goes out on the old connection; say the cut swallowed it.
        let swallowed = hub.submit("true", &[]);
        assert_eq!(assigned(&mut old_rd).await, swallowed);
        // The hub hears no end of the old connection; the process dials again, holding the
        // running job only. Had the hub cancelled that job, a `cancel` would come first.
        let (mut rd, tx) = dial(&hub, 8, 2, &[running]).await;
        assert_eq!(assigned(&mut rd).await, swallowed);
        assert_eq!(
            next(&mut old_rd).await,
            None,
            "the old connection is closed"
        );
        wait_slaves(&hub, 1);
        assert_eq!(hub.job(running).state, JobState::Running);
        let rec = hub.job(swallowed);
        assert_eq!((rec.state, rec.attempts.len()), (JobState::Assigned, 0));
        // The job taken back ends normally on the new connection.
        end_ok(&hub, &mut rd, &tx, running).await;
        drop(old_tx);
    });
}

#[test]
fn a_started_job_its_slave_no_longer_holds_is_lost_at_once() {
    let hub = Hub::start_with(&["--slave-timeout", SLAVE_TIMEOUT]);
    runtime().block_on(async {
        let (mut rd, tx) = dial(&hub, 9, 1, &[]).await;
        let id = start_one(&hub, &mut rd, &tx, "true").await;
        drop((rd, tx));
        wait_slaves(&hub, 0);
        let _again = dial(&hub, 9, 1, &[]).await;
        let rec = hub.wait_ended(id);
        assert_eq!(rec.state, JobState::Lost);
        assert_eq!(
            rec.reason.as_deref(),
            Some("its slave came back without it")
        );
    });
    // Another process of the same name is not the one that had the job: what it does not
    // hold stays with the slave timeout, as before.
    let hub = Hub::start_with(&["--slave-timeout", SLAVE_TIMEOUT]);
    runtime().block_on(async {
        let (mut rd, tx) = dial(&hub, 10, 1, &[]).await;
        let id = hub.submit("true", &[]);
        assert_eq!(assigned(&mut rd).await, id);
        drop((rd, tx));
        wait_slaves(&hub, 0);
        let (mut rd, _tx) = dial(&hub, 11, 1, &[]).await;
        let next_job = hub.submit("true", &[]);
        assert_eq!(
            assigned(&mut rd).await,
            next_job,
            "the free slot takes the next job"
        );
        assert_eq!(hub.job(id).state, JobState::Assigned);
    });
}

#[test]
fn a_running_job_outlives_a_cut_its_hub_did_not_notice() {
    let hub = Hub::start_with(&["--slave-timeout", SLAVE_TIMEOUT]);
    let relay = Relay::start(&hub.addr);
    let slave = Slave::start_at(&relay.url, &hub.slave_token, "s1", 1, &[]);
    let job = GatedJob::submit(&hub);
    // The slave's side of the connection ends; the hub's stays open and hears nothing.
    relay.cut_now();
    wait_until("the slave to dial again and replace it", || {
        hub.log_contains("earlier connection is replaced")
    });
    assert_eq!(relay.accepted(), 2);
    job.finish(&hub);
    assert!(!slave.log_contains("cancel"), "the job was never cancelled");
    assert!(
        !hub.log_contains("two slaves named"),
        "the same process dialling again is not a second slave"
    );
}

#[test]
fn two_slave_processes_of_one_name_are_both_served_with_a_warning() {
    let hub = Hub::start();
    let _a = hub.slave("s1", 1);
    let _b = hub.slave("s1", 1);
    wait_slaves(&hub, 2);
    wait_until("a warning naming both", || {
        hub.log.lock().unwrap().iter().any(|l| {
            l.contains("WARN")
                && l.contains("two slaves named s1 are connected (instance ")
                && l.contains("give each its own --name")
        })
    });
}

#[test]
fn an_assignment_a_cut_swallowed_runs_when_the_slave_dials_again() {
    let hub = Hub::start_with(&["--slave-timeout", SLAVE_TIMEOUT]);
    let relay = Relay::start(&hub.addr);
    let _slave = Slave::start_at(&relay.url, &hub.slave_token, "s1", 1, &[]);
    relay.cut_on(br#""type":"assign""#);
    let id = hub.submit("echo ran", &["--no-tty"]);
    let rec = hub.wait_ended(id);
    assert_eq!((rec.state, rec.exit_code), (JobState::Exited, Some(0)));
    assert_eq!((rec.attempt, rec.attempts.len()), (1, 0), "not a retry");
    assert_eq!(hub.fetch(id), b"ran\n");
    assert_eq!(relay.cuts(), 1, "the first assignment never arrived");
}

#[test]
fn an_assignment_lost_with_a_crashed_hub_runs_when_the_slave_dials_the_new_one() {
    let mut hub = Hub::start_with(&["--slave-timeout", SLAVE_TIMEOUT]);
    let relay = Relay::start(&hub.addr);
    let _slave = Slave::start_at(&relay.url, &hub.slave_token, "s1", 1, &[]);
    // The assignment is swallowed, and the slave cannot dial again until the hub has died:
    // only the restarted hub can learn that it never arrived.
    relay.refuse_new(true);
    relay.cut_on(br#""type":"assign""#);
    let id = hub.submit("echo ran", &["--no-tty"]);
    wait_until("the assignment to be cut", || relay.cuts() == 1);
    assert_eq!(hub.job(id).state, JobState::Assigned);
    // The hub stores an assignment without waiting for it; a new job's record is waited for
    // and goes in after it. Without this the crash may come first, and the restarted hub
    // simply finds the job queued. This one waits for a label no slave has.
    let parked = hub.submit("true", &["--no-tty", "--on", "nowhere"]);
    hub.kill();
    hub.restart(&["--slave-timeout", SLAVE_TIMEOUT]);
    relay.refuse_new(false);
    let rec = hub.wait_ended(id);
    assert_eq!((rec.state, rec.exit_code), (JobState::Exited, Some(0)));
    assert_eq!((rec.attempt, rec.attempts.len()), (1, 0), "not a retry");
    assert_eq!(hub.fetch(id), b"ran\n");
    wait_until("the hub to log why", || {
        hub.log_contains("assignments that never reached the slave are queued again")
    });
    assert_eq!(hub.job(parked).state, JobState::Queued);
}

#[test]
fn a_lost_job_deleted_meanwhile_is_stopped_when_its_slave_comes_back_with_it() {
    let hub = Hub::start_with(&["--slave-timeout", "1"]);
    runtime().block_on(async {
        let (mut rd, tx) = dial(&hub, 12, 1, &[]).await;
        let id = start_one(&hub, &mut rd, &tx, "sleep 600").await;
        // Out of touch for longer than the slave timeout: `lost`, which counts as ended.
        drop((rd, tx));
        assert_eq!(hub.wait_ended(id).state, JobState::Lost);
        hub.xn_ok(&["--rm", &id.to_string()]);
        // The slave was only away and still runs it: the hub, which no longer knows the
        // job, has it stopped and forgotten.
        let (mut rd, _tx) = dial(&hub, 12, 1, &[id]).await;
        assert!(matches!(next(&mut rd).await, Some(HubToSlave::Cancel { job, .. }) if job == id));
        assert_eq!(next(&mut rd).await, Some(HubToSlave::Done { job: id }));
        assert!(hub.jobs().is_empty(), "not taken back");
    });
}
