//! Namespace-aware readers for the small XML parts that carry labels: OPC relationships and
//! content types, OOXML custom properties, LabelInfo, and PDF XMP packets.
//!
//! Everything matches namespace URI + local name, never prefixes. Text arrives decoded (UTF-8 or
//! UTF-16 with BOM or detectable first character), entity and character references resolved,
//! CDATA included. A DTD is never processed: it is reported so the caller can flag ambiguity.

use crate::limits::Limits;
use crate::model::{LabelRecord, RecordStatus, Source};
use crate::msip::{normalize_guid, parse_bool, PropertyCollector};
use crate::model::Extraction;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;
use std::borrow::Cow;

pub(crate) const NS_RELS: &[u8] = b"http://schemas.openxmlformats.org/package/2006/relationships";
pub(crate) const NS_CONTENT_TYPES: &[u8] = b"http://schemas.openxmlformats.org/package/2006/content-types";
const NS_CUSTOM: &[&[u8]] = &[
    b"http://schemas.openxmlformats.org/officeDocument/2006/custom-properties",
    b"http://purl.oclc.org/ooxml/officeDocument/customProperties",
];
const NS_LABELINFO: &[u8] = b"http://schemas.microsoft.com/office/2020/mipLabelMetadata";
const NS_XMP_LABELS: &[&[u8]] = &[b"http://ns.adobe.com/pdfx/1.3/", b"http://www.microsoft.com/msip/1.0/"];

/// Why an XML part could not be read.
#[derive(Debug)]
pub(crate) enum XmlError {
    /// Not well-formed, or not UTF-8/UTF-16.
    Malformed(String),
    /// Nesting went past `Limits::max_xml_depth`.
    TooDeep(usize),
}

impl std::fmt::Display for XmlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            XmlError::Malformed(m) => write!(f, "{m}"),
            XmlError::TooDeep(d) => write!(f, "XML nesting deeper than {d}"),
        }
    }
}

/// What a parse saw besides its answer.
#[derive(Debug, Default)]
pub(crate) struct XmlNotes {
    /// A `<!DOCTYPE` was present (forbidden in OPC; ignored, never expanded).
    pub dtd: bool,
    /// An entity reference other than the five predefined ones was met and left unresolved.
    pub unknown_entity: bool,
}

/// Decodes a part's bytes to text: UTF-8 (with or without BOM) or UTF-16 LE/BE (BOM or a
/// leading `<` in two-byte form).
pub(crate) fn decode_text(bytes: &[u8]) -> Result<Cow<'_, str>, XmlError> {
    let utf16 = |data: &[u8], le: bool| -> Result<Cow<'static, str>, XmlError> {
        let units = data.chunks_exact(2).map(|c| if le { u16::from_le_bytes([c[0], c[1]]) } else { u16::from_be_bytes([c[0], c[1]]) });
        char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .map(Cow::Owned)
            .map_err(|_| XmlError::Malformed("invalid UTF-16".into()))
    };
    match bytes {
        [0xEF, 0xBB, 0xBF, rest @ ..] => std::str::from_utf8(rest).map(Cow::Borrowed).map_err(|_| XmlError::Malformed("invalid UTF-8".into())),
        [0xFF, 0xFE, rest @ ..] => utf16(rest, true),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, false),
        [b'<', 0, ..] => utf16(bytes, true),
        [0, b'<', ..] => utf16(bytes, false),
        _ => std::str::from_utf8(bytes).map(Cow::Borrowed).map_err(|_| XmlError::Malformed("invalid UTF-8".into())),
    }
}

/// Drives an `NsReader` over `text`, tracking depth, DTDs and text content.
struct Walker<'t> {
    reader: NsReader<&'t [u8]>,
    depth: usize,
    max_depth: usize,
    notes: XmlNotes,
}

