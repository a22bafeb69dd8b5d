// The audit view, for admins: the hub's audit log (`GET /api/v1/audit`, docs/PROTOCOL.md,
// Audit log), newest first, a page of rows at a time. Every cell is set as text: a row holds
// request paths and names that whoever reached the hub chose.

import { $, api } from "/ui/session.js";

/** Rows a page shows (what `GET /api/v1/audit` answers when it is not told). */
const PAGE = 100;

/** What each action is called in the table; an action a newer hub knows shows as it is. */
const ACTIONS = {
  token_created: "token created",
  token_revoked: "token revoked",
  job_cancelled: "job cancelled",
  job_deleted: "job deleted",
  jobs_expired: "jobs expired",
  refused: "refused",
};

/** The page shown: the id its rows are older than (`undefined`: the newest rows). */
let shownBefore;
/** The smallest id of the rows shown: the next older page starts below it. */
let oldestShown;
/** Counts loads, so that only the latest one requested draws (clicks may overtake). */
let loads = 0;

/** Opens the view on the newest rows, read afresh. */
export async function openAudit() {
  await load(undefined);
}

async function load(before) {
  const mine = ++loads;
  $("audit-error").textContent = "";
  $("audit-older").disabled = true;
  const q = `limit=${PAGE}` + (before === undefined ? "" : `&before=${before}`);
  let rows;
  try {
    rows = await api("GET", `/api/v1/audit?${q}`);
  } catch (e) {
    if (mine !== loads) return;
    // A 403 says who may read the log, in the hub's words.
    $("audit-error").textContent = e.message;
    $("audit-older").disabled = oldestShown === undefined;
    return;
  }
  if (mine !== loads) return;
  if (!rows.length && before !== undefined) {
    // The rows shown were the oldest after all (there were exactly a page of them).
    $("audit-count").textContent = "no older rows";
    return;
  }
  shownBefore = before;
  oldestShown = rows.length ? rows[rows.length - 1].id : undefined;
  render(rows);
  // A short page is the last one: the hub had no more.
  $("audit-older").disabled = rows.length < PAGE;
}

function render(rows) {
  const body = $("audit-table").tBodies[0];
  body.replaceChildren();
  for (const e of rows) {
    const row = body.insertRow();
    row.dataset.id = e.id;
    row.dataset.action = e.action;
    const cells = [
      new Date(e.time_ms).toLocaleString(),
      e.actor,
      ACTIONS[e.action] ?? e.action,
      e.target,
      e.peer ?? "",
      e.detail,
      e.count > 1 ? `×${e.count}` : "",
    ];
    for (const text of cells) row.insertCell().textContent = text;
    // The name the JSON and `xnhub audit` use, for an admin who greps for it.
    row.cells[2].title = e.action;
    row.cells[3].className = "target";
    row.cells[5].className = "detail";
  }
  if (!rows.length) {
    const cell = body.insertRow().insertCell();
    cell.colSpan = 7;
    cell.className = "muted";
    cell.textContent = "nothing recorded yet";
  }
  const n = rows.length;
  $("audit-count").textContent =
    shownBefore === undefined
      ? `the newest ${n} row${n === 1 ? "" : "s"}`
      : `${n} older row${n === 1 ? "" : "s"}`;
}

$("audit-older").addEventListener("click", () => {
  if (oldestShown !== undefined) load(oldestShown);
});

$("audit-newest").addEventListener("click", () => load(undefined));
