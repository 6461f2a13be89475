//! Cloud application changes: `[[cloud_apps]]` tables added, edited (renamed, hosts, tags) and
//! deleted, and tags added to an app, removed from it, renamed or removed everywhere. A change
//! that leaves a policy rule naming an app or a tag no `[[cloud_apps]]` entry defines any more is
//! refused with `labelgate check`'s own message, which names the rule.

use super::{commit, draft, invalid, validated, Applied, EditError, FieldError, MAX_FIELD};
use labelgate_policy::{same_app_name as same, CloudAppConfig, PolicyConfig, RuleConfig};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Hosts an app may list.
pub const MAX_HOSTS: usize = 256;
/// Tags an app may carry.
pub const MAX_TAGS: usize = 64;

/// The `[[cloud_apps]]` keys a change may set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudAppInput {
    /// The `name` key (unchanged when absent).
    pub name: Option<String>,
    /// The `hosts` key, whole (unchanged when absent).
    pub hosts: Option<Vec<String>>,
    /// The `tags` key, whole (unchanged when absent).
    pub tags: Option<Vec<String>>,
}

/// One change to the cloud apps.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub enum CloudAppChange {
    /// A new app (name and hosts required).
    Add(CloudAppInput),
    /// Edit an app (rename included, with `input.name`).
    Edit { name: String, input: CloudAppInput },
    /// Remove an app.
    Delete { name: String },
    /// One more tag on an app.
    Tag { app: String, tag: String },
    /// One tag less on an app.
    Untag { app: String, tag: String },
    /// A tag renamed on every app that carries it.
    RenameTag { tag: String, to: String },
    /// A tag removed from every app that carries it.
    DeleteTag { tag: String },
}

/// An app as the admin pages show it: what it is and which rules name it.
#[derive(Debug, Clone, Serialize)]
pub struct AppView {
    /// Its name.
    pub name: String,
    /// Its host patterns.
    pub hosts: Vec<String>,
    /// Its tags, as written.
    pub tags: Vec<String>,
    /// The rules that name the app (`cloud_apps` / `not_cloud_apps`).
    pub rules: Vec<String>,
}

/// A tag, the apps that carry it and the rules that name it.
#[derive(Debug, Clone, Serialize)]
pub struct TagView {
    /// The tag as first written (tags compare case-insensitively).
    pub name: String,
    /// The apps that carry it.
    pub apps: Vec<String>,
    /// The rules that name it (`cloud_app_tags` / `not_cloud_app_tags`).
    pub rules: Vec<String>,
}

/// Every app and every tag of a configuration.
#[derive(Debug, Clone, Serialize)]
pub struct CloudApps {
    /// The apps, in file order.
    pub apps: Vec<AppView>,
    /// The tags, in order of first use.
    pub tags: Vec<TagView>,
}

/// What the listing reads of a config, in the policy crate's own types (everything else is
/// ignored).
#[derive(Deserialize)]
struct Shape {
    #[serde(default)]
    cloud_apps: Vec<CloudAppConfig>,
    #[serde(default)]
    policy: PolicyConfig,
}

/// The cloud apps and tags of a config's text, with the rules naming each.
pub fn list(text: &str) -> Result<CloudApps, EditError> {
    let shape: Shape = toml::from_str(text).map_err(|e| EditError::Io(format!("the configuration cannot be read: {}", e.message())))?;
    let rules = &shape.policy.rules;
    let naming = |pick: &dyn Fn(&RuleConfig) -> bool| -> Vec<String> {
        rules.iter().filter(|r| pick(r)).map(|r| r.name.get_ref().clone()).collect()
    };
    let texts = |list: &[toml::Spanned<String>]| list.iter().map(|x| x.get_ref().clone()).collect::<Vec<_>>();
    let apps = shape
        .cloud_apps
        .iter()
        .map(|a| AppView {
            name: a.name.get_ref().clone(),
            hosts: texts(&a.hosts),
            tags: texts(&a.tags),
            rules: naming(&|r| r.names_app(a.name.get_ref())),
        })
        .collect();
    let mut tags: Vec<TagView> = Vec::new();
    for app in &shape.cloud_apps {
        let name = app.name.get_ref();
        for tag in app.tags.iter().map(|t| t.get_ref()) {
            match tags.iter_mut().find(|t| same(&t.name, tag)) {
                Some(t) if !t.apps.contains(name) => t.apps.push(name.clone()),
                Some(_) => {}
                None => tags.push(TagView { name: tag.trim().to_string(), apps: vec![name.clone()], rules: naming(&|r| r.names_tag(tag)) }),
            }
        }
    }
    Ok(CloudApps { apps, tags })
}

