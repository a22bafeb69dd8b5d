"""The checks of the soak's attacher (scripts/soak_attach.py, whose docstring says what they
are and why they must hold): one interactive job, its stored output, what was typed into it,
and every `xn -a` that was attached to it."""

import re

from soak_attach import DROP_NOTES, LINK_LOST, code_of_note

TERMINAL = {"exited", "signaled", "failed", "cancelled", "lost"}


def parse_output(sess, out, whole):
    """The sequence numbers of the tokens in one attempt's stored output, and what in it does
    not fit the job's grammar (`whole`: the attempt exited as its command does)."""
    key = sess.key.encode()
    lines = out.split(b"\r\n")
    tail = lines.pop()
    wrong = []
    seqs = []
    if tail and whole:
        wrong.append(f"it ends mid-line: {tail[-60:]!r}")
    token = re.compile(re.escape(key) + rb" got (" + re.escape(key) + rb"\.(\d+))")
    for i, line in enumerate(lines):
        if i == 0:
            if line != b"ready " + key:
                wrong.append(f"line 1 is {line[:80]!r}, not 'ready {sess.key}'")
            continue
        if i == len(lines) - 1 and line in (b"bye " + key, b"eof " + key):
            continue
        m = token.fullmatch(line)
        if not m:
            wrong.append(f"line {i + 1} is {line[:80]!r}")
            continue
        seqs.append(int(m.group(2)))
    if not lines and tail and not b"ready ".startswith(tail[:6]):
        wrong.append(f"it starts {tail[:60]!r}")
    return seqs, wrong


def link_down_at(run, ms):
    """Whether xn had said its connection was lost, and not yet that it was back, at `ms`."""
    down = False
    for t, line in run.err:
        if t >= ms:
            break
        if LINK_LOST in line:
            down = True
        elif "[reconnected to" in line:
            down = False
    return down


def explain_unsent(soak, sess, rec, ms, run):
    """Why keys typed at `ms` into `run` may never have reached the job, or None."""
    for t, line in run.err:
        if ms - 500 <= t <= ms + 10_000 and any(n in line for n in DROP_NOTES):
            return f"xn said so ({line.strip('[]').split(':')[0]})"
    if run.left and run.left.startswith("kill") and run.left_ms is not None \
            and ms >= run.left_ms - 1000:
        return "xn was killed right after it was typed"
    ended = rec.get("ended_ms")
    if ended and ended <= ms + 5000:
        return "the job ended just then"
    if run.exit_ms and run.end_note() and run.exit_ms <= ms + 5000:
        return "the job ended just then (as xn showed)"
    if link_down_at(run, ms):
        # README, Attach: what is typed while the hub is away is not sent, and xn says so.
        # No fault excuses silence once xn knows.
        return None
    for t, line in run.err:
        # Written to a connection the hub had just left, before xn noticed.
        if ms - 200 <= t <= ms + 5000 and LINK_LOST in line:
            return "xn lost its connection right after it was typed"
    slave = rec.get("slave")
    faults = soak.faults_in(ms - 3000, ms + 1000, {"hub", slave})
    if faults:
        return f"{faults[-1][1]} ({faults[-1][2]}) just then"
    if sess.id in soak.ever_lost:
        return "the job was lost at some time"
    return None


def check_run(soak, sess, rec, run, full, single, note):
    """What one `xn -a` showed and how it left; violations."""
    what = f"job {sess.id} ({sess.key}) xn -a run {run.index} (left: {run.left})"
    bad = []
    out = bytes(run.out)
    end = run.end_note()
    err = " | ".join(line for _, line in run.err[-3:])
    if single and not full.startswith(out):
        bad.append(f"{what}: it showed {len(out)} bytes that are not a prefix of the stored "
                   f"{len(full)}; first difference at {first_difference(out, full)}")
    if end and single and not end.group(2).startswith("lost") and out != full:
        bad.append(f"{what}: it showed the job's end ({end.group(0)}) after {len(out)} of "
                   f"its {len(full)} bytes")
    if end:
        if run.code != code_of_note(end):
            bad.append(f"{what}: it said {end.group(0)!r} but exited {run.code}")
        elif not end.group(2).startswith("lost") and sess.id not in soak.ever_lost \
                and rec["state"] in TERMINAL:
            want = client_exit_code(rec)
            if run.code != want:
                bad.append(f"{what}: it exited {run.code}, the job's stored end says {want}")
        note("xn -a showed the job's end and exited with its code")
        return bad
    if run.left == "never attached":
        away = soak.faults_in(run.start_ms, run.exit_ms, {"hub"})
        if away and run.code == 255:
            note("xn -a could not reach the hub (it was down) and exited 255")
        else:
            bad.append(f"{what}: it did not say it attached within the wait (exit {run.code}):"
                       f" {err!r}")
    elif run.left == "replay short":
        if soak.faults_in(run.start_ms, run.exit_ms, {"hub"}):
            note("a replay was slow while the hub restarted")
        else:
            bad.append(f"{what}: its replay showed {len(out)} bytes, not the {run.pre_len} "
                       f"stored before it started")
    elif run.left.startswith("detach"):
        if run.code != 0 or not run.said("[detached from job"):
            bad.append(f"{what}: after the detach key it exited {run.code}: {err!r}")
        else:
            note("xn -a detached: exit 0")
    elif run.left == "sigterm":
        if run.code != 143 or not run.said("[xn terminated; job"):
            bad.append(f"{what}: after SIGTERM it exited {run.code}: {err!r}")
        else:
            note("xn -a got SIGTERM: exit 143, the job runs on")
    elif run.left == "sighup":
        # README, Exit codes: 129 on SIGHUP, the job keeps running.
        if run.code != 129:
            bad.append(f"{what}: after SIGHUP it exited {run.code}: {err!r}")
        else:
            note("xn -a got SIGHUP: exit 129, the job runs on")
    elif run.left.startswith("kill"):
        note("xn -a killed with SIGKILL")
    elif run.left.endswith("the job did not end"):
        why = explain_unsent(soak, sess, rec, run.left_ms, run)
        if why:
            note(f"the key that ends the job never reached it: {why}")
        else:
            bad.append(f"{what}: the key that ends the job never reached it, and nothing "
                       f"explains it: {err!r}")
    elif run.left is not None:
        bad.append(f"{what}: it exited {run.code} without saying how the job ended: {err!r}")
    else:
        # It exited by itself before we chose a way out: only the job's end may do that.
        bad.append(f"{what}: it exited {run.code} by itself: {err!r}")
    return bad


