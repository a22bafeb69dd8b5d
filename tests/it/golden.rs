//! The wire format is a contract with other clients: these messages must serialize exactly as
//! `tests/golden/messages.json` says. A change there is a protocol change; regenerate the file
//! with `UPDATE_GOLDEN=1 cargo test golden` only on purpose, and bump PROTOCOL_VERSION if old
//! peers cannot read the new form.

use execnode::wire::*;

fn record() -> JobRecord {
    JobRecord {
        id: 7,
        spec: JobSpec::shell("make test"),
        state: JobState::Exited,
        exit_code: Some(0),
        signal: None,
        reason: None,
        slave: Some("build-1".into()),
        created_ms: 1_700_000_000_000,
        started_ms: Some(1_700_000_000_010),
        ended_ms: Some(1_700_000_000_500),
        stdout_len: 12,
        stderr_len: 0,
        owner: Some("alice".into()),
        attempt: 1,
        attempts: vec![],
        group: None,
    }
}

/// A spec with every optional field set.
fn full_spec() -> JobSpec {
    JobSpec {
        command: String::new(),
        argv: Some(vec!["printf".into(), "%s\n".into(), "a b".into()]),
        env: [("K".to_string(), "v".to_string())].into(),
        cwd: Some("/srv".into()),
        tty: false,
        rows: 24,
        cols: 80,
        stdin: Some("input\n".into()),
        labels: vec!["gpu".into(), "os=linux".into()],
        on_slave: Some("build-1".into()),
        timeout: Some(2.5),
        retries: 2,
        retries_on_failure: true,
        name: Some("nightly".into()),
        slots: 2,
    }
}

/// A record of a retried job in a group, on its second attempt.
fn retried() -> JobRecord {
    let mut r = record();
    r.spec = full_spec();
    r.attempt = 2;
    r.group = Some("g3".into());
    r.attempts = vec![Attempt {
        attempt: 1,
        state: JobState::Lost,
        exit_code: None,
        signal: None,
        reason: Some("its slave stopped answering".into()),
        slave: Some("build-2".into()),
        started_ms: Some(1_700_000_000_010),
        ended_ms: Some(1_700_000_030_000),
        stdout_len: 5,
        stderr_len: 0,
    }];
    r
}

