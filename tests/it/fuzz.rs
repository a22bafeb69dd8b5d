//! Property-based fuzzing of every decoder of peer input, run for a bounded number of cases in
//! the suite: nothing a peer sends can panic the hub or the slave.

use crate::util::*;
use execnode::wire::{ClientMsg, DataFrame, HubToSlave, JobSpec, SlaveMsg, StreamMsg};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// JSON-ish inputs: random bytes, and mutations of valid messages.
fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    let valid = prop_oneof![
        Just(br#"{"type":"hello","protocol":1,"name":"s","slots":2,"running":[{"job":3}]}"#.to_vec()),
        Just(br#"{"type":"ended","job":1,"outcome":{"kind":"exited","code":0},"stdout_len":5,"stderr_len":0}"#.to_vec()),
        Just(br#"{"type":"resize","rows":24,"cols":80}"#.to_vec()),
        Just(br#"{"command":"ls","env":{"A":"b"},"tty":false,"rows":1,"cols":1}"#.to_vec()),
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        (valid, any::<usize>(), any::<u8>()).prop_map(|(mut v, at, b)| {
            let i = at % v.len();
            v[i] = b;
            v
        }),
        (valid_truncated()),
    ]
}

fn valid_truncated() -> impl Strategy<Value = Vec<u8>> {
    (any::<usize>()).prop_map(|cut| {
        let v = br#"{"type":"assign","job":7,"spec":{"command":"x","env":{"K":"V"}}}"#.to_vec();
        v[..cut % v.len()].to_vec()
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn data_frames_decode_or_refuse(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(f) = DataFrame::decode(&bytes) {
            prop_assert_eq!(f.encode(), bytes);
        }
    }

    #[test]
    fn data_frames_round_trip(stream in 0u8..3, job: u64, offset: u64, data in proptest::collection::vec(any::<u8>(), 0..100)) {
        let mut buf = DataFrame::header(execnode::wire::Stream::Stdout, job, offset).to_vec();
        buf[0] = stream;
        buf.extend(&data);
        let f = DataFrame::decode(&buf).unwrap();
        prop_assert_eq!((f.job, f.offset, f.data), (job, offset, &data[..]));
    }

    #[test]
    fn control_messages_decode_or_refuse(bytes in jsonish()) {
        let _ = serde_json::from_slice::<SlaveMsg>(&bytes);
        let _ = serde_json::from_slice::<HubToSlave>(&bytes);
        let _ = serde_json::from_slice::<ClientMsg>(&bytes);
        let _ = serde_json::from_slice::<StreamMsg>(&bytes);
        let _ = serde_json::from_slice::<JobSpec>(&bytes);
    }
}

#[test]
fn a_live_hub_survives_random_requests_and_messages() {
    use execnode::conn;
    use execnode::http::HubUrl;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let hub = Hub::start();
    let mut runner = TestRunner::deterministic();
    let bodies = jsonish();
    // Random REST bodies.
    for _ in 0..200 {
        let body = bodies.new_tree(&mut runner).unwrap().current();
        let body = String::from_utf8_lossy(&body).into_owned();
        let (status, resp) = hub.post("/api/v1/jobs", &body);
        assert!(matches!(status, 201 | 400), "{status} {resp}");
    }
    // Random slave and client frames, text and binary, after a valid hello.
    let url = HubUrl::parse(&hub.url)
        .unwrap()
        .with_token(Some(hub.token.clone()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for path in ["/api/v1/slave", "/api/v1/jobs/1/stream?input=1"] {
            let ws = url.websocket(path).await.unwrap();
            let (_rd, tx) = conn::start(ws);
            if path.ends_with("slave") {
                tx.send(&SlaveMsg::Hello {
                    protocol: 1,
                    name: "fuzz".into(),
                    slots: 1,
                    running: vec![],
                    labels: vec![],
                    instance: None,
                    resend: false,
                })
                .await
                .unwrap();
            }
            for i in 0..300 {
                let bytes = bodies.new_tree(&mut runner).unwrap().current();
                let sent = if i % 2 == 0 {
                    tx.send_raw_data(bytes).await
                } else {
                    tx.send(
                        &serde_json::from_slice::<serde_json::Value>(&bytes)
                            .unwrap_or(serde_json::Value::Null),
                    )
                    .await
                };
                if sent.is_err() {
                    break;
                }
            }
        }
    });
    let (status, _) = hub.get("/healthz");
    assert_eq!(status, 200, "the hub is still serving");
    assert!(!hub.log_contains("panicked"));
}
