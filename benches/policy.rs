//! Policy evaluations per second on one core with 100 rules (most not matching until the end,
//! the worst realistic case for first-match evaluation).
//!
//! `cargo bench -p labelgate-benches --bench policy`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use labelgate_catalog::{Catalog, Label};
use labelgate_policy::{CloudAppConfig, Direction, FileFacts, FileLabel, Policy, PolicyConfig, Transaction};
use std::hint::black_box;
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

fn evaluations(c: &mut Criterion) {
    let file: File = toml::from_str(&config()).expect("bench config parses");
    let kinds = ["docx", "pdf", "pptx"];
    let (policy, problems) = Policy::compile(&file.policy, &file.cloud_apps, &kinds, &["72f988bf-86f1-41af-91ab-2d7cd011db47".to_string()]);
    assert!(problems.is_empty(), "{problems:?}");
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
    let v = resolved.evaluate(&tx);
    assert_eq!(v.rule.as_deref(), Some("last"), "{}", v.reason);
    let mut group = c.benchmark_group("policy");
    group.throughput(Throughput::Elements(1));
    group.bench_function("evaluate_100_rules", |b| b.iter(|| black_box(resolved.evaluate(black_box(&tx)))));
    group.finish();
}

criterion_group!(benches, evaluations);
criterion_main!(benches);
