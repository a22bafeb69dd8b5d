#!/usr/bin/env bash
# Builds execnode in release mode and puts the xn, xnhub and xnslave symlinks in DIR
# (default: ~/.local/bin). The links point at target/release/execnode in this checkout.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dir="${1:-$HOME/.local/bin}"

echo "==> cargo build --release --locked"
cargo build --release --locked
echo "==> installing links in $dir"
target/release/execnode install-links "$dir"
case ":$PATH:" in
    *":$dir:"*) ;;
    *) echo "note: $dir is not on your PATH; add it to use xn, xnhub and xnslave" ;;
esac
