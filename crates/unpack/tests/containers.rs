//! Containers built around real corpus files by well-kept writers (Python's zipfile, tarfile,
//! gzip, bz2, lzma, email; the 7-Zip command line), read through every entry point.

mod common;
use common::{inspect_all_ways_in, labels, problems};
use labelgate_extract::{FileKind, Limits};
use labelgate_unpack::{inspect_slice, Inspection, Problem, UnpackLimits};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A file of the real-world corpus (`labelgate_testkit::corpus_dir()`).
fn corpus(name: &str) -> PathBuf {
    labelgate_testkit::corpus_dir().join("files").join(name)
}

/// The label of the labeled docx every `lab_` container carries (and the PDF's, for the 7z).
const LABEL: &str = "f42aa342-8706-4288-bd11-ebb85995028c";
/// sha256sum of lab_caf_identity-baseline-discipline-template.docx.
const LABELED_SHA256: &str = "b397f6348d281858c4034eaca4900cf2e6b285906cece09f928137299de9b728";
const LEGACY_DOC_LABEL: &str = "3e575051-ae9c-4f9b-beed-77532f7cfdad";

fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("labelgate-unpack-fixtures-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let status = std::process::Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/make_containers.py"))
            .arg(&dir)
            .arg(corpus("lab_caf_identity-baseline-discipline-template.docx"))
            .arg(corpus("unl_gc_pco-summary-word.docx"))
            .arg(corpus("lab_kernel-memory_legacy-word.doc"))
            .arg(corpus("lab_azfunc_perksplus.pdf"))
            .status()
            .expect("python3 runs (scripts/test.sh installs what the fixtures need)");
        assert!(status.success(), "make_containers.py failed");
        dir
    })
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The same answer from a slice, pieces of 7 KiB, and a reader.
fn inspect_all_ways(bytes: &[u8]) -> Inspection {
    inspect_all_ways_in(bytes, 7 * 1024)
}

const CONTAINERS: &[(&str, FileKind)] = &[
    ("stored.zip", FileKind::Zip),
    ("deflated.zip", FileKind::Zip),
    ("bzip2.zip", FileKind::Zip),
    ("lzma.zip", FileKind::Zip),
    ("zip_in_zip.zip", FileKind::Zip),
    ("three_deep.zip", FileKind::Zip),
    (".tar", FileKind::Tar),
    ("_gnu.tar", FileKind::Tar),
    (".tar.gz", FileKind::Gzip),
    (".tar.bz2", FileKind::Bzip2),
    (".tar.xz", FileKind::Xz),
    (".docx.gz", FileKind::Gzip),
    ("_concatenated.docx.gz", FileKind::Gzip),
    (".docx.bz2", FileKind::Bzip2),
    (".docx.xz", FileKind::Xz),
    (".tar.zst", FileKind::Zstd),
    ("_frames.docx.zst", FileKind::Zstd),
    ("_base64.eml", FileKind::Eml),
    ("_qp.eml", FileKind::Eml),
    ("_rfc822.eml", FileKind::Eml),
    ("_eml_as_octets.eml", FileKind::Eml),
    (".7z", FileKind::SevenZ),
    ("_stub.7z.exe", FileKind::Unknown),
    (".tar.lzma", FileKind::Lzma),
    (".cpio", FileKind::Cpio),
    ("_newc.cpio", FileKind::Cpio),
    (".cpgz", FileKind::Gzip),
    (".a", FileKind::Ar),
];

fn fixture_name(tag: &str, name: &str) -> String {
    if name.starts_with('.') || name.starts_with('_') {
        format!("{tag}{name}")
    } else {
        format!("{tag}_{name}")
    }
}

