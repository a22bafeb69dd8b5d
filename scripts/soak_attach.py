"""The soak's attacher (see scripts/soak.py): interactive terminal sessions through `xn -a`.

While faults are on, one thread keeps a few interactive tty jobs (a shell loop that answers
each line typed into its terminal) and attaches to them one at a time with `xn -a ID`, run in
a real pseudo-terminal (made raw before xn starts, so the local terminal adds nothing: what xn
writes to it is the job's bytes exactly; xn's notes go to a pipe). In each attachment it waits
for the replay of what the job printed before, types lines with unique tokens (one at a time,
or several in one write, as a paste), waits for their answers, sometimes lingers (a line a
second, and one at once whenever xn says its connection to the hub is lost, to type into the
outage), and then leaves in one of the ways a user does: detach (Ctrl-] d, sometimes right
behind a last line, which xn must send first), kill -9, SIGTERM or SIGHUP of xn, `quit` (the
job exits 7), Ctrl-D (the job reads EOF and exits 0) or Ctrl-] t (terminate). A job left
running is attached to again later. When the faults stop, every job still running is
attached to once more and ended with `quit`.

The job turns its terminal's echo off (`stty -echo`) before it says it is ready, and only then
does anything get typed, so its whole output is known from the lines it read:
`ready KEY`, then `KEY got TOKEN` for each line, in the order read, then `bye KEY` (quit) or
`eof KEY` (Ctrl-D); each line ends in \\r\\n.

What is guaranteed, and checked for each job at the end (README, Attach and Durability and
faults; docs/PROTOCOL.md, the job stream):

- each attempt's stored output (`xn -f`) is exactly that grammar (the last line may be cut
  short if the job did not end as its command does);
- every token in it is one typed into that job, each at most once, in the order typed (input
  is never repeated or reordered, whatever the hub or a slave did meanwhile);
- every token whose answer any attached xn showed is in the stored output: what a client was
  shown was stored, and stays;
- what each xn showed is a prefix of the stored output (replay, then live, through hub
  restarts: nothing lost or shown twice), and an xn that showed the job's end showed all of
  it; after a reattach, the replay reaches at least what was stored before xn started;
- a line typed that never reached the job is explained: xn said so (`[not sent: ...]`, the
  hub's `input dropped`, a lost connection), or the hub or the job's slave had a fault around
  that time, or xn was killed right after it was typed, or the job ended just then. Nothing
  typed while all was well is dropped silently, a line typed right behind a detach included;
  and once xn has said its connection is lost, a fault no longer excuses silence: until it
  says it has reconnected, every key typed is reported as not sent;
- xn leaves as it should, within bounds: a detach exits 0 with `[detached ...]`, a SIGTERM
  143 with `[xn terminated ...]`, a SIGHUP 129; when the job ends, xn prints how
  (`[job N ...]`) within EXIT_AFTER_END of the hub storing the end, and exits with the code
  that line implies (the job's code, 128 + signal, 1), which for a job never seen `lost` is
  the stored one;
- the job ended as we ended it (exit 7 after quit, 0 after Ctrl-D, cancelled after Ctrl-] t),
  or its end is explained by a fault as any other job's (`Soak.explain_end`).
"""

import json
import os
import re
import signal
import subprocess
import termios
import threading
import time
import tty
import urllib.request

MAX_OPEN = 3  # interactive jobs kept at once
READY_WAIT = 60  # for a job to start (it may be queued behind others) and say it is ready
ATTACH_WAIT = 60  # for xn to say it is attached (it reconnects through a hub restart)
REPLAY_WAIT = 20  # for the replay to show what was stored before xn started
ACK_WAIT = 3  # for a line's answer, before typing the next one
DETACH_WAIT = 15  # for xn to exit after a detach or SIGTERM (it flushes for at most 5 s)
END_WAIT = 120  # for the job to end after quit, Ctrl-D or terminate
EXIT_AFTER_END = 30  # for xn to exit once the hub has stored the job's end
ESC = b"\x1d"
# xn's last word when the job ends: `[job N exited with code C]`, `[job N cancelled (signal 15):
# REASON]`, `[job N lost: REASON]` (client/attach.rs, JobRecord::describe_end).
END_NOTE = re.compile(r"^\[job (\d+) (exited with code (-?\d+)|killed by signal (\d+)"
                      r"|(?:cancelled|failed|lost) \(signal (\d+)\)|cancelled|failed|lost)"
                      r"(: .*)?\]$")
