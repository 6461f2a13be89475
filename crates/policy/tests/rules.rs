//! Each criterion and action, unscannable decisions, cloud-app resolution and config errors.

use labelgate_catalog::{Catalog, Label};
use labelgate_policy::*;
use std::sync::Arc;

const KINDS: &[&str] = &["docx", "xlsx", "pptx", "pdf", "eml", "unknown", "encrypted_ooxml"];
const OWN: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const FOREIGN: &str = "cb46c030-1825-4e81-a295-151c039dbf02";
const CONF: &str = "074e257c-5848-4582-9a6f-34a182080e71";
const CONF_FIN: &str = "d9f23ae3-a239-45ea-bf23-f515f824c57b";
const GENERAL: &str = "f42aa342-8706-4288-bd11-ebb85995028c";

fn catalog() -> Arc<Catalog> {
    let mut general = Label::new(GENERAL, "General");
    general.priority = 1;
    general.tenant = Some(OWN.into());
    let mut conf = Label::new(CONF, "Confidential");
    conf.priority = 5;
    conf.tenant = Some(OWN.into());
    let mut fin = Label::new(CONF_FIN, "Finance");
    fin.priority = 6;
    fin.parent = Some(CONF.into());
    fin.tenant = Some(OWN.into());
    Arc::new(Catalog::from_static(vec![general, conf, fin]))
}

const APPS: &str = r#"
[[cloud_apps]]
name = "OneDrive (corporate)"
hosts = ["contoso-my.sharepoint.com"]
tags = ["Sanctioned"]
[[cloud_apps]]
name = "SharePoint"
hosts = ["*.sharepoint.com"]
tags = ["Sanctioned"]
[[cloud_apps]]
name = "Dropbox"
hosts = ["*.dropbox.com", "dropbox.com"]
tags = ["Unsanctioned", "Personal storage"]
"#;

#[derive(serde::Deserialize)]
struct File {
    #[serde(default)]
    policy: PolicyConfig,
    #[serde(default)]
    cloud_apps: Vec<CloudAppConfig>,
}

fn policy(rules: &str) -> (ResolvedPolicy, Vec<Problem>) {
    let text = format!("{APPS}\n{rules}");
    let file: File = toml::from_str(&text).expect("test config parses");
    let (p, mut problems) = Policy::compile(&file.policy, &file.cloud_apps, KINDS, &[OWN.to_string()]);
    let (r, more) = p.resolve(catalog());
    problems.extend(more);
    (r, problems)
}

fn ok(rules: &str) -> ResolvedPolicy {
    let (r, problems) = policy(rules);
    assert!(problems.iter().all(|p| p.severity == Severity::Warning), "{problems:?}");
    r
}

fn file(kind: &str, labels: &[(&str, &str)]) -> FileFacts {
    FileFacts {
        name: Some("f".into()),
        kind: kind.into(),
        labels: labels.iter().map(|(id, t)| FileLabel { id: id.to_string(), tenant: Some(t.to_string()) }).collect(),
        unscannable: None,
        detected: Vec::new(),
    }
}

fn upload<'a>(host: &'a str, url: &'a str, files: &'a [FileFacts]) -> Transaction<'a> {
    Transaction { direction: Direction::Upload, method: "POST", host, url, user: Some("Alice@Contoso.com"), groups: &[], files, path: None }
}

const REALISTIC: &str = r#"
[policy]
default_action = "allow"
[[policy.rules]]
name = "unknown labels"
action = "block"
labeled = true
unknown_labels = true
message = "This file carries a label this organisation does not know."
[[policy.rules]]
name = "foreign tenants"
action = "audit"
tenant = "foreign"
[[policy.rules]]
name = "sanctioned"
action = "allow"
cloud_app_tags = ["Sanctioned"]
[[policy.rules]]
name = "confidential leaves"
action = "block"
labels = ["Confidential"]
include_sublabels = true
message = "Confidential files stay in sanctioned apps."
"#;

