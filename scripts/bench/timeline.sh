#!/usr/bin/env bash
# Where the time of one `xn -s true --wait` goes: kernel tracepoints (exec, fork, exit, the
# socket and log syscalls) recorded system-wide with `perf` while xn runs a few jobs, printed as
# one timeline per run, in ms from xn's exec. Tracepoints cost about a microsecond each, so
# unlike strace this hardly moves the times it shows.
#
#   scripts/bench/timeline.sh [RUNS]     needs root (perf -a), XN_HUB and XN_TOKEN set, a
#                                        slave connected, and `xn` on PATH (or XN=path/to/xn)
set -euo pipefail
runs=${1:-5}
xn=${XN:-xn}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
command -v perf >/dev/null || { echo "timeline.sh: needs perf (Debian: linux-perf)" >&2; exit 1; }
"$xn" -s true --wait # warm the page cache and the connections
events=sched:sched_process_exec,sched:sched_process_exit,sched:sched_process_fork
for s in sendto writev connect pwrite64 mkdir rmdir clone3 pidfd_open; do
    events+=",syscalls:sys_enter_$s"
done
events+=",syscalls:sys_exit_recvfrom,syscalls:sys_exit_wait4"
perf record -q -a -o "$out/perf.data" -e "$events" -- \
    sh -c "for i in \$(seq $runs); do '$xn' -s true --wait; sleep 0.05; done" >/dev/null
perf script -i "$out/perf.data" -F comm,pid,tid,time,event,trace 2>/dev/null >"$out/events.txt"
python3 - "$out/events.txt" <<'PY'
import re, sys
lines = [l for l in open(sys.argv[1]).read().splitlines() if not re.match(r"\s*(perf|sleep|seq)\b", l)]
stamp = re.compile(r"(\d+\.\d+):")
starts = [i for i, l in enumerate(lines) if "sched_process_exec" in l and re.search(r"filename=\S*xn ", l)]
for n, i in enumerate(starts, 1):
    t0 = float(stamp.search(lines[i]).group(1))
    print(f"--- run {n}")
    for l in lines[i:]:
        m = stamp.search(l)
        t = float(m.group(1))
        who = l[: m.start()].split()
        what = l[m.end():].strip()
        print(f"{(t - t0) * 1000:8.3f} ms  {' '.join(who)[:28]:28}  {what[:110]}")
        if "sched_process_exit" in l and re.search(r"comm=xn ", l):
            break
PY
