//! OOXML / OPC packages: find the custom-properties and classification-labels parts through the
//! package relationships, read just those, and apply LabelInfo precedence (label-formats.md §2-4,
//! §11.1-11.3).

use crate::error::ExtractError;
use crate::input::Input;
use crate::limits::Limits;
use crate::model::{Extraction, FileKind, LabelRecord, RecordStatus, Source};
use crate::msip::{apply_labelinfo_precedence, PropertyCollector};
use crate::xml::{self, XmlError, XmlNotes};
use crate::zip::{self, Archive};

const REL_CUSTOM: &[&str] = &[
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships/custom-properties",
    "http://purl.oclc.org/ooxml/officeDocument/relationships/customProperties",
];
const REL_LABELINFO: &str = "http://schemas.microsoft.com/office/2020/02/relationships/classificationlabels";
const REL_MAIN: &[&str] = &[
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument",
    "http://purl.oclc.org/ooxml/officeDocument/relationships/officeDocument",
    "http://schemas.microsoft.com/visio/2010/relationships/document",
];
const CT_CUSTOM: &str = "application/vnd.openxmlformats-officedocument.custom-properties+xml";
const CT_LABELINFO: &str = "application/vnd.ms-office.classificationlabels+xml";
const NAME_CUSTOM: &str = "docprops/custom.xml";
const NAME_LABELINFO: &str = "docmetadata/labelinfo.xml";

const MAIN_CONTENT_TYPES: &[(&str, FileKind)] = &[
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml", FileKind::Docx),
    ("application/vnd.ms-word.document.macroenabled.main+xml", FileKind::Docm),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml", FileKind::Dotx),
    ("application/vnd.ms-word.template.macroenabledtemplate.main+xml", FileKind::Dotm),
    ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml", FileKind::Xlsx),
    ("application/vnd.ms-excel.sheet.macroenabled.main+xml", FileKind::Xlsm),
    ("application/vnd.openxmlformats-officedocument.spreadsheetml.template.main+xml", FileKind::Xltx),
    ("application/vnd.ms-excel.template.macroenabled.main+xml", FileKind::Xltm),
    ("application/vnd.ms-excel.sheet.binary.macroenabled.main", FileKind::Xlsb),
    ("application/vnd.ms-excel.addin.macroenabled.main+xml", FileKind::Xlam),
    ("application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml", FileKind::Pptx),
    ("application/vnd.ms-powerpoint.presentation.macroenabled.main+xml", FileKind::Pptm),
    ("application/vnd.openxmlformats-officedocument.presentationml.template.main+xml", FileKind::Potx),
    ("application/vnd.ms-powerpoint.template.macroenabled.main+xml", FileKind::Potm),
    ("application/vnd.openxmlformats-officedocument.presentationml.slideshow.main+xml", FileKind::Ppsx),
    ("application/vnd.ms-powerpoint.slideshow.macroenabled.main+xml", FileKind::Ppsm),
    ("application/vnd.ms-visio.drawing.main+xml", FileKind::Vsdx),
    ("application/vnd.ms-visio.drawing.macroenabled.main+xml", FileKind::Vsdm),
];

/// OPC part-name normalisation for comparison: `\` → `/`, no leading `/` or `./`,
/// percent-escapes decoded, ASCII case folded (part names compare case-insensitively).
pub(crate) fn normalize_part_name(name: &str) -> String {
    let replaced = name.replace('\\', "/");
    let mut s = replaced.as_str();
    loop {
        if let Some(r) = s.strip_prefix('/') {
            s = r;
        } else if let Some(r) = s.strip_prefix("./") {
            s = r;
        } else {
            break;
        }
    }
    percent_decode(s).to_ascii_lowercase()
}

fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Resolves a relationship target of the package (source `/`) to a normalised part name.
fn resolve_target(target: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let replaced = target.replace('\\', "/");
    let without_fragment = replaced.split(['#', '?']).next().unwrap_or("");
    for seg in without_fragment.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    normalize_part_name(&parts.join("/"))
}