/// Applies `change` to the config file at `path` if its ETag is still `if_match`.
pub fn apply(path: Option<&Path>, if_match: &str, change: CloudAppChange) -> Result<Applied, EditError> {
    let (path, mut doc) = draft(path, if_match)?;
    let (before, after, renamed) = {
        let apps = apps_of(&mut doc)?;
        match change {
            CloudAppChange::Add(input) => {
                bounded(&input)?;
                let name = input.name.clone().unwrap_or_default();
                if name.trim().is_empty() {
                    return Err(invalid("name", "the app needs a name".into()));
                }
                if input.hosts.as_ref().is_none_or(Vec::is_empty) {
                    return Err(invalid("hosts", "the app needs at least one host".into()));
                }
                if find(apps, &name).is_some() {
                    return Err(invalid("name", format!("a cloud app named {:?} exists", name.trim())));
                }
                let mut table = toml_edit::Table::new();
                set_fields(&mut table, &input);
                let after = describe(&table);
                apps.push(table);
                (None, Some(after), None)
            }
            CloudAppChange::Edit { name, input } => {
                bounded(&input)?;
                let i = find(apps, &name).ok_or_else(|| no_such_app(&name))?;
                if let Some(new) = &input.name {
                    if !same(new, &name) && find(apps, new).is_some() {
                        return Err(invalid("name", format!("a cloud app named {:?} exists", new.trim())));
                    }
                }
                let table = apps.get_mut(i).ok_or_else(|| no_such_app(&name))?;
                let before = describe(table);
                let old = string(table, "name");
                set_fields(table, &input);
                let new = string(table, "name");
                (Some(before), Some(describe(table)), (old != new).then_some((old, new)))
            }
            CloudAppChange::Delete { name } => {
                let i = find(apps, &name).ok_or_else(|| no_such_app(&name))?;
                let before = apps.get(i).map(describe);
                apps.remove(i);
                (before, None, None)
            }
            CloudAppChange::Tag { app, tag } => {
                let tag = one_tag(&tag)?;
                let i = find(apps, &app).ok_or_else(|| no_such_app(&app))?;
                let table = apps.get_mut(i).ok_or_else(|| no_such_app(&app))?;
                let before = describe(table);
                let mut tags = strings(table, "tags");
                if tags.iter().any(|t| same(t, &tag)) {
                    return Err(invalid("tags", format!("{app:?} already carries the tag {tag:?}")));
                }
                if tags.len() >= MAX_TAGS {
                    return Err(invalid("tags", format!("an app carries at most {MAX_TAGS} tags")));
                }
                tags.push(tag);
                set_array(table, "tags", &tags);
                (Some(before), Some(describe(table)), None)
            }
            CloudAppChange::Untag { app, tag } => {
                let i = find(apps, &app).ok_or_else(|| no_such_app(&app))?;
                let table = apps.get_mut(i).ok_or_else(|| no_such_app(&app))?;
                let before = describe(table);
                let tags = strings(table, "tags");
                if !tags.iter().any(|t| same(t, &tag)) {
                    return Err(EditError::NotFound(format!("{app:?} does not carry the tag {:?}", tag.trim())));
                }
                let kept: Vec<String> = tags.into_iter().filter(|t| !same(t, &tag)).collect();
                set_array(table, "tags", &kept);
                (Some(before), Some(describe(table)), None)
            }
            CloudAppChange::RenameTag { tag, to } => {
                let to = one_tag(&to)?;
                let (before, after) = retag(apps, &tag, Some(&to))?;
                (Some(before), Some(after), Some((tag.trim().to_string(), to)))
            }
            CloudAppChange::DeleteTag { tag } => {
                let (before, after) = retag(apps, &tag, None)?;
                (Some(before), Some(after), None)
            }
        }
    };
    // A rule left naming an app or a tag that no longer exists is check's error, at the rule's
    // key: shown at the field of the change that caused it.
    let new_text = validated(&path, &doc, |d, text| {
        super::field_of(d, text).map(|key| match key.as_str() {
            "cloud_apps" | "not_cloud_apps" => "name".to_string(),
            "cloud_app_tags" | "not_cloud_app_tags" => "tags".to_string(),
            _ => key,
        })
    })?;
    let etag = commit(&path, if_match, &new_text)?;
    Ok(Applied { etag, before, after, renamed })
}

