//! OOXML pitfalls from label-formats.md §2-4 and §11, each with a generated fixture.

use labelgate_testkit::*;

fn ids(ex: &labelgate_extract::Extraction) -> Vec<String> {
    ex.labels.iter().map(|l| l.id.clone()).collect()
}
use labelgate_extract::{extract, FileKind, Flag, RecordStatus, Source};

fn read(entries: &[Entry]) -> labelgate_extract::Extraction {
    extract(&zip(entries)).expect("package reads")
}

#[test]
fn custom_properties_label() {
    let ex = read(&docx(Some(custom_xml(&[(GUID_A, SITE_MS, "true")])), None));
    assert_eq!(ex.kind, FileKind::Docx);
    assert_eq!(ids(&ex), [GUID_A]);
    assert_eq!(ex.labels[0].source, Source::CustomProps);
    assert_eq!(ex.labels[0].site_id.as_deref(), Some(SITE_MS));
    assert!(ex.flags.is_empty(), "{:?}", ex.findings);
}

#[test]
fn labelinfo_wins_over_custom_properties_of_its_tenant() {
    let ex = read(&docx(Some(custom_xml(&[(GUID_A, SITE_MS, "true")])), Some(labelinfo_xml(&[(GUID_B, SITE_MS, "1", "0")]))));
    assert_eq!(ids(&ex), [GUID_B]);
    assert_eq!(ex.records.iter().find(|r| r.id == GUID_A).unwrap().status, RecordStatus::Stale);
}

#[test]
fn other_tenants_custom_properties_still_count() {
    let ex = read(&docx(Some(custom_xml(&[(GUID_A, SITE_OTHER, "true")])), Some(labelinfo_xml(&[(GUID_B, SITE_MS, "1", "0")]))));
    assert_eq!(ids(&ex), [GUID_B, GUID_A]);
}

#[test]
fn removed_tombstone_hides_the_tenants_custom_properties() {
    let ex = read(&docx(Some(custom_xml(&[(GUID_A, SITE_MS, "true")])), Some(labelinfo_xml(&[(SITE_MS, SITE_MS, "0", "1")]))));
    assert!(ex.labels.is_empty(), "{:?}", ex.labels);
    assert!(ex.records.iter().any(|r| r.status == RecordStatus::Removed));
    assert!(ex.flags.is_empty());
}

#[test]
fn disabled_labels_are_not_effective() {
    let ex = read(&docx(Some(custom_xml(&[(GUID_A, SITE_MS, "false")])), None));
    assert!(ex.labels.is_empty());
    assert_eq!(ex.records[0].status, RecordStatus::Disabled);
    let ex = read(&docx(None, Some(labelinfo_xml(&[(GUID_B, SITE_MS, "0", "0")]))));
    assert!(ex.labels.is_empty());
}

#[test]
fn several_tenants_in_one_labelinfo() {
    let ex = read(&docx(None, Some(labelinfo_xml(&[(GUID_A, SITE_MS, "1", "0"), (GUID_B, SITE_OTHER, "1", "0")]))));
    assert_eq!(ids(&ex), [GUID_B, GUID_A]);
}

#[test]
fn keys_and_guids_are_case_insensitive_and_braces_are_stripped() {
    let upper = GUID_A.to_uppercase();
    let xml = custom_xml(&[(&upper, &format!("{{{}}}", SITE_MS.to_uppercase()), "TRUE")])
        .replace("MSIP_Label_", "msip_LABEL_")
        .replace("_Enabled", "_ENABLED");
    let ex = read(&docx(Some(xml), None));
    assert_eq!(ids(&ex), [GUID_A]);
    assert_eq!(ex.labels[0].site_id.as_deref(), Some(SITE_MS));
}

#[test]
fn local_header_naming_another_file_is_ambiguous() {
    let mut entries = docx(Some(custom_xml(&[(GUID_A, SITE_MS, "true")])), None);
    entries[3].local_name = Some(b"docProps/other.xml".to_vec());
    let ex = read(&entries);
    assert!(ex.has_flag(Flag::Ambiguous));
    assert_eq!(ids(&ex), [GUID_A], "the central directory is authoritative");
}

#[test]
fn local_header_with_another_method_is_ambiguous() {
    let mut entries = docx(Some(custom_xml(&[(GUID_A, SITE_MS, "true")])), None);
    entries[3].local_method = Some(0);
    assert!(read(&entries).has_flag(Flag::Ambiguous));
}

#[test]
fn duplicate_label_part_is_ambiguous_and_invents_nothing() {
    let mut entries = docx(Some(custom_xml(&[(GUID_A, SITE_MS, "false")])), None);
    entries.push(Entry::new("docProps/custom.xml", custom_xml(&[(GUID_B, SITE_MS, "true")])));
    let ex = read(&entries);
    assert!(ex.has_flag(Flag::Ambiguous));
    assert!(ex.labels.is_empty(), "only the first copy decides");
    assert_eq!(ex.records.iter().find(|r| r.id == GUID_B).unwrap().status, RecordStatus::Orphan);
}

