//! PDF: the effective document information dictionary and catalog XMP metadata, reached through
//! the cross-reference chain (classic tables, xref streams, hybrid files, object streams,
//! incremental updates), reading only the trailer and the few objects needed
//! (label-formats.md §7).
//!
//! Older revisions are read too, so that labels an incremental update dropped are reported as
//! `superseded` records rather than silently ignored or wrongly enforced.

use crate::error::ExtractError;
use crate::inflate::{InflateError, Inflater};
use crate::input::Input;
use crate::limits::Limits;
use crate::model::{Extraction, FileKind, Flag, LabelRecord, RecordStatus, Source};
use crate::msip::PropertyCollector;
use crate::pdf_crypt::{Crypt, Outcome};
use crate::pdf_syntax::{decode_text_string, dict_get, Dict, Obj, Parser, SyntaxError};
use crate::xml;
use std::collections::HashMap;

const TAIL_SEARCH: u64 = 64 * 1024;
const FIRST_WINDOW: usize = 4096;

#[path = "pdf_text.rs"]
pub(crate) mod text;
#[path = "pdf_update.rs"]
pub(crate) mod update;

fn malformed(reason: impl Into<String>) -> ExtractError {
    ExtractError::malformed("pdf", reason)
}

/// Where an object lives, per one cross-reference section.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Loc {
    Free,
    Offset(u64),
    InStream(u32, u32),
}

enum Table {
    /// Classic table: subsections of (first object, count, file offset of first 20-byte entry).
    Classic(Vec<(u32, u32, u64)>),
    /// Xref stream: rows decoded on demand, field widths, and (first, count) index pairs.
    Stream { rows: Box<Rows>, widths: [usize; 3], index: Vec<(u32, u32)> },
    /// The `/XRefStm` companion of a hybrid file, not read until a lookup reaches it.
    Pending(u64),
    /// Reconstructed by scanning a damaged file.
    Scanned(HashMap<u32, u64>),
}

/// The decoded rows of an xref stream, inflated only as far as lookups need (the rows of the
/// objects that matter are usually near the start; a large file's stream is never decoded whole
/// unless a lookup needs its end).
struct Rows {
    inflater: Option<Inflater>,
    raw: Vec<u8>,
    predictor: Option<(Dict, usize)>,
    decoded: Vec<u8>,
    complete: bool,
}

impl Rows {
    /// At least `len` decoded bytes (fewer only when the stream is shorter).
    fn need(&mut self, len: usize) -> Result<&[u8], ExtractError> {
        if self.decoded.len() >= len || self.complete {
            return Ok(&self.decoded);
        }
        let raw_len = match &self.predictor {
            Some((_, columns)) => len.div_ceil(*columns) * (columns + 1),
            None => len,
        };
        let raw: &[u8] = match &mut self.inflater {
            Some(inf) => {
                // Grow geometrically so repeated lookups cost O(n) in total.
                let want = raw_len.max(self.decoded.len().saturating_mul(2)).max(4096);
                let out = inf.fill(want).map_err(|e| match e {
                    InflateError::TooLarge => ExtractError::limit("max_part_bytes", 0),
                    InflateError::Corrupt => malformed("xref stream does not inflate"),
                })?;
                if out.len() < want {
                    self.complete = true;
                }
                out
            }
            None => {
                self.complete = true;
                &self.raw
            }
        };
        self.decoded = match &self.predictor {
            Some((params, _)) => apply_predictor(raw.to_vec(), params)?,
            None => raw.to_vec(),
        };
        Ok(&self.decoded)
    }
}

/// A decoded object stream: its data, the (object number, offset) header, and where the first
/// object starts.
struct ObjectStream {
    data: Vec<u8>,
    offsets: Vec<(u32, usize)>,
    first: usize,
}

/// A stream's undecoded bytes with its filter names and first decode parameters.
struct RawStream {
    data: Vec<u8>,
    filters: Vec<Vec<u8>>,
    /// Each filter's decode parameters.
    params: Vec<Option<Dict>>,
    /// The length came from `/Length` (not from finding `endstream`).
    declared_length: bool,
}

struct Section {
    table: Table,
    trailer: Dict,
    /// True for a section that starts a revision (not the /XRefStm companion of a hybrid file).
    revision_start: bool,
}

struct Doc<'i> {
    input: &'i mut dyn Input,
    limits: Limits,
    /// Newest first.
    sections: Vec<Section>,
    objstm_cache: HashMap<u32, ObjectStream>,
    visited: usize,
    header_offset: u64,
    /// Label records already read from the object at a location: older revisions usually point
    /// at the very same Info dictionary and XMP stream, which need not be parsed again.
    memo: HashMap<(u8, u64, u32), Vec<LabelRecord>>,
    /// The standard security handler's key, when the empty user password opens the file.
    crypt: Option<Crypt>,
    /// The encryption dictionary's object: its strings are never encrypted.
    encrypt_object: Option<u32>,
}

/// A stream object: its dictionary, where its data starts, and its identity (the key of its
/// encryption).
struct StreamRef {
    dict: Dict,
    data_start: u64,
    num: u32,
    generation: u16,
}

/// Where `%PDF-` starts in a file whose first bytes are something else but whose end is a PDF's
/// (`startxref` in its last 4 KiB): readers that locate a document from its end (pdf.js, and
/// Acrobat within its first 1 KiB) open it whatever precedes the header. Searched up to
/// `max_pdf_reconstruct_bytes`.
pub(crate) fn header_behind_prefix(input: &mut dyn Input, limits: &Limits) -> Result<Option<u64>, ExtractError> {
    let len = input.len();
    let tail_len = len.min(4096);
    let tail = input.read_upto(len - tail_len, tail_len as usize)?;
    if memchr::memmem::rfind(&tail, b"startxref").is_none() {
        return Ok(None);
    }
    let eof_marker = memchr::memmem::rfind(&tail, b"%%EOF").is_some();
    const STEP: u64 = 1 << 20;
    let end = len.min(limits.max_pdf_reconstruct_bytes);
    let mut at = 0u64;
    while at < end {
        // Overlap by the needle's length so a header across two windows is found.
        let window = input.read_upto(at, (STEP + 4).min(end - at + 4) as usize)?;
        if let Some(p) = memchr::memmem::find(&window, b"%PDF-") {
            return Ok(Some(at + p as u64));
        }
        at += STEP;
    }
    // No header at all, but a PDF's end and objects from the start: pdf.js opens that too.
    let head = input.read_upto(0, 64 * 1024)?;
    if eof_marker && memchr::memmem::find(&head, b" obj").is_some() {
        return Ok(Some(0));
    }
    Ok(None)
}

/// Opens a document: its cross-reference chain (rebuilt by scanning when damaged) and, for a
/// file encrypted with an empty user password, its key.
fn open<'i>(input: &'i mut dyn Input, limits: &Limits, header_offset: u64, ex: &mut Extraction) -> Result<Doc<'i>, ExtractError> {
    let mut doc = Doc {
        input,
        limits: limits.clone(),
        sections: Vec::new(),
        objstm_cache: HashMap::new(),
        visited: 0,
        header_offset,
        memo: HashMap::new(),
        crypt: None,
        encrypt_object: None,
    };
    if let Err(e) = doc.load_xref_chain(ex) {
        match e {
            ExtractError::LimitExceeded { .. } | ExtractError::Io(_) => return Err(e),
            ExtractError::Malformed { reason, .. } => {
                ex.ambiguous(format!("pdf: cross-reference data damaged ({reason}); objects located by scanning"));
                doc.sections.clear();
                doc.reconstruct()?;
            }
        }
    }
    doc.unlock(ex)?;
    Ok(doc)
}

/// A file attached to a PDF.
#[derive(Debug)]
pub struct PdfAttachment {
    /// Its name as the file specification gives it (`/UF`, else `/F`).
    pub name: String,
    /// Its decoded bytes (at most the cap given), or why they could not be read.
    pub data: Result<Vec<u8>, ExtractError>,
}

/// Every file attached to a PDF as its readers list them: the `/EmbeddedFiles` name tree (also
/// what a portfolio shows), `/FileAttachment` annotations on any page, and associated files
/// (`/AF`) of the catalog and pages. Decrypted when the empty user password opens the file.
/// At most `max_attachments`, each at most `max_bytes` decoded and `max_total_bytes` in all.
pub fn pdf_attachments(
    input: &mut dyn Input,
    limits: &Limits,
    max_bytes: u64,
    max_attachments: usize,
    max_total_bytes: u64,
) -> Result<Vec<PdfAttachment>, ExtractError> {
    let head = input.read_upto(0, 1024)?.into_owned();
    let header_offset = match memchr::memmem::find(&head, b"%PDF-") {
        Some(at) => at as u64,
        None => header_behind_prefix(input, limits)?.ok_or_else(|| malformed("no %PDF- header"))?,
    };
    let mut scratch = Extraction::new(FileKind::Pdf);
    let mut doc = open(input, limits, header_offset, &mut scratch)?;
    // Walking every page costs an object or two per page: a wider budget than the labels need.
    doc.limits.max_pdf_objects = limits.max_pdf_objects.saturating_mul(16);
    doc.attachments(max_bytes, max_attachments, max_total_bytes)
}

