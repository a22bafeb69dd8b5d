// The execnode web interface: sign in with a token, list and submit jobs, and route to one
// job (job.js). It talks to the hub's REST API and job stream exactly as any other client does
// (docs/PROTOCOL.md); the hub only serves these files.
//
// The token (session.js) travels as `Authorization: Bearer` on REST calls and as the WebSocket
// subprotocol `bearer.TOKEN` on the job stream (a browser cannot put headers on a WebSocket).

import { openAudit } from "/ui/audit.js";
import { closeJob, openJob } from "/ui/job.js";
import { openTokens } from "/ui/tokens.js";
import {
  $, api, canType, commandOf, exitOf, forget, keep, me, onUnauthorized, signedInAs, token,
} from "/ui/session.js";

/** How many of the newest jobs the list shows. */
const LIST_LAST = 200;
let listTimer = null;

function show(section) {
  for (const id of ["signin", "jobs", "job", "tokens", "audit"]) $(id).hidden = id !== section;
}

function notice(message) {
  $("notice").textContent = message || "";
  $("notice").hidden = !message;
}

// ---- signing in ----

async function start() {
  try {
    signedInAs(await api("GET", "/api/v1/whoami"));
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
  // A token with a lifetime says when it ends: the page is refused from then on.
  const until = me.expires_ms ? `, until ${new Date(me.expires_ms).toLocaleString()}` : "";
  $("who").textContent = `${me.name} (${me.role}${until})`;
  $("signout").hidden = !token;
  $("submit-form").hidden = $("spec-box").hidden = !canType();
  $("tokens-link").hidden = $("audit-link").hidden = me.role !== "admin";
  route();
}

/** The token stopped working (revoked) or the user signed out. */
function signedOut(message) {
  closeJob();
  stopList();
  forget();
  $("who").textContent = "";
  $("signout").hidden = true;
  $("tokens-link").hidden = $("audit-link").hidden = true;
  $("signin-error").textContent = message || "";
  show("signin");
}

$("signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  keep($("token").value.trim(), $("remember").checked);
  $("signin-error").textContent = "";
  $("token").value = "";
  await start();
});

$("signout").addEventListener("click", () => signedOut(""));

// ---- routing: #/ is the list, #/job/ID a job, #/tokens and #/audit an admin's pages ----

function route() {
  if (!me) return;
  notice("");
  const m = location.hash.match(/^#\/job\/(\d+)$/);
  if (m) {
    stopList();
    show("job");
    openJob(Number(m[1]));
  } else if (location.hash === "#/tokens" && me.role === "admin") {
    stopList();
    closeJob();
    show("tokens");
    openTokens();
  } else if (location.hash === "#/audit" && me.role === "admin") {
    stopList();
    closeJob();
    show("audit");
    openAudit();
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
    const [answer, slaves] = await Promise.all([
      api("GET", `/api/v1/jobs?${q}`, undefined, true),
      api("GET", "/api/v1/slaves"),
    ]);
    const jobs = await answer.json();
    // How many jobs matched, of which the answer holds the newest LIST_LAST.
    const total = Number(answer.headers.get("X-Total-Count") ?? jobs.length);
    renderJobs(jobs, total);
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

function when(ms) {
  if (!ms) return "";
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < 60) return `${Math.max(s, 0)}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return new Date(ms).toLocaleString();
}

function renderJobs(jobs, total) {
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
    n < total
      ? `the newest ${n} of ${total.toLocaleString("en")} jobs (xn -l --all lists them all)`
      : `${n} job${n === 1 ? "" : "s"}`;
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
    cell(row, (s.running || []).join(" "));
    cell(row, (s.labels || []).join(", "));
    cell(row, slaveToken(s));
  }
  if (!slaves.length) cell(body.insertRow(), "no slave is connected", "muted").colSpan = 6;
}

/** Whether a slave serves with a token bound to its name; for admins, which token. */
function slaveToken(s) {
  if (s.token) return s.bound ? `${s.token}, bound` : s.token;
  return s.bound ? "bound" : "shared";
}

$("submit-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("submit-error").textContent = "";
  $("submit-done").textContent = "";
  const tty = $("tty").checked;
  const spec = { command: $("command").value, tty };
  const labels = $("labels").value.split(",").map((l) => l.trim()).filter((l) => l);
  if (labels.length) spec.labels = labels;
  if (tty) Object.assign(spec, terminalSize());
  try {
    if ($("every").checked) {
      // A broadcast: one job per matching slave, named here and left in the list.
      const { group, ids } = await api("POST", "/api/v1/broadcast", spec);
      $("command").value = "";
      $("submit-done").textContent = `group ${group}: jobs ${ids.join(", ")}`;
      refreshList();
      return;
    }
    const { id } = await api("POST", "/api/v1/jobs", spec);
    $("command").value = "";
    location.hash = `#/job/${id}`;
  } catch (e) {
    $("submit-error").textContent = e.message;
  }
});

// A job spec, or an array of them, as JSON (docs/JOBS.md): every field a job has. The hub
// checks it; one job opens, several stay in the list.
$("spec-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("spec-error").textContent = "";
  $("spec-done").textContent = "";
  let spec;
  try {
    spec = JSON.parse($("spec").value);
  } catch (e) {
    $("spec-error").textContent = `not JSON: ${e.message}`;
    return;
  }
  try {
    const made = await api("POST", "/api/v1/jobs", spec);
    if (made.id !== undefined) {
      location.hash = `#/job/${made.id}`;
    } else {
      $("spec-done").textContent = `submitted jobs ${made.ids.join(", ")}`;
      refreshList();
    }
  } catch (e) {
    $("spec-error").textContent = e.message;
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

onUnauthorized(signedOut);
start();
