// One job in the page: its output from the first byte, then live, in a terminal; keys, size
// and control for a token that may control it (docs/PROTOCOL.md, the job stream). On a drop
// it dials again from the last byte shown. Job output is untrusted: it only ever reaches the
// page as text nodes, through the terminal.

import { Terminal } from "/ui/term.js";
import { $, api, canType, commandOf, exitOf, token } from "/ui/session.js";

/** Stream kinds in a data frame's first byte, and the frame header's length. */
const STDIN = 0, STDERR = 2;
const HEADER = 18;

/** Bytes of each stream a job view starts with: a bigger output starts this far from its end
 * (as `xn -a --tail`), since the terminal keeps 5,000 lines and parses some 10 MB/s. */
const TAIL = 512 * 1024;

/** Continuation bytes (0x80–0xBF) a view that starts at such a cut leaves out: the cut may
 * fall inside a UTF-8 character, which has at most three of them after its first byte. */
const MAX_CONTINUATION = 3;

/** The open job view, or null. */
let view = null;

export function openJob(id) {
  if (view && view.id === id) return;
  closeJob();
  $("job-title").textContent = `job ${id}`;
  $("job-state").textContent = "";
  $("job-info").textContent = "";
  $("job-status").textContent = "";
  $("stdin-form").hidden = true;
  const term = new Terminal($("terminal"));
  const v = (view = { id, term, rec: null, out: null, err: null, sent: 0, ws: null, ended: false, tries: 0 });
  // Per stream (stdout, stderr): how many more leading continuation bytes to leave out.
  v.trim = [0, 0];
  $("job-skipped").hidden = true;
  // Keystrokes go to a terminal; a pipe job takes whole lines from the form under it.
  term.onData = (bytes) => v.rec && v.rec.tty && sendInput(v, bytes);
  setButtons(v);
  connect(v);
  term.focus();
}

export function closeJob() {
  if (!view) return;
  const v = view;
  view = null;
  clearTimeout(v.retry);
  if (v.ws) v.ws.close(1000, "detached");
  v.term.dispose();
  $("terminal").replaceChildren();
}

function status(v, message) {
  if (view === v) $("job-status").textContent = message;
}

function live(v) {
  return v.rec && ["queued", "assigned", "running", "lost"].includes(v.rec.state);
}

function setButtons(v) {
  const control = canType() && live(v);
  // Input and end of input go through the stream, so they are offered only while it is open:
  // sent before it opens (the record comes first, by REST) or while it redials, they would be
  // lost.
  const open = v.ws !== null && v.ws.readyState === WebSocket.OPEN;
  $("job-cancel").disabled = !control;
  $("job-eof").disabled = !(control && open && v.rec.state === "running");
  $("stdin-line").disabled = $("stdin-send").disabled = !open;
  $("job-delete").disabled = !(canType() && v.rec && !live(v));
  $("job-stdout").disabled = !(v.rec && v.rec.stdout_len > 0);
  $("job-stderr").hidden = !(v.rec && !v.rec.tty);
  $("job-stderr").disabled = !(v.rec && v.rec.stderr_len > 0);
  $("stdin-form").hidden = !(v.rec && !v.rec.tty && control);
}

function showRecord(v, rec) {
  v.rec = rec;
  $("job-title").textContent = `${rec.id}: ${commandOf(rec)}`;
  const st = $("job-state");
  st.textContent = rec.state + (exitOf(rec) ? ` (${exitOf(rec)})` : "");
  st.className = `state ${rec.state}`;
  const info = [
    rec.slave && `on ${rec.slave}`,
    rec.owner && `by ${rec.owner}`,
    rec.group && `group ${rec.group}`,
    rec.reason,
  ]
    .filter((x) => x)
    .join(", ");
  $("job-info").textContent = info;
  document.title = `${rec.id}: ${commandOf(rec)} — execnode`;
  setButtons(v);
  fitTerminal(v);
}