#[test]
fn case_folded_duplicate_is_ambiguous() {
    let mut entries = docx(None, Some(labelinfo_xml(&[(GUID_A, SITE_MS, "1", "0")])));
    entries.push(Entry::new("DocMetadata/LABELINFO.xml", labelinfo_xml(&[(SITE_MS, SITE_MS, "0", "1")])));
    let ex = read(&entries);
    assert!(ex.has_flag(Flag::Ambiguous));
    assert_eq!(ids(&ex), [GUID_A]);
}

#[test]
fn data_descriptors_zip64_and_stored_entries_read_cleanly() {
    for variant in 0..4 {
        let mut entries = docx(Some(custom_xml(&[(GUID_A, SITE_MS, "true")])), None);
        for e in &mut entries {
            match variant {
                0 => e.data_descriptor = true,
                1 => e.zip64 = true,
                2 => e.deflate = false,
                _ => {}
            }
        }
        let opts = ZipOptions { zip64_end: variant == 3 || variant == 1, ..ZipOptions::default() };
        let ex = extract(&build_zip(&entries, &opts)).unwrap();
        assert_eq!(ids(&ex), [GUID_A], "variant {variant}");
        assert!(ex.flags.is_empty(), "variant {variant}: {:?}", ex.findings);
    }
}

#[test]
fn prepended_data_is_tolerated_and_noted() {
    let entries = docx(Some(custom_xml(&[(GUID_A, SITE_MS, "true")])), None);
    let mut bytes = b"PK\x03\x04".to_vec();
    bytes.extend(build_zip(&entries, &ZipOptions { prefix: vec![b'x'; 100], ..ZipOptions::default() }));
    let ex = extract(&bytes).unwrap();
    assert_eq!(ids(&ex), [GUID_A]);
    assert!(ex.findings.iter().any(|f| f.contains("precede")));
}

#[test]
fn a_second_end_record_in_the_comment_is_ambiguous() {
    let entries = docx(Some(custom_xml(&[(GUID_A, SITE_MS, "true")])), None);
    let mut fake = b"PK\x05\x06".to_vec();
    fake.extend_from_slice(&[0; 16]);
    fake.extend_from_slice(&0u16.to_le_bytes());
    let ex = extract(&build_zip(&entries, &ZipOptions { comment: fake, ..ZipOptions::default() })).unwrap();
    assert!(ex.has_flag(Flag::Ambiguous));
}

#[test]
fn character_references_in_names_are_decoded() {
    let xml = custom_xml(&[(GUID_A, SITE_MS, "true")]).replace("MSIP_Label_", "MSIP&#95;Label&#x5F;");
    assert_eq!(ids(&read(&docx(Some(xml), None))), [GUID_A]);
}

#[test]
fn dtd_is_ambiguous_and_entities_invent_nothing() {
    let xml = custom_xml(&[(GUID_A, SITE_MS, "true")])
        .replace("<Properties", &format!("<!DOCTYPE Properties [<!ENTITY k \"MSIP_Label_{GUID_B}\">]><Properties"))
        .replace(&format!("MSIP_Label_{GUID_A}_Enabled"), "&k;_Enabled");
    let ex = read(&docx(Some(xml), None));
    assert!(ex.has_flag(Flag::Ambiguous));
    assert!(!ids(&ex).contains(&GUID_B.to_string()));
}

#[test]
fn utf16_parts_are_decoded() {
    let xml = custom_xml(&[(GUID_A, SITE_MS, "true")]).replace("UTF-8", "UTF-16");
    let mut le = vec![0xFF, 0xFE];
    le.extend(xml.encode_utf16().flat_map(u16::to_le_bytes));
    let mut be = vec![0xFE, 0xFF];
    be.extend(xml.encode_utf16().flat_map(u16::to_be_bytes));
    let bomless: Vec<u8> = xml.encode_utf16().flat_map(u16::to_le_bytes).collect();
    for data in [le, be, bomless] {
        let mut entries = docx(Some(String::new()), None);
        entries[3].data = data;
        let ex = read(&entries);
        assert_eq!(ids(&ex), [GUID_A], "{:?}", ex.findings);
    }
}

#[test]
fn orphan_label_part_is_reported_not_enforced() {
    let mut entries = docx(None, None);
    entries.push(Entry::new("docProps/custom.xml", custom_xml(&[(GUID_A, SITE_MS, "true")])));
    let ex = read(&entries);
    assert!(ex.labels.is_empty());
    assert_eq!(ex.records[0].status, RecordStatus::Orphan);
    assert!(ex.has_flag(Flag::Ambiguous));
}

#[test]
fn relationship_to_an_unusual_part_name_is_followed() {
    let mut entries = docx(None, None);
    entries[1].data = rels(Some("/Odd/Place/props.xml"), Some("meta/li.xml")).into_bytes();
    entries.push(Entry::new("odd/place/PROPS.xml", custom_xml(&[(GUID_A, SITE_OTHER, "true")])));
    entries.push(Entry::new("meta/li.xml", labelinfo_xml(&[(GUID_B, SITE_MS, "1", "0")])));
    let ex = read(&entries);
    assert_eq!(ids(&ex), [GUID_B, GUID_A]);
    assert!(ex.flags.is_empty(), "{:?}", ex.findings);
}

