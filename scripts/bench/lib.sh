# Shell helpers shared by scripts/bench.sh and scripts/bench/compare.sh: start and stop a hub and
# its slaves on loopback. Sourced, not run. The caller sets `exe` (the execnode binary), `tmp` (a
# temp dir), `pids=()` (everything started goes there, for the caller's cleanup), `SLAVE_SLOTS`
# and `work_fast` (where slaves put job directories), and defines `die MESSAGE`.

fstype() { { findmnt -n -o FSTYPE -T "$1" 2>/dev/null || stat -f -c %T "$1"; } | head -1; }
calc() { python3 -c "print($1)"; }
# cpu PID...: user + system CPU seconds the processes have used so far (robust to load).
cpu() { local p t=0; for p in "$@"; do t=$(calc "$t + $(awk '{print ($14+$15)}' "/proc/$p/stat") / $(getconf CLK_TCK)"); done; echo "$t"; }
# busy: CPU seconds the whole machine has spent working so far (user, system, interrupts; not
# idle, I/O wait or time the hypervisor took): what a pipeline of processes costs in all.
busy() { awk -v clk="$(getconf CLK_TCK)" '/^cpu /{printf "%.2f\n", ($2+$3+$4+$7+$8)/clk; exit}' /proc/stat; }
# api PATH: a GET on the current hub, as its admin.
api() { curl -fsS -H "Authorization: Bearer $hub_token" "$hub_url$1"; }

# Starts a hub on a free port with data in $1 (more hub flags may follow); sets hub_pid, hub_url, hub_token (admin) and
# slave_token.
start_hub() {
    local data=$1 logf=$1.log
    mkdir -p "$data"
    XN_LOG=warn,execnode=info "$exe" hub --listen 127.0.0.1:0 --data "$data" "${@:2}" 2>"$logf" &
    hub_pid=$!
    pids+=("$hub_pid")
    for _ in $(seq 1500); do
        hub_url=$(sed -n 's/.*hub listening on \(http:[^ ]*\).*/\1/p' "$logf" | head -1)
        # Its first start on a data directory writes an admin and a slave token there.
        if [ -n "$hub_url" ] && [ -s "$data/admin.token" ] && [ -s "$data/slave.token" ]; then
            hub_token=$(cat "$data/admin.token") slave_token=$(cat "$data/slave.token")
            return 0
        fi
        kill -0 "$hub_pid" 2>/dev/null || die "hub exited: $(cat "$logf")"
        sleep 0.02
    done
    die "hub did not start: $(cat "$logf")"
}
stop_pid() {
    kill -TERM "$1" 2>/dev/null || return 0
    for _ in $(seq 100); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.05
    done
    kill -KILL "$1" 2>/dev/null || true
}
slave_pids=()
# start_slaves [WORK_DIR]: $SLAVES slaves (2 unless set) whose job directories go under WORK_DIR.
start_slaves() {
    local i root_ok=() work=${1:-$work_fast}
    # Root slaves refuse to run jobs as root unless told to (see SECURITY.md).
    [ "$(id -u)" = 0 ] && root_ok=(--allow-root-jobs)
    slave_pids=()
    for i in $(seq "${SLAVES:-2}"); do
        XN_LOG=warn XN_TOKEN="$slave_token" "$exe" slave --hub "$hub_url" --name "bench-$i" --slots "$SLAVE_SLOTS" "${root_ok[@]}" \
            --work-dir "$work/slave-$i" 2>"$tmp/slave-$i.log" &
        pids+=($!)
        slave_pids+=($!)
    done
    for _ in $(seq 200); do
        [ "$(api /api/v1/slaves | jq length)" = "${SLAVES:-2}" ] && return 0
        sleep 0.05
    done
    die "slaves did not connect"
}
stop_slaves() {
    local p
    for p in "${slave_pids[@]}"; do stop_pid "$p"; done
    for _ in $(seq 200); do
        [ "$(api /api/v1/slaves | jq length)" = 0 ] && return 0
        sleep 0.05
    done
    die "slaves did not disconnect"
}

