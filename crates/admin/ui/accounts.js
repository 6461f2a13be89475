// The MIP Labels page: the accounts of the admin API as a table (name, label count, status with
// the time of the last retrieval), their labels expanded under them, search as you type, and
// the changes the API allows.
"use strict";

import { $, api, button, change, el, keepingFocus, openForm, say, shown, state, writeActionsShown } from "./common.js";

const page = { accounts: [], open: new Set() };

// After a change: the listing now, and again once the reload that follows the file's change has
// applied it (about a second).
function loadSoon() {
  load();
  setTimeout(load, 1500);
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
    const code = e.aadsts && !String(e.message).includes("AADSTS" + e.aadsts) ? "AADSTS" + e.aadsts + ": " : "";
    td.append(el("div", { class: "error cause" }, code + e.message));
  }
  return td;
}

// Labels under their parents: display name, priority, active, protection, tooltip; labels Graph
// no longer returns struck through.
function labelList(labels) {
  const byId = new Map(labels.map((l) => [l.id, l]));
  const roots = labels.filter((l) => !l.parent || !byId.has(l.parent));
  const list = el("ul");
  const item = (l, parent) => {
    const li = el("li", { class: (parent ? "sub" : "") + (l.deleted ? " deleted" : ""), "data-label": l.id });
    const facts = ["priority " + l.priority, l.active ? "active" : "inactive", l.protection ? "applies protection" : "no protection"];
    if (parent) facts.unshift("under " + (parent.display_name || parent.name));
    if (l.deleted) facts.push("no longer returned by Graph");
    li.append(el("strong", {}, l.display_name || l.name), " — " + facts.join(", "));
    if (l.tooltip) li.append(el("div", { class: "tooltip" }, l.tooltip));
    return li;
  };
  for (const r of roots) {
    list.append(item(r, null));
    for (const c of labels.filter((l) => l.parent === r.id)) list.append(item(c, r));
  }
  return list;
}

async function toggleLabels(a, tr, button) {
  const next = tr.nextElementSibling;
  if (next && next.classList.contains("labels")) {
    next.remove();
    page.open.delete(a.name);
    button.setAttribute("aria-expanded", "false");
    return;
  }
  page.open.add(a.name);
  button.setAttribute("aria-expanded", "true");
  const r = await api("GET", "/api/v1/accounts/" + encodeURIComponent(a.name) + "/labels");
  const cell = el("td", { colspan: "4" });
  cell.append(r.status === 200 ? (r.json.length ? labelList(r.json) : "No labels retrieved yet.") : "The labels cannot be read.");
  tr.after(el("tr", { class: "labels", "data-account": a.name }, cell));
}

