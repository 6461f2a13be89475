// The admin pages' entry: sign-in with an admin token kept for this tab only (sessionStorage),
// then the page the address names: /ui/ (MIP Labels) or /ui/cloud-apps (Cloud Application Tags).
"use strict";

import { $, api, state } from "./common.js";
import * as accounts from "./accounts.js";
import * as cloudApps from "./cloud-apps.js";

const pages = {
  labels: { section: "accounts", title: "MIP Labels", module: accounts, focus: "search" },
  apps: { section: "cloud-apps", title: "Cloud Application Tags", module: cloudApps, focus: "tag-filter" },
};
const current = pages[location.pathname.replace(/\/+$/, "").endsWith("/cloud-apps") ? "apps" : "labels"];

function signOut(why) {
  sessionStorage.removeItem("labelgate-token");
  state.token = "";
  state.role = null;
  // Nothing of the last session stays on the page.
  for (const p of Object.values(pages)) {
    $(p.section).hidden = true;
    p.module.clear();
  }
  if ($("dialog").open) $("dialog").close();
  $("message").textContent = "";
  $("signout").hidden = true;
  $("who").textContent = "";
  $("signin").hidden = false;
  $("signin-error").textContent = why || "";
  $("token").focus();
}

async function signIn(token) {
  state.token = token;
  const r = await api("GET", "/api/v1/whoami");
  if (r.status !== 200) {
    signOut(r.status === 429 ? "Too many failed sign-ins; retry later." : r.status === 404 ? "This instance has no admin API." : "That token was refused.");
    return;
  }
  sessionStorage.setItem("labelgate-token", token);
  state.role = r.json.role;
  $("who").textContent = r.json.name + " (" + r.json.role + ")";
  $("signin").hidden = true;
  $("signout").hidden = false;
  $(current.section).hidden = false;
  const loaded = await current.module.load();
  if (loaded.status === 401) { signOut("That token was refused."); return; }
  $(current.focus).focus();
}

document.addEventListener("DOMContentLoaded", () => {
  document.title = current.title + " · labelgate";
  $("title").textContent = current.title;
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.page === (current === pages.apps ? "apps" : "labels")) link.setAttribute("aria-current", "page");
  }
  $("signin").addEventListener("submit", (ev) => { ev.preventDefault(); signIn($("token").value.trim()); });
  $("signout").addEventListener("click", () => signOut());
  $("cancel").addEventListener("click", () => $("dialog").close());
  accounts.setUp();
  cloudApps.setUp();
  if (state.token) signIn(state.token); else signOut();
});
