//! The policy benchmark scenario, shared by the criterion bench (`policy.rs`) and the callgrind
//! loop (`examples/policy_loop.rs`) so both measure the same thing: 20 cloud apps, 100 rules that
//! mostly do not match until the last (the worst realistic case for first-match evaluation),
//! 200 labels, and one labeled docx uploaded by a user in a group.

use labelgate_catalog::{Catalog, Label};
use labelgate_policy::{CloudAppConfig, Direction, FileFacts, FileLabel, Policy, PolicyConfig, ResolvedPolicy, Transaction};
use std::sync::Arc;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

#[derive(serde::Deserialize)]
struct File {
    policy: PolicyConfig,
    cloud_apps: Vec<CloudAppConfig>,
}

fn config() -> String {
    let mut s = String::new();
    for i in 0..20 {
        s.push_str(&format!(
            "[[cloud_apps]]\nname = \"app{i}\"\nhosts = [\"*.app{i}.example\"]\ntags = [\"{}\"]\n",
            if i % 2 == 0 { "Sanctioned" } else { "Unsanctioned" }
        ));
    }
    s.push_str("[policy]\ndefault_action = \"allow\"\n");
    for i in 0..99 {
        let criteria = match i % 5 {
            0 => format!("users = [\"user{i}@example.com\"]\nlabeled = true"),
            1 => format!("cloud_apps = [\"app{}\"]\nmin_priority = 50", i % 20),
            2 => format!("labels = [\"{:08x}-0000-4000-8000-000000000000\"]\ndestinations = [\"*.other{i}.example\"]", i),
            3 => format!("kinds = [\"pptx\"]\ntenant = \"foreign\"\nmethods = [\"PUT\"]\nnot_users = [\"x{i}\"]"),
            _ => format!("groups = [\"group{i}\"]\nunknown_labels = true"),
        };
        s.push_str(&format!("[[policy.rules]]\nname = \"rule {i}\"\naction = \"block\"\n{criteria}\n"));
    }
    s.push_str("[[policy.rules]]\nname = \"last\"\naction = \"audit\"\nlabeled = true\nnot_cloud_app_tags = [\"Sanctioned\"]\n");
    s
}

/// The compiled policy and the upload it is asked about.
pub struct Scenario {
    /// The policy, bound to the 200 labels.
    pub policy: ResolvedPolicy,
    files: [FileFacts; 1],
    groups: Vec<String>,
}

impl Scenario {
    pub fn new() -> Scenario {
        let file: File = toml::from_str(&config()).expect("bench config parses");
        let (policy, problems) = Policy::compile(&file.policy, &file.cloud_apps, &["docx", "pdf", "pptx"], &[TENANT.to_string()]);
        assert!(problems.is_empty(), "{problems:?}");
        let labels: Vec<Label> = (0..200)
            .map(|i| {
                let mut l = Label::new(&format!("{i:08x}-0000-4000-8000-000000000000"), &format!("L{i}"));
                l.priority = i;
                l.tenant = Some(TENANT.into());
                l
            })
            .collect();
        let (policy, _) = policy.resolve(Arc::new(Catalog::from_static(labels)));
        let files = [FileFacts {
            name: Some("q3.docx".into()),
            kind: "docx".into(),
            labels: vec![FileLabel { id: "00000007-0000-4000-8000-000000000000".into(), tenant: Some(TENANT.into()) }],
            unscannable: None,
            detected: Vec::new(),
        }];
        Scenario { policy, files, groups: vec!["staff".to_string()] }
    }

    /// The labeled docx uploaded to an unsanctioned app (only the last rule matches).
    pub fn transaction(&self) -> Transaction<'_> {
        Transaction {
            direction: Direction::Upload,
            method: "POST",
            host: "upload.app3.example",
            url: "https://upload.app3.example/files",
            user: Some("alice@example.com"),
            groups: &self.groups,
            files: &self.files,
            path: None,
        }
    }
}