#[test]
fn realistic_policy_table() {
    let p = ok(REALISTIC);
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Action, Option<&'a str>);
    let cases: Vec<Case> = vec![
        ("contoso-my.sharepoint.com", vec![(CONF_FIN, OWN)], Action::Allow, Some("sanctioned")),
        ("www.dropbox.com", vec![(CONF_FIN, OWN)], Action::Block, Some("confidential leaves")),
        ("www.dropbox.com", vec![(CONF, OWN)], Action::Block, Some("confidential leaves")),
        ("www.dropbox.com", vec![(GENERAL, OWN)], Action::Allow, None),
        ("www.dropbox.com", vec![(GENERAL, FOREIGN)], Action::Audit, Some("foreign tenants")),
        ("www.dropbox.com", vec![("11111111-2222-3333-4444-555555555555", OWN)], Action::Block, Some("unknown labels")),
        ("www.dropbox.com", vec![], Action::Allow, None),
    ];
    for (host, labels, action, rule) in cases {
        let files = [file("docx", &labels)];
        let url = format!("https://{host}/upload");
        let v = p.evaluate(&upload(host, &url, &files));
        assert_eq!((v.action, v.rule.as_deref()), (action, rule), "{host} {labels:?}: {}", v.reason);
    }
}

#[test]
fn verdict_explains_itself() {
    let p = ok(REALISTIC);
    let files = [file("docx", &[]), file("pdf", &[(CONF_FIN, OWN)])];
    let v = p.evaluate(&upload("www.dropbox.com", "https://www.dropbox.com/x", &files));
    assert_eq!(v.action, Action::Block);
    assert_eq!(v.file, Some(1), "the strictest file decides");
    assert_eq!(v.matched_labels, [CONF_FIN]);
    assert!(v.reason.contains("Confidential \\ Finance"), "{}", v.reason);
    assert_eq!(v.cloud_app.as_deref(), Some("Dropbox"));
    assert_eq!(v.message.as_deref(), Some("Confidential files stay in sanctioned apps."));
}

#[test]
fn most_specific_cloud_app_wins() {
    let p = ok("");
    let _ = p;
    let file: File = toml::from_str(APPS).unwrap();
    let (compiled, problems) = Policy::compile(&file.policy, &file.cloud_apps, KINDS, &[]);
    assert!(problems.is_empty());
    assert_eq!(compiled.cloud_app_for("contoso-my.sharepoint.com"), Some("OneDrive (corporate)"));
    assert_eq!(compiled.cloud_app_for("contoso.sharepoint.com"), Some("SharePoint"));
    assert_eq!(compiled.cloud_app_for("sharepoint.com"), None);
    assert_eq!(compiled.cloud_app_for("DROPBOX.com"), Some("Dropbox"));
}

#[test]
fn each_criterion() {
    let labeled = [file("docx", &[(GENERAL, OWN)])];
    let unlabeled = [file("docx", &[])];
    let check =
        |rule: &str, tx: &Transaction<'_>| ok(&format!("[[policy.rules]]\nname = \"r\"\naction = \"block\"\n{rule}\n")).evaluate(tx).action;
    let t = |files| upload("www.dropbox.com", "https://www.dropbox.com/upload/x", files);
    assert_eq!(check("labeled = true", &t(&labeled)), Action::Block);
    assert_eq!(check("labeled = true", &t(&unlabeled)), Action::Allow);
    assert_eq!(check("labeled = false", &t(&unlabeled)), Action::Block);
    assert_eq!(check(&format!("labels = [\"{GENERAL}\"]"), &t(&labeled)), Action::Block);
    assert_eq!(check("labels = [\"general\"]", &t(&labeled)), Action::Block, "names are case-insensitive");
    assert_eq!(check("not_labels = [\"General\"]", &t(&labeled)), Action::Allow);
    assert_eq!(check("min_priority = 5", &t(&labeled)), Action::Allow);
    assert_eq!(check("min_priority = 1", &t(&labeled)), Action::Block);
    assert_eq!(check("tenant = \"own\"", &t(&labeled)), Action::Block);
    assert_eq!(check("tenant = \"foreign\"", &t(&labeled)), Action::Allow);
    assert_eq!(check("unknown_labels = true", &t(&labeled)), Action::Allow);
    assert_eq!(check("destinations = [\"*.dropbox.com\"]", &t(&labeled)), Action::Block);
    assert_eq!(check("destinations = [\"https://www.dropbox.com/upload\"]", &t(&labeled)), Action::Block);
    assert_eq!(check("destinations = [\"https://www.dropbox.com/other\"]", &t(&labeled)), Action::Allow);
    assert_eq!(check("not_destinations = [\"www.dropbox.com\"]", &t(&labeled)), Action::Allow);
    assert_eq!(check("cloud_apps = [\"Dropbox\"]", &t(&labeled)), Action::Block);
    assert_eq!(check("not_cloud_apps = [\"Dropbox\"]", &t(&labeled)), Action::Allow);
    assert_eq!(check("cloud_app_tags = [\"personal storage\"]", &t(&labeled)), Action::Block);
    assert_eq!(check("not_cloud_app_tags = [\"Unsanctioned\"]", &t(&labeled)), Action::Allow);
    assert_eq!(check("users = [\"alice@contoso.com\"]", &t(&labeled)), Action::Block);
    assert_eq!(check("not_users = [\"ALICE@contoso.com\"]", &t(&labeled)), Action::Allow);
    assert_eq!(check("groups = [\"finance\"]", &t(&labeled)), Action::Allow);
    assert_eq!(check("methods = [\"put\"]", &t(&labeled)), Action::Allow);
    assert_eq!(check("methods = [\"post\"]", &t(&labeled)), Action::Block);
    assert_eq!(check("kinds = [\"pdf\"]", &t(&labeled)), Action::Allow);
    assert_eq!(check("kinds = [\"docx\"]", &t(&labeled)), Action::Block);
    assert_eq!(check("direction = \"at_rest\"", &t(&labeled)), Action::Allow);
    let groups = ["Finance".to_string()];
    let tx = Transaction { groups: &groups, ..t(&labeled) };
    assert_eq!(check("groups = [\"finance\"]", &tx), Action::Block);
    assert_eq!(check("not_groups = [\"finance\"]", &tx), Action::Allow);
}

