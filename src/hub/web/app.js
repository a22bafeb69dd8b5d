// The execnode web interface: sign in with a token, list and submit jobs, watch a job's output
// and type into its terminal. It talks to the hub's REST API and job stream exactly as any
// other client does (docs/PROTOCOL.md); the hub only serves these files.
//
// The token lives in sessionStorage (this tab) or, when asked, localStorage, and travels as
// `Authorization: Bearer` on REST calls and as the WebSocket subprotocol `bearer.TOKEN` on the
// job stream (a browser cannot put headers on a WebSocket). Job output is untrusted: it only
// ever reaches the page as text nodes, through the terminal.

import { Terminal } from "/ui/term.js";

const $ = (id) => document.getElementById(id);
const KEY = "execnode.token";
/** How many of the newest jobs the list shows. */
const LIST_LAST = 200;
/** Stream kinds in a data frame's first byte. */
const STDIN = 0, STDOUT = 1, STDERR = 2;
const HEADER = 18;

let token = sessionStorage.getItem(KEY) || localStorage.getItem(KEY) || "";
/** The signed-in token: {name, role}. */
let me = null;
/** The open job view, or null. */
let view = null;
let listTimer = null;

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** One REST call; resolves to the parsed JSON answer (or the raw Response with `raw`). */
async function api(method, path, body, raw = false) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, init);
  } catch (e) {
    throw new HttpError(0, `the hub does not answer (${e.message})`);
  }
  if (!r.ok) {
    let message = `${r.status} ${r.statusText}`;
    try {
      message = (await r.json()).error || message;
    } catch {
      // Not JSON: keep the status line.
    }
    if (r.status === 401 && me) signedOut(message);
    throw new HttpError(r.status, message);
  }
  return raw ? r : r.json();
}

function show(section) {
  for (const id of ["signin", "jobs", "job"]) $(id).hidden = id !== section;
}

function notice(message) {
  $("notice").textContent = message || "";
  $("notice").hidden = !message;
}

function canType() {
  return me && (me.role === "admin" || me.role === "user");
}

// ---- signing in ----

async function start() {
  try {
    me = await api("GET", "/api/v1/whoami");
  } catch (e) {
    if (e.status === 401) {
      if (token) $("signin-error").textContent = e.message;
      forget();
      show("signin");
      $("token").focus();
    } else {
      notice(e.message);
    }
    return;
  }
  $("who").textContent = `${me.name} (${me.role})`;
  $("signout").hidden = !token;
  $("submit-form").hidden = !canType();
  route();
}

function forget() {
  token = "";
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
}

/** The token stopped working (revoked) or the user signed out. */
function signedOut(message) {
  closeJob();
  stopList();
  forget();
  me = null;
  $("who").textContent = "";
  $("signout").hidden = true;
  $("signin-error").textContent = message || "";
  show("signin");
}

$("signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  token = $("token").value.trim();
  $("signin-error").textContent = "";
  (($("remember").checked) ? localStorage : sessionStorage).setItem(KEY, token);
  $("token").value = "";
  await start();
});

$("signout").addEventListener("click", () => signedOut(""));

// ---- routing: #/ is the list, #/job/ID a job ----

