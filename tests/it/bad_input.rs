//! Every bad input gets a clear error, and the hub keeps serving.

use crate::util::*;

#[test]
fn unknown_job_ids_are_named_in_the_error() {
    let hub = Hub::start();
    for args in [["-f", "99"], ["-k", "99"]] {
        let out = hub.xn(&args);
        assert_eq!(out.status.code(), Some(255));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim(), "xn: no job with id 99", "{args:?}");
    }
    let out = hub.xn(&["-f", "99", "--follow"]);
    assert_eq!(out.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no job with id 99"));
}

#[test]
fn an_unreachable_hub_is_a_clear_error() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    for args in [vec!["-l"], vec!["-s", "true"], vec!["-f", "1", "--follow"]] {
        let out = xn(&url, &args);
        assert_eq!(out.status.code(), Some(255));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with(&format!("xn: cannot reach hub at {url}: ")),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"));
    }
}

/// A hub URL with a query, fragment or user info is refused before anything is dialled (it
/// used to be dialled on port 80); the scheme is matched in any case.
#[test]
fn hub_urls_with_more_than_a_host_and_port_are_refused_and_the_scheme_has_any_case() {
    let hub = Hub::start();
    let port = hub.url.rsplit_once(':').unwrap().1;
    for url in [
        format!("http://127.0.0.1:{port}?x=1"),
        format!("http://127.0.0.1:{port}#frag"),
        format!("http://u:p@127.0.0.1:{port}"),
    ] {
        let out = xn_as(&url, &hub.token, &["-l"]);
        assert_eq!(out.status.code(), Some(255), "{url}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.trim(),
            format!(
                "xn: hub URL {url}: a hub URL has no query, fragment or user info: \
                 http://HOST:PORT"
            )
        );
    }
    let out = xn_as(&format!("HTTP://127.0.0.1:{port}"), &hub.token, &["-l"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn malformed_and_oversized_requests_get_json_errors() {
    let hub = Hub::start();
    let (status, body) = hub.post("/api/v1/jobs", "{not json");
    assert_eq!(status, 400);
    assert!(body.contains("\"error\":\"bad request body"), "{body}");

    let (status, body) = hub.post("/api/v1/jobs", r#"{"command":"ls","tty":"yes"}"#);
    assert_eq!(status, 400, "{body}");

    let (status, body) = hub.post("/api/v1/jobs", r#"{"command":"   "}"#);
    assert_eq!(status, 400);
    assert!(body.contains("empty"), "{body}");

    // A NUL byte would cut the command short on the slave: refused here, saying where.
    let (status, body) = hub.post("/api/v1/jobs", r#"{"command":"echo a\u0000; rm x"}"#);
    assert_eq!(status, 400);
    assert!(body.contains("the command contains a NUL byte"), "{body}");
    let (status, body) = hub.post("/api/v1/jobs", r#"{"argv":["echo","a\u0000b"]}"#);
    assert_eq!(status, 400);
    assert!(
        body.contains("a word of the argv contains a NUL byte"),
        "{body}"
    );

    // One job past the per-job limit is refused by that limit...
    let big = format!(r#"{{"command":"{}"}}"#, "x".repeat(2 << 20));
    let (status, body) = hub.post("/api/v1/jobs", &big);
    assert_eq!(status, 400);
    assert!(body.contains("at most"), "{body}");
    // ...and a body past the batch limit before it is read.
    let huge = execnode::limits::MAX_SUBMIT_BODY_BYTES + 1;
    let (status, body) = http(
        &hub.addr,
        format!("POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: {huge}\r\nConnection: close\r\n\r\n[", hub.token).as_bytes(),
    );
    assert_eq!(status, 413);
    assert!(body.contains("larger than"), "{body}");

    for bad in ["abc", "0", "-1"] {
        let (status, body) = hub.get(&format!("/api/v1/jobs/{bad}"));
        assert_eq!(status, 400, "{bad}");
        assert!(
            body.contains("is not a job id (a positive integer)"),
            "{body}"
        );
    }
    let (status, body) = hub.get("/api/v1/jobs/12345");
    assert_eq!(status, 404);
    assert!(body.contains("no job with id 12345"));
    let (status, _) = hub.get("/api/v1/nothing");
    assert_eq!(status, 404);
    let (status, _) = request(&hub.addr, "DELETE", "/api/v1/jobs", &hub.token, "");
    assert_eq!(status, 405);
    let (status, _) = hub.get("/api/v1/slave");
    assert_eq!(status, 400, "a slave endpoint without upgrade");
    let (status, _) = http(&hub.addr, b"garbage\r\n\r\n");
    assert!(status == 400 || status == 0);

    // Nothing was created, and the hub still serves.
    assert!(hub.jobs().is_empty());
    let (status, body) = hub.get("/healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A listener that takes connections, reads each request's head, answers it with `answer` and
/// then nothing more, as a hub that stopped (or whose machine went away) would.
fn stalled_hub(answer: &'static [u8]) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                // An answer before the request would be a protocol error, not a stall.
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let _ = conn.write_all(answer);
                std::io::copy(&mut &conn, &mut std::io::sink())
            });
        }
    });
    url
}

#[test]
fn a_hub_that_stops_answering_is_a_clear_error_not_a_hang() {
    // One says nothing; the other starts an answer of 100 bytes and stops after 10. Both are
    // asked at once: each costs the 30 s that xn waits.
    let silent = stalled_hub(b"");
    let half = stalled_hub(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n[{\"id\":1,");
    let asks: Vec<_> = [silent.clone(), half.clone()]
        .into_iter()
        .map(|url| std::thread::spawn(move || xn(&url, &["-l"])))
        .collect();
    let outs: Vec<_> = asks.into_iter().map(|t| t.join().unwrap()).collect();
    let err = |i: usize| String::from_utf8_lossy(&outs[i].stderr).trim().to_string();
    assert_eq!(outs[0].status.code(), Some(255));
    assert_eq!(
        err(0),
        format!("xn: hub at {silent} did not answer within 30s")
    );
    assert_eq!(outs[1].status.code(), Some(255));
    assert_eq!(
        err(1),
        "xn: reading the hub's answer: nothing more came for 30s"
    );
}

#[test]
fn a_hub_no_connection_gets_through_to_is_a_clear_error_not_a_hang() {
    use std::os::fd::AsRawFd;
    // A listener whose queue of connections not yet accepted is full: the kernel drops what
    // else comes, as a route that loses packets does, and a connect would retry for minutes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: listen(2) again on our own listening socket only shortens its queue.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
    let addr = listener.local_addr().unwrap();
    let _queued = std::net::TcpStream::connect(addr).unwrap();
    let url = format!("http://{addr}");
    let out = xn(&url, &["-l"]);
    assert_eq!(out.status.code(), Some(255));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        format!("xn: cannot reach hub at {url}: no connection within 10s")
    );
    drop(listener);
}

#[test]
fn a_slave_with_another_protocol_version_is_refused_with_both_versions() {
    use execnode::conn::{self, Incoming};
    use execnode::http::HubUrl;
    use execnode::wire::{HubToSlave, SlaveMsg, PROTOCOL_VERSION};
    let hub = Hub::start();
    let url = HubUrl::parse(&hub.url)
        .unwrap()
        .with_token(Some(hub.token.clone()));
    runtime().block_on(async {
        let ws = url.websocket("/api/v1/slave").await.unwrap();
        let (mut rd, tx) = conn::start(ws);
        tx.send(&SlaveMsg::Hello {
            protocol: PROTOCOL_VERSION + 1,
            name: "future".into(),
            slots: 1,
            running: vec![],
            labels: vec![],
            instance: None,
            resend: false,
        })
        .await
        .unwrap();
        match rd.recv::<HubToSlave>().await.unwrap() {
            Some(Incoming::Msg(HubToSlave::Error { message })) => {
                assert!(
                    message.contains(&format!("slave speaks version {}", PROTOCOL_VERSION + 1)),
                    "{message}"
                );
                assert!(
                    message.contains(&format!("hub speaks version {PROTOCOL_VERSION}")),
                    "{message}"
                );
            }
            other => panic!("expected an error, got {other:?}"),
        }
        assert!(
            rd.recv::<HubToSlave>().await.unwrap().is_none(),
            "then the hub closes"
        );
    });
    // The hub's log is read on a thread of its own: the line may arrive after the close.
    wait_until("the hub to log the mismatch", || {
        hub.log_contains("protocol version mismatch")
    });
}

#[test]
fn bad_websocket_messages_get_errors_and_the_stream_stays_up() {
    use execnode::conn::{self, Incoming};
    use execnode::http::HubUrl;
    use execnode::wire::{HubToSlave, SlaveMsg, StreamMsg, PROTOCOL_VERSION};
    let hub = Hub::start();
    let id = hub.submit("echo hi", &[]);
    let url = HubUrl::parse(&hub.url)
        .unwrap()
        .with_token(Some(hub.token.clone()));
    runtime().block_on(async {
        // A client stream: garbage text, then an oversized frame.
        let ws = url
            .websocket(&format!("/api/v1/jobs/{id}/stream?input=1"))
            .await
            .unwrap();
        let (mut rd, tx) = conn::start(ws);
        assert!(matches!(
            rd.recv::<StreamMsg>().await.unwrap(),
            Some(Incoming::Msg(StreamMsg::Job { .. }))
        ));
        tx.send(&serde_json::json!({"type": "launch_missiles"}))
            .await
            .unwrap();
        match rd.recv::<StreamMsg>().await.unwrap() {
            Some(Incoming::Msg(StreamMsg::Error { message })) => {
                assert!(message.contains("bad message"), "{message}")
            }
            other => panic!("expected an error, got {other:?}"),
        }
        // Still up: a resize of a queued job is refused, by a message.
        tx.send(&execnode::wire::ClientMsg::Resize { rows: 10, cols: 10 })
            .await
            .unwrap();
        match rd.recv::<StreamMsg>().await.unwrap() {
            Some(Incoming::Msg(StreamMsg::Error { message })) => {
                assert!(message.contains("not running"), "{message}")
            }
            other => panic!("expected an error, got {other:?}"),
        }
        // An oversized frame closes this connection only.
        tx.send_raw_data(vec![0u8; execnode::limits::MAX_WS_MESSAGE_BYTES + 10])
            .await
            .unwrap();
        assert!(rd
            .recv::<StreamMsg>()
            .await
            .map(|m| m.is_none())
            .unwrap_or(true));

        // A slave that sends garbage after its hello gets an error and stays connected.
        let ws = url.websocket("/api/v1/slave").await.unwrap();
        let (mut rd, tx) = conn::start(ws);
        tx.send(&SlaveMsg::Hello {
            protocol: PROTOCOL_VERSION,
            name: "odd".into(),
            slots: 1,
            running: vec![],
            labels: vec![],
            instance: None,
            resend: false,
        })
        .await
        .unwrap();
        assert!(matches!(
            rd.recv::<HubToSlave>().await.unwrap(),
            Some(Incoming::Msg(HubToSlave::Welcome { .. }))
        ));
        tx.send_raw_data(vec![1, 2, 3]).await.unwrap();
        loop {
            match rd.recv::<HubToSlave>().await.unwrap() {
                Some(Incoming::Msg(HubToSlave::Error { message })) => {
                    assert!(message.contains("shorter than"), "{message}");
                    break;
                }
                Some(Incoming::Msg(HubToSlave::Assign { .. } | HubToSlave::Heartbeat)) => continue,
                other => panic!("expected an error, got {other:?}"),
            }
        }
    });
    let (status, _) = hub.get("/healthz");
    assert_eq!(status, 200);
}

#[test]
fn connections_per_address_and_queued_jobs_per_user_are_bounded() {
    use std::io::Read;
    let hub = Hub::start_with(&["--max-conns-per-addr", "3", "--max-queued-per-user", "2"]);
    let held: Vec<_> = (0..3)
        .map(|_| std::net::TcpStream::connect(&hub.addr).unwrap())
        .collect();
    // The fourth is closed at once, before any request is read.
    let mut fourth = std::net::TcpStream::connect(&hub.addr).unwrap();
    fourth.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut buf = [0u8; 1];
    assert!(matches!(fourth.read(&mut buf), Ok(0) | Err(_)));
    wait_until("the refusal to be logged", || {
        hub.log_contains("connections from this address already")
    });
    drop(held);
    // Places are given back.
    wait_until("a new connection to be served", || {
        hub.get("/healthz").0 == 200
    });
    // A connection upgraded to a WebSocket keeps its place: two slaves take two, so a third
    // request finds one left, and a fourth none.
    let s1 = hub.slave("s1", 1);
    let s2 = hub.slave("s2", 1);
    let open = std::net::TcpStream::connect(&hub.addr).unwrap();
    let out = hub.xn(&["-l"]);
    assert_eq!(
        out.status.code(),
        Some(255),
        "refused while the slaves hold their places"
    );
    // Not taken for a network fault: xn names the likely cause.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("closed the connection without an answer")
            && err.contains("--max-conns-per-addr"),
        "{err}"
    );
    drop(open);
    drop((s1, s2));
    wait_until("the slaves' places to be given back", || {
        hub.get("/healthz").0 == 200 && hub.get("/api/v1/slaves").1 == "[]"
    });
    // No slave: jobs stay queued. The third is refused with 429 and says why.
    hub.submit("true", &[]);
    hub.submit("true", &[]);
    let (status, body) = hub.post("/api/v1/jobs", r#"{"command":"true"}"#);
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("queued already"), "{body}");
    assert_eq!(hub.jobs().len(), 2);
}

#[test]
fn job_environments_and_tokens_stay_out_of_the_logs() {
    let hub = Hub::start();
    let s = hub.slave("s1", 1);
    let (status, body) = hub.post(
        "/api/v1/jobs",
        r#"{"command":"test ${#API_KEY} = 7","env":{"API_KEY":"hunter2"},"tty":false}"#,
    );
    assert_eq!(status, 201, "{body}");
    let id = hub.jobs()[0].id;
    assert_eq!(
        hub.wait_ended(id).exit_code,
        Some(0),
        "the job saw its environment"
    );
    let logs = [
        hub.log.lock().unwrap().join("\n"),
        s.log.lock().unwrap().join("\n"),
    ]
    .concat();
    assert!(!logs.contains("hunter2"));
    assert!(!logs.contains(&hub.token));
    assert!(!logs.contains(&hub.slave_token));
}

/// A command is anyone's text: in the slave's log it is quoted, so a newline in it cannot forge a
/// log line of its own, nor an escape sequence reach the terminal that shows the log.
#[test]
fn a_command_cannot_forge_a_line_of_the_slaves_log() {
    let hub = Hub::start();
    let s = hub.slave("s1", 1);
    let forged = "2026-01-01T00:00:00Z  WARN token revoked: disconnecting slave";
    let id = hub.submit(&format!("true\n{forged}\n: \x1b[2J\u{202e}"), &["--no-tty"]);
    assert_eq!(hub.wait_ended(id).exit_code, Some(0));
    wait_until("the slave to log the job", || {
        s.log_contains("starting job")
    });
    let log = s.log.lock().unwrap().clone();
    assert!(!log.iter().any(|l| l.starts_with(forged)), "{log:#?}");
    assert!(
        !log.iter()
            .any(|l| l.contains('\x1b') || l.contains('\u{202e}')),
        "{log:#?}"
    );
    let line = log.iter().find(|l| l.contains("starting job")).unwrap();
    assert!(line.contains(&format!("true\\n{forged}\\n")), "{line}");
}

#[test]
fn flags_that_do_not_go_together_are_refused_and_nothing_is_submitted() {
    let hub = Hub::start();
    for (args, code, says) in [
        (
            &["-s", "true", "--retries-on-failure"][..],
            2,
            "--retries <N>",
        ),
        // Numbers to f64, but not to JSON: they were sent as no timeout at all.
        (
            &["-s", "true", "--timeout", "nan"][..],
            2,
            "must be a positive number of seconds",
        ),
        (
            &["-s", "true", "--timeout", "inf"][..],
            2,
            "must be a positive number of seconds",
        ),
        (
            &["-s", "true", "--timeout", "0"][..],
            2,
            "must be a positive number of seconds",
        ),
        (
            &["-f", "1", "--follow", "--attempt", "1"][..],
            2,
            "cannot be used with",
        ),
        // The command's flags taken for xn's: `ls -l` meant, -s and -l given.
        (
            &["-s", "ls", "-l"][..],
            255,
            "; a command's own flags go inside its quotes (xn -s 'ls -l')",
        ),
        (
            &["-s", "tail", "-f", "log"][..],
            255,
            "; a command's own flags go inside its quotes (xn -s 'ls -l')",
        ),
        (
            &["-s", "bash", "-a", "--wait"][..],
            255,
            "(only -s LINE -a go together)\n",
        ),
        (
            &["-s", "true", "--prefix"][..],
            255,
            "--prefix goes with -f GROUP",
        ),
        (&["-l", "--prefix"][..], 255, "--prefix goes with -f GROUP"),
    ] {
        let out = hub.xn(args);
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert!(hub.jobs().is_empty());
    // An empty XN_HUB is no hub given, as an empty XN_TOKEN is no token: the default hub.
    let home = tempfile::tempdir().unwrap();
    let out = hub
        .xn_command(&["-l"])
        .env("XN_HUB", "")
        .env("XDG_CONFIG_HOME", home.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("expected http://"), "{err}");
    assert!(
        out.status.success() || err.contains("http://127.0.0.1:5000"),
        "{err}"
    );
}

/// A slave (from before `resend`) whose output the hub could not all store: its end says more
/// than the hub has. The job's record says so, and `xn -f --follow` does not exit as if the
/// output were whole.
#[test]
fn a_job_whose_output_was_not_all_stored_is_not_followed_as_a_success() {
    use crate::redial::{dial_holding, next, runtime};
    use execnode::wire::{HubToSlave, Outcome, SlaveMsg};
    let hub = Hub::start();
    let id = hub.submit("echo ten bytes", &["--no-tty"]);
    runtime().block_on(async {
        let (mut rd, tx) = dial_holding(&hub, "old", None, 1, vec![]).await;
        match next(&mut rd).await {
            Some(HubToSlave::Assign { job, .. }) => assert_eq!(job, id),
            other => panic!("expected the job, got {other:?}"),
        }
        tx.send(&SlaveMsg::Started { job: id, pid: 1 })
            .await
            .unwrap();
        // Ten bytes produced, none of them stored.
        tx.send(&SlaveMsg::Ended {
            job: id,
            outcome: Outcome::Exited { code: 0 },
            stdout_len: 10,
            stderr_len: 0,
            cancelled: None,
        })
        .await
        .unwrap();
        // The hub stored the end.
        loop {
            match next(&mut rd).await {
                Some(HubToSlave::Done { job }) if job == id => break,
                Some(_) => continue,
                None => panic!("the hub closed the session"),
            }
        }
    });
    let rec = hub.wait_ended(id);
    assert_eq!(rec.exit_code, Some(0));
    let reason = rec.reason.unwrap_or_default();
    assert!(
        reason.contains("output incomplete: stored 0+0 of 10+0"),
        "{reason}"
    );
    let out = hub.xn(&["-f", &id.to_string(), "--follow"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(
        err.contains(&format!(
            "xn: job {id} exited with code 0: output incomplete"
        )),
        "{err}"
    );
}
