#!/usr/bin/env python3
"""Measurement drivers for scripts/bench.sh. Standard library only.

Each subcommand prints one JSON object on stdout; bench.sh turns those into the table.

  dispatch HUB N          N `true` jobs submitted at once; time until the last one ended
  echo -- ARGV...         single-byte round trips through a pseudo-terminal running ARGV
  mkdb DB N               writes N finished jobs straight into a hub database (same schema as
                          src/hub/store.rs), for the restart measurement
  wait-list HUB XN        time until `XN -l --all` (run against HUB) succeeds, from now
  posts HUB TOKEN N       N `true` jobs submitted one by one, each over a new connection (as
                          every `xn -s` does); the median time from connect to the answer
  starts N ARG... -- XN...
                          `XN ARG...` run N times for each XN, interleaved, in a new random
                          order each round (fixed seed): drift in the machine's speed, and
                          whatever the run before leaves behind, fall on every build alike;
                          median, quartiles and mean wall time per XN, in ms
"""

import json
import os
import pty
import random
import select
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import http.client
import urllib.parse

JOB = {"command": "true"}


def hub_conn(hub):
    u = urllib.parse.urlparse(hub if "://" in hub else "http://" + hub)
    return http.client.HTTPConnection(u.hostname, u.port or 80, timeout=60)


