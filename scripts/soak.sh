#!/usr/bin/env bash
# Fault-injection soak: a hub and three slaves on loopback in a temporary directory, a steady
# mix of jobs whose correct output is known in advance, and faults at random times (kill -9 of
# the hub and a restart on the same port and data, kill -9 or SIGTERM of a slave and a restart
# under the same name, SIGSTOP/SIGCONT of a slave, cancels with `xn -k`), while an attacher
# types into interactive tty jobs through `xn -a` from a real pseudo-terminal, detaches, kills
# xn and comes back. Then it stops the faults, waits for every job to end and checks what must
# hold whatever happened: every job ended; a job that exited as its command does has exactly
# the output it must have; no job ran more often than it had attempts; no id the hub handed
# out, and no byte it showed, is gone later; every lost, failed or cancelled job is explained
# by a fault; every answer an attached xn showed is stored, nothing typed is repeated,
# reordered or dropped without xn saying so, and every xn -a left as it should, in bounded
# time; nothing panicked. The work is done by scripts/soak.py, its checks in soak_check.py, and
# scripts/soak_attach*.py; see their docstrings for the details of each check.
#
#   scripts/soak.sh [--minutes N] [--exe PATH] [--seed N] [--keep]
#
# --minutes N  how long to inject faults (default 3); the final wait and checks come after
# --exe PATH   the execnode binary to test; without it, `cargo build --release` and
#              target/release/execnode (CARGO_TARGET_DIR is honoured)
# --seed N     the random seed (default: drawn, and printed), to replay a run's choices
# --keep       keep the temporary directory even when every check passed
#
# Exits 0 when every check passed (the temporary directory is removed), 1 on any violation
# (the directory with the hub's and slaves' logs, the job list and the markers is kept and
# named), 2 on a usage error. It is not part of the test suite: it runs for minutes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() {
    echo "usage: scripts/soak.sh [--minutes N] [--exe PATH] [--seed N] [--keep]" >&2
    exit 2
}

minutes=3
exe=""
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
    --minutes) [ $# -ge 2 ] || usage; minutes=$2; shift 2 ;;
    --exe) [ $# -ge 2 ] || usage; exe=$2; shift 2 ;;
    --seed) [ $# -ge 2 ] || usage; extra+=(--seed "$2"); shift 2 ;;
    --keep) extra+=(--keep); shift ;;
    *) usage ;;
    esac
done

if [ -z "$exe" ]; then
    cargo build --release
    exe="${CARGO_TARGET_DIR:-target}/release/execnode"
fi
[ -x "$exe" ] || { echo "soak: $exe is not an executable" >&2; exit 2; }

# Our own settings only: a user's XN_* variables must not point the soak at a real hub.
unset XN_HUB XN_LISTEN XN_DATA XN_TOKEN XN_CA

exec python3 scripts/soak.py --exe "$exe" --minutes "$minutes" "${extra[@]}"
