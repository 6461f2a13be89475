// The MIP Labels page: the accounts of the admin API as a table, their labels expanded, and
// the changes the API allows. Every text from the server is set with textContent (account and
// label names are attacker-influenced); the token lives in sessionStorage (this tab only).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { token: sessionStorage.getItem("labelgate-token") || "", role: null, accounts: [], open: new Set() };

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

async function api(method, path, body, ifMatch) {
  const headers = { Authorization: "Bearer " + state.token };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (ifMatch) headers["If-Match"] = ifMatch;
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
  return { status: r.status, etag: r.headers.get("ETag"), json, text };
}

function say(text, error = false) {
  const m = $("message");
  m.textContent = text;
  m.className = error ? "error" : "";
}

// "Active · retrieved 14:02 (CET)" in the browser's time zone, the UTC instant in <time>.
function statusCell(a) {
  const td = el("td", { class: a.status === "Active" ? "status-active" : /Failed|Inactive/.test(a.status) ? "status-failed" : "" });
  td.append(a.status);
  if (a.last_retrieval) {
    const when = new Date(a.last_retrieval);
    const zone = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" }).formatToParts(when).find((p) => p.type === "timeZoneName");
    const shown = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) + (zone ? " (" + zone.value + ")" : "");
    td.append(" · retrieved ", el("time", { datetime: a.last_retrieval, title: a.last_retrieval }, shown));
  }
  if (a.last_error) {
    const e = a.last_error;
    const code = e.aadsts ? "AADSTS" + e.aadsts + ": " : "";
    td.append(el("div", { class: "error" }, code + e.message));
  }
  return td;
}

function labelRows(labels) {
  const byId = new Map(labels.map((l) => [l.id, l]));
  const roots = labels.filter((l) => !l.parent || !byId.has(l.parent));
  const list = el("ul");
  const item = (l, sub) => {
    const li = el("li", { class: (sub ? "sub " : "") + (l.deleted ? "deleted" : "") });
    const facts = ["priority " + l.priority, l.active ? "active" : "inactive"];
    if (l.protection) facts.push("protected");
    li.append(el("strong", {}, l.display_name || l.name), " — " + facts.join(", "));
    if (l.tooltip) li.append(el("div", {}, l.tooltip));
    return li;
  };
  for (const r of roots) {
    list.append(item(r, false));
    for (const c of labels.filter((l) => l.parent === r.id)) list.append(item(c, true));
  }
  return list;
}

async function toggleLabels(a, tr) {
  const next = tr.nextElementSibling;
  if (next && next.classList.contains("labels")) { next.remove(); state.open.delete(a.name); return; }
  state.open.add(a.name);
  const r = await api("GET", "/api/v1/accounts/" + encodeURIComponent(a.name) + "/labels");
  const cell = el("td", { colspan: "4" });
  cell.append(r.status === 200 ? (r.json.length ? labelRows(r.json) : "No labels retrieved yet.") : "The labels cannot be read.");
  tr.after(el("tr", { class: "labels", "data-account": a.name }, cell));
}

async function downloadCsv(a) {
  const r = await fetch("/api/v1/accounts/" + encodeURIComponent(a.name) + "/labels.csv", { headers: { Authorization: "Bearer " + state.token } });
  const blob = await r.blob();
  const link = el("a", { href: URL.createObjectURL(blob), download: a.name.replace(/[^A-Za-z0-9_-]/g, "_") + "-labels.csv" });
  document.body.append(link);
  link.click();
  link.remove();
}

async function change(method, path, body, done) {
  const etag = (await api("GET", "/api/v1/accounts")).etag;
  const r = await api(method, path, body, etag);
  if (r.status >= 200 && r.status < 300) { say(done); setTimeout(load, 1200); return r; }
  const errors = (r.json && r.json.errors) || [{ field: null, message: (r.json && r.json.error) || r.text }];
  say(errors.map((e) => (e.field ? e.field + ": " : "") + e.message).join("; "), true);
  return r;
}

function actions(a) {
  const td = el("td", { class: "actions" });
  const name = "/api/v1/accounts/" + encodeURIComponent(a.name);
  td.append(el("button", { type: "button", onclick: () => downloadCsv(a) }, "Download CSV"));
  td.append(el("button", { type: "button", onclick: async () => { await api("POST", name + "/refresh"); say("Retrieving " + a.name + "…"); setTimeout(load, 1500); } }, "Retrieve now"));
  td.append(el("button", { type: "button", onclick: async () => {
    const r = await api("POST", name + "/validate");
    if (r.json && r.json.valid) say(a.name + ": valid (" + r.json.labels_on_first_page + " labels on the first page)");
    else say(a.name + ": not valid — " + (r.json && r.json.error ? (r.json.error.aadsts ? "AADSTS" + r.json.error.aadsts + ": " : "") + r.json.error.message : r.text), true);
  } }, "Validate"));
  if (state.role === "write") {
    td.append(el("button", { type: "button", class: "write", onclick: () => openEditor(a) }, "Edit"));
    td.append(el("button", { type: "button", class: "write", onclick: async () => {
      const copy = prompt("Name of the copy of " + a.name);
      if (copy) await change("POST", name + "/duplicate", { name: copy }, "Duplicated " + a.name);
    } }, "Duplicate"));
    td.append(el("button", { type: "button", class: "write", onclick: () => change("POST", name + (a.retrieval ? "/disable" : "/enable"), undefined, a.name + (a.retrieval ? " disabled" : " enabled")) }, a.retrieval ? "Disable" : "Enable"));
    td.append(el("button", { type: "button", class: "write", onclick: async () => {
      if (confirm("Delete the account " + a.name + "?")) await change("DELETE", name, undefined, "Deleted " + a.name);
    } }, "Delete"));
  }
  return td;
}