#[test]
fn every_container_carries_its_inner_label_and_the_unlabeled_twin_none() {
    for &(name, kind) in CONTAINERS {
        let labeled = inspect_all_ways(&read(&fixture_name("lab", name)));
        assert_eq!(labeled.outer.as_ref().map(|e| e.kind).ok(), Some(kind), "{name}");
        assert!(labeled.outer.as_ref().unwrap().labels.is_empty(), "{name}: the container itself carries no label");
        assert_eq!(labels(&labeled), [LABEL], "{name}: {:#?}", labeled.inner);
        assert_eq!(problems(&labeled), Vec::<String>::new(), "{name}");
        let docx = labeled.inner.iter().find(|f| !f.labels.is_empty()).unwrap();
        assert!(matches!(docx.kind, FileKind::Docx | FileKind::Pdf), "{name}: {:?}", docx.kind);
        if docx.kind == FileKind::Docx {
            assert_eq!(docx.sha256.as_deref(), Some(LABELED_SHA256), "{name}: the hash of the labeled file itself");
        }

        let clean = inspect_all_ways(&read(&fixture_name("unl", name)));
        assert_eq!(labels(&clean), Vec::<String>::new(), "{name}");
        assert_eq!(problems(&clean), Vec::<String>::new(), "{name}");
        assert!(clean.inner.iter().any(|f| f.kind == FileKind::Docx), "{name}: the unlabeled docx is still found: {:#?}", clean.inner);
    }
}

#[test]
fn paths_depths_and_names() {
    let i = inspect_all_ways(&read("lab_three_deep.zip"));
    let found: Vec<(Vec<String>, u32, FileKind)> = i.inner.iter().map(|f| (f.path.clone(), f.depth, f.kind)).collect();
    assert_eq!(
        found,
        vec![
            (vec!["a.tar.gz".into()], 1, FileKind::Gzip),
            (vec!["a.tar.gz".into(), "a.tar".into()], 2, FileKind::Tar),
            (vec!["a.tar.gz".into(), "a.tar".into(), "b.zip".into()], 3, FileKind::Zip),
            (vec!["a.tar.gz".into(), "a.tar".into(), "b.zip".into(), "q3 report.docx".into()], 4, FileKind::Docx),
        ]
    );
    let long = inspect_all_ways(&read("lab.tar"));
    assert!(long.inner.iter().any(|f| f.path == [format!("{}/q3 report.docx", "x".repeat(120))]), "pax path: {:?}", long.inner);
    let gnu = inspect_all_ways(&read("lab_gnu.tar"));
    assert_eq!(gnu.inner[0].path, [format!("{}.docx", "y".repeat(150))]);
    let eml = inspect_all_ways(&read("lab_rfc822.eml"));
    assert!(eml.inner.iter().any(|f| f.kind == FileKind::Eml), "{:?}", eml.inner);
    assert!(eml.inner.iter().any(|f| f.path.last().map(String::as_str) == Some("q3 report.docx") && f.depth == 2));
    // The 7z holds the docx and the PDF; both labeled with the same label.
    let seven = inspect_all_ways(&read("lab.7z"));
    assert_eq!(seven.inner.iter().filter(|f| !f.labels.is_empty()).count(), 2, "{:?}", seven.inner);
}

#[test]
fn legacy_doc_and_pdf_attached_to_mail() {
    assert_eq!(labels(&inspect_all_ways(&read("lab_legacy_doc.eml"))), [LEGACY_DOC_LABEL]);
    assert_eq!(labels(&inspect_all_ways(&read("lab_pdf.eml"))), [LABEL]);
}

#[test]
fn encrypted_archives_are_reported_as_encrypted() {
    for name in ["enc_zipcrypto.zip", "enc_aes.zip"] {
        let i = inspect_all_ways(&read(name));
        assert!(matches!(i.inner[0].error, Some(Problem::Encrypted(_))), "{name}: {:?}", i.inner);
    }
    for name in ["enc_headers.7z", "enc_content.7z"] {
        let i = inspect_all_ways(&read(name));
        assert!(matches!(i.container, Some(Problem::Encrypted(_))), "{name}: {:?}", i.container);
    }
}

#[test]
fn truncation_never_passes_silently() {
    // Cut anywhere, a labeled container either still shows the label or reports a problem.
    for &(name, _) in CONTAINERS {
        let bytes = read(&fixture_name("lab", name));
        for tenth in 1..10 {
            let cut = &bytes[..bytes.len() * tenth / 10];
            let i = inspect_all_ways(cut);
            assert!(!labels(&i).is_empty() || !problems(&i).is_empty(), "{name} cut at {tenth}0 %: no label and no problem: {:?}", i.inner);
        }
    }
}

