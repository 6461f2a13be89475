//! Hostile input: bombs, absurd counts, truncation, random bytes and mutated real files.
//! Every case ends in a typed error or an answer, never a panic, within the configured limits.

use labelgate_testkit::*;

use labelgate_extract::{extract, extract_reader, extract_segments, extract_with, ExtractError, Inspector, Limits};
use proptest::prelude::*;
use std::io::Cursor;
use std::sync::OnceLock;

fn corpus() -> &'static Vec<(String, Vec<u8>)> {
    static FILES: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = corpus_dir().join("files");
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
            .collect();
        files.sort();
        files
    })
}

/// The entry points must agree on any input, errors included.
fn all_ways(bytes: &[u8]) -> Result<labelgate_extract::Extraction, String> {
    let limits = Limits::default();
    let a = extract_with(bytes, &limits).map_err(|e| e.to_string());
    let b = extract_reader(Cursor::new(bytes), &limits).map_err(|e| e.to_string());
    assert_eq!(a, b, "slice and reader disagree");
    let pieces: Vec<&[u8]> = bytes.chunks(4093).collect();
    let d = extract_segments(&pieces, &limits).map_err(|e| e.to_string());
    assert_eq!(a, d, "slice and pieces disagree");
    let mut inspector = Inspector::new(limits);
    let mut fed = Ok(());
    for chunk in bytes.chunks(7919) {
        fed = fed.and(inspector.feed(chunk));
    }
    let c = inspector.finish().map_err(|e| e.to_string());
    assert_eq!(a, c, "slice and push disagree");
    a
}

#[test]
fn zip_bomb_in_a_label_part_is_a_limit() {
    let mut entries = docx(Some(String::new()), None);
    entries[3].data = vec![b' '; 64 * 1024 * 1024];
    let bytes = zip(&entries);
    assert!(bytes.len() < 1024 * 1024, "the bomb is small on the wire");
    match extract(&bytes) {
        Err(ExtractError::LimitExceeded { limit, .. }) => assert_eq!(limit, "max_part_bytes"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn zip_bomb_that_lies_about_its_size_is_still_capped() {
    let mut entries = docx(Some(String::new()), None);
    entries[3].data = vec![b' '; 32 * 1024 * 1024];
    let mut bytes = zip(&entries);
    // Rewrite the custom.xml central-directory uncompressed size to 100 bytes.
    let cd_name = b"docProps/custom.xml";
    let at = bytes.windows(cd_name.len()).rposition(|w| w == cd_name).unwrap();
    let header = at - 46;
    bytes[header + 24..header + 28].copy_from_slice(&100u32.to_le_bytes());
    let limits = Limits { max_part_bytes: 1024 * 1024, ..Limits::default() };
    match extract_with(&bytes, &limits) {
        Err(ExtractError::LimitExceeded { limit, .. }) => assert_eq!(limit, "max_part_bytes"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn absurd_entry_count_is_a_limit() {
    let mut bytes = zip(&docx(None, None));
    let n = bytes.len();
    bytes[n - 12..n - 10].copy_from_slice(&0xFFFEu16.to_le_bytes());
    let limits = Limits { max_zip_entries: 1000, ..Limits::default() };
    match extract_with(&bytes, &limits) {
        Err(ExtractError::LimitExceeded { limit, .. }) => assert_eq!(limit, "max_zip_entries"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn xml_nesting_is_a_limit() {
    let deep = format!(
        "<Properties xmlns=\"http://schemas.openxmlformats.org/officeDocument/2006/custom-properties\">{}{}</Properties>",
        "<a>".repeat(1000),
        "</a>".repeat(1000)
    );
    match extract(&zip(&docx(Some(deep), None))) {
        Err(ExtractError::LimitExceeded { limit, .. }) => assert_eq!(limit, "max_xml_depth"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn truncated_real_files_never_panic() {
    for (name, bytes) in corpus() {
        for cut in [0, 1, 7, 100, 511, 513, bytes.len() / 3, bytes.len() / 2, bytes.len().saturating_sub(23), bytes.len().saturating_sub(1)]
        {
            let cut = cut.min(bytes.len());
            let _ = all_ways(&bytes[..cut]).map_err(|e| assert!(!e.is_empty(), "{name}@{cut}: empty error"));
        }
    }
}

#[test]
fn empty_and_tiny_inputs() {
    for input in [&b""[..], b"P", b"PK", b"PK\x03\x04", b"%PDF-", b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", b"From: x\r\n"] {
        let _ = all_ways(input);
    }
    assert_eq!(extract(b"").unwrap().kind, labelgate_extract::FileKind::Unknown);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(prefix in prop::sample::select(vec![&b""[..], b"PK\x03\x04", b"%PDF-1.7\n", b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", b"From: a\r\nTo: b\r\n"]), body in prop::collection::vec(any::<u8>(), 0..4096)) {
        let mut bytes = prefix.to_vec();
        bytes.extend(body);
        let _ = all_ways(&bytes);
    }

    #[test]
    fn mutated_real_files_never_panic(file in 0usize..72, flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16)) {
        let (_, original) = &corpus()[file % corpus().len()];
        let mut bytes = original.clone();
        for (index, value) in flips {
            let i = index.index(bytes.len());
            bytes[i] = value;
        }
        let _ = all_ways(&bytes);
    }

    #[test]
    fn mutated_tails_never_panic(file in 0usize..72, tail in prop::collection::vec(any::<u8>(), 1..512)) {
        // Most structure (EOCD, startxref) lives at the end: scribble there.
        let (_, original) = &corpus()[file % corpus().len()];
        let mut bytes = original.clone();
        let n = bytes.len();
        let start = n.saturating_sub(tail.len());
        bytes[start..].copy_from_slice(&tail[..n - start]);
        let _ = all_ways(&bytes);
    }
}

/// Found by the fuzz smoke run: an LZMA-alone properties byte with a zero dictionary made the
/// sniffer shift by 32 (a panic with overflow checks on). It is no LZMA stream, and no panic.
#[test]
fn an_lzma_header_with_a_zero_dictionary_is_sniffed_without_a_panic() {
    let mut head = vec![0x5d, 0, 0, 0, 0];
    head.extend_from_slice(&[0u8; 8]);
    head.extend_from_slice(b"ro\0\0\0\0\0\0\nT]ro");
    assert_eq!(labelgate_extract::sniff_kind(&head), None);
    let eml = [
        93u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 114, 111,
        0, 0, 0, 0, 0, 0, 10, 84, 93, 114, 111, 0, 0, 0, 0, 0, 0, 111, 0, 0, 10, 13, 10,
    ];
    let _ = extract(&eml);
}
