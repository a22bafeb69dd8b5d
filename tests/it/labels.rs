//! Targeting: slaves advertise labels, jobs run only where their labels (or their pinned slave
//! name) are, and a job no connected slave can take says why in `xn -l`.

use crate::util::*;
use execnode::wire::JobState;

#[test]
fn labels_route_jobs_and_an_unsatisfiable_job_shows_its_reason() {
    let hub = Hub::start();
    let _gpu = Slave::start(&hub, "gpu-box", 2, &["--label", "gpu", "--label", "zone=a"]);
    let _plain = hub.slave("plain", 2);
    let (_, body) = hub.get("/api/v1/slaves");
    assert!(body.contains(r#""gpu","zone=a","hostname="#), "{body}");
    assert!(body.contains(r#""os=linux""#), "automatic labels: {body}");

    let on_gpu: Vec<u64> = (0..4)
        .map(|_| hub.submit("echo gpu", &["--on", "gpu"]))
        .collect();
    let on_zone = hub.submit("echo zone", &["--on", "zone"]);
    let pinned = hub.submit("echo pinned", &["--slave", "plain"]);
    let anywhere = hub.submit("echo any", &["--on", "os=linux"]);
    for &id in &on_gpu {
        assert_eq!(hub.wait_ended(id).slave.as_deref(), Some("gpu-box"));
    }
    assert_eq!(hub.wait_ended(on_zone).slave.as_deref(), Some("gpu-box"));
    assert_eq!(hub.wait_ended(pinned).slave.as_deref(), Some("plain"));
    assert_eq!(hub.wait_ended(anywhere).exit_code, Some(0));

    // Jobs no connected slave can take wait, and say why.
    let tpu = hub.submit("echo tpu", &["--on", "tpu"]);
    let mac = hub.submit("echo mac", &["--on", "gpu", "--on", "os=mac"]);
    let nosuch = hub.submit("echo nosuch", &["--slave", "nosuch"]);
    let big = hub.submit("echo big", &["--slots", "3"]);
    let reasons = [
        (tpu, "no connected slave has label tpu"),
        (mac, "no connected slave has label os=mac"),
        (nosuch, "no connected slave is named nosuch"),
        (big, "no connected slave has 3 slots"),
    ];
    for (id, why) in reasons {
        let rec = hub.job(id);
        assert_eq!(rec.state, JobState::Queued);
        assert_eq!(rec.reason.as_deref(), Some(why), "job {id}");
    }
    let table = hub.xn_ok(&["-l", "--state", "queued"]);
    assert_eq!(table.lines().count(), 5, "{table}");
    assert!(
        table.contains("echo tpu  [no connected slave has label tpu]"),
        "{table}"
    );
    // Filters: by label and by state, applied by the hub.
    let gpu_jobs: Vec<execnode::wire::JobRecord> =
        serde_json::from_str(&hub.xn_ok(&["-l", "--json", "--label", "gpu"])).unwrap();
    assert_eq!(gpu_jobs.len(), 5, "four gpu jobs and the mac one");

    // A slave that has the label comes: the job runs there, and the reason is gone.
    let _tpu = Slave::start(&hub, "tpu-box", 4, &["--label", "tpu"]);
    let rec = hub.wait_ended(tpu);
    assert_eq!(rec.slave.as_deref(), Some("tpu-box"));
    assert_eq!(rec.reason, None);
    assert_eq!(hub.wait_ended(big).exit_code, Some(0));
    assert_eq!(hub.job(mac).state, JobState::Queued);
}

#[test]
fn a_job_takes_as_many_slots_as_it_asks_for() {
    let hub = Hub::start();
    let dir = tempfile::tempdir().unwrap();
    let gate = dir.path().join("gate");
    let wait_gate = format!("while [ ! -e {} ]; do sleep 0.05; done", gate.display());
    let wide = hub.submit(&wait_gate, &["--slots", "2"]);
    let small = hub.submit(&wait_gate, &[]);
    let _s = hub.slave("s1", 2);
    hub.wait_state(wide, JobState::Running);
    // The two-slot job fills the slave: the one-slot job behind it waits, without a reason.
    let rec = hub.job(small);
    assert_eq!((rec.state, rec.reason), (JobState::Queued, None));
    std::fs::write(&gate, "").unwrap();
    assert_eq!(hub.wait_ended(wide).exit_code, Some(0));
    assert_eq!(hub.wait_ended(small).exit_code, Some(0));
}

#[test]
fn xn_slaves_lists_who_is_connected_with_their_jobs_and_labels() {
    let hub = Hub::start();
    let out = hub.xn(&["--slaves"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no slave is connected"));

    let gpu = Slave::start(&hub, "gpu-box", 3, &["--label", "gpu"]);
    let _plain = hub.slave("plain", 1);
    let job = GatedJob::submit(&hub);
    let on = hub.job(job.id).slave.unwrap();
    assert_eq!(on, "gpu-box", "the slave with the most free slots takes it");
    let rows = |table: &str| -> Vec<Vec<String>> {
        table
            .lines()
            .map(|l| l.split_whitespace().map(String::from).collect())
            .collect()
    };
    let table = hub.xn_ok(&["--slaves"]);
    let r = rows(&table);
    assert_eq!(
        r[0],
        ["NAME", "STATE", "SLOTS", "JOBS", "BOUND", "TOKEN", "LABELS"]
    );
    assert_eq!(&r[1][..3], ["gpu-box", "ready", "3"], "{table}");
    assert_eq!(&r[1][4..6], ["no", "slave"], "{table}");
    assert!(r[1][6].starts_with("gpu,hostname="), "{table}");
    assert_eq!(&r[2][..3], ["plain", "ready", "1"], "{table}");
    assert_eq!(r[1][3], job.id.to_string(), "{table}");
    assert_eq!(r[2][3], "-", "{table}");
    // A slave told to stop finishes what it holds (it stays until then) and says so.
    gpu.signal(libc::SIGTERM);
    wait_until("gpu-box to drain", || {
        rows(&hub.xn_ok(&["--slaves"]))
            .iter()
            .any(|r| r[0] == "gpu-box" && r[1] == "draining")
    });

    // The same as JSON, for scripts; any valid token may look, a wrong one may not.
    let viewer = hub.new_token("watcher", "viewer");
    let out = xn_as(&hub.url, &viewer, &["--slaves", "--json"]);
    let slaves: Vec<execnode::hub::SlaveInfo> = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<(&str, bool)> = slaves
        .iter()
        .map(|s| (s.name.as_str(), s.draining))
        .collect();
    assert_eq!(names, [("gpu-box", true), ("plain", false)]);
    let out = xn_as(&hub.url, "xn_wrong", &["--slaves"]);
    assert_eq!(out.status.code(), Some(255));
    assert!(out.stdout.is_empty());
    let out = hub.xn(&["-f", "1", "--json"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--json goes with -l or --slaves"));
    job.finish(&hub);
}

/// A draining slave takes no new job, and a job that waits because of it says so: not that it
/// needs a label or slots the slave has. (Once, a job waiting only for a draining slave read
/// "no connected slave has 1 slots", and one queued before the drain said nothing.)
#[test]
fn a_job_waiting_for_a_draining_slave_says_so() {
    let hub = Hub::start();
    let slave = Slave::start(&hub, "s1", 1, &["--drain-timeout", "600"]);
    let busy = GatedJob::submit(&hub);
    // Queued behind the busy slave, which could take it: no reason, until the slave drains.
    let before = hub.submit("true", &["--slave", "s1"]);
    assert_eq!(hub.job(before).reason, None);
    slave.signal(libc::SIGTERM);
    wait_until("the slave to drain", || {
        hub.log_contains("slave is draining")
    });
    let pinned = hub.submit("true", &["--slave", "s1"]);
    let any = hub.submit("true", &["--on", "os"]);
    for (id, why) in [
        (before, "slave s1 is draining: it takes no new jobs"),
        (pinned, "slave s1 is draining: it takes no new jobs"),
        (
            any,
            "every connected slave is draining: they take no new jobs",
        ),
    ] {
        let rec = hub.job(id);
        assert_eq!(rec.state, JobState::Queued, "job {id}");
        assert_eq!(rec.reason.as_deref(), Some(why), "job {id}");
    }
    busy.finish(&hub);
}