#[test]
fn actions_and_first_match_wins() {
    let files = [file("docx", &[(GENERAL, OWN)])];
    let tx = upload("www.dropbox.com", "https://www.dropbox.com/", &files);
    let p = ok("[[policy.rules]]\nname = \"a\"\naction = \"audit\"\nlabeled = true\n[[policy.rules]]\nname = \"b\"\naction = \"block\"\nlabeled = true\n");
    let v = p.evaluate(&tx);
    assert_eq!((v.action, v.rule.as_deref()), (Action::Audit, Some("a")));
    let p = ok("[policy]\ndefault_action = \"block\"\n");
    assert_eq!(p.evaluate(&tx).action, Action::Block);
}

#[test]
fn unscannable_defaults_and_overrides() {
    let mut enc = file("encrypted_ooxml", &[]);
    enc.unscannable = Some(UnscannableReason::Encrypted);
    let mut amb = file("docx", &[]);
    amb.unscannable = Some(UnscannableReason::Ambiguous);
    let p = ok("");
    let dropbox = |f: &[FileFacts]| p.evaluate(&upload("www.dropbox.com", "https://www.dropbox.com/", f)).action;
    assert_eq!(dropbox(std::slice::from_ref(&enc)), Action::Allow);
    assert_eq!(dropbox(std::slice::from_ref(&amb)), Action::Block);
    let p = ok("[policy.on_unscannable]\nencrypted = \"audit\"\n[[policy.rules]]\nname = \"corp\"\naction = \"allow\"\ncloud_app_tags = [\"Sanctioned\"]\non_unscannable = { encrypted = \"allow\", ambiguous = \"allow\" }\n");
    let v = p.evaluate(&upload("www.dropbox.com", "https://www.dropbox.com/", std::slice::from_ref(&enc)));
    assert_eq!(v.action, Action::Audit);
    assert!(v.reason.contains("encrypted"));
    let v = p.evaluate(&upload("x.sharepoint.com", "https://x.sharepoint.com/", std::slice::from_ref(&amb)));
    assert_eq!(v.action, Action::Allow, "{}", v.reason);
}

