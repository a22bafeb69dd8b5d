#!/usr/bin/env python3
"""Fault-injection soak for execnode; run it through scripts/soak.sh, which says what it is for.

Four threads do the work while faults are on: a submitter keeps about LIVE_JOBS jobs going,
a fault injector hurts the hub or a slave every few seconds, a watcher lists the jobs every
second or so and remembers the most output it saw for each attempt, and an attacher types into
interactive tty jobs through `xn -a` in a real pseudo-terminal, detaching, killing xn and
coming back (scripts/soak_attach.py, whose docstring says what it does and checks).
Everything runs under one temporary directory (the hub's --data, the slaves' --work-dirs,
every log); nothing is written anywhere else.

Every job's command starts by appending `KEY $PWD` to the shared file `markers`: KEY (SOAK-N,
or ATT-N for the attacher's) names the submission, and $PWD, the job's directory
`work-SLAVE/jobs/ID`, the slave and the job. What the job then prints is fixed by its key, so
the expected output is known in advance.

The checks (in soak_check.py), after the faults stop and every job has ended:

- every job is in a terminal state, and every id (or group) `xn -s` printed is a job (or group)
  the hub still has, with the command it was given: an acknowledged job is never lost;
- a job that ended as its command does (exit 0; exit 3 for the `fail` kind) has exactly its
  expected stdout and stderr; every other attempt's output is a prefix of it;
- the output the hub has for each attempt is at least as long as the longest the watcher saw
  while faults were on: no byte the hub showed is gone after a crash;
- no job wrote more markers than it had attempts (it ran twice); the one documented exception
  is counted, not flagged (see `explain_double_run`);
- a job that ended otherwise (lost, cancelled, failed, signaled, another exit code) is
  explained by a fault in its lifetime (see `explain_end`);
- a follower (`xn -f ID --follow`, started for some jobs as they are submitted, and reconnecting
  by itself through the hub's crashes) of a job that ran once, to its end, without ever being
  seen `lost`, printed exactly the job's output and exited with its code;
- an interactive job (key ATT-N) passes the attacher's checks instead of the output checks
  above (scripts/soak_attach_check.py): its output is what the lines it read make it, every
  answer an xn showed is stored, nothing typed is repeated, reordered or dropped unsaid, and
  every xn -a left as it should, in bounded time;
- no hub or slave log, and no xn's stderr, has a panic.
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from soak_attach import Attacher
from soak_check import FINAL_WAIT, TERMINAL, Checks

SLAVES = ["s1", "s2", "s3"]
SLOTS = 3
LIVE_JOBS = 14
SLAVE_TIMEOUT = 10
CRASH_HOLD = 10
HUB_FLAGS = ["--slave-timeout", str(SLAVE_TIMEOUT), "--crash-hold", str(CRASH_HOLD),
             "--cancel-grace", "2"]
SLAVE_FLAGS = ["--slots", str(SLOTS), "--drain-timeout", "3", "--stop-grace", "1"]
if os.geteuid() == 0:
    # A slave running as root refuses to run jobs unless told to; these are our own.
    SLAVE_FLAGS.append("--allow-root-jobs")
def now_ms():
    return int(time.time() * 1000)


def log(msg):
    print(f"soak {time.strftime('%H:%M:%S')} {msg}", flush=True)


class Job:
    """One submission: what it runs and what it must print."""

    def __init__(self, key, kind, tty, rng):
        self.key = key
        self.kind = kind
        self.tty = tty
        self.flags = [] if tty else ["--no-tty"]
        self.broadcast = kind == "hello"
        if kind == "seq":
            self.n = rng.choice([1000, 50000, 200000])
            self.body = f"seq 1 {self.n}"
        elif kind == "rand":
            self.size = rng.choice([1 << 20, 5 << 20])
            self.seed = rng.randrange(1 << 30)
            self.body = (f"python3 -c 'import random,sys; sys.stdout.buffer.write("
                         f"random.Random({self.seed}).randbytes({self.size}))'; "
                         f"echo 'err {key}' >&2")
        elif kind == "drip":
            self.n = rng.choice([50, 150, 300])
            self.body = (f'i=0; while [ $i -lt {self.n} ]; do i=$((i+1)); echo "line $i"; '
                         f"sleep 0.05; done")
        elif kind == "sleep":
            self.secs = rng.choice([0.2, 0.2, 1, 3, 10, 25, 40])
            self.body = f"sleep {self.secs}; echo 'ok {key}'"
        elif kind == "fail":
            self.body = f"echo 'out {key}'; exit 3"
            if rng.random() < 0.5:
                self.flags += ["--retries", "2", "--retries-on-failure"]
        elif kind == "hello":
            self.body = f"echo 'hello {key}'"
            self.flags += ["--all"]
        if kind not in ("fail", "hello") and rng.random() < 0.3:
            self.flags += ["--retries", "2"]
        self.want_code = 3 if kind == "fail" else 0

    def line(self, markers):
        return f'echo "{self.key} $PWD" >> {markers}; {self.body}'

    def expected(self):
        """(stdout, stderr) of a run to its end; a tty job's terminal gives one stream, \\r\\n."""
        err = b""
        if self.kind == "seq":
            out = "".join(f"{i}\n" for i in range(1, self.n + 1)).encode()
        elif self.kind == "rand":
            out = random.Random(self.seed).randbytes(self.size)
            err = f"err {self.key}\n".encode()
        elif self.kind == "drip":
            out = "".join(f"line {i}\n" for i in range(1, self.n + 1)).encode()
        elif self.kind == "sleep":
            out = f"ok {self.key}\n".encode()
        elif self.kind == "fail":
            out = f"out {self.key}\n".encode()
        else:
            out = f"hello {self.key}\n".encode()
        if self.tty:
            out = out.replace(b"\n", b"\r\n")
        return out, err