function route() {
  if (!me) return;
  notice("");
  const m = location.hash.match(/^#\/job\/(\d+)$/);
  if (m) {
    stopList();
    openJob(Number(m[1]));
  } else {
    closeJob();
    openList();
  }
}

window.addEventListener("hashchange", route);

// ---- the job list ----

function openList() {
  show("jobs");
  refreshList();
  if (!listTimer) listTimer = setInterval(() => document.hidden || refreshList(), 2000);
}

function stopList() {
  clearInterval(listTimer);
  listTimer = null;
}

let listing = false;
async function refreshList() {
  if (listing) return;
  listing = true;
  try {
    const state = $("state-filter").value;
    const q = `last=${LIST_LAST}` + (state ? `&state=${encodeURIComponent(state)}` : "");
    const [jobs, slaves] = await Promise.all([
      api("GET", `/api/v1/jobs?${q}`),
      api("GET", "/api/v1/slaves"),
    ]);
    renderJobs(jobs);
    renderSlaves(slaves);
    notice("");
  } catch (e) {
    if (e.status !== 401) notice(e.message);
  } finally {
    listing = false;
  }
}

$("state-filter").addEventListener("change", refreshList);

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function commandOf(job) {
  return job.command || (job.argv || []).join(" ");
}

function exitOf(job) {
  if (job.exit_code !== null && job.exit_code !== undefined) return String(job.exit_code);
  if (job.signal) return `signal ${job.signal}`;
  return "";
}

function when(ms) {
  if (!ms) return "";
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < 60) return `${Math.max(s, 0)}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return new Date(ms).toLocaleString();
}

function renderJobs(jobs) {
  const body = $("job-table").tBodies[0];
  body.replaceChildren();
  for (const job of jobs.reverse()) {
    const row = body.insertRow();
    row.dataset.id = job.id;
    const link = document.createElement("a");
    link.href = `#/job/${job.id}`;
    link.textContent = job.id;
    cell(row, "").append(link);
    cell(row, job.state, `state ${job.state}`).title = job.reason || "";
    cell(row, exitOf(job));
    cell(row, job.slave || "");
    cell(row, job.owner || "");
    cell(row, when(job.started_ms || job.created_ms));
    cell(row, commandOf(job), "command").title = commandOf(job);
  }
  const n = jobs.length;
  $("job-count").textContent =
    n === LIST_LAST ? `the newest ${n} jobs (xn -l lists them all)` : `${n} job${n === 1 ? "" : "s"}`;
}

$("job-table").addEventListener("click", (ev) => {
  const row = ev.target.closest("tr[data-id]");
  if (row && ev.target.tagName !== "A") location.hash = `#/job/${row.dataset.id}`;
});

function renderSlaves(slaves) {
  const body = $("slave-table").tBodies[0];
  body.replaceChildren();
  for (const s of slaves) {
    const row = body.insertRow();
    cell(row, s.name);
    cell(row, s.draining ? "draining" : "ready");
    cell(row, String(s.slots));
    cell(row, (s.jobs || []).join(" "));
    cell(row, (s.labels || []).join(", "));
  }
  if (!slaves.length) cell(body.insertRow(), "no slave is connected", "muted").colSpan = 5;
}

$("submit-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("submit-error").textContent = "";
  const tty = $("tty").checked;
  const spec = { command: $("command").value, tty };
  const labels = $("labels").value.split(",").map((l) => l.trim()).filter((l) => l);
  if (labels.length) spec.labels = labels;
  if (tty) Object.assign(spec, terminalSize());
  try {
    const { id } = await api("POST", "/api/v1/jobs", spec);
    $("command").value = "";
    location.hash = `#/job/${id}`;
  } catch (e) {
    $("submit-error").textContent = e.message;
  }
});

/** The rows and columns a terminal of this window would have, for a new job. */
function terminalSize() {
  const box = $("jobs").getBoundingClientRect();
  return {
    rows: Math.max(10, Math.min(200, Math.floor((window.innerHeight - 200) / 17))),
    cols: Math.max(40, Math.min(400, Math.floor((box.width - 30) / 8.4))),
  };
}

// ---- one job: its output, live, and its terminal ----

function openJob(id) {
  if (view && view.id === id) return;
  closeJob();
  show("job");
  $("job-title").textContent = `job ${id}`;
  $("job-state").textContent = "";
  $("job-info").textContent = "";
  $("job-status").textContent = "";
  $("stdin-form").hidden = true;
  const term = new Terminal($("terminal"));
  const v = (view = { id, term, rec: null, out: 0, err: 0, sent: 0, ws: null, ended: false, tries: 0 });
  // Keystrokes go to a terminal; a pipe job takes whole lines from the form under it.
  term.onData = (bytes) => v.rec && v.rec.tty && sendInput(v, bytes);
  setButtons(v);
  connect(v);
  term.focus();
}

function closeJob() {
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
  $("job-cancel").disabled = !control;
  $("job-eof").disabled = !(control && v.rec.state === "running");
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
  const info = [rec.slave && `on ${rec.slave}`, rec.owner && `by ${rec.owner}`, rec.reason]
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
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  let url = `${scheme}//${location.host}/api/v1/jobs/${v.id}/stream?stdout=${v.out}&stderr=${v.err}`;
  if (canType()) url += "&input=1";
  const ws = (v.ws = new WebSocket(url, token ? ["execnode", `bearer.${token}`] : ["execnode"]));
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    v.tries = 0;
    status(v, "");
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
    showRecord(v, await api("POST", `/api/v1/jobs/${v.id}/cancel`));
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

start();
