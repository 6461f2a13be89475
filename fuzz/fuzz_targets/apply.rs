//! Fuzz target for labelling (`labelgate scan --apply`): any bytes as a ZIP/OPC package and as
//! a PDF. Never a panic; a package that is rewritten reads back as a ZIP with its
//! relationships; a PDF update appended to the bytes reads back without a panic.
#![no_main]
use labelgate_apply::{relabel_bytes, NewLabel};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let label = NewLabel {
        id: "3d0ca00b-3f0e-465a-aac7-1a6a22fcea40".into(),
        name: "Confidential".into(),
        tenant: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
        set_date: "2026-11-30T00:00:00Z".into(),
        action_id: "00000000-0000-4000-8000-000000000000".into(),
    };
    if let Ok(out) = relabel_bytes(data, &label) {
        let mut ex = labelgate_extract::Extraction::new(labelgate_extract::FileKind::Zip);
        let listing = labelgate_extract::zip_members(&mut labelgate_extract::SliceInput::new(&out), &Default::default(), 1 << 16, &mut ex)
            .expect("a rewritten package is a ZIP archive");
        assert!(listing.members.iter().any(|m| m.name == b"_rels/.rels"));
    }
    let limits = labelgate_extract::Limits { max_part_bytes: 1 << 20, ..Default::default() };
    let properties = [(format!("MSIP_Label_{}_Enabled", label.id), "true".to_string())];
    if let Ok(appended) = labelgate_extract::pdf_label_update(&mut labelgate_extract::SliceInput::new(data), &limits, &properties, &[]) {
        let updated = [data, &appended[..]].concat();
        let _ = labelgate_extract::extract_with(&updated, &limits);
    }
});