def call(conn, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if os.environ.get("XN_TOKEN"):
        headers["Authorization"] = "Bearer " + os.environ["XN_TOKEN"]
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    raw = resp.read()
    return resp.status, raw


def max_id(hub):
    c = hub_conn(hub)
    st, raw = call(c, "GET", "/api/v1/jobs")
    jobs = json.loads(raw)
    return max((j["id"] for j in jobs), default=0)


def batch_supported(hub):
    """True when the hub takes an array of jobs in one POST (submits one `true` job to see)."""
    c = hub_conn(hub)
    st, _ = call(c, "POST", "/api/v1/jobs", [JOB])
    return 200 <= st < 300


def dispatch(hub, n, threads=4):
    before = max_id(hub)
    batch = batch_supported(hub)
    # Let the probe job (if any) finish so it is not counted.
    time.sleep(0.3)
    before = max_id(hub)
    method = None
    t0 = time.time()
    if batch:
        c = hub_conn(hub)
        st, raw = call(c, "POST", "/api/v1/jobs", [JOB] * n)
        if 200 <= st < 300:
            method = "batch: one POST /api/v1/jobs with an array of %d" % n
        else:
            # The hub may cap a batch: fall back to chunks of 1000.
            for i in range(0, n, 1000):
                st, raw = call(c, "POST", "/api/v1/jobs", [JOB] * min(1000, n - i))
                if not 200 <= st < 300:
                    raise SystemExit("batch submit failed: %s %s" % (st, raw[:200]))
            method = "batch: POST /api/v1/jobs arrays of 1000"
    else:
        method = "no batch API on this hub: %d keep-alive HTTP connections, one POST per job" % threads
        left = [n]
        lock = threading.Lock()
        errors = []

        def worker():
            c = hub_conn(hub)
            while True:
                with lock:
                    if left[0] == 0:
                        return
                    left[0] -= 1
                st, raw = call(c, "POST", "/api/v1/jobs", JOB)
                if not 200 <= st < 300:
                    errors.append((st, raw[:200]))
                    return

        ts = [threading.Thread(target=worker) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if errors:
            raise SystemExit("submit failed: %r" % errors[0])
    t_submitted = time.time()
    last = before + n
    c = hub_conn(hub)
    # Cheap wait: the newest job's record, then confirm every one of them has ended.
    while True:
        st, raw = call(c, "GET", "/api/v1/jobs/%d" % last)
        if st == 200 and json.loads(raw)["state"] not in ("queued", "assigned", "running"):
            break
        time.sleep(0.05)
    while True:
        st, raw = call(c, "GET", "/api/v1/jobs")
        mine = [j for j in json.loads(raw) if before < j["id"] <= last]
        if len(mine) == n and all(j["ended_ms"] for j in mine):
            break
        time.sleep(0.2)
    end_ms = max(j["ended_ms"] for j in mine)
    bad = sum(1 for j in mine if j["state"] != "exited" or j["exit_code"] != 0)
    secs = end_ms / 1000.0 - t0
    print(json.dumps({
        "jobs": n,
        "seconds": secs,
        "rate": n / secs,
        "submit_seconds": t_submitted - t0,
        "not_ok": bad,
        "method": method,
    }))


def read_until(fd, marker, timeout):
    buf = b""
    deadline = time.monotonic() + timeout
    while marker not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SystemExit("timed out waiting for %r; got %r" % (marker, buf[-200:]))
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                raise SystemExit("pty closed before %r; got %r" % (marker, buf[-200:]))
            if not chunk:
                raise SystemExit("EOF before %r" % marker)
            buf += chunk
    return buf


def drain(fd, quiet=0.2):
    while True:
        r, _, _ = select.select([fd], [], [], quiet)
        if not r:
            return
        try:
            if not os.read(fd, 65536):
                return
        except OSError:
            return


def echo(argv, n, warmup, marker, stop):
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    try:
        read_until(fd, marker.encode(), 30)
        drain(fd)
        samples = []
        for i in range(warmup + n):
            b = bytes([ord("a") + i % 26])
            t0 = time.perf_counter_ns()
            os.write(fd, b)
            got = b""
            while b not in got:
                r, _, _ = select.select([fd], [], [], 5)
                if not r:
                    raise SystemExit("no echo within 5 s (round trip %d)" % i)
                got += os.read(fd, 4096)
            t1 = time.perf_counter_ns()
            if i >= warmup:
                samples.append((t1 - t0) / 1000.0)
        samples.sort()
        q = statistics.quantiles(samples, n=100)
        print(json.dumps({
            "n": len(samples),
            "p50_us": statistics.median(samples),
            "p90_us": q[89],
            "p99_us": q[98],
            "min_us": samples[0],
            "max_us": samples[-1],
        }))
    finally:
        if stop:
            try:
                os.write(fd, stop.encode().decode("unicode_escape").encode("latin-1"))
            except OSError:
                pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                drain(fd, 0.05)
            except OSError:
                pass
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                break
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)


def log_line(i):
    """What job i printed (tty output: CR LF)."""
    return b"job %d\r\n" % i


def mkdb(path, n):
    """Finished jobs, as the hub itself would have stored them (spec JSON as serde writes it).

    The hub made the database (bench.sh starts it once first), so its schema is the hub's own,
    migrations included; this only adds rows."""
    if not os.path.exists(path):
        sys.exit("mkdb: %s does not exist: start the hub once on its data directory first" % path)
    db = sqlite3.connect(path)
    now = int(time.time() * 1000) - n
    rows = []
    for i in range(n):
        cmd = "echo job %d; make -j2 test" % i
        spec = json.dumps({"command": cmd, "tty": True, "rows": 24, "cols": 80},
                          separators=(",", ":"))
        # The hub stores an ended job's output lengths with its end (its log written below).
        rows.append(("exited", cmd, spec, i % 3, None, None, "bench-slave-%d" % (i % 2),
                     now + i, now + i, now + i + 1, "admin", len(log_line(i)), 0))
    db.executemany(
        "INSERT INTO jobs (state, command, spec, exit_code, signal, reason, slave, created_ms,"
        " started_ms, ended_ms, owner, stdout_len, stderr_len)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    # Every job printed something, as real ones do: one small log file each.
    logs = os.path.join(os.path.dirname(path), "logs")
    os.makedirs(logs, exist_ok=True)
    for i in range(n):
        with open(os.path.join(logs, "%d.out" % (i + 1)), "wb") as f:
            f.write(log_line(i))
    print(json.dumps({"jobs": n}))


def cpu_seconds(pid):
    """User + system CPU time a process has used so far: less disturbed by other load on the
    machine than wall time."""
    if not pid:
        return None
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_list(hub, xn, t0, pid=None, timeout=60):
    """Seconds from t0 (time.time()) until the hub accepts a connection and until `xn -l --all`
    succeeds, how many lines it printed, and the hub's CPU time at both points. (--all: every
    stored job, as `xn -l` listed before it showed only the newest 50, so that the rounds in
    BENCHMARKS.md stay comparable; an older xn, BENCH_EXE, has no --all for -l and lists
    every job without it.)"""
    env = dict(os.environ, XN_HUB=hub)
    # While the hub starts (it accepts after about 0.1 s): a few ms, off the measured path.
    helptext = subprocess.run([xn, "--help"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL).stdout
    argv = [xn, "-l", "--all"] if b"--limit" in helptext else [xn, "-l"]
    u = urllib.parse.urlparse(hub)
    first_accept = accept_cpu = None
    deadline = time.time() + timeout
    import socket
    while time.time() < deadline:
        try:
            socket.create_connection((u.hostname, u.port), timeout=1).close()
            first_accept = time.time()
            accept_cpu = cpu_seconds(pid)
            break
        except OSError:
            time.sleep(0.002)
    while time.time() < deadline:
        p = subprocess.run(argv, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL)
        if p.returncode == 0:
            done = time.time()
            print(json.dumps({
                "accept_seconds": (first_accept or done) - t0,
                "list_seconds": done - t0,
                "lines": p.stdout.count(b"\n"),
                "hub_cpu_at_accept": accept_cpu,
                "hub_cpu_after_list": cpu_seconds(pid),
            }))
            return
        time.sleep(0.005)
    raise SystemExit("hub did not answer xn -l --all within %d s" % timeout)


def posts(hub, token, n):
    u = urllib.parse.urlparse(hub)
    body = json.dumps({"command": "true"}).encode()
    head = (
        "POST /api/v1/jobs HTTP/1.1\r\nhost: %s\r\nauthorization: Bearer %s\r\n"
        "content-type: application/json\r\ncontent-length: %d\r\n\r\n" % (u.netloc, token, len(body))
    ).encode()
    times, codes = [], {}
    for _ in range(n):
        t0 = time.perf_counter()
        with socket.create_connection((u.hostname, u.port)) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(head + body)
            answer = s.recv(65536)
        times.append(time.perf_counter() - t0)
        code = answer[9:12].decode(errors="replace")
        codes[code] = codes.get(code, 0) + 1
    print(json.dumps({"median_ms": round(statistics.median(times) * 1000, 3), "codes": codes}))


def starts(n, args, xns):
    times = {x: [] for x in xns}
    rng, order = random.Random(7), list(xns)
    with open(os.devnull, "wb") as null:
        for _ in range(n):
            rng.shuffle(order)
            for x in order:
                t0 = time.perf_counter()
                subprocess.run([x] + args, stdout=null, check=True)
                times[x].append(time.perf_counter() - t0)
    out = {}
    for x, t in times.items():
        q = statistics.quantiles(t, n=4)
        out[x] = {"median_ms": round(statistics.median(t) * 1000, 3), "p25_ms": round(q[0] * 1000, 3),
                  "p75_ms": round(q[2] * 1000, 3), "mean_ms": round(statistics.mean(t) * 1000, 3)}
    print(json.dumps(out))


def main():
    a = sys.argv[1:]
    if not a:
        raise SystemExit(__doc__)
    cmd = a[0]
    if cmd == "dispatch":
        global JOB
        if len(a) > 3 and a[3] == "no-tty":
            JOB = {"command": "true", "tty": False}
        dispatch(a[1], int(a[2]))
    elif cmd == "echo":
        # echo N WARMUP MARKER STOP -- ARGV...
        sep = a.index("--")
        n, warmup, marker, stop = int(a[1]), int(a[2]), a[3], a[4]
        echo(a[sep + 1:], n, warmup, marker, stop)
    elif cmd == "mkdb":
        mkdb(a[1], int(a[2]))
    elif cmd == "posts":
        posts(a[1], a[2], int(a[3]))
    elif cmd == "starts":
        sep = a.index("--")
        starts(int(a[1]), a[2:sep], a[sep + 1:])
    elif cmd == "wait-list":
        wait_list(a[1], a[2], float(a[3]), int(a[4]) if len(a) > 4 else None)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
