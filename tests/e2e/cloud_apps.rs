//! Cloud apps and their tags changed through the admin API, written back to the config file
//! with the accounts' mechanism (ETag and If-Match, roles, audit, comments kept): a tag added on
//! an app makes a policy rule match in `labelgate policy test`; a change that would leave a rule
//! naming an app or tag nothing defines is refused with the rule named, and nothing is written.

use crate::common::*;

const CONFIG: &str = "# Destinations, as the admin wrote them.\n\
[[cloud_apps]]\n\
name = \"Corporate storage\"\n\
hosts = [\"files.corp.test\"]  # our own\n\
tags = [\"Sanctioned\"]\n\
\n\
[[cloud_apps]]\n\
name = \"Paste site\"\n\
hosts = [\"paste.example.test\", \"*.paste.example.test\"]\n\
tags = [\"Personal\"]\n\
\n\
[[cloud_apps]]\n\
name = \"Box\"\n\
hosts = [\"box.example.test\"]\n\
tags = [\"Unsanctioned\"]\n\
\n\
[proxy]\n\
audit_file = \"audit.jsonl\"\n\
\n\
[policy]\n\
default_action = \"allow\"\n\
\n\
# Labeled files never reach unsanctioned apps.\n\
[[policy.rules]]\n\
name = \"Labeled files never go to unsanctioned apps\"\n\
action = \"block\"\n\
labeled = true\n\
cloud_app_tags = [\"Unsanctioned\"]\n\
\n\
[[policy.rules]]\n\
name = \"Everything to Box is recorded\"\n\
action = \"audit\"\n\
cloud_apps = [\"Box\"]\n\
\n\
[[admin.tokens]]\n\
name = \"auditor\"\n\
role = \"read\"\n\
token_file = \"auditor.token\"\n";

const READ_TOKEN: &str = "auditor-token-0123456789abcdef";

fn app<'a>(list: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    list["apps"].as_array().and_then(|a| a.iter().find(|x| x["name"] == name)).unwrap_or(&serde_json::Value::Null)
}