/// Whether the end of some data (its last 4 KiB are looked at) is a PDF's: `startxref`.
pub(crate) fn ends_like_pdf(tail: &[u8]) -> bool {
    memchr::memmem::rfind(&tail[tail.len().saturating_sub(4096)..], b"startxref").is_some()
}

pub(crate) fn extract(input: &mut dyn Input, limits: &Limits, header_offset: u64) -> Result<Extraction, ExtractError> {
    let mut ex = Extraction::new(FileKind::Pdf);
    let mut doc = open(input, limits, header_offset, &mut ex)?;

    // Revision boundaries: index of the first section of each revision, newest first.
    let revisions: Vec<usize> = doc.sections.iter().enumerate().filter(|(_, s)| s.revision_start).map(|(i, _)| i).collect();
    let mut current = Vec::new();
    let mut older = Vec::new();
    for (n, &start) in revisions.iter().enumerate() {
        let records = doc.labels_as_of(start, n == 0, &mut ex)?;
        if n == 0 {
            current = records;
        } else {
            older.extend(records);
        }
    }
    // A record an older revision also states is the same label; only what the newest revision
    // no longer states is superseded.
    for mut r in older {
        let restated = current.iter().any(|c| c.id == r.id && c.source == r.source && c.enabled == r.enabled);
        let dup = ex.records.iter().any(|c: &LabelRecord| c.id == r.id && c.source == r.source && c.status == RecordStatus::Superseded);
        if !restated && !dup && r.enabled == Some(true) {
            r.status = RecordStatus::Superseded;
            ex.records.push(r);
        }
    }
    let mut all = current;
    all.append(&mut ex.records);
    all.truncate(limits.max_records);
    ex.records = all;
    ex.finalize();
    Ok(ex)
}

