//! Hostile containers: nesting past any sane depth, bombs, overlapping entries, member floods,
//! tricky names. Each ends as a typed limit or is read through, never as exhaustion; memory is
//! measured with the per-thread counting allocator.

use labelgate_extract::{FileKind, Limits};
use labelgate_testkit::*;
use labelgate_unpack::{inspect_slice, Inspection, Problem, UnpackLimits};
use std::io::Write;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

const MIB: usize = 1024 * 1024;

fn labeled_docx() -> Vec<u8> {
    zip(&docx(Some(custom_xml(&[(GUID_A, SITE_MS, "true")])), None))
}

fn limit_of(p: &Option<Problem>) -> Option<&'static str> {
    match p {
        Some(Problem::NestedLimit { limit, .. }) => Some(limit),
        _ => None,
    }
}

/// Every limit reached anywhere in the answer.
fn limits_reached(i: &Inspection) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = i.inner.iter().filter_map(|f| limit_of(&f.error)).collect();
    out.extend(limit_of(&i.container));
    out
}

#[test]
fn nesting_a_thousand_deep_stops_at_max_depth() {
    let mut bytes = labeled_docx();
    for level in 0..1000 {
        bytes = zip(&[Entry::new(&format!("level{level}.zip"), &bytes).stored()]);
    }
    let (i, peak) = peak_heap_during(|| inspect_slice(&bytes, &Limits::default(), &UnpackLimits::default()));
    assert_eq!(i.inner.len(), 5, "members down to depth 5 are read");
    assert_eq!(limits_reached(&i), ["max_depth"]);
    assert_eq!(i.inner.last().map(|f| f.depth), Some(5));
    assert!(i.inner[4].error.is_some(), "the container at the bottom carries the limit");
    assert!(peak < 8 * MIB, "peak {peak}");
    // Within the depth, the label is found.
    let mut shallow = labeled_docx();
    for level in 0..4 {
        shallow = zip(&[Entry::new(&format!("level{level}.zip"), &shallow)]);
    }
    let i = inspect_slice(&shallow, &Limits::default(), &UnpackLimits::default());
    assert_eq!(i.all_labels().count(), 1);
    assert!(limits_reached(&i).is_empty());
}

#[test]
fn a_hundred_thousand_empty_members_are_a_limit_not_a_stall() {
    let entries: Vec<Entry> = (0..100_000).map(|n| Entry::new(&format!("{n}"), b"").stored()).collect();
    let bytes = zip(&entries);
    let started = std::time::Instant::now();
    let i = inspect_slice(&bytes, &Limits::default(), &UnpackLimits::default());
    assert_eq!(limit_of(&i.container), Some("max_members"));
    // Not a timing assertion on the result: only a guard against a hang in CI.
    assert!(started.elapsed().as_secs() < 60);
    // With room for them, they are read through (none can hold a label).
    let roomy = UnpackLimits { max_members: 200_000, ..UnpackLimits::default() };
    let i = inspect_slice(&bytes, &Limits::default(), &roomy);
    assert!(i.container.is_none() && i.inner.is_empty());
}

#[test]
fn a_deflate_bomb_behind_a_tar_header_ends_at_the_ratio() {
    // tar.gz whose member is 64 MiB of zeros (~64 KiB compressed): streaming through the tar
    // would inflate all of it.
    let tar = tar_header("zero.bin", 64 * MIB, b'0');
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&tar).unwrap();
    let zeros = vec![0u8; MIB];
    for _ in 0..64 {
        gz.write_all(&zeros).unwrap();
    }
    let bomb = gz.finish().unwrap();
    let (i, peak) = peak_heap_during(|| inspect_slice(&bomb, &Limits::default(), &UnpackLimits::default()));
    let reached = limits_reached(&i);
    assert!(!reached.is_empty() && reached.iter().all(|l| *l == "max_ratio"), "{:?}", i.inner);
    // The unrecognised member is kept while it is drained (to be checked from its end), until
    // the ratio stops it a few MiB in.
    assert!(peak < 16 * MIB, "peak {peak}");
    // With the ratio lifted, the expansion budget stops it instead.
    let bounds = UnpackLimits { max_ratio: u64::MAX, max_expanded_bytes: 16 * MIB as u64, ..UnpackLimits::default() };
    let i = inspect_slice(&bomb, &Limits::default(), &bounds);
    assert!(limits_reached(&i).iter().all(|l| *l == "max_expanded_bytes") && !limits_reached(&i).is_empty());
}