#[test]
fn label_text_in_the_document_body_is_not_a_label() {
    let body = format!("<w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body><w:p><w:r><w:t>MSIP_Label_{GUID_A}_Enabled=true</w:t></w:r></w:p></w:body></w:document>");
    let mut entries = docx(None, None);
    entries[2].data = body.into_bytes();
    let ex = read(&entries);
    assert!(ex.labels.is_empty() && ex.records.is_empty() && ex.flags.is_empty());
}

#[test]
fn strict_ooxml_namespaces() {
    let xml = custom_xml(&[(GUID_A, SITE_MS, "true")])
        .replace(
            "http://schemas.openxmlformats.org/officeDocument/2006/custom-properties",
            "http://purl.oclc.org/ooxml/officeDocument/customProperties",
        )
        .replace(
            "http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes",
            "http://purl.oclc.org/ooxml/officeDocument/docPropsVTypes",
        );
    let mut entries = docx(Some(xml), None);
    entries[1].data = rels(Some("docProps/custom.xml"), None)
        .replace(
            "http://schemas.openxmlformats.org/officeDocument/2006/relationships/custom-properties",
            "http://purl.oclc.org/ooxml/officeDocument/relationships/customProperties",
        )
        .into_bytes();
    assert_eq!(ids(&read(&entries)), [GUID_A]);
}

#[test]
fn wrong_namespace_prefix_tricks_do_not_match() {
    // Same prefix, other namespace URI: not a custom property.
    let xml = custom_xml(&[(GUID_A, SITE_MS, "true")])
        .replace("http://schemas.openxmlformats.org/officeDocument/2006/custom-properties", "urn:not-office");
    let ex = read(&docx(Some(xml), None));
    assert!(ex.labels.is_empty());
}

#[test]
fn encrypted_zip_entry_is_ambiguous() {
    let mut entries = docx(Some(custom_xml(&[(GUID_A, SITE_MS, "true")])), None);
    entries[3].encrypted = true;
    let ex = read(&entries);
    assert!(ex.has_flag(Flag::Ambiguous));
}

#[test]
fn malformed_enabled_value_is_ambiguous_not_a_label() {
    let ex = read(&docx(Some(custom_xml(&[(GUID_A, SITE_MS, "maybe")])), None));
    assert!(ex.labels.is_empty());
    assert!(ex.has_flag(Flag::Ambiguous));
}

#[test]
fn kinds_come_from_content_types_not_names() {
    let ct = CT_DOCX.replace(
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml",
    );
    let mut entries = docx(None, None);
    entries[0].data = ct.into_bytes();
    assert_eq!(read(&entries).kind, FileKind::Pptx);
    let plain = zip(&[Entry::new("readme.txt", "hello")]);
    assert_eq!(extract(&plain).unwrap().kind, FileKind::Zip);
}

#[test]
fn namespace_scopes_follow_xml_namespaces() {
    let guid_attr = |g: &str, attr: &str, v: &str| {
        format!(
            r#"<p:property fmtid="{{D5CDD505-2E9C-101B-9397-08002B2CF9AE}}" pid="2" name="MSIP_Label_{g}_{attr}"><vt:lpwstr>{v}</vt:lpwstr></p:property>"#
        )
    };
    // A prefix bound on the root, then shadowed by an unrelated namespace on one element only:
    // the shadowed property is not a custom property; its sibling after the scope closes is.
    let xml = format!(
        r#"<?xml version="1.0"?><p:Properties xmlns:p="http://schemas.openxmlformats.org/officeDocument/2006/custom-properties" xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes"><x xmlns:p="urn:other">{}</x><y xmlns:p="urn:other"/>{}{}</p:Properties>"#,
        guid_attr(GUID_B, "Enabled", "true"),
        guid_attr(GUID_A, "Enabled", "true"),
        guid_attr(GUID_A, "SiteId", SITE_MS),
    );
    let ex = read(&docx(Some(xml), None));
    assert_eq!(ids(&ex), [GUID_A], "{:?}", ex.records);
    // A default namespace declared on the property element itself counts.
    let xml = format!(
        r#"<Properties xmlns="urn:not-office"><property xmlns="http://schemas.openxmlformats.org/officeDocument/2006/custom-properties" name="MSIP_Label_{GUID_B}_Enabled"><v>true</v></property></Properties>"#
    );
    assert_eq!(ids(&read(&docx(Some(xml), None))), [GUID_B]);
}

#[test]
fn effective_label_borrows_the_name_its_stale_twin_states() {
    let ex = read(&docx(Some(custom_xml(&[(GUID_A, SITE_MS, "true")])), Some(labelinfo_xml(&[(GUID_A, SITE_MS, "1", "0")]))));
    assert_eq!(ex.labels[0].source, Source::LabelInfo);
    assert_eq!(ex.labels[0].name.as_deref(), Some("General"));
}
