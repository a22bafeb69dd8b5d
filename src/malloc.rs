//! The allocator's settings for streaming. Every output frame a hub, slave or `xn` receives
//! is read into a fresh buffer of up to 64 KiB that is freed moments later. With glibc's
//! defaults, the freed top of a thread's heap goes back to the kernel (`madvise`, `brk`) and the
//! next frame faults the same pages in again: 20,000 to 70,000 page faults per GiB streamed in
//! the hub and 27,000 to 32,000 in `xn`, and on a VM each fault is dear. Keeping up to
//! [`TRIM_THRESHOLD`] of free heap per arena, and serving blocks below [`MMAP_THRESHOLD`] from
//! the heap, takes both to 2,000 or 3,000 (`perf stat -e page-faults`, 1 GiB through
//! `xn -s 'head -c 1G /dev/zero' --no-tty --wait`; see BENCHMARKS.md).
//!
//! The only `unsafe` outside the slave's process code. A user's own `MALLOC_*` or
//! `GLIBC_TUNABLES` environment wins: then nothing is changed.

/// Free memory an arena keeps at its top before giving it back to the kernel.
pub const TRIM_THRESHOLD: usize = 32 << 20;

/// Blocks from this size up get a mapping of their own (frames, at most 1 MiB, never do).
pub const MMAP_THRESHOLD: usize = 4 << 20;

/// Applies the settings; call it first thing in `main`, before any thread starts.
pub fn tune() {
    let user_set = std::env::vars_os().any(|(k, _)| {
        let k = k.to_string_lossy();
        k.starts_with("MALLOC_") || k == "GLIBC_TUNABLES"
    });
    if !user_set {
        set();
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set() {
    // Values that fit in an int, as mallopt takes them.
    let (trim, mmap) = (TRIM_THRESHOLD as libc::c_int, MMAP_THRESHOLD as libc::c_int);
    // SAFETY: mallopt only changes the allocator's parameters; it takes the allocator's own
    // lock, and no other thread exists yet. A refused value (it returns 0) leaves the default.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, mmap);
        libc::mallopt(libc::M_TRIM_THRESHOLD, trim);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set() {}
