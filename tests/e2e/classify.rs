//! Auto-classification at rest: `labelgate scan` with content detectors over a tree of
//! corpus-derived files (card numbers and IBANs split across Word runs, invalid numbers, a
//! message body, a PDF, plain text past the text limit), then `--apply` writing the label as
//! Office does — checked with `labelgate inspect`, ExifTool, python-docx and a member-by-member
//! comparison of the packages — and `--undo` putting every original back byte for byte.

use crate::common::corpus;
use labelgate_testkit::{compound, custom_xml, docx, test_python, zip};
use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const GENERAL: &str = "f42aa342-8706-4288-bd11-ebb85995028c";
const CONFIDENTIAL: &str = "3d0ca00b-3f0e-465a-aac7-1a6a22fcea40";
const SECRET: &str = "c0ffee00-1111-4222-8333-944455556666";
const SITE: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

const CONFIG: &str = r#"
[policy]
default_action = "allow"

[[policy.rules]]
name = "Cards and bank accounts are confidential"
action = "audit"
direction = "at_rest"
detectors = ["payment_card", "iban"]
apply_label = "Confidential"

[[policy.rules]]
name = "Social security numbers"
action = "audit"
direction = "at_rest"
detectors = ["us_ssn"]

[[policy.rules]]
name = "Project Falcon"
action = "audit"
direction = "at_rest"
detectors = ["falcon"]

[[policy.rules]]
name = "Antitrust and capitals"
action = "audit"
direction = "at_rest"
detectors = ["antitrust"]
apply_label = "3d0ca00b-3f0e-465a-aac7-1a6a22fcea40"

[[detectors]]
name = "payment_card"
min_count = 2

[[detectors]]
name = "falcon"
keywords = ["Project Falcon"]

[[detectors]]
name = "antitrust"
pattern = '(?i)\bantitrust\b|\bWashington\b'

[scan]
max_text_bytes = 65536

[[labels]]
id = "f42aa342-8706-4288-bd11-ebb85995028c"
name = "General"
priority = 1
tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"

[[labels]]
id = "3d0ca00b-3f0e-465a-aac7-1a6a22fcea40"
name = "Confidential"
priority = 5
tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"

[[labels]]
id = "c0ffee00-1111-4222-8333-944455556666"
name = "Secret"
priority = 9
tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
"#;

/// Adds paragraphs to `word/document.xml` of a package, copying every other member as it is
/// (Python's zipfile, as a user's script would).
const ADD_PARAGRAPHS: &str = r#"
import sys, zipfile
src, dst, para = sys.argv[1], sys.argv[2], sys.argv[3]
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, 'w') as zout:
    for info in zin.infolist():
        data = zin.read(info.filename)
        if info.filename == 'word/document.xml':
            text = data.decode('utf-8')
            at = text.rfind('<w:sectPr')
            if at < 0:
                at = text.rfind('</w:body>')
            data = (text[:at] + para + text[at:]).encode('utf-8')
        zout.writestr(info, data)
"#;

/// Checks a labelled package against its original: every member but the label parts has the
/// same local entry, byte for byte, and every CRC holds.
const MEMBERS: &str = r#"
import sys, zipfile, struct
original, labelled, changed = sys.argv[1], sys.argv[2], set(sys.argv[3].split(','))
def entries(path):
    out = {}
    data = open(path, 'rb').read()
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None, 'every CRC holds'
        for i in z.infolist():
            n, m = struct.unpack('<HH', data[i.header_offset + 26:i.header_offset + 30])
            end = i.header_offset + 30 + n + m + i.compress_size
            out[i.filename] = data[i.header_offset:end]
    return out
a, b = entries(original), entries(labelled)
for name, raw in a.items():
    if name in changed:
        continue
    assert b.get(name) == raw, name + ' differs'
print(len(a), 'members,', len([n for n in a if n not in changed]), 'identical')
"#;

