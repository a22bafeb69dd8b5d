"""The checks of the fault-injection soak (scripts/soak.py), after every job has ended: what
must hold whatever faults happened, and the faults that explain a job that did not end as its
command does. `Checks` is a part of `soak.Soak`, apart only to keep each file readable; it
uses the soak's state (jobs, events, followers, the attacher) and settings (`slave_names`,
`crash_hold`) as its own."""

import json
import os
import re
import subprocess

from soak_attach import now_ms
from soak_attach_check import check_session

TERMINAL = {"exited", "signaled", "failed", "cancelled", "lost"}
# How long the end may wait for every job to end: the longest sleep job (40 s), a slave
# timeout, and retries' backoff (1 s, 2 s) with room to spare.
FINAL_WAIT = 300
DROP_MARKER = b"[execnode: "  # the start of a drop marker; see DROPPED


class Checks:
    def faults_in(self, start, end, targets):
        """Faults on one of `targets` that overlap [start, end] (ms)."""
        return [e for e in self.events
                if e[2] in targets and e[0] <= end and e[3] >= start]

    def explain_end(self, rec):
        """Why a job may have ended other than as its command does, or None."""
        end = rec.get("ended_ms") or now_ms()
        state, reason = rec["state"], rec.get("reason") or ""
        if state == "cancelled" and rec["id"] in self.cancels:
            return "cancelled by the soak"
        slave = rec.get("slave")
        if state == "cancelled" and "its slave was stopped" in reason:
            if self.faults_in(rec["created_ms"], end, {slave}):
                return "its slave got SIGTERM"
        if state == "lost":
            # Only the end of its slave's process: after a crash of the hub, or a pause, a slave
            # that is alive dials again and takes its jobs back (README: Lost jobs are taken
            # back).
            faults = [f for f in self.faults_in(rec["created_ms"], end, {slave})
                      if f[1] != "slave paused (SIGSTOP)"]
            if faults:
                return f"its slave was {faults[-1][1].split()[1]}"
        return None

    def explain_double_run(self, rec, runs):
        """Documented (README, Durability and faults): after a crash of the hub, a job whose
        assignment the crash kept from being stored, on a slave that does not dial the
        restarted hub within --crash-hold, is given to another slave too. So a job may run
        twice in one attempt if one of its runs is on a slave that was away for the
        --crash-hold after a restart of the hub in its lifetime."""
        end = rec.get("ended_ms") or now_ms()
        for start, what, target, restarted in self.events:
            if target != "hub" or not rec["created_ms"] <= restarted <= end:
                continue
            for s in set(runs):
                if any(e[2] == s and e[0] <= restarted and e[3] >= restarted + self.crash_hold * 1000
                       for e in self.events):
                    return f"slave {s} was away for --crash-hold after the hub's restart"
        return None

    def has_drop_marker(self, job_id):
        got = self.fetch(job_id, 1)
        return got is None or DROP_MARKER in got[0] or DROP_MARKER in got[1]

    def check_follower(self, what, job_id, follower, want_out, want_code, note):
        try:
            code = follower.wait(timeout=60)
        except subprocess.TimeoutExpired:
            return [f"{what}: its follower (xn -f --follow) still runs 60s after the job ended"]
        base = os.path.join(self.dir, "follow", str(job_id))
        with open(base + ".out", "rb") as f:
            out = f.read()
        with open(base + ".err", "rb") as f:
            err = f.read().decode(errors="replace")
        if code == 1 and f"job {job_id} lost:" in err and want_out.startswith(out):
            # Lost for less than the watcher's tick, and taken back: a follower is told the
            # job ended when it becomes lost (README, Lost jobs are taken back).
            note("a follower was told its job was lost, and the job was taken back")
            return []
        bad = []
        if code != want_code:
            bad.append(f"{what}: its follower exited {code}, not {want_code}: {err.strip()!r}")
        if out != want_out:
            bad.append(f"{what}: its follower printed {len(out)} bytes, not the job's "
                       f"{len(want_out)}; first difference at {first_difference(out, want_out)}"
                       f" (follow/{job_id}.out)")
        return bad

    def fetch(self, job_id, attempt):
        r = self.xn("-f", str(job_id), "--attempt", str(attempt))
        if r.returncode != 0:
            return None
        return r.stdout, r.stderr

    def check_seen(self, what, job_id, attempts, bad):
        """Bytes the watcher saw stored must all still be there."""
        for a in attempts:
            n = a.get("attempt", 1)
            seen = self.seen.get((job_id, n), (0, 0))
            if a["stdout_len"] < seen[0] or a["stderr_len"] < seen[1]:
                bad.append(f"{what} attempt {n}: {a['stdout_len']}/{a['stderr_len']} bytes "
                           f"stored, {seen[0]}/{seen[1]} seen during the soak")

    def check_runs(self, what, rec, attempts, ran, bad, note):
        """Runs (markers written): at most one per attempt."""
        if len(ran) > len(attempts):
            why = self.explain_double_run(rec, ran)
            if why:
                note(f"ran more often than its attempts: {why}")
            else:
                bad.append(f"{what} ran {len(ran)} times (on {', '.join(ran)}) in "
                           f"{len(attempts)} attempt(s)")
        exited = sum(1 for a in attempts if a["state"] == "exited")
        if len(ran) < exited:
            bad.append(f"{what}: {exited} attempt(s) exited but only {len(ran)} ran")

    def check(self, records):
        bad = list(self.bad) + self.attacher.bad
        notes = {}

        def note(what):
            notes[what] = notes.get(what, 0) + 1

        with open(os.path.join(self.dir, "jobs.json"), "w") as f:
            json.dump(records, f, indent=1)
        with open(os.path.join(self.dir, "events.json"), "w") as f:
            json.dump(self.events, f, indent=1)
        self.attacher.dump(os.path.join(self.dir, "attach.json"))
        runs = {}  # job id -> [slave of each run]
        if os.path.exists(self.markers):
            with open(self.markers) as f:
                for line in f:
                    m = re.fullmatch(r"((?:SOAK|ATT)-\d+) .*/work-(\w+)/jobs/(\d+)\n", line)
                    if not m:
                        bad.append(f"markers: a line that is no marker: {line!r}")
                        continue
                    runs.setdefault(int(m.group(3)), []).append(m.group(2))

        groups = {r.get("group") for r in records}
        key_of = {}
        for r in records:
            m = re.match(r'echo "((?:SOAK|ATT)-\d+) ', r["command"])
            if not m or (m.group(1) not in self.jobs
                         and m.group(1) not in self.attacher.sessions):
                bad.append(f"job {r['id']}: a command the soak did not submit: {r['command']!r}")
                continue
            key_of[r["id"]] = m.group(1)
        for answer, key in self.submitted.items():
            if answer.startswith("g"):
                if answer not in groups:
                    bad.append(f"group {answer} (xn -s printed it) is gone")
            elif key_of.get(int(answer)) != key:
                bad.append(f"job {answer} (xn -s printed it for {key}) is gone or changed")

        for r in records:
            job_id, state = r["id"], r["state"]
            if job_id not in key_of:
                continue
            sess = self.attacher.sessions.get(key_of[job_id])
            job = self.jobs.get(key_of[job_id])
            what = f"job {job_id} (attach, {sess.key})" if sess else \
                f"job {job_id} ({job.kind}{' tty' if job.tty else ''}, {job.key})"
            if state not in TERMINAL:
                bad.append(f"{what} is still {state} {FINAL_WAIT}s after the faults stopped")
                continue
            attempts = r.get("attempts", []) + [r]
            if sess:
                self.check_seen(what, job_id, attempts, bad)
                bad += check_session(self, sess, r, note)
                self.check_runs(what, r, attempts, runs.get(job_id, []), bad, note)
                continue
            self.check_seen(what, job_id, attempts, bad)
            # Output: exact for a run to its end, a prefix for every other.
            want_out, want_err = job.expected()
            for a in attempts:
                n = a.get("attempt", 1)
                got = self.fetch(job_id, n)
                if got is None:
                    bad.append(f"{what}: xn -f --attempt {n} failed")
                    continue
                out, err = got
                whole = a["state"] == "exited" and a.get("exit_code") == job.want_code
                if DROP_MARKER in out or DROP_MARKER in err:
                    note("an attempt's output has drop markers, and fits around them")
                    if not (fits_with_drops(out, want_out, whole)
                            and fits_with_drops(err, want_err, whole)):
                        bad.append(f"{what} attempt {n} ({a['state']}): output with drop markers"
                                   f" does not fit the expected around them")
                elif whole and (out, err) != (want_out, want_err):
                    bad.append(f"{what} attempt {n} exited {job.want_code} but its output "
                               f"differs: {len(out)}/{len(err)} bytes, want "
                               f"{len(want_out)}/{len(want_err)}; first difference at "
                               f"{first_difference(out, want_out)}/{first_difference(err, want_err)}")
                elif not whole and not (want_out.startswith(out) and want_err.startswith(err)):
                    bad.append(f"{what} attempt {n} ({a['state']}): output is not a prefix of "
                               f"the expected, first difference at "
                               f"{first_difference(out, want_out)}/{first_difference(err, want_err)}")
            # How it ended.
            if state == "exited" and r.get("exit_code") == job.want_code:
                note(f"ended as its command does ({state} {job.want_code})")
            else:
                why = self.explain_end(r)
                if why:
                    note(f"{state}: {why}")
                else:
                    bad.append(f"{what} ended {state} (exit {r.get('exit_code')}, signal "
                               f"{r.get('signal')}, reason {r.get('reason')!r}, slave "
                               f"{r.get('slave')}) and no fault explains it")
            # README, Cancel: a job whose cancel the hub accepted ends `cancelled` (or `lost`,
            # if its slave went away before it could stop it).
            if job_id in self.cancels and state not in ("cancelled", "lost"):
                bad.append(f"{what}: the hub accepted its cancel (xn -k exit 0) at "
                           f"{self.cancels[job_id]} but it ended {state} (exit "
                           f"{r.get('exit_code')}, signal {r.get('signal')}, "
                           f"reason {r.get('reason')!r})")
            # Its follower, for a job that ran once, to its end, and was never seen lost (a
            # follower is told a lost job ended, and stops).
            follower = self.followers.get(job_id)
            if follower is not None and len(attempts) == 1 and job_id not in self.ever_lost \
                    and state == "exited" and r.get("exit_code") == job.want_code \
                    and not self.has_drop_marker(job_id):
                wrong = self.check_follower(what, job_id, follower, want_out, job.want_code,
                                            note)
                bad.extend(wrong)
                if not wrong and follower.returncode == job.want_code:
                    note("followed to its end by xn -f --follow, every byte once")
            self.check_runs(what, r, attempts, runs.get(job_id, []), bad, note)

        for name in ["hub"] + [f"slave-{s}" for s in self.slave_names]:
            with open(os.path.join(self.dir, f"{name}.log"), errors="replace") as f:
                for line in f:
                    if "panicked" in line:
                        bad.append(f"{name}.log: {line.strip()}")
        for sess in self.attacher.sessions.values():
            for run in sess.runs:
                for _, line in run.err:
                    if "panicked" in line:
                        bad.append(f"job {sess.id} xn -a run {run.index}: {line.strip()}")

        faults = {}
        for e in self.events:
            faults[e[1]] = faults.get(e[1], 0) + 1
        faults["xn -k accepted"] = len(self.cancels)
        print("\n=== soak summary ===")
        print(f"seed {self.seed}, {self.minutes} min of faults, {len(records)} jobs "
              f"({len(self.submitted)} submissions answered, {self.unanswered} not)")
        print("faults: " + ", ".join(f"{k} {v}" for k, v in sorted(faults.items())))
        sessions = self.attacher.sessions.values()
        print(f"attach: {len(sessions)} interactive jobs, "
              f"{sum(len(s.runs) for s in sessions)} xn -a runs, "
              f"{sum(len(s.typed) for s in sessions)} lines typed")
        for what, n in sorted(notes.items()):
            print(f"  {n:5}  {what}")
        if bad:
            print(f"\n{len(bad)} violation(s):")
            for b in bad:
                print(f"  - {b}")
        else:
            print("no violations")
        return not bad


# What a slave puts where it dropped output while the hub was away (src/slave/outbox/stream.rs).
DROPPED = re.compile(rb"\r\n\[execnode: (\d+) bytes of output dropped here: the hub was "
                     rb"unreachable\]\r\n")


def fits_with_drops(got, want, whole):
    """Whether `got` is `want` (or, if not `whole`, a prefix of it) with runs of bytes replaced
    by drop markers that count them."""
    pos = 0
    pieces = DROPPED.split(got)
    for i, piece in enumerate(pieces):
        if i % 2:
            pos += int(piece)
            continue
        if want[pos:pos + len(piece)] != piece:
            return False
        pos += len(piece)
    return pos == len(want) if whole else pos <= len(want)


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b)) if len(a) != len(b) else None
