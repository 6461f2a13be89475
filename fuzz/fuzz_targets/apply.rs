//! Fuzz target for labelling a package (`labelgate scan --apply`): any bytes as a ZIP/OPC
//! package. Never a panic; a package that is rewritten reads back (with labelgate-extract) as a
//! ZIP whose new label is there, with every original member still present.
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
});