/// Renames `tag` to `to` (or removes it, with `None`) on every app carrying it; the apps
/// changed, before and after.
fn retag(apps: &mut toml_edit::ArrayOfTables, tag: &str, to: Option<&str>) -> Result<(serde_json::Value, serde_json::Value), EditError> {
    let (mut before, mut after) = (Vec::new(), Vec::new());
    for table in apps.iter_mut() {
        let tags = strings(table, "tags");
        if !tags.iter().any(|t| same(t, tag)) {
            continue;
        }
        before.push(describe(table));
        let mut changed: Vec<String> = Vec::new();
        for t in tags {
            let t = if same(&t, tag) { to.map(str::to_string) } else { Some(t) };
            if let Some(t) = t.filter(|t| !changed.iter().any(|c| same(c, t))) {
                changed.push(t);
            }
        }
        set_array(table, "tags", &changed);
        after.push(describe(table));
    }
    if before.is_empty() {
        return Err(EditError::NotFound(format!("no cloud app carries the tag {:?}", tag.trim())));
    }
    Ok((serde_json::Value::Array(before), serde_json::Value::Array(after)))
}

fn no_such_app(name: &str) -> EditError {
    EditError::NotFound(format!("no cloud app named {:?}", name.trim()))
}

/// The `[[cloud_apps]]` array of the document (created when absent).
fn apps_of(doc: &mut toml_edit::DocumentMut) -> Result<&mut toml_edit::ArrayOfTables, EditError> {
    if doc.get("cloud_apps").is_none() {
        doc.insert("cloud_apps", toml_edit::Item::ArrayOfTables(toml_edit::ArrayOfTables::new()));
    }
    match doc.get_mut("cloud_apps") {
        Some(toml_edit::Item::ArrayOfTables(a)) => Ok(a),
        _ => Err(EditError::ReadOnly("cloud apps are not written as [[cloud_apps]] tables; edit them by hand".into())),
    }
}

fn find(apps: &toml_edit::ArrayOfTables, name: &str) -> Option<usize> {
    apps.iter().position(|t| t.get("name").and_then(|v| v.as_str()).is_some_and(|n| same(n, name)))
}

fn string(table: &toml_edit::Table, key: &str) -> String {
    table.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_string()
}

