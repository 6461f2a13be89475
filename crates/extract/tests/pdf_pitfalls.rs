//! PDF pitfalls from label-formats.md §7.4, each with a generated fixture.

use labelgate_testkit::*;

fn ids(ex: &labelgate_extract::Extraction) -> Vec<String> {
    ex.labels.iter().map(|l| l.id.clone()).collect()
}
use labelgate_extract::{extract, extract_with, ExtractError, FileKind, Flag, Limits, RecordStatus, Source};

#[test]
fn info_dictionary_label() {
    let ex = extract(&simple_pdf(&info_dict(&[(GUID_A, SITE_MS, "true")]), None, false)).unwrap();
    assert_eq!(ex.kind, FileKind::Pdf);
    assert_eq!(ids(&ex), [GUID_A]);
    assert_eq!(ex.labels[0].source, Source::PdfInfo);
    assert!(ex.flags.is_empty(), "{:?}", ex.findings);
}

#[test]
fn xmp_only_plain_and_compressed() {
    for compress in [false, true] {
        let ex = extract(&simple_pdf("<< /Producer (x) >>", Some(&xmp(&[(GUID_B, SITE_MS, "True")])), compress)).unwrap();
        assert_eq!(ids(&ex), [GUID_B], "compress={compress}: {:?}", ex.findings);
        assert_eq!(ex.labels[0].source, Source::PdfXmp);
    }
}

#[test]
fn xmp_attribute_form() {
    let packet = format!(
        r#"<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" xmlns:p="http://ns.adobe.com/pdfx/1.3/" p:MSIP_Label_{GUID_A}_Enabled="true" p:MSIP_Label_{GUID_A}_SiteId="{SITE_MS}"/></rdf:RDF></x:xmpmeta>"#
    );
    let ex = extract(&simple_pdf("<< >>", Some(&packet), true)).unwrap();
    assert_eq!(ids(&ex), [GUID_A]);
}

#[test]
fn name_escapes_octal_hex_and_utf16_strings_and_references() {
    let utf16: String = "true".encode_utf16().flat_map(u16::to_be_bytes).map(|b| format!("{b:02X}")).collect();
    let site_hex: String = SITE_MS.bytes().map(|b| format!("{b:02x} ")).collect();
    let info = format!(
        "<< /MSIP#5FLabel#5F{GUID_A}#5FEnabled (\\164rue) /MSIP_Label_{GUID_A}_SiteId <{site_hex}> /MSIP_Label_{GUID_B}_Enabled <FEFF{utf16}> /MSIP_Label_{GUID_B}_SiteId 9 0 R >>"
    );
    let mut p = Pdf::new();
    p.obj(1, "<< /Type /Catalog /Pages 2 0 R >>");
    p.obj(2, "<< /Type /Pages /Kids [] /Count 0 >>");
    p.obj(4, &info);
    p.obj(9, &format!("({SITE_OTHER})"));
    p.classic_xref("/Root 1 0 R /Info 4 0 R");
    let ex = extract(&p.bytes()).unwrap();
    assert_eq!(ids(&ex), [GUID_B, GUID_A]);
    let b = ex.labels.iter().find(|l| l.id == GUID_B).unwrap();
    assert_eq!(b.site_id.as_deref(), Some(SITE_OTHER));
    let a = ex.labels.iter().find(|l| l.id == GUID_A).unwrap();
    assert_eq!(a.site_id.as_deref(), Some(SITE_MS));
}

fn base_pdf() -> Pdf {
    let mut p = Pdf::new();
    p.obj(1, "<< /Type /Catalog /Pages 2 0 R >>");
    p.obj(2, "<< /Type /Pages /Kids [3 0 R] /Count 1 >>");
    p.obj(3, "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>");
    p
}

