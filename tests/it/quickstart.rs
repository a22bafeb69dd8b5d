//! The README's commands that run a script of ours name files a fresh clone can run: present
//! and executable (git keeps the mode, and `scripts/demo.sh` once lacked it).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

#[test]
fn every_script_the_readme_runs_is_executable() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    // Commands in the README's shell blocks start a line; a script of ours is `scripts/...`.
    let scripts: Vec<&str> = readme
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.starts_with("scripts/") && w.ends_with(".sh"))
        .collect();
    assert!(
        scripts.contains(&"scripts/demo.sh") && scripts.contains(&"scripts/test.sh"),
        "the quick start's two commands are in the README: {scripts:?}"
    );
    for s in scripts {
        let meta = std::fs::metadata(root.join(s)).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert!(
            meta.permissions().mode() & 0o111 != 0,
            "{s} is run by the README but is not executable (git update-index --chmod=+x {s})"
        );
    }
}