/// Strips what OPC ignores at the start of an item name (`/`, `./`, `\\`).
fn trim_name_start(mut raw: &[u8]) -> &[u8] {
    loop {
        match raw {
            [b'/' | b'\\', rest @ ..] => raw = rest,
            [b'.', b'/' | b'\\', rest @ ..] => raw = rest,
            _ => return raw,
        }
    }
}

/// Does ZIP item name `raw` name the part `normalized` (see `normalize_part_name`)? Allocates
/// only for names with percent-escapes.
fn part_name_matches(raw: &[u8], normalized: &str) -> bool {
    part_name_matches_hinted(raw, true, normalized)
}

/// As `part_name_matches`; `may_have_percent` false skips the percent-escape path.
fn part_name_matches_hinted(raw: &[u8], may_have_percent: bool, normalized: &str) -> bool {
    let raw = trim_name_start(raw);
    if raw.len() != normalized.len() {
        // Percent-escapes make an item name longer than the part name it encodes.
        return may_have_percent
            && raw.len() > normalized.len()
            && raw.contains(&b'%')
            && normalize_part_name(&String::from_utf8_lossy(raw)) == normalized;
    }
    raw.iter().zip(normalized.as_bytes()).all(|(a, b)| {
        let a = if *a == b'\\' { b'/' } else { a.to_ascii_lowercase() };
        a == *b
    })
}

fn part_name_starts_with(raw: &[u8], prefix: &str) -> bool {
    let raw = trim_name_start(raw);
    raw.len() > prefix.len() && part_name_matches(&raw[..prefix.len()], prefix)
}

/// Is this ZIP an OPC package? (It has a `[Content_Types].xml` item.)
pub(crate) fn is_opc(archive: &Archive) -> bool {
    archive.entries.iter().any(|e| part_name_matches_hinted(archive.name(e), e.percent, "[content_types].xml"))
}

struct Package<'a> {
    archive: &'a Archive,
}

impl Package<'_> {
    fn find(&self, normalized: &str) -> Vec<usize> {
        let a = self.archive;
        a.entries.iter().enumerate().filter(|(_, e)| part_name_matches_hinted(a.name(e), e.percent, normalized)).map(|(i, _)| i).collect()
    }
}

fn note_xml(ex: &mut Extraction, part: &str, notes: &XmlNotes) {
    if notes.dtd {
        ex.ambiguous(format!("ooxml: part {part} contains a DTD (forbidden in OPC; not processed)"));
    }
    if notes.unknown_entity {
        ex.ambiguous(format!("ooxml: part {part} uses an undeclared entity"));
    }
}

fn xml_failure(ex: &mut Extraction, part: &str, err: XmlError, limits: &Limits) -> Result<(), ExtractError> {
    match err {
        XmlError::TooDeep(_) => Err(ExtractError::limit("max_xml_depth", limits.max_xml_depth as u64)),
        XmlError::Malformed(m) => {
            ex.ambiguous(format!("ooxml: part {part} cannot be parsed: {m}"));
            Ok(())
        }
    }
}

/// The first copy of a part (in directory order) and the data of any duplicates.
type PartCopies = (Option<Vec<u8>>, Vec<Vec<u8>>);

/// Reads the one entry for `normalized`, flagging duplicates (exact or case-folded); returns the
/// data of the first entry in directory order and, separately, the data of any duplicates.
fn read_part(
    input: &mut dyn Input,
    pkg: &Package<'_>,
    normalized: &str,
    limits: &Limits,
    ex: &mut Extraction,
) -> Result<PartCopies, ExtractError> {
    let found = pkg.find(normalized);
    let Some((&first, rest)) = found.split_first() else {
        return Ok((None, Vec::new()));
    };
    if !rest.is_empty() {
        ex.ambiguous(format!("ooxml: {} items are named {normalized} (duplicate or case-folded names)", found.len()));
    }
    // Interleaved pieces of a label part are not supported: say so instead of missing them.
    let data = zip::read_entry(input, pkg.archive, &pkg.archive.entries[first], limits, ex)?;
    let mut dups = Vec::new();
    for &i in rest {
        if let Some(d) = zip::read_entry(input, pkg.archive, &pkg.archive.entries[i], limits, ex)? {
            dups.push(d);
        }
    }
    Ok((data, dups))
}

