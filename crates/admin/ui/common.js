// What both admin pages share: elements built from text (every text from the server goes in
// with textContent: account, label, app and tag names are attacker-influenced), the API with
// the tab's token, the status line, the one form dialog, and changes sent with the ETag of the
// configuration the admin last saw (a change made meanwhile, by hand or in another tab, is
// refused with 412 rather than overwritten).
"use strict";

export const $ = (id) => document.getElementById(id);
export const state = { token: sessionStorage.getItem("labelgate-token") || "", role: null, etag: null };

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

export async function api(method, path, body, ifMatch) {
  const headers = { Authorization: "Bearer " + state.token };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (ifMatch) headers["If-Match"] = ifMatch;
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
  return { status: r.status, etag: r.headers.get("ETag"), json, text };
}

export function say(text, error = false) {
  const m = $("message");
  m.textContent = text;
  m.className = error ? "error" : "";
}

// The API's errors: its list, or its one message.
function errorsOf(r) {
  return (r.json && r.json.errors) || [{ field: null, message: (r.json && r.json.error) || r.text }];
}

// The ETag of the listing the page shows: changes are sent with it, so that one made meanwhile
// (by hand, or in another tab) is refused rather than overwritten. Taken from that listing's
// answer only, never from another read.
export function shown(listing) {
  if (listing.status === 200) state.etag = listing.etag;
}

export function button(text, onclick, write, label) {
  const attrs = { type: "button", class: write ? "write" : "", onclick };
  if (label) attrs["aria-label"] = label;
  return el("button", attrs, text);
}

// Sends a change with the ETag of what the page shows; `reload` re-reads the page's data (at
// once: the listing answers what the file says, the accounts' status follows within seconds).
export async function change(method, path, body, done, reload) {
  const r = await api(method, path, body, state.etag || "\"none\"");
  if (r.status >= 200 && r.status < 300) {
    // Our own change: the next one is made on top of it.
    state.etag = r.etag;
    say(done);
    reload();
  } else if (r.status === 412) {
    say("The configuration changed since this page read it; it was read again. Check, then retry.", true);
    reload();
  } else {
    say("Not changed — " + errorsOf(r).map((e) => (e.field ? e.field + ": " : "") + e.message).join("; "), true);
  }
  return r;
}

// The form dialog: `fields` are [key, label, type, value]; `submit(values)` sends the change and
// returns the API's answer, whose field errors are shown at their fields.
export function openForm(title, fields, submit) {
  const form = $("form");
  const box = form.querySelector(".fields");
  box.replaceChildren();
  $("form-title").textContent = title;
  for (const [key, label, type, value] of fields) {
    const input = type === "textarea"
      ? el("textarea", { id: "f-" + key, name: key, rows: "3" })
      : el("input", { id: "f-" + key, name: key, type, autocomplete: "off" });
    if (value !== undefined && value !== null) input.value = value;
    box.append(el("label", { for: "f-" + key }, label), input, el("p", { class: "error", "data-field": key, role: "alert" }));
  }
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    const values = {};
    for (const [key] of fields) values[key] = form.elements[key].value;
    for (const p of form.querySelectorAll(".error")) p.textContent = "";
    const r = await submit(values);
    if (r.status >= 200 && r.status < 300) { $("dialog").close(); return; }
    for (const e of errorsOf(r)) {
      const p = form.querySelector('.error[data-field="' + CSS.escape(e.field || "") + '"]') || form.querySelector('.error[data-field=""]');
      p.textContent = (p.textContent ? p.textContent + " " : "") + e.message;
    }
  };
  $("dialog").showModal();
  const first = box.querySelector("input, textarea");
  if (first) first.focus();
}

export function writeActionsShown() {
  for (const b of document.querySelectorAll(".write")) b.hidden = state.role !== "write";
}

// A control known by its row and text, so that it can be found again after a re-render.
function controlKey(e) {
  const row = e.closest("tr");
  const where = row ? row.getAttribute("data-account") || row.getAttribute("data-app") || row.getAttribute("data-tag") || "" : "";
  return where + "|" + (e.id || "") + "|" + (e.getAttribute("aria-label") || e.textContent);
}

// Runs `render` (which rebuilds a table) and gives focus back to the same control, so that a
// keyboard user does not lose their place when the page reloads its data.
export function keepingFocus(render) {
  const focused = document.activeElement;
  const key = focused && focused !== document.body && focused.closest("tbody") ? controlKey(focused) : null;
  render();
  if (key === null) return;
  const again = [...document.querySelectorAll("tbody button")].find((e) => controlKey(e) === key);
  if (again) again.focus();
}