def check_session(soak, sess, rec, note):
    """Every check of one interactive job; violations."""
    what = f"job {sess.id} (attach, {sess.key})"
    bad = []
    attempts = rec.get("attempts", []) + [rec]
    outs = []
    for a in attempts:
        got = soak.fetch(sess.id, a.get("attempt", 1))
        if got is None:
            return [f"{what}: xn -f --attempt {a.get('attempt', 1)} failed"]
        outs.append(got[0])
    stored = []
    for a, out in zip(attempts, outs):
        whole = a["state"] == "exited" and a.get("exit_code") in (0, 7)
        seqs, wrong = parse_output(sess, out, whole)
        for w in wrong:
            bad.append(f"{what} attempt {a.get('attempt', 1)}: stored output: {w}")
        stored += seqs
    typed = {seq: (ms, run) for seq, _, ms, run, _ in sess.typed}
    for seq in stored:
        if seq not in typed:
            bad.append(f"{what}: token {seq} is in the output but was never typed")
    if stored != sorted(set(stored)):
        dup = sorted({s for s in stored if stored.count(s) > 1})
        bad.append(f"{what}: tokens stored out of order or more than once: {stored} "
                   f"(repeated: {dup})")
    # Shown by an xn means stored, and kept.
    for seq, token, _, _, _ in sess.typed:
        shown = [r.index for r in sess.runs if sess.answer(token) in r.out]
        if shown and seq not in stored:
            bad.append(f"{what}: xn (run {shown[0]}) showed the answer to {token}, but the "
                       f"stored output does not have it")
    single = len(attempts) == 1
    if not single:
        note("an interactive job had more than one attempt (prefix checks skipped)")
    for run in sess.runs:
        bad += check_run(soak, sess, rec, run, outs[-1], single, note)
    for seq, token, ms, ri, before_detach in sess.typed:
        if seq in stored:
            note("a typed line reached the job" + (" (typed right before a detach)"
                                                   if before_detach else ""))
            continue
        why = explain_unsent(soak, sess, rec, ms, sess.runs[ri])
        if why:
            note(f"a typed line never reached the job: {why}")
        else:
            bad.append(f"{what}: {token}, typed at {ms} into xn run {ri}"
                       f"{' right before a detach' if before_detach else ''}, never reached "
                       f"the job, and nothing explains it (no note from xn, no fault)")
    # How it ended.
    state, code = rec["state"], rec.get("exit_code")
    want = {"quit": ("exited", 7), "eof": ("exited", 0), "terminate": ("cancelled", None)}
    if sess.ended_by and (state, code if state == "exited" else None) == want[sess.ended_by]:
        note(f"an interactive job ended as we ended it ({sess.ended_by})")
    else:
        why = soak.explain_end(rec)
        if why:
            note(f"an interactive job ended {state}: {why}")
        else:
            bad.append(f"{what} ended {state} (exit {code}, signal {rec.get('signal')}, reason "
                       f"{rec.get('reason')!r}, slave {rec.get('slave')}); we ended it by "
                       f"{sess.ended_by}, and no fault explains it")
    return bad


def client_exit_code(rec):
    if rec["state"] == "exited" and rec.get("exit_code") is not None:
        return rec["exit_code"]
    if rec.get("signal") is not None:
        return 128 + rec["signal"]
    return 1


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b)) if len(a) != len(b) else None
