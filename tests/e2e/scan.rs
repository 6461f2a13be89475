//! `labelgate scan` over a tree built from the corpus: nested directories, an archive holding
//! labeled files, a symbolic-link loop, an unreadable file, excluded paths, a sparse 10 GiB
//! document, a name that is not UTF-8. Every corpus file's labels in the JSON equal the
//! manifest; a second `--incremental` scan opens no file and still reports every one; a policy
//! change between two incremental scans changes the verdicts; exit codes 0, 1, 2 and 3.

use crate::common::corpus;
use labelgate_testkit::{corpus_dir, custom_xml, docx, sparse_zip, zip, Entry};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const CONFIDENTIAL: &str = "3d0ca00b-3f0e-465a-aac7-1a6a22fcea40";
const SITE: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const OTHER: &str = "0f3ff4ad-77d8-4ff8-a1cb-6a4bf1e1d3e9";

/// The manifest: file name → effective label ids.
fn manifest() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(corpus_dir().join("manifest.tsv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (f, l) = (col("file"), col("labels"));
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let cells: Vec<&str> = line.split('\t').collect();
            let labels = cells[l].split(';').map(str::trim).filter(|s| !s.is_empty() && *s != "-").map(str::to_string).collect();
            (cells[f].to_string(), labels)
        })
        .collect()
}

struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
    config: PathBuf,
    state: PathBuf,
    /// The binary, where the unprivileged user can run it.
    bin: PathBuf,
}

fn policy(action: &str) -> String {
    format!(
        "[policy]\ndefault_action = \"allow\"\n\n\
         [[policy.rules]]\nname = \"Labeled files outside the vault\"\naction = \"{action}\"\ndirection = \"at_rest\"\nlabeled = true\nnot_paths = [\"**/vault/**\"]\n\n\
         [[policy.rules]]\nname = \"Labeled files in transit\"\naction = \"block\"\ndirection = \"upload\"\nlabeled = true\n\n\
         [[labels]]\nid = \"f42aa342-8706-4288-bd11-ebb85995028c\"\nname = \"General (catalog)\"\npriority = 1\n"
    )
}

/// The tree, readable by everyone except the one unreadable file.
fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let share = root.join("share");
    let files: Vec<String> = manifest().into_keys().collect();
    // Nested directories: each corpus file at a depth of its own.
    for (i, name) in files.iter().enumerate() {
        let mut d = share.join(format!("dept{}", i % 4));
        for level in 0..(i % 5) {
            d = d.join(format!("level{level}"));
        }
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(corpus(name), d.join(name)).unwrap();
    }
    // An archive of labeled files; a vault the rule leaves out.
    let docx_a = std::fs::read(corpus("lab_caf_identity-baseline-discipline-template.docx")).unwrap();
    std::fs::create_dir_all(share.join("archives")).unwrap();
    std::fs::write(share.join("archives/bundle.zip"), zip(&[Entry::new("inside/a.docx", &docx_a), Entry::new("notes.txt", "hello")]))
        .unwrap();
    std::fs::create_dir_all(share.join("vault")).unwrap();
    std::fs::write(share.join("vault/kept.docx"), &docx_a).unwrap();
    // A loop, excluded paths, a sparse 10 GiB document, a name that is not UTF-8.
    std::os::unix::fs::symlink("..", share.join("dept0/loop")).unwrap();
    std::fs::create_dir_all(share.join("tmp")).unwrap();
    std::fs::write(share.join("tmp/excluded.docx"), &docx_a).unwrap();
    std::fs::write(share.join("dept1/draft.tmp"), &docx_a).unwrap();
    std::fs::create_dir_all(share.join("big")).unwrap();
    let custom = custom_xml(&[(CONFIDENTIAL, SITE, "true")]);
    sparse_zip(&share.join("big/huge.docx"), &docx(Some(custom), None), "word/media/video.bin", 10 << 30).unwrap();
    std::fs::write(share.join("dept0/swap.docx"), stored_docx(CONFIDENTIAL)).unwrap();
    let latin1 = PathBuf::from(std::ffi::OsStr::from_bytes(b"caf\xe9.docx"));
    std::fs::write(share.join("dept2").join(&latin1), &docx_a).unwrap();
    let unreadable = share.join("dept3/unreadable.docx");
    std::fs::write(&unreadable, &docx_a).unwrap();
    std::fs::set_permissions(&unreadable, std::fs::Permissions::from_mode(0o000)).unwrap();
    // Everything else readable by everyone (the scan may run unprivileged, below).
    for entry in walk_all(&share) {
        if entry != unreadable {
            let mode = if entry.is_dir() { 0o755 } else { 0o644 };
            std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }
    let config = root.join("labelgate.toml");
    std::fs::write(&config, policy("block")).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o666)).unwrap();
    let state = root.join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    // Run unprivileged (as root), the binary must be where that user can execute it.
    let bin = if unsafe { libc::geteuid() } == 0 {
        let copy = root.join("labelgate");
        std::fs::copy(env!("CARGO_BIN_EXE_labelgate"), &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        copy
    } else {
        PathBuf::from(env!("CARGO_BIN_EXE_labelgate"))
    };
    Tree { _dir: dir, root, config, state, bin }
}

