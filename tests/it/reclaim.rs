//! Only the slave process a job was assigned to takes it back. Every holder of the slave token
//! can list any job id in its hello: another name, the same name with another instance id, or
//! no instance id at all must not get the job (it is told to stop and forget it, and the hub
//! warns), and the job's own slave still takes it back afterwards, whether the job was `lost`
//! or waiting for its slave after a restart of the hub. The slaves are played over the real
//! protocol, as in `redial`.

use crate::redial::{
    dial_as, dial_holding, end_ok, next, report_exit, runtime, start_one, wait_slaves, Reader,
};
use crate::util::*;
use execnode::conn::ConnSender;
use execnode::hub::SlaveInfo;
use execnode::wire::{HubToSlave, JobId, JobState, RunningJob, SlaveMsg, Stream};

/// Hellos that list job `id` but do not come from slave `s1`, instance `own`.
const IMPOSTORS: [(&str, Option<u64>); 4] = [
    ("evil", None),
    ("evil", Some(666)),
    ("s1", Some(667)),
    ("s1", None),
];

/// The one connected slave, once exactly one is.
fn only_slave(hub: &Hub) -> SlaveInfo {
    wait_slaves(hub, 1);
    let (code, body) = hub.get("/api/v1/slaves");
    assert_eq!(code, 200, "{body}");
    let mut slaves: Vec<SlaveInfo> = serde_json::from_str(&body).unwrap();
    slaves.pop().unwrap()
}

/// Each impostor is refused job `id`: it does not hold it, is told to cancel and forget it,
/// and the job stays `state` with slave `s1`; the hub's log names the impostor and the job.
async fn impostors_are_refused(hub: &Hub, id: JobId, state: JobState) {
    for (name, instance) in IMPOSTORS {
        let (mut rd, tx) = dial_as(hub, name, instance, 1, &[id]).await;
        let slave = only_slave(hub);
        assert!(slave.running.is_empty(), "{name} {instance:?} got it");
        let rec = hub.job(id);
        assert_eq!((rec.state, rec.slave.as_deref()), (state, Some("s1")));
        assert!(matches!(next(&mut rd).await, Some(HubToSlave::Cancel { job, .. }) if job == id));
        assert_eq!(next(&mut rd).await, Some(HubToSlave::Done { job: id }));
        drop((rd, tx));
        wait_slaves(hub, 0);
    }
    wait_until("a warning naming the impostor and the job", || {
        hub.log.lock().unwrap().iter().any(|l| {
            l.contains("WARN")
                && l.contains("not assigned to it")
                && l.contains("slave=evil")
                && l.contains(&format!("job={id}"))
        })
    });
}

/// Its own slave (`s1`, instance `own`) comes back with job `id`: it gets it without a
/// cancel, and the job ends with the end that slave reports.
async fn own_slave_takes_it_back(hub: &Hub, id: JobId, own: u64) {
    let (mut rd, tx) = dial_as(hub, "s1", Some(own), 1, &[id]).await;
    assert_eq!(only_slave(hub).running, vec![id]);
    assert_eq!(hub.job(id).state, JobState::Running);
    // A word first, so that a short --slave-timeout does not count the test's own pauses.
    tx.send(&SlaveMsg::Heartbeat).await.unwrap();
    // Had the hub refused it, a `cancel` would come before the `done`.
    end_ok(hub, &mut rd, &tx, id).await;
}

/// A job the hub sent to a played slave without storing the assignment, and the connection
/// it went to.
struct Sent {
    id: JobId,
    /// The job the played slave ran first, still assigned to it.
    first: JobId,
    claim: String,
    /// The job database's write lock: the caller kills the hub, then drops it.
    db: rusqlite::Connection,
    rd: Reader,
    tx: ConnSender,
}

