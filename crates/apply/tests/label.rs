//! Labelling files on disk: a package without custom properties gets the part, its relationship
//! and content type; a file changed after the scan read it is skipped and left as it is; labels
//! that apply protection, and files that are not Office documents, are not written; a dry run
//! writes nothing.

use labelgate_apply::{relabel_bytes, Labeller, NewLabel, Target};
use labelgate_catalog::{Catalog, Label};
use labelgate_extract::Limits;
use labelgate_testkit::{custom_xml, docx, zip};
use std::path::Path;

const CONFIDENTIAL: &str = "3d0ca00b-3f0e-465a-aac7-1a6a22fcea40";
const PROTECTED: &str = "9fbde396-1a24-4c79-8edf-9254a0f35055";
const SITE: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

fn catalog() -> Catalog {
    let mut confidential = Label::new(CONFIDENTIAL, "Confidential");
    confidential.priority = 5;
    confidential.tenant = Some(SITE.into());
    let mut protected = Label::new(PROTECTED, "Highly Confidential");
    protected.priority = 9;
    protected.tenant = Some(SITE.into());
    protected.has_protection = true;
    Catalog::from_static(vec![confidential, protected])
}

fn target(path: &Path) -> Target<'_> {
    Target::of(path, &std::fs::metadata(path).unwrap())
}

#[test]
fn a_package_without_custom_properties_gets_them_with_relationship_and_content_type() {
    let original = zip(&docx(None, None));
    let label = NewLabel {
        id: CONFIDENTIAL.into(),
        name: "Confidential".into(),
        tenant: SITE.into(),
        set_date: "2026-11-30T12:00:00Z".into(),
        action_id: "00000000-0000-4000-8000-000000000001".into(),
    };
    let labelled = relabel_bytes(&original, &label).unwrap();
    let found = labelgate_extract::extract(&labelled).unwrap();
    assert_eq!(found.labels.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), [CONFIDENTIAL], "{found:?}");
    assert!(found.flags.is_empty(), "{found:?}");
    let text = String::from_utf8_lossy(&labelled);
    assert!(text.contains("docProps/custom.xml"));
    // Labelling again replaces the tenant's label, it does not add a second one.
    let again = relabel_bytes(&labelled, &NewLabel { action_id: "00000000-0000-4000-8000-000000000002".into(), ..label }).unwrap();
    let found = labelgate_extract::extract(&again).unwrap();
    assert_eq!(found.records.len(), 1, "{found:?}");
}

#[test]
fn a_file_changed_after_the_scan_read_it_is_skipped_and_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.docx");
    std::fs::write(&path, zip(&docx(None, None))).unwrap();
    let undo = labelgate_apply::undo::Log::create(&dir.path().join("state"), "test").unwrap();
    let catalog = catalog();
    let limits = Limits::default();
    let labeller =
        Labeller { catalog: &catalog, limits: &limits, undo: Some(&undo), set_date: "2026-11-30T12:00:00Z".into(), state_dir: None };
    // What the scan saw; then someone saves the file again, in place.
    let seen = target(&path);
    let mut entries = docx(None, None);
    entries.push(labelgate_testkit::Entry::new("word/comments.xml", "<w:comments/>"));
    let changed = zip(&entries);
    std::fs::write(&path, &changed).unwrap();
    let outcome = labeller.label(&seen, CONFIDENTIAL);
    assert_eq!(outcome.outcome, "skipped", "{outcome:?}");
    assert!(outcome.reason.as_deref().unwrap().contains("changed since it was scanned"), "{outcome:?}");
    assert_eq!(std::fs::read(&path).unwrap(), changed, "left as it is");
    assert_eq!(undo.changes(), 0);
    // Seen afresh, it is labelled.
    let outcome = labeller.label(&target(&path), CONFIDENTIAL);
    assert_eq!(outcome.outcome, "applied", "{outcome:?}");
}

#[test]
fn protection_labels_other_files_and_dry_runs_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = catalog();
    let limits = Limits::default();
    let dry = Labeller { catalog: &catalog, limits: &limits, undo: None, set_date: "2026-11-30T12:00:00Z".into(), state_dir: None };
    let doc = dir.path().join("a.docx");
    let bytes = zip(&docx(Some(custom_xml(&[("f42aa342-8706-4288-bd11-ebb85995028c", SITE, "true")])), None));
    std::fs::write(&doc, &bytes).unwrap();
    // A label of the tenant the catalog does not know: its priority is unknown, never lowered.
    let unknown = dry.label(&target(&doc), CONFIDENTIAL);
    assert_eq!(unknown.outcome, "skipped");
    assert!(unknown.reason.unwrap().contains("unknown priority"));
    let plain = dir.path().join("b.docx");
    std::fs::write(&plain, zip(&docx(None, None))).unwrap();
    assert_eq!(dry.label(&target(&plain), CONFIDENTIAL).outcome, "would_apply");
    let protected = dry.label(&target(&plain), PROTECTED);
    assert_eq!(protected.outcome, "skipped");
    assert!(protected.reason.unwrap().contains("MIP SDK"));
    let text = dir.path().join("c.txt");
    std::fs::write(&text, "4111 1111 1111 1111").unwrap();
    let other = dry.label(&target(&text), CONFIDENTIAL);
    assert!(other.reason.unwrap().contains("not labelled"), "{:?}", dry.label(&target(&text), CONFIDENTIAL));
    let missing = dry.label(&target(&plain), "No Such Label");
    assert_eq!((missing.outcome, missing.label.as_str()), ("skipped", "No Such Label"));
    assert_eq!(std::fs::read(&doc).unwrap(), bytes, "a dry run writes nothing");
}