impl Doc<'_> {
    /// The file specifications a reader lists as attachments, then their files.
    fn attachments(&mut self, max_bytes: u64, max_count: usize, max_total: u64) -> Result<Vec<PdfAttachment>, ExtractError> {
        let Some(catalog) = self.catalog()? else { return Ok(Vec::new()) };

        let mut specs: Vec<Obj> = Vec::new();
        if let Some(names) = dict_get(&catalog, b"Names").cloned() {
            if let Some(Obj::Dict(names)) = self.lenient_deref(&names, 0)? {
                if let Some(tree) = dict_get(&names, b"EmbeddedFiles").cloned() {
                    self.name_tree_values(&tree, &mut specs, max_count)?;
                }
            }
        }
        if let Some(af) = dict_get(&catalog, b"AF").cloned() {
            self.array_items(&af, &mut specs)?;
        }
        if let Some(pages) = dict_get(&catalog, b"Pages").cloned() {
            self.page_attachments(&pages, &mut specs, max_count)?;
        }

        // The files the specifications name, in order, each stream once.
        let mut named: Vec<(String, u32)> = Vec::new();
        for spec in specs {
            let Some(Obj::Dict(spec)) = self.lenient_deref(&spec, 0)? else { continue };
            let name = [b"UF".as_slice(), b"F", b"Unix", b"DOS", b"Mac"]
                .iter()
                .find_map(|k| match dict_get(&spec, k) {
                    Some(Obj::Str(s)) if !s.is_empty() => Some(decode_text_string(s)),
                    _ => None,
                })
                .map(|n| n.rsplit(['/', '\\']).next().unwrap_or_default().to_string())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "(attachment)".into());
            let Some(ef) = dict_get(&spec, b"EF").cloned() else { continue };
            let Some(Obj::Dict(ef)) = self.lenient_deref(&ef, 0)? else { continue };
            // Any platform's entry is a file a reader (qpdf, pdf.js) hands out.
            for key in [b"UF".as_slice(), b"F", b"Unix", b"DOS", b"Mac"] {
                if let Some(&Obj::Ref(n, _)) = dict_get(&ef, key) {
                    if !named.iter().any(|(_, m)| *m == n) {
                        named.push((name.clone(), n));
                    }
                }
            }
            if named.len() > max_count {
                return Err(ExtractError::limit("max_members", max_count as u64));
            }
        }

        let mut out = Vec::new();
        let mut total = 0u64;
        let mut push = |out: &mut Vec<PdfAttachment>, name: String, data: Result<Vec<u8>, ExtractError>| {
            let data = data.map_err(|e| match e {
                ExtractError::LimitExceeded { limit: "max_part_bytes", .. } => ExtractError::limit("max_inner_bytes", max_bytes),
                other => other,
            });
            total = total.saturating_add(data.as_ref().map_or(0, |d| d.len() as u64));
            if total > max_total {
                return Err(ExtractError::limit("max_expanded_bytes", max_total));
            }
            if out.len() >= max_count {
                return Err(ExtractError::limit("max_members", max_count as u64));
            }
            out.push(PdfAttachment { name, data });
            Ok(())
        };
        for (name, n) in &named {
            let data = match self.resolve_stream_from(*n, 0) {
                Ok(Some(stream)) => self.stream_data_capped(&stream, max_bytes),
                Ok(None) => Err(malformed(format!("attachment {name}: object {n} is no stream"))),
                Err(e @ ExtractError::Malformed { .. }) => Err(e),
                Err(e) => return Err(e),
            };
            push(&mut out, name.clone(), data)?;
        }

        // Embedded-file streams wherever else they sit (rich media, screen renditions, launch
        // actions, form XObjects' associated files, page-piece data, an earlier revision): a
        // stream's dictionary is never compressed or encrypted, so its type is in plain sight.
        for (offset, n) in self.typed_embedded_files()? {
            if named.iter().any(|(_, m)| *m == n) {
                continue;
            }
            let stream = match self.parse_indirect_at(offset) {
                Ok((num, generation, Obj::Dict(dict), Some(data_start))) => StreamRef { dict, data_start, num, generation },
                Ok(_) | Err(ExtractError::Malformed { .. }) => continue,
                Err(e) => return Err(e),
            };
            let data = self.stream_data_capped(&stream, max_bytes);
            push(&mut out, format!("(embedded file, object {n})"), data)?;
        }
        Ok(out)
    }

    /// Objects whose dictionary says `/Type /EmbeddedFile`, found by scanning the file (at most
    /// `max_pdf_reconstruct_bytes` of it): (offset of `n g obj`, n), one per object number,
    /// the last definition in the file first.
    fn typed_embedded_files(&mut self) -> Result<Vec<(u64, u32)>, ExtractError> {
        const STEP: u64 = 1 << 20;
        const BACK: u64 = 4096;
        let len = self.input.len().min(self.limits.max_pdf_reconstruct_bytes);
        let mut hits = Vec::new();
        let mut at = 0u64;
        while at < len {
            let window = self.input.read_upto(at, (STEP + 16).min(len - at) as usize)?;
            for p in memchr::memmem::find_iter(&window, b"/EmbeddedFile") {
                // `/EmbeddedFiles` is the name tree's key, not a type.
                if window.get(p + 13).is_none_or(|&b| b.is_ascii_alphanumeric() || b == b'#') || (p as u64) >= STEP {
                    continue;
                }
                hits.push(at + p as u64);
            }
            at += STEP;
        }
        let mut found: Vec<(u64, u32)> = Vec::new();
        for hit in hits.into_iter().rev() {
            if found.len() > 4 * self.limits.max_pdf_objects {
                return Err(ExtractError::limit("max_pdf_objects", self.limits.max_pdf_objects as u64));
            }
            let from = hit.saturating_sub(BACK);
            let before = self.input.read_at(from, (hit - from) as usize, "pdf")?.into_owned();
            let Some(obj_at) = memchr::memmem::rfind(&before, b"obj") else { continue };
            let Some(i) = object_number_start(&before[..obj_at]) else { continue };
            let mut p = Parser::new(&before[i..], 2);
            let Ok(n) = p.parse_u64() else { continue };
            let Ok(n) = u32::try_from(n) else { continue };
            if !found.iter().any(|(_, m)| *m == n) {
                found.push((from + i as u64, n));
            }
        }
        Ok(found)
    }

    /// The values of a name tree (`/Names` pairs at the leaves, `/Kids` above), bounded in depth
    /// and count; loops end at the object budget.
    fn name_tree_values(&mut self, node: &Obj, out: &mut Vec<Obj>, max_count: usize) -> Result<(), ExtractError> {
        let mut stack = vec![(node.clone(), 0u32)];
        let mut seen: Vec<u32> = Vec::new();
        while let Some((node, depth)) = stack.pop() {
            if depth > 256 {
                return Err(ExtractError::limit("max_pdf_depth", 256));
            }
            // A node reached twice (a loop, or kids shared) is read once.
            if let Obj::Ref(n, _) = node {
                if seen.contains(&n) {
                    continue;
                }
                seen.push(n);
            }
            let Some(Obj::Dict(node)) = self.lenient_deref(&node, 0)? else { continue };
            if let Some(names) = dict_get(&node, b"Names").cloned() {
                if let Some(Obj::Array(pairs)) = self.lenient_deref(&names, 0)? {
                    for pair in pairs.chunks(2) {
                        if let [_, value] = pair {
                            out.push(value.clone());
                        }
                    }
                }
            }
            if out.len() > max_count.saturating_mul(4) {
                return Err(ExtractError::limit("max_members", max_count as u64));
            }
            if let Some(kids) = dict_get(&node, b"Kids").cloned() {
                if let Some(Obj::Array(kids)) = self.lenient_deref(&kids, 0)? {
                    stack.extend(kids.into_iter().rev().map(|k| (k, depth + 1)));
                }
            }
        }
        Ok(())
    }

    fn array_items(&mut self, array: &Obj, out: &mut Vec<Obj>) -> Result<(), ExtractError> {
        if let Some(Obj::Array(items)) = self.lenient_deref(array, 0)? {
            out.extend(items);
        }
        Ok(())
    }

    /// File specifications of `/FileAttachment` annotations and `/AF` entries on every page.
    fn page_attachments(&mut self, pages: &Obj, out: &mut Vec<Obj>, max_count: usize) -> Result<(), ExtractError> {
        self.walk_pages(pages.clone(), |doc, page, _| {
            if let Some(af) = dict_get(&page, b"AF").cloned() {
                doc.array_items(&af, out)?;
            }
            let Some(annots) = dict_get(&page, b"Annots").cloned() else { return Ok(true) };
            let Some(Obj::Array(annots)) = doc.lenient_deref(&annots, 0)? else { return Ok(true) };
            for annot in annots {
                // Most annotations are links and widgets: a direct dictionary or one object each.
                let Some(Obj::Dict(annot)) = doc.lenient_deref(&annot, 0)? else { continue };
                // A file attachment's /FS; associated files on any annotation.
                if let Some(fs) = dict_get(&annot, b"FS") {
                    out.push(fs.clone());
                }
                if let Some(af) = dict_get(&annot, b"AF").cloned() {
                    doc.array_items(&af, out)?;
                }
                if out.len() > max_count.saturating_mul(4) {
                    return Err(ExtractError::limit("max_members", max_count as u64));
                }
            }
            Ok(true)
        })
    }

    /// Every leaf of the page tree under `pages`, in order, with the `/Resources` it inherits,
    /// handed to `visit` until it answers false. A node referenced twice is visited once;
    /// nesting is bounded.
    fn walk_pages<F>(&mut self, pages: Obj, mut visit: F) -> Result<(), ExtractError>
    where
        F: FnMut(&mut Self, Dict, Option<Obj>) -> Result<bool, ExtractError>,
    {
        let mut stack = vec![(pages, None::<Obj>, 0u32)];
        let mut seen = std::collections::HashSet::new();
        while let Some((node, inherited, depth)) = stack.pop() {
            if depth > 256 {
                return Err(ExtractError::limit("max_pdf_depth", 256));
            }
            if let Obj::Ref(n, _) = node {
                if !seen.insert(n) {
                    continue;
                }
            }
            let Some(Obj::Dict(node)) = self.lenient_deref(&node, 0)? else { continue };
            let resources = dict_get(&node, b"Resources").cloned().or(inherited);
            if let Some(kids) = dict_get(&node, b"Kids").cloned() {
                if let Some(Obj::Array(kids)) = self.lenient_deref(&kids, 0)? {
                    stack.extend(kids.into_iter().rev().map(|k| (k, resources.clone(), depth + 1)));
                }
                continue;
            }
            if !visit(self, node, resources)? {
                break;
            }
        }
        Ok(())
    }

    /// A key of the trailer of the revision whose newest section is `from`; in a hybrid file
    /// the companion cross-reference stream's dictionary fills in.
    fn trailer_value(&self, from: usize, key: &[u8]) -> Option<Obj> {
        let section = self.sections.get(from)?;
        dict_get(&section.trailer, key)
            .cloned()
            .or_else(|| self.sections.get(from + 1).filter(|s| !s.revision_start).and_then(|c| dict_get(&c.trailer, key).cloned()))
    }

    /// The newest revision's catalog, when it is a dictionary.
    fn catalog(&mut self) -> Result<Option<Dict>, ExtractError> {
        let Some(root) = self.trailer_value(0, b"Root") else { return Ok(None) };
        match self.lenient_deref(&root, 0)? {
            Some(Obj::Dict(catalog)) => Ok(Some(catalog)),
            _ => Ok(None),
        }
    }

    /// `deref` for the attachment walk: an unreadable object is skipped (real files carry damaged
    /// annotations and page nodes that readers skip too); limits still stop the walk.
    fn lenient_deref(&mut self, obj: &Obj, from: usize) -> Result<Option<Obj>, ExtractError> {
        match self.deref(obj, from) {
            Err(ExtractError::Malformed { .. }) => Ok(None),
            other => other,
        }
    }

    /// Sets up decryption when the newest trailer's encryption dictionary opens with the empty
    /// user password (an owner-password-only file); otherwise the file stays locked.
    fn unlock(&mut self, ex: &mut Extraction) -> Result<(), ExtractError> {
        let Some(encrypt) = self.trailer_value(0, b"Encrypt") else { return Ok(()) };
        if let Obj::Ref(n, _) = encrypt {
            self.encrypt_object = Some(n);
        }
        let dict = match self.deref(&encrypt, 0) {
            Ok(Some(Obj::Dict(d))) => d,
            Ok(_) | Err(ExtractError::Malformed { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        if dict_get(&dict, b"Filter").and_then(Obj::as_name) == Some(b"MicrosoftIRMServices") {
            return Ok(());
        }
        let id0 = match self.trailer_value(0, b"ID") {
            Some(Obj::Array(ids)) => match ids.first() {
                Some(Obj::Str(s)) => s.clone(),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        match crate::pdf_crypt::open_with_empty_password(&dict, &id0) {
            Outcome::Open(crypt) => {
                ex.finding(format!("pdf: encrypted ({}) with an empty user password, opened as every reader opens it", crypt.description));
                self.crypt = Some(crypt);
            }
            Outcome::NeedsPassword(why) | Outcome::Unsupported(why) => {
                // Nothing but names can be read: the policy decides on an encrypted file.
                ex.flags.insert(Flag::Encrypted);
                ex.finding(format!("pdf: encrypted: {why}"));
            }
        }
        Ok(())
    }

    fn count_visit(&mut self) -> Result<(), ExtractError> {
        self.visited += 1;
        if self.visited > self.limits.max_pdf_objects {
            return Err(ExtractError::limit("max_pdf_objects", self.limits.max_pdf_objects as u64));
        }
        Ok(())
    }

    fn load_xref_chain(&mut self, ex: &mut Extraction) -> Result<(), ExtractError> {
        let len = self.input.len();
        let tail_len = len.min(TAIL_SEARCH);
        let tail = self.input.read_at(len - tail_len, tail_len as usize, "pdf")?.into_owned();
        let at = memchr::memmem::rfind(&tail, b"startxref").ok_or_else(|| malformed("no startxref"))?;
        let mut p = Parser::new(&tail[at + 9..], 4);
        let declared = p.parse_u64().map_err(|_| malformed("startxref without an offset"))?;
        let mut offset = Some(declared);
        let mut seen: Vec<u64> = Vec::new();
        while let Some(off) = offset.take() {
            if seen.contains(&off) {
                ex.ambiguous("pdf: cross-reference /Prev chain loops");
                break;
            }
            if seen.len() >= self.limits.max_pdf_revisions {
                return Err(ExtractError::limit("max_pdf_revisions", self.limits.max_pdf_revisions as u64));
            }
            seen.push(off);
            let (section, prev, xrefstm) = self.load_section(off)?;
            self.sections.push(section);
            if let Some(stm) = xrefstm {
                // Hybrid file: the companion xref stream belongs to the same revision; it is
                // read only if a lookup reaches it.
                self.sections.push(Section { table: Table::Pending(stm), trailer: Vec::new(), revision_start: false });
            }
            offset = prev;
        }
        Ok(())
    }

    /// Loads the xref section at `off` (trying the header offset correction for files with junk
    /// before `%PDF-`). Returns it with its `/Prev` and `/XRefStm`.
    fn load_section(&mut self, off: u64) -> Result<(Section, Option<u64>, Option<u64>), ExtractError> {
        let first = self.load_section_at(off);
        let result = match first {
            Ok(r) => r,
            Err(ExtractError::Malformed { .. }) if self.header_offset > 0 => self.load_section_at(off + self.header_offset)?,
            Err(e) => return Err(e),
        };
        let (table, trailer) = result;
        let prev = dict_get(&trailer, b"Prev").and_then(Obj::as_int).and_then(|v| u64::try_from(v).ok());
        let xrefstm = dict_get(&trailer, b"XRefStm").and_then(Obj::as_int).and_then(|v| u64::try_from(v).ok());
        Ok((Section { table, trailer, revision_start: true }, prev, xrefstm))
    }

    fn load_section_at(&mut self, off: u64) -> Result<(Table, Dict), ExtractError> {
        let head = self.input.read_upto(off, 16)?.into_owned();
        let trimmed = head.iter().position(|b| !crate::pdf_syntax::is_ws(*b)).unwrap_or(0);
        if head[trimmed..].starts_with(b"xref") {
            return self.load_classic(off + trimmed as u64 + 4);
        }
        // An xref stream object.
        let (_, _, obj, stream) = self.parse_indirect_at(off)?;
        let Obj::Dict(dict) = obj else { return Err(malformed("xref offset points at no cross-reference data")) };
        if dict_get(&dict, b"Type").and_then(Obj::as_name) != Some(b"XRef") {
            return Err(malformed("xref offset points at an object that is not an xref stream"));
        }
        let data_start = stream.ok_or_else(|| malformed("xref stream without data"))?;
        let rows = self.stream_rows(&dict, data_start)?;
        let widths_obj = match dict_get(&dict, b"W") {
            Some(Obj::Array(a)) if a.len() == 3 => a.clone(),
            _ => return Err(malformed("xref stream without a valid /W")),
        };
        let mut widths = [0usize; 3];
        for (i, w) in widths_obj.iter().enumerate() {
            let w = w.as_int().filter(|w| (0..=8).contains(w)).ok_or_else(|| malformed("xref stream /W out of range"))?;
            widths[i] = w as usize;
        }
        let size = dict_get(&dict, b"Size").and_then(Obj::as_int).unwrap_or(0).max(0) as u32;
        let index = match dict_get(&dict, b"Index") {
            Some(Obj::Array(a)) => {
                a.chunks_exact(2).filter_map(|c| Some((u32::try_from(c[0].as_int()?).ok()?, u32::try_from(c[1].as_int()?).ok()?))).collect()
            }
            _ => vec![(0, size)],
        };
        Ok((Table::Stream { rows: Box::new(rows), widths, index }, dict))
    }

    fn load_classic(&mut self, mut at: u64) -> Result<(Table, Dict), ExtractError> {
        let mut subsections = Vec::new();
        loop {
            let window = self.input.read_upto(at, 64)?.into_owned();
            let mut p = Parser::new(&window, 4);
            p.skip_ws();
            if window[p.pos..].starts_with(b"trailer") {
                at += (p.pos + 7) as u64;
                break;
            }
            let start = p.parse_u64().map_err(|_| malformed("bad xref subsection header"))?;
            let count = p.parse_u64().map_err(|_| malformed("bad xref subsection header"))?;
            if start > u32::MAX as u64 || count > u32::MAX as u64 {
                return Err(malformed("xref subsection out of range"));
            }
            p.skip_ws();
            let entries_at = at + p.pos as u64;
            // Validate the first entry's shape; entries are 20 bytes each.
            if count > 0 {
                let first = self.input.read_upto(entries_at, 20)?.into_owned();
                if first.len() < 20 || !first[..10].iter().all(u8::is_ascii_digit) || !matches!(first[17], b'n' | b'f') {
                    return Err(malformed("xref entries are not 20-byte records"));
                }
            }
            if subsections.len() >= 65_536 {
                return Err(malformed("too many xref subsections"));
            }
            subsections.push((start as u32, count as u32, entries_at));
            at = entries_at + count * 20;
            if at > self.input.len() {
                return Err(malformed("xref table runs past the end of the file"));
            }
        }
        let window = self.read_window(at)?;
        let mut p = Parser::new(&window.0, self.limits.max_pdf_depth);
        let trailer = match p.parse() {
            Ok(Obj::Dict(d)) => d,
            Ok(_) => return Err(malformed("trailer is not a dictionary")),
            Err(SyntaxError::TooDeep) => return Err(ExtractError::limit("max_pdf_depth", self.limits.max_pdf_depth as u64)),
            Err(e) => return Err(malformed(format!("trailer: {e}"))),
        };
        Ok((Table::Classic(subsections), trailer))
    }

    /// Reads a window of bytes at `off` large enough for one object; returns (bytes, at_eof).
    fn read_window(&mut self, off: u64) -> Result<(Vec<u8>, bool), ExtractError> {
        let avail = self.input.len().saturating_sub(off);
        let n = (FIRST_WINDOW as u64).min(avail);
        Ok((self.input.read_upto(off, n as usize)?.into_owned(), n == avail))
    }

    /// Parses `n g obj <object> [stream]` at `off`. Returns the numbers, the object, and for a
    /// stream the absolute offset where its data starts. Grows the window as needed, up to
    /// `max_pdf_object_bytes`.
    fn parse_indirect_at(&mut self, off: u64) -> Result<(u32, u16, Obj, Option<u64>), ExtractError> {
        let mut size = FIRST_WINDOW as u64;
        loop {
            let avail = self.input.len().saturating_sub(off);
            let n = size.min(avail);
            let at_eof = n == avail;
            let window = self.input.read_upto(off, n as usize)?;
            let mut p = Parser::new(&window, self.limits.max_pdf_depth);
            let result = (|| -> Result<(u32, u16, Obj, Option<u64>), SyntaxError> {
                let num = p.parse_u64()?;
                let generation = p.parse_u64()?;
                p.expect_keyword(b"obj")?;
                let obj = p.parse()?;
                p.skip_ws();
                let mut stream = None;
                if matches!(obj, Obj::Dict(_)) && window[p.pos..].starts_with(b"stream") {
                    let mut s = p.pos + 6;
                    if window.get(s) == Some(&b'\r') {
                        s += 1;
                    }
                    if window.get(s) == Some(&b'\n') {
                        s += 1;
                    }
                    stream = Some(off + s as u64);
                } else if window.len() - p.pos < 6 && !at_eof {
                    return Err(SyntaxError::Incomplete);
                }
                Ok((
                    u32::try_from(num).map_err(|_| SyntaxError::Bad("object number out of range".into()))?,
                    generation.min(65535) as u16,
                    obj,
                    stream,
                ))
            })();
            match result {
                Ok(r) => return Ok(r),
                Err(SyntaxError::Incomplete) if !at_eof && size < self.limits.max_pdf_object_bytes => {
                    size = (size * 4).min(self.limits.max_pdf_object_bytes);
                }
                Err(SyntaxError::Incomplete) if !at_eof => {
                    return Err(ExtractError::limit("max_pdf_object_bytes", self.limits.max_pdf_object_bytes))
                }
                Err(SyntaxError::TooDeep) => return Err(ExtractError::limit("max_pdf_depth", self.limits.max_pdf_depth as u64)),
                Err(e) => return Err(malformed(format!("object at offset {off}: {e}"))),
            }
        }
    }

    /// An xref stream's rows, set up for on-demand decoding.
    fn stream_rows(&mut self, dict: &Dict, data_start: u64) -> Result<Rows, ExtractError> {
        let RawStream { data: raw, filters, params, .. } = self.stream_raw(dict, data_start, self.limits.max_part_bytes)?;
        let params = params.into_iter().next().flatten();
        let predictor = params.filter(|p| dict_get(p, b"Predictor").and_then(Obj::as_int).unwrap_or(1) >= 10).map(|p| {
            let columns = dict_get(&p, b"Columns").and_then(Obj::as_int).unwrap_or(1).clamp(1, 1 << 20) as usize;
            (p, columns)
        });
        match filters.as_slice() {
            [] => Ok(Rows { inflater: None, raw, predictor, decoded: Vec::new(), complete: false }),
            [f] if f.as_slice() == b"FlateDecode" || f.as_slice() == b"Fl" => Ok(Rows {
                inflater: Some(Inflater::new(raw, true, self.limits.max_part_bytes)),
                raw: Vec::new(),
                predictor,
                decoded: Vec::new(),
                complete: false,
            }),
            _ => Err(malformed("unsupported xref stream filter")),
        }
    }

    /// A stream's raw bytes, its filter names and its first decode parameters.
    fn stream_raw(&mut self, dict: &Dict, data_start: u64, cap: u64) -> Result<RawStream, ExtractError> {
        let declared = match dict_get(dict, b"Length") {
            Some(Obj::Ref(n, _)) => {
                let n = *n;
                self.resolve_from(n, 0)?.and_then(|o| o.as_int())
            }
            Some(o) => o.as_int(),
            None => None,
        };
        let avail = self.input.len().saturating_sub(data_start);
        let length = match declared {
            Some(l) if l >= 0 && (l as u64) <= avail => l as u64,
            _ => self.length_to_endstream(data_start, cap)?,
        };
        if length > cap + 64 * 1024 {
            return Err(ExtractError::limit("max_part_bytes", cap));
        }
        let raw = self.input.read_at(data_start, length as usize, "pdf")?.into_owned();
        // Filters and their parameters may be indirect objects, as readers accept.
        let filter = match dict_get(dict, b"Filter").cloned() {
            Some(f) => self.deref(&f, 0)?,
            None => None,
        };
        let filters: Vec<Vec<u8>> = match filter {
            None | Some(Obj::Null) => Vec::new(),
            Some(Obj::Name(n)) => vec![n],
            Some(Obj::Array(a)) => {
                let mut names = Vec::new();
                for f in a {
                    match self.deref(&f, 0)? {
                        Some(Obj::Name(n)) => names.push(n),
                        _ => return Err(malformed("bad /Filter")),
                    }
                }
                names
            }
            Some(_) => return Err(malformed("bad /Filter")),
        };
        let parms = match dict_get(dict, b"DecodeParms").or_else(|| dict_get(dict, b"DP")).cloned() {
            Some(p) => self.deref(&p, 0)?,
            None => None,
        };
        let mut params = Vec::with_capacity(filters.len());
        match parms {
            Some(Obj::Array(a)) => {
                for p in a.into_iter().take(filters.len()) {
                    params.push(match self.deref(&p, 0)? {
                        Some(Obj::Dict(d)) => Some(d),
                        _ => None,
                    });
                }
            }
            Some(Obj::Dict(d)) => params.push(Some(d)),
            _ => {}
        }
        params.resize(filters.len(), None);
        Ok(RawStream { data: raw, filters, params, declared_length: declared.is_some_and(|l| l as u64 == length) })
    }

    /// A stream's length found from its `endstream` keyword (a missing or wrong `/Length`).
    fn length_to_endstream(&mut self, data_start: u64, cap: u64) -> Result<u64, ExtractError> {
        let avail = self.input.len().saturating_sub(data_start);
        let window = self.input.read_upto(data_start, (cap + 16 + 64 * 1024).min(avail) as usize)?;
        let at = memchr::memmem::find(&window, b"endstream").ok_or_else(|| malformed("stream without endstream"))?;
        // The end-of-line before the keyword is not data.
        let mut end = at;
        if end > 0 && window[end - 1] == b'\n' {
            end -= 1;
        }
        if end > 0 && window[end - 1] == b'\r' {
            end -= 1;
        }
        Ok(end as u64)
    }

    /// Decoded stream data (FlateDecode with PNG/TIFF predictors; unfiltered), capped.
    fn stream_data(&mut self, stream: &StreamRef) -> Result<Vec<u8>, ExtractError> {
        self.stream_data_capped(stream, self.limits.max_part_bytes)
    }

    /// Decoded stream data (decrypted first, when the file is), at most `cap` bytes.
    fn stream_data_capped(&mut self, stream: &StreamRef, cap: u64) -> Result<Vec<u8>, ExtractError> {
        let raw = self.stream_raw(&stream.dict, stream.data_start, cap)?;
        let declared_length = raw.declared_length;
        match self.decode(stream, raw, cap) {
            // A wrong `/Length` cuts the data: readers (qpdf, Acrobat) recover it from `endstream`.
            Err(ExtractError::Malformed { .. }) if declared_length => {
                let length = self.length_to_endstream(stream.data_start, cap)?;
                let data = self.input.read_at(stream.data_start, length as usize, "pdf")?.into_owned();
                let mut raw = self.stream_raw(&stream.dict, stream.data_start, cap)?;
                raw.data = data;
                self.decode(stream, raw, cap)
            }
            other => other,
        }
    }

    /// Decrypts (when the file is) and decodes a stream's raw data, at most `cap` bytes.
    fn decode(&mut self, stream: &StreamRef, raw: RawStream, cap: u64) -> Result<Vec<u8>, ExtractError> {
        let RawStream { data: raw, filters, params, .. } = raw;
        let mut data = match &self.crypt {
            Some(crypt) if self.stream_is_encrypted(&stream.dict, &filters) => crypt.stream(stream.num, stream.generation, &raw),
            _ => raw,
        };
        for (f, p) in filters.iter().zip(&params) {
            match f.as_slice() {
                b"FlateDecode" | b"Fl" => {
                    data = crate::inflate::inflate(&data, true, cap, data.len() * 4).map_err(|e| match e {
                        crate::inflate::InflateError::TooLarge => ExtractError::limit("max_part_bytes", cap),
                        crate::inflate::InflateError::Corrupt => malformed("stream does not inflate"),
                    })?;
                    if let Some(p) = p {
                        data = apply_predictor(data, p)?;
                    }
                }
                b"LZWDecode" | b"LZW" => {
                    let early = p.as_ref().and_then(|p| dict_get(p, b"EarlyChange")).and_then(Obj::as_int).unwrap_or(1) != 0;
                    data = lzw(&data, early, cap)?;
                    if let Some(p) = p {
                        data = apply_predictor(data, p)?;
                    }
                }
                b"ASCIIHexDecode" | b"AHx" => data = ascii_hex(&data),
                b"ASCII85Decode" | b"A85" => data = ascii85(&data).ok_or_else(|| malformed("bad ASCII85 data"))?,
                b"RunLengthDecode" | b"RL" => data = run_length(&data, cap)?,
                // An identity crypt filter: the data was left as it is (checked above).
                b"Crypt" => {}
                other => return Err(malformed(format!("unsupported stream filter {}", String::from_utf8_lossy(other)))),
            }
        }
        if data.len() as u64 > cap {
            return Err(ExtractError::limit("max_part_bytes", cap));
        }
        Ok(data)
    }

    /// Where object `n` lives, looking from section `from` (newest first) backwards.
    fn locate(&mut self, n: u32, from: usize) -> Result<Option<Loc>, ExtractError> {
        for i in from..self.sections.len() {
            if let Table::Pending(offset) = self.sections[i].table {
                self.sections[i].table = match self.load_section(offset) {
                    Ok((section, _, _)) => {
                        self.sections[i].trailer = section.trailer;
                        section.table
                    }
                    Err(ExtractError::Malformed { .. }) => Table::Scanned(HashMap::new()),
                    Err(e) => return Err(e),
                };
            }
            let input = &mut *self.input;
            let loc = match &mut self.sections[i].table {
                Table::Pending(_) => None,
                Table::Classic(subs) => {
                    let hit = subs.iter().find(|(start, count, _)| n >= *start && n - start < *count);
                    match hit {
                        None => None,
                        Some((start, _, at)) => {
                            let entry = input.read_at(*at + (n - *start) as u64 * 20, 18, "pdf")?;
                            let offset = std::str::from_utf8(&entry[..10]).ok().and_then(|s| s.parse::<u64>().ok());
                            match (entry[17], offset) {
                                (b'n', Some(o)) => Some(Loc::Offset(o)),
                                (b'f', _) => Some(Loc::Free),
                                _ => return Err(malformed(format!("bad xref entry for object {n}"))),
                            }
                        }
                    }
                }
                Table::Stream { rows, widths, index } => {
                    let mut base = 0usize;
                    let mut found = None;
                    for (start, count) in index {
                        if n >= *start && n - *start < *count {
                            found = Some(base + (n - *start) as usize);
                            break;
                        }
                        base += *count as usize;
                    }
                    match found {
                        None => None,
                        Some(row) => {
                            let w: usize = widths.iter().sum();
                            let data = rows.need(row * w + w)?;
                            let Some(rec) = data.get(row * w..row * w + w) else { continue };
                            let field = |k: usize, default: u64| -> u64 {
                                let from = widths[..k].iter().sum::<usize>();
                                if widths[k] == 0 {
                                    return default;
                                }
                                rec[from..from + widths[k]].iter().fold(0u64, |acc, b| (acc << 8) | *b as u64)
                            };
                            match field(0, 1) {
                                0 => Some(Loc::Free),
                                1 => Some(Loc::Offset(field(1, 0))),
                                2 => Some(Loc::InStream(field(1, 0) as u32, field(2, 0) as u32)),
                                _ => None,
                            }
                        }
                    }
                }
                Table::Scanned(map) => map.get(&n).map(|o| Loc::Offset(*o)),
            };
            if let Some(loc) = loc {
                return Ok(Some(loc));
            }
        }
        Ok(None)
    }

    /// Resolves object `n` as seen from section `from`. `Ok(None)` for free or missing objects.
    fn resolve_from(&mut self, n: u32, from: usize) -> Result<Option<Obj>, ExtractError> {
        self.count_visit()?;
        match self.locate(n, from)? {
            None | Some(Loc::Free) => Ok(None),
            Some(Loc::Offset(off)) => {
                let (num, generation, mut obj, _) = match self.parse_indirect_at(off) {
                    Ok(r) => r,
                    Err(ExtractError::Malformed { .. }) if self.header_offset > 0 => self.parse_indirect_at(off + self.header_offset)?,
                    Err(e) => return Err(e),
                };
                if num != n {
                    return Err(malformed(format!("xref points object {n} at object {num}")));
                }
                if let Some(crypt) = &self.crypt {
                    if self.encrypt_object != Some(num) {
                        crypt.strings(num, generation, &mut obj);
                    }
                }
                Ok(Some(obj))
            }
            Some(Loc::InStream(stm, idx)) => self.resolve_in_object_stream(stm, idx, n, from),
        }
    }

    /// Resolves `n` with its stream data offset (for the XMP stream).
    fn resolve_stream_from(&mut self, n: u32, from: usize) -> Result<Option<StreamRef>, ExtractError> {
        self.count_visit()?;
        match self.locate(n, from)? {
            Some(Loc::Offset(off)) => {
                let (num, generation, obj, stream) = match self.parse_indirect_at(off) {
                    Ok(r) => r,
                    Err(ExtractError::Malformed { .. }) if self.header_offset > 0 => self.parse_indirect_at(off + self.header_offset)?,
                    Err(e) => return Err(e),
                };
                if num != n {
                    return Err(malformed(format!("xref points object {n} at object {num}")));
                }
                match (obj, stream) {
                    (Obj::Dict(mut dict), Some(data_start)) => {
                        if let Some(crypt) = &self.crypt {
                            for (_, value) in dict.iter_mut() {
                                crypt.strings(num, generation, value);
                            }
                        }
                        Ok(Some(StreamRef { dict, data_start, num, generation }))
                    }
                    _ => Ok(None),
                }
            }
            _ => Ok(None),
        }
    }

    /// Whether a stream's data is encrypted: not an xref stream, not metadata left in the clear
    /// (`/EncryptMetadata false`), not one with its own identity crypt filter.
    fn stream_is_encrypted(&self, dict: &Dict, filters: &[Vec<u8>]) -> bool {
        let kind = dict_get(dict, b"Type").and_then(Obj::as_name);
        if kind == Some(b"XRef") {
            return false;
        }
        if kind == Some(b"Metadata") && self.crypt.as_ref().is_some_and(|c| !c.encrypt_metadata) {
            return false;
        }
        !filters.iter().any(|f| f.as_slice() == b"Crypt")
    }

    fn resolve_in_object_stream(&mut self, stm: u32, idx: u32, n: u32, from: usize) -> Result<Option<Obj>, ExtractError> {
        if !self.objstm_cache.contains_key(&stm) {
            let Some(stream) = self.resolve_stream_from(stm, from)? else {
                return Err(malformed(format!("object stream {stm} not found")));
            };
            let dict = stream.dict.clone();
            if dict_get(&dict, b"Type").and_then(Obj::as_name) != Some(b"ObjStm") {
                return Err(malformed(format!("object {stm} is not an object stream")));
            }
            let count = dict_get(&dict, b"N").and_then(Obj::as_int).unwrap_or(0).clamp(0, 1_000_000) as usize;
            let first = dict_get(&dict, b"First").and_then(Obj::as_int).unwrap_or(0).max(0) as usize;
            let data = self.stream_data(&stream)?;
            let header = data.get(..first.min(data.len())).unwrap_or(&[]);
            let mut p = Parser::new(header, 2);
            let mut offsets = Vec::new();
            for _ in 0..count {
                let (Ok(num), Ok(rel)) = (p.parse_u64(), p.parse_u64()) else { break };
                offsets.push((num as u32, rel as usize));
            }
            self.objstm_cache.insert(stm, ObjectStream { data, offsets, first });
        }
        let Some(ObjectStream { data, offsets, first }) = self.objstm_cache.get(&stm) else { return Ok(None) };
        let entry = offsets.get(idx as usize).filter(|(num, _)| *num == n).or_else(|| offsets.iter().find(|(num, _)| *num == n));
        let Some(&(_, rel)) = entry else { return Ok(None) };
        let Some(slice) = data.get(first + rel..) else { return Ok(None) };
        // Append a terminator so a final bare token is complete.
        let mut owned = slice.to_vec();
        owned.push(b' ');
        let mut p = Parser::new(&owned, self.limits.max_pdf_depth);
        match p.parse() {
            Ok(o) => Ok(Some(o)),
            Err(SyntaxError::TooDeep) => Err(ExtractError::limit("max_pdf_depth", self.limits.max_pdf_depth as u64)),
            Err(e) => Err(malformed(format!("object {n} in object stream {stm}: {e}"))),
        }
    }

    /// Follows references (bounded) to a direct object.
    fn deref(&mut self, obj: &Obj, from: usize) -> Result<Option<Obj>, ExtractError> {
        let mut current = obj.clone();
        for _ in 0..8 {
            match current {
                Obj::Ref(n, _) => match self.resolve_from(n, from)? {
                    Some(o) => current = o,
                    None => return Ok(None),
                },
                other => return Ok(Some(other)),
            }
        }
        Err(malformed("reference chain too long"))
    }

    /// Label records from the Info dictionary and catalog XMP of the revision whose newest
    /// section is `from`.
    fn labels_as_of(&mut self, from: usize, newest: bool, ex: &mut Extraction) -> Result<Vec<LabelRecord>, ExtractError> {
        // Hybrid: trailer keys may live only in the companion xref stream dictionary.
        let encrypted = self.trailer_value(from, b"Encrypt");
        // Encrypted and not opened by the empty user password: label values are unreadable.
        let locked = encrypted.is_some() && self.crypt.is_none();
        let mut records = Vec::new();

        if let Some(enc) = &encrypted {
            if newest {
                let filter = self
                    .deref(enc, from)
                    .ok()
                    .flatten()
                    .and_then(|e| e.as_dict().and_then(|d| dict_get(d, b"Filter").and_then(Obj::as_name).map(<[u8]>::to_vec)));
                if filter.as_deref() == Some(b"MicrosoftIRMServices") {
                    ex.flags.insert(Flag::Protected);
                    ex.finding("pdf: protected with MicrosoftIRMServices");
                }
            }
        }

        // Info dictionary.
        let info_ref = self.trailer_value(from, b"Info");
        let info_memo = match &info_ref {
            Some(Obj::Ref(n, _)) => self.memo_key(0, *n, from)?,
            _ => None,
        };
        if let Some(records_seen) = info_memo.as_ref().and_then(|k| self.memo.get(k)) {
            records.extend(records_seen.iter().cloned());
        } else if let Some(info_ref) = info_ref {
            match self.deref(&info_ref, from) {
                Ok(Some(Obj::Dict(info))) => {
                    let mut collector = PropertyCollector::new(Source::PdfInfo, self.limits.max_records);
                    let mut encrypted_keys = Vec::new();
                    for (k, v) in &info {
                        let name = String::from_utf8_lossy(k);
                        if !crate::msip::is_msip_key(&name) {
                            continue;
                        }
                        let value = match self.deref(v, from)? {
                            Some(Obj::Str(s)) => decode_text_string(&s),
                            Some(Obj::Name(n)) => String::from_utf8_lossy(&n).into_owned(),
                            Some(Obj::Bool(b)) => b.to_string(),
                            Some(Obj::Int(i)) => i.to_string(),
                            _ => String::new(),
                        };
                        if locked {
                            // Names are never encrypted, string values are: the label GUID is
                            // known but its attributes are not readable.
                            encrypted_keys.push(name.into_owned());
                            continue;
                        }
                        collector.add(&name, &value, ex);
                    }
                    if !encrypted_keys.is_empty() && newest {
                        ex.flags.insert(Flag::Encrypted);
                        let mut ids: Vec<String> =
                            encrypted_keys.iter().filter_map(|k| k.get(11..47)).filter_map(crate::msip::normalize_guid).collect();
                        ids.dedup();
                        ex.finding(format!("pdf: encrypted; label keys present for {} but their values are encrypted", ids.join(", ")));
                    }
                    let found = collector.finish(ex);
                    if let Some(k) = info_memo {
                        self.memo.insert(k, found.clone());
                    }
                    records.extend(found);
                }
                Ok(_) => {}
                Err(ExtractError::Malformed { reason, .. }) => ex.ambiguous(format!("pdf: Info dictionary unreadable: {reason}")),
                Err(e) => return Err(e),
            }
        }

        // Catalog XMP metadata.
        if let Some(root_ref) = self.trailer_value(from, b"Root") {
            let catalog = match self.deref(&root_ref, from) {
                Ok(c) => c,
                Err(ExtractError::Malformed { reason, .. }) => {
                    ex.ambiguous(format!("pdf: catalog unreadable: {reason}"));
                    None
                }
                Err(e) => return Err(e),
            };
            if let Some(Obj::Dict(cat)) = catalog {
                if let Some(Obj::Ref(m, _)) = dict_get(&cat, b"Metadata") {
                    let m = *m;
                    let xmp_memo = self.memo_key(1, m, from)?;
                    if let Some(seen) = xmp_memo.as_ref().and_then(|k| self.memo.get(k)) {
                        records.extend(seen.iter().cloned());
                        return Ok(records);
                    }
                    match self.xmp_records(m, from, ex) {
                        Ok(r) => {
                            if let Some(k) = xmp_memo {
                                self.memo.insert(k, r.clone());
                            }
                            records.extend(r)
                        }
                        Err(ExtractError::Malformed { reason, .. }) => {
                            if !locked {
                                ex.ambiguous(format!("pdf: XMP metadata unreadable: {reason}"));
                            }
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        } else if newest {
            ex.finding("pdf: trailer has no /Root");
        }
        Ok(records)
    }

    /// Identifies object `n` as seen from section `from` by where it lives.
    fn memo_key(&mut self, what: u8, n: u32, from: usize) -> Result<Option<(u8, u64, u32)>, ExtractError> {
        Ok(match self.locate(n, from) {
            Ok(Some(Loc::Offset(o))) => Some((what, o, u32::MAX)),
            Ok(Some(Loc::InStream(stm, idx))) => Some((what, stm as u64, idx)),
            Ok(_) => None,
            Err(ExtractError::Malformed { .. }) => None,
            Err(e) => return Err(e),
        })
    }

    fn xmp_records(&mut self, m: u32, from: usize, ex: &mut Extraction) -> Result<Vec<LabelRecord>, ExtractError> {
        let Some(stream) = self.resolve_stream_from(m, from)? else { return Ok(Vec::new()) };
        let data = self.stream_data(&stream)?;
        let text = match xml::decode_text(trim_to_xml(&data)) {
            Ok(t) => t,
            Err(e) => return Err(malformed(format!("XMP: {e}"))),
        };
        let mut collector = PropertyCollector::new(Source::PdfXmp, self.limits.max_records);
        match xml::parse_xmp(&text, &self.limits, &mut collector, ex) {
            Ok(notes) => {
                if notes.dtd {
                    ex.ambiguous("pdf: XMP packet contains a DTD");
                }
            }
            Err(xml::XmlError::TooDeep(_)) => return Err(ExtractError::limit("max_xml_depth", self.limits.max_xml_depth as u64)),
            Err(e) => return Err(malformed(format!("XMP: {e}"))),
        }
        Ok(collector.finish(ex))
    }

    /// Rebuilds an object map by scanning for `n g obj` headers (last definition wins) and takes
    /// the last `trailer` dictionary, or the last xref stream's dictionary, as the trailer.
    fn reconstruct(&mut self) -> Result<(), ExtractError> {
        let len = self.input.len();
        if len > self.limits.max_pdf_reconstruct_bytes {
            return Err(ExtractError::limit("max_pdf_reconstruct_bytes", self.limits.max_pdf_reconstruct_bytes));
        }
        let data = self.input.read_at(0, len as usize, "pdf")?.into_owned();
        let mut map: HashMap<u32, u64> = HashMap::new();
        let mut trailer: Option<Dict> = None;
        let mut xref_stream_dict: Option<Dict> = None;
        for pos in memchr::memmem::find_iter(&data, b"obj") {
            let before = &data[..pos];
            let Some(i) = object_number_start(before) else { continue };
            if i > 0 && !crate::pdf_syntax::is_ws(before[i - 1]) && !matches!(before[i - 1], b'>' | b')' | b']') {
                continue;
            }
            let mut p = Parser::new(&data[i..], self.limits.max_pdf_depth);
            let (Ok(num), Ok(_gen)) = (p.parse_u64(), p.parse_u64()) else { continue };
            if num > u32::MAX as u64 {
                continue;
            }
            if map.len() >= self.limits.max_pdf_objects * 64 {
                return Err(ExtractError::limit("max_pdf_objects", self.limits.max_pdf_objects as u64));
            }
            map.insert(num as u32, i as u64);
            if data[pos..].starts_with(b"obj") {
                let mut p = Parser::new(&data[pos + 3..(pos + 3 + 4096).min(data.len())], self.limits.max_pdf_depth);
                if let Ok(Obj::Dict(d)) = p.parse() {
                    if dict_get(&d, b"Type").and_then(Obj::as_name) == Some(b"XRef") {
                        xref_stream_dict = Some(d);
                    }
                }
            }
        }
        for pos in memchr::memmem::find_iter(&data, b"trailer") {
            let mut p = Parser::new(&data[pos + 7..(pos + 7 + 65536).min(data.len())], self.limits.max_pdf_depth);
            if let Ok(Obj::Dict(d)) = p.parse() {
                if dict_get(&d, b"Root").is_some() {
                    trailer = Some(d);
                }
            }
        }
        let trailer = trailer.or(xref_stream_dict).ok_or_else(|| malformed("no trailer found"))?;
        self.sections.push(Section { table: Table::Scanned(map), trailer, revision_start: true });
        Ok(())
    }
}

/// Where the `n g ` of an object header starts, walking back from the end of `before` (which ends
/// where `obj` starts): `None` unless two numbers precede it.
fn object_number_start(before: &[u8]) -> Option<usize> {
    let mut i = before.len();
    for _ in 0..2 {
        while i > 0 && crate::pdf_syntax::is_ws(before[i - 1]) {
            i -= 1;
        }
        let end = i;
        while i > 0 && before[i - 1].is_ascii_digit() {
            i -= 1;
        }
        if i == end {
            return None;
        }
    }
    Some(i)
}

/// XMP packets may carry junk before `<?xpacket` or `<x:xmpmeta`.
fn trim_to_xml(data: &[u8]) -> &[u8] {
    if data.starts_with(&[0xFE, 0xFF]) || data.starts_with(&[0xFF, 0xFE]) || data.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return data;
    }
    match memchr::memchr(b'<', data) {
        Some(i) => &data[i..],
        None => data,
    }
}

/// PNG (10-15) and TIFF (2) predictors for xref and object streams.
fn apply_predictor(data: Vec<u8>, params: &Dict) -> Result<Vec<u8>, ExtractError> {
    let predictor = dict_get(params, b"Predictor").and_then(Obj::as_int).unwrap_or(1);
    let colors = dict_get(params, b"Colors").and_then(Obj::as_int).unwrap_or(1).clamp(1, 32) as usize;
    let bpc = dict_get(params, b"BitsPerComponent").and_then(Obj::as_int).unwrap_or(8).clamp(1, 16) as usize;
    let columns = dict_get(params, b"Columns").and_then(Obj::as_int).unwrap_or(1).clamp(1, 1 << 20) as usize;
    if predictor < 10 {
        return match predictor {
            1 => Ok(data),
            2 if bpc == 8 => Ok(tiff_predictor(data, colors, columns)),
            _ => Err(malformed(format!("unsupported predictor {predictor} with {bpc} bits per component"))),
        };
    }
    let bpp = (colors * bpc).div_ceil(8).max(1);
    let row_len = (colors * bpc * columns).div_ceil(8);
    let mut out = Vec::with_capacity(data.len());
    let mut prev = vec![0u8; row_len];
    for chunk in data.chunks(row_len + 1) {
        if chunk.len() < 2 {
            break;
        }
        let filter = chunk[0];
        let mut row = chunk[1..].to_vec();
        row.resize(row_len, 0);
        for i in 0..row_len {
            let left = if i >= bpp { row[i - bpp] } else { 0 };
            let up = prev[i];
            let up_left = if i >= bpp { prev[i - bpp] } else { 0 };
            row[i] = match filter {
                0 => row[i],
                1 => row[i].wrapping_add(left),
                2 => row[i].wrapping_add(up),
                3 => row[i].wrapping_add(((left as u16 + up as u16) / 2) as u8),
                4 => {
                    let p = left as i16 + up as i16 - up_left as i16;
                    let (pa, pb, pc) = ((p - left as i16).abs(), (p - up as i16).abs(), (p - up_left as i16).abs());
                    let pred = if pa <= pb && pa <= pc {
                        left
                    } else if pb <= pc {
                        up
                    } else {
                        up_left
                    };
                    row[i].wrapping_add(pred)
                }
                _ => return Err(malformed("bad PNG predictor row")),
            };
        }
        out.extend_from_slice(&row);
        prev = row;
    }
    Ok(out)
}

/// TIFF predictor 2 for 8-bit components: each byte adds the same component of the pixel before.
fn tiff_predictor(mut data: Vec<u8>, colors: usize, columns: usize) -> Vec<u8> {
    let row = (colors * columns).max(1);
    for line in data.chunks_mut(row) {
        for i in colors..line.len() {
            line[i] = line[i].wrapping_add(line[i - colors]);
        }
    }
    data
}

/// LZWDecode (ISO 32000-1 §7.4.4): 9- to 12-bit codes, 256 clears, 257 ends; `early` is
/// `/EarlyChange 1` (the default: code width grows one code early). At most `cap` bytes out.
fn lzw(data: &[u8], early: bool, cap: u64) -> Result<Vec<u8>, ExtractError> {
    let mut out: Vec<u8> = Vec::new();
    // The table as (prefix code, last byte, length) entries; strings are rebuilt backwards.
    let mut table: Vec<(u16, u8, u32)> = (0..=255u16).map(|b| (u16::MAX, b as u8, 1)).collect();
    table.push((u16::MAX, 0, 0));
    table.push((u16::MAX, 0, 0));
    let mut width = 9u32;
    let mut prev: Option<u16> = None;
    let (mut acc, mut bits) = (0u32, 0u32);
    let emit = |code: u16, table: &[(u16, u8, u32)], out: &mut Vec<u8>| -> Option<u8> {
        let len = table.get(code as usize)?.2 as usize;
        let start = out.len();
        out.resize(start + len, 0);
        let mut c = code;
        for i in (0..len).rev() {
            let (p, b, _) = table[c as usize];
            out[start + i] = b;
            c = p;
        }
        out.get(start).copied()
    };
    for &byte in data {
        acc = (acc << 8) | byte as u32;
        bits += 8;
        while bits >= width {
            let code = ((acc >> (bits - width)) & ((1 << width) - 1)) as u16;
            bits -= width;
            match code {
                256 => {
                    table.truncate(258);
                    width = 9;
                    prev = None;
                    continue;
                }
                257 => return Ok(out),
                _ => {}
            }
            if (code as usize) < table.len() {
                let first = emit(code, &table, &mut out).ok_or_else(|| malformed("bad LZW code"))?;
                if let Some(p) = prev {
                    let len = table[p as usize].2 + 1;
                    table.push((p, first, len));
                }
            } else if code as usize == table.len() {
                // The code being defined: the previous string plus its own first byte.
                let p = prev.ok_or_else(|| malformed("bad LZW code"))?;
                let start = out.len();
                emit(p, &table, &mut out).ok_or_else(|| malformed("bad LZW code"))?;
                let first = out[start];
                out.push(first);
                let len = table[p as usize].2 + 1;
                table.push((p, first, len));
            } else {
                return Err(malformed("bad LZW code"));
            }
            prev = Some(code);
            if out.len() as u64 > cap {
                return Err(ExtractError::limit("max_part_bytes", cap));
            }
            let next = table.len() as u32 + u32::from(early);
            if next >= (1 << width) && width < 12 {
                width += 1;
            }
            if table.len() >= 4096 {
                // A full table waits for a clear code; no more entries are added.
                table.truncate(4096);
            }
        }
        acc &= (1 << bits) - 1;
    }
    Ok(out)
}

/// ASCIIHexDecode: hex digit pairs, white space ignored, `>` ends; an odd last digit is
/// followed by 0.
fn ascii_hex(data: &[u8]) -> Vec<u8> {
    let digits: Vec<u8> = data.iter().take_while(|&&b| b != b'>').filter_map(|&b| (b as char).to_digit(16).map(|d| d as u8)).collect();
    digits.chunks(2).map(|p| (p[0] << 4) | p.get(1).copied().unwrap_or(0)).collect()
}

/// ASCII85Decode: base-85 groups, `z` for four zeros, `~>` ends.
fn ascii85(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() / 5 * 4);
    let mut group = [0u8; 5];
    let mut n = 0usize;
    let mut iter = data.iter().copied();
    if data.starts_with(b"<~") {
        iter.nth(1);
    }
    for b in iter {
        match b {
            b'~' => break,
            b'z' if n == 0 => out.extend_from_slice(&[0; 4]),
            b'!'..=b'u' => {
                group[n] = b - b'!';
                n += 1;
                if n == 5 {
                    let v = group.iter().fold(0u64, |acc, &d| acc * 85 + d as u64);
                    out.extend_from_slice(&u32::try_from(v).ok()?.to_be_bytes());
                    n = 0;
                }
            }
            b if crate::pdf_syntax::is_ws(b) => {}
            _ => return None,
        }
    }
    if n > 1 {
        for d in group.iter_mut().skip(n) {
            *d = 84;
        }
        let v = group.iter().fold(0u64, |acc, &d| acc * 85 + d as u64);
        out.extend_from_slice(&u32::try_from(v).ok()?.to_be_bytes()[..n - 1]);
    }
    Some(out)
}

/// RunLengthDecode, at most `cap` bytes out.
fn run_length(data: &[u8], cap: u64) -> Result<Vec<u8>, ExtractError> {
    let mut out = Vec::new();
    let mut i = 0usize;
    while let Some(&len) = data.get(i) {
        match len {
            128 => break,
            0..=127 => {
                let n = len as usize + 1;
                out.extend_from_slice(data.get(i + 1..i + 1 + n).unwrap_or(&data[(i + 1).min(data.len())..]));
                i += 1 + n;
            }
            _ => {
                let Some(&b) = data.get(i + 1) else { break };
                out.resize(out.len() + 257 - len as usize, b);
                i += 2;
            }
        }
        if out.len() as u64 > cap {
            return Err(ExtractError::limit("max_part_bytes", cap));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod filter_tests {
    use super::*;

    #[test]
    fn text_filters_decode() {
        assert_eq!(ascii_hex(b"50 4b0 >ignored"), b"PK\x00");
        assert_eq!(ascii_hex(b"7"), [0x70]);
        // "Man " and "sure" from the Adobe ASCII85 examples; `z` is four zeros.
        assert_eq!(ascii85(b"<~9jqo^F*2M7z~>").unwrap(), b"Man sure\0\0\0\0");
        assert_eq!(ascii85(b"9jqo^~>").unwrap(), b"Man ");
        assert_eq!(ascii85(b"9jqo~>").unwrap(), b"Man");
        assert!(ascii85(b"9j{o^").is_none());
        assert_eq!(run_length(&[2, b'a', b'b', b'c', 254, b'x', 128], 100).unwrap(), b"abcxxx");
        assert!(run_length(&[129, b'x', 129, b'x'], 200).is_err());
        // ISO 32000-1 §7.4.4.2's example: "-----A---B" with EarlyChange 1.
        assert_eq!(lzw(&[0x80, 0x0B, 0x60, 0x50, 0x22, 0x0C, 0x0C, 0x85, 0x01], true, 100).unwrap(), b"-----A---B");
        assert!(lzw(&[0xff; 8], true, 100).is_err(), "a code past the table");
        // TIFF predictor 2, two 8-bit colours.
        assert_eq!(tiff_predictor(vec![10, 20, 1, 2, 3, 4], 2, 3), [10, 20, 11, 22, 14, 26]);
    }
}
