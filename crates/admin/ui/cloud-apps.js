// The Cloud Application Tags page: the [[cloud_apps]] of the configuration with their hosts and
// tags, filterable by tag, with the rules that name each app and tag; apps and tags added,
// edited and deleted through the admin API (a change that would leave a rule naming an app or a
// tag nothing defines is refused by the API, naming the rule; the refusal is shown).
"use strict";

import { $, api, button, change, el, keepingFocus, openForm, say, shown, state, writeActionsShown } from "./common.js";

const page = { apps: [], tags: [] };
const appPath = (name) => "/api/v1/cloud-apps/" + encodeURIComponent(name);
const tagPath = (tag) => "/api/v1/cloud-app-tags/" + encodeURIComponent(tag);
// Tags compare as the policy compares them: trimmed, ASCII letters in any case.
const asciiLower = (s) => s.trim().replace(/[A-Z]/g, (c) => c.toLowerCase());
const same = (a, b) => asciiLower(a) === asciiLower(b);

function lines(text) {
  return text.split("\n").map((h) => h.trim()).filter((h) => h !== "");
}

// Only what was changed is sent: the rest of the app (and the admin's comments) stays as written.
function openAppEditor(app) {
  const fields = [
    ["name", "Name", "text", app ? app.name : ""],
    ["hosts", "Hosts (one per line: drive.example.com or *.example.com)", "textarea", app ? app.hosts.join("\n") : ""],
    ["tags", "Tags (one per line)", "textarea", app ? app.tags.join("\n") : ""],
  ];
  openForm(app ? "Edit " + app.name : "Add cloud app", fields, (values) => {
    const body = {};
    if (!app || values.name !== app.name) body.name = values.name;
    const hosts = lines(values.hosts);
    const tags = lines(values.tags);
    if (!app || hosts.join("\n") !== app.hosts.join("\n")) body.hosts = hosts;
    if (!app || tags.join("\n") !== app.tags.join("\n")) body.tags = tags;
    return app
      ? change("PUT", appPath(app.name), body, "Saved " + (body.name || app.name), load)
      : change("POST", "/api/v1/cloud-apps", body, "Added " + body.name, load);
  });
}

function tagChip(app, tag) {
  const chip = el("span", { class: "tag", "data-tag": tag }, tag);
  if (state.role === "write") {
    chip.append(button("×", () => {
      if (confirm("Remove the tag " + tag + " from " + app.name + "?")) {
        change("DELETE", appPath(app.name) + "/tags/" + encodeURIComponent(tag), undefined, "Removed " + tag + " from " + app.name, load);
      }
    }, true, "Remove the tag " + tag + " from " + app.name));
  }
  return chip;
}

function rulesCell(rules) {
  return el("td", { class: "rules" }, rules.length ? rules.join("; ") : "—");
}

function render() {
  const wanted = $("tag-filter").value;
  const rows = $("app-rows");
  rows.replaceChildren();
  for (const app of page.apps) {
    if (wanted && !app.tags.some((t) => same(t, wanted))) continue;
    const tags = el("td", { class: "tags" }, ...app.tags.map((t) => tagChip(app, t)));
    const actions = el("td", { class: "actions" });
    if (state.role === "write") {
      actions.append(
        button("Add tag", () => openForm("Add a tag to " + app.name, [["tags", "Tag", "text", wanted || ""]],
          (values) => change("POST", appPath(app.name) + "/tags", { tag: values.tags }, "Tagged " + app.name + " " + values.tags, load)), true),
        button("Edit", () => openAppEditor(app), true),
        button("Delete", () => {
          if (confirm("Delete the cloud app " + app.name + "?")) change("DELETE", appPath(app.name), undefined, "Deleted " + app.name, load);
        }, true),
      );
    }
    rows.append(el("tr", { "data-app": app.name },
      el("td", {}, el("strong", {}, app.name)), el("td", { class: "hosts" }, app.hosts.join(", ")), tags, rulesCell(app.rules), actions));
  }
  if (!rows.children.length) rows.append(el("tr", {}, el("td", { colspan: "5" }, wanted ? "No app carries this tag." : "No cloud apps configured.")));

  const tagRows = $("tag-rows");
  tagRows.replaceChildren();
  for (const tag of page.tags) {
    const actions = el("td", { class: "actions" });
    if (state.role === "write") {
      actions.append(
        button("Rename", () => openForm("Rename the tag " + tag.name, [["name", "New name", "text", tag.name]],
          (values) => change("PUT", tagPath(tag.name), { name: values.name }, "Renamed " + tag.name + " to " + values.name, load)), true,
          "Rename the tag " + tag.name),
        button("Delete", () => {
          if (confirm("Remove the tag " + tag.name + " from every app?")) change("DELETE", tagPath(tag.name), undefined, "Deleted the tag " + tag.name, load);
        }, true, "Delete the tag " + tag.name),
      );
    }
    const show = button(tag.name, () => { $("tag-filter").value = tag.name; render(); }, false, "Show the apps tagged " + tag.name);
    tagRows.append(el("tr", { "data-tag": tag.name }, el("td", {}, show), el("td", {}, tag.apps.join(", ")), rulesCell(tag.rules), actions));
  }
  writeActionsShown();
}

function fillFilter() {
  const select = $("tag-filter");
  const kept = select.value;
  select.replaceChildren(el("option", { value: "" }, "All tags"), ...page.tags.map((t) => el("option", { value: t.name }, t.name)));
  select.value = page.tags.some((t) => t.name === kept) ? kept : "";
}

export async function load() {
  const r = await api("GET", "/api/v1/cloud-apps");
  if (r.status !== 200) { say("The cloud apps cannot be read (" + r.status + ").", true); return r; }
  shown(r);
  page.apps = r.json.apps;
  page.tags = r.json.tags;
  fillFilter();
  keepingFocus(render);
  return r;
}

export function clear() {
  page.apps = [];
  page.tags = [];
  $("app-rows").replaceChildren();
  $("tag-rows").replaceChildren();
}

export function setUp() {
  $("tag-filter").addEventListener("change", render);
  $("apps-reload").addEventListener("click", () => { say("Reloaded"); load(); });
  $("add-app").addEventListener("click", () => openAppEditor(null));
}