/// [`MEMBERS`], and python-docx opens the labelled document and shows the card paragraph.
const VERIFY: &str = r#"
import sys, docx
text = '\n'.join(p.text for p in docx.Document(sys.argv[2]).paragraphs)
assert '4111 1111 1111 1111' in text, 'python-docx shows the paragraph'
"#;

struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
    share: PathBuf,
    config: PathBuf,
    state: PathBuf,
}

fn python(script: &str, args: &[&Path], extra: &[&str]) -> String {
    let out = Command::new(test_python()).arg("-c").arg(script).args(args).args(extra).output().expect("python runs");
    assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn with_paragraphs(src: &Path, dst: &Path, paragraphs: &[&str]) {
    let xml: String = paragraphs
        .iter()
        .map(|p| {
            // Each paragraph's text split into runs of at most 5 characters, as Word splits
            // text edited over time: numbers cross run boundaries.
            let runs: String = p
                .chars()
                .collect::<Vec<_>>()
                .chunks(5)
                .map(|c| format!("<w:r><w:t xml:space=\"preserve\">{}</w:t></w:r>", c.iter().collect::<String>()))
                .collect();
            format!("<w:p>{runs}</w:p>")
        })
        .collect();
    python(ADD_PARAGRAPHS, &[src, dst], &[&xml]);
}

const CARDS: &str = "Customer card 4111 1111 1111 1111, backup card 5500-0000-0000-0004.";
const IBANS: &str = "Pay to GB82 WEST 1234 5698 7654 32 or DE89370400440532013000.";

fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let share = root.join("share");
    std::fs::create_dir_all(&share).unwrap();
    let unlabeled = corpus("unl_gc_pco-summary-word.docx");
    let general = corpus("lab_caf_identity-baseline-discipline-template.docx");
    with_paragraphs(&unlabeled, &share.join("cards.docx"), &[CARDS, IBANS]);
    // Numbers that look right but fail their checks: Luhn, IBAN mod 97, SSN ranges.
    with_paragraphs(
        &unlabeled,
        &share.join("invalid.docx"),
        &[
            "Cards 4111 1111 1111 1112 and 5500 0000 0000 0005.",
            "IBAN GB82 WEST 1234 5698 7654 33.",
            "SSN 000-12-3456, 666-12-3456, 123-00-4567.",
        ],
    );
    // A General file (with LabelInfo) to raise; a Secret one never lowered.
    with_paragraphs(&general, &share.join("general-cards.docx"), &[CARDS, IBANS]);
    let secret_src = root.join("secret-src.docx");
    std::fs::write(&secret_src, zip(&docx(Some(custom_xml(&[(SECRET, SITE, "true")])), None))).unwrap();
    with_paragraphs(&secret_src, &share.join("secret-cards.docx"), &[CARDS, IBANS]);
    // Hard links are not split.
    std::fs::copy(share.join("cards.docx"), share.join("linked.docx")).unwrap();
    std::fs::hard_link(share.join("linked.docx"), share.join("linked-too.docx")).unwrap();
    // A message whose body (base64) holds the numbers; a corpus PDF with an address.
    let body =
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{CARDS}\r\n{IBANS}\r\nProject Falcon starts.\r\n"));
    std::fs::write(
        share.join("mail.eml"),
        format!("From: a@example.com\r\nTo: b@example.com\r\nSubject: numbers\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{body}\r\n"),
    )
    .unwrap();
    std::fs::copy(corpus("lab_markitdown_repair-invoice.pdf"), share.join("invoice.pdf")).unwrap();
    // An Outlook message: cards in its plain body, IBANs in its HTML body.
    let utf16: Vec<u8> = CARDS.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let html = format!("<p>{}</p>", IBANS.replace(' ', "&nbsp;"));
    let msg = compound(&[
        ("/__properties_version1.0", &[0u8; 32]),
        ("/__substg1.0_1000001F", &utf16),
        ("/__substg1.0_10130102", html.as_bytes()),
    ]);
    std::fs::write(share.join("outlook.msg"), msg).unwrap();
    // The card document zipped (read: zipping does not hide it); a legacy Word file and the
    // document gzipped: their text is not read, which policy decides (text_unread).
    let cards_bytes = std::fs::read(share.join("cards.docx")).unwrap();
    let inner_zip = zip(&[labelgate_testkit::Entry::new("inner/cards.docx", &cards_bytes)]);
    std::fs::write(share.join("cards.zip"), zip(&[labelgate_testkit::Entry::new("nested.zip", &inner_zip)])).unwrap();
    std::fs::copy(corpus("unl_markitdown_test.doc"), share.join("legacy.doc")).unwrap();
    python(
        "import gzip, sys; open(sys.argv[2], 'wb').write(gzip.compress(open(sys.argv[1], 'rb').read()))",
        &[&share.join("cards.docx"), &share.join("cards.docx.gz")],
        &[],
    );
    // A workbook and a presentation, as Office wrote them, matched by a custom pattern.
    std::fs::copy(corpus("unl_kernel-memory_file8-data.xlsx"), share.join("capitals.xlsx")).unwrap();
    std::fs::copy(corpus("unl_finos_antitrust-compliance-slide.pptx"), share.join("antitrust.pptx")).unwrap();
    // A PDF (written by PowerPoint's export), labelled by an incremental update.
    std::fs::copy(corpus("unl_finos_standards-project-compliance-slides.pdf"), share.join("antitrust.pdf")).unwrap();
    // Plain text: SSNs early, cards only past the 64 KiB text limit.
    let mut notes = String::from("Employee SSN 123-45-6789 and 078 05 1120.\n");
    notes.push_str(&"filler text line without numbers\n".repeat(3000));
    notes.push_str(CARDS);
    std::fs::write(share.join("notes.txt"), notes).unwrap();
    let config = root.join("labelgate.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let state = root.join("state");
    Tree { _dir: dir, root, share, config, state }
}

fn labelgate(t: &Tree, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_labelgate")).arg("--config").arg(&t.config).args(args).current_dir(&t.root).output().unwrap()
}

fn scan(t: &Tree, extra: &[&str]) -> (Output, BTreeMap<String, Value>) {
    let mut args = vec!["scan", "--state-dir", t.state.to_str().unwrap(), "--format", "json"];
    args.extend_from_slice(extra);
    args.push(t.share.to_str().unwrap());
    let out = labelgate(t, &args);
    let records = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|r| (r["path"].as_str().unwrap().rsplit('/').next().unwrap().to_string(), r))
        .collect();
    (out, records)
}