# xn's notes that input was not sent (client/attach.rs), or dropped by the hub
# (hub/stream.rs), and that its connection broke.
DROP_NOTES = ("[not sent:", "input dropped")
LINK_LOST = "[connection to the hub lost"


def now_ms():
    return int(time.time() * 1000)


def code_of_note(m):
    """The exit code xn must give for the end its note `[job N ...]` describes."""
    if m.group(3) is not None:
        return int(m.group(3))
    sig = m.group(4) or m.group(5)
    return 128 + int(sig) if sig else 1


def link_up(run):
    """Whether xn's last word on its connection, if any, is that it is back."""
    for _, line in reversed(run.err):
        if LINK_LOST in line:
            return False
        if "[reconnected to" in line:
            return True
    return True


class Session:
    """One interactive job: what was typed into it, and every xn attached to it."""

    def __init__(self, key, job_id):
        self.key = key
        self.id = job_id
        self.typed = []  # (seq, token, ms, run index, typed right before a detach)
        self.runs = []  # XnRun
        self.ended_by = None  # "quit", "eof", "terminate" once we ended it and xn confirmed
        self.seq = 0

    def answer(self, token):
        return f"{self.key} got {token}\r\n".encode()


class XnRun:
    """`xn -a ID` in a pseudo-terminal of its own, with what it showed and said."""

    def __init__(self, soak, sess, pre_len):
        self.index = len(sess.runs)
        self.start_ms = now_ms()
        self.pre_len = pre_len  # stdout stored before it started (None: unknown)
        self.out = bytearray()
        self.err = []  # (ms, line)
        self.left = None  # how we left it
        self.left_ms = None
        self.code = None
        self.exit_ms = None
        self.cond = threading.Condition()
        master, slave = os.openpty()
        # Raw before xn starts: the local terminal never echoes or translates anything.
        tty.setraw(slave)
        termios.tcsetwinsize(slave, (24, 80))
        self.master = master
        # setsid -c: a session of its own with this terminal as its controlling one.
        self.p = subprocess.Popen(["setsid", "-c", soak.exe, "xn", "-a", str(sess.id)],
                                  stdin=slave, stdout=slave, stderr=subprocess.PIPE,
                                  env=soak.env())
        os.close(slave)
        self.readers = [threading.Thread(target=self.read_out),
                        threading.Thread(target=self.read_err)]
        for t in self.readers:
            t.start()

    def read_out(self):
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: every holder of the terminal's other side is gone
                chunk = b""
            with self.cond:
                if not chunk:
                    self.cond.notify_all()
                    return
                self.out += chunk
                self.cond.notify_all()

    def read_err(self):
        for line in self.p.stderr:
            with self.cond:
                self.err.append((now_ms(), line.decode(errors="replace").rstrip("\r\n")))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait(self, pred, timeout):
        """Waits until `pred()` holds (under the lock) or xn exits; returns pred()."""
        deadline = time.time() + timeout
        with self.cond:
            while not pred():
                left = deadline - time.time()
                if left <= 0 or self.p.poll() is not None:
                    # Read what a process that exited wrote last.
                    self.cond.wait(0.2)
                    return pred()
                self.cond.wait(min(left, 0.2))
            return True

    def said(self, text):
        return any(text in line for _, line in self.err)

    def type(self, data):
        try:
            os.write(self.master, data)
        except OSError:
            pass

    def exit_within(self, secs):
        try:
            self.code = self.p.wait(timeout=secs)
        except subprocess.TimeoutExpired:
            return False
        self.exit_ms = now_ms()
        # What it wrote last is read by the reader threads, which end at EOF.
        for t in self.readers:
            t.join(timeout=10)
        return True

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
        self.code = self.p.wait() if self.code is None else self.code
        self.exit_ms = self.exit_ms or now_ms()
        for t in self.readers:
            t.join(timeout=10)
        os.close(self.master)

    def end_note(self):
        for _, line in reversed(self.err):
            m = END_NOTE.search(line)
            if m:
                return m
        return None


