//! Document text over the real corpus (Office and PDF files written by Office, Purview clients
//! and other writers): every file that is neither encrypted nor an image holds the words a
//! reader shows, runs joined; the limits cut where they say.

use labelgate_extract::{document_text, Limits, SliceInput, TextLimits, TextOut, TextReport};
use labelgate_testkit::corpus_dir;

fn text_of(bytes: &[u8], limits: &TextLimits) -> (String, TextReport) {
    let mut text = String::new();
    let mut sink = |s: &str| text.push_str(s);
    let mut out = TextOut::new(&mut sink, limits);
    document_text(&mut SliceInput::new(bytes), &Limits::default(), &mut out).expect("the file's text is read");
    let report = out.finish();
    (text, report)
}

fn corpus_file(name: &str) -> Vec<u8> {
    std::fs::read(corpus_dir().join("files").join(name)).expect("corpus file")
}

/// Files with no text to read, and why.
const NO_TEXT: &[(&str, &str)] = &[
    ("lab_d365_customer-insight-power-query.pdf", "pages are images"),
    ("lab_fasttrack_protected_analyze-column-headers.xlsx", "rights-protected (encrypted package)"),
    ("lab_fasttrack_protected_copilot-agent-brainstorming.pptx", "rights-protected (encrypted package)"),
    ("unl_openxmlsdk_encrypted-pptx.pptx", "password-encrypted package"),
];

#[test]
fn every_office_and_pdf_file_of_the_corpus_has_its_text() {
    let mut names: Vec<String> = std::fs::read_dir(corpus_dir().join("files"))
        .expect("corpus")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut read = 0;
    for name in &names {
        let legacy = [".doc", ".xls", ".ppt"].iter().any(|ext| name.ends_with(ext));
        if legacy {
            continue;
        }
        let (text, report) = text_of(&corpus_file(name), &TextLimits::default());
        assert_eq!(report.truncated, None, "{name}");
        assert_eq!(report.text_bytes, text.len() as u64, "{name}");
        let words = text.split_whitespace().count();
        if NO_TEXT.iter().any(|(n, _)| n == name) {
            assert!(words < 8, "{name}: {words} words where none were expected");
        } else {
            assert!(words >= 1, "{name}: no words: {text:?}");
            read += 1;
        }
    }
    assert!(read >= 55, "{read} files with text");
}

#[test]
fn the_words_are_the_ones_a_reader_shows() {
    let cases = [
        ("lab_caf_datacenter-migration-discovery-checklist.docx", "Data Centre Migration Discovery Checklist"),
        ("lab_kernel-memory_mspowerpointfile.pptx", "Sample PowerPoint File"),
        ("lab_kernel-memory_msexcelfile.xlsx", "Gross Sales"),
        ("lab_markitdown_test_labelinfo-only.xlsx", "affc7dad-52dc-4b98-9b5d-51e65d8a8ad0"),
        ("lab_markitdown_repair-invoice.pdf", "gabriel@contoso.com"),
        ("lab_markitdown_repair-invoice.pdf", "(425) 111-1111"),
        ("lab_gc_icam-framework-fr.pdf", "Gouvernement du Canada"),
        ("lab_openchain_2tenants_oss-license-faq.pdf", "OSSライセンス"),
        ("unl_gc_pco-summary-word.docx", "POR@PCO-BCP.gc.ca"),
    ];
    for (name, words) in cases {
        let (text, _) = text_of(&corpus_file(name), &TextLimits::default());
        assert!(text.contains(words), "{name} lacks {words:?}");
    }
}

#[test]
fn the_limits_stop_reading_where_they_say() {
    let bytes = corpus_file("lab_viva_influencer-analysis.xlsx");
    let (whole, _) = text_of(&bytes, &TextLimits::default());
    assert!(whole.len() > 200_000);
    let (cut, report) = text_of(&bytes, &TextLimits { max_text_bytes: 10_000, max_source_bytes: 1 << 30 });
    assert_eq!(report.truncated, Some("max_text_bytes"));
    assert_eq!(cut.len(), 10_000);
    assert!(whole.starts_with(&cut));
    let (_, report) = text_of(&bytes, &TextLimits { max_text_bytes: 1 << 30, max_source_bytes: 50_000 });
    assert_eq!(report.truncated, Some("max_source_bytes"));
    let pdf = corpus_file("unl_morphir_fr2052a_stale-labels-in-old-revision.pdf");
    let (_, report) = text_of(&pdf, &TextLimits { max_text_bytes: 1 << 30, max_source_bytes: 20_000 });
    assert_eq!(report.truncated, Some("max_source_bytes"));
}