/// A docx with one label, its members stored: two of these differ only in the GUID's bytes.
fn stored_docx(label: &str) -> Vec<u8> {
    let custom = custom_xml(&[(label, SITE, "true")]);
    zip(&docx(Some(custom), None).into_iter().map(Entry::stored).collect::<Vec<_>>())
}

fn walk_all(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if e.file_type().unwrap().is_symlink() {
            continue;
        }
        if p.is_dir() {
            out.extend(walk_all(&p));
        }
        out.push(p);
    }
    out
}

/// Runs `labelgate scan` as an unprivileged user when the test runs as root (root reads every
/// file, so the unreadable one would not be).
fn scan(t: &Tree, args: &[&str]) -> Output {
    let mut cmd = if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(&t.bin);
        c
    } else {
        Command::new(&t.bin)
    };
    cmd.arg("--config").arg(&t.config).arg("scan").arg("--state-dir").arg(&t.state).args(args).current_dir(&t.root);
    cmd.output().unwrap()
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn by_name(records: &[Value]) -> BTreeMap<String, &Value> {
    records.iter().map(|r| (r["path"].as_str().unwrap().rsplit('/').next().unwrap().to_string(), r)).collect()
}

fn label_ids(record: &Value) -> BTreeSet<String> {
    record["labels"].as_array().unwrap().iter().map(|l| l["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn a_corpus_tree_is_scanned_with_every_label_a_cached_rescan_reads_nothing_and_a_policy_change_applies() {
    let t = tree();
    let args = ["--format", "json", "--incremental", "--jobs", "2", "--exclude", "tmp", "--exclude", "*.tmp", "share"];
    // The index keeps no file changed within the last second (a write in the same clock tick
    // could leave the times unchanged): the tree settles first.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let first = scan(&t, &args);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert_eq!(first.status.code(), Some(3), "labeled files outside the vault match a block rule: {stderr}");
    let records = lines(&first);
    let named = by_name(&records);

    // Every corpus file, with the manifest's labels.
    let manifest = manifest();
    for (file, labels) in &manifest {
        let r = named.get(file.as_str()).unwrap_or_else(|| panic!("{file} is reported"));
        assert_eq!(&label_ids(r), labels, "{file}");
        let expected = if labels.is_empty() { "allow" } else { "block" };
        assert_eq!(r["verdict"], expected, "{file}: {}", r["reason"]);
        assert!(r["size"].as_u64().unwrap() > 0 && r["modified"].as_str().unwrap().ends_with('Z'));
    }
    // Labels resolved through the catalog ([[labels]] here), else named as the file names them.
    let general = &named["lab_caf_identity-baseline-discipline-template.docx"]["label_info"][0];
    assert_eq!((general["name"].as_str(), general["priority"].as_i64()), (Some("General (catalog)"), Some(1)), "{general}");
    let stated = named["lab_markitdown_test_custom-amber_labelinfo-ms.pptx"]["label_info"].as_array().unwrap();
    assert!(stated.iter().any(|l| l["name"] == "Amber" && l["priority"].is_null()), "{stated:?}");
    // Inside the archive; the vault left out by not_paths; the sparse document; the Latin-1 name.
    let bundle = named["bundle.zip"];
    assert!(bundle["inner"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["path"][1] == "inside/a.docx" && !f["labels"].as_array().unwrap().is_empty()));
    assert_eq!(bundle["verdict"], "block");
    assert_eq!((named["kept.docx"]["verdict"].as_str(), named["kept.docx"]["rule"].as_str()), (Some("allow"), None));
    let huge = named["huge.docx"];
    assert!(huge["size"].as_u64().unwrap() > 10u64 << 30);
    assert_eq!(label_ids(huge), BTreeSet::from([CONFIDENTIAL.to_string()]));
    let latin1 = records.iter().find(|r| r["path_bytes"].is_string()).expect("the non-UTF-8 name is reported");
    assert_eq!(latin1["path_bytes"].as_str().unwrap(), hex(b"share/dept2/caf\xe9.docx"), "the exact bytes");
    assert_eq!(latin1["path"], "share/dept2/caf\u{fffd}.docx");
    // Nothing excluded, nothing through the loop; the unreadable file is an error.
    assert!(!named.contains_key("excluded.docx") && !named.contains_key("draft.tmp"));
    assert!(records.iter().all(|r| !r["path"].as_str().unwrap().contains("/loop/")));
    assert!(named["unreadable.docx"]["error"].as_str().unwrap().contains("Permission denied"), "{}", named["unreadable.docx"]);
    assert_eq!(records.len(), manifest.len() + 6, "{:?}", named.keys().collect::<Vec<_>>());
    assert!(stderr.contains("skipped: excluded 2, symlink 1"), "{stderr}");
    assert!(stderr.contains(&format!("read {}, from the index 0", records.len() - 1)), "{stderr}");
    assert!(stderr.contains("errors 1"), "the unreadable file: {stderr}");

    // Again: every file from the index, none opened, the same labels.
    let second = scan(&t, &args);
    let again = lines(&second);
    assert_eq!(again.len(), records.len());
    assert!(again.iter().all(|r| r["cached"] == true || r["error"].is_string()), "every readable file from the index");
    let second_err = String::from_utf8_lossy(&second.stderr);
    assert!(second_err.contains(&format!("read 0, from the index {}", records.len() - 1)), "no file is read again: {second_err}");
    assert!(second_err.contains("errors 1"), "the unreadable file is tried again and fails again: {second_err}");
    for (name, r) in by_name(&again) {
        assert_eq!(label_ids(r), label_ids(named[name.as_str()]), "{name}");
    }

    // A file rewritten in place with the same size and its old modification time is still seen
    // as changed (its change time moved): read again, its new label reported.
    let swap = t.root.join("share/dept0/swap.docx");
    let before = std::fs::metadata(&swap).unwrap();
    let replacement = stored_docx(OTHER);
    assert_eq!(replacement.len() as u64, before.len(), "same size");
    std::fs::write(&swap, &replacement).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&swap)
        .unwrap()
        .set_times(std::fs::FileTimes::new().set_modified(before.modified().unwrap()))
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));

    // A policy change applies to cached files: audit instead of block.
    std::fs::write(&t.config, policy("audit")).unwrap();
    let third = scan(&t, &args);
    assert_eq!(third.status.code(), Some(3), "an audit rule matched");
    let audited = lines(&third);
    let named3 = by_name(&audited);
    assert_eq!(named3["bundle.zip"]["verdict"], "audit");
    assert_eq!(named3["bundle.zip"]["cached"], true);
    assert!(String::from_utf8_lossy(&third.stderr).contains("read 1,"), "only the rewritten file is read");
    assert_eq!(
        (label_ids(named3["swap.docx"]), &named3["swap.docx"]["cached"]),
        (BTreeSet::from([OTHER.to_string()]), &Value::Bool(false))
    );

    // CSV: the stable header, one row per file. The table: files worth a look, then the
    // summary; no progress line when standard error is not a terminal.
    let csv = scan(&t, &["--format", "csv", "--exclude", "tmp", "--exclude", "*.tmp", "share"]);
    let text = String::from_utf8_lossy(&csv.stdout).into_owned();
    let mut rows = text.lines();
    assert_eq!(
        rows.next().unwrap(),
        "path,path_bytes,size,modified,kind,labels,label_names,verdict,rule,unscannable,error,inner_files,inner_labeled,cached,detections,apply_label,apply_outcome"
    );
    assert!(text.ends_with("\r\n"), "CRLF, as RFC 4180 says");
    assert_eq!(rows.count(), records.len());
    assert!(text.contains(&format!(",{},", hex(b"share/dept2/caf\xe9.docx"))));
    let table = scan(&t, &["share/archives"]);
    let out = String::from_utf8_lossy(&table.stdout);
    assert!(out.starts_with("VERDICT") && out.contains("share/archives/bundle.zip") && out.contains("scanned 1 files"), "{out}");
    assert!(!String::from_utf8_lossy(&table.stderr).contains('\r'), "no progress line when piped");

    // Labels only ([scan] files_inside = false): a document's own labels, an archive unopened
    // and never clean.
    std::fs::write(&t.config, format!("{}\n[scan]\nfiles_inside = false\n", policy("block"))).unwrap();
    let quick = scan(&t, &["--format", "json", "share/archives", "share/dept0", "share/big"]);
    let quick = lines(&quick);
    let named_quick = by_name(&quick);
    let bundle = named_quick["bundle.zip"];
    assert_eq!(bundle["inner"], serde_json::json!([]), "nothing inside is opened");
    assert!(bundle["container_error"].as_str().unwrap().contains("files_inside"), "{bundle}");
    assert_eq!(label_ids(named_quick["huge.docx"]), BTreeSet::from([CONFIDENTIAL.to_string()]));
    for r in quick.iter().filter(|r| r["kind"] != "zip") {
        let name = r["path"].as_str().unwrap().rsplit('/').next().unwrap();
        if let Some(labels) = manifest.get(name) {
            assert_eq!(&label_ids(r), labels, "{name}, labels only");
        }
    }
    std::fs::write(&t.config, policy("audit")).unwrap();

    // Exit codes: --strict fails on the unreadable file; no rule matching is 0; usage is 2.
    assert_eq!(scan(&t, &["--format", "json", "--strict", "share/dept3"]).status.code(), Some(1));
    assert_eq!(scan(&t, &["share/vault"]).status.code(), Some(0));
    assert_eq!(scan(&t, &["--exclude", "[", "share"]).status.code(), Some(2));
    assert_eq!(scan(&t, &["share/no-such-dir"]).status.code(), Some(1));
    // Following links, the loop back to the share is seen and not entered.
    let followed = scan(&t, &["--format", "json", "--follow-symlinks", "--exclude", "tmp", "--exclude", "*.tmp", "share"]);
    assert!(String::from_utf8_lossy(&followed.stderr).contains("loop 1"), "{}", String::from_utf8_lossy(&followed.stderr));
    assert_eq!(lines(&followed).len(), records.len());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