/// Plays slave `name` (process `instance`, `slots` slots) and has the hub send it the job
/// `args` submit without storing that assignment: the test holds the job database's write
/// lock from just before the hub sends it. The played slave runs another job first, which
/// takes all its slots, so that the hub has stored that this slave is connected before the
/// lock is taken; the job is assigned when that one ends.
async fn assigned_but_not_stored(
    hub: &Hub,
    (name, instance, slots): (&str, u64, u32),
    args: &[&str],
) -> Sent {
    let first = hub.submit("sleep 600", &["--slots", &slots.to_string()]);
    let (mut rd, tx) = dial_as(hub, name, Some(instance), slots, &[]).await;
    assert!(matches!(next(&mut rd).await, Some(HubToSlave::Assign { job, .. }) if job == first));
    let id = hub.submit(args[0], &args[1..]);
    assert_eq!(hub.job(id).state, JobState::Queued);
    let db = rusqlite::Connection::open(hub.data.join("jobs.db")).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    report_exit(&tx, first, 0, 0).await;
    let claim = match next(&mut rd).await {
        Some(HubToSlave::Assign { job, claim, .. }) if job == id => claim,
        other => panic!("expected the assignment of job {id}, got {other:?}"),
    };
    let claim = claim.expect("an assignment to a slave with an instance id carries a claim");
    Sent {
        id,
        first,
        claim,
        db,
        rd,
        tx,
    }
}

#[test]
fn a_lost_job_goes_back_to_its_own_slave_only() {
    let hub = Hub::start_with(&["--slave-timeout", "1"]);
    runtime().block_on(async {
        let (mut rd, tx) = dial_as(&hub, "s1", Some(21), 1, &[]).await;
        let id = start_one(&hub, &mut rd, &tx, "sleep 600").await;
        // Out of touch for longer than the slave timeout: `lost`.
        drop((rd, tx));
        assert_eq!(hub.wait_ended(id).state, JobState::Lost);
        impostors_are_refused(&hub, id, JobState::Lost).await;
        own_slave_takes_it_back(&hub, id, 21).await;
    });
}

#[test]
fn after_a_hub_restart_a_job_goes_back_to_its_own_slave_only() {
    let mut hub = Hub::start_with(&["--slave-timeout", "600"]);
    let rt = runtime();
    let id = rt.block_on(async {
        let (mut rd, tx) = dial_as(&hub, "s1", Some(31), 1, &[]).await;
        start_one(&hub, &mut rd, &tx, "sleep 600").await
    });
    // A graceful stop commits everything, the instance the job went to included.
    assert!(hub.stop().success());
    hub.restart(&["--slave-timeout", "600"]);
    rt.block_on(async {
        impostors_are_refused(&hub, id, JobState::Running).await;
        own_slave_takes_it_back(&hub, id, 31).await;
    });
}

/// A job the hub has as queued (its assignment was lost with a crash of the hub, or it was
/// never assigned): the slave that lists it is told to stop it, it stays queued and runs
/// again, and the hub's log says why without calling the slave an impostor.
#[test]
fn a_queued_job_listed_in_a_hello_stays_queued() {
    let hub = Hub::start();
    // No slave has this label, so nothing takes it.
    let id = hub.submit("true", &["--on", "nowhere"]);
    runtime().block_on(async {
        let (mut rd, tx) = dial_as(&hub, "s1", Some(31), 1, &[id]).await;
        assert!(only_slave(&hub).running.is_empty());
        assert!(matches!(next(&mut rd).await, Some(HubToSlave::Cancel { job, .. }) if job == id));
        assert_eq!(next(&mut rd).await, Some(HubToSlave::Done { job: id }));
        drop((rd, tx));
    });
    assert_eq!(hub.job(id).state, JobState::Queued);
    wait_until("the hub to log why", || {
        hub.log_contains("slave listed a job the hub has as queued")
    });
    assert!(!hub.log_contains("not assigned to it"));
}

