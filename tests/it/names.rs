//! Names and labels the hub keeps are refused when they hold characters that make them show
//! other than they are: control characters, and the Unicode bidirectional formatting
//! characters (an override in a name would reorder what `xn -l` and the web page show around
//! it). For a slave's name and labels (its hello), and a job's name, pinned slave and labels.

use crate::util::*;
use execnode::conn::{self, Incoming};
use execnode::http::HubUrl;
use execnode::wire::{HubToSlave, SlaveMsg, PROTOCOL_VERSION};

/// One of each kind: an override, an isolate, a mark; and a control character.
const HIDDEN: [char; 4] = ['\u{202e}', '\u{2067}', '\u{200f}', '\u{1b}'];

/// What the hub says a name must be.
const NAME_RULE: &str =
    "must be 1 to 256 bytes of printable characters, without control or bidirectional formatting characters";

/// The end of what the hub says a label must be.
const LABEL_RULE: &str = "without spaces, commas, control or bidirectional formatting characters";

/// What the hub answers a slave's hello with this name and labels.
fn hello_answer(hub: &Hub, name: &str, labels: &[&str]) -> HubToSlave {
    let url = HubUrl::parse(&hub.url)
        .unwrap()
        .with_token(Some(hub.token.clone()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ws = url.websocket("/api/v1/slave").await.unwrap();
        let (mut rd, tx) = conn::start(ws);
        tx.send(&SlaveMsg::Hello {
            protocol: PROTOCOL_VERSION,
            name: name.into(),
            slots: 1,
            running: vec![],
            labels: labels.iter().map(|l| l.to_string()).collect(),
            instance: None,
            resend: false,
        })
        .await
        .unwrap();
        match rd.recv::<HubToSlave>().await.unwrap() {
            Some(Incoming::Msg(msg)) => msg,
            other => panic!("expected a message, got {other:?}"),
        }
    })
}

#[test]
fn a_slave_name_or_label_with_a_bidi_or_control_character_is_refused() {
    let hub = Hub::start();
    for c in HIDDEN {
        let name = format!("box{c}1");
        match hello_answer(&hub, &name, &[]) {
            HubToSlave::Error { message } => assert!(
                message.starts_with(&format!("slave name {NAME_RULE}")),
                "{message}"
            ),
            other => panic!("{name:?}: expected an error, got {other:?}"),
        }
        let label = format!("gpu={c}a100");
        match hello_answer(&hub, "box", &[&label]) {
            HubToSlave::Error { message } => assert!(
                message.starts_with("slave labels: label ") && message.contains(LABEL_RULE),
                "{message}"
            ),
            other => panic!("{label:?}: expected an error, got {other:?}"),
        }
    }
    assert_eq!(hub.get("/api/v1/slaves").1, "[]");
    // Letters of right-to-left scripts are names like any other.
    let name = "\u{5e9}\u{5e8}\u{5ea}-1";
    assert!(matches!(
        hello_answer(&hub, name, &["lang=\u{627}\u{644}"]),
        HubToSlave::Welcome { .. }
    ));
}

#[test]
fn a_job_name_pinned_slave_or_label_with_a_bidi_or_control_character_is_refused() {
    let hub = Hub::start();
    for c in HIDDEN {
        let bad = format!("build{c}-7");
        for (flag, what) in [
            ("--name", format!("the name {NAME_RULE}")),
            ("--slave", format!("the slave name {NAME_RULE}")),
            ("--on", LABEL_RULE.to_string()),
        ] {
            let out = hub.xn(&["-s", "true", flag, &bad]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(255), "{flag} {bad:?}: {err}");
            assert!(err.contains(&what), "{flag} {bad:?}: {err}");
            // xn writes the character out; it never reaches the terminal.
            assert!(!err.contains(c), "{err:?}");
        }
    }
    // A job file's label, in a list: the whole request is refused.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jobs.json");
    let jobs = serde_json::json!([
        {"command": "true"},
        {"command": "true", "labels": ["os=\u{2066}linux"]}
    ]);
    std::fs::write(&file, jobs.to_string()).unwrap();
    let out = hub.xn(&["submit", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(
        err.contains(&format!("{}, job 2: label ", file.display())),
        "{err}"
    );
    assert!(hub.jobs().is_empty());
    // Right-to-left letters are fine.
    hub.submit("true", &["--name", "\u{5d1}\u{5e0}\u{5d9}\u{5d4}"]);
}

/// A table's line split into its cells: at spaces, but not inside double quotes (where `\"`
/// is a quote), as a reader takes in the columns.
fn cells(line: &str) -> Vec<String> {
    let (mut cells, mut cur, mut quoted, mut escaped) = (Vec::new(), String::new(), false, false);
    for c in line.chars() {
        match c {
            _ if escaped => {
                cur.push(c);
                escaped = false;
            }
            '\\' if quoted => {
                cur.push(c);
                escaped = true;
            }
            '"' => {
                cur.push(c);
                quoted = !quoted;
            }
            ' ' if !quoted => {
                if !cur.is_empty() {
                    cells.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        cells.push(cur);
    }
    cells
}

#[test]
fn a_name_with_a_space_is_one_quoted_column_in_the_tables() {
    let hub = Hub::start();
    // Accepted, as before: deployments may use such names.
    let _s = hub.slave("build box", 1);
    let id = hub.submit(
        "echo hi",
        &["--no-tty", "--slave", "build box", "--name", "two words"],
    );
    hub.wait_ended(id);

    let list = hub.xn_ok(&["-l"]);
    let row = list
        .lines()
        .find(|l| l.trim_start().starts_with(&id.to_string()))
        .expect("the job's row");
    let c = cells(row);
    // ID, STATE, EXIT, SLAVE; AGE; NAME and the command.
    assert_eq!(
        c[..4],
        [&id.to_string(), "exited", "0", "\"build box\""],
        "{list}"
    );
    assert_eq!(c[5..], ["\"two words\"", "echo", "hi"], "{list}");

    let slaves = hub.xn_ok(&["--slaves"]);
    let row = slaves.lines().nth(1).expect("the slave's row");
    let c = cells(row);
    assert_eq!(
        (c[0].as_str(), c[1].as_str()),
        ("\"build box\"", "ready"),
        "{slaves}"
    );
    // JSON keeps the name as it is.
    let json = hub.xn_ok(&["--slaves", "--json"]);
    assert!(json.contains("\"name\": \"build box\""), "{json}");
}
