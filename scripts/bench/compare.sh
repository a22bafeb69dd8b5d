#!/usr/bin/env bash
# Builds of execnode side by side: the runs alternate between them, each with a fresh hub (and
# slaves) in a temp dir, and print what the issue-7 commit messages quote: counts (context
# switches, syscalls, CPU time), which move far less from run to run on a VM than wall times.
#
#   scripts/bench/compare.sh [--rounds N] WHAT EXE...     (N defaults to 3)
#
#   WHAT  posts    1000 `true` jobs POSTed one by one, each over a new connection as `xn -s`
#                  makes, no slave: the hub's context switches and task-clock, median answer
#         submits  300 `xn -s true` one after another in a shell loop, 2 slaves running them
#         starts   what one `xn` process costs: 400 x N runs per build of `xn -s true` (to one
#                  hub of the first build, no slave) and of `xn --version`, the builds
#                  interleaved run by run in a random order; median and quartiles of the wall time
#         dispatch 5000 `true` jobs in one POST, 2 slaves of 2 slots: jobs/s, and the hub's and
#                  the slaves' own CPU per job (the jobs' not counted)
#         stream   1 GiB to `xn --no-tty --wait | wc -c` (bytes checked): MB/s, hub and slave
#                  CPU (their own, not the job's), the whole machine's CPU (every process and
#                  the kernel: what the pipeline costs), the hub's context switches (all
#                  threads living at the end), the slave's wait4/epoll_wait/writev calls; at
#                  the end, each build's median MB/s and machine CPU
#
# Example: cp target/release/execnode /tmp/old; (change, build); scripts/bench/compare.sh
# stream /tmp/old target/release/execnode. Needs perf (Debian: linux-perf) and python3.
set -euo pipefail
rounds=3
if [ "${1:-}" = --rounds ]; then rounds=$2; shift 2; fi
what=${1:?usage: compare.sh [--rounds N] posts|submits|starts|dispatch|stream EXE...}
shift
[ $# -ge 1 ] || { echo "compare.sh: name at least one execnode binary" >&2; exit 2; }
command -v perf >/dev/null || { echo "compare.sh: needs perf (Debian: linux-perf)" >&2; exit 1; }
command -v jq >/dev/null || { echo "compare.sh: needs jq" >&2; exit 1; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
driver=$here/driver.py
die() {
    printf 'compare.sh: %s\n' "$*" >&2
    exit 1
}
# shellcheck source=scripts/bench/lib.sh
source "$here/lib.sh"
tmp=$(mktemp -d)
work_fast=$tmp/work
[ -w /dev/shm ] && [ "$(fstype /dev/shm)" = tmpfs ] && work_fast=$(mktemp -d /dev/shm/xn-compare.XXXXXX)
SLAVE_SLOTS=2
pids=()
stop_all() {
    local p
    for p in "${pids[@]}"; do stop_pid "$p"; done
    pids=()
}
trap 'stop_all; rm -rf "$tmp" "$work_fast"' EXIT

# start EXE SLAVES: a fresh hub with SLAVES slaves; XN_HUB and XN_TOKEN point at it.
start() {
    exe=$(realpath "$1")
    ln -sf "$exe" "$tmp/xn"
    rm -rf "$tmp/hub" "$work_fast"
    start_hub "$tmp/hub"
    export XN_HUB=$hub_url XN_TOKEN=$hub_token
    SLAVES=$2 start_slaves
}
# cpu_ms PID...: their own user+system time, in whole ms.
cpu_ms() { calc "round(1000 * $(cpu "$@"))"; }
# switches PID: context switches of all its threads so far (voluntary and not).
switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {n += $2} END {print n}'; }

if [ "$what" = starts ]; then
    start "$1" 0
    xns=() exes=("$@")
    for exe in "$@"; do
        mkdir -p "$tmp/${#xns[@]}"
        ln -sf "$(realpath "$exe")" "$tmp/${#xns[@]}/xn"
        xns+=("$tmp/${#xns[@]}/xn")
    done
    for args in "-s true" "--version"; do
        # shellcheck disable=SC2086 # the arguments are meant to split
        python3 "$driver" starts $((400 * rounds)) $args -- "${xns[@]}" >"$tmp/res"
        for i in "${!xns[@]}"; do
            jq -r --arg x "${xns[$i]}" --arg exe "${exes[$i]}" --arg args "$args" \
                '.[$x] | "\($exe): xn \($args) median \(.median_ms) ms (quartiles \(.p25_ms)-\(.p75_ms))"' "$tmp/res"
        done
    done
    exit 0
fi

for round in $(seq "$rounds"); do
    for build in "$@"; do
        name="round $round, $build"
        case $what in
        posts)
            start "$build" 0
            # perf counts the hub (-p) for as long as the command after `--` runs.
            perf stat -x, -e context-switches,task-clock -p "$hub_pid" -o "$tmp/stat" -- \
                python3 "$driver" posts "$XN_HUB" "$XN_TOKEN" 1000 >"$tmp/res"
            res=$(cat "$tmp/res")
            cs=$(awk -F, '$3 == "context-switches" {print $1}' "$tmp/stat")
            tc=$(awk -F, '$3 == "task-clock" {printf "%.0f", $1}' "$tmp/stat")
            echo "$name: hub context switches $cs, task-clock $tc ms; $res"
            ;;
        submits)
            start "$build" 2
            t0=$(date +%s.%N)
            for _ in $(seq 300); do "$tmp/xn" -s true >/dev/null; done
            t1=$(date +%s.%N)
            echo "$name: $(python3 -c "print(round(300 / ($t1 - $t0)))") submissions/s"
            ;;
        dispatch)
            start "$build" 2
            h0=$(cpu_ms "$hub_pid") s0=$(cpu_ms "${slave_pids[@]}")
            python3 "$driver" dispatch "$XN_HUB" 5000 >"$tmp/res"
            h1=$(cpu_ms "$hub_pid") s1=$(cpu_ms "${slave_pids[@]}")
            echo "$name: $(jq -r '"\(.rate | round) jobs/s, not exited 0: \(.not_ok)"' "$tmp/res"); CPU us per job hub $(((h1 - h0) / 5)), slaves $(((s1 - s0) / 5))"
            ;;
        stream)
            start "$build" 1
            events=syscalls:sys_enter_wait4,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_writev
            h0=$(cpu_ms "$hub_pid") s0=$(cpu_ms "${slave_pids[@]}") c0=$(switches "$hub_pid")
            t0=$(date +%s.%N) b0=$(busy)
            perf stat -x, -e "$events" -p "${slave_pids[0]}" -o "$tmp/stat" -- \
                sh -c "'$tmp/xn' -s 'head -c 1G /dev/zero' --no-tty --wait | wc -c" >"$tmp/res"
            t1=$(date +%s.%N) b1=$(busy)
            h1=$(cpu_ms "$hub_pid") s1=$(cpu_ms "${slave_pids[@]}") c1=$(switches "$hub_pid")
            n=$(cat "$tmp/res")
            [ "$n" = 1073741824 ] || { echo "compare.sh: got $n bytes, expected 1073741824" >&2; exit 1; }
            calls=$(awk -F, '$3 ~ /sys_enter_/ {sub("syscalls:sys_enter_", "", $3); printf "%s %s, ", $3, $1}' "$tmp/stat")
            mbs=$(calc "round($n / 1e6 / ($t1 - $t0))") machine=$(calc "round(1000 * ($b1 - $b0))")
            # For the medians at the end: "EXE MB/s machine-ms" per run.
            echo "$build $mbs $machine" >>"$tmp/runs"
            echo "$name: $mbs MB/s; CPU ms hub $((h1 - h0)), slave $((s1 - s0)), machine $machine; hub context switches $((c1 - c0)); slave calls: ${calls%, }"
            ;;
        *)
            echo "compare.sh: WHAT is posts, submits, starts, dispatch or stream, not $what" >&2
            exit 2
            ;;
        esac
        stop_all
    done
done
if [ "$what" = stream ]; then
    # Medians per build: one run moves by a quarter from the next on a VM; the machine's CPU
    # (every process and the kernel, from /proc/stat) moves less than MB/s.
    for build in "$@"; do
        awk -v build="$build" '$1 == build {print $2, $3}' "$tmp/runs" | python3 -c '
import statistics, sys
runs = [tuple(map(int, l.split())) for l in sys.stdin]
print("%s: median %d MB/s, machine CPU %d ms per GiB (%d runs)" % (sys.argv[1],
      statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs), len(runs)))' "$build"
    done
fi
