//! Links GCC's unwinder statically on linux-gnu, so `execnode` does not load `libgcc_s.so.1`.
//!
//! Every `xn` command is a new process, and on a virtual machine loading `libgcc_s` is dear:
//! its constructor (`__cpu_indicator_init`) asks the CPU about itself with some two dozen
//! `cpuid` instructions, and each one traps to the hypervisor (4 µs apiece on the machine in
//! BENCHMARKS.md), besides mapping and relocating one more library. Rust's standard library
//! asks for the unwinder with `-lgcc_s`; a `libgcc_s.so` of ours, found first, is a linker
//! script that hands the linker GCC's static `libgcc_eh.a` instead, as `gcc -static-libgcc`
//! would. Panics unwind as before. Where the C compiler has no `libgcc_eh.a`, nothing changes.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") != "linux" || var("CARGO_CFG_TARGET_ENV") != "gnu" {
        return;
    }
    // The linker cargo was told to use for this target; else `cc`, which links for the host
    // only, so a cross build without a linker of its own is left alone.
    let linker = match std::env::var("RUSTC_LINKER") {
        Ok(l) => l,
        Err(_) if var("TARGET") == var("HOST") => "cc".into(),
        Err(_) => return,
    };
    let Some(eh) = static_unwinder(&linker) else {
        return;
    };
    let dir = PathBuf::from(var("OUT_DIR")).join("static-libgcc");
    std::fs::create_dir_all(&dir).expect("creating OUT_DIR/static-libgcc");
    let script = format!(
        "/* written by execnode's build.rs */\nINPUT({})\n",
        eh.display()
    );
    std::fs::write(dir.join("libgcc_s.so"), script).expect("writing the libgcc_s.so script");
    println!("cargo:rustc-link-search=native={}", dir.display());
}

/// The absolute path of the C compiler's `libgcc_eh.a`, if it has one (it prints the bare name
/// when it does not).
fn static_unwinder(cc: &str) -> Option<PathBuf> {
    let out = Command::new(cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    // A path the script could not name as one word is left alone.
    let plain = |p: &Path| !p.to_string_lossy().contains([' ', '(', ')', '"']);
    (out.status.success() && path.is_absolute() && path.is_file() && plain(&path)).then_some(path)
}
