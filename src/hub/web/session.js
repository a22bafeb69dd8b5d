// The page's session with the hub: the token (kept in sessionStorage, or localStorage when
// the user asks), who it belongs to, and REST calls made with it (`Authorization: Bearer`).

export const $ = (id) => document.getElementById(id);
const KEY = "execnode.token";

export let token = sessionStorage.getItem(KEY) || localStorage.getItem(KEY) || "";
/** The signed-in token: {name, role}, from `GET /api/v1/whoami`. */
export let me = null;
let unauthorized = () => {};

/** Keeps a token for this tab, or for this browser with `persist`. */
export function keep(t, persist) {
  token = t;
  (persist ? localStorage : sessionStorage).setItem(KEY, t);
}

export function forget() {
  token = "";
  me = null;
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
}

export function signedInAs(who) {
  me = who;
}

/** What to do when the hub stops taking the token (revoked): called with its message. */
export function onUnauthorized(fn) {
  unauthorized = fn;
}

export class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** One REST call; resolves to the parsed JSON answer (or the raw Response with `raw`). */
export async function api(method, path, body, raw = false) {
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
    if (r.status === 401 && me) unauthorized(message);
    throw new HttpError(r.status, message);
  }
  return raw ? r : r.json();
}

export function canType() {
  return me && (me.role === "admin" || me.role === "user");
}

export function commandOf(job) {
  return job.command || (job.argv || []).join(" ");
}

export function exitOf(job) {
  if (job.exit_code !== null && job.exit_code !== undefined) return String(job.exit_code);
  if (job.signal) return `signal ${job.signal}`;
  return "";
}
