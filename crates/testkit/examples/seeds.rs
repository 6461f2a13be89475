//! Writes small generated fixtures (one per container, including the pitfall shapes) as fuzz
//! seeds: `cargo run -p labelgate-testkit --example seeds -- fuzz/corpus`.
use labelgate_testkit::*;
use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "fuzz/corpus".into()));
    let write = |dir: &str, name: &str, bytes: Vec<u8>| {
        let d = root.join(dir);
        std::fs::create_dir_all(&d).expect("create seed dir");
        std::fs::write(d.join(name), bytes).expect("write seed");
    };
    let custom = custom_xml(&[(GUID_A, SITE_MS, "true")]);
    let li = labelinfo_xml(&[(GUID_B, SITE_MS, "1", "0"), (SITE_OTHER, SITE_OTHER, "0", "1")]);
    write("ooxml", "gen-docx", zip(&docx(Some(custom.clone()), Some(li.clone()))));
    let mut dd = docx(Some(custom.clone()), None);
    for e in &mut dd {
        e.data_descriptor = true;
    }
    write("ooxml", "gen-data-descriptor", zip(&dd));
    let mut z64 = docx(None, Some(li.clone()));
    for e in &mut z64 {
        e.zip64 = true;
    }
    write("ooxml", "gen-zip64", build_zip(&z64, &ZipOptions { zip64_end: true, ..ZipOptions::default() }));
    write("pdf", "gen-info", simple_pdf(&info_dict(&[(GUID_A, SITE_MS, "true")]), Some(&xmp(&[(GUID_B, SITE_MS, "true")])), true));
    let mut p = Pdf::new();
    p.obj(1, "<< /Type /Catalog /Pages 2 0 R >>");
    p.obj(2, "<< /Type /Pages /Kids [] /Count 0 >>");
    p.obj(4, &info_dict(&[(GUID_A, SITE_MS, "true")]));
    p.classic_xref("/Root 1 0 R /Info 4 0 R");
    p.object_stream(10, &[(4, "<< /Producer (x) >>")]);
    p.xref_stream(11, "/Root 1 0 R /Info 4 0 R");
    write("pdf", "gen-incremental-objstm", p.bytes());
    write(
        "cfb",
        "gen-protected",
        compound(&[
            ("/EncryptedPackage", &[0u8; 600]),
            ("/\u{6}DataSpaces/TransformInfo/DRMEncryptedTransform/\u{6}Primary", b"drm"),
            ("/\u{6}DataSpaces/TransformInfo/LabelInfo", li.as_bytes()),
        ]),
    );
    write("eml", "gen-folded", format!("From: a@example.com\r\nTo: b@example.com\r\nmsip_labels: MSIP_Label_{GUID_A}_Enabled=true;\r\n MSIP_Label_{GUID_A}_SiteId={SITE_MS}; MSIP_Label_{GUID_A}_Name=Gen\r\n eral\r\n\r\nbody\r\n").into_bytes());
    write("eml", "gen-rfc2047", b"From: a@example.com\r\nSubject: x\r\nmsip_labels: =?utf-8?B?TVNJUF9MYWJlbF9mNDJhYTM0Mi04NzA2LTQyODgtYmQxMS1lYmI4NTk5NTAyOGNfRW5hYmxlZD10cnVl?=\r\n\r\n".to_vec());
    write(
        "eml",
        "gen-per-attribute",
        format!("From: a@b\r\nTo: c@d\r\nmsip_label_{GUID_B}_enabled: true\r\nmsip_label_{GUID_B}_siteid: {SITE_OTHER}\r\n\r\n")
            .into_bytes(),
    );
}
