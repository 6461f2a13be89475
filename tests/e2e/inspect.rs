//! `labelgate inspect` as a user runs it: the real binary, real files, its output and exit codes.

use std::path::PathBuf;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_labelgate"))
}

fn corpus(name: &str) -> PathBuf {
    labelgate_testkit::corpus_dir().join("files").join(name)
}

#[test]
fn json_lines_match_the_manifest_for_the_whole_corpus() {
    let dir = corpus("");
    let manifest = std::fs::read_to_string(dir.join("../manifest.tsv")).unwrap();
    let mut paths = Vec::new();
    let mut expected = std::collections::HashMap::new();
    for line in manifest.lines().skip(1) {
        let cells: Vec<&str> = line.split('\t').collect();
        paths.push(dir.join(cells[0]));
        expected.insert(dir.join(cells[0]).display().to_string(), cells[5].to_string());
    }
    let out = bin().arg("inspect").arg("--json").args(&paths).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), paths.len());
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let path = v["path"].as_str().unwrap();
        let mut ids: Vec<String> = v["labels"].as_array().unwrap().iter().map(|l| l["id"].as_str().unwrap().to_string()).collect();
        ids.sort();
        ids.dedup();
        let got = if ids.is_empty() { "-".to_string() } else { ids.join(";") };
        assert_eq!(got, expected[path], "{path}");
        assert!(v["error"].is_null());
        assert!(v["kind"].is_string() && v["flags"].is_array() && v["records"].is_array());
        for label in v["labels"].as_array().unwrap() {
            for key in ["id", "site_id", "name", "method", "source"] {
                assert!(label.get(key).is_some(), "label field {key} missing");
            }
        }
    }
}

#[test]
fn a_bad_file_is_reported_and_the_run_goes_on() {
    let tmp = std::env::temp_dir().join(format!("labelgate-inspect-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let broken = tmp.join("broken.docx");
    std::fs::write(&broken, b"PK\x03\x04 this is not a zip").unwrap();
    let good = corpus("lab_caf_strategy-and-plan-template.docx");
    let out = bin().args(["inspect", "--json"]).arg(&broken).arg(tmp.join("missing.pdf")).arg(&good).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0]["error"].as_str().unwrap().contains("malformed zip"));
    assert!(lines[1]["error"].as_str().is_some());
    assert!(lines[2]["error"].is_null());
    assert_eq!(lines[2]["labels"][0]["id"], "f42aa342-8706-4288-bd11-ebb85995028c");
    std::fs::remove_dir_all(&tmp).ok();
}

#[test]
fn human_table_names_kind_labels_and_records() {
    let out = bin().arg("inspect").arg(corpus("lab_viva-insights_org-data-sample.xlsx")).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("kind:   xlsx"));
    assert!(text.contains("87ba5c36-b7cf-4793-bbc2-bd5b3a9f95ca"));
    assert!(text.contains("stale"), "{text}");
}

#[test]
fn stdin_is_inspected_by_content() {
    use std::io::Write;
    let mut child =
        bin().args(["inspect", "--json", "-"]).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(&std::fs::read(corpus("lab_d365_headless-commerce-lab.pdf")).unwrap()).unwrap();
    let out = child.wait_with_output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "pdf");
    assert_eq!(v["labels"][0]["id"], "87867195-f2b8-4ac2-b0b6-6bb73cb33afc");
}

#[test]
fn help_on_every_subcommand() {
    for args in [vec!["--help"], vec!["inspect", "--help"], vec!["help", "inspect"]] {
        let out = bin().args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"), "{args:?}");
    }
    let out = bin().arg("inspect").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "missing PATH is a usage error");
}