#[test]
fn config_problems_are_located() {
    let text = format!("{APPS}\n[[policy.rules]]\nname = \"r\"\naction = \"block\"\ncloud_apps = [\"Box\"]\ncloud_app_tags = [\"Nope\"]\nkinds = [\"exe\"]\n[[policy.rules]]\nname = \"R\"\naction = \"allow\"\nlabels = [\"No Such Label\"]\n[[cloud_apps]]\nname = \"dropbox\"\nhosts = [\"dropbox.com\", \"bad host\"]\n");
    let file: File = toml::from_str(&text).unwrap();
    let (p, problems) = Policy::compile(&file.policy, &file.cloud_apps, KINDS, &[]);
    let (_, warnings) = p.resolve(catalog());
    let at = |needle: &str| text.find(needle).unwrap();
    let errors: Vec<(&str, usize)> = problems.iter().map(|p| (p.message.as_str(), start(&p.at))).collect();
    let expect = [
        ("Box", at("\"Box\"")),
        ("Nope", at("\"Nope\"")),
        ("exe", at("\"exe\"")),
        ("duplicate rule name", at("\"R\"")),
        ("duplicate cloud app", at("\"dropbox\"")),
        ("claimed by cloud apps", text.rfind("\"dropbox.com\"").unwrap()),
        ("bad host", at("\"bad host\"")),
    ];
    for (needle, pos) in expect {
        assert!(errors.iter().any(|(m, s)| m.contains(needle) && *s == pos), "no error {needle:?} at {pos}: {errors:?}");
    }
    assert!(warnings
        .iter()
        .any(|w| w.severity == Severity::Warning && w.message.contains("No Such Label") && start(&w.at) == at("\"No Such Label\"")));
}

#[test]
fn ambiguous_label_names_are_errors() {
    let mut a = Label::new("aaaaaaaa-0000-0000-0000-000000000000", "Internal");
    a.tenant = Some(OWN.into());
    let mut b = Label::new("bbbbbbbb-0000-0000-0000-000000000000", "Internal");
    b.tenant = Some(FOREIGN.into());
    let file: File = toml::from_str("[[policy.rules]]\nname = \"r\"\naction = \"block\"\nlabels = [\"Internal\"]\n").unwrap();
    let (p, _) = Policy::compile(&file.policy, &file.cloud_apps, KINDS, &[]);
    let (_, problems) = p.resolve(Arc::new(Catalog::from_static(vec![a, b])));
    assert!(problems.iter().any(|p| p.severity == Severity::Error && p.message.contains("matches 2 labels")));
}

/// The rule index must decide exactly as testing every rule in order does, on random policies
/// and random transactions.
#[test]
fn rule_index_agrees_with_linear_evaluation() {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let users = ["alice@contoso.com", "bob@contoso.com", "Carol@Contoso.com"];
    let groups = ["finance", "staff", "legal"];
    let hosts = ["www.dropbox.com", "contoso-my.sharepoint.com", "x.sharepoint.com", "example.org", "dropbox.com"];
    let kinds = ["docx", "pdf", "pptx", "xlsx"];
    let ids = [GENERAL, CONF, CONF_FIN, "11111111-2222-3333-4444-555555555555"];
    for round in 0..40 {
        let mut rules = String::new();
        for i in 0..(5 + next(25)) {
            let mut r = format!("[[policy.rules]]\nname = \"r{i}\"\naction = \"{}\"\n", ["allow", "audit", "block"][next(3) as usize]);
            for _ in 0..(1 + next(3)) {
                r.push_str(&match next(14) {
                    0 => format!("users = [\"{}\"]\n", users[next(3) as usize]),
                    1 => format!("not_users = [\"{}\"]\n", users[next(3) as usize]),
                    2 => format!("groups = [\"{}\"]\n", groups[next(3) as usize]),
                    3 => format!("not_groups = [\"{}\"]\n", groups[next(3) as usize]),
                    4 => format!(
                        "destinations = [\"{}\"]\n",
                        ["*.dropbox.com", "example.org", "https://www.dropbox.com/up"][next(3) as usize]
                    ),
                    5 => format!("not_destinations = [\"{}\"]\n", ["*.sharepoint.com", "dropbox.com"][next(2) as usize]),
                    6 => format!("cloud_apps = [\"{}\"]\n", ["Dropbox", "SharePoint", "OneDrive (corporate)"][next(3) as usize]),
                    7 => format!("not_cloud_app_tags = [\"{}\"]\n", ["Sanctioned", "Personal storage"][next(2) as usize]),
                    8 => format!("kinds = [\"{}\"]\n", kinds[next(4) as usize]),
                    9 => format!("methods = [\"{}\"]\n", ["POST", "PUT"][next(2) as usize]),
                    10 => format!("labeled = {}\n", next(2) == 0),
                    11 => format!("min_priority = {}\n", next(7)),
                    12 => format!("tenant = \"{}\"\n", ["own", "foreign", "any"][next(3) as usize]),
                    _ => format!("direction = \"{}\"\n", ["upload", "at_rest"][next(2) as usize]),
                });
            }
            // A criterion may repeat; keep the first by letting TOML reject duplicates: skip those.
            if toml::from_str::<toml::Value>(&r).is_ok() {
                rules.push_str(&r);
            }
        }
        let (p, problems) = policy(&rules);
        assert!(problems.iter().all(|p| p.severity == Severity::Warning), "round {round}: {problems:?}");
        for _ in 0..50 {
            let labels: Vec<(&str, &str)> =
                (0..next(3)).map(|_| (ids[next(4) as usize], if next(3) == 0 { FOREIGN } else { OWN })).collect();
            let files = [file(kinds[next(4) as usize], &labels)];
            let host = hosts[next(5) as usize];
            let url = format!("https://{host}/{}", ["up", "x"][next(2) as usize]);
            let group_list: Vec<String> = (0..next(3)).map(|_| groups[next(3) as usize].to_uppercase()).collect();
            let tx = Transaction {
                direction: if next(4) == 0 { Direction::AtRest } else { Direction::Upload },
                method: ["POST", "PUT", "GET"][next(3) as usize],
                host,
                url: &url,
                user: if next(4) == 0 { None } else { Some(users[next(3) as usize]) },
                groups: &group_list,
                files: &files,
                path: None,
            };
            assert_eq!(p.evaluate(&tx), p.evaluate_reference(&tx), "round {round}: {rules}\n{tx:?}");
        }
    }
}