class Soak(Checks):
    slave_names = SLAVES
    crash_hold = CRASH_HOLD

    def __init__(self, args):
        self.exe = os.path.abspath(args.exe)
        self.minutes = args.minutes
        self.keep = args.keep
        self.seed = args.seed if args.seed is not None else random.randrange(1 << 32)
        self.rng = random.Random(self.seed)
        self.dir = tempfile.mkdtemp(prefix="execnode-soak-")
        self.data = os.path.join(self.dir, "data")
        self.markers = os.path.join(self.dir, "markers")
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.hub = None
        self.addr = None
        self.token = None
        self.slaves = {}  # name -> Popen
        self.busy = set()  # slaves a fault is working on, or the hub ("hub")
        self.events = []  # (ms, what, target, ms it ended): the faults, for explanations
        self.jobs = {}  # key -> Job
        self.submitted = {}  # id or group -> key, as `xn -s` printed them
        self.unanswered = 0  # submissions xn could not confirm (the hub went away)
        self.cancels = {}  # id -> ms the hub accepted our cancel
        self.seen = {}  # (id, attempt) -> (stdout_len, stderr_len), the most the watcher saw
        self.live = 0
        self.live_ids = []
        self.helpers = []  # fault threads still running (a slave's restart, a SIGCONT)
        self.followers = {}  # id -> Popen of `xn -f ID --follow`
        self.ever_lost = set()  # ids the watcher saw `lost` at some time
        self.bad = []  # violations seen while faults were on
        self.attacher = Attacher(self)

    # --- processes ---------------------------------------------------------------------------

    def env(self):
        env = dict(os.environ, XN_LOG="info")
        if self.addr:
            env["XN_HUB"] = f"http://{self.addr}"
        if self.token:
            env["XN_TOKEN"] = self.token
        return env

    def start_hub(self):
        """Starts the hub on its port (a free one the first time) and waits until it listens."""
        path = os.path.join(self.dir, "hub.log")
        deadline = time.time() + 60
        while True:
            with open(path, "ab") as f:
                f.write(f"=== soak: hub started at {now_ms()}\n".encode())
                start = f.tell()
                self.hub = subprocess.Popen(
                    [self.exe, "hub", "--listen", self.addr or "127.0.0.1:0", "--data", self.data,
                     *HUB_FLAGS], stdin=subprocess.DEVNULL, stdout=f, stderr=f, env=self.env())
            while True:
                with open(path, "rb") as f:
                    f.seek(start)
                    text = f.read().decode(errors="replace")
                m = re.search(r"hub listening on http://(\S+)", text)
                if m:
                    self.addr = m.group(1)
                    if self.token is None:
                        with open(os.path.join(self.data, "admin.token")) as t:
                            self.token = t.read().strip()
                    return
                if self.hub.poll() is not None:
                    break
                if time.time() > deadline:
                    raise SystemExit("soak: the hub did not start; see hub.log")
                time.sleep(0.05)
            # The port was free for a moment and something else may have had it: try again.
            if "in use" not in text or time.time() > deadline:
                raise SystemExit(f"soak: the hub did not start: {text.strip()[-500:]}")
            time.sleep(0.2)

    def start_slave(self, name):
        # One slave keeps little unacknowledged output (the least it may: 64 KiB), so that its
        # jobs wait for the hub while it is slow and drop output (with a marker) while it is
        # away; those outputs are checked up to the marker's place only.
        small = ["--output-buffer", "65536"] if name == SLAVES[-1] else []
        with open(os.path.join(self.dir, f"slave-{name}.log"), "ab") as f:
            f.write(f"=== soak: slave started at {now_ms()}\n".encode())
            self.slaves[name] = subprocess.Popen(
                [self.exe, "slave", "--hub", f"http://{self.addr}", "--name", name,
                 "--token-file", os.path.join(self.data, "slave.token"),
                 "--work-dir", os.path.join(self.dir, f"work-{name}"), *SLAVE_FLAGS, *small],
                stdin=subprocess.DEVNULL, stdout=f, stderr=f, env=self.env())

    def xn(self, *args, timeout=120):
        try:
            return subprocess.run([self.exe, "xn", *args], capture_output=True, env=self.env(),
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(args, 254, b"", b"xn timed out")

    def list_jobs(self):
        r = self.xn("-l", "--json", "--all")
        if r.returncode != 0:
            return None
        return json.loads(r.stdout)

    # --- submitting --------------------------------------------------------------------------

    def submitter(self):
        kinds = ["seq"] * 3 + ["rand"] * 2 + ["drip"] * 3 + ["sleep"] * 5 + ["fail"] * 2 + ["hello"]
        n = 0
        while not self.stop.is_set():
            if self.live >= LIVE_JOBS:
                self.stop.wait(0.5)
                continue
            n += 1
            with self.lock:
                kind = self.rng.choice(kinds)
                tty = kind != "rand" and self.rng.random() < 0.5
                job = Job(f"SOAK-{n}", kind, tty, self.rng)
                self.jobs[job.key] = job
            r = self.xn("-s", job.line(self.markers), *job.flags)
            answer = r.stdout.decode().strip()
            with self.lock:
                if r.returncode == 0 and re.fullmatch(r"g?\d+", answer):
                    self.submitted[answer] = job.key
                    self.live += 1
                    if not job.broadcast and self.rng.random() < 0.25:
                        self.follow(answer)
                else:
                    # The hub was away, or went away before it answered: the job may or may
                    # not be stored. The checks find it by its key if it is.
                    self.unanswered += 1
            self.stop.wait(self.rng.uniform(0.05, 0.4))

    def follow(self, job_id):
        base = os.path.join(self.dir, "follow", job_id)
        os.makedirs(os.path.dirname(base), exist_ok=True)
        with open(base + ".out", "wb") as out, open(base + ".err", "wb") as err:
            self.followers[int(job_id)] = subprocess.Popen(
                [self.exe, "xn", "-f", job_id, "--follow"], stdin=subprocess.DEVNULL,
                stdout=out, stderr=err, env=self.env())

    # --- watching ----------------------------------------------------------------------------

    def watcher(self):
        while not self.stop.is_set():
            self.observe(self.list_jobs())
            with self.lock:
                for name, p in self.slaves.items():
                    if name not in self.busy and p.poll() is not None:
                        self.bad.append(f"slave {name} exited by itself (exit {p.returncode}); "
                                        f"see slave-{name}.log")
                        self.busy.add(name)  # reported once; no fault touches it again
            self.stop.wait(1.0)

    def wait_slaves(self):
        """Waits until every slave is connected, so that a slave that cannot start fails the
        soak at once."""
        deadline = time.time() + 30
        while time.time() < deadline:
            r = self.xn("--slaves", "--json")
            if r.returncode == 0 and len(json.loads(r.stdout)) == len(SLAVES):
                return
            time.sleep(0.2)
        raise SystemExit(f"soak: the slaves did not all connect; see {self.dir}/slave-*.log")

    def observe(self, records):
        if records is None:
            return
        with self.lock:
            self.live_ids = [str(r["id"]) for r in records if r["state"] not in TERMINAL]
            self.live = len(self.live_ids)
            for r in records:
                if r["state"] == "lost":
                    self.ever_lost.add(r["id"])
                for a in [r] + r.get("attempts", []):
                    k = (r["id"], a.get("attempt", 1))
                    old = self.seen.get(k, (0, 0))
                    self.seen[k] = (max(old[0], a["stdout_len"]), max(old[1], a["stderr_len"]))

    # --- faults ------------------------------------------------------------------------------

    def event(self, what, target, start, end=None):
        with self.lock:
            self.events.append((start, what, target, end if end is not None else now_ms()))

    def injector(self):
        faults = [self.kill_hub] * 2 + [self.kill_hub_twice] + [self.kill_slave] * 2 \
            + [self.term_slave] \
            + [self.stop_slave] * 3 + [self.cancel_job] * 4
        while not self.stop.wait(self.rng.uniform(1.5, 6)):
            with self.lock:
                fault = self.rng.choice(faults)
            fault()

    def free_slave(self):
        with self.lock:
            free = [s for s in SLAVES if s not in self.busy]
            if not free:
                return None
            name = self.rng.choice(free)
            self.busy.add(name)
            return name

    def helper(self, fn):
        t = threading.Thread(target=fn)
        t.start()
        self.helpers.append(t)

    def kill_hub(self):
        with self.lock:
            delay = self.rng.uniform(0, 3)
        start = now_ms()
        log(f"fault: kill -9 the hub, restart in {delay:.1f}s")
        self.hub.kill()
        self.hub.wait()
        time.sleep(delay)
        self.start_hub()
        self.event("hub killed", "hub", start)

    def kill_hub_twice(self):
        """A crash, and another one while the slaves dial the restarted hub and it holds its
        queue (--crash-hold): assignments of the second hub may be lost as well."""
        self.kill_hub()
        with self.lock:
            gap = self.rng.uniform(0.1, 2)
        time.sleep(gap)
        self.kill_hub()

    def kill_slave(self):
        name = self.free_slave()
        if name is None:
            return
        with self.lock:
            delay = self.rng.uniform(0, 4)
        start = now_ms()
        log(f"fault: kill -9 slave {name}, restart in {delay:.1f}s")
        self.slaves[name].kill()
        self.slaves[name].wait()

        def restart():
            time.sleep(delay)
            self.start_slave(name)
            self.event("slave killed", name, start)
            self.busy.discard(name)
        self.helper(restart)

    def term_slave(self):
        name = self.free_slave()
        if name is None:
            return
        start = now_ms()
        log(f"fault: SIGTERM slave {name}, restart when it has drained")
        self.slaves[name].terminate()

        def restart():
            try:
                self.slaves[name].wait(timeout=60)
            except subprocess.TimeoutExpired:
                log(f"slave {name} did not stop within 60s of SIGTERM; killing it")
                self.slaves[name].kill()
                self.slaves[name].wait()
            self.start_slave(name)
            self.event("slave stopped (SIGTERM)", name, start)
            self.busy.discard(name)
        self.helper(restart)

    def stop_slave(self):
        name = self.free_slave()
        if name is None:
            return
        with self.lock:
            # Mostly a pause, sometimes longer than --slave-timeout: its jobs become lost and
            # are taken back when it goes on.
            secs = self.rng.uniform(1, 5) if self.rng.random() < 0.7 \
                else self.rng.uniform(SLAVE_TIMEOUT + 1, SLAVE_TIMEOUT + 5)
        start = now_ms()
        log(f"fault: SIGSTOP slave {name} for {secs:.1f}s")
        self.slaves[name].send_signal(signal.SIGSTOP)

        def resume():
            self.stop.wait(secs)
            self.slaves[name].send_signal(signal.SIGCONT)
            self.event("slave paused (SIGSTOP)", name, start)
            self.busy.discard(name)
        self.helper(resume)

    def cancel_job(self):
        with self.lock:
            # One that has not ended, as the watcher saw last.
            if not self.live_ids:
                return
            job = self.rng.choice(self.live_ids)
        r = self.xn("-k", job)
        log(f"fault: xn -k {job}: exit {r.returncode}")
        if r.returncode == 0:
            with self.lock:
                self.cancels[int(job)] = now_ms()

    # --- the run -----------------------------------------------------------------------------

    def run(self):
        log(f"seed {self.seed}; directory {self.dir}; {self.minutes} min of faults")
        ok = False
        try:
            self.start_hub()
            for name in SLAVES:
                self.start_slave(name)
            self.wait_slaves()
            threads = [threading.Thread(target=t)
                       for t in (self.submitter, self.watcher, self.attacher.run)]
            for t in threads:
                t.start()
            injector = threading.Thread(target=self.injector)
            injector.start()
            self.stop.wait(self.minutes * 60)
            log("faults stop; waiting for every job to end")
            self.stop.set()
            injector.join()
            for t in threads + self.helpers:
                t.join()
            for p in self.slaves.values():
                p.send_signal(signal.SIGCONT)
            records = self.wait_all_ended()
            ok = self.check(records)
        finally:
            self.stop.set()
            self.shut_down()
        if ok and not self.keep:
            shutil.rmtree(self.dir)
        else:
            log(f"kept {self.dir} (hub.log, slave-*.log, jobs.json, events.json, attach.json, "
                f"markers)")
        return ok

    def wait_all_ended(self):
        deadline = time.time() + FINAL_WAIT
        while True:
            records = self.list_jobs()
            if records is not None:
                # Interactive jobs end when they are told to.
                self.attacher.end_live(records)
            if records is not None and all(r["state"] in TERMINAL for r in records):
                # A lost job's slave may still come back with it; give it a moment to.
                time.sleep(2)
                again = self.list_jobs()
                if again is not None and all(r["state"] in TERMINAL for r in again):
                    return again
            if time.time() > deadline:
                return records or []
            time.sleep(1)

    def shut_down(self):
        self.attacher.kill()
        for p in self.followers.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        for p in self.slaves.values():
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.terminate()
        for p in self.slaves.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if self.hub and self.hub.poll() is None:
            self.hub.terminate()
            try:
                self.hub.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.hub.kill()
                self.hub.wait()
        # A --no-tty job of a slave killed with SIGKILL runs on, unwatched (documented): end
        # every process still working in one of our job directories.
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cwd = os.readlink(f"/proc/{pid}/cwd")
            except OSError:
                continue
            if cwd.startswith(self.dir + "/"):
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass


def main():
    p = argparse.ArgumentParser(description="execnode fault-injection soak (see scripts/soak.sh)")
    p.add_argument("--exe", required=True)
    p.add_argument("--minutes", type=float, default=3)
    p.add_argument("--seed", type=int)
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    sys.exit(0 if Soak(args).run() else 1)


if __name__ == "__main__":
    main()
