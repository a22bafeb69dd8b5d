// The tokens page, for admins: the hub's tokens (never their secrets), a form that makes one
// and shows it the only time it exists in clear, and revoking, which ends every connection the
// token holds (docs/PROTOCOL.md, Tokens).

import { $, api } from "/ui/session.js";

export async function openTokens() {
  $("token-error").textContent = "";
  await refresh();
}

async function refresh() {
  try {
    render(await api("GET", "/api/v1/tokens"));
  } catch (e) {
    $("token-error").textContent = e.message;
  }
}

function render(tokens) {
  const body = $("token-table").tBodies[0];
  body.replaceChildren();
  for (const t of tokens) {
    const row = body.insertRow();
    row.dataset.name = t.name;
    // A bound slave token serves only as its slave name; an unbound one as any free name.
    const bound = t.slave_name ?? (t.role === "slave" ? "any (unbound)" : "");
    const created = new Date(t.created_ms).toLocaleString();
    for (const text of [t.name, t.role, bound, created, expiry(t.expires_ms)]) {
      row.insertCell().textContent = text;
    }
    const revoke = document.createElement("button");
    revoke.type = "button";
    revoke.textContent = "Revoke";
    revoke.addEventListener("click", () => confirmThen(revoke, `Revoke ${t.name}?`, () => remove(t.name)));
    row.insertCell().append(revoke);
  }
}

/** When a token expires (or did), for its row; `undefined`: it lives until revoked. */
function expiry(ms) {
  if (ms === undefined) return "never";
  const at = new Date(ms).toLocaleString();
  return ms <= Date.now() ? `expired ${at}` : at;
}

/** A button that asks again in its own label before it acts (no dialog boxes). */
function confirmThen(button, question, act) {
  if (button.dataset.armed) {
    act();
    return;
  }
  const label = button.textContent;
  button.dataset.armed = "1";
  button.textContent = question;
  setTimeout(() => {
    delete button.dataset.armed;
    button.textContent = label;
  }, 4000);
}

async function remove(name) {
  try {
    await api("DELETE", `/api/v1/tokens/${encodeURIComponent(name)}`);
    $("new-token").hidden = true;
  } catch (e) {
    $("token-error").textContent = e.message;
  }
  await refresh();
}

$("token-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("token-error").textContent = "";
  let made;
  try {
    const want = { name: $("token-name").value.trim(), role: $("token-role").value };
    const slave = $("token-slave-name").value.trim();
    if (want.role === "slave" && slave) want.slave_name = slave;
    // The hub reads the age (30d, 12h, 90m, 45s) and says what is wrong with it.
    const expires = $("token-expires").value.trim();
    if (expires) want.expires_in = expires;
    made = await api("POST", "/api/v1/tokens", want);
  } catch (e) {
    // Refused: nothing changed, so the table stays as it is (and its buttons with it).
    $("token-error").textContent = e.message;
    return;
  }
  // The table first, then the token: whatever the page shows next is already drawn.
  await refresh();
  $("token-name").value = "";
  $("token-slave-name").value = "";
  $("token-expires").value = "";
  const bound = made.slave_name ? `, only as slave ${made.slave_name}` : "";
  const until = made.expires_ms ? `, until ${new Date(made.expires_ms).toLocaleString()}` : "";
  $("new-token-name").textContent = `${made.name} (${made.role}${bound}${until})`;
  $("new-token-value").value = made.token;
  $("new-token").hidden = false;
  $("new-token-value").select();
});

// Only a slave token can be bound to a slave name.
$("token-role").addEventListener("change", () => {
  $("token-slave-name").hidden = $("token-role").value !== "slave";
});

$("new-token-copy").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText($("new-token-value").value);
    $("new-token-copy").textContent = "Copied";
  } catch {
    // No clipboard (a page served over plain http to another machine): it is selected.
    $("new-token-value").select();
  }
});
