//! Evaluates the bench policy N times (for instruction counts under callgrind):
//! `cargo run --release -p labelgate-benches --example policy_loop -- 100000`.
use labelgate_catalog::{Catalog, Label};
use labelgate_policy::{CloudAppConfig, Direction, FileFacts, FileLabel, Policy, PolicyConfig, Transaction};
use std::sync::Arc;

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

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let file: File = toml::from_str(&config()).expect("config parses");
    let (policy, _) =
        Policy::compile(&file.policy, &file.cloud_apps, &["docx", "pdf", "pptx"], &["72f988bf-86f1-41af-91ab-2d7cd011db47".to_string()]);
    let labels: Vec<Label> = (0..200)
        .map(|i| {
            let mut l = Label::new(&format!("{i:08x}-0000-4000-8000-000000000000"), &format!("L{i}"));
            l.priority = i;
            l.tenant = Some("72f988bf-86f1-41af-91ab-2d7cd011db47".into());
            l
        })
        .collect();
    let (resolved, _) = policy.resolve(Arc::new(Catalog::from_static(labels)));
    let files = [FileFacts {
        name: Some("q3.docx".into()),
        kind: "docx".into(),
        labels: vec![FileLabel {
            id: "00000007-0000-4000-8000-000000000000".into(),
            tenant: Some("72f988bf-86f1-41af-91ab-2d7cd011db47".into()),
        }],
        unscannable: None,
    }];
    let groups = vec!["staff".to_string()];
    let tx = Transaction {
        direction: Direction::Upload,
        method: "POST",
        host: "upload.app3.example",
        url: "https://upload.app3.example/files",
        user: Some("alice@example.com"),
        groups: &groups,
        files: &files,
    };
    let start = std::time::Instant::now();
    let mut audits = 0;
    for _ in 0..n {
        audits += usize::from(resolved.evaluate(std::hint::black_box(&tx)).rule.is_some());
    }
    println!("{:?} per evaluation ({audits} matches)", start.elapsed() / n as u32);
}