/// The hub is killed after sending an assignment and before storing it: the test holds the
/// job database's write lock meanwhile, so the store cannot commit. After the restart the job
/// is queued again, and the slave that got the assignment keeps it, proving it with the claim
/// the assignment carried. That claim is no good to another process or another name, and the
/// slave's own process without it is told to stop the job, which stays queued.
#[test]
fn a_job_whose_assignment_a_crash_did_not_store_stays_with_its_slave() {
    let mut hub = Hub::start_with(&["--slave-timeout", "600"]);
    let rt = runtime();
    // Two slots: the played impostors below offer one, so none of them is assigned the job.
    let Sent {
        id,
        first,
        claim,
        db,
        ..
    } = rt.block_on(assigned_but_not_stored(
        &hub,
        ("s1", 51, 2),
        &["sleep 600", "--slots", "2"],
    ));
    hub.kill();
    drop(db);
    hub.restart(&["--slave-timeout", "600"]);
    assert_eq!(
        hub.job(id).state,
        JobState::Queued,
        "the assignment was stored"
    );
    let holding = |claim: Option<&str>| {
        vec![RunningJob {
            job: id,
            claim: claim.map(str::to_string),
        }]
    };
    rt.block_on(async {
        for (name, instance, claim) in [
            ("s1", Some(52), Some(claim.as_str())),
            ("evil", Some(51), Some(claim.as_str())),
            ("s1", None, Some(claim.as_str())),
            ("s1", Some(51), None),
        ] {
            let (mut rd, tx) = dial_holding(&hub, name, instance, 1, holding(claim)).await;
            assert!(
                only_slave(&hub).running.is_empty(),
                "{name} {instance:?} got it"
            );
            assert!(
                matches!(next(&mut rd).await, Some(HubToSlave::Cancel { job, .. }) if job == id)
            );
            assert_eq!(next(&mut rd).await, Some(HubToSlave::Done { job: id }));
            drop((rd, tx));
            wait_slaves(&hub, 0);
            assert_eq!(hub.job(id).state, JobState::Queued);
        }
        // The job s1 ran first is queued again: the last hello from s1's process did not
        // list it. Cancelled, so that it does not take the slots the job below frees.
        assert_eq!(hub.job(first).state, JobState::Queued);
        hub.xn_ok(&["-k", &first.to_string()]);
        let (mut rd, tx) = dial_holding(&hub, "s1", Some(51), 2, holding(Some(&claim))).await;
        assert_eq!(only_slave(&hub).running, vec![id]);
        let rec = hub.job(id);
        assert_eq!(
            (rec.state, rec.slave.as_deref()),
            (JobState::Running, Some("s1"))
        );
        tx.send(&SlaveMsg::Heartbeat).await.unwrap();
        end_ok(&hub, &mut rd, &tx, id).await;
    });
    wait_until("the hub to log why", || {
        hub.log_contains("assignment was not stored before the hub stopped")
    });
}

/// The hub is killed after sending an assignment and storing some of that run's output, but
/// before storing the assignment. After the restart the job is queued; the slave that had it
/// does not come back, and another one is given the job. That run's output must not be cut to
/// fit behind the dead run's: the dead run is kept as an attempt of its own, `lost`, with its
/// output, and the new run is the next attempt, with log files of its own.
#[test]
fn a_job_run_again_after_a_crash_lost_its_assignment_keeps_each_runs_output_apart() {
    let mut hub = Hub::start_with(&["--slave-timeout", "600"]);
    let rt = runtime();
    let (id, db) = rt.block_on(async {
        let Sent {
            id, db, mut rd, tx, ..
        } = assigned_but_not_stored(&hub, ("s1", 81, 1), &["echo new output", "--no-tty"]).await;
        started_and_printed(&mut rd, &tx, id, b"old\n").await;
        (id, db)
    });
    hub.kill();
    drop(db);
    // The slave that had the job does not come back: the queue waits for it one second.
    hub.restart(&["--slave-timeout", "600", "--crash-hold", "1"]);
    assert_eq!(hub.job(id).state, JobState::Queued);
    rt.block_on(async {
        let (mut rd, tx) = dial_as(&hub, "s2", Some(82), 1, &[]).await;
        assert!(matches!(next(&mut rd).await, Some(HubToSlave::Assign { job, .. }) if job == id));
        tx.send(&SlaveMsg::Started { job: id, pid: 4343 })
            .await
            .unwrap();
        prints_and_exits(&mut rd, &tx, id, b"new output\n").await;
    });
    let rec = hub.wait_ended(id);
    assert_eq!((rec.state, rec.exit_code), (JobState::Exited, Some(0)));
    assert_eq!(rec.reason, None, "{rec:?}");
    assert_eq!(hub.fetch(id), b"new output\n");
    assert_eq!(rec.attempt, 2, "{rec:?}");
    let dead = &rec.attempts[0];
    assert_eq!(
        (dead.state, dead.slave.as_deref(), dead.stdout_len),
        (JobState::Lost, None, 4)
    );
}

