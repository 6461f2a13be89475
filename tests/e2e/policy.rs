//! `labelgate check` and `labelgate policy test` as admins run them: the real binary, real
//! config files, the real corpus.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_labelgate"))
}

fn corpus(name: &str) -> PathBuf {
    labelgate_testkit::corpus_dir().join("files").join(name)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn check_accepts_the_default_and_locates_every_error() {
    let out = bin().arg("check").current_dir(std::env::temp_dir()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("<embedded default>: ok"));

    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[policy\n", "bad.toml:1:8: error:"),
        ("[policy]\nfrobnicate = true\n", "bad.toml:2:1: error: unknown field `frobnicate`"),
        ("[[policy.rules]]\nname = \"r\"\naction = 3\n", "bad.toml:3:10: error:"),
        (
            "[[policy.rules]]\nname = \"r\"\naction = \"block\"\ncloud_apps = [\"Nowhere\"]\n",
            "bad.toml:4:15: error: rule \"r\" names cloud app \"Nowhere\"",
        ),
        (
            "[[policy.rules]]\nname = \"r\"\naction = \"block\"\ncloud_app_tags = [\"Nope\"]\n",
            "bad.toml:4:19: error: rule \"r\" names tag \"Nope\"",
        ),
        (
            "[[policy.rules]]\nname = \"r\"\naction = \"block\"\n[[policy.rules]]\nname = \"r\"\naction = \"allow\"\n",
            "bad.toml:5:8: error: duplicate rule name",
        ),
        (
            "[[cloud_apps]]\nname = \"a\"\nhosts = [\"x.com\"]\n[[cloud_apps]]\nname = \"b\"\nhosts = [\"x.com\"]\n",
            "bad.toml:6:10: error: host pattern \"x.com\" is claimed by cloud apps \"a\" and \"b\"",
        ),
        ("[[labels]]\nid = \"1\"\nname = \"x\"\n", "bad.toml:2:6: error: label id \"1\" is not a GUID"),
    ];
    for (text, expected) in cases {
        let path = write(dir.path(), "bad.toml", text);
        let out = bin().arg("check").arg("--config").arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{text:?}");
        let stderr = String::from_utf8_lossy(&out.stderr).replace(&format!("{}/", dir.path().display()), "");
        assert!(stderr.contains(expected), "{text:?}: expected {expected:?} in {stderr:?}");
    }
    let path = write(dir.path(), "warn.toml", "[[policy.rules]]\nname = \"r\"\naction = \"block\"\nlabels = [\"Top Secret\"]\n");
    let out = bin().args(["--config"]).arg(&path).arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "unknown label names are warnings");
    assert!(String::from_utf8_lossy(&out.stderr).contains("warn.toml:4:11: warning:"));
    let missing = bin().arg("check").arg("--config").arg(dir.path().join("none.toml")).output().unwrap();
    assert_eq!(missing.status.code(), Some(2));
}

const REALISTIC: &str = r#"
[[labels]]
id = "f42aa342-8706-4288-bd11-ebb85995028c"
name = "General"
tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
priority = 1
[[labels]]
id = "9fbde396-1a24-4c79-8edf-9254a0f35055"
name = "Confidential"
tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
priority = 5
[[labels]]
id = "87ba5c36-b7cf-4793-bbc2-bd5b3a9f95ca"
name = "Non-Business"
tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
priority = 0
[[labels]]
id = "87867195-f2b8-4ac2-b0b6-6bb73cb33afc"
name = "Public"
tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
priority = 0

[[cloud_apps]]
name = "OneDrive (corporate)"
hosts = ["microsoft-my.sharepoint.com"]
tags = ["Sanctioned"]
[[cloud_apps]]
name = "Dropbox"
hosts = ["*.dropbox.com"]
tags = ["Personal storage"]

[policy]
own_tenants = ["72f988bf-86f1-41af-91ab-2d7cd011db47"]

[[policy.rules]]
name = "sanctioned OneDrive"
action = "allow"
cloud_apps = ["OneDrive (corporate)"]
[[policy.rules]]
name = "unknown labels"
action = "block"
labeled = true
unknown_labels = true
[[policy.rules]]
name = "foreign tenants"
action = "audit"
tenant = "foreign"
[[policy.rules]]
name = "confidential to personal storage"
action = "block"
min_priority = 5
cloud_app_tags = ["Personal storage"]
"#;

#[test]
fn realistic_policy_against_real_files() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "labelgate.toml", REALISTIC);
    let cases = [
        (
            "lab_fasttrack_protected_analyze-column-headers.xlsx",
            "https://www.dropbox.com/upload",
            "block",
            Some("confidential to personal storage"),
        ),
        (
            "lab_fasttrack_protected_analyze-column-headers.xlsx",
            "https://microsoft-my.sharepoint.com/personal/x",
            "allow",
            Some("sanctioned OneDrive"),
        ),
        ("lab_caf_enterprise-scale-architecture.pdf", "https://www.dropbox.com/upload", "block", Some("confidential to personal storage")),
        ("lab_caf_identity-baseline-discipline-template.docx", "https://www.dropbox.com/upload", "allow", None),
        ("lab_gc_cloud-guardrails-crosswalk.xlsx", "https://www.dropbox.com/upload", "block", Some("unknown labels")),
        ("lab_openchain_2tenants_oss-license-faq.pptx", "https://www.dropbox.com/upload", "block", Some("unknown labels")),
        ("lab_markitdown_test_custom-amber_labelinfo-ms.pptx", "https://www.dropbox.com/upload", "block", Some("unknown labels")),
        ("unl_markitdown_test.pdf", "https://www.dropbox.com/upload", "allow", None),
        ("unl_openxmlsdk_encrypted-pptx.pptx", "https://www.dropbox.com/upload", "allow", None),
    ];
    for (file, url, action, rule) in cases {
        let out = bin()
            .arg("--config")
            .arg(&config)
            .args(["policy", "test", "--json", "--url", url, "--file"])
            .arg(corpus(file))
            .output()
            .unwrap();
        assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["verdict"]["action"], action, "{file} → {url}: {}", v["verdict"]["reason"]);
        assert_eq!(v["verdict"]["rule"].as_str(), rule, "{file} → {url}: {}", v["verdict"]["reason"]);
    }
}

#[test]
fn foreign_tenant_labels_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    // Same policy, with the foreign tenant's label known so that "unknown labels" does not fire first.
    let text = format!("{REALISTIC}\n[[labels]]\nid = \"3d0ca00b-3f0e-465a-aac7-1a6a22fcea40\"\nname = \"Protected A\"\ntenant = \"6397df10-4595-4047-9c4f-03311282152b\"\n");
    let config = write(dir.path(), "labelgate.toml", &text.replace("[policy]\n", "").replace("own_tenants", "[policy]\nown_tenants"));
    let out = bin()
        .arg("--config")
        .arg(&config)
        .args(["policy", "test", "--json", "--url", "https://www.dropbox.com/x", "--file"])
        .arg(corpus("lab_gc_cloud-guardrails-crosswalk.xlsx"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"]["action"], "audit", "{v}");
    assert_eq!(v["labels"][0]["name"], "Protected A");
}

#[test]
fn human_output_explains_the_decision() {
    let out = bin()
        .args(["policy", "test", "--url", "https://drive.google.com/upload", "--file"])
        .arg(corpus("lab_caf_identity-baseline-discipline-template.docx"))
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("verdict:  BLOCK"), "{text}");
    assert!(text.contains("Labeled files stay in sanctioned apps"));
    assert!(text.contains("cloud app: Google Drive"));
    assert!(text.contains("General"), "the file's stated label name is shown: {text}");
}
