//! What a slave does with bad input from its hub: a hub the test plays sends what a real hub
//! never would (malformed and unknown messages, orders for jobs the slave does not hold, an
//! assignment it cannot read, an ack beyond what was sent, an oversized frame). Each is a
//! clear line in the slave's log, and the job it runs goes on and loses nothing.

use crate::util::played_hub::{HubSide, BINARY, TEXT};
use crate::util::*;
use execnode::wire::{DataFrame, HubToSlave, JobSpec, Outcome, SlaveMsg, Stream};

const STDOUT: Stream = Stream::Stdout;

/// A played hub and a slave connected to it.
fn connected() -> (PlayedHub, Slave, HubSide) {
    let hub = PlayedHub::start();
    let (slave, side) = std::thread::scope(|s| {
        let accepted = s.spawn(|| hub.accept());
        let slave = Slave::start_at(&hub.url, "played", "s1", 2, &[]);
        (slave, accepted.join().unwrap())
    });
    (hub, slave, side)
}

/// The next frame but heartbeats, which must be a data frame: (job, stream, offset, bytes).
fn data(side: &mut HubSide) -> (u64, Stream, u64, Vec<u8>) {
    let mut f = side.recv();
    while f.opcode == TEXT && f.payload == br#"{"type":"heartbeat"}"# {
        f = side.recv();
    }
    assert_eq!(f.opcode, BINARY, "expected a data frame: {f:?}");
    let d = DataFrame::decode(&f.payload).unwrap();
    (d.job, d.stream, d.offset, d.data.to_vec())
}

fn assign(side: &mut HubSide, job: u64, line: &str) {
    side.send(&HubToSlave::Assign {
        job,
        spec: Box::new(JobSpec {
            tty: false,
            ..JobSpec::shell(line)
        }),
        grace_ms: None,
        claim: None,
    });
}

fn stdin(side: &mut HubSide, job: u64, bytes: &[u8]) {
    let mut frame = DataFrame::header(Stream::Stdin, job, 0).to_vec();
    frame.extend_from_slice(bytes);
    side.send_frame(BINARY, &frame);
}

fn ack(side: &mut HubSide, job: u64, offset: u64) {
    side.send(&HubToSlave::Ack {
        job,
        stream: STDOUT,
        offset,
    });
}

/// The slave's next message must be job `job`'s end; returns its outcome and stdout length.
fn ended(side: &mut HubSide, want: u64) -> (Outcome, u64) {
    match side.next_msg() {
        Some(SlaveMsg::Ended {
            job,
            outcome,
            stdout_len,
            ..
        }) if job == want => (outcome, stdout_len),
        other => panic!("expected job {want}'s end, got {other:?}"),
    }
}

fn wait_log(slave: &Slave, line: &str) {
    wait_until(&format!("the slave to log {line:?}"), || {
        slave.log_contains(line)
    });
}

/// Starts `echo before; read x; echo after:$x` as job 1 and reads its first output.
fn start_reader_job(side: &mut HubSide) {
    assign(side, 1, "echo before; read x; echo after:$x");
    assert!(matches!(
        side.next_msg(),
        Some(SlaveMsg::Started { job: 1, .. })
    ));
    assert_eq!(data(side), (1, STDOUT, 0, b"before\n".to_vec()));
}

