#!/usr/bin/env bash
# The whole test suite: formatting, lints, tests. Needs only a Rust toolchain (rustup).
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

# Cargo.lock is committed: build exactly what it pins.
run cargo fmt --all -- --check
run cargo clippy --locked --all-targets -- -D warnings
run cargo test --locked

echo "==> all checks passed"