/** Opens the job stream from the bytes we have; on a drop, dials again from there. */
async function connect(v) {
  // A failed WebSocket handshake tells the page nothing, so ask first: an unknown job, a
  // job that is not ours or a revoked token gets its message from the REST answer.
  try {
    showRecord(v, await api("GET", `/api/v1/jobs/${v.id}`));
  } catch (e) {
    if (view !== v) return;
    if (e.status === 0) return retry(v, e.message);
    status(v, e.message);
    return;
  }
  if (view !== v) return;
  if (v.out === null) skipToTail(v);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  let url = `${scheme}//${location.host}/api/v1/jobs/${v.id}/stream?stdout=${v.out}&stderr=${v.err}`;
  if (canType()) url += "&input=1";
  const ws = (v.ws = new WebSocket(url, token ? ["execnode", `bearer.${token}`] : ["execnode"]));
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    v.tries = 0;
    status(v, "");
    if (view === v) setButtons(v);
    fitTerminal(v);
  };
  ws.onmessage = (ev) => {
    if (view !== v) return;
    if (typeof ev.data === "string") control(v, JSON.parse(ev.data));
    else output(v, new Uint8Array(ev.data));
  };
  ws.onclose = (ev) => {
    if (view !== v || v.ws !== ws) return;
    v.ws = null;
    setButtons(v);
    if (v.ended) return;
    if (ev.code === 1008) {
      // Refused for good (a revoked token, a protocol error): the `error` before it said why.
      // Asking who we are signs the page out if the token is what went.
      if (!$("job-status").textContent) status(v, ev.reason || "the hub closed the stream");
      api("GET", "/api/v1/whoami").catch(() => {});
    } else {
      retry(v, "the connection to the hub was lost: dialling again");
    }
  };
}

/** Where a new view starts reading: the last TAIL bytes of each stream, on a character
 * boundary (as `xn -a --tail`): a stream cut after its start opens without the rest of a
 * character the cut fell in, rather than with a replacement character. */
function skipToTail(v) {
  v.out = Math.max(0, v.rec.stdout_len - TAIL);
  v.err = Math.max(0, v.rec.stderr_len - TAIL);
  v.trim = [v.out ? MAX_CONTINUATION : 0, v.err ? MAX_CONTINUATION : 0];
  if (v.out || v.err) {
    const mib = (n) => `${(n / 1048576).toFixed(1)} MiB`;
    const all = v.rec.stdout_len + v.rec.stderr_len;
    $("job-skipped").textContent =
      `Showing the end of the output: ${mib(all - v.out - v.err)} of ${mib(all)}. ` +
      "Download output for all of it.";
    $("job-skipped").hidden = false;
  }
}

function retry(v, message) {
  status(v, message);
  v.tries += 1;
  v.retry = setTimeout(() => view === v && connect(v), Math.min(100 * 2 ** v.tries, 2000));
}

function control(v, msg) {
  switch (msg.type) {
    case "job":
      showRecord(v, msg.job);
      break;
    case "end":
      v.ended = true;
      showRecord(v, msg.job);
      status(v, `the job ended: ${msg.job.state}${exitOf(msg.job) ? ` (${exitOf(msg.job)})` : ""}`);
      break;
    case "error":
      status(v, msg.message);
      break;
  }
}

/** A data frame: stdout or stderr bytes from a byte offset, written to the terminal once. */
function output(v, frame) {
  if (frame.length < HEADER) return;
  const kind = frame[0];
  const offset = Number(new DataView(frame.buffer, frame.byteOffset).getBigUint64(10));
  const end = offset + frame.length - HEADER;
  const have = kind === STDERR ? v.err : v.out;
  if (end <= have) return; // Sent again after a redial: already shown.
  let data = frame.subarray(HEADER + Math.max(0, have - offset));
  if (kind === STDERR) v.err = end;
  else v.out = end;
  data = trimContinuation(v, kind === STDERR ? 1 : 0, data);
  if (!data.length) return;
  if (v.rec && !v.rec.tty) {
    // Pipes, not a terminal: no line discipline turned \n into \r\n.
    data = crlf(data);
    if (kind === STDERR) {
      v.term.write("\x1b[31m");
      v.term.write(data);
      v.term.write("\x1b[39m");
      return;
    }
  }
  v.term.write(data);
}