#[test]
fn incremental_update_that_drops_the_label_leaves_a_superseded_record() {
    let mut p = base_pdf();
    p.obj(4, &info_dict(&[(GUID_A, SITE_MS, "true")]));
    p.classic_xref("/Root 1 0 R /Info 4 0 R");
    p.obj(4, "<< /Producer (edited) >>");
    p.classic_xref("/Root 1 0 R /Info 4 0 R");
    let ex = extract(&p.bytes()).unwrap();
    assert!(ex.labels.is_empty(), "{:?}", ex.labels);
    assert!(ex.flags.is_empty(), "superseded labels raise no flag");
    let r = ex.records.iter().find(|r| r.id == GUID_A).expect("old record kept");
    assert_eq!(r.status, RecordStatus::Superseded);
}

#[test]
fn incremental_update_that_adds_a_label_is_effective() {
    let mut p = base_pdf();
    p.obj(4, "<< /Producer (x) >>");
    p.classic_xref("/Root 1 0 R /Info 4 0 R");
    p.obj(5, &info_dict(&[(GUID_B, SITE_MS, "true")]));
    p.classic_xref("/Root 1 0 R /Info 5 0 R");
    let ex = extract(&p.bytes()).unwrap();
    assert_eq!(ids(&ex), [GUID_B]);
    assert!(ex.records.iter().all(|r| r.status == RecordStatus::Effective));
}

#[test]
fn newest_revision_decides_even_when_an_old_one_disagrees() {
    let mut p = base_pdf();
    p.obj(4, &info_dict(&[(GUID_A, SITE_MS, "false")]));
    p.classic_xref("/Root 1 0 R /Info 4 0 R");
    p.obj(4, &info_dict(&[(GUID_A, SITE_MS, "true")]));
    p.classic_xref("/Root 1 0 R /Info 4 0 R");
    assert_eq!(ids(&extract(&p.bytes()).unwrap()), [GUID_A]);
}

#[test]
fn info_inside_a_compressed_object_stream_with_an_xref_stream() {
    let mut p = base_pdf();
    p.object_stream(10, &[(4, &info_dict(&[(GUID_A, SITE_MS, "true")])), (5, "<< /Other 1 >>")]);
    p.xref_stream(11, "/Root 1 0 R /Info 4 0 R");
    let ex = extract(&p.bytes()).unwrap();
    assert_eq!(ids(&ex), [GUID_A], "{:?}", ex.findings);
}

#[test]
fn xref_stream_update_over_classic_table() {
    let mut p = base_pdf();
    p.obj(4, &info_dict(&[(GUID_A, SITE_MS, "true")]));
    p.classic_xref("/Root 1 0 R /Info 4 0 R");
    p.object_stream(10, &[(4, "<< /Producer (dropped) >>")]);
    p.xref_stream(11, "/Root 1 0 R /Info 4 0 R");
    let ex = extract(&p.bytes()).unwrap();
    assert!(ex.labels.is_empty());
    assert_eq!(ex.records[0].status, RecordStatus::Superseded);
}

#[test]
fn hybrid_file_with_xrefstm() {
    // Classic table for the visible objects; the Info dict is only in the companion xref stream
    // (how hybrid-reference files hide compressed objects from PDF 1.4 readers).
    let mut p = base_pdf();
    let visible = std::mem::take(&mut p.pending);
    p.object_stream(10, &[(4, &info_dict(&[(GUID_B, SITE_MS, "true")]))]);
    let stm_at = p.companion_xref_stream(11);
    p.pending = visible;
    p.classic_xref(&format!("/Root 1 0 R /Info 4 0 R /XRefStm {stm_at}"));
    let ex = extract(&p.buf).unwrap();
    assert_eq!(ids(&ex), [GUID_B], "{:?}", ex.findings);
}

#[test]
fn label_text_in_page_content_is_not_a_label() {
    let mut p = base_pdf();
    let content = format!("BT /F1 12 Tf (MSIP_Label_{GUID_A}_Enabled) Tj ET");
    p.stream(6, "", content.as_bytes(), false);
    p.obj(4, "<< /Title (MSIP_Label_x) >>");
    p.classic_xref("/Root 1 0 R /Info 4 0 R");
    let ex = extract(&p.bytes()).unwrap();
    assert!(ex.labels.is_empty() && ex.records.is_empty() && ex.flags.is_empty());
}