enum Step<'t> {
    Start { ns: Option<Vec<u8>>, element: BytesStart<'t>, empty: bool },
    End,
    Text(Cow<'t, str>),
    Eof,
}

impl<'t> Walker<'t> {
    fn new(text: &'t str, limits: &Limits) -> Walker<'t> {
        let mut reader = NsReader::from_str(text);
        reader.config_mut().check_end_names = true;
        Walker { reader, depth: 0, max_depth: limits.max_xml_depth, notes: XmlNotes::default() }
    }

    fn next(&mut self) -> Result<Step<'t>, XmlError> {
        loop {
            let (ns, event) = self
                .reader
                .read_resolved_event()
                .map_err(|e| XmlError::Malformed(format!("not well-formed XML: {e}")))?;
            let ns = match ns {
                ResolveResult::Bound(ns) => Some(ns.as_ref().to_vec()),
                _ => None,
            };
            match event {
                Event::Start(element) => {
                    self.depth += 1;
                    if self.depth > self.max_depth {
                        return Err(XmlError::TooDeep(self.max_depth));
                    }
                    return Ok(Step::Start { ns, element, empty: false });
                }
                Event::Empty(element) => return Ok(Step::Start { ns, element, empty: true }),
                Event::End(_) => {
                    self.depth = self.depth.saturating_sub(1);
                    return Ok(Step::End);
                }
                Event::Text(t) => {
                    let s = t.decode().map_err(|e| XmlError::Malformed(format!("bad text: {e}")))?;
                    return Ok(Step::Text(s));
                }
                Event::CData(t) => {
                    let s = t.decode().map_err(|e| XmlError::Malformed(format!("bad CDATA: {e}")))?;
                    return Ok(Step::Text(s));
                }
                Event::GeneralRef(r) => {
                    if let Some(c) = r.resolve_char_ref().map_err(|e| XmlError::Malformed(format!("bad character reference: {e}")))? {
                        return Ok(Step::Text(Cow::Owned(c.to_string())));
                    }
                    let name = r.decode().map_err(|e| XmlError::Malformed(format!("bad entity reference: {e}")))?;
                    match quick_xml::escape::resolve_predefined_entity(&name) {
                        Some(s) => return Ok(Step::Text(Cow::Borrowed(s))),
                        None => {
                            self.notes.unknown_entity = true;
                            continue;
                        }
                    }
                }
                Event::DocType(_) => {
                    self.notes.dtd = true;
                    continue;
                }
                Event::Eof => {
                    return Ok(Step::Eof);
                }
                _ => continue,
            }
        }
    }

    /// The attribute `local` (unqualified), decoded and unescaped.
    fn attr(&mut self, element: &BytesStart<'_>, local: &[u8]) -> Result<Option<String>, XmlError> {
        for attr in element.attributes().with_checks(true) {
            let attr = attr.map_err(|e| XmlError::Malformed(format!("bad attribute: {e}")))?;
            let (ns, name) = self.reader.resolve_attribute(attr.key);
            if matches!(ns, ResolveResult::Unbound) && name.as_ref() == local {
                return Ok(Some(self.attr_value(&attr)?));
            }
        }
        Ok(None)
    }

    fn attr_value(&mut self, attr: &quick_xml::events::attributes::Attribute<'_>) -> Result<String, XmlError> {
        match attr.unescape_value() {
            Ok(v) => Ok(v.into_owned()),
            Err(quick_xml::Error::Escape(quick_xml::escape::EscapeError::UnrecognizedEntity(..))) => {
                self.notes.unknown_entity = true;
                Ok(String::from_utf8_lossy(&attr.value).into_owned())
            }
            Err(e) => Err(XmlError::Malformed(format!("bad attribute value: {e}"))),
        }
    }
}

/// One OPC relationship.
#[derive(Debug, Clone)]
pub(crate) struct Relationship {
    pub rel_type: String,
    pub target: String,
    pub external: bool,
}

pub(crate) fn parse_relationships(text: &str, limits: &Limits) -> Result<(Vec<Relationship>, XmlNotes), XmlError> {
    let mut w = Walker::new(text, limits);
    let mut rels = Vec::new();
    loop {
        match w.next()? {
            Step::Start { ns, element, .. } => {
                if ns.as_deref() == Some(NS_RELS) && element.local_name().as_ref() == b"Relationship" {
                    let rel_type = w.attr(&element, b"Type")?.unwrap_or_default();
                    let target = w.attr(&element, b"Target")?.unwrap_or_default();
                    let external = w.attr(&element, b"TargetMode")?.is_some_and(|m| m.eq_ignore_ascii_case("External"));
                    if rels.len() < limits.max_records * 64 {
                        rels.push(Relationship { rel_type, target, external });
                    }
                }
            }
            Step::Eof => break,
            _ => {}
        }
    }
    Ok((rels, w.notes))
}

/// `[Content_Types].xml`: overrides by part name and defaults by extension.
#[derive(Debug, Default)]
pub(crate) struct ContentTypes {
    pub overrides: Vec<(String, String)>,
    pub defaults: Vec<(String, String)>,
}

pub(crate) fn parse_content_types(text: &str, limits: &Limits) -> Result<(ContentTypes, XmlNotes), XmlError> {
    let mut w = Walker::new(text, limits);
    let mut ct = ContentTypes::default();
    loop {
        match w.next()? {
            Step::Start { ns, element, .. } if ns.as_deref() == Some(NS_CONTENT_TYPES) => {
                let local = element.local_name();
                if local.as_ref() == b"Override" {
                    if let (Some(part), Some(t)) = (w.attr(&element, b"PartName")?, w.attr(&element, b"ContentType")?) {
                        ct.overrides.push((part, t));
                    }
                } else if local.as_ref() == b"Default" {
                    if let (Some(ext), Some(t)) = (w.attr(&element, b"Extension")?, w.attr(&element, b"ContentType")?) {
                        ct.defaults.push((ext, t));
                    }
                }
            }
            Step::Eof => break,
            _ => {}
        }
    }
    Ok((ct, w.notes))
}

/// `docProps/custom.xml`: every `property` whose `name` is an `MSIP_Label_*` key, with the text
/// of its value element (any `vt:*` type).
pub(crate) fn parse_custom_properties(text: &str, limits: &Limits, collector: &mut PropertyCollector, ex: &mut Extraction) -> Result<XmlNotes, XmlError> {
    let mut w = Walker::new(text, limits);
    // (property name, depth at which it opened, accumulated value)
    let mut current: Option<(String, usize, String)> = None;
    loop {
        match w.next()? {
            Step::Start { ns, element, empty } => {
                let is_property = ns.as_deref().is_some_and(|n| NS_CUSTOM.contains(&n)) && element.local_name().as_ref() == b"property";
                if is_property && current.is_none() {
                    let name = w.attr(&element, b"name")?.unwrap_or_default();
                    if empty {
                        collector.add(&name, "", ex);
                    } else {
                        current = Some((name, w.depth, String::new()));
                    }
                }
            }
            Step::Text(t) => {
                if let Some((_, _, value)) = current.as_mut() {
                    if value.len() + t.len() <= limits.max_part_bytes as usize {
                        value.push_str(&t);
                    }
                }
            }
            Step::End => {
                if let Some((_, depth, _)) = &current {
                    if w.depth + 1 == *depth {
                        if let Some((name, _, value)) = current.take() {
                            collector.add(&name, &value, ex);
                        }
                    }
                }
            }
            Step::Eof => break,
        }
    }
    Ok(w.notes)
}

/// A LabelInfo `labelList` (OOXML part or CFB stream): one record per `label` element.
pub(crate) fn parse_labelinfo(text: &str, source: Source, limits: &Limits, ex: &mut Extraction) -> Result<(Vec<LabelRecord>, XmlNotes), XmlError> {
    let mut w = Walker::new(text, limits);
    let mut records: Vec<LabelRecord> = Vec::new();
    loop {
        match w.next()? {
            Step::Start { ns, element, .. } => {
                if ns.as_deref() != Some(NS_LABELINFO) || element.local_name().as_ref() != b"label" {
                    continue;
                }
                if records.len() >= limits.max_records {
                    ex.ambiguous(format!("{source}: more than {} label elements; the rest were not read", limits.max_records));
                    break;
                }
                let id_raw = w.attr(&element, b"id")?.unwrap_or_default();
                let Some(id) = normalize_guid(&id_raw) else {
                    ex.ambiguous(format!("{source}: label element with an id that is not a GUID: {:?}", crate::msip::truncate(&id_raw)));
                    continue;
                };
                let site_id = match w.attr(&element, b"siteId")? {
                    Some(raw) => {
                        let site = normalize_guid(&raw);
                        if site.is_none() {
                            ex.ambiguous(format!("{source}: label {id} has a siteId that is not a GUID"));
                        }
                        site
                    }
                    None => None,
                };
                let enabled_raw = w.attr(&element, b"enabled")?;
                let enabled = enabled_raw.as_deref().and_then(parse_bool);
                let removed_raw = w.attr(&element, b"removed")?;
                let removed = match removed_raw.as_deref() {
                    None => false,
                    Some(raw) => match parse_bool(raw) {
                        Some(v) => v,
                        None => {
                            ex.ambiguous(format!("{source}: label {id} has a removed value that is not a boolean"));
                            false
                        }
                    },
                };
                let status = if removed {
                    RecordStatus::Removed
                } else {
                    match enabled {
                        Some(true) => RecordStatus::Effective,
                        Some(false) => RecordStatus::Disabled,
                        None => {
                            ex.ambiguous(format!("{source}: label {id} has a missing or non-boolean enabled value"));
                            RecordStatus::Malformed
                        }
                    }
                };
                let method = w.attr(&element, b"method")?.filter(|m| !m.is_empty());
                let content_bits = w.attr(&element, b"contentBits")?.and_then(|v| v.trim().parse().ok());
                if let Some(site) = &site_id {
                    if records.iter().any(|r| r.site_id.as_ref() == Some(site)) {
                        ex.ambiguous(format!("{source}: tenant {site} has more than one label element"));
                    }
                }
                records.push(LabelRecord {
                    id,
                    site_id,
                    enabled,
                    removed,
                    method,
                    name: None,
                    content_bits,
                    set_date: None,
                    parent: None,
                    source,
                    status,
                });
            }
            Step::Eof => break,
            _ => {}
        }
    }
    Ok((records, w.notes))
}

/// An XMP packet: `MSIP_Label_*` properties in the pdfx (or MSIP XMP) namespace, in element form
/// (`<pdfx:MSIP_Label_…_Enabled>true</…>`) or attribute form (`pdfx:MSIP_Label_…_Enabled="true"`).
pub(crate) fn parse_xmp(text: &str, limits: &Limits, collector: &mut PropertyCollector, ex: &mut Extraction) -> Result<XmlNotes, XmlError> {
    let mut w = Walker::new(text, limits);
    let mut current: Option<(String, usize, String)> = None;
    loop {
        match w.next()? {
            Step::Start { ns, element, empty } => {
                // Attribute form.
                let mut pairs = Vec::new();
                for attr in element.attributes().with_checks(true) {
                    let attr = attr.map_err(|e| XmlError::Malformed(format!("bad attribute: {e}")))?;
                    let (attr_ns, local) = w.reader.resolve_attribute(attr.key);
                    if let ResolveResult::Bound(n) = attr_ns {
                        if NS_XMP_LABELS.contains(&n.as_ref()) {
                            let key = String::from_utf8_lossy(local.as_ref()).into_owned();
                            if crate::msip::is_msip_key(&key) {
                                let value = w.attr_value(&attr)?;
                                pairs.push((key, value));
                            }
                        }
                    }
                }
                for (k, v) in pairs {
                    collector.add(&k, &v, ex);
                }
                // Element form.
                if current.is_none() && ns.as_deref().is_some_and(|n| NS_XMP_LABELS.contains(&n)) {
                    let key = String::from_utf8_lossy(element.local_name().as_ref()).into_owned();
                    if crate::msip::is_msip_key(&key) {
                        if empty {
                            collector.add(&key, "", ex);
                        } else {
                            current = Some((key, w.depth, String::new()));
                        }
                    }
                }
            }
            Step::Text(t) => {
                if let Some((_, _, value)) = current.as_mut() {
                    if value.len() + t.len() <= limits.max_part_bytes as usize {
                        value.push_str(&t);
                    }
                }
            }
            Step::End => {
                if let Some((_, depth, _)) = &current {
                    if w.depth + 1 == *depth {
                        if let Some((key, _, value)) = current.take() {
                            collector.add(&key, &value, ex);
                        }
                    }
                }
            }
            Step::Eof => break,
        }
    }
    Ok(w.notes)
}
