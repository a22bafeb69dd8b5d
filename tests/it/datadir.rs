//! The hub's data directory: private to its user whatever the umask (job output and
//! environments live there), a warning when an existing one is not, and one hub per directory.

use crate::util::*;
use execnode::wire::JobState;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Every file and directory under `dir` (itself included) with its mode.
fn modes(dir: &Path) -> Vec<(String, u32)> {
    let mut all = vec![(dir.display().to_string(), mode(dir))];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all.extend(modes(&path));
        } else {
            all.push((path.display().to_string(), mode(&path)));
        }
    }
    all
}

#[test]
fn a_new_data_dir_and_everything_in_it_is_private_under_umask_022() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hub = Hub::start_with_umask(&data, 0o022);
    let _slave = hub.slave("s1", 1);
    let id = hub.submit("echo secret", &["--no-tty"]);
    assert_eq!(hub.wait_ended(id).state, JobState::Exited);
    assert_eq!(mode(&data), 0o700);
    for name in [
        "jobs.db",
        "admin.token",
        "hub.lock",
        &format!("logs/{id}.out"),
    ] {
        assert_eq!(mode(&data.join(name)), 0o600, "{name}");
    }
    let open: Vec<_> = modes(&data)
        .into_iter()
        .filter(|(_, m)| m & 0o077 != 0)
        .collect();
    assert!(open.is_empty(), "open to others: {open:?}");
    assert!(!hub.log_contains("chmod 700"));
}

#[test]
fn an_existing_data_dir_open_to_others_is_warned_about_and_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let hub = Hub::start_on(&data, "127.0.0.1:0", &[]);
    let line = format!("chmod 700 {}", data.display());
    assert!(hub.log_contains(&line), "no warning saying `{line}`");
    assert_eq!(mode(&data), 0o755, "not changed behind the operator's back");
}

#[test]
fn a_second_hub_on_the_same_data_dir_refuses_to_start() {
    let hub = Hub::start();
    let _slave = hub.slave("s1", 1);
    let mut second = Command::new(exe())
        .args(["hub", "--listen", "127.0.0.1:0", "--data"])
        .arg(&hub.data)
        .env("XN_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (err, reader) = collect(second.stderr.take().unwrap());
    let text = || String::from_utf8_lossy(&err.lock().unwrap()).into_owned();
    let mut status = None;
    wait_until("the second hub to exit or to listen", || {
        status = second.try_wait().unwrap();
        status.is_some() || text().contains("hub listening")
    });
    let Some(status) = status else {
        let _ = second.kill();
        let _ = second.wait();
        panic!("a second hub serves the same data dir:\n{}", text());
    };
    reader.join().unwrap();
    assert!(!status.success());
    let expected = format!(
        "another hub is already using {} (pid {})",
        hub.data.display(),
        hub.pid()
    );
    assert!(text().contains(&expected), "{}", text());
    // The first goes on serving, and its token commands still work beside it.
    let user = hub.new_token("alice", "user");
    let id = hub.submit("echo still here", &[]);
    assert_eq!(hub.wait_ended(id).exit_code, Some(0));
    let out = xn_as(&hub.url, &user, &["-l"]);
    assert!(out.status.success());
}

#[test]
fn a_hub_that_cannot_listen_leaves_no_data_dir_behind() {
    let running = Hub::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = std::process::Command::new(exe())
        .args(["hub", "--listen", &running.addr, "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on {}", running.addr)),
        "{err}"
    );
    assert!(!data.exists(), "no data dir, no tokens");
}

/// `--data` naming a file (a token file, say) is refused as not a directory, by the hub and by
/// `xnhub token create`, instead of "File exists", which reads as no error at all.
#[test]
fn a_data_dir_that_is_a_file_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin.token");
    std::fs::write(&file, "xn_...").unwrap();
    for args in [
        &["hub", "--listen", "127.0.0.1:0", "--data"][..],
        &[
            "hub", "token", "create", "--name", "a", "--role", "user", "--data",
        ],
    ] {
        let out = std::process::Command::new(exe())
            .args(args)
            .arg(&file)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{args:?}: {err}");
        assert!(
            err.contains(&format!(
                "data directory {} is not a directory (is --data or XN_DATA right?)",
                file.display()
            )),
            "{args:?}: {err}"
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "xn_...");
    }
}