fn read_label_part(
    input: &mut dyn Input,
    pkg: &Package<'_>,
    part: &str,
    is_labelinfo: bool,
    orphan: bool,
    limits: &Limits,
    ex: &mut Extraction,
) -> Result<Vec<LabelRecord>, ExtractError> {
    let (data, dups) = read_part(input, pkg, part, limits, ex)?;
    let mut out = Vec::new();
    for (i, bytes) in data.into_iter().chain(dups).enumerate() {
        let mut records = parse_label_bytes(&bytes, part, is_labelinfo, limits, ex)?;
        if orphan || i > 0 {
            for r in &mut records {
                r.status = RecordStatus::Orphan;
            }
        }
        out.extend(records);
    }
    Ok(out)
}

fn parse_label_bytes(
    bytes: &[u8],
    part: &str,
    is_labelinfo: bool,
    limits: &Limits,
    ex: &mut Extraction,
) -> Result<Vec<LabelRecord>, ExtractError> {
    let text = match xml::decode_text(bytes) {
        Ok(t) => t,
        Err(e) => {
            xml_failure(ex, part, e, limits)?;
            return Ok(Vec::new());
        }
    };
    if is_labelinfo {
        match xml::parse_labelinfo(&text, Source::LabelInfo, limits, ex) {
            Ok((records, notes)) => {
                note_xml(ex, part, &notes);
                Ok(records)
            }
            Err(e) => {
                xml_failure(ex, part, e, limits)?;
                Ok(Vec::new())
            }
        }
    } else {
        let mut collector = PropertyCollector::new(Source::CustomProps, limits.max_records);
        match xml::parse_custom_properties(&text, limits, &mut collector, ex) {
            Ok(notes) => note_xml(ex, part, &notes),
            Err(e) => xml_failure(ex, part, e, limits)?,
        }
        Ok(collector.finish(ex))
    }
}

