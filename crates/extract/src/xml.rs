//! Namespace-aware readers for the small XML parts that carry labels: OPC relationships and
//! content types, OOXML custom properties, LabelInfo, and PDF XMP packets.
//!
//! Everything matches namespace URI + local name, never prefixes. Text arrives decoded (UTF-8 or
//! UTF-16 with BOM or detectable first character), entity and character references resolved,
//! CDATA included. A DTD is never processed: it is reported so the caller can flag ambiguity.

use crate::limits::Limits;
use crate::model::Extraction;
use crate::model::{LabelRecord, RecordStatus, Source};
use crate::msip::{normalize_guid, parse_bool, PropertyCollector};
use quick_xml::events::{BytesStart, Event};
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
        char::decode_utf16(units).collect::<Result<String, _>>().map(Cow::Owned).map_err(|_| XmlError::Malformed("invalid UTF-16".into()))
    };
    match bytes {
        [0xEF, 0xBB, 0xBF, rest @ ..] => {
            std::str::from_utf8(rest).map(Cow::Borrowed).map_err(|_| XmlError::Malformed("invalid UTF-8".into()))
        }
        [0xFF, 0xFE, rest @ ..] => utf16(rest, true),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, false),
        [b'<', 0, ..] => utf16(bytes, true),
        [0, b'<', ..] => utf16(bytes, false),
        _ => std::str::from_utf8(bytes).map(Cow::Borrowed).map_err(|_| XmlError::Malformed("invalid UTF-8".into())),
    }
}

/// Drives a quick-xml `Reader` over `text`, tracking depth, DTDs, text content and namespace
/// scopes. Scopes are kept here rather than by `NsReader` because these parts declare their
/// namespaces once, on the root: only tags that contain `xmlns` pay for a declaration scan.
struct Walker<'t> {
    reader: quick_xml::Reader<&'t [u8]>,
    depth: usize,
    max_depth: usize,
    notes: XmlNotes,
    /// In-scope declarations, innermost last: (prefix, empty for the default namespace; namespace).
    decls: Vec<(Vec<u8>, Ns)>,
    /// `decls.len()` when each open element started.
    marks: Vec<usize>,
    /// The last element was empty (`<a/>`): close its scope on the next call.
    pending_pop: bool,
}

/// The namespaces this module cares about, resolved without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    Rels,
    ContentTypes,
    Custom,
    LabelInfo,
    XmpLabels,
    Other,
}

fn classify(ns: &[u8]) -> Ns {
    if ns == NS_RELS {
        Ns::Rels
    } else if ns == NS_CONTENT_TYPES {
        Ns::ContentTypes
    } else if NS_CUSTOM.contains(&ns) {
        Ns::Custom
    } else if ns == NS_LABELINFO {
        Ns::LabelInfo
    } else if NS_XMP_LABELS.contains(&ns) {
        Ns::XmpLabels
    } else {
        Ns::Other
    }
}

