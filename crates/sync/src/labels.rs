//! Graph's two label shapes normalised into the catalog's [`Label`]: the beta list is flat with
//! each sublabel's `parent` embedded; the v1.0 list nests `sublabels`. Parsing is lenient (unknown
//! fields ignored, every field but `id` optional, `tooltip`/`toolTip`, `contentFormats` array or
//! `applicableTo` string), labels are de-duplicated by id, and a parent seen only embedded gets
//! a stub.

use crate::config::LabelApi;
use labelgate_catalog::{normalize_id, parse_guid, priority_from_sensitivity, priority_from_v1, Label, LabelOrigin};
use serde_json::Value;
use std::collections::HashMap;

fn text(v: &Value, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| v.get(*k).and_then(Value::as_str)).map(str::to_string)
}

fn flag(v: &Value, keys: &[&str]) -> Option<bool> {
    keys.iter().find_map(|k| v.get(*k).and_then(Value::as_bool))
}

fn int(v: &Value, key: &str) -> Option<i32> {
    v.get(key).and_then(Value::as_i64).and_then(|n| i32::try_from(n).ok())
}

fn formats(v: &Value) -> Vec<String> {
    if let Some(list) = v.get("contentFormats").and_then(Value::as_array) {
        return list.iter().filter_map(Value::as_str).map(str::to_string).collect();
    }
    text(v, &["applicableTo"])
        .map(|s| s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect())
        .unwrap_or_default()
}

fn one(v: &Value, api: LabelApi, parent: Option<String>, tenant: Option<&str>) -> Option<Label> {
    let id = text(v, &["id"])?;
    parse_guid(&id)?;
    let name = text(v, &["name"]).unwrap_or_else(|| id.clone());
    let mut l = Label::new(&id, &name);
    l.display_name = text(v, &["displayName"]).filter(|s| !s.is_empty()).unwrap_or(name);
    l.description = text(v, &["description"]).filter(|s| !s.is_empty());
    l.tooltip = text(v, &["tooltip", "toolTip"]).filter(|s| !s.is_empty());
    l.color = text(v, &["color"]).filter(|s| !s.is_empty());
    l.priority = match api {
        LabelApi::Beta => int(v, "sensitivity").map(priority_from_sensitivity),
        LabelApi::V1 => int(v, "priority").map(priority_from_v1).or_else(|| int(v, "sensitivity").map(priority_from_sensitivity)),
    }
    .unwrap_or(0);
    l.is_active = flag(v, &["isActive", "isEnabled"]).unwrap_or(true);
    l.has_protection = flag(v, &["hasProtection"]).unwrap_or(false);
    l.content_formats = formats(v);
    l.parent = parent;
    l.tenant = tenant.map(normalize_id);
    l.origin = LabelOrigin::Graph;
    Some(l)
}

/// Normalises the label objects of one retrieval (all pages, in order).
pub fn normalize(values: &[Value], api: LabelApi, tenant: Option<&str>) -> Vec<Label> {
    fn walk_v1(v: &Value, parent: Option<String>, tenant: Option<&str>, acc: &mut Vec<(Label, bool)>) {
        if let Some(l) = one(v, LabelApi::V1, parent, tenant) {
            let id = l.id.clone();
            acc.push((l, false));
            for sub in v.get("sublabels").and_then(Value::as_array).into_iter().flatten() {
                walk_v1(sub, Some(id.clone()), tenant, acc);
            }
        }
    }
    let mut found: Vec<(Label, bool)> = Vec::new();
    for v in values {
        match api {
            LabelApi::V1 => walk_v1(v, None, tenant, &mut found),
            LabelApi::Beta => {
                let parent = v.get("parent").filter(|p| p.is_object());
                let parent_id = parent.and_then(|p| text(p, &["id"])).filter(|id| parse_guid(id).is_some()).map(|id| normalize_id(&id));
                if let Some(l) = one(v, LabelApi::Beta, parent_id.clone(), tenant) {
                    found.push((l, false));
                }
                // The embedded parent's other fields are not trusted as fresh: a stub, replaced
                // when the parent appears itself.
                if let (Some(p), Some(_)) = (parent, parent_id) {
                    if let Some(stub) = one(p, LabelApi::Beta, None, tenant) {
                        found.push((stub, true));
                    }
                }
            }
        }
    }
    // De-duplicated by id, the first copy winning, except that a stub made for an embedded
    // parent gives way to the label itself.
    let mut out: Vec<(Label, bool)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (l, stub) in found {
        match index.get(&l.id) {
            Some(&i) if out[i].1 && !stub => out[i] = (l, false),
            Some(_) => {}
            None => {
                index.insert(l.id.clone(), out.len());
                out.push((l, stub));
            }
        }
    }
    out.into_iter().map(|(l, _)| l).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn beta_shape_with_embedded_parent_only() {
        let v = vec![json!({"id": "A20CBAE4-0C05-448C-B342-CB6C618D0957", "name": "Full Time Employees", "sensitivity": 4, "tooltip": "t",
            "isActive": true, "contentFormats": ["file", "email"], "hasProtection": true, "extra": {"x": 1},
            "parent": {"id": "8cf764ac-ef2b-4787-8ccd-0a8a65e7bafa", "name": "Contoso Confidential", "sensitivity": 4}})];
        let l = normalize(&v, LabelApi::Beta, Some("T"));
        assert_eq!(l.len(), 2, "a stub for the parent seen only embedded");
        assert_eq!(l[0].id, "a20cbae4-0c05-448c-b342-cb6c618d0957");
        assert_eq!(l[0].parent.as_deref(), Some("8cf764ac-ef2b-4787-8ccd-0a8a65e7bafa"));
        assert_eq!(l[0].tooltip.as_deref(), Some("t"));
        assert!(l[0].has_protection);
        assert_eq!(l[0].content_formats, ["file", "email"]);
        assert_eq!(l[1].name, "Contoso Confidential");
        assert_eq!(l[1].description, None);
        assert_eq!(l[0].tenant.as_deref(), Some("t"));
    }

    #[test]
    fn v1_shape_nested_and_deduplicated() {
        let v = vec![
            json!({"id": "4e4234dd-377b-42a3-935b-0e42f138fa23", "name": "General", "displayName": "General (all)", "priority": 10,
                "toolTip": "tip", "isEnabled": false, "applicableTo": "email, teamwork,file",
                "sublabels": [{"id": "5e4234dd-377b-42a3-935b-0e42f138fa23", "name": "Sub", "priority": 11}]}),
            json!({"id": "5e4234dd-377b-42a3-935b-0e42f138fa23", "name": "Sub again"}),
            json!({"name": "no id"}),
        ];
        let l = normalize(&v, LabelApi::V1, None);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].display_name, "General (all)");
        assert_eq!(l[0].tooltip.as_deref(), Some("tip"));
        assert!(!l[0].is_active);
        assert_eq!(l[0].priority, -10);
        assert_eq!(l[0].content_formats, ["email", "teamwork", "file"]);
        assert_eq!(l[1].parent.as_deref(), Some("4e4234dd-377b-42a3-935b-0e42f138fa23"));
        assert_eq!(l[1].name, "Sub", "the first copy wins");
    }
}