/// Where a policy problem starts (policy problems are located by span).
fn start(at: &labelgate_policy::Location) -> usize {
    match at {
        labelgate_policy::Location::Span(s) => s.start,
        labelgate_policy::Location::Key(_) => usize::MAX,
    }
}

fn at_rest<'a>(files: &'a [FileFacts], path: &'a str) -> Transaction<'a> {
    Transaction::at_rest(files, std::path::Path::new(path))
}

#[test]
fn at_rest_rules_match_paths_and_paths_elsewhere_are_an_error() {
    let p = ok(r#"
[[policy.rules]]
name = "Confidential outside the finance share"
action = "block"
direction = "at_rest"
labels = ["Confidential"]
include_sublabels = true
paths = ["/srv/**"]
not_paths = ["/srv/finance/**", "**/*.bak"]
"#);
    let files = [file("docx", &[(CONF_FIN, OWN)])];
    let at = |policy: &ResolvedPolicy, path: &str| {
        let tx = at_rest(&files, path);
        let (v, reference) = (policy.evaluate(&tx), policy.evaluate_reference(&tx));
        assert_eq!(v, reference, "the index agrees with the plain evaluation for {path}");
        v.action
    };
    assert_eq!(at(&p, "/srv/hr/plan.docx"), Action::Block);
    assert_eq!(at(&p, "/srv/finance/q3/plan.docx"), Action::Allow, "not_paths");
    assert_eq!(at(&p, "/srv/hr/plan.docx.bak"), Action::Allow, "** crosses directories in not_paths too");
    assert_eq!(at(&p, "/home/alice/plan.docx"), Action::Allow, "outside paths");
    // `*` stays within a name.
    let star = ok("[[policy.rules]]\nname = \"top\"\naction = \"block\"\ndirection = \"at_rest\"\npaths = [\"/srv/*.docx\"]\n");
    assert_eq!(at(&star, "/srv/a.docx"), Action::Block);
    assert_eq!(at(&star, "/srv/hr/a.docx"), Action::Allow);
    // On an upload rule (or one without a direction) paths would silently never hold: an error.
    for direction in ["direction = \"upload\"\n", ""] {
        let (_, problems) = policy(&format!("[[policy.rules]]\nname = \"x\"\naction = \"block\"\n{direction}paths = [\"/srv/**\"]\n"));
        assert!(problems.iter().any(|p| p.severity == Severity::Error && p.message.contains("at rest only")), "{problems:?}");
    }
    let (_, problems) = policy("[[policy.rules]]\nname = \"x\"\naction = \"block\"\ndirection = \"at_rest\"\npaths = [\"[\"]\n");
    assert!(problems.iter().any(|p| p.message.contains("path glob")), "{problems:?}");
}
