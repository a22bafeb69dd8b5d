#!/usr/bin/env bash
# The whole test suite: formatting, lints, tests. Needs a Rust toolchain (rustup) and, for the
# browser tests, Debian's Chromium (installed here when missing, if we run as root).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

run() {
    echo "==> $*"
    "$@"
}

# rustfmt and clippy are rustup components; a minimal toolchain may lack them.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    run rustup component add rustfmt clippy
fi

# tests/it/browser.rs drives headless Chromium over --remote-debugging-pipe.
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "the browser tests need Chromium: sudo apt-get install chromium" >&2
        exit 1
    fi
    # A stale package index is the usual reason the first try fails.
    if ! run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; then
        run apt-get update -q
        run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
    fi
fi

# Cargo.lock is committed: build exactly what it pins.
run cargo fmt --all -- --check
run cargo clippy --locked --all-targets -- -D warnings
run cargo test --locked

echo "==> all checks passed"