#[test]
fn nested_bombs_like_42_zip_end_at_a_limit() {
    // 42.zip's shape: each level holds 16 copies of the level below; the bottom is a labeled
    // docx padded to 1 MiB. 16^4 = 65,536 docx files at depth 4 (64 GiB expanded).
    let mut level = zip(&{
        let mut e = docx(Some(custom_xml(&[(GUID_A, SITE_MS, "true")])), None);
        e.push(Entry::new("word/media/pad.bin", vec![0u8; MIB]));
        e
    });
    for _ in 0..4 {
        let copies: Vec<Entry> = (0..16).map(|n| Entry::new(&format!("{n}.zip"), &level)).collect();
        level = zip(&copies);
    }
    let bounds = UnpackLimits { max_expanded_bytes: 128 * MIB as u64, ..UnpackLimits::default() };
    let (i, peak) = peak_heap_during(|| inspect_slice(&level, &Limits::default(), &bounds));
    assert!(!limits_reached(&i).is_empty(), "a limit (the budget or the members examined) ends it");
    assert!(i.all_labels().count() > 0, "what was read before the limit still counts");
    assert!(peak < 256 * MIB, "peak {peak}");
}

#[test]
fn overlapping_entries_fan_out_only_to_a_limit() {
    // Fifield's overlapping-file bomb shape, with a container as the kernel: many central
    // directory entries point at one stored member that is itself such an archive.
    let mut kernel = labeled_docx();
    for _ in 0..3 {
        let single = zip(&[Entry::new("k.zip", &kernel).stored()]);
        // Duplicate the one central-directory entry 400 times.
        let eocd = single.len() - 22;
        let cd_size = u32::from_le_bytes(single[eocd + 12..eocd + 16].try_into().unwrap()) as usize;
        let cd_offset = u32::from_le_bytes(single[eocd + 16..eocd + 20].try_into().unwrap()) as usize;
        let entry = &single[cd_offset..cd_offset + cd_size];
        let mut out = single[..cd_offset].to_vec();
        for _ in 0..400 {
            out.extend_from_slice(entry);
        }
        let mut end = single[eocd..].to_vec();
        end[8..10].copy_from_slice(&400u16.to_le_bytes());
        end[10..12].copy_from_slice(&400u16.to_le_bytes());
        end[12..16].copy_from_slice(&((cd_size * 400) as u32).to_le_bytes());
        out.extend_from_slice(&end);
        kernel = out;
    }
    let started = std::time::Instant::now();
    let i = inspect_slice(&kernel, &Limits::default(), &UnpackLimits::default());
    assert!(!limits_reached(&i).is_empty(), "400^3 paths end at a limit");
    assert!(started.elapsed().as_secs() < 60);
}

#[test]
fn names_are_reported_verbatim_and_duplicates_all_read() {
    let labeled = labeled_docx();
    let clean = zip(&docx(None, None));
    let bytes = zip(&[
        Entry::new("../../etc/evil.docx", &clean),
        Entry::new("/abs/path.docx", &clean),
        Entry::new("same.docx", &clean),
        Entry::new("same.docx", &labeled),
    ]);
    let i = inspect_slice(&bytes, &Limits::default(), &UnpackLimits::default());
    let paths: Vec<&str> = i.inner.iter().map(|f| f.path[0].as_str()).collect();
    assert_eq!(paths, ["../../etc/evil.docx", "/abs/path.docx", "same.docx", "same.docx"]);
    assert_eq!(i.inner.iter().filter(|f| !f.labels.is_empty()).count(), 1, "the second of two same-named members is read too");
    assert!(i.inner.iter().all(|f| f.kind == FileKind::Docx));
}

#[test]
fn a_large_deflated_member_is_held_once_and_bounded() {
    // A labeled 24 MiB docx deflated inside a zip: inflated once into memory (bounded by
    // max_inner_bytes); past that bound it is a limit, not an allocation.
    let inner = large_docx(24 * MIB);
    let bytes = zip(&[Entry::new("big.docx", &inner)]);
    let (i, peak) = peak_heap_during(|| inspect_slice(&bytes, &Limits::default(), &UnpackLimits::default()));
    assert!(i.all_labels().count() > 0);
    assert!(peak < 24 * MIB + 8 * MIB, "peak {peak} for a 24 MiB member");
    let tight = UnpackLimits { max_inner_bytes: 8 * MIB as u64, ..UnpackLimits::default() };
    let (i, peak) = peak_heap_during(|| inspect_slice(&bytes, &Limits::default(), &tight));
    assert_eq!(limits_reached(&i), ["max_inner_bytes"]);
    assert!(peak < 8 * MIB + 4 * MIB, "peak {peak} with an 8 MiB inner limit");
}

