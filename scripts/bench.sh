#!/usr/bin/env bash
# Benchmarks execnode against what a user would otherwise use, in one run on this machine, and
# prints a table of medians and ratios (see BENCHMARKS.md for the latest one and the targets).
#
#   scripts/bench.sh            full run (a few minutes)
#   scripts/bench.sh --quick    smaller counts and sizes (about a minute)
#   options: --no-install (use what is installed; skip ssh if sshd is missing)
#            --no-build   (use target/release as it is)
#            --only LIST  (comma-separated: latency,dispatch,submits,stream,echo,idle,restart)
#   env:     BENCH_EXE=PATH (another execnode binary, e.g. to compare old and new builds)
#            BENCH_WORK_DIR=DIR (the slaves' job directories; default: /dev/shm when tmpfs)
# It installs what it needs (Debian's openssh-server and hyperfine), builds execnode in release,
# starts in a temp dir an sshd on a loopback port (throwaway host and user keys, a throwaway
# user `xnbench` with /bin/sh as its shell; ssh multiplexes over a ControlMaster), a hub and two slaves on free loopback
# ports, runs each measurement next to its baseline, and stops everything it started on exit.
# Benchmarks are never assertions: this script reports, it does not fail on slow numbers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
unset XN_HUB XN_LISTEN XN_DATA XN_LOG

quick=0 install=1 build=1 only=all
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1 ;;
    --no-install) install=0 ;;
    --no-build) build=0 ;;
    --only)
        only=$2
        shift
        ;;
    -h | --help)
        sed -n '2,16p' "$0"
        exit 0
        ;;
    *)
        echo "bench: unknown option $1" >&2
        exit 2
        ;;
    esac
    shift
done
want() { [ "$only" = all ] || [[ ",$only," == *",$1,"* ]]; }

if [ $quick = 1 ]; then
    LAT_RUNS=50 DISPATCH_JOBS=2000 SUBMITS=50 STREAM_BYTES=256M STREAM_RUNS=3
    ECHO_N=300 IDLE_SLAVES=2000 RESTART_JOBS=100000 RESTART_RUNS=1
else
    LAT_RUNS=100 DISPATCH_JOBS=10000 SUBMITS=300 STREAM_BYTES=1G STREAM_RUNS=5
    ECHO_N=2000 IDLE_SLAVES=10000 RESTART_JOBS=100000 RESTART_RUNS=3
fi
SLAVE_SLOTS=${BENCH_SLAVE_SLOTS:-2}

log() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'bench: %s\n' "$*" >&2
    exit 1
}