/// Garbage, unknown messages, orders for a job the slave does not hold, data frames it cannot
/// use: each a warning, and the connection and the job go on. (A bad data frame once ended
/// the session.)
#[test]
fn bad_messages_from_the_hub_are_logged_and_the_session_and_its_job_go_on() {
    let (_hub, slave, mut side) = connected();
    start_reader_job(&mut side);
    side.send_frame(TEXT, b"not json");
    side.send_frame(TEXT, br#"{"type":"launch_missiles"}"#);
    side.send(&HubToSlave::Cancel {
        job: 99,
        grace_ms: 10,
    });
    side.send(&HubToSlave::CloseStdin { job: 99 });
    side.send(&HubToSlave::Done { job: 99 });
    ack(&mut side, 99, 5);
    side.send_frame(BINARY, &[1, 2, 3]);
    let mut stdout_frame = DataFrame::header(STDOUT, 1, 0).to_vec();
    stdout_frame.extend_from_slice(b"x");
    side.send_frame(BINARY, &stdout_frame);
    // The same connection carries the job on to its end, with all its output.
    stdin(&mut side, 1, b"go\n");
    ack(&mut side, 1, 7);
    assert_eq!(data(&mut side), (1, STDOUT, 7, b"after:go\n".to_vec()));
    assert_eq!(ended(&mut side, 1), (Outcome::Exited { code: 0 }, 16));
    for line in [
        "unreadable message from hub, ignored: bad message: expected ident",
        "unknown variant `launch_missiles`",
        "cancel from hub for a job this slave does not hold: ignored job=99",
        "close_stdin from hub for a job this slave does not hold: ignored job=99",
        "the hub says done with a job this slave does not hold",
        "ack from hub ignored: this slave does not hold the job job=99",
        "bad data frame from hub, ignored: binary frame of 3 bytes is shorter",
        "data frame of stream Stdout from hub, ignored",
    ] {
        wait_log(&slave, line);
    }
    assert!(!slave.log_contains("dialling again"), "the session ended");
}

/// A hub that acknowledges output the slave has not sent yet (it holds it back while earlier
/// output is unanswered) must not make it drop that output: the ack is refused.
#[test]
fn an_ack_of_output_never_sent_is_refused_and_the_output_still_sent() {
    let (_hub, slave, mut side) = connected();
    start_reader_job(&mut side);
    stdin(&mut side, 1, b"go\n");
    // Its last output is read (and held: "before" is unanswered) once its end is logged.
    wait_log(&slave, "job ended job=1");
    ack(&mut side, 1, 16);
    ack(&mut side, 1, 7);
    assert_eq!(data(&mut side), (1, STDOUT, 7, b"after:go\n".to_vec()));
    assert_eq!(ended(&mut side, 1), (Outcome::Exited { code: 0 }, 16));
    wait_log(
        &slave,
        "ack from hub ignored: Stdout offset 16 is beyond the 7 bytes sent",
    );
}

/// An assignment whose spec cannot be read (a hub of another version) or cannot be run as
/// given (a NUL byte, which no C string carries) ends `failed` with the reason, instead of
/// waiting as `assigned` for ever or running something else.
#[test]
fn an_assignment_the_slave_cannot_read_or_run_ends_failed_with_why() {
    let (_hub, slave, mut side) = connected();
    side.send_frame(TEXT, br#"{"type":"assign","job":2,"spec":{"command":5}}"#);
    let (outcome, _) = ended(&mut side, 2);
    assert!(
        matches!(&outcome, Outcome::Failed { reason } if reason.starts_with("its slave could not read the assignment: invalid type: integer `5`")),
        "{outcome:?}"
    );
    wait_log(
        &slave,
        "the hub's assignment cannot be read, reporting the job failed",
    );
    assign(&mut side, 3, "tr\0ue");
    let (outcome, _) = ended(&mut side, 3);
    assert!(
        matches!(&outcome, Outcome::Failed { reason } if reason.contains("its command contains a NUL byte")),
        "{outcome:?}"
    );
    // The hub's `done` lets it forget both.
    side.send(&HubToSlave::Done { job: 2 });
    side.send(&HubToSlave::Done { job: 3 });
    assign(&mut side, 4, "true");
    assert!(matches!(
        side.next_msg(),
        Some(SlaveMsg::Started { job: 4, .. })
    ));
    assert_eq!(ended(&mut side, 4).0, Outcome::Exited { code: 0 });
}

/// A message over the size limit ends that connection only (the frame cannot be skipped
/// unread): the slave says so, dials again with its job in the hello, and the job's output is
/// sent again from the last acknowledged byte.
#[test]
fn an_oversized_message_from_the_hub_costs_a_reconnect_and_nothing_else() {
    let (hub, slave, mut side) = connected();
    start_reader_job(&mut side);
    // The slave may hang up before all of it is written.
    let huge = vec![b' '; execnode::limits::MAX_WS_MESSAGE_BYTES + 1];
    let _ = side.try_send_frame(TEXT, &huge);
    let mut side = hub.accept();
    wait_log(&slave, "message larger than 1048576 bytes");
    let SlaveMsg::Hello { running, .. } = &side.hello else {
        unreachable!("accept reads a hello")
    };
    assert_eq!(running.iter().map(|r| r.job).collect::<Vec<_>>(), [1]);
    assert!(slave
        .log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("WARN")
            && l.contains(&format!("hub at {}: message larger than", hub.url))));
    assert!(matches!(
        side.next_msg(),
        Some(SlaveMsg::Started { job: 1, .. })
    ));
    assert_eq!(data(&mut side), (1, STDOUT, 0, b"before\n".to_vec()));
    stdin(&mut side, 1, b"go\n");
    ack(&mut side, 1, 7);
    assert_eq!(data(&mut side), (1, STDOUT, 7, b"after:go\n".to_vec()));
    assert_eq!(ended(&mut side, 1), (Outcome::Exited { code: 0 }, 16));
}
