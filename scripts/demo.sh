#!/usr/bin/env bash
# A tour of execnode on this machine: builds it, starts a hub and two slaves on loopback in a
# temporary directory, and runs a few jobs with `xn` as a user would type it. Everything it
# starts is stopped, and the directory removed, when it exits. Exits 0 when all went as shown.
# With --keep, it leaves the hub and slaves running at the end, for the web interface, until
# Ctrl-C.
set -euo pipefail
keep=false
case "${1:-}" in
--keep) keep=true ;;
"") ;;
*)
    echo "usage: scripts/demo.sh [--keep]" >&2
    exit 2
    ;;
esac
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Our own settings only: a user's XN_* variables must not point the demo at a real hub.
unset XN_HUB XN_LISTEN XN_DATA XN_TOKEN

say() { printf '\n==> %s\n' "$*"; }
die() {
    printf 'demo: %s\n' "$*" >&2
    exit 1
}
# Shows a command as a user would type it, then runs it.
typed() {
    printf '$ %s\n' "$1"
    eval "$1"
}
# Like `typed`, for `xn -s`: keeps the id it prints in $job.
submit() {
    printf '$ %s\n' "$1"
    job=$(eval "$1")
    echo "$job"
}
# Like `typed`, for a command whose exit code is part of the story: prints it and checks it.
typed_code() {
    local want=$1 code=0
    printf '$ %s\n' "$2"
    eval "$2" || code=$?
    echo "exit code: $code"
    [ "$code" = "$want" ] || die "expected exit code $want from: $2"
}
# Waits up to $1 tenths of a second for the command in $2 to succeed.
wait_for() {
    local tries=$1
    while ! eval "$2" >/dev/null 2>&1; do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || return 1
        sleep 0.1
    done
}

say "Building execnode (release)"
cargo build --release --locked
exe=$PWD/target/release/execnode

tmp=$(mktemp -d "${TMPDIR:-/tmp}/execnode-demo.XXXXXX")
pids=()
stop_all() {
    local status=$? pid i
    trap - EXIT INT TERM
    if [ "${#pids[@]}" -gt 0 ]; then
        say "Stopping the slaves and the hub"
        # Slaves first (newest first), so they can tell the hub how their jobs ended.
        for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
            pid=${pids[i]}
            kill -TERM "$pid" 2>/dev/null || continue
            for _ in $(seq 100); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -KILL "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        done
    fi
    if [ "$status" -ne 0 ] && [ -d "$tmp" ]; then
        for log in "$tmp"/*.log; do
            [ -f "$log" ] || continue
            printf '\n--- %s\n' "${log##*/}" >&2
            tail -n 20 "$log" >&2
        done
    fi
    rm -rf "$tmp"
    exit "$status"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "Installing the xn, xnhub and xnslave links in a temporary bin/"
"$exe" install-links "$tmp/bin"
export PATH="$tmp/bin:$PATH"

say "Starting a hub on a free loopback port (data in $tmp/data)"
"$exe" hub --listen 127.0.0.1:0 --data "$tmp/data" 2>"$tmp/hub.log" &
pids+=($!)
hub_port() { grep -oE 'hub listening on http://127\.0\.0\.1:[0-9]+' "$tmp/hub.log" | grep -oE '[0-9]+$'; }
wait_for 100 hub_port || die "the hub did not start"
hub="http://127.0.0.1:$(hub_port)"
export XN_HUB=$hub
grep 'hub listening' "$tmp/hub.log"

say "On its first start the hub made an admin and a slave token (mode 0600)"
ls -l "$tmp/data/admin.token" "$tmp/data/slave.token"
XN_TOKEN=$(cat "$tmp/data/admin.token")
export XN_TOKEN
slave_token=$(cat "$tmp/data/slave.token")
typed_code 255 "XN_TOKEN= xn -l"

say "Starting two slaves that dial the hub"
# A slave started as root refuses to run jobs as root unless told to (or given --run-as USER).
slave_flags=()
if [ "$(id -u)" = 0 ]; then
    slave_flags+=(--allow-root-jobs)
fi
for n in 1 2; do
    XN_TOKEN=$slave_token "$exe" slave --hub "$hub" --name "demo-$n" --slots 2 ${slave_flags[@]+"${slave_flags[@]}"} 2>"$tmp/slave-$n.log" &
    pids+=($!)
done
for n in 1 2; do
    wait_for 100 "grep -q 'slave connected slave=demo-$n' '$tmp/hub.log'" ||
        die "slave demo-$n did not connect"
done
grep 'slave connected' "$tmp/hub.log"
typed 'xn --slaves'

say "Submitting jobs (xn prints each job's id)"
submit 'xn -s "uname -a"'
first=$job
submit 'xn -s "ls / | wc -l"'
second=$job
submit 'xn -s "echo oops >&2; exit 3" --no-tty'
failing=$job

say "Waiting for them to finish"
all_ended() { ! xn -l --json | grep -qE '"state": "(queued|assigned|running)"'; }
wait_for 300 all_ended || die "the jobs did not finish within 30 s"
typed 'xn -l'

say "Fetching output: a pty job's output, and a --no-tty job's stderr (kept apart from stdout)"
typed "xn -f $first"
typed "xn -f $second"
typed "xn -f $failing"
xn -l | grep -qE "^ +$failing +exited +3 " || die "job $failing should have exited with code 3"

say "Four jobs at once: the hub spreads them over both slaves (2 slots each)"
for n in 1 2 3 4; do
    submit "xn -s 'sleep 1; echo slow job $n'"
done
wait_for 300 all_ended || die "the jobs did not finish within 30 s"
typed "xn -l | tail -n 4"
for n in 1 2; do
    xn -l | grep "demo-$n" | grep -q "slow job" || die "no slow job ran on demo-$n"
done

say "Running a job and waiting for it: xn exits with the job's exit code"
typed_code 1 "xn -s 'echo running 4 tests; sleep 1; echo \"3 passed, 1 failed\"; exit 1' --wait"

say "Cancelling a running job: SIGTERM to its process group, then SIGKILL after the grace"
submit 'xn -s "echo started; sleep 600"'
sleeper=$job
wait_for 100 "xn -f $sleeper | grep -q started" || die "job $sleeper did not start"
typed "xn -k $sleeper"
typed_code 143 "xn -f $sleeper --follow"

say "xn's own errors exit 255, like ssh's"
typed_code 255 "xn -f 999"

say "All jobs"
typed 'xn -l'

say "The web interface: the same hub serves a page at /, which signs in with a token"
if command -v curl >/dev/null; then
    typed "curl -s $hub/ | grep -o '<title>.*</title>'"
    typed "curl -s -H \"Authorization: Bearer \$XN_TOKEN\" $hub/api/v1/whoami; echo"
else
    echo "(curl is not installed: open $hub/ in a browser instead, with scripts/demo.sh --keep)"
fi

say "Demo finished"
if $keep; then
    printf '\nThe hub and both slaves keep running. Open %s/ in a browser and sign in with\n' "$hub"
    printf 'the admin token %s\n(or run xn with XN_HUB=%s XN_TOKEN=%s).\nCtrl-C stops them.\n' \
        "$XN_TOKEN" "$hub" "$XN_TOKEN"
    trap 'exit 0' INT TERM
    while :; do sleep 3600; done
fi