fn strings(table: &toml_edit::Table, key: &str) -> Vec<String> {
    table.get(key).and_then(|v| v.as_array()).map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

fn array(items: &[String]) -> toml_edit::Array {
    items.iter().map(String::as_str).collect()
}

/// Sets `key` to the array `items`, keeping the comment the admin wrote after the old value.
fn set_array(table: &mut toml_edit::Table, key: &str, items: &[String]) {
    let mut value = toml_edit::Value::Array(array(items));
    if let Some(old) = table.get(key).and_then(|v| v.as_value()) {
        *value.decor_mut() = old.decor().clone();
    }
    table[key] = toml_edit::Item::Value(value);
}

fn set_fields(table: &mut toml_edit::Table, input: &CloudAppInput) {
    if let Some(name) = &input.name {
        table["name"] = toml_edit::value(name.trim());
    }
    if let Some(hosts) = &input.hosts {
        let hosts: Vec<String> = hosts.iter().map(|h| h.trim().to_string()).collect();
        set_array(table, "hosts", &hosts);
    }
    if let Some(tags) = &input.tags {
        let mut kept: Vec<String> = Vec::new();
        for t in tags.iter().map(|t| t.trim()) {
            if !kept.iter().any(|k| same(k, t)) {
                kept.push(t.to_string());
            }
        }
        set_array(table, "tags", &kept);
    }
}

fn describe(table: &toml_edit::Table) -> serde_json::Value {
    serde_json::json!({"name": string(table, "name"), "hosts": strings(table, "hosts"), "tags": strings(table, "tags")})
}

/// A tag: non-empty, bounded, no control character.
fn one_tag(tag: &str) -> Result<String, EditError> {
    let tag = tag.trim();
    if tag.is_empty() {
        return Err(invalid("tags", "a tag must not be empty".into()));
    }
    if tag.len() > MAX_FIELD || tag.chars().any(char::is_control) {
        return Err(invalid("tags", format!("a tag is 1 to {MAX_FIELD} bytes without control characters")));
    }
    Ok(tag.to_string())
}

/// Every field bounded, and free of control characters.
fn bounded(input: &CloudAppInput) -> Result<(), EditError> {
    let mut errors = Vec::new();
    let mut check = |field: &str, value: &str| {
        if value.len() > MAX_FIELD {
            errors.push(FieldError { field: Some(field.into()), message: format!("{field} is longer than {MAX_FIELD} bytes") });
        } else if value.chars().any(char::is_control) {
            errors.push(FieldError { field: Some(field.into()), message: format!("{field} holds a control character") });
        }
    };
    if let Some(n) = &input.name {
        check("name", n);
    }
    for h in input.hosts.iter().flatten() {
        check("hosts", h);
    }
    for t in input.tags.iter().flatten() {
        check("tags", t);
    }
    if input.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        errors.push(FieldError { field: Some("name".into()), message: "name must not be empty".into() });
    }
    if input.hosts.as_ref().is_some_and(|h| h.len() > MAX_HOSTS) {
        errors.push(FieldError { field: Some("hosts".into()), message: format!("an app lists at most {MAX_HOSTS} hosts") });
    }
    if input.tags.as_ref().is_some_and(|t| t.len() > MAX_TAGS) {
        errors.push(FieldError { field: Some("tags".into()), message: format!("an app carries at most {MAX_TAGS} tags") });
    }
    if input.tags.iter().flatten().any(|t| t.trim().is_empty()) {
        errors.push(FieldError { field: Some("tags".into()), message: "a tag must not be empty".into() });
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(EditError::Invalid(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> (tempfile::TempDir, std::path::PathBuf, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labelgate.toml");
        std::fs::write(&path, text).unwrap();
        let etag = crate::edit::current_etag(&path).unwrap();
        (dir, path, etag)
    }

    #[test]
    fn the_shipped_config_lists_its_apps_tags_and_the_rule_naming_sanctioned() {
        let list = list(crate::DEFAULT_CONFIG).unwrap();
        assert!(list.apps.iter().any(|a| a.name == "Google Drive" && a.tags == ["Unsanctioned", "Personal storage"]));
        let sanctioned = list.tags.iter().find(|t| t.name == "Sanctioned").unwrap();
        assert_eq!(sanctioned.apps, ["Corporate storage"]);
        assert_eq!(sanctioned.rules, ["Labeled files stay in sanctioned apps"]);
    }

    #[test]
    fn a_tag_renamed_into_one_an_app_already_carries_is_kept_once() {
        let (_dir, path, etag) =
            file("[[cloud_apps]]\nname = \"Drive\"\nhosts = [\"drive.example.test\"]\ntags = [\"Personal storage\", \"Unsanctioned\"]\n");
        let applied =
            apply(Some(&path), &etag, CloudAppChange::RenameTag { tag: "personal STORAGE".into(), to: "Unsanctioned".into() }).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("tags = [\"Unsanctioned\"]"), "{text}");
        assert_eq!(applied.etag, crate::edit::current_etag(&path).unwrap());
    }

    #[test]
    fn apps_are_found_trimmed_in_any_case_and_unknown_ones_are_not_found() {
        let (_dir, path, etag) = file("[[cloud_apps]]\nname = \"Drive\"\nhosts = [\"drive.example.test\"]\n");
        assert!(matches!(apply(Some(&path), &etag, CloudAppChange::Delete { name: "nope".into() }), Err(EditError::NotFound(_))));
        let applied = apply(Some(&path), &etag, CloudAppChange::Tag { app: " DRIVE ".into(), tag: " Sanctioned ".into() }).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("tags = [\"Sanctioned\"]"));
        assert!(
            matches!(apply(Some(&path), &etag, CloudAppChange::Delete { name: "Drive".into() }), Err(EditError::Stale)),
            "the old ETag is stale"
        );
        apply(Some(&path), &applied.etag, CloudAppChange::Delete { name: "drive".into() }).unwrap();
        assert!(!std::fs::read_to_string(&path).unwrap().contains("Drive"));
    }
}