/// An Outlook .msg (written with the `cfb` crate): a labeled docx attached, and an attached
/// message whose own label sits in its properties and which carries a labeled PDF.
#[test]
fn msg_attachments_and_embedded_messages() {
    use labelgate_testkit::*;
    const GUID_PDF: &str = "074e257c-5848-4582-9a6f-34a182080e71";
    let utf16 = |s: &str| -> Vec<u8> { s.encode_utf16().flat_map(u16::to_le_bytes).collect() };
    let mut guids = Vec::new();
    guids.extend_from_slice(&[0x86, 0x03, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x46]);
    let mut entry = 0u32.to_le_bytes().to_vec();
    entry.extend_from_slice(&((3u16 << 1) | 1).to_le_bytes());
    entry.extend_from_slice(&0u16.to_le_bytes());
    let name = utf16("msip_labels");
    let mut strings = (name.len() as u32).to_le_bytes().to_vec();
    strings.extend(name);
    let embedded_label = utf16(&format!("MSIP_Label_{GUID_B}_Enabled=true; MSIP_Label_{GUID_B}_SiteId={SITE_MS};"));
    let docx = std::fs::read(corpus("lab_caf_identity-baseline-discipline-template.docx")).unwrap();
    let pdf = simple_pdf(&info_dict(&[(GUID_PDF, SITE_MS, "true")]), None, false);
    let attach0 = "/__attach_version1.0_#00000000";
    let attach1 = "/__attach_version1.0_#00000001";
    let embedded = format!("{attach1}/__substg1.0_3701000D");
    let streams: Vec<(String, Vec<u8>)> = vec![
        ("/__properties_version1.0".into(), vec![0u8; 32]),
        ("/__nameid_version1.0/__substg1.0_00020102".into(), guids),
        ("/__nameid_version1.0/__substg1.0_00030102".into(), entry),
        ("/__nameid_version1.0/__substg1.0_00040102".into(), strings),
        (format!("{attach0}/__properties_version1.0"), vec![0u8; 8]),
        (format!("{attach0}/__substg1.0_3707001F"), utf16("budget.docx")),
        (format!("{attach0}/__substg1.0_37010102"), docx),
        (format!("{attach1}/__properties_version1.0"), vec![0u8; 8]),
        (format!("{attach1}/__substg1.0_3001001F"), utf16("Fwd: numbers")),
        (format!("{embedded}/__properties_version1.0"), vec![0u8; 24]),
        (format!("{embedded}/__substg1.0_8000001F"), embedded_label),
        (format!("{embedded}/__attach_version1.0_#00000000/__properties_version1.0"), vec![0u8; 8]),
        (format!("{embedded}/__attach_version1.0_#00000000/__substg1.0_3707001F"), utf16("perks.pdf")),
        (format!("{embedded}/__attach_version1.0_#00000000/__substg1.0_37010102"), pdf),
    ];
    let refs: Vec<(&str, &[u8])> = streams.iter().map(|(p, d)| (p.as_str(), d.as_slice())).collect();
    let msg = compound(&refs);
    let i = inspect_all_ways(&msg);
    assert_eq!(i.outer.as_ref().unwrap().kind, FileKind::Msg);
    assert!(i.outer.as_ref().unwrap().labels.is_empty());
    let found: Vec<(Vec<String>, u32, FileKind, Vec<String>)> =
        i.inner.iter().map(|f| (f.path.clone(), f.depth, f.kind, f.labels.iter().map(|l| l.id.clone()).collect())).collect();
    assert_eq!(
        found,
        vec![
            (vec!["budget.docx".into()], 1, FileKind::Docx, vec![LABEL.to_string()]),
            (vec!["Fwd: numbers".into()], 1, FileKind::Msg, vec![GUID_B.to_string()]),
            (vec!["Fwd: numbers".into(), "perks.pdf".into()], 2, FileKind::Pdf, vec![GUID_PDF.to_string()]),
        ]
    );
}

#[global_allocator]
static ALLOCATOR: labelgate_testkit::CountingAllocator = labelgate_testkit::CountingAllocator;

#[test]
fn a_7z_declaring_a_4_gib_dictionary_is_refused_before_any_allocation() {
    let bytes = read("huge_dict.7z");
    let (i, peak) = labelgate_testkit::peak_heap_during(|| inspect_slice(&bytes, &Limits::default(), &UnpackLimits::default()));
    assert!(matches!(i.container, Some(Problem::NestedLimit { limit: "max_inner_bytes", .. })), "{:?}", i.container);
    assert!(peak < 16 * 1024 * 1024, "peak {peak}");
}