#[test]
fn rar_is_unsupported_broken_tnef_malformed_and_unknown_members_skipped() {
    let bytes = zip(&[
        Entry::new("a.rar", b"Rar!\x1a\x07\x01\x00 rest of a rar archive"),
        Entry::new("winmail.dat", [0x78u8, 0x9f, 0x3e, 0x22, 1, 2, 3]),
        Entry::new("photo.jpg", filler(100_000, 7)),
    ]);
    let i = inspect_slice(&bytes, &Limits::default(), &UnpackLimits::default());
    let reasons: Vec<(&str, Option<&str>)> = i.inner.iter().map(|f| (f.kind.as_str(), f.error.as_ref().map(|e| e.reason()))).collect();
    assert_eq!(reasons, [("rar", Some("unsupported")), ("tnef", Some("malformed"))]);
}

/// A winmail.dat as Outlook writes it: attributes of the message, then per attachment
/// attAttachRendData, attAttachTitle, attAttachData.
fn tnef(attachments: &[(&str, &[u8])], embedded_object: bool) -> Vec<u8> {
    let mut out = 0x223e_9f78u32.to_le_bytes().to_vec();
    out.extend_from_slice(&0x1234u16.to_le_bytes());
    tnef_attribute(&mut out, 1, 0x0008_9006, &[1, 0, 0, 0]); // attTnefVersion-like message attribute
    for (title, data) in attachments {
        tnef_attribute(&mut out, 2, 0x0006_9002, &[1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0]);
        tnef_attribute(&mut out, 2, 0x0001_8010, format!("{title}\0").as_bytes());
        tnef_attribute(&mut out, 2, 0x0006_800f, data);
    }
    if embedded_object {
        tnef_attribute(&mut out, 2, 0x0006_9002, &[5, 0, 0, 0]);
        let mut props = 1u32.to_le_bytes().to_vec();
        props.extend_from_slice(&0x3701_000du32.to_le_bytes());
        tnef_attribute(&mut out, 2, 0x0006_9005, &props);
    }
    out
}

#[test]
fn tnef_attachments_are_read_and_embedded_objects_unsupported() {
    let labeled = labeled_docx();
    let clean = zip(&docx(None, None));
    let bytes = tnef(&[("minutes.docx", &clean), ("budget.docx", &labeled)], false);
    let i = inspect_slice(&bytes, &Limits::default(), &UnpackLimits::default());
    assert_eq!(i.outer.as_ref().unwrap().kind, FileKind::Tnef);
    let paths: Vec<&str> = i.inner.iter().map(|f| f.path[0].as_str()).collect();
    assert_eq!(paths, ["minutes.docx", "budget.docx"]);
    assert_eq!(i.all_labels().count(), 1);
    assert!(i.container.is_none());
    let with_object = tnef(&[("minutes.docx", &clean)], true);
    let i = inspect_slice(&with_object, &Limits::default(), &UnpackLimits::default());
    assert_eq!(i.container.as_ref().map(|p| p.reason()), Some("unsupported"));
}

#[test]
fn a_deflated_message_whose_known_headers_come_late_is_still_found() {
    // Twenty unusual header fields (1.3 KiB) before From/To: the first 1 KiB of the inflated
    // member does not decide, the walker reads on to 4 KiB.
    let mut eml = String::new();
    for n in 0..20 {
        eml.push_str(&format!("X-Custom-Field-{n:02}: {}\r\n", "v".repeat(40)));
    }
    eml.push_str(&format!("From: a@example.com\r\nTo: b@example.com\r\nmsip_labels: MSIP_Label_{GUID_A}_Enabled=true\r\n\r\nbody\r\n"));
    assert!(eml.len() > 1300);
    let bytes = zip(&[Entry::new("fwd.eml", eml.as_bytes())]);
    let i = inspect_slice(&bytes, &Limits::default(), &UnpackLimits::default());
    assert_eq!(i.inner.len(), 1, "{:?}", i.inner);
    assert_eq!(i.inner[0].kind, FileKind::Eml);
    assert_eq!(i.all_labels().count(), 1);
    // And a PDF whose header sits late in its first KiB, deflated.
    let mut pdf = vec![b' '; 900];
    pdf.extend(simple_pdf(&info_dict(&[(GUID_A, SITE_MS, "true")]), None, false));
    let i = inspect_slice(&zip(&[Entry::new("late.pdf", &pdf)]), &Limits::default(), &UnpackLimits::default());
    assert_eq!(i.inner.first().map(|f| f.kind), Some(FileKind::Pdf), "{:?}", i.inner);
}