#[test]
fn encrypted_pdf_with_label_keys_is_flagged_encrypted() {
    let mut p = base_pdf();
    p.obj(4, &info_dict(&[(GUID_A, SITE_MS, "\u{1}\u{2}garbage")]));
    p.obj(7, "<< /Filter /Standard /V 2 /R 3 /O <00> /U <00> /P -4 >>");
    p.classic_xref("/Root 1 0 R /Info 4 0 R /Encrypt 7 0 R");
    let ex = extract(&p.bytes()).unwrap();
    assert!(ex.has_flag(Flag::Encrypted));
    assert!(ex.labels.is_empty());
    assert!(ex.findings.iter().any(|f| f.contains(GUID_A)));
}

#[test]
fn junk_before_the_header() {
    let mut bytes = b"junk junk junk\n".to_vec();
    bytes.extend(simple_pdf(&info_dict(&[(GUID_A, SITE_MS, "true")]), None, false));
    let ex = extract(&bytes).unwrap();
    assert_eq!(ids(&ex), [GUID_A]);
}

#[test]
fn damaged_xref_is_reconstructed_and_flagged() {
    let good = simple_pdf(&info_dict(&[(GUID_A, SITE_MS, "true")]), None, false);
    let text = String::from_utf8_lossy(&good).replace("startxref\n", "startxref\n9");
    let ex = extract(text.as_bytes()).unwrap();
    assert_eq!(ids(&ex), [GUID_A]);
    assert!(ex.has_flag(Flag::Ambiguous));
}

#[test]
fn deep_nesting_is_a_typed_limit() {
    let deep = format!("<< /A {}1{} >>", "[".repeat(5000), "]".repeat(5000));
    let bytes = simple_pdf(&deep, None, false);
    match extract(&bytes) {
        Err(ExtractError::LimitExceeded { limit, .. }) => assert_eq!(limit, "max_pdf_depth"),
        other => panic!("expected a depth limit, got {other:?}"),
    }
}

#[test]
fn reference_loops_terminate() {
    let mut p = base_pdf();
    p.obj(4, "5 0 R");
    p.obj(5, "4 0 R");
    p.classic_xref("/Root 1 0 R /Info 4 0 R");
    let ex = extract(&p.bytes()).expect("a reference loop is a finding, not a failure");
    assert!(ex.has_flag(Flag::Ambiguous), "{:?}", ex.findings);
    assert!(ex.labels.is_empty());
    // A /Prev chain that loops.
    let mut bytes = simple_pdf("<< >>", None, false);
    let text = String::from_utf8_lossy(&bytes).to_string();
    let at = text.rfind("startxref\n").unwrap() + 10;
    let off: String = text[at..].chars().take_while(char::is_ascii_digit).collect();
    bytes = text.replace("/Size 100 ", &format!("/Size 100 /Prev {off} ")).into_bytes();
    let ex = extract(&bytes).unwrap();
    assert!(ex.has_flag(Flag::Ambiguous));
}

#[test]
fn object_budget_is_enforced() {
    let mut p = base_pdf();
    let mut info = String::from("<< ");
    for i in 0..50 {
        info.push_str(&format!("/MSIP_Label_{GUID_A}_X{i} {} 0 R ", 100 + i));
    }
    info.push_str(">>");
    p.obj(4, &info);
    for i in 0..50 {
        p.obj(100 + i, "(v)");
    }
    p.classic_xref("/Root 1 0 R /Info 4 0 R");
    let limits = Limits { max_pdf_objects: 10, ..Limits::default() };
    match extract_with(&p.bytes(), &limits) {
        Err(ExtractError::LimitExceeded { limit, .. }) => assert_eq!(limit, "max_pdf_objects"),
        other => panic!("expected the object budget, got {other:?}"),
    }
}