async function downloadCsv(a) {
  const r = await fetch("/api/v1/accounts/" + encodeURIComponent(a.name) + "/labels.csv", { headers: { Authorization: "Bearer " + state.token } });
  if (!r.ok) { say("The labels of " + a.name + " cannot be downloaded (" + r.status + ").", true); return; }
  const blob = await r.blob();
  const link = el("a", { href: URL.createObjectURL(blob), download: a.name.replace(/[^A-Za-z0-9_-]/g, "_") + "-labels.csv" });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

const FIELDS = [
  ["name", "Account name", "text"], ["tenant_id", "Tenant (GUID or domain)", "text"], ["client_id", "Client id", "text"],
  ["client_secret", "Client secret", "password"], ["authority_url", "Authority URL", "url"],
  ["graph_url", "Graph URL", "url"], ["refresh_interval", "Refresh interval", "text"],
];

function openEditor(account) {
  // What the API does not show (the secret, the URLs) is left empty on edit: unchanged.
  const shown = (key) => account && typeof account[key] === "string";
  const fields = FIELDS.map(([key, label, type]) =>
    [key, label + (account && !shown(key) ? " (left empty: unchanged)" : ""), type, shown(key) ? account[key] : ""]);
  openForm(account ? "Edit " + account.name : "Add account", fields, (values) => {
    const body = {};
    for (const [key] of FIELDS) {
      const v = values[key];
      if (v !== "" && !(account && account[key] === v)) body[key] = v;
    }
    return account
      ? change("PUT", "/api/v1/accounts/" + encodeURIComponent(account.name), body, "Saved " + (body.name || account.name), loadSoon)
      : change("POST", "/api/v1/accounts", body, "Added " + body.name, loadSoon);
  });
}

function actions(a) {
  const td = el("td", { class: "actions" });
  const path = "/api/v1/accounts/" + encodeURIComponent(a.name);
  td.append(button("Download CSV", () => downloadCsv(a)));
  td.append(button("Retrieve now", async () => {
    const r = await api("POST", path + "/refresh");
    if (r.status === 202) { say("Retrieving " + a.name + "…"); setTimeout(load, 1500); } else say("Retrieval of " + a.name + " was not started (" + r.status + ").", true);
  }));
  td.append(button("Validate", async () => {
    const r = await api("POST", path + "/validate");
    if (r.json && r.json.valid) say(a.name + ": valid (" + r.json.labels_on_first_page + " labels on the first page)");
    else say(a.name + ": not valid — " + (r.json && r.json.error ? (r.json.error.aadsts ? "AADSTS" + r.json.error.aadsts + ": " : "") + r.json.error.message : r.text), true);
  }));
  if (state.role === "write") {
    td.append(button("Edit", () => openEditor(a), true));
    // The credential is not copied: the copy gets its own secret (or certificate, over the API).
    td.append(button("Duplicate", () => openForm("Duplicate " + a.name,
      [["name", "Name of the copy", "text", a.name + " (copy)"], ["client_secret", "Client secret of the copy", "password", ""]],
      (values) => {
        const body = { name: values.name };
        if (values.client_secret !== "") body.client_secret = values.client_secret;
        return change("POST", path + "/duplicate", body, "Duplicated " + a.name + " as " + values.name, loadSoon);
      }), true));
    td.append(button(a.retrieval ? "Disable" : "Enable",
      () => change("POST", path + (a.retrieval ? "/disable" : "/enable"), undefined, a.name + (a.retrieval ? " disabled" : " enabled"), loadSoon), true));
    td.append(button("Delete", () => {
      if (confirm("Delete the account " + a.name + "?")) change("DELETE", path, undefined, "Deleted " + a.name, loadSoon);
    }, true));
  }
  return td;
}

function render() {
  const q = $("search").value.trim().toLowerCase();
  const rows = $("rows");
  rows.replaceChildren();
  for (const a of page.accounts) {
    if (q && ![a.name, a.tenant_id, a.client_id, a.status].some((f) => String(f).toLowerCase().includes(q))) continue;
    const tr = el("tr", { "data-account": a.name });
    const open = el("button", { type: "button", class: "expand", "aria-expanded": "false", title: "Show the labels of " + a.name }, a.name);
    open.addEventListener("click", () => toggleLabels(a, tr, open));
    tr.append(el("td", {}, open), el("td", {}, String(a.label_count)), statusCell(a), actions(a));
    rows.append(tr);
  }
  if (!rows.children.length) rows.append(el("tr", {}, el("td", { colspan: "4" }, q ? "No account matches." : "No accounts yet.")));
  // Expanded accounts stay expanded. A copy: toggleLabels adds the name back, and a Set's
  // iterator visits what is added to it while it runs (iterating the Set itself never ended).
  const open = [...page.open];
  page.open.clear();
  for (const name of open) {
    const a = page.accounts.find((x) => x.name === name);
    const tr = document.querySelector('tr[data-account="' + CSS.escape(name) + '"]');
    if (a && tr) toggleLabels(a, tr, tr.querySelector("button.expand"));
    else if (a) page.open.add(name); // filtered out by the search for now: open again when shown
  }
  writeActionsShown();
}

export async function load() {
  const r = await api("GET", "/api/v1/accounts");
  if (r.status !== 200) { say("The accounts cannot be read (" + r.status + ").", true); return r; }
  shown(r);
  page.accounts = r.json;
  keepingFocus(render);
  return r;
}

export function clear() {
  page.accounts = [];
  page.open.clear();
  $("rows").replaceChildren();
}

export function setUp() {
  $("search").addEventListener("input", render);
  $("reload").addEventListener("click", () => { say("Reloaded"); load(); });
  $("add").addEventListener("click", () => openEditor(null));
}