class Attacher:
    def __init__(self, soak):
        self.soak = soak
        self.sessions = {}  # key -> Session
        self.by_id = {}  # id -> Session
        self.open = []  # sessions whose job we have not ended
        self.n = 0
        self.bad = []  # violations seen during the soak
        self.current = None  # the XnRun running now

    @property
    def rng(self):
        return self.soak.rng

    def pick(self, *choices):
        with self.soak.lock:
            return self.rng.choices([c for c, _ in choices], [w for _, w in choices])[0]

    def uniform(self, a, b):
        with self.soak.lock:
            return self.rng.uniform(a, b)

    def record(self, job_id):
        """The job's record, straight from the hub's REST API; None if it cannot answer."""
        req = urllib.request.Request(f"http://{self.soak.addr}/api/v1/jobs/{job_id}",
                                     headers={"Authorization": f"Bearer {self.soak.token}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.load(r)
        except (OSError, ValueError):
            return None

    # --- the thread --------------------------------------------------------------------------

    def run(self):
        while not self.soak.stop.is_set():
            if not self.open or (len(self.open) < MAX_OPEN and self.pick((1, 4), (0, 6))):
                sess = self.submit()
            else:
                with self.soak.lock:
                    sess = self.rng.choice(self.open)
                rec = self.record(sess.id)
                if rec and rec["state"] in ("exited", "signaled", "failed", "cancelled", "lost"):
                    # Ended (a cancel, its slave's end) while we were away. A lost job that
                    # its slave takes back is ended by `end_live` after the faults.
                    self.open.remove(sess)
                    continue
            if sess is not None:
                self.attach(sess, None)
            self.soak.stop.wait(self.uniform(0.2, 2))

    def submit(self):
        self.n += 1
        key = f"ATT-{self.n}"
        line = (f'echo "{key} $PWD" >> {self.soak.markers}; stty -echo; echo "ready {key}"; '
                f'while IFS= read -r l; do if [ "$l" = quit ]; then echo "bye {key}"; exit 7; '
                f'fi; echo "{key} got $l"; done; echo "eof {key}"')
        r = self.soak.xn("-s", line)
        answer = r.stdout.decode().strip()
        if r.returncode != 0 or not answer.isdigit():
            with self.soak.lock:
                self.soak.unanswered += 1
            return None
        sess = Session(key, int(answer))
        with self.soak.lock:
            self.sessions[key] = sess
            self.by_id[sess.id] = sess
            self.soak.submitted[answer] = key
            self.open.append(sess)
        return sess

    def attach(self, sess, leave):
        """One attachment: replay, lines, and a way out (`leave`, or one drawn)."""
        rec = self.record(sess.id)
        run = XnRun(self.soak, sess, rec["stdout_len"] if rec else None)
        sess.runs.append(run)
        self.current = run
        try:
            self.drive(sess, run, leave)
        finally:
            run.close()
            self.current = None

    def drive(self, sess, run, leave):
        if not run.wait(lambda: run.said("[attached to job"), ATTACH_WAIT):
            run.left = "never attached"
            return
        if run.pre_len is not None and not run.wait(lambda: len(run.out) >= run.pre_len,
                                                    REPLAY_WAIT):
            run.left = "replay short"
            run.left_ms = now_ms()
            return
        ready = f"ready {sess.key}\r\n".encode()
        if not run.wait(lambda: ready in run.out, READY_WAIT):
            # Queued behind other jobs, or gone: come back later.
            run.left = "detach"
            run.left_ms = now_ms()
            run.type(ESC + b"d")
            run.exit_within(DETACH_WAIT)
            return
        if leave is None:
            for _ in range(self.pick((1, 2), (2, 2), (4, 2), (8, 1))):
                if self.pick((True, 1), (False, 4)):
                    ok = self.type_burst(sess, run, self.pick((2, 1), (5, 1), (20, 1)))
                else:
                    ok = self.type_line(sess, run, b"")
                if not ok:
                    return
                self.soak.stop.wait(self.uniform(0, 0.5))
            if self.pick((True, 1), (False, 2)) and not self.linger(sess, run):
                return
            leave = self.pick(("detach", 25), ("detach after a line", 15), ("kill", 10),
                              ("kill after a line", 5), ("sigterm", 8), ("sighup", 4),
                              ("quit", 15), ("eof", 10), ("terminate", 10))
        if run.p.poll() is not None:
            return
        run.left = leave
        run.left_ms = now_ms()
        if leave.startswith("detach"):
            if leave == "detach after a line":
                self.type_line(sess, run, ESC + b"d", before_detach=True)
            else:
                run.type(ESC + b"d")
            run.exit_within(DETACH_WAIT)
        elif leave.startswith("kill"):
            if leave == "kill after a line":
                self.type_line(sess, run, b"", wait=False)
            run.left_ms = now_ms()
            run.p.send_signal(signal.SIGKILL)
            run.exit_within(DETACH_WAIT)
        elif leave in ("sigterm", "sighup"):
            run.p.send_signal(signal.SIGTERM if leave == "sigterm" else signal.SIGHUP)
            run.exit_within(DETACH_WAIT)
        else:
            run.type({"quit": b"quit\r", "eof": b"\x04", "terminate": ESC + b"t"}[leave])
            self.wait_end(sess, run, leave)

    def type_line(self, sess, run, after, before_detach=False, wait=True):
        """Types one line with a fresh token (and `after` in the same write); waits for its
        answer unless told not to. False if xn is gone."""
        if run.p.poll() is not None or run.end_note():
            return False
        sess.seq += 1
        token = f"{sess.key}.{sess.seq}"
        sess.typed.append((sess.seq, token, now_ms(), run.index, before_detach))
        run.type(token.encode() + b"\r" + after)
        if wait and not after:
            want = sess.answer(token)
            run.wait(lambda: want in run.out, ACK_WAIT)
        return run.p.poll() is None

    def linger(self, sess, run):
        """Stays attached for a while, typing a line a second, and one at once whenever xn
        says its connection is lost: what is typed then must be reported as not sent (or,
        written before xn noticed, be explained by the fault). False if xn is gone."""
        deadline = time.time() + self.uniform(5, 20)
        while time.time() < deadline:
            notes = len(run.err)
            lost = run.wait(lambda: any(LINK_LOST in line for _, line in run.err[notes:]),
                            self.uniform(0.5, 1.5))
            if not self.type_line(sess, run, b"", wait=not lost):
                return False
            if lost:
                run.wait(lambda: link_up(run), ATTACH_WAIT)
        return True

    def type_burst(self, sess, run, n):
        """Types `n` lines in one write, as a paste does; waits for the last answer."""
        if run.p.poll() is not None or run.end_note():
            return False
        data = b""
        for _ in range(n):
            sess.seq += 1
            token = f"{sess.key}.{sess.seq}"
            sess.typed.append((sess.seq, token, now_ms(), run.index, False))
            data += token.encode() + b"\r"
        run.type(data)
        want = sess.answer(token)
        run.wait(lambda: want in run.out, ACK_WAIT)
        return run.p.poll() is None

    def wait_end(self, sess, run, leave):
        """After quit, Ctrl-D or terminate: the job ends, and xn with it."""
        deadline = time.time() + END_WAIT
        ended_at = None
        while time.time() < deadline:
            if run.exit_within(2):
                break
            rec = self.record(sess.id)
            if rec and rec["state"] in ("exited", "signaled", "failed", "cancelled", "lost"):
                ended_at = ended_at or time.time()
                if time.time() - ended_at > EXIT_AFTER_END:
                    self.bad.append(f"job {sess.id} ({sess.key}): xn -a (run {run.index}) "
                                    f"still runs {EXIT_AFTER_END}s after the job ended "
                                    f"{rec['state']}")
                    return
        if run.code is None:
            # The job did not end: the key never reached it (a fault). It stays open.
            run.left = f"{leave}, but the job did not end"
            return
        m = run.end_note()
        if m and m.group(2).startswith("lost"):
            return  # a lost job may come back: it stays open
        if m:
            sess.ended_by = leave
        if sess in self.open:
            self.open.remove(sess)

    # --- the end -----------------------------------------------------------------------------

    def end_live(self, records):
        """After the faults: ends every interactive job that has not ended (quit)."""
        for r in records:
            sess = self.by_id.get(r["id"])
            if sess is None or r["state"] not in ("queued", "assigned", "running"):
                continue
            if sess not in self.open:
                self.open.append(sess)
            self.attach(sess, "quit")
            if sess in self.open and not sess.ended_by:
                # As a last resort; explain_end counts this cancel as ours.
                if self.soak.xn("-k", str(sess.id)).returncode == 0:
                    with self.soak.lock:
                        self.soak.cancels[sess.id] = now_ms()
                    if sess in self.open:
                        self.open.remove(sess)

    def dump(self, path):
        """Everything the attacher did and saw, for a kept soak directory (attach.json)."""
        def run_json(r):
            return {"start_ms": r.start_ms, "pre_len": r.pre_len, "left": r.left,
                    "left_ms": r.left_ms, "code": r.code, "exit_ms": r.exit_ms, "err": r.err,
                    "out": bytes(r.out).decode(errors="replace")}
        with open(path, "w") as f:
            json.dump([{"key": s.key, "id": s.id, "ended_by": s.ended_by, "typed": s.typed,
                        "runs": [run_json(r) for r in s.runs]}
                       for s in self.sessions.values()], f, indent=1)

    def kill(self):
        run = self.current
        if run is not None and run.p.poll() is None:
            run.p.kill()