#[test]
fn a_workbook_embedded_in_a_document_is_read_too_within_a_depth() {
    use labelgate_testkit::{docx, zip, Entry};
    let strings = r#"<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><si><t>4111 1111 1111 1111</t></si></sst>"#;
    let workbook = zip(&[Entry::new("[Content_Types].xml", "<Types/>"), Entry::new("xl/sharedStrings.xml", strings)]);
    let wrap = |inner: Vec<u8>, name: &str| {
        let mut entries = docx(None, None);
        entries.push(Entry::new(&format!("word/embeddings/{name}"), &inner));
        zip(&entries)
    };
    let document = wrap(workbook.clone(), "Microsoft_Excel_Worksheet.xlsx");
    let (text, report) = text_of(&document, &TextLimits::default());
    assert!(text.contains("4111 1111 1111 1111"), "{text:?} {report:?}");
    // Three levels of embedding are read; a fourth is reported, not followed.
    let mut nested = workbook;
    for level in 0..3 {
        nested = wrap(nested, &format!("Microsoft_Word_Document{level}.docx"));
    }
    let (text, report) = text_of(&nested, &TextLimits::default());
    assert!(text.contains("4111"), "three deep: {report:?}");
    let deeper = wrap(nested, "Microsoft_Word_Document9.docx");
    let (text, report) = text_of(&deeper, &TextLimits::default());
    assert!(!text.contains("4111"));
    assert!(report.unreadable.iter().any(|u| u.contains("embedded more than 3 deep")), "{report:?}");
}

#[test]
fn an_outlook_message_shows_its_plain_and_html_bodies() {
    use labelgate_testkit::compound;
    let utf16 = |s: &str| s.encode_utf16().flat_map(u16::to_le_bytes).collect::<Vec<u8>>();
    let plain = utf16("Card 4111 1111 1111 1111\0");
    let html = b"<p>IBAN GB82&nbsp;WEST 1234 5698 7654 32</p>".to_vec();
    let bytes = compound(&[("/__properties_version1.0", &[0u8; 32]), ("/__substg1.0_1000001F", &plain), ("/__substg1.0_10130102", &html)]);
    assert_eq!(labelgate_extract::extract(&bytes).unwrap().kind, labelgate_extract::FileKind::Msg);
    let bodies = labelgate_extract::msg_body_text(&mut SliceInput::new(&bytes), &Limits::default(), 1 << 20).unwrap();
    assert_eq!(bodies, [("Card 4111 1111 1111 1111".to_string(), false), (String::from_utf8(html).unwrap(), true)]);
}

#[test]
fn a_pdf_update_replaces_the_tenants_label_however_it_was_written() {
    use labelgate_testkit::simple_pdf;
    let site = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    // The old label written with an upper-case GUID, in Info and in XMP.
    let info = format!("<< /Producer (test) /MSIP_Label_F42AA342-8706-4288-BD11-EBB85995028C_Enabled (true) /MSIP_Label_F42AA342-8706-4288-BD11-EBB85995028C_SiteId ({site}) >>");
    let xmp = format!(
        "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"><rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\"><rdf:Description rdf:about=\"\" xmlns:pdfx=\"http://ns.adobe.com/pdfx/1.3/\" pdfx:Keep=\"yes\"><pdfx:MSIP_Label_F42AA342-8706-4288-BD11-EBB85995028C_Enabled>true</pdfx:MSIP_Label_F42AA342-8706-4288-BD11-EBB85995028C_Enabled><pdfx:MSIP_Label_F42AA342-8706-4288-BD11-EBB85995028C_SiteId>{site}</pdfx:MSIP_Label_F42AA342-8706-4288-BD11-EBB85995028C_SiteId></rdf:Description></rdf:RDF></x:xmpmeta>"
    );
    let pdf = simple_pdf(&info, Some(&xmp), false);
    assert_eq!(labelgate_extract::extract(&pdf).unwrap().labels[0].id, "f42aa342-8706-4288-bd11-ebb85995028c");
    let new = "3d0ca00b-3f0e-465a-aac7-1a6a22fcea40";
    let properties: Vec<(String, String)> =
        [("Enabled", "true"), ("SiteId", site), ("Method", "Standard"), ("Name", "Confidentiel – Finance")]
            .iter()
            .map(|(k, v)| (format!("MSIP_Label_{new}_{k}"), v.to_string()))
            .collect();
    let remove = ["MSIP_Label_f42aa342-8706-4288-bd11-ebb85995028c_".to_string(), format!("MSIP_Label_{new}_")];
    let appended = labelgate_extract::pdf_label_update(&mut SliceInput::new(&pdf), &Limits::default(), &properties, &remove).unwrap();
    let updated = [&pdf[..], &appended[..]].concat();
    let found = labelgate_extract::extract(&updated).unwrap();
    assert_eq!(found.labels.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), [new], "{found:?}");
    assert_eq!(found.labels[0].name.as_deref(), Some("Confidentiel – Finance"), "a name outside ASCII reads back");
    assert!(found.flags.is_empty(), "{found:?}");
    let text = String::from_utf8_lossy(&appended);
    assert!(text.contains("pdfx:Keep=\"yes\""), "a description carrying other properties stays: {text}");
    assert!(text.contains("/Producer (test)"));
}