/// Reads an OPC package already opened as a ZIP archive.
pub(crate) fn extract(input: &mut dyn Input, archive: &Archive, limits: &Limits) -> Result<Extraction, ExtractError> {
    let pkg = Package { archive };
    let mut ex = Extraction::new(FileKind::Ooxml);

    // Package relationships.
    let (rels_bytes, _) = read_part(input, &pkg, "_rels/.rels", limits, &mut ex)?;
    let mut rels = Vec::new();
    match rels_bytes {
        Some(bytes) => match xml::decode_text(&bytes).and_then(|t| xml::parse_relationships(&t, limits)) {
            Ok((r, notes)) => {
                note_xml(&mut ex, "_rels/.rels", &notes);
                rels = r;
            }
            Err(e) => xml_failure(&mut ex, "_rels/.rels", e, limits)?,
        },
        None => ex.finding("ooxml: the package has no _rels/.rels"),
    }

    // Content types: the package's kind. Usually only the main part's Override is needed, and it
    // sits near the start of a part that can be long (one Override per slide or sheet): inflate
    // just enough to find it. Anything unusual takes the full parse, which also feeds the sweep
    // for label parts declared by content type.
    let main_target = rels.iter().find(|r| REL_MAIN.contains(&r.rel_type.as_str())).map(|r| resolve_target(&r.target));
    let mut content_types = xml::ContentTypes::default();
    let fast_kind = match &main_target {
        Some(main) => main_kind_from_prefix(input, &pkg, main, limits, &mut ex)?,
        None => None,
    };
    match fast_kind {
        Some(kind) => ex.kind = kind,
        None => {
            let (ct_bytes, _) = read_part(input, &pkg, "[content_types].xml", limits, &mut ex)?;
            if let Some(bytes) = ct_bytes {
                match xml::decode_text(&bytes).and_then(|t| xml::parse_content_types(&t, limits)) {
                    Ok((ct, notes)) => {
                        note_xml(&mut ex, "[Content_Types].xml", &notes);
                        content_types = ct;
                    }
                    Err(e) => xml_failure(&mut ex, "[Content_Types].xml", e, limits)?,
                }
            }
            ex.kind = package_kind(&rels, &content_types);
        }
    }

    let mut records = Vec::new();
    let mut read_parts: Vec<String> = Vec::new();
    let by_relationship = |is_labelinfo: bool| {
        rels.iter()
            .filter(move |r| {
                !r.external && if is_labelinfo { r.rel_type == REL_LABELINFO } else { REL_CUSTOM.contains(&r.rel_type.as_str()) }
            })
            .map(|r| resolve_target(&r.target))
            .collect::<Vec<_>>()
    };
    let custom_targets = by_relationship(false);
    let labelinfo_targets = by_relationship(true);
    if labelinfo_targets.len() > 1 {
        ex.ambiguous("ooxml: more than one classification-labels relationship");
    }
    if custom_targets.len() > 1 {
        ex.ambiguous("ooxml: more than one custom-properties relationship");
    }
    for (targets, is_labelinfo) in [(labelinfo_targets, true), (custom_targets, false)] {
        for target in targets {
            if read_parts.contains(&target) {
                continue;
            }
            if pkg.find(&target).is_empty() {
                ex.finding(format!("ooxml: relationship target {target} is missing"));
                continue;
            }
            records.extend(read_label_part(input, &pkg, &target, is_labelinfo, false, limits, &mut ex)?);
            read_parts.push(target);
        }
    }

    // Conservative sweep: label parts reachable by conventional name or content type but not by
    // relationship. Office does not read them; a label there is reported, not enforced.
    let mut sweep: Vec<(String, bool)> = vec![(NAME_LABELINFO.to_string(), true), (NAME_CUSTOM.to_string(), false)];
    for (part, ct) in &content_types.overrides {
        let ct = ct.trim().to_ascii_lowercase();
        if ct == CT_LABELINFO {
            sweep.push((normalize_part_name(part), true));
        } else if ct == CT_CUSTOM {
            sweep.push((normalize_part_name(part), false));
        }
    }
    for (part, is_labelinfo) in sweep {
        if read_parts.contains(&part) || pkg.find(&part).is_empty() {
            continue;
        }
        let orphans = read_label_part(input, &pkg, &part, is_labelinfo, true, limits, &mut ex)?;
        if orphans.iter().any(|r| r.enabled == Some(true)) {
            ex.ambiguous(format!("ooxml: part {part} carries labels but no package relationship reaches it"));
        }
        records.extend(orphans);
        read_parts.push(part);
    }

    // Interleaved (piece-wise) label parts.
    for e in &archive.entries {
        let raw = archive.name(e);
        if (part_name_starts_with(raw, "docprops/custom.xml/") || part_name_starts_with(raw, "docmetadata/labelinfo.xml/"))
            && raw.ends_with(b"piece")
        {
            ex.ambiguous(format!("ooxml: interleaved label part pieces ({}) are not read", String::from_utf8_lossy(raw)));
        }
    }

    apply_labelinfo_precedence(&mut records);
    records.truncate(limits.max_records);
    ex.records = records;
    ex.finalize();
    Ok(ex)
}

