//! A job's `cwd` is an absolute directory on the slave. An empty one names no directory, and a
//! relative one would be taken from wherever the slave process started, which no submitter can
//! know: the hub refuses both (400), and xn refuses them before anything is sent.

use crate::util::*;
use execnode::wire::{ErrorBody, JobSpec};

/// `pwd` in `cwd`, as JSON.
fn pwd_in(cwd: &str) -> String {
    serde_json::to_string(&JobSpec {
        cwd: Some(cwd.into()),
        ..JobSpec::shell("pwd")
    })
    .unwrap()
}

#[test]
fn the_hub_refuses_an_empty_or_relative_cwd() {
    let hub = Hub::start();
    for (cwd, says) in [
        ("", "the cwd is empty"),
        ("build", "the cwd \"build\" is relative"),
        ("./x", "the cwd \"./x\" is relative"),
        ("~/src", "the cwd \"~/src\" is relative"),
    ] {
        let spec = pwd_in(cwd);
        for path in ["/api/v1/jobs", "/api/v1/broadcast"] {
            let (status, body) = request(&hub.addr, "POST", path, &hub.token, &spec);
            assert_eq!(status, 400, "{path} {cwd:?}: {body}");
            let error: ErrorBody = serde_json::from_str(&body).unwrap();
            assert!(error.error.starts_with(says), "{path} {cwd:?}: {body}");
        }
        let list = format!("[{spec}]");
        let (status, body) = request(&hub.addr, "POST", "/api/v1/jobs", &hub.token, &list);
        assert_eq!(status, 400, "{cwd:?}: {body}");
    }
    assert!(hub.jobs().is_empty());
}

#[test]
fn xn_refuses_an_empty_or_relative_cwd_before_sending() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    for (cwd, says) in [
        ("", "the cwd is empty"),
        ("build", "the cwd \"build\" is relative"),
    ] {
        let out = hub.xn(&["-s", "pwd", "--cwd", cwd, "--wait"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cwd:?}: {err}");
        assert!(err.contains(says), "{cwd:?}: {err}");
        // In a job file, with where it is.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("job.json");
        std::fs::write(&file, format!(r#"{{"command": "pwd", "cwd": {cwd:?}}}"#)).unwrap();
        let out = hub.xn(&["submit", file.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{cwd:?}: {err}");
        assert!(
            err.starts_with(&format!("xn: {}:1:", file.display())),
            "{err}"
        );
        assert!(err.contains(says), "{cwd:?}: {err}");
    }
    assert!(hub.jobs().is_empty());
    // An absolute one is the job's directory.
    let out = hub.xn_ok(&["-s", "pwd", "--cwd", "/", "--no-tty", "--wait"]);
    assert_eq!(out, "/\n");
}
