//! The real-world corpus (`labelgate_testkit::corpus_dir()`: ../shared/corpus, or the cache
//! scripts/corpus.sh fetches): 72 files written by Office and Purview clients. Every file's
//! effective label ids and tenants must equal the manifest exactly, through each of the three
//! entry points, and every label exiftool reads must appear among our raw records.

use labelgate_extract::{extract, extract_reader, extract_segments, FileKind, Flag, Inspector, Limits, RecordStatus};
use labelgate_testkit::corpus_dir;
use std::collections::BTreeSet;

struct Row {
    file: String,
    kind: String,
    labels: BTreeSet<String>,
    site_ids: BTreeSet<String>,
}

fn split_set(s: &str) -> BTreeSet<String> {
    if s == "-" {
        BTreeSet::new()
    } else {
        s.split(';').map(str::to_string).collect()
    }
}

fn manifest() -> Vec<Row> {
    let text = std::fs::read_to_string(corpus_dir().join("manifest.tsv")).expect("manifest.tsv is readable");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect("column present");
    let (f, k, l, s) = (col("file"), col("kind"), col("labels"), col("site_ids"));
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let cells: Vec<&str> = line.split('\t').collect();
            Row { file: cells[f].to_string(), kind: cells[k].to_string(), labels: split_set(cells[l]), site_ids: split_set(cells[s]) }
        })
        .collect()
}

#[test]
fn manifest_has_every_file() {
    let rows = manifest();
    assert_eq!(rows.len(), 72);
    let on_disk = std::fs::read_dir(corpus_dir().join("files")).expect("files dir").count();
    assert_eq!(on_disk, rows.len());
}

#[test]
fn effective_labels_equal_the_manifest() {
    let mut failures = Vec::new();
    for row in manifest() {
        let bytes = std::fs::read(corpus_dir().join("files").join(&row.file)).expect("corpus file readable");
        let ex = match extract(&bytes) {
            Ok(ex) => ex,
            Err(e) => {
                failures.push(format!("{}: error {e}", row.file));
                continue;
            }
        };
        let got: BTreeSet<String> = ex.labels.iter().map(|l| l.id.clone()).collect();
        let sites: BTreeSet<String> = ex.labels.iter().filter_map(|l| l.site_id.clone()).collect();
        if got != row.labels || sites != row.site_ids {
            failures.push(format!("{}: labels {:?} sites {:?}, manifest {:?} {:?}", row.file, got, sites, row.labels, row.site_ids));
        }
        // The kind is what the bytes are: the extension, except for compound-file wrappers.
        let expected_kind = match (row.kind.as_str(), row.file.contains("protected"), row.file.contains("encrypted")) {
            (_, true, _) => FileKind::ProtectedOoxml,
            (_, _, true) => FileKind::EncryptedOoxml,
            (k, _, _) => FileKind::from_name(k).expect("manifest kind is a FileKind name"),
        };
        if ex.kind != expected_kind {
            failures.push(format!("{}: kind {} expected {}", row.file, ex.kind, expected_kind));
        }
        if ex.has_flag(Flag::Ambiguous) {
            failures.push(format!("{}: unexpectedly ambiguous: {:?}", row.file, ex.findings));
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn protected_and_encrypted_files_are_flagged() {
    let dir = corpus_dir().join("files");
    for name in ["lab_fasttrack_protected_analyze-column-headers.xlsx", "lab_fasttrack_protected_copilot-agent-brainstorming.pptx"] {
        let ex = extract(&std::fs::read(dir.join(name)).unwrap()).unwrap();
        assert!(ex.has_flag(Flag::Protected), "{name}");
        assert!(!ex.has_flag(Flag::Encrypted), "{name}: the label is readable, so not 'encrypted'");
        assert_eq!(ex.records[0].source, labelgate_extract::Source::CfbLabelInfo);
    }
    let ex = extract(&std::fs::read(dir.join("unl_openxmlsdk_encrypted-pptx.pptx")).unwrap()).unwrap();
    assert_eq!(ex.kind, FileKind::EncryptedOoxml);
    assert!(ex.has_flag(Flag::Encrypted));
    assert!(ex.labels.is_empty());
}

#[test]
fn labelinfo_beats_custom_properties_of_the_same_tenant() {
    let ex = extract(&std::fs::read(corpus_dir().join("files/lab_viva-insights_org-data-sample.xlsx")).unwrap()).unwrap();
    let stale: Vec<_> = ex.records.iter().filter(|r| r.status == RecordStatus::Stale).collect();
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0].id, "f42aa342-8706-4288-bd11-ebb85995028c");
    assert_eq!(ex.labels.len(), 1);
    assert_eq!(ex.labels[0].id, "87ba5c36-b7cf-4793-bbc2-bd5b3a9f95ca");
}

#[test]
fn all_entry_points_agree() {
    let limits = Limits::default();
    for row in manifest() {
        let path = corpus_dir().join("files").join(&row.file);
        let bytes = std::fs::read(&path).unwrap();
        let from_slice = extract(&bytes).unwrap();
        let from_reader = extract_reader(std::fs::File::open(&path).unwrap(), &limits).unwrap();
        assert_eq!(from_slice, from_reader, "{}: reader differs", row.file);
        // Push interface with uneven chunk sizes.
        let mut inspector = Inspector::new(limits.clone());
        let mut at = 0usize;
        let mut step = 1usize;
        while at < bytes.len() {
            let end = (at + step).min(bytes.len());
            inspector.feed(&bytes[at..end]).unwrap();
            at = end;
            step = step * 3 + 7;
        }
        let pushed = inspector.finish().unwrap();
        assert_eq!(from_slice, pushed, "{}: push interface differs", row.file);
        // Held as the uneven pieces an upload arrives in (16 KiB TLS records, odd splits).
        let pieces: Vec<&[u8]> = bytes.chunks(16_384 - 29).collect();
        let from_pieces = extract_segments(&pieces, &limits).unwrap();
        assert_eq!(from_slice, from_pieces, "{}: pieces differ", row.file);
    }
}

/// exiftool (an independent reader) sees custom properties, PDF Info and XMP; every enabled
/// label it reports must be among our raw records.
#[test]
fn every_label_exiftool_reads_is_among_our_records() {
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(corpus_dir().join("exiftool_msip.json")).unwrap()).unwrap();
    let files = json["files"].as_object().expect("files object");
    let mut checked = 0;
    for (name, tags) in files {
        let bytes = std::fs::read(corpus_dir().join("files").join(name)).unwrap();
        let ex = extract(&bytes).unwrap();
        let ours: BTreeSet<String> = ex.records.iter().map(|r| r.id.clone()).collect();
        for (tag, value) in tags.as_object().unwrap() {
            let lower = tag.to_ascii_lowercase();
            if !lower.ends_with("_enabled") {
                continue;
            }
            let enabled = value.as_bool().unwrap_or_else(|| value.as_str().is_some_and(|s| s.eq_ignore_ascii_case("true")));
            if !enabled {
                continue;
            }
            let Some(start) = lower.find("msip_label") else { continue };
            let rest = lower[start + 10..].trim_start_matches('_');
            let guid = &rest[..36];
            assert!(ours.contains(guid), "{name}: exiftool reads {guid} ({tag}), we have {ours:?}");
            checked += 1;
        }
    }
    assert!(checked > 50, "the oracle covered only {checked} labels");
}