fn messages() -> Vec<(&'static str, serde_json::Value)> {
    let v = |x: &dyn AsJson| x.json();
    vec![
        (
            "slave_hello",
            v(&SlaveMsg::Hello {
                protocol: 1,
                name: "build-1".into(),
                slots: 4,
                running: vec![
                    RunningJob {
                        job: 3,
                        claim: Some(format!("{:064x}", 0x5eed_u32)),
                    },
                    RunningJob {
                        job: 4,
                        claim: None,
                    },
                ],
                labels: vec![],
                instance: Some(0x5eed_cafe_f00d_0001),
                resend: false,
            }),
        ),
        (
            "slave_hello_labels",
            v(&SlaveMsg::Hello {
                protocol: 1,
                name: "gpu-1".into(),
                slots: 8,
                running: vec![],
                labels: vec!["gpu".into(), "hostname=gpu-1".into()],
                instance: None,
                resend: true,
            }),
        ),
        ("slave_started", v(&SlaveMsg::Started { job: 7, pid: 4242 })),
        (
            "slave_ended",
            v(&SlaveMsg::Ended {
                job: 7,
                outcome: Outcome::Exited { code: 0 },
                stdout_len: 12,
                stderr_len: 0,
                cancelled: None,
            }),
        ),
        (
            "slave_ended_signaled",
            v(&SlaveMsg::Ended {
                job: 8,
                outcome: Outcome::Signaled { signal: 15 },
                stdout_len: 0,
                stderr_len: 0,
                cancelled: Some("cancelled: its slave was stopped".into()),
            }),
        ),
        ("slave_drain", v(&SlaveMsg::Drain)),
        ("slave_heartbeat", v(&SlaveMsg::Heartbeat)),
        (
            "hub_welcome",
            v(&HubToSlave::Welcome {
                protocol: 1,
                forget: vec![],
                heartbeat_ms: None,
            }),
        ),
        (
            "hub_welcome_forget",
            v(&HubToSlave::Welcome {
                protocol: 1,
                forget: vec![7, 9],
                heartbeat_ms: None,
            }),
        ),
        (
            "hub_welcome_heartbeat",
            v(&HubToSlave::Welcome {
                protocol: 1,
                forget: vec![],
                heartbeat_ms: Some(1000),
            }),
        ),
        (
            "hub_assign",
            v(&HubToSlave::Assign {
                job: 7,
                spec: Box::new(JobSpec::shell("make test")),
                grace_ms: None,
                claim: None,
            }),
        ),
        (
            "hub_assign_full",
            v(&HubToSlave::Assign {
                job: 8,
                spec: Box::new(full_spec()),
                grace_ms: Some(5000),
                claim: Some(format!("{:064x}", 0xc1a1_u32)),
            }),
        ),
        (
            "hub_cancel",
            v(&HubToSlave::Cancel {
                job: 7,
                grace_ms: 5000,
            }),
        ),
        (
            "hub_resize",
            v(&HubToSlave::Resize {
                job: 7,
                rows: 40,
                cols: 120,
            }),
        ),
        ("hub_close_stdin", v(&HubToSlave::CloseStdin { job: 7 })),
        (
            "hub_ack",
            v(&HubToSlave::Ack {
                job: 7,
                stream: Stream::Stdout,
                offset: 65536,
            }),
        ),
        (
            "hub_resend",
            v(&HubToSlave::Resend {
                job: 7,
                stream: Stream::Stdout,
                offset: 65536,
            }),
        ),
        ("hub_done", v(&HubToSlave::Done { job: 7 })),
        (
            "hub_error",
            v(&HubToSlave::Error {
                message: "protocol version mismatch".into(),
            }),
        ),
        (
            "client_resize",
            v(&ClientMsg::Resize { rows: 24, cols: 80 }),
        ),
        ("client_close_stdin", v(&ClientMsg::CloseStdin)),
        ("client_terminate", v(&ClientMsg::Terminate)),
        ("stream_job", v(&StreamMsg::Job { job: record() })),
        ("stream_end", v(&StreamMsg::End { job: record() })),
        ("stream_job_retried", v(&StreamMsg::Job { job: retried() })),
        (
            "stream_error",
            v(&StreamMsg::Error {
                message: "read-only".into(),
            }),
        ),
        (
            "error_body",
            v(&ErrorBody {
                error: "no job with id 9".into(),
            }),
        ),
        ("submit_reply", v(&SubmitReply { id: 7 })),
        ("submit_many_reply", v(&SubmitManyReply { ids: vec![7, 8] })),
        (
            "broadcast_reply",
            v(&BroadcastReply {
                group: "g3".into(),
                ids: vec![9, 10],
            }),
        ),
        (
            "token_info",
            v(&TokenInfo {
                name: "alice".into(),
                role: Role::User,
                created_ms: 1,
                slave_name: None,
                expires_ms: None,
            }),
        ),
        (
            "token_info_bound",
            v(&TokenInfo {
                name: "box7-key".into(),
                role: Role::Slave,
                created_ms: 1,
                slave_name: Some("box-7".into()),
                expires_ms: None,
            }),
        ),
        (
            "token_info_expiring",
            v(&TokenInfo {
                name: "contractor".into(),
                role: Role::User,
                created_ms: 1,
                slave_name: None,
                expires_ms: Some(2_592_000_001),
            }),
        ),
        (
            "audit_entry",
            v(&AuditEntry {
                id: 12,
                time_ms: 1,
                actor: "admin".into(),
                action: AuditAction::JobCancelled,
                target: "job 7".into(),
                detail: "owner alice, was running on box-7".into(),
                peer: Some("10.0.0.5:50412".into()),
                count: 1,
            }),
        ),
        (
            "audit_entry_refused",
            v(&AuditEntry {
                id: 13,
                time_ms: 2,
                actor: "(unknown)".into(),
                action: AuditAction::Refused,
                target: "GET /api/v1/jobs".into(),
                detail: "41 more refused within a minute of the first".into(),
                peer: None,
                count: 41,
            }),
        ),
        (
            "create_token",
            v(&CreateToken {
                name: "contractor".into(),
                role: Role::User,
                slave_name: None,
                expires_in: Some("30d".into()),
            }),
        ),
    ]
}

trait AsJson {
    fn json(&self) -> serde_json::Value;
}

impl<T: serde::Serialize> AsJson for T {
    fn json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap()
    }
}

#[test]
fn wire_messages_match_the_golden_file() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/messages.json");
    let now: serde_json::Map<String, serde_json::Value> = messages()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let now = serde_json::Value::Object(now);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&now).unwrap() + "\n").unwrap();
    }
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("golden file")).unwrap();
    assert_eq!(
        now, golden,
        "the wire format changed: see the module comment"
    );
    // And every golden message still parses back.
    for (name, v) in golden.as_object().unwrap() {
        let text = v.to_string();
        let ok = match name.split('_').next().unwrap() {
            "slave" => serde_json::from_str::<SlaveMsg>(&text).is_ok(),
            "hub" => serde_json::from_str::<HubToSlave>(&text).is_ok(),
            "client" => serde_json::from_str::<ClientMsg>(&text).is_ok(),
            "stream" => serde_json::from_str::<StreamMsg>(&text).is_ok(),
            "error" => serde_json::from_str::<ErrorBody>(&text).is_ok(),
            "submit" if name == "submit_reply" => {
                serde_json::from_str::<SubmitReply>(&text).is_ok()
            }
            "submit" => serde_json::from_str::<SubmitManyReply>(&text).is_ok(),
            "broadcast" => serde_json::from_str::<BroadcastReply>(&text).is_ok(),
            "create" => serde_json::from_str::<CreateToken>(&text).is_ok(),
            "audit" => serde_json::from_str::<AuditEntry>(&text).is_ok(),
            _ => serde_json::from_str::<TokenInfo>(&text).is_ok(),
        };
        assert!(ok, "{name} does not parse back");
    }
}