# ---- what we need ---------------------------------------------------------------------------
if [ $install = 1 ]; then
    missing=()
    command -v hyperfine >/dev/null || missing+=(hyperfine)
    [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
    command -v ssh >/dev/null || missing+=(openssh-client)
    command -v python3 >/dev/null || missing+=(python3)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi
command -v python3 >/dev/null || die "python3 is needed"
command -v hyperfine >/dev/null || die "hyperfine is needed (apt-get install hyperfine)"
# Only the latency, stream and echo rows have an ssh baseline: the others start no sshd.
have_ssh=0 need_ssh=0
if want latency || want stream || want echo; then need_ssh=1; fi
if [ $need_ssh = 1 ] && [ -x /usr/sbin/sshd ] && command -v ssh >/dev/null && [ "$(id -u)" = 0 ]; then
    have_ssh=1
fi

if [ $build = 1 ]; then
    log "building execnode (release)"
    cargo build --release --locked --quiet --bin execnode --example idle_slaves
fi
exe=${BENCH_EXE:-$root/target/release/execnode}
idle=$root/target/release/examples/idle_slaves
driver=$root/scripts/bench/driver.py
# shellcheck source=scripts/bench/lib.sh
source "$root/scripts/bench/lib.sh"
[ -x "$exe" ] || die "no $exe: build first"

# ---- the temp dir and everything we start ---------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/execnode-bench.XXXXXX")
mkdir -p "$tmp/bin"
for n in xn xnhub xnslave; do ln -s "$exe" "$tmp/bin/$n"; done
xn=$tmp/bin/xn
pids=()
cleanup() {
    local i pid
    trap - EXIT INT TERM
    [ -n "${ssh_cfg:-}" ] && ssh -F "$ssh_cfg" -O exit bench >/dev/null 2>&1 || true
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        pid=${pids[i]}
        kill -TERM "$pid" 2>/dev/null || continue
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    [ "$made_user" = 1 ] && userdel "$ssh_user" 2>/dev/null || true
    rm -rf "$tmp"
    case ${work_fast:-} in /dev/shm/execnode-bench-*) rm -rf "$work_fast" ;; esac
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Idle connections and fds: one per slave, on both ends.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Where the slaves put job directories (each job gets a fresh one, made and removed around it):
# a tmpfs when there is one, as /tmp is on most current distributions. On ext4 a mkdir and rmdir
# cost a short job about 0.15 ms of CPU; the dispatch row measures that case too.
work_fast=${BENCH_WORK_DIR:-}
if [ -z "$work_fast" ]; then
    work_fast=$tmp/work
    [ -w /dev/shm ] && [ "$(fstype /dev/shm)" = tmpfs ] && work_fast=/dev/shm/execnode-bench-$$
fi
ssh_cfg=
# ssh runs the remote command through the user's login shell; root's here is bash with a
# .bashrc that costs 100+ ms (pyenv), which would flatter us. So ssh logs in as a throwaway
# user whose shell is /bin/sh, as the slaves run `/bin/sh -c -- LINE`; it is removed on exit.
ssh_user=xnbench
made_user=0
start_sshd() {
    local d=$tmp/ssh port
    mkdir -p "$d" /run/sshd "$tmp/ssh-home"
    chmod 755 "$tmp" "$d"
    if ! id "$ssh_user" >/dev/null 2>&1; then
        useradd --system --password "*" --no-create-home --home-dir "$tmp/ssh-home" --shell /bin/sh "$ssh_user"
        made_user=1
    fi
    chown "$ssh_user" "$tmp/ssh-home"
    ssh-keygen -q -t ed25519 -N '' -f "$d/host_key"
    ssh-keygen -q -t ed25519 -N '' -f "$d/user_key"
    cp "$d/user_key.pub" "$d/authorized_keys"
    chmod 644 "$d/authorized_keys"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat >"$d/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $d/host_key
PidFile $d/sshd.pid
AuthorizedKeysFile $d/authorized_keys
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers $ssh_user
UsePAM no
PrintMotd no
PrintLastLog no
EOF
    /usr/sbin/sshd -D -e -f "$d/sshd_config" 2>"$d/sshd.log" &
    pids+=($!)
    cat >"$d/config" <<EOF
Host bench
  HostName 127.0.0.1
  Port $port
  User $ssh_user
  IdentityFile $d/user_key
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
  BatchMode yes
  ControlMaster auto
  ControlPath $d/cm-%C
  ControlPersist 600
EOF
    ssh_cfg=$d/config
    for _ in $(seq 100); do
        ssh -F "$ssh_cfg" bench true 2>/dev/null && return 0
        sleep 0.1
    done
    cat "$d/sshd.log" >&2
    die "sshd on port $port did not let us in"
}

# ---- results --------------------------------------------------------------------------------
results=$tmp/results.tsv
notes=$tmp/notes.txt
: >"$results"
: >"$notes"
# row METRIC OURS BASELINE RATIO TARGET
row() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$results"; }
note() { printf -- '- %s\n' "$*" >>"$notes"; }
pyj() { python3 -c "import json,sys; d=json.load(open('$1')); print($2)"; }
# speed OURS_TIME BASE_TIME: how much faster (or slower) we are, from two times.
speed() { python3 -c "r=$2/$1; print('%.2fx faster' % r if r >= 1 else '%.2fx slower' % (1/r))"; }
median() { python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }

[ $have_ssh = 1 ] && start_sshd
[ $have_ssh = 1 ] || [ $need_ssh = 0 ] || note "ssh baselines skipped: needs root and openssh-server"
ssh_() { ssh -F "$ssh_cfg" bench "$@"; }

start_hub "$tmp/hub"
start_slaves
export XN_HUB=$hub_url XN_TOKEN=$hub_token
log "hub at $hub_url, slaves: 2 x $SLAVE_SLOTS slots, ssh: $([ $have_ssh = 1 ] && echo yes || echo no)"

# 1. submit -> exit of `true`, whole process.
if want latency; then
    log "latency: xn -s true --wait vs sh -c true vs ssh true (hyperfine, $LAT_RUNS runs each)"
    cmds=("$xn -s true --wait" "sh -c true")
    [ $have_ssh = 1 ] && cmds+=("ssh -F $ssh_cfg bench true")
    hyperfine -N --warmup 5 --runs "$LAT_RUNS" --export-json "$tmp/lat.json" "${cmds[@]}" >"$tmp/lat.txt" 2>&1 ||
        die "hyperfine failed: $(cat "$tmp/lat.txt")"
    ms() { pyj "$tmp/lat.json" "'%.2f' % (d['results'][$1]['median']*1000)"; }
    lat_xn=$(ms 0) lat_sh=$(ms 1)
    row "submit->exit \`true\` (median ms)" "$lat_xn" "sh -c: $lat_sh" "$(calc "round($lat_xn/$lat_sh,1)")x sh" "<= 5 ms"
    if [ $have_ssh = 1 ]; then
        lat_ssh=$(ms 2)
        row "  vs ssh ControlMaster \`true\`" "$lat_xn" "ssh: $lat_ssh" "$(speed "$lat_xn" "$lat_ssh")" ">= 20x faster"
        # For scale: what ssh costs without a master connection (key exchange, auth each time).
        hyperfine -N --warmup 2 --runs 20 --export-json "$tmp/lat-ssh.json" \
            "ssh -F $ssh_cfg -o ControlMaster=no -o ControlPath=none bench true" >/dev/null 2>&1
        lat_ssh1=$(pyj "$tmp/lat-ssh.json" "'%.2f' % (d['results'][0]['median']*1000)")
        row "  vs ssh, new connection each time" "$lat_xn" "ssh: $lat_ssh1" "$(speed "$lat_xn" "$lat_ssh1")" "-"
    fi
    p90=$(pyj "$tmp/lat.json" "'%.2f' % (sorted(d['results'][0]['times'])[int(len(d['results'][0]['times'])*0.9)]*1000)")
    xcpu=$(pyj "$tmp/lat.json" "'%.2f' % ((d['results'][0]['user']+d['results'][0]['system'])*1000)")
    note "submit->exit: xn p90 $p90 ms, xn's own CPU $xcpu ms (mean user+sys); hyperfine -N, $LAT_RUNS runs after 5 warm-ups; tty job (the default)"
fi

# 2. dispatch rate: N `true` jobs in one submission, 2 slaves.
if want dispatch; then
    log "dispatch: $DISPATCH_JOBS true jobs vs xargs -P2"
    h0=$(cpu "$hub_pid") s0=$(cpu "${slave_pids[@]}")
    python3 "$driver" dispatch "$hub_url" "$DISPATCH_JOBS" >"$tmp/disp.json"
    disp_hub=$(calc "round(1000*($(cpu "$hub_pid") - $h0)/$DISPATCH_JOBS, 3)")
    disp_slaves=$(calc "round(1000*($(cpu "${slave_pids[@]}") - $s0)/$DISPATCH_JOBS, 3)")
    t0=$(date +%s.%N)
    seq "$DISPATCH_JOBS" | xargs -n1 -P2 sh -c true
    t1=$(date +%s.%N)
    xargs_rate=$(calc "round($DISPATCH_JOBS/($t1-$t0))")
    disp_rate=$(pyj "$tmp/disp.json" "round(d['rate'])")
    row "dispatch $DISPATCH_JOBS \`true\` jobs, 2 slaves (jobs/s)" "$disp_rate" "xargs -P2: $xargs_rate" "$(calc "round(100*$disp_rate/$xargs_rate)")% of local" ">= 2000/s, >= 75%"
    note "dispatch: $(pyj "$tmp/disp.json" "d['method']"); submission took $(pyj "$tmp/disp.json" "'%.2f' % d['submit_seconds']") s; jobs not exited 0: $(pyj "$tmp/disp.json" "d['not_ok']"); slaves have $SLAVE_SLOTS slots each; tty jobs (the default); job directories in $work_fast ($(fstype "$work_fast")); CPU per job: hub $disp_hub ms, slaves $disp_slaves ms (the jobs' own not counted)"
    # The same with the job directories on the disk the temp dir is on.
    work_disk=$tmp/work-disk
    mkdir -p "$work_disk"
    if [ "$(fstype "$work_disk")" != "$(fstype "$work_fast")" ]; then
        stop_slaves
        start_slaves "$work_disk"
        s0=$(cpu "${slave_pids[@]}")
        python3 "$driver" dispatch "$hub_url" "$DISPATCH_JOBS" >"$tmp/disp-disk.json"
        disk_slaves=$(calc "round(1000*($(cpu "${slave_pids[@]}") - $s0)/$DISPATCH_JOBS, 3)")
        disk_rate=$(pyj "$tmp/disp-disk.json" "round(d['rate'])")
        fs=$(fstype "$work_disk")
        row "  job directories on $fs" "$disk_rate" "xargs -P2: $xargs_rate" "$(calc "round(100*$disk_rate/$xargs_rate)")% of local" "-"
        note "dispatch with job directories on $fs ($work_disk): slaves' CPU per job $disk_slaves ms"
        stop_slaves
        start_slaves
    fi
fi

# 3. separate `xn -s` submissions, back to back.
if want submits; then
    log "submissions: $SUBMITS x xn -s true, one after another"
    t0=$(date +%s.%N)
    for _ in $(seq "$SUBMITS"); do "$xn" -s true >/dev/null; done
    t1=$(date +%s.%N)
    sub_rate=$(calc "round($SUBMITS/($t1-$t0))")
    row "separate \`xn -s true\`, back to back (/s)" "$sub_rate" "-" "-" ">= 500/s"
    # Wait for them to run, so they do not disturb what follows.
    for _ in $(seq 600); do
        [ "$(api "/api/v1/jobs?state=queued" | jq length)" = 0 ] && break
        sleep 0.1
    done
fi

# 4. output streamed to the client.
if want stream; then
    bytes=$(numfmt --from=iec "$STREAM_BYTES")
    log "stream: head -c $STREAM_BYTES /dev/zero, $STREAM_RUNS runs each: xn --no-tty --wait | wc -c, local pipe, ssh"
    # time_mbps NAME COMMAND: MB/s (10^6) of one run, appended to the array NAME, and the
    # machine's CPU time during it added to busy_NAME (every process and the kernel's work
    # for them: the cost of the whole pipeline, whoever pays it) and its wall time to
    # wall_NAME. COMMAND's output is checked
    # to be $bytes long unless it prints nothing (dd).
    time_mbps() {
        local -n runs=$1 spent=busy_$1 took=wall_$1
        local t0 t1 b0 b1 n
        b0=$(busy) t0=$(date +%s.%N)
        n=$(bash -c "$2" | wc -c)
        t1=$(date +%s.%N) b1=$(busy)
        [ "$n" = "$bytes" ] || [ "$n" = 0 ] || die "$2: got $n bytes, expected $bytes"
        runs+=("$(calc "round($bytes/1e6/($t1-$t0))")")
        spent=$(calc "$spent + $b1 - $b0")
        took=$(calc "$took + $t1 - $t0")
    }
    xs=() ls=() ss=() ds=() cpu_hub=0 cpu_slaves=0 busy_xs=0 busy_ls=0 busy_ss=0 busy_ds=0 \
        wall_xs=0 wall_ls=0 wall_ss=0 wall_ds=0
    for _ in $(seq "$STREAM_RUNS"); do
        h0=$(cpu "$hub_pid") s0=$(cpu "${slave_pids[@]}")
        time_mbps xs "$xn -s 'head -c $STREAM_BYTES /dev/zero' --no-tty --wait"
        cpu_hub=$(calc "$cpu_hub + $(cpu "$hub_pid") - $h0")
        cpu_slaves=$(calc "$cpu_slaves + $(cpu "${slave_pids[@]}") - $s0")
        # Its log was counted: delete it, so every run starts with the same page cache (on a VM
        # that hands the guest fresh memory slowly, runs got slower as logs piled up).
        find "$tmp/hub/logs" -type f -size +1M -delete
        time_mbps ls "head -c $STREAM_BYTES /dev/zero"
        [ $have_ssh = 1 ] && time_mbps ss "ssh -F $ssh_cfg bench 'head -c $STREAM_BYTES /dev/zero'"
        # The hub stores every byte before it is sent: what the machine takes to write as much
        # into a new file beside the hub's logs (plain buffered writes, without the hub's
        # write-behind) is the ceiling for storing it.
        time_mbps ds "dd if=/dev/zero of='$tmp/hub/dd.tmp' bs=64k count=$((bytes / 65536)) status=none"
        rm -f "$tmp/hub/dd.tmp"
    done
    xm=$(median "${xs[@]}") lm=$(median "${ls[@]}")
    row "stream $STREAM_BYTES to client (MB/s, bytes checked)" "$xm" "local pipe: $lm" "$(calc "round($xm/$lm,3)")x local" ">= 1000 MB/s"
    if [ $have_ssh = 1 ]; then
        sm=$(median "${ss[@]}")
        row "  vs ssh" "$xm" "ssh: $sm" "$(calc "round($xm/$sm,2)")x ssh" ">= 2x ssh"
    fi
    dm=$(median "${ds[@]}")
    row "  vs storing as much (dd into a new file)" "$xm" "dd: $dm" "$(calc "round($xm/$dm,2)")x dd" "-"
    gbs=$(calc "$bytes * $STREAM_RUNS / 1e9")
    note "stream runs (MB/s): xn ${xs[*]}; local ${ls[*]}; ssh ${ss[*]:-}; dd ${ds[*]}; every run's byte count checked (0 lost); CPU per GB streamed: hub $(calc "round($cpu_hub/$gbs,2)") s, slaves $(calc "round($cpu_slaves/$gbs,2)") s"
    # What each pipeline costs the machine per GB, all processes and the kernel together, and
    # so the rate its $(nproc) CPUs could carry if they never waited.
    per_gb() { calc "round(${!1}/$gbs,2)"; }
    # busy_share NAME: how much of the CPUs' time the pipeline kept them working.
    busy_share() { local b=busy_$1 w=wall_$1; calc "round(100 * ${!b} / (${!w} * $(nproc)))"; }
    ceiling=$(calc "round($(nproc) * $gbs * 1000 / $busy_xs)")
    note "machine CPU per GB streamed (every process and the kernel): xn $(per_gb busy_xs) s, local pipe $(per_gb busy_ls) s, $([ $have_ssh = 1 ] && echo "ssh $(per_gb busy_ss) s, ")dd $(per_gb busy_ds) s; at xn's cost $(nproc) CPUs busy all the time would carry $ceiling MB/s; the CPUs were busy $(busy_share xs) % of the time with xn$([ $have_ssh = 1 ] && echo ", $(busy_share ss) % with ssh")"
    # Gigabytes were just written and deleted: let the kernel finish with them (writeback,
    # the journal) before the latency rows that follow, which they would otherwise share the
    # two CPUs with.
    sync
fi

# 5. keystroke echo through an attached pty.
if want echo; then
    log "echo: $ECHO_N single-byte round trips: xn -a, local pty, ssh -tt"
    job='stty raw -echo; echo XN_$((6*7))_GO; exec cat'
    python3 "$driver" echo "$ECHO_N" 50 XN_42_GO '\x1dt' -- "$xn" -s "$job" -a >"$tmp/echo-xn.json"
    python3 "$driver" echo "$ECHO_N" 50 XN_42_GO '' -- sh -c "$job" >"$tmp/echo-local.json"
    e() { pyj "$tmp/echo-$1.json" "'%.0f / %.0f' % (d['p50_us'], d['p99_us'])"; }
    row "keystroke echo, attached pty (p50 / p99 us)" "$(e xn)" "local pty: $(e local)" "+$(calc "round($(pyj "$tmp/echo-xn.json" "d['p50_us']")-$(pyj "$tmp/echo-local.json" "d['p50_us']"))") us p50" "p50 < 1000 us over local"
    if [ $have_ssh = 1 ]; then
        python3 "$driver" echo "$ECHO_N" 50 XN_42_GO '' -- ssh -F "$ssh_cfg" -tt bench "$job" >"$tmp/echo-ssh.json"
        row "  vs ssh -tt" "$(e xn)" "ssh -tt: $(e ssh)" "$(speed "$(pyj "$tmp/echo-xn.json" "d['p50_us']")" "$(pyj "$tmp/echo-ssh.json" "d['p50_us']")") (p50)" "-"
    fi
fi

# 6. idle slaves one hub holds: a fresh hub, no jobs.
if want idle; then
    log "idle slaves: $IDLE_SLAVES connections from one process to a fresh hub"
    main_hub_url=$hub_url main_hub_pid=$hub_pid main_hub_token=$hub_token
    # Every idle slave dials from 127.0.0.1: lift the per-address bound for this hub only.
    start_hub "$tmp/idle-hub" --max-conns-per-addr $((IDLE_SLAVES + 100))
    sleep 0.5
    rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
    before=$(rss "$hub_pid")
    coproc IDLE { XN_TOKEN=$slave_token "$idle" "$hub_url" "$IDLE_SLAVES" 2>"$tmp/idle.err"; }
    idle_pid=$IDLE_PID
    pids+=("$idle_pid")
    read -r -t 300 line <&"${IDLE[0]}" || die "idle_slaves gave no answer: $(cat "$tmp/idle.err")"
    held=$(echo "$line" | awk '{print $2}')
    sleep 1
    after=$(rss "$hub_pid")
    hub_count=$(api /api/v1/slaves | jq length)
    per=$(calc "round(($after-$before)/max(1,$hub_count),1)")
    row "idle slaves held by one hub (count, KiB each)" "$hub_count, $per KiB" "-" "-" "10000 at < 20 KiB"
    note "idle slaves: $line; hub VmRSS $before KiB before, $after KiB after; $(head -c 300 "$tmp/idle.err" | tr '\n' ' ')"
    exec {IDLE[1]}>&-
    wait "$idle_pid" 2>/dev/null || true
    stop_pid "$hub_pid"
    hub_url=$main_hub_url hub_pid=$main_hub_pid hub_token=$main_hub_token
fi

# 7. hub restart with many stored jobs, until it answers `xn -l --all` (every job: what `xn -l`
#    listed before it showed only the newest 50, so that the numbers stay comparable).
main_hub_url=$hub_url main_hub_pid=$hub_pid main_hub_token=$hub_token
if want restart; then
    log "restart: a hub with $RESTART_JOBS stored jobs, until xn -l --all answers ($RESTART_RUNS runs)"
    data=$tmp/restart-hub
    mkdir -p "$data"
    # A first, untimed start makes the database (the hub's own schema) and its tokens; the
    # driver then adds finished jobs to it.
    start_hub "$data"
    stop_pid "$hub_pid"
    python3 "$driver" mkdb "$data/jobs.db" "$RESTART_JOBS" >/dev/null
    hub_pid=$main_hub_pid hub_url=$main_hub_url
    restart_token=$hub_token hub_token=$main_hub_token
    secs=() acc=() rcpu=()
    for _ in $(seq "$RESTART_RUNS"); do
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        t0=$(python3 -c 'import time; print(time.time())')
        XN_LOG=warn "$exe" hub --listen "127.0.0.1:$port" --data "$data" 2>"$data.log" &
        rp=$!
        pids+=("$rp")
        XN_TOKEN=$restart_token python3 "$driver" wait-list "http://127.0.0.1:$port" "$xn" "$t0" "$rp" >"$tmp/restart.json"
        lines=$(pyj "$tmp/restart.json" "d['lines']")
        [ "$lines" -gt "$RESTART_JOBS" ] || die "xn -l --all listed $lines lines, expected $RESTART_JOBS jobs"
        secs+=("$(pyj "$tmp/restart.json" "'%.3f' % d['list_seconds']")")
        acc+=("$(pyj "$tmp/restart.json" "'%.3f' % d['accept_seconds']")")
        rcpu+=("$(pyj "$tmp/restart.json" "'%.2f/%.2f' % (d['hub_cpu_at_accept'], d['hub_cpu_after_list'])")")
        stop_pid "$rp"
    done
    rm -rf "$data"
    row "hub restart, $RESTART_JOBS jobs, until \`xn -l --all\` answers (s)" "$(median "${secs[@]}")" "-" "-" "< 1 s"
    note "restart: jobs written straight into jobs.db (python sqlite3, the schema of src/hub/store.rs), all exited, each with a small output log; runs ${secs[*]} s until xn -l --all printed every job; the hub accepted connections after ${acc[*]} s; hub CPU s at accept / after the list: ${rcpu[*]}"
fi

# ---- the table ------------------------------------------------------------------------------
loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
{
    echo
    echo "execnode $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?') on $(nproc) x $(sed -n 's/^model name\t: //p' /proc/cpuinfo | head -1), kernel $(uname -r), load $loadavg$([ $quick = 1 ] && echo ', --quick')"
    echo
    echo "| metric | execnode | baseline (same run) | ratio | target |"
    echo "| --- | --- | --- | --- | --- |"
    while IFS=$'\t' read -r m o b r t; do
        echo "| $m | $o | $b | $r | $t |"
    done <"$results"
    echo
    cat "$notes"
}