#[test]
fn a_transaction_budget_is_shared_by_its_files() {
    // Each deflated 3 MiB member alone fits a 5 MiB budget; the second file of the same
    // transaction does not.
    let member = |seed| zip(&[Entry::new("m.docx", [labeled_docx(), filler(3 * MIB, seed)].concat())]);
    let bounds = UnpackLimits { max_expanded_bytes: 5 * MIB as u64, ..UnpackLimits::default() };
    let budget = labelgate_unpack::Budget::new();
    let first =
        labelgate_unpack::inspect_with_budget(&mut labelgate_extract::SliceInput::new(&member(1)), &Limits::default(), &bounds, &budget);
    assert!(limits_reached(&first).is_empty());
    assert!(budget.spent() >= 3 * MIB as u64);
    let second =
        labelgate_unpack::inspect_with_budget(&mut labelgate_extract::SliceInput::new(&member(2)), &Limits::default(), &bounds, &budget);
    assert_eq!(limits_reached(&second), ["max_expanded_bytes"]);
    // Alone, the second one fits.
    assert!(limits_reached(&inspect_slice(&member(2), &Limits::default(), &bounds)).is_empty());
}

/// A PDF whose catalog's name tree lists `count` attachments, each `data` (Flate unless `filter`
/// names another filter, given raw), with a page tree of one page whose kids loop back.
fn pdf_with_attachments(count: u32, data: &[u8], filter: Option<&str>) -> Vec<u8> {
    let mut pdf = Pdf::new();
    let mut names = String::new();
    for i in 0..count {
        let spec = 100 + 2 * i;
        let stream = spec + 1;
        names.push_str(&format!("(f{i}) {spec} 0 R "));
        pdf.obj(spec, &format!("<< /Type /Filespec /UF (file{i}.docx) /EF << /F {stream} 0 R >> >>"));
        match filter {
            Some(f) => pdf.stream(stream, &format!("/Type /EmbeddedFile /Filter /{f} "), data, false),
            None => pdf.stream(stream, "/Type /EmbeddedFile ", data, true),
        };
    }
    // The name tree's second kid is the tree itself; the page tree's kid is the pages node.
    pdf.obj(4, &format!("<< /Names [{names}] >>"));
    pdf.obj(3, "<< /Kids [4 0 R 3 0 R] >>");
    pdf.obj(2, "<< /Type /Pages /Kids [2 0 R] /Count 1 >>");
    pdf.obj(1, "<< /Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles 3 0 R >> >>");
    pdf.classic_xref("/Root 1 0 R");
    pdf.bytes()
}

#[test]
fn pdf_attachments_loops_floods_and_sizes_end_at_limits() {
    let docx = labeled_docx();
    // Loops in the name tree and the page tree end: the attachment is read once.
    let i = inspect_slice(&pdf_with_attachments(1, &docx, None), &Limits::default(), &UnpackLimits::default());
    assert_eq!(i.inner.len(), 1, "{:#?}", i.inner);
    assert_eq!(i.inner[0].path, ["file0.docx"]);
    assert_eq!(i.all_labels().next().map(|l| l.id.as_str()), Some(GUID_A));

    // More attachments than max_members: the container reaches the limit.
    let bounds = UnpackLimits { max_members: 16, ..UnpackLimits::default() };
    let i = inspect_slice(&pdf_with_attachments(40, &docx, None), &Limits::default(), &bounds);
    assert_eq!(limits_reached(&i), ["max_members"], "{:?}", i.container);

    // An attachment larger than max_inner_bytes is that attachment's limit, not a pass.
    let big = filler(3 * MIB, 7);
    let bounds = UnpackLimits { max_inner_bytes: MIB as u64, ..UnpackLimits::default() };
    let i = inspect_slice(&pdf_with_attachments(1, &big, None), &Limits::default(), &bounds);
    assert_eq!(limits_reached(&i), ["max_inner_bytes"], "{:#?}", i.inner);

    // A filter the reader does not decode makes the attachment malformed (policy decides).
    let i = inspect_slice(&pdf_with_attachments(1, &docx, Some("LZWDecode")), &Limits::default(), &UnpackLimits::default());
    assert!(matches!(i.inner[0].error, Some(Problem::Malformed(_))), "{:#?}", i.inner);
    // ASCIIHex is decoded.
    let hex: String = docx.iter().map(|b| format!("{b:02x}")).collect();
    let i = inspect_slice(&pdf_with_attachments(1, hex.as_bytes(), Some("ASCIIHexDecode")), &Limits::default(), &UnpackLimits::default());
    assert_eq!(i.all_labels().next().map(|l| l.id.as_str()), Some(GUID_A), "{:#?}", i.inner);
}
