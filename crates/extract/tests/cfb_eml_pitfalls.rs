//! Compound files (IRM-protected OOXML, password-encrypted OOXML, legacy property sets, .msg) and
//! e-mail headers (folding, RFC 2047, empty, per-attribute headers).

use labelgate_testkit::*;

fn ids(ex: &labelgate_extract::Extraction) -> Vec<String> {
    ex.labels.iter().map(|l| l.id.clone()).collect()
}
use labelgate_extract::{extract, ExtractError, FileKind, Flag, Inspector, Limits, RecordStatus, Source};

const DSI: &str = "/\u{5}DocumentSummaryInformation";
const LABELINFO_STREAM: &str = "/\u{6}DataSpaces/TransformInfo/LabelInfo";
const DRM_TRANSFORM: &str = "/\u{6}DataSpaces/TransformInfo/DRMEncryptedTransform/\u{6}Primary";

/// A DocumentSummaryInformation stream whose user-defined section holds `props` (LPSTR values).
fn property_set(props: &[(String, String)], unicode: bool) -> Vec<u8> {
    let pad4 = |v: &mut Vec<u8>| {
        while v.len() % 4 != 0 {
            v.push(0);
        }
    };
    let encode = |s: &str| -> Vec<u8> {
        if unicode {
            s.encode_utf16().chain([0]).flat_map(u16::to_le_bytes).collect()
        } else {
            let mut b = s.as_bytes().to_vec();
            b.push(0);
            b
        }
    };
    // Build the user-defined section body: codepage (pid 1), dictionary (pid 0), values (2..).
    let mut entries: Vec<(u32, Vec<u8>)> = Vec::new();
    let mut cp = vec![2, 0, 0, 0];
    cp.extend_from_slice(&(if unicode { 1200u16 } else { 1252u16 }).to_le_bytes());
    cp.extend_from_slice(&[0, 0]);
    entries.push((1, cp));
    let mut dict = (props.len() as u32).to_le_bytes().to_vec();
    for (i, (name, _)) in props.iter().enumerate() {
        dict.extend_from_slice(&(i as u32 + 2).to_le_bytes());
        let chars = name.chars().count() as u32 + 1;
        dict.extend_from_slice(&chars.to_le_bytes());
        dict.extend(encode(name));
        if unicode {
            pad4(&mut dict);
        }
    }
    pad4(&mut dict);
    entries.push((0, dict));
    for (i, (_, value)) in props.iter().enumerate() {
        let bytes = encode(value);
        let mut v = if unicode { vec![0x1F, 0, 0, 0] } else { vec![0x1E, 0, 0, 0] };
        let len = if unicode { bytes.len() / 2 } else { bytes.len() };
        v.extend_from_slice(&(len as u32).to_le_bytes());
        v.extend(bytes);
        pad4(&mut v);
        entries.push((i as u32 + 2, v));
    }
    let header_len = 8 + 8 * entries.len();
    let mut offsets = Vec::new();
    let mut body = Vec::new();
    for (pid, data) in &entries {
        offsets.push((*pid, (header_len + body.len()) as u32));
        body.extend_from_slice(data);
    }
    let mut section = ((header_len + body.len()) as u32).to_le_bytes().to_vec();
    section.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (pid, off) in offsets {
        section.extend_from_slice(&pid.to_le_bytes());
        section.extend_from_slice(&off.to_le_bytes());
    }
    section.extend(body);
    // Stream header with two sets: DocSummaryInformation (empty section) and user-defined.
    let mut out = vec![0xFE, 0xFF, 0, 0, 6, 2, 1, 0];
    out.extend_from_slice(&[0; 16]);
    out.extend_from_slice(&2u32.to_le_bytes());
    let fmtid_dsi = [0x02, 0xD5, 0xCD, 0xD5, 0x9C, 0x2E, 0x1B, 0x10, 0x93, 0x97, 0x08, 0x00, 0x2B, 0x2C, 0xF9, 0xAE];
    let fmtid_user = [0x05, 0xD5, 0xCD, 0xD5, 0x9C, 0x2E, 0x1B, 0x10, 0x93, 0x97, 0x08, 0x00, 0x2B, 0x2C, 0xF9, 0xAE];
    let first = 28 + 40;
    out.extend_from_slice(&fmtid_dsi);
    out.extend_from_slice(&(first as u32).to_le_bytes());
    out.extend_from_slice(&fmtid_user);
    out.extend_from_slice(&(first as u32 + 8).to_le_bytes());
    out.extend_from_slice(&8u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend(section);
    out
}

fn msip_props(guid: &str, site: &str, enabled: &str) -> Vec<(String, String)> {
    vec![
        (format!("MSIP_Label_{guid}_Enabled"), enabled.to_string()),
        (format!("MSIP_Label_{guid}_SiteId"), site.to_string()),
        (format!("MSIP_Label_{guid}_Name"), "Confidential".to_string()),
    ]
}

#[test]
fn irm_protected_ooxml_label_from_the_dataspaces_stream() {
    let li = labelinfo_xml(&[(GUID_A, SITE_MS, "1", "0")]);
    let bytes = compound(&[("/EncryptedPackage", &[0u8; 600]), (DRM_TRANSFORM, b"drm"), (LABELINFO_STREAM, li.as_bytes())]);
    let ex = extract(&bytes).unwrap();
    assert_eq!(ex.kind, FileKind::ProtectedOoxml);
    assert_eq!(ids(&ex), [GUID_A]);
    assert_eq!(ex.labels[0].source, Source::CfbLabelInfo);
    assert!(ex.has_flag(Flag::Protected) && !ex.has_flag(Flag::Encrypted));
}

#[test]
fn dtd_in_the_labelinfo_stream_is_ambiguous() {
    let li = labelinfo_xml(&[(GUID_A, SITE_MS, "1", "0")]).replace("<clbl:labelList", "<!DOCTYPE x [<!ENTITY a \"b\">]><clbl:labelList");
    let bytes = compound(&[("/EncryptedPackage", &[0u8; 600]), (DRM_TRANSFORM, b"drm"), (LABELINFO_STREAM, li.as_bytes())]);
    assert!(extract(&bytes).unwrap().has_flag(Flag::Ambiguous));
}

#[test]
fn password_encrypted_ooxml_is_encrypted_not_unlabeled() {
    let bytes = compound(&[("/EncryptionInfo", &[4, 0, 4, 0]), ("/EncryptedPackage", &[0u8; 600]), ("/\u{6}DataSpaces/Version", b"v")]);
    let ex = extract(&bytes).unwrap();
    assert_eq!(ex.kind, FileKind::EncryptedOoxml);
    assert!(ex.has_flag(Flag::Encrypted));
    assert!(ex.labels.is_empty());
}

#[test]
fn legacy_word_user_defined_properties_codepage_and_unicode() {
    for unicode in [false, true] {
        let dsi = property_set(&msip_props(GUID_B, SITE_MS, "true"), unicode);
        let bytes = compound(&[("/WordDocument", &[0u8; 4200]), (DSI, &dsi)]);
        let ex = extract(&bytes).unwrap();
        assert_eq!(ex.kind, FileKind::Doc);
        assert_eq!(ids(&ex), [GUID_B], "unicode={unicode}: {:?}", ex.findings);
        assert_eq!(ex.labels[0].name.as_deref(), Some("Confidential"));
        assert_eq!(ex.labels[0].source, Source::OleProps);
    }
}

#[test]
fn legacy_excel_and_powerpoint_kinds() {
    let dsi = property_set(&msip_props(GUID_A, SITE_MS, "false"), false);
    let xls = extract(&compound(&[("/Workbook", &[9u8, 8, 0, 0]), (DSI, &dsi)])).unwrap();
    assert_eq!(xls.kind, FileKind::Xls);
    assert!(xls.labels.is_empty());
    assert_eq!(xls.records[0].status, RecordStatus::Disabled);
    let ppt = extract(&compound(&[("/PowerPoint Document", &[0u8; 100])])).unwrap();
    assert_eq!(ppt.kind, FileKind::Ppt);
}

#[test]
fn encrypted_legacy_word_is_flagged() {
    let mut fib = vec![0u8; 4200];
    fib[0x0B] = 0x01; // fEncrypted
    let ex = extract(&compound(&[("/WordDocument", &fib)])).unwrap();
    assert!(ex.has_flag(Flag::Encrypted));
}

#[test]
fn outlook_msg_named_property() {
    let mut guids = Vec::new();
    guids.extend_from_slice(&[0x86, 0x03, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x46]);
    let mut entry = 0u32.to_le_bytes().to_vec();
    entry.extend_from_slice(&((3u16 << 1) | 1).to_le_bytes());
    entry.extend_from_slice(&0u16.to_le_bytes());
    let name: Vec<u8> = "msip_labels".encode_utf16().flat_map(u16::to_le_bytes).collect();
    let mut strings = (name.len() as u32).to_le_bytes().to_vec();
    strings.extend(name);
    let value = format!("MSIP_Label_{GUID_A}_Enabled=true; MSIP_Label_{GUID_A}_SiteId={SITE_MS}; MSIP_Label_{GUID_A}_Name=General;");
    let value: Vec<u8> = value.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let bytes = compound(&[
        ("/__properties_version1.0", &[0u8; 32]),
        ("/__nameid_version1.0/__substg1.0_00020102", &guids),
        ("/__nameid_version1.0/__substg1.0_00030102", &entry),
        ("/__nameid_version1.0/__substg1.0_00040102", &strings),
        ("/__substg1.0_8000001F", &value),
    ]);
    let ex = extract(&bytes).unwrap();
    assert_eq!(ex.kind, FileKind::Msg);
    assert_eq!(ids(&ex), [GUID_A]);
    assert_eq!(ex.labels[0].source, Source::Msg);
}

#[test]
fn truncated_compound_file_is_a_typed_error() {
    let dsi = property_set(&msip_props(GUID_B, SITE_MS, "true"), false);
    let bytes = compound(&[("/WordDocument", &[0u8; 9000]), (DSI, &dsi)]);
    for cut in [600, 1500, bytes.len() / 2] {
        match extract(&bytes[..cut]) {
            Err(ExtractError::Malformed { container, .. }) => assert_eq!(container, "cfb"),
            Ok(ex) => assert!(ex.labels.is_empty() || ex.labels[0].id == GUID_B),
            Err(e) => panic!("unexpected error {e}"),
        }
    }
}

fn eml(headers: &str) -> Vec<u8> {
    format!("From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n{headers}\r\nbody MSIP_Label_{GUID_B}_Enabled=true\r\n")
        .into_bytes()
}

#[test]
fn folded_header_with_a_name_split_across_lines() {
    let h = format!("msip_labels: MSIP_Label_{GUID_A}_Enabled=true;\r\n MSIP_Label_{GUID_A}_Name=Internal Use Only -\r\n Unrestricted;\r\n MSIP_Label_{GUID_A}_SiteId={SITE_MS};\r\n MSIP_Label_{GUID_A}_ContentBits=1\r\n");
    let ex = extract(&eml(&h)).unwrap();
    assert_eq!(ex.kind, FileKind::Eml);
    assert_eq!(ids(&ex), [GUID_A], "body text is not a label");
    assert_eq!(ex.labels[0].name.as_deref(), Some("Internal Use Only - Unrestricted"));
}

#[test]
fn rfc2047_encoded_value_over_several_words() {
    use base64::Engine;
    let value = format!(
        "MSIP_Label_{GUID_A}_Enabled=True; MSIP_Label_{GUID_A}_SiteId={SITE_OTHER}; MSIP_Label_{GUID_A}_Name=FUJITSU-RESTRICTED\u{200b}"
    );
    let (a, b) = value.split_at(40);
    let enc = |s: &str| format!("=?utf-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode(s));
    let h = format!("msip_labels: {}\r\n {}\r\n", enc(a), enc(b));
    let ex = extract(&eml(&h)).unwrap();
    assert_eq!(ids(&ex), [GUID_A]);
    assert_eq!(ex.labels[0].site_id.as_deref(), Some(SITE_OTHER));
    assert_eq!(ex.labels[0].name.as_deref(), Some("FUJITSU-RESTRICTED\u{200b}"));
}

#[test]
fn empty_header_is_no_label() {
    let ex = extract(&eml("msip_labels: \r\n")).unwrap();
    assert!(ex.labels.is_empty() && ex.records.is_empty() && ex.flags.is_empty());
}

#[test]
fn per_attribute_headers_and_duplicates_union() {
    let h = format!(
        "msip_labels: MSIP_Label_{GUID_A}_Enabled=true; MSIP_Label_{GUID_A}_ActionId=1\r\nmsip_label_{GUID_A}_actionid: 2\r\nmsip_label_{GUID_B}_enabled: true\r\nmsip_label_{GUID_B}_siteid: {SITE_OTHER}\r\n"
    );
    let ex = extract(&eml(&h)).unwrap();
    assert_eq!(ids(&ex), [GUID_B, GUID_A]);
    assert!(ex.flags.is_empty(), "an ActionId that differs is not a conflict");
    let conflict = format!("msip_labels: MSIP_Label_{GUID_A}_Enabled=true\r\nmsip_labels: MSIP_Label_{GUID_A}_Enabled=false\r\n");
    assert!(extract(&eml(&conflict)).unwrap().has_flag(Flag::Ambiguous));
}

#[test]
fn push_interface_decides_email_at_the_end_of_the_headers() {
    let h = format!("msip_labels: MSIP_Label_{GUID_A}_Enabled=true\r\n");
    let mut bytes = eml(&h);
    bytes.extend(std::iter::repeat_n(b'x', 100_000));
    let limits = Limits { max_buffered_bytes: 10_000, ..Limits::default() };
    let mut inspector = Inspector::new(limits);
    for chunk in bytes.chunks(1000) {
        inspector.feed(chunk).unwrap();
    }
    assert_eq!(ids(&inspector.finish().unwrap()), [GUID_A]);
}

#[test]
fn unknown_content_is_no_labels_and_not_buffered() {
    let limits = Limits { max_buffered_bytes: 10_000, ..Limits::default() };
    let mut inspector = Inspector::new(limits);
    for _ in 0..100 {
        inspector.feed(&[0x42; 4096]).unwrap();
    }
    let ex = inspector.finish().unwrap();
    assert_eq!(ex.kind, FileKind::Unknown);
    assert!(ex.labels.is_empty());
}

#[test]
fn push_interface_enforces_its_buffer_limit() {
    let bytes = simple_pdf("<< >>", None, false);
    let limits = Limits { max_buffered_bytes: 100, ..Limits::default() };
    let mut inspector = Inspector::new(limits);
    let mut failed = false;
    for chunk in bytes.chunks(64) {
        failed |= inspector.feed(chunk).is_err();
    }
    assert!(failed);
    match inspector.finish() {
        Err(ExtractError::LimitExceeded { limit, .. }) => assert_eq!(limit, "max_buffered_bytes"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn inspector_debug_never_shows_upload_bytes() {
    let mut inspector = Inspector::new(Limits::default());
    inspector.feed(b"%PDF-1.7 secret-token-1234 ").unwrap();
    let shown = format!("{inspector:?}");
    assert!(!shown.contains("secret"), "{shown}");
    assert!(shown.contains("bytes_held"));
}

#[test]
fn outlook_msg_transport_headers_when_there_is_no_named_property() {
    let headers = format!("Received: from x\r\nmsip_labels: MSIP_Label_{GUID_B}_Enabled=true;\r\n MSIP_Label_{GUID_B}_SiteId={SITE_OTHER}\r\nSubject: hi\r\n\r\n");
    let value: Vec<u8> = headers.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let bytes = compound(&[("/__properties_version1.0", &[0u8; 32]), ("/__substg1.0_007D001F", &value)]);
    let ex = extract(&bytes).unwrap();
    assert_eq!(ex.kind, FileKind::Msg);
    assert_eq!(ids(&ex), [GUID_B]);
    assert_eq!(ex.labels[0].site_id.as_deref(), Some(SITE_OTHER));
}

#[test]
fn a_long_block_of_unusual_fields_before_the_label_is_still_mail_through_every_entry_point() {
    let mut eml = String::new();
    for n in 0..200 {
        eml.push_str(&format!("X-Field-{n:03}: {}\r\n", "v".repeat(40)));
    }
    eml.push_str(&format!("From: a@example.com\r\nTo: b@example.com\r\nmsip_labels: MSIP_Label_{GUID_A}_Enabled=true; MSIP_Label_{GUID_A}_SiteId={SITE_MS}\r\n\r\nbody\r\n"));
    assert!(eml.len() > 8 * 1024);
    let slice = extract(eml.as_bytes()).unwrap();
    assert_eq!(slice.kind, FileKind::Eml);
    assert_eq!(ids(&slice), [GUID_A]);
    let mut inspector = labelgate_extract::Inspector::new(labelgate_extract::Limits::default());
    for chunk in eml.as_bytes().chunks(7) {
        inspector.feed(chunk).unwrap();
    }
    assert_eq!(inspector.finish().unwrap(), slice);
}