/** Leaves out the continuation bytes a view cut inside a character starts with (they may come
 * in more than one frame); the first other byte, or the third left out, ends it. */
function trimContinuation(v, i, data) {
  if (!v.trim[i]) return data;
  let n = 0;
  while (n < data.length && n < v.trim[i] && (data[n] & 0xc0) === 0x80) n++;
  v.trim[i] = n < data.length ? 0 : v.trim[i] - n;
  return data.subarray(n);
}

function crlf(data) {
  let n = 0;
  for (const b of data) if (b === 10) n++;
  if (!n) return data;
  const out = new Uint8Array(data.length + n);
  let j = 0;
  for (const b of data) {
    if (b === 10) out[j++] = 13;
    out[j++] = b;
  }
  return out;
}

/** Keystrokes (tty jobs) or a line (pipe jobs) for the job's stdin, as one data frame. */
function sendInput(v, bytes) {
  if (!canType() || !v.ws || v.ws.readyState !== WebSocket.OPEN) return;
  if (!v.rec || v.rec.state !== "running") {
    status(v, "the job is not running: input not sent");
    return;
  }
  const frame = new Uint8Array(HEADER + bytes.length);
  const dv = new DataView(frame.buffer);
  frame[0] = STDIN;
  dv.setBigUint64(2, BigInt(v.id));
  dv.setBigUint64(10, BigInt(v.sent));
  frame.set(bytes, HEADER);
  v.sent += bytes.length;
  v.ws.send(frame);
}

function send(v, msg) {
  if (v.ws && v.ws.readyState === WebSocket.OPEN) v.ws.send(JSON.stringify(msg));
}

/** A controlling client's terminal sets the job's size; a watcher shows the job's. */
function fitTerminal(v) {
  if (!v.rec) return;
  if (v.rec.tty && canType() && v.rec.state === "running") {
    const { rows, cols } = v.term.fit();
    if (rows !== v.sentRows || cols !== v.sentCols) {
      send(v, { type: "resize", rows, cols });
      if (v.ws && v.ws.readyState === WebSocket.OPEN) [v.sentRows, v.sentCols] = [rows, cols];
    }
  } else if (v.rec.tty) {
    v.term.resize(v.rec.rows, v.rec.cols);
  } else {
    v.term.fit();
  }
}

let resizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => view && fitTerminal(view), 100);
});

$("stdin-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  if (!view) return;
  sendInput(view, new TextEncoder().encode(`${$("stdin-line").value}\n`));
  $("stdin-line").value = "";
});

$("job-eof").addEventListener("click", () => view && send(view, { type: "close_stdin" }));

$("job-cancel").addEventListener("click", async () => {
  const v = view;
  if (!v) return;
  try {
    const rec = await api("POST", `/api/v1/jobs/${v.id}/cancel`);
    // The stream may have shown the job's end while this answer was on its way: the answer
    // is older then, and would show the ended job as running for good.
    if (view === v && !v.ended) showRecord(v, rec);
  } catch (e) {
    status(v, e.message);
  }
});

$("job-delete").addEventListener("click", async () => {
  const v = view;
  if (!v) return;
  try {
    await api("DELETE", `/api/v1/jobs/${v.id}`);
    location.hash = "#/";
  } catch (e) {
    status(v, e.message);
  }
});

/** Downloads a stream's stored bytes as a file (a link could not carry the token). */
async function download(stream) {
  const v = view;
  if (!v) return;
  try {
    const r = await api("GET", `/api/v1/jobs/${v.id}/output?stream=${stream}`, undefined, true);
    const url = URL.createObjectURL(await r.blob());
    const a = document.createElement("a");
    a.href = url;
    a.download = `job-${v.id}.${stream}`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) {
    status(v, e.message);
  }
}

$("job-stdout").addEventListener("click", () => download("stdout"));
$("job-stderr").addEventListener("click", () => download("stderr"));