#[test]
fn cloud_apps_and_tags_are_changed_through_the_api_and_a_change_that_would_orphan_a_rule_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("labelgate.toml");
    std::fs::write(&config, CONFIG).unwrap();
    std::fs::write(dir.path().join("auditor.token"), READ_TOKEN).unwrap();
    let state = dir.path().join("state");
    let audit = dir.path().join("audit.jsonl");
    let (_serve, _proxy, admin) = serve_as_configured(&["--config", config.to_str().unwrap(), "--state-dir", state.to_str().unwrap()]);
    let api = AdminApi { admin, token: std::fs::read_to_string(state.join("admin-token")).unwrap().trim().to_string() };

    // The listing: apps with their hosts, tags and the rules naming them; tags with their apps.
    let (status, etag, list) = api.call("GET", "/api/v1/cloud-apps", None, None);
    assert_eq!(status, 200, "{list}");
    let etag = etag.expect("the listing carries the config's ETag");
    assert_eq!(etag, api.etag(), "one ETag for the whole file");
    assert_eq!(app(&list, "Paste site")["hosts"], serde_json::json!(["paste.example.test", "*.paste.example.test"]));
    assert_eq!(app(&list, "Box")["rules"], serde_json::json!(["Everything to Box is recorded"]));
    let unsanctioned = list["tags"].as_array().unwrap().iter().find(|t| t["name"] == "Unsanctioned").unwrap();
    assert_eq!(unsanctioned["apps"], serde_json::json!(["Box"]));
    assert_eq!(unsanctioned["rules"], serde_json::json!(["Labeled files never go to unsanctioned apps"]));

    // Before: a labeled file to the paste site is allowed.
    assert_eq!(policy_test_labeled(&config, "https://paste.example.test/new").0, "allow");

    // A read token reads but may not change; a change needs If-Match.
    let reader = AdminApi { admin, token: READ_TOKEN.into() };
    assert_eq!(reader.call("GET", "/api/v1/cloud-apps", None, None).0, 200);
    let tag = r#"{"tag": "Unsanctioned"}"#;
    for (method, path, body) in [
        ("POST", "/api/v1/cloud-apps/Paste%20site/tags", Some(tag)),
        ("POST", "/api/v1/cloud-apps", Some(r#"{"name": "X", "hosts": ["x.example.test"]}"#)),
        ("PUT", "/api/v1/cloud-apps/Box/", Some(r#"{"hosts": ["y.example.test"]}"#)),
        ("DELETE", "/api/v1/cloud-apps/Box", None),
        ("DELETE", "/api/v1/cloud-apps/Box/tags/Unsanctioned", None),
        ("PUT", "/api/v1/cloud-app-tags/Personal", Some(r#"{"name": "Private"}"#)),
        ("DELETE", "/api/v1/cloud-app-tags/Personal/", None),
    ] {
        assert_eq!(reader.call(method, path, body, Some(&etag)).0, 403, "{method} {path}");
    }
    assert_eq!(api.call("POST", "/api/v1/cloud-apps/Paste%20site/tags", Some(tag), None).0, 428);
    assert_eq!(api.call("POST", "/api/v1/cloud-apps/Paste%20site/tags", Some(tag), Some("\"stale\"")).0, 412);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), CONFIG, "nothing refused was written");

    // Tag the paste site Unsanctioned: the rule now matches it in `labelgate policy test`.
    let (status, etag, answer) = api.call("POST", "/api/v1/cloud-apps/Paste%20site/tags", Some(tag), Some(&etag));
    assert_eq!(status, 200, "{answer}");
    let etag = etag.unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("tags = [\"Personal\", \"Unsanctioned\"]"), "{text}");
    assert!(
        text.contains("hosts = [\"files.corp.test\"]  # our own") && text.contains("# Labeled files never reach"),
        "comments kept: {text}"
    );
    assert_eq!(
        policy_test_labeled(&config, "https://eu.paste.example.test/new"),
        ("block".to_string(), Some("Labeled files never go to unsanctioned apps".to_string()))
    );
    // Once more is an error at the tags field.
    let (status, _, answer) = api.call("POST", "/api/v1/cloud-apps/paste%20SITE/tags", Some(r#"{"tag": "unsanctioned"}"#), Some(&etag));
    assert_eq!((status, answer["errors"][0]["field"].as_str()), (400, Some("tags")), "{answer}");

    // Orphaning a rule is refused, the rule named, at the field of the change; nothing written.
    let before = std::fs::read_to_string(&config).unwrap();
    for (method, path, body, rule, field) in [
        ("DELETE", "/api/v1/cloud-app-tags/Unsanctioned", None, "Labeled files never go to unsanctioned apps", "tags"),
        (
            "PUT",
            "/api/v1/cloud-app-tags/unsanctioned",
            Some(r#"{"name": "Not approved"}"#),
            "Labeled files never go to unsanctioned apps",
            "tags",
        ),
        ("DELETE", "/api/v1/cloud-apps/Box", None, "Everything to Box is recorded", "name"),
        ("PUT", "/api/v1/cloud-apps/Box", Some(r#"{"name": "Box.com"}"#), "Everything to Box is recorded", "name"),
    ] {
        let (status, _, answer) = api.call(method, path, body, Some(&etag));
        assert_eq!(status, 400, "{method} {path}: {answer}");
        let errors = answer["errors"].as_array().unwrap();
        assert!(
            errors.iter().any(|e| e["message"].as_str().is_some_and(|m| m.contains(rule)) && e["field"] == field),
            "{method} {path}: the rule {rule:?} is named at {field}: {answer}"
        );
    }
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before, "nothing refused was written");

    // Add an app: its fields checked as `labelgate check` checks them.
    for (body, field) in [
        (r#"{"name": "WeTransfer"}"#, "hosts"),
        (r#"{"name": "box", "hosts": ["x.example.test"]}"#, "name"),
        (r#"{"name": "WeTransfer", "hosts": ["*"]}"#, "hosts"),
        (r#"{"name": "WeTransfer", "hosts": ["we.example.test"], "tags": [""]}"#, "tags"),
        (r#"{"name": "We\u0007Transfer", "hosts": ["we.example.test"]}"#, "name"),
    ] {
        let (status, _, answer) = api.call("POST", "/api/v1/cloud-apps", Some(body), Some(&etag));
        assert_eq!((status, answer["errors"][0]["field"].as_str()), (400, Some(field)), "{body}: {answer}");
    }
    let (status, etag, answer) = api.call(
        "POST",
        "/api/v1/cloud-apps",
        Some(r#"{"name": "WeTransfer", "hosts": ["we.example.test"], "tags": ["Unsanctioned", "File transfer"]}"#),
        Some(&etag),
    );
    assert_eq!(status, 201, "{answer}");
    let etag = etag.unwrap();

    // Now two apps carry Unsanctioned: it may leave the paste site. A tag no rule names may be
    // renamed and deleted everywhere.
    let (status, etag, answer) = api.call("DELETE", "/api/v1/cloud-apps/Paste%20site/tags/Unsanctioned", None, Some(&etag));
    assert_eq!(status, 200, "{answer}");
    let (status, etag, answer) =
        api.call("PUT", "/api/v1/cloud-app-tags/File%20transfer", Some(r#"{"name": "Transfer"}"#), etag.as_deref());
    assert_eq!(status, 200, "{answer}");
    let (status, etag, answer) = api.call("DELETE", "/api/v1/cloud-app-tags/personal", None, etag.as_deref());
    assert_eq!(status, 200, "{answer}");
    let (status, _, answer) = api.call("DELETE", "/api/v1/cloud-app-tags/personal", None, etag.as_deref());
    assert_eq!(status, 404, "{answer}");
    let (status, etag, answer) =
        api.call("PUT", "/api/v1/cloud-apps/Paste%20site", Some(r#"{"hosts": ["paste.example.test"]}"#), etag.as_deref());
    assert_eq!(status, 200, "{answer}");
    // A value replaced keeps the comment written after it.
    let (status, etag, answer) = api.call(
        "PUT",
        "/api/v1/cloud-apps/Corporate%20storage",
        Some(r#"{"hosts": ["files.corp.test", "files2.corp.test"]}"#),
        etag.as_deref(),
    );
    assert_eq!(status, 200, "{answer}");
    assert!(std::fs::read_to_string(&config).unwrap().contains("hosts = [\"files.corp.test\", \"files2.corp.test\"]  # our own"));
    assert_eq!(policy_test_labeled(&config, "https://paste.example.test/new").0, "allow");
    assert_eq!(policy_test_labeled(&config, "https://we.example.test/new").0, "block");

    // The file as the listing reads it; the reload applied every change (the check passes).
    let (_, listed_etag, list) = api.call("GET", "/api/v1/cloud-apps", None, None);
    assert_eq!(listed_etag, etag);
    assert_eq!(app(&list, "Paste site")["tags"], serde_json::json!([]));
    assert_eq!(app(&list, "WeTransfer")["tags"], serde_json::json!(["Unsanctioned", "Transfer"]));
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_labelgate")).arg("--config").arg(&config).arg("check").output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));

    // Every change is one audit line: who, what, before and after.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let changes = loop {
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|v: &serde_json::Value| v["event"] == "cloud_app_change")
            .collect();
        if lines.len() >= 7 || std::time::Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let whats: Vec<&str> = changes.iter().filter_map(|v| v["what"].as_str()).collect();
    assert_eq!(whats, ["tag", "add", "untag", "rename_tag", "delete_tag", "edit", "edit"]);
    assert!(changes.iter().all(|v| v["who"] == "admin"), "{changes:?}");
    assert_eq!(changes[0]["after"]["tags"], serde_json::json!(["Personal", "Unsanctioned"]));
    assert_eq!(changes[0]["subject"], "Paste site");
    assert_eq!(changes[3]["renamed"], serde_json::json!(["File transfer", "Transfer"]));
    assert_eq!(changes[4]["subject"], "personal", "the tag deleted is recorded");
}

#[test]
fn the_shipped_cloud_apps_are_listed_and_a_read_only_config_refuses_changes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("labelgate.toml");
    std::fs::write(&config, include_str!("../../config/labelgate.toml")).unwrap();
    let state = dir.path().join("state");
    let (_serve, _proxy, admin) = serve_as_configured(&["--config", config.to_str().unwrap(), "--state-dir", state.to_str().unwrap()]);
    let api = AdminApi { admin, token: std::fs::read_to_string(state.join("admin-token")).unwrap().trim().to_string() };
    let (status, etag, list) = api.call("GET", "/api/v1/cloud-apps", None, None);
    assert_eq!(status, 200, "{list}");
    assert_eq!(app(&list, "Corporate storage")["tags"], serde_json::json!(["Sanctioned"]));
    let sanctioned = list["tags"].as_array().unwrap().iter().find(|t| t["name"] == "Sanctioned").unwrap();
    assert_eq!(sanctioned["rules"], serde_json::json!(["Labeled files stay in sanctioned apps"]));
    // The only app tagged Sanctioned cannot lose the tag: the shipped rule names it.
    let (status, _, answer) = api.call("DELETE", "/api/v1/cloud-apps/Corporate%20storage/tags/Sanctioned", None, etag.as_deref());
    assert_eq!(status, 400, "{answer}");
    assert!(answer["errors"][0]["message"].as_str().unwrap().contains("Labeled files stay in sanctioned apps"), "{answer}");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o444)).unwrap();
    let (status, _, answer) = api.call("DELETE", "/api/v1/cloud-apps/Box", None, etag.as_deref());
    assert_eq!((status, answer["error"].as_str()), (409, Some("config_read_only")), "{answer}");
}