enum Step<'t> {
    Start { ns: Ns, element: BytesStart<'t>, empty: bool },
    End,
    Text(Cow<'t, str>),
    Eof,
}

impl<'t> Walker<'t> {
    fn new(text: &'t str, limits: &Limits) -> Walker<'t> {
        let mut reader = quick_xml::Reader::from_str(text);
        reader.config_mut().check_end_names = true;
        Walker {
            reader,
            depth: 0,
            max_depth: limits.max_xml_depth,
            notes: XmlNotes::default(),
            decls: Vec::new(),
            marks: Vec::new(),
            pending_pop: false,
        }
    }

    /// Opens an element's scope (its `xmlns` declarations) and resolves its name's namespace.
    fn open_scope(&mut self, element: &BytesStart<'_>) -> Result<Ns, XmlError> {
        self.marks.push(self.decls.len());
        static XMLNS: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
            std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"xmlns"));
        if XMLNS.find(element.as_ref()).is_some() {
            for attr in element.attributes().with_checks(true) {
                let attr = attr.map_err(|e| XmlError::Malformed(format!("bad attribute: {e}")))?;
                let key = attr.key;
                let prefix: Option<Vec<u8>> = match key.prefix() {
                    None if key.local_name().as_ref() == b"xmlns" => Some(Vec::new()),
                    Some(p) if p.as_ref() == b"xmlns" => Some(key.local_name().as_ref().to_vec()),
                    _ => None,
                };
                if let Some(prefix) = prefix {
                    let uri = self.attr_value(attr)?;
                    self.decls.push((prefix, classify(uri.as_bytes())));
                }
            }
        }
        let name = element.name();
        Ok(self.lookup(name.prefix().map(|p| p.into_inner()).unwrap_or(b"")))
    }

    /// The namespace bound to `prefix` (empty: the default namespace) in the current scope.
    fn lookup(&self, prefix: &[u8]) -> Ns {
        self.decls.iter().rev().find(|(p, _)| p.as_slice() == prefix).map_or(Ns::Other, |(_, ns)| *ns)
    }

    fn close_scope(&mut self) {
        if let Some(mark) = self.marks.pop() {
            self.decls.truncate(mark);
        }
    }

    fn next(&mut self) -> Result<Step<'t>, XmlError> {
        if std::mem::take(&mut self.pending_pop) {
            self.close_scope();
        }
        loop {
            let event = self.reader.read_event().map_err(|e| XmlError::Malformed(format!("not well-formed XML: {e}")))?;
            match event {
                Event::Start(element) => {
                    self.depth += 1;
                    if self.depth > self.max_depth {
                        return Err(XmlError::TooDeep(self.max_depth));
                    }
                    let ns = self.open_scope(&element)?;
                    return Ok(Step::Start { ns, element, empty: false });
                }
                Event::Empty(element) => {
                    let ns = self.open_scope(&element)?;
                    self.pending_pop = true;
                    return Ok(Step::Start { ns, element, empty: true });
                }
                Event::End(_) => {
                    self.depth = self.depth.saturating_sub(1);
                    self.close_scope();
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

    /// The unqualified attributes named in `names`, decoded and unescaped, in one pass.
    fn attrs<'e, const N: usize>(&mut self, element: &'e BytesStart<'_>, names: [&[u8]; N]) -> Result<[Option<Cow<'e, str>>; N], XmlError> {
        let mut out: [Option<Cow<'e, str>>; N] = std::array::from_fn(|_| None);
        for attr in element.attributes().with_checks(true) {
            let attr = attr.map_err(|e| XmlError::Malformed(format!("bad attribute: {e}")))?;
            if attr.key.prefix().is_some() {
                continue;
            }
            if let Some(i) = names.iter().position(|n| *n == attr.key.local_name().as_ref()) {
                out[i] = Some(self.attr_value(attr)?);
            }
        }
        Ok(out)
    }

    fn attr_value<'e>(&mut self, attr: quick_xml::events::attributes::Attribute<'e>) -> Result<Cow<'e, str>, XmlError> {
        match attr.unescape_value() {
            Ok(v) => Ok(v),
            Err(quick_xml::Error::Escape(quick_xml::escape::EscapeError::UnrecognizedEntity(..))) => {
                self.notes.unknown_entity = true;
                Ok(Cow::Owned(String::from_utf8_lossy(&attr.value).into_owned()))
            }
            Err(e) => Err(XmlError::Malformed(format!("bad attribute value: {e}"))),
        }
    }
}

/// The text content of one element (and its descendants), collected between its start and end.
#[derive(Default)]
struct ElementText {
    /// (key, depth at which the element opened, accumulated text)
    open: Option<(String, usize, String)>,
}

impl ElementText {
    fn is_idle(&self) -> bool {
        self.open.is_none()
    }

    fn start(&mut self, key: String, depth: usize) {
        self.open = Some((key, depth, String::new()));
    }

    fn text(&mut self, t: &str, limits: &Limits) {
        if let Some((_, _, value)) = self.open.as_mut() {
            if value.len() + t.len() <= limits.max_part_bytes as usize {
                value.push_str(t);
            }
        }
    }

    /// Called on every end tag (with the depth after it closed): the key and text once the
    /// collected element itself closes.
    fn end(&mut self, depth_after: usize) -> Option<(String, String)> {
        match &self.open {
            Some((_, depth, _)) if depth_after + 1 == *depth => self.open.take().map(|(k, _, v)| (k, v)),
            _ => None,
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
            Step::Start { ns: Ns::Rels, element, .. } if element.local_name().as_ref() == b"Relationship" => {
                let [rel_type, target, mode] = w.attrs(&element, [b"Type", b"Target", b"TargetMode"])?;
                let external = mode.is_some_and(|m| m.eq_ignore_ascii_case("External"));
                if rels.len() < limits.max_records * 64 {
                    rels.push(Relationship {
                        rel_type: rel_type.map(Cow::into_owned).unwrap_or_default(),
                        target: target.map(Cow::into_owned).unwrap_or_default(),
                        external,
                    });
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
    // Fast path for the common case (no references, no DTD): a large part (one Override per
    // slide or sheet) of which only a few elements matter. Find those by their content-type
    // suffix, then parse each enclosing element properly. Anything unusual takes the full parse.
    if !text.contains('&') && !text.contains("<!") {
        let lower = text.to_ascii_lowercase();
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        for needle in ["main+xml", ".main\"", ".main'", "custom-properties+xml", "classificationlabels+xml"] {
            for hit in memchr::memmem::find_iter(lower.as_bytes(), needle.as_bytes()) {
                let start = lower[..hit].rfind('<');
                let end = lower[hit..].find('>').map(|e| hit + e + 1);
                if let (Some(s), Some(e)) = (start, end) {
                    if !ranges.contains(&(s, e)) {
                        ranges.push((s, e));
                    }
                }
            }
        }
        ranges.sort_unstable();
        let mut fragments = String::with_capacity(ranges.iter().map(|(s, e)| e - s).sum::<usize>() + 16);
        for (s, e) in ranges {
            if text[s..e].ends_with("/>") {
                fragments.push_str(&text[s..e]);
            }
        }
        if let Ok(result) = parse_content_types_full(&fragments, limits) {
            return Ok(result);
        }
    }
    parse_content_types_full(text, limits)
}

fn parse_content_types_full(text: &str, limits: &Limits) -> Result<(ContentTypes, XmlNotes), XmlError> {
    // A plain (non-namespace) reader: this part can be long (one Override per slide or sheet)
    // and only two element names matter.
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut ct = ContentTypes::default();
    let mut notes = XmlNotes::default();
    let mut depth = 0usize;
    loop {
        let event = reader.read_event().map_err(|e| XmlError::Malformed(format!("not well-formed XML: {e}")))?;
        let element = match event {
            Event::Start(e) => {
                depth += 1;
                if depth > limits.max_xml_depth {
                    return Err(XmlError::TooDeep(limits.max_xml_depth));
                }
                e
            }
            Event::Empty(e) => e,
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                continue;
            }
            Event::DocType(_) => {
                notes.dtd = true;
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let local = element.local_name();
        let (key, list) = match local.as_ref() {
            b"Override" => (&b"PartName"[..], &mut ct.overrides),
            b"Default" => (&b"Extension"[..], &mut ct.defaults),
            _ => continue,
        };
        let mut name = None;
        let mut content_type = None;
        for attr in element.attributes() {
            let attr = attr.map_err(|e| XmlError::Malformed(format!("bad attribute: {e}")))?;
            let k = attr.key.as_ref();
            if k == key {
                name = Some(attr.unescape_value().map_err(|e| XmlError::Malformed(format!("bad attribute value: {e}")))?);
            } else if k == b"ContentType" {
                content_type = Some(attr.unescape_value().map_err(|e| XmlError::Malformed(format!("bad attribute value: {e}")))?);
            }
        }
        if let (Some(name), Some(t)) = (name, content_type) {
            // Only main-document and label content types matter; skip the rest unallocated.
            let t = t.trim();
            let ends =
                |suffix: &str| t.len() >= suffix.len() && t.as_bytes()[t.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes());
            let interesting = ends(".main+xml") || ends(".main") || ends("custom-properties+xml") || ends("classificationlabels+xml");
            if interesting && list.len() < limits.max_records * 64 {
                list.push((name.into_owned(), t.to_ascii_lowercase()));
            }
        }
    }
    Ok((ct, notes))
}

/// `docProps/custom.xml`: every `property` whose `name` is an `MSIP_Label_*` key, with the text
/// of its value element (any `vt:*` type).
pub(crate) fn parse_custom_properties(
    text: &str,
    limits: &Limits,
    collector: &mut PropertyCollector,
    ex: &mut Extraction,
) -> Result<XmlNotes, XmlError> {
    let mut w = Walker::new(text, limits);
    let mut current = ElementText::default();
    loop {
        match w.next()? {
            Step::Start { ns, element, empty } => {
                let is_property = ns == Ns::Custom && element.local_name().as_ref() == b"property";
                if is_property && current.is_idle() {
                    let [name] = w.attrs(&element, [b"name"])?;
                    let name = name.map(Cow::into_owned).unwrap_or_default();
                    if empty {
                        collector.add(&name, "", ex);
                    } else {
                        current.start(name, w.depth);
                    }
                }
            }
            Step::Text(t) => current.text(&t, limits),
            Step::End => {
                if let Some((name, value)) = current.end(w.depth) {
                    collector.add(&name, &value, ex);
                }
            }
            Step::Eof => break,
        }
    }
    Ok(w.notes)
}

/// A LabelInfo `labelList` (OOXML part or CFB stream): one record per `label` element.
pub(crate) fn parse_labelinfo(
    text: &str,
    source: Source,
    limits: &Limits,
    ex: &mut Extraction,
) -> Result<(Vec<LabelRecord>, XmlNotes), XmlError> {
    let mut w = Walker::new(text, limits);
    let mut records: Vec<LabelRecord> = Vec::new();
    loop {
        match w.next()? {
            Step::Start { ns, element, .. } => {
                if ns != Ns::LabelInfo || element.local_name().as_ref() != b"label" {
                    continue;
                }
                let [id_raw, site_raw, enabled_raw, removed_raw, method, content_bits] =
                    w.attrs(&element, [b"id", b"siteId", b"enabled", b"removed", b"method", b"contentBits"])?;
                if records.len() >= limits.max_records {
                    ex.ambiguous(format!("{source}: more than {} label elements; the rest were not read", limits.max_records));
                    break;
                }
                let id_raw = id_raw.unwrap_or_default();
                let Some(id) = normalize_guid(&id_raw) else {
                    ex.ambiguous(format!("{source}: label element with an id that is not a GUID: {:?}", crate::msip::truncate(&id_raw)));
                    continue;
                };
                let site_id = match site_raw {
                    Some(raw) => {
                        let site = normalize_guid(&raw);
                        if site.is_none() {
                            ex.ambiguous(format!("{source}: label {id} has a siteId that is not a GUID"));
                        }
                        site
                    }
                    None => None,
                };
                let enabled = enabled_raw.as_deref().and_then(parse_bool);
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
                let method = method.filter(|m| !m.is_empty()).map(Cow::into_owned);
                let content_bits = content_bits.and_then(|v| v.trim().parse().ok());
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
    let mut current = ElementText::default();
    loop {
        match w.next()? {
            Step::Start { ns, element, empty } => {
                // Attribute form.
                let mut pairs = Vec::new();
                for attr in element.attributes().with_checks(true) {
                    let attr = attr.map_err(|e| XmlError::Malformed(format!("bad attribute: {e}")))?;
                    if attr.key.prefix().is_none() {
                        continue;
                    }
                    let prefix = attr.key.prefix().map(|p| p.into_inner()).unwrap_or(b"");
                    if prefix != b"xmlns" && w.lookup(prefix) == Ns::XmpLabels {
                        let key = String::from_utf8_lossy(attr.key.local_name().into_inner()).into_owned();
                        if crate::msip::is_msip_key(&key) {
                            let value = w.attr_value(attr)?.into_owned();
                            pairs.push((key, value));
                        }
                    }
                }
                for (k, v) in pairs {
                    collector.add(&k, &v, ex);
                }
                // Element form.
                if current.is_idle() && ns == Ns::XmpLabels {
                    let key = String::from_utf8_lossy(element.local_name().as_ref()).into_owned();
                    if crate::msip::is_msip_key(&key) {
                        if empty {
                            collector.add(&key, "", ex);
                        } else {
                            current.start(key, w.depth);
                        }
                    }
                }
            }
            Step::Text(t) => current.text(&t, limits),
            Step::End => {
                if let Some((name, value)) = current.end(w.depth) {
                    collector.add(&name, &value, ex);
                }
            }
            Step::Eof => break,
        }
    }
    Ok(w.notes)
}