/// The kind from the `[Content_Types].xml` Override of the main part, inflating only a prefix of
/// the part. `None` when the quick look is not conclusive (then the caller parses it whole).
fn main_kind_from_prefix(
    input: &mut dyn Input,
    pkg: &Package<'_>,
    main: &str,
    limits: &Limits,
    ex: &mut Extraction,
) -> Result<Option<FileKind>, ExtractError> {
    let found = pkg.find("[content_types].xml");
    let [index] = found.as_slice() else { return Ok(None) };
    let entry = &pkg.archive.entries[*index];
    if entry.method != 8 || entry.uncompressed_size > limits.max_part_bytes {
        return Ok(None);
    }
    let Some(compressed) = zip::entry_payload(input, pkg.archive, entry, limits, ex)? else { return Ok(None) };
    let mut inflater = crate::inflate::Inflater::new(compressed, false, limits.max_part_bytes);
    let needle_dq = format!("partname=\"/{main}\"");
    let needle_sq = format!("partname='/{main}'");
    let mut want = 1024usize;
    loop {
        let Ok(prefix) = inflater.fill(want) else { return Ok(None) };
        let complete = prefix.len() < want;
        let text = match std::str::from_utf8(prefix) {
            Ok(t) => t,
            Err(e) => match std::str::from_utf8(&prefix[..e.valid_up_to()]) {
                Ok(t) => t,
                Err(_) => return Ok(None),
            },
        };
        if text.contains('&') || text.contains("<!") {
            return Ok(None);
        }
        let lower = text.to_ascii_lowercase();
        let hit = lower.find(&needle_dq).or_else(|| lower.find(&needle_sq));
        if let Some(hit) = hit {
            let start = lower[..hit].rfind('<');
            let end = lower[hit..].find('>').map(|e| hit + e + 1);
            if let (Some(s), Some(e)) = (start, end) {
                let Ok((ct, _)) = xml::parse_content_types(&text[s..e], limits) else { return Ok(None) };
                let lookup = ct.overrides.iter().find(|(p, _)| normalize_part_name(p) == main).and_then(|(_, t)| kind_for_content_type(t));
                return Ok(lookup);
            }
        }
        if complete || want as u64 >= limits.max_part_bytes {
            return Ok(None);
        }
        want = want.saturating_mul(4);
    }
}

fn kind_for_content_type(t: &str) -> Option<FileKind> {
    let t = t.trim().to_ascii_lowercase();
    MAIN_CONTENT_TYPES.iter().find(|(c, _)| *c == t).map(|(_, k)| *k)
}

fn package_kind(rels: &[xml::Relationship], ct: &xml::ContentTypes) -> FileKind {
    let lookup = kind_for_content_type;
    for rel in rels.iter().filter(|r| REL_MAIN.contains(&r.rel_type.as_str())) {
        let target = resolve_target(&rel.target);
        if let Some((_, t)) = ct.overrides.iter().find(|(p, _)| normalize_part_name(p) == target) {
            if let Some(k) = lookup(t) {
                return k;
            }
        }
        if let Some(ext) = target.rsplit_once('.').map(|(_, e)| e) {
            if let Some((_, t)) = ct.defaults.iter().find(|(e, _)| e.eq_ignore_ascii_case(ext)) {
                if let Some(k) = lookup(t) {
                    return k;
                }
            }
        }
    }
    ct.overrides.iter().find_map(|(_, t)| lookup(t)).unwrap_or(FileKind::Ooxml)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names() {
        assert_eq!(normalize_part_name("/DocProps/CUSTOM.XML"), "docprops/custom.xml");
        assert_eq!(normalize_part_name("docProps\\custom.xml"), "docprops/custom.xml");
        assert_eq!(normalize_part_name("docProps/cust%6Fm.xml"), "docprops/custom.xml");
        assert_eq!(resolve_target("/docMetadata/./x/../LabelInfo.xml"), "docmetadata/labelinfo.xml");
        assert_eq!(resolve_target("docProps/custom.xml"), "docprops/custom.xml");
        assert!(part_name_matches(b"/DocProps\\Custom.XML", "docprops/custom.xml"));
        assert!(part_name_matches(b"./docProps/cust%6Fm.xml", "docprops/custom.xml"));
        assert!(!part_name_matches(b"docProps/custom.xm", "docprops/custom.xml"));
        assert!(part_name_starts_with(b"docProps/custom.xml/[0].piece", "docprops/custom.xml/"));
    }
}