/// Reports that played job `id` started and printed `out`, which the hub acknowledges.
async fn started_and_printed(rd: &mut Reader, tx: &ConnSender, id: JobId, out: &[u8]) {
    tx.send(&SlaveMsg::Started { job: id, pid: 4242 })
        .await
        .unwrap();
    tx.send_data(Stream::Stdout, id, 0, out).await.unwrap();
    assert_eq!(
        next(rd).await,
        Some(HubToSlave::Ack {
            job: id,
            stream: Stream::Stdout,
            offset: out.len() as u64
        })
    );
}

/// Reports that played job `id` printed `out` and exited 0; the hub acknowledges the output
/// and answers `done`.
async fn prints_and_exits(rd: &mut Reader, tx: &ConnSender, id: JobId, out: &[u8]) {
    tx.send_data(Stream::Stdout, id, 0, out).await.unwrap();
    report_exit(tx, id, 0, out.len() as u64).await;
    loop {
        match next(rd).await {
            Some(HubToSlave::Ack { .. }) => continue,
            other => {
                assert_eq!(other, Some(HubToSlave::Done { job: id }));
                break;
            }
        }
    }
}

/// As above, with a second crash: the run given out after the first one lost its assignment
/// too, after its output was stored. Each dead run is kept as an attempt of its own, and the
/// run that ends has log files of its own.
#[test]
fn a_job_whose_assignment_two_crashes_lost_keeps_each_runs_output_apart() {
    let mut hub = Hub::start_with(&["--slave-timeout", "600"]);
    let rt = runtime();
    let (id, first, db) = rt.block_on(async {
        let Sent {
            id,
            first,
            db,
            mut rd,
            tx,
            ..
        } = assigned_but_not_stored(&hub, ("s1", 81, 1), &["echo new output", "--no-tty"]).await;
        started_and_printed(&mut rd, &tx, id, b"old\n").await;
        (id, first, db)
    });
    hub.kill();
    drop(db);
    hub.restart(&["--slave-timeout", "600", "--crash-hold", "600"]);
    // s1's process dials again, still running the job it had first but not this one. The job
    // is given out again when that first one ends, and that assignment is not stored either.
    let db = rt.block_on(async {
        let (mut rd, tx) = dial_as(&hub, "s1", Some(81), 1, &[first]).await;
        assert_eq!(only_slave(&hub).running, vec![first]);
        let db = rusqlite::Connection::open(hub.data.join("jobs.db")).unwrap();
        db.execute_batch("BEGIN IMMEDIATE").unwrap();
        report_exit(&tx, first, 0, 0).await;
        assert!(matches!(next(&mut rd).await, Some(HubToSlave::Assign { job, .. }) if job == id));
        started_and_printed(&mut rd, &tx, id, b"mid\n").await;
        db
    });
    hub.kill();
    drop(db);
    hub.restart(&["--slave-timeout", "600", "--crash-hold", "1"]);
    rt.block_on(async {
        let (mut rd, tx) = dial_as(&hub, "s3", Some(83), 1, &[]).await;
        loop {
            match next(&mut rd).await {
                Some(HubToSlave::Assign { job, .. }) if job == id => break,
                // The job s1 ran first, whose end the second crash kept from being stored.
                Some(HubToSlave::Assign { job, .. }) if job == first => {
                    report_exit(&tx, first, 0, 0).await;
                }
                Some(HubToSlave::Done { job }) if job == first => {}
                other => panic!("expected the assignment of job {id}, got {other:?}"),
            }
        }
        prints_and_exits(&mut rd, &tx, id, b"new output\n").await;
    });
    let rec = hub.wait_ended(id);
    assert_eq!((rec.state, rec.exit_code), (JobState::Exited, Some(0)));
    assert_eq!(rec.attempt, 3, "{rec:?}");
    assert_eq!(hub.fetch(id), b"new output\n");
    for (dead, out) in rec.attempts.iter().zip(["old\n", "mid\n"]) {
        assert_eq!(
            (dead.state, dead.stdout_len),
            (JobState::Lost, 4),
            "{rec:?}"
        );
        let fetched = hub.xn_ok(&[
            "-f",
            &id.to_string(),
            "--attempt",
            &dead.attempt.to_string(),
        ]);
        assert_eq!(fetched, out);
    }
}