function render() {
  const q = $("search").value.trim().toLowerCase();
  const rows = $("rows");
  rows.replaceChildren();
  for (const a of state.accounts) {
    if (q && ![a.name, a.tenant_id, a.client_id, a.status].some((f) => String(f).toLowerCase().includes(q))) continue;
    const tr = el("tr", { "data-account": a.name });
    const open = el("button", { type: "button", "aria-expanded": "false", onclick: () => { toggleLabels(a, tr); } }, a.name);
    tr.append(el("td", {}, open), el("td", {}, String(a.label_count)), statusCell(a), actions(a));
    rows.append(tr);
  }
  for (const b of document.querySelectorAll(".write")) b.hidden = state.role !== "write";
}

async function load() {
  const r = await api("GET", "/api/v1/accounts");
  if (r.status === 401) { signOut("That token was refused."); return; }
  if (r.status !== 200) { say("The accounts cannot be read (" + r.status + ").", true); return; }
  state.accounts = r.json;
  render();
  // A copy: toggleLabels adds the name back, and a Set's iterator visits what is added to it
  // while it runs (iterating the Set itself looped forever once an account was open).
  const open = [...state.open];
  state.open.clear();
  for (const name of open) {
    const a = state.accounts.find((x) => x.name === name);
    const tr = document.querySelector('tr[data-account="' + CSS.escape(name) + '"]');
    if (a && tr) toggleLabels(a, tr);
  }
}

const FIELDS = [
  ["name", "Account name", "text"], ["tenant_id", "Tenant (GUID or domain)", "text"], ["client_id", "Client id", "text"],
  ["client_secret", "Client secret (left empty: unchanged)", "password"], ["authority_url", "Authority URL", "url"],
  ["graph_url", "Graph URL", "url"], ["refresh_interval", "Refresh interval", "text"],
];

function openEditor(account) {
  const form = $("account-form");
  const box = form.querySelector(".fields");
  box.replaceChildren();
  $("editor-title").textContent = account ? "Edit " + account.name : "Add account";
  for (const [key, label, type] of FIELDS) {
    const input = el("input", { id: "f-" + key, name: key, type, autocomplete: "off" });
    if (account && key in account && typeof account[key] === "string") input.value = account[key];
    box.append(el("label", { for: "f-" + key }, label), input, el("p", { class: "error", "data-field": key }));
  }
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    const body = {};
    for (const [key] of FIELDS) {
      const v = form.elements[key].value;
      if (v !== "" && !(account && account[key] === v)) body[key] = v;
    }
    for (const p of form.querySelectorAll(".error")) p.textContent = "";
    const r = account
      ? await change("PUT", "/api/v1/accounts/" + encodeURIComponent(account.name), body, "Saved " + (body.name || account.name))
      : await change("POST", "/api/v1/accounts", body, "Added " + body.name);
    if (r.status >= 200 && r.status < 300) { $("editor").close(); return; }
    for (const e of (r.json && r.json.errors) || []) {
      const p = form.querySelector('.error[data-field="' + CSS.escape(e.field || "") + '"]') || form.querySelector('.error[data-field=""]');
      p.textContent = e.message;
    }
  };
  $("editor").showModal();
}

function signOut(why) {
  sessionStorage.removeItem("labelgate-token");
  state.token = "";
  $("accounts").hidden = true;
  $("signout").hidden = true;
  $("who").textContent = "";
  $("signin").hidden = false;
  $("signin-error").textContent = why || "";
  $("token").focus();
}

async function signIn(token) {
  state.token = token;
  const r = await api("GET", "/api/v1/whoami");
  if (r.status !== 200) { signOut(r.status === 429 ? "Too many failed sign-ins; retry later." : "That token was refused."); return; }
  sessionStorage.setItem("labelgate-token", token);
  state.role = r.json.role;
  $("who").textContent = r.json.name + " (" + r.json.role + ")";
  $("signin").hidden = true;
  $("signout").hidden = false;
  $("accounts").hidden = false;
  await load();
  $("search").focus();
}

document.addEventListener("DOMContentLoaded", () => {
  $("signin").addEventListener("submit", (ev) => { ev.preventDefault(); signIn($("token").value.trim()); });
  $("signout").addEventListener("click", () => signOut());
  $("search").addEventListener("input", render);
  $("reload").addEventListener("click", () => { say("Reloaded"); load(); });
  $("add").addEventListener("click", () => openEditor(null));
  $("cancel").addEventListener("click", () => $("editor").close());
  if (state.token) signIn(state.token); else signOut();
});