fn counts(record: &Value) -> BTreeMap<String, u64> {
    record["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["detector"].as_str().unwrap().to_string(), d["count"].as_u64().unwrap()))
        .collect()
}

fn bytes_of(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect()
}

#[test]
fn detectors_find_sensitive_files_and_apply_labels_them_as_office_does_and_undo_restores_them() {
    let t = tree();
    // The labelled file's owner-visible state: mode, an old modification time, an attribute.
    let cards = t.share.join("cards.docx");
    std::fs::set_permissions(&cards, std::fs::Permissions::from_mode(0o640)).unwrap();
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(978_307_200);
    std::fs::File::options().write(true).open(&cards).unwrap().set_times(std::fs::FileTimes::new().set_modified(old)).unwrap();
    let xattr_set = python("import os, sys; os.setxattr(sys.argv[1], 'user.origin', b'share-test'); print('ok')", &[&cards], &[]);
    assert_eq!(xattr_set.trim(), "ok");
    let before = bytes_of(&t.share);

    // A dry run: detections, verdicts, what would be labelled; nothing written.
    let (out, files) = scan(&t, &[]);
    assert_eq!(out.status.code(), Some(3), "audit rules matched: {}", String::from_utf8_lossy(&out.stderr));
    let found = counts(&files["cards.docx"]);
    assert_eq!((found["payment_card"], found["iban"], found["email_address"]), (2, 2, 1), "the document's own address too: {found:?}");
    assert_eq!(files["cards.docx"]["rule"], "Cards and bank accounts are confidential");
    assert_eq!(files["cards.docx"]["apply"]["outcome"], "would_apply");
    assert_eq!(files["cards.docx"]["apply"]["label"], CONFIDENTIAL);
    let invalid = counts(&files["invalid.docx"]);
    assert!(["payment_card", "iban", "us_ssn"].iter().all(|d| !invalid.contains_key(*d)), "Luhn, mod 97 and SSN ranges fail: {invalid:?}");
    assert_eq!(files["invalid.docx"]["verdict"], "allow");
    assert!(files["invalid.docx"].get("apply").is_none());
    let mail = counts(&files["mail.eml"]);
    assert_eq!((mail["payment_card"], mail["iban"], mail["falcon"]), (2, 2, 1), "{mail:?}");
    assert_eq!(files["mail.eml"]["apply"]["outcome"], "skipped", "an e-mail is not an Office document");
    let outlook = counts(&files["outlook.msg"]);
    assert_eq!((outlook["payment_card"], outlook["iban"]), (2, 2), "{outlook:?}");
    assert!(counts(&files["invoice.pdf"])["email_address"] >= 1, "{}", files["invoice.pdf"]);
    let notes = &files["notes.txt"];
    assert_eq!(counts(notes), BTreeMap::from([("us_ssn".into(), 2)]), "cards past the text limit are not read");
    assert_eq!(notes["text"]["truncated"], "max_text_bytes");
    assert_eq!(notes["text"]["bytes"], 65536);
    assert_eq!(notes["rule"], "Social security numbers");
    let zipped = counts(&files["cards.zip"]);
    assert_eq!((zipped["payment_card"], zipped["iban"]), (2, 2), "a zip in a zip of the document: {zipped:?}");
    assert_eq!(files["cards.zip"]["rule"], "Cards and bank accounts are confidential");
    for name in ["legacy.doc", "cards.docx.gz"] {
        let record = &files[name];
        assert_eq!(record["verdict"], "audit", "text the detectors did not see is not taken for clean: {record}");
        assert!(record["reason"].as_str().unwrap().contains("text_unread"), "{record}");
    }
    for record in files.values() {
        let line = record.to_string();
        assert!(!line.contains("4111") && !line.contains("WEST") && !line.contains("6789"), "matched values never appear: {line}");
    }
    assert_eq!(bytes_of(&t.share), before, "a dry run writes nothing");
    let (_, again) = scan(&t, &[]);
    assert_eq!(again["cards.docx"]["apply"]["outcome"], "would_apply");

    // --apply.
    let (out, files) = scan(&t, &["--apply"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let outcome = |name: &str| {
        (files[name]["apply"]["outcome"].as_str().unwrap().to_string(), files[name]["apply"]["reason"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(outcome("cards.docx").0, "applied");
    assert_eq!(outcome("general-cards.docx").0, "applied", "General (1) is raised to Confidential (5)");
    assert_eq!(outcome("secret-cards.docx").0, "skipped");
    assert!(outcome("secret-cards.docx").1.contains("never lowered"), "{:?}", outcome("secret-cards.docx"));
    assert!(outcome("linked.docx").1.contains("hard links"), "{:?}", outcome("linked.docx"));
    assert!(outcome("mail.eml").1.contains("not labelled"), "{:?}", outcome("mail.eml"));
    assert!(stderr.contains("labelled 5 files"), "{stderr}");
    let log =
        stderr.split("--undo ").nth(1).and_then(|s| s.lines().next()).map(|s| PathBuf::from(s.trim())).expect("the undo log is printed");
    assert!(log.starts_with(&t.state), "{}", log.display());

    assert_eq!(outcome("capitals.xlsx").0, "applied", "{:?}", files["capitals.xlsx"]);
    assert_eq!(outcome("antitrust.pptx").0, "applied", "{:?}", files["antitrust.pptx"]);
    assert_eq!(outcome("antitrust.pdf").0, "applied", "{:?}", files["antitrust.pdf"]);
    // labelgate inspect: the new label is effective; in the General file LabelInfo says so too.
    for name in ["cards.docx", "general-cards.docx", "capitals.xlsx", "antitrust.pptx", "antitrust.pdf"] {
        let out = labelgate(&t, &["inspect", "--json", t.share.join(name).to_str().unwrap()]);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let ids: Vec<&str> = report["labels"].as_array().unwrap().iter().map(|l| l["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [CONFIDENTIAL], "{name}: {report}");
        assert!(report["flags"].as_array().unwrap().is_empty(), "{name}: {report}");
    }
    let general_info = labelgate(&t, &["inspect", "--json", t.share.join("general-cards.docx").to_str().unwrap()]);
    let general_info: Value = serde_json::from_slice(&general_info.stdout).unwrap();
    let records = general_info["records"].as_array().unwrap();
    assert!(
        records.iter().any(|r| r["id"] == CONFIDENTIAL && r["source"] == "labelinfo" && r["status"] == "effective"),
        "LabelInfo states the new label: {general_info}"
    );
    assert!(!records.iter().any(|r| r["id"] == GENERAL), "General is gone from both parts: {general_info}");

    // ExifTool reads the properties Office writes.
    let exif = Command::new("exiftool").args(["-j", "-a", "-G1"]).arg(&cards).output().expect("exiftool (scripts/test.sh installs it)");
    let exif: Value = serde_json::from_slice(&exif.stdout).unwrap();
    let key = |k: &str| exif[0][format!("XML:MSIP_Label_{CONFIDENTIAL}_{k}")].clone();
    assert_eq!(key("Enabled"), Value::Bool(true), "{exif}");
    assert_eq!(key("Method"), "Standard");
    assert_eq!(key("SiteId"), SITE);
    assert_eq!(key("Name"), "Confidential");
    assert_eq!(key("ContentBits"), 0);
    assert!(key("SetDate").as_str().unwrap().ends_with('Z'));

    // The PDF: every original byte kept (an incremental update), qpdf finds no error, ExifTool
    // reads the label from the Info dictionary and from XMP, as it reads Office's.
    let pdf = t.share.join("antitrust.pdf");
    let labelled = std::fs::read(&pdf).unwrap();
    assert!(labelled.len() > before["antitrust.pdf"].len() && labelled.starts_with(&before["antitrust.pdf"]));
    let qpdf = Command::new("qpdf").arg("--check").arg(&pdf).output().expect("qpdf (scripts/test.sh installs it)");
    assert!(qpdf.status.success(), "{}", String::from_utf8_lossy(&qpdf.stdout));
    let exif = Command::new("exiftool").args(["-j", "-a", "-G1"]).arg(&pdf).output().unwrap();
    let exif: Value = serde_json::from_slice(&exif.stdout).unwrap();
    assert_eq!(exif[0][format!("XMP-pdfx:MSIP_Label_{CONFIDENTIAL}_Enabled")], Value::Bool(true), "{exif}");
    assert_eq!(exif[0][format!("XMP-pdfx:MSIP_Label_{CONFIDENTIAL}_SiteId")], SITE, "{exif}");
    assert!(exif[0].as_object().unwrap().keys().any(|k| k.starts_with("PDF:MSIP_Label") && k.ends_with("_Method")), "{exif}");

    // python-docx opens it; every member but the label parts is byte-identical.
    let original = t.root.join("cards.original.docx");
    std::fs::write(&original, &before["cards.docx"]).unwrap();
    let verify = format!("{VERIFY}\n{MEMBERS}");
    let report = python(&verify, &[&original, &cards], &["docProps/custom.xml,_rels/.rels,[Content_Types].xml"]);
    assert!(report.contains("identical"), "{report}");
    let general_original = t.root.join("general.original.docx");
    std::fs::write(&general_original, &before["general-cards.docx"]).unwrap();
    python(&verify, &[&general_original, &t.share.join("general-cards.docx")], &["docProps/custom.xml,docMetadata/LabelInfo.xml"]);
    for name in ["capitals.xlsx", "antitrust.pptx"] {
        let original = t.root.join(format!("original-{name}"));
        std::fs::write(&original, &before[name]).unwrap();
        let check = python(MEMBERS, &[&original, &t.share.join(name)], &["docProps/custom.xml,_rels/.rels,[Content_Types].xml"]);
        assert!(check.contains("identical"), "{name}: {check}");
    }

    // Mode, times and attributes kept; untouched files untouched.
    let meta = std::fs::metadata(&cards).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o640);
    assert_eq!(meta.modified().unwrap(), old);
    let xattr = python("import os, sys; print(os.getxattr(sys.argv[1], 'user.origin').decode())", &[&cards], &[]);
    assert_eq!(xattr.trim(), "share-test");
    let after = bytes_of(&t.share);
    for name in [
        "invalid.docx",
        "secret-cards.docx",
        "linked.docx",
        "linked-too.docx",
        "mail.eml",
        "outlook.msg",
        "invoice.pdf",
        "notes.txt",
        "cards.zip",
        "cards.docx.gz",
    ] {
        assert_eq!(after[name], before[name], "{name} untouched");
    }
    assert!(
        !std::fs::read_dir(&t.share).unwrap().flatten().any(|e| e.file_name().to_string_lossy().ends_with(".tmp")),
        "no temporary file left"
    );

    // A second --apply changes nothing: the label is there.
    let (_, files) = scan(&t, &["--apply"]);
    assert_eq!(files["cards.docx"]["apply"]["outcome"], "unchanged");
    assert_eq!(bytes_of(&t.share), after);

    // The kept originals (sensitive, unlabelled) are never labelled themselves.
    let kept = labelgate(&t, &["scan", "--state-dir", t.state.to_str().unwrap(), "--format", "json", "--apply", t.state.to_str().unwrap()]);
    let kept: Vec<Value> = String::from_utf8_lossy(&kept.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let attempted: Vec<&Value> = kept.iter().filter(|r| r.get("apply").is_some()).collect();
    assert!(attempted.len() >= 2, "{kept:?}");
    for r in attempted {
        assert!(r["apply"]["reason"].as_str().unwrap().contains("state directory"), "{r}");
    }

    // --undo puts the originals back, byte for byte, with their times.
    let out = labelgate(&t, &["scan", "--undo", log.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(bytes_of(&t.share), before, "every original is back");
    assert_eq!(std::fs::metadata(&cards).unwrap().modified().unwrap(), old);
    assert_eq!(std::fs::metadata(&cards).unwrap().mode() & 0o7777, 0o640);
    // Again: nothing is what the run wrote any more; each file is left and said so.
    let out = labelgate(&t, &["scan", "--undo", log.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("changed since it was labelled"));
    assert_eq!(bytes_of(&t.share), before);
}

#[test]
fn detectors_and_labelling_are_for_files_at_rest_only() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("labelgate.toml");
    let check = |text: &str| -> String {
        std::fs::write(&config, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_labelgate")).arg("--config").arg(&config).arg("check").output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };
    let upload = check("[[policy.rules]]\nname = \"r\"\naction = \"block\"\ndetectors = [\"payment_card\"]\n");
    assert!(upload.contains("labelgate.toml:4:") && upload.contains("files at rest only"), "{upload}");
    let apply = check("[[policy.rules]]\nname = \"r\"\naction = \"audit\"\ndirection = \"upload\"\napply_label = \"Confidential\"\n");
    assert!(apply.contains("labelgate.toml:5:") && apply.contains("apply_label"), "{apply}");
    let unknown = check("[[policy.rules]]\nname = \"r\"\naction = \"audit\"\ndirection = \"at_rest\"\ndetectors = [\"passport\"]\n");
    assert!(unknown.contains("labelgate.toml:5:") && unknown.contains("\"passport\""), "{unknown}");
    let pattern = check("[[detectors]]\nname = \"case\"\npattern = \"CASE-(\"\n");
    assert!(pattern.contains("labelgate.toml:3:") && pattern.contains("case"), "{pattern}");
}
