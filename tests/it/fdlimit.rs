//! The hub's open-file limit: raised at start from a low soft limit to the hard one (every
//! slave and client holds a descriptor), with a warning when the hard limit itself is low.

use crate::util::Hub;

/// The soft and hard "Max open files" of process `pid`, from /proc/PID/limits.
fn open_files(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (nums[0], nums[1])
}

/// This process's hard open-file limit, which a child inherits.
fn hard_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes one struct we own.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim.rlim_max
}

#[test]
fn the_hub_raises_a_low_soft_open_file_limit_to_the_hard_one() {
    let hard = hard_limit();
    assert!(
        hard > 256,
        "the test needs a hard limit above 256, not {hard}"
    );
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start_with_open_files(&dir.path().join("data"), 256, hard);
    assert_eq!(open_files(hub.pid()), (hard, hard));
    assert!(hub.log_contains(&format!("open-file limit raised from 256 to {hard}")));
}

#[test]
fn a_hub_whose_hard_open_file_limit_is_low_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start_with_open_files(&dir.path().join("data"), 200, 512);
    assert_eq!(open_files(hub.pid()), (512, 512));
    assert!(hub.log_contains("the open-file limit is 512 (hard limit 512)"));
    // It serves all the same.
    let _s = hub.slave("s1", 1);
    let id = hub.submit("echo ok", &["--no-tty"]);
    hub.wait_ended(id);
    assert_eq!(hub.fetch(id), b"ok\n");
}
