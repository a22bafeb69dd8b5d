//! A hub whose disk fills up while a job streams: the output waits (the hub asks the slave for
//! it again, the slave keeps it, the job blocks once the slave's buffer is full) and goes on
//! when there is room again, so nothing is lost and nothing reads as complete when it is not.
//! Needs root to mount a small tmpfs (skipped with a note elsewhere).

use crate::util::*;
use execnode::wire::JobState;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted on a temp dir for one test, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        if !is_root() {
            eprintln!("skipped: needs root to mount a tmpfs");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot mount a tmpfs");
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Bytes free on it.
    fn free(&self) -> u64 {
        let path = std::ffi::CString::new(self.path().as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: statvfs(3) writes one struct statvfs, which lives on this frame, and reads
        // a NUL-terminated path.
        let st = unsafe {
            let mut st: libc::statvfs = std::mem::zeroed();
            assert_eq!(libc::statvfs(path.as_ptr(), &mut st), 0);
            st
        };
        st.f_bavail * st.f_frsize
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

/// Fills `fs` with a file until only `leave` bytes are free; returns the file.
fn fill(fs: &Tmpfs, leave: u64) -> PathBuf {
    let file = fs.path().join("filler");
    let n = fs.free().saturating_sub(leave);
    std::fs::write(&file, vec![0u8; n as usize]).unwrap();
    file
}

#[test]
fn output_held_up_by_a_full_disk_is_stored_whole_once_there_is_room() {
    let Some(fs) = Tmpfs::mount("16m") else {
        return;
    };
    let mut hub = Hub::start_on(&fs.path().join("data"), "127.0.0.1:0", &[]);
    let slave = Slave::start(&hub, "s1", 1, &[]);
    // Room for the job database's few writes, not for the job's output.
    let filler = fill(&fs, 256 << 10);
    let id = hub.submit(
        "head -c 3000000 /dev/zero | tr '\\0' x; echo; echo tail",
        &["--no-tty"],
    );
    wait_until("the hub to stall on the full disk", || {
        hub.log_contains("asking the slave for it again")
    });
    wait_until("the slave to be asked for the output again", || {
        slave.log_contains("the hub could not store this output: sending it again")
    });
    // The job cannot have ended: its output is not stored.
    assert!(!hub.job(id).state.is_terminal(), "{:?}", hub.job(id));
    std::fs::remove_file(filler).unwrap();
    let rec = hub.wait_ended(id);
    assert_eq!(
        (rec.state, rec.exit_code, rec.reason.as_deref()),
        (JobState::Exited, Some(0), None),
        "{rec:?}"
    );
    let out = hub.fetch(id);
    assert_eq!(rec.stdout_len, 3_000_006);
    assert_eq!(out.len(), 3_000_006);
    assert!(out[..3_000_000].iter().all(|&b| b == b'x'));
    assert_eq!(&out[3_000_000..], b"\ntail\n");
    // Nothing reached the slave as a refusal.
    assert!(!slave.log_contains("hub says:"));
    hub.stop();
}
