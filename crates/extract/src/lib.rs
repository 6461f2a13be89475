//! `labelgate-extract` reads Microsoft Information Protection (MIP) sensitivity labels out of a
//! file's bytes: OOXML packages (`docProps/custom.xml`, `docMetadata/LabelInfo.xml`), PDF (Info
//! dictionary and XMP, across incremental updates and object streams), compound files
//! (IRM-protected OOXML, legacy .doc/.xls/.ppt, Outlook .msg) and e-mail (`msip_labels`).
//!
//! The kind of file is decided by its content, never its name. Every allocation that input can
//! drive is bounded by [`Limits`]; no input makes it panic. It is pure and synchronous: no I/O
//! beyond the reader you hand it, no global state.
//!
//! ```
//! use labelgate_extract::{extract, FileKind};
//!
//! let eml = b"From: a@example.com\r\nTo: b@example.com\r\nmsip_labels: \
//!     MSIP_Label_f42aa342-8706-4288-bd11-ebb85995028c_Enabled=true; \
//!     MSIP_Label_f42aa342-8706-4288-bd11-ebb85995028c_SiteId=72f988bf-86f1-41af-91ab-2d7cd011db47\r\n\r\nhi\r\n";
//! let found = extract(eml).unwrap();
//! assert_eq!(found.kind, FileKind::Eml);
//! assert_eq!(found.labels[0].id, "f42aa342-8706-4288-bd11-ebb85995028c");
//! ```
//!
//! Three entry points give the same answer: [`extract`] / [`extract_with`] over a byte slice,
//! [`extract_reader`] over any `Read + Seek` (reading only the pieces it needs), and the push
//! interface [`Inspector`] fed chunk by chunk as an upload arrives.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cfb;
mod compound;
mod crypto;
mod eml;
mod error;
mod inflate;
mod input;
mod limits;
mod model;
mod msg;
mod msip;
mod office_crypt;
mod ole;
mod oleprops;
mod ooxml;
mod pdf;
mod pdf_crypt;
mod pdf_syntax;
mod text;
mod xml;
mod zip;

pub use compound::{cfb_embedded_documents, default_password_package_of, EmbeddedDocument};
pub use eml::decode_rfc2047;
pub use error::ExtractError;
pub use input::{Input, InputReader, ReaderInput, SegmentsInput, SliceInput, WindowInput};
pub use limits::Limits;
pub use model::{EffectiveLabel, Extraction, FileKind, Flag, LabelRecord, RecordStatus, Source};
pub use msg::{cfb_streams, msg_attachments, msg_body_text, CfbStream, MsgAttachment, MsgBounds, MsgContent};
pub use pdf::update::pdf_label_update;
pub use pdf::{pdf_attachments, PdfAttachment};
pub use text::{looks_like_text, plain_text, TextLimits, TextOut, TextReport};
pub use zip::{zip_end_record_in_tail, zip_members, ZipListing, ZipMember};

use std::io::{Read, Seek};

/// Forgets the password-derived keys remembered on this thread (a file encrypted with a password
/// that is no secret is usually read twice in a row: its labels, then the files inside it). For
/// benchmarks that measure what a new file costs.
#[doc(hidden)]
pub fn forget_derived_keys() {
    crypto::forget_memoized();
}

/// How many leading bytes decide the kind of a file.
pub const SNIFF_BYTES: usize = 4096;

/// What the first bytes say the container is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Zip,
    Pdf {
        header_offset: u64,
    },
    Cfb,
    Eml,
    /// Archives and compressed streams: recognised here, opened by `labelgate-unpack`.
    Archive(FileKind),
    Unknown,
}

fn sniff(head: &[u8]) -> Container {
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") || head.starts_with(b"PK\x07\x08") {
        return Container::Zip;
    }
    if head.starts_with(cfb::MAGIC) {
        return Container::Cfb;
    }
    // Binary archive signatures before the PDF search: a tar of a PDF has `%PDF-` at 512.
    if let Some(kind) = archive_kind(head) {
        return Container::Archive(kind);
    }
    if let Some(at) = memchr::memmem::find(&head[..head.len().min(1024)], b"%PDF-") {
        return Container::Pdf { header_offset: at as u64 };
    }
    if eml::sniff(head) {
        return Container::Eml;
    }
    Container::Unknown
}

/// The archive or compressed-stream kind whose signature starts `head`, if any.
fn archive_kind(head: &[u8]) -> Option<FileKind> {
    if head.starts_with(b"\x1f\x8b\x08") {
        return Some(FileKind::Gzip);
    }
    // "BZh" + block size digit + the block (or end-of-stream) magic.
    if head.len() >= 10
        && head.starts_with(b"BZh")
        && (b'1'..=b'9').contains(&head[3])
        && (head[4..10] == [0x31, 0x41, 0x59, 0x26, 0x53, 0x59] || head[4..10] == [0x17, 0x72, 0x45, 0x38, 0x50, 0x90])
    {
        return Some(FileKind::Bzip2);
    }
    if head.starts_with(b"\xfd7zXZ\x00") {
        return Some(FileKind::Xz);
    }
    // A zstd frame, or a skippable frame (0x184D2A50..5F) that zstd skips to the next one.
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) || (head.len() >= 8 && head[0] & 0xf0 == 0x50 && head[1..4] == [0x2a, 0x4d, 0x18]) {
        return Some(FileKind::Zstd);
    }
    if head.starts_with(&[0x04, 0x22, 0x4d, 0x18]) {
        return Some(FileKind::Lz4);
    }
    if head.starts_with(b"7z\xbc\xaf\x27\x1c") {
        return Some(FileKind::SevenZ);
    }
    if head.starts_with(b"Rar!\x1a\x07") {
        return Some(FileKind::Rar);
    }
    if head.starts_with(&[0x78, 0x9f, 0x3e, 0x22]) {
        return Some(FileKind::Tnef);
    }
    if head.starts_with(b"070701") || head.starts_with(b"070702") || head.starts_with(b"070707") {
        return Some(FileKind::Cpio);
    }
    if head.len() >= 26 && (head.starts_with(&[0xc7, 0x71]) || head.starts_with(&[0x71, 0xc7])) {
        // The old binary cpio: a 2-byte magic, so the name size must be plausible too.
        let little = head[0] == 0xc7;
        let name = if little { u16::from_le_bytes([head[20], head[21]]) } else { u16::from_be_bytes([head[20], head[21]]) };
        if (1..4096).contains(&name) {
            return Some(FileKind::Cpio);
        }
    }
    if head.starts_with(b"!<arch>\n") {
        return Some(FileKind::Ar);
    }
    if head.len() >= 13 && head[0] == 0x5d {
        // LZMA alone: the usual properties byte, a dictionary of 2^n or 2^n + 2^(n-1) bytes,
        // an uncompressed size that is unknown (all ones) or below 2^48.
        let dict = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
        let size = u64::from_le_bytes([head[5], head[6], head[7], head[8], head[9], head[10], head[11], head[12]]);
        // (A zero dictionary has 32 trailing zeros: a shift that overflows, found by the fuzz
        // smoke run.)
        let shaped = dict.is_power_of_two() || dict.checked_shr(dict.trailing_zeros()) == Some(3);
        if dict >= 4096 && shaped && (size == u64::MAX || size < 1 << 48) {
            return Some(FileKind::Lzma);
        }
    }
    if head.starts_with(&[0x1f, 0x9d]) {
        return Some(FileKind::Compress);
    }
    if head.starts_with(b"MSCF\0\0\0\0") {
        return Some(FileKind::Cab);
    }
    if head.starts_with(b"MSWIM\0\0\0") {
        return Some(FileKind::Wim);
    }
    if is_tar_header(head) {
        return Some(FileKind::Tar);
    }
    None
}

/// A tar header block: the ustar magic, or (old v7 archives) a checksum that adds up.
pub fn is_tar_header(block: &[u8]) -> bool {
    let Some(block) = block.get(..512) else { return false };
    if &block[257..262] == b"ustar" {
        return true;
    }
    // The checksum field (148..156) is octal; the sum counts it as eight spaces.
    let field = &block[148..156];
    let digits: Vec<u8> = field.iter().copied().skip_while(|&b| b == b' ').take_while(|b| (b'0'..=b'7').contains(b)).collect();
    if digits.is_empty() || block[0] == 0 {
        return false;
    }
    let stated = digits.iter().fold(0u32, |acc, &d| acc.saturating_mul(8).saturating_add((d - b'0') as u32));
    let sum: u32 = block.iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { b' ' as u32 } else { b as u32 }).sum();
    stated == sum
}

/// What the first bytes ([`SNIFF_BYTES`] of them) say a file is, when it is a format this crate
/// or `labelgate-unpack` reads: `None` means no label can be read from it, at any depth. OOXML
/// packages answer `Zip` (the package type needs the archive).
pub fn sniff_kind(head: &[u8]) -> Option<FileKind> {
    match sniff(head) {
        Container::Zip => Some(FileKind::Zip),
        Container::Pdf { .. } => Some(FileKind::Pdf),
        Container::Cfb => Some(FileKind::Cfb),
        Container::Eml => Some(FileKind::Eml),
        Container::Archive(kind) => Some(kind),
        Container::Unknown => None,
    }
}

/// Whether [`sniff_kind`] could answer differently with more than these first bytes (fewer
/// than [`SNIFF_BYTES`]): a PDF header may sit anywhere in the first 1 KiB, and an e-mail's
/// header block may run on. Lets a caller inflate only a short prefix of most members.
pub fn sniff_needs_more(head: &[u8]) -> bool {
    head.len() < SNIFF_BYTES && (head.len() < 1024 || eml::sniff_undecided(head))
}

/// Bytes a compound file (legacy Office, `.msg`, protected OOXML) accounts for: its header and
/// every sector in use. Bytes past it are appended data no Office reader sees.
pub fn cfb_extent(input: &mut dyn Input, limits: &Limits) -> Result<u64, ExtractError> {
    cfb::Cfb::open(input, limits)?.extent()
}

/// The text of an OOXML package (Word, Excel, PowerPoint) or a PDF, as Office or a PDF reader
/// shows it, handed to `out` piece by piece (see [`TextOut`] for its limits). Any other file
/// gives no text here: plain text has [`plain_text`]; messages are MIME, read by
/// `labelgate-unpack`. A part that cannot be read is recorded in the report, not an error.
pub fn document_text(input: &mut dyn Input, limits: &Limits, out: &mut TextOut<'_>) -> Result<(), ExtractError> {
    let head = input.read_upto(0, SNIFF_BYTES)?.into_owned();
    match sniff(&head) {
        Container::Zip => text::package_text(input, limits, out),
        Container::Pdf { .. } => pdf::text::pdf_text(input, limits, out),
        _ => Ok(()),
    }
}

/// Reads the labels of a file through any [`Input`] (a window onto an archive member, …).
pub fn extract_input(input: &mut dyn Input, limits: &Limits) -> Result<Extraction, ExtractError> {
    run(input, limits)
}

/// Reads the labels of an in-memory file with default [`Limits`].
pub fn extract(bytes: &[u8]) -> Result<Extraction, ExtractError> {
    extract_with(bytes, &Limits::default())
}

/// Reads the labels of an in-memory file.
pub fn extract_with(bytes: &[u8], limits: &Limits) -> Result<Extraction, ExtractError> {
    run(&mut SliceInput::new(bytes), limits)
}

/// Reads the labels of a file held as consecutive pieces (the chunks an upload arrived in),
/// without joining them: what the file's structures point at is read where it lies.
pub fn extract_segments<S: AsRef<[u8]>>(segments: &[S], limits: &Limits) -> Result<Extraction, ExtractError> {
    run(&mut SegmentsInput::new(segments), limits)
}

/// Reads the labels of a seekable file (a file on disk, a spooled upload), reading only the
/// structures it needs.
pub fn extract_reader<R: Read + Seek>(reader: R, limits: &Limits) -> Result<Extraction, ExtractError> {
    run(&mut ReaderInput::new(reader)?, limits)
}

/// What a file is, from its first bytes, reading further only while an e-mail header block is
/// still open at [`SNIFF_BYTES`] (unusual or long fields before the ones that decide; at most
/// `max_header_bytes`): `None` when no label can be read from it at any depth.
pub fn sniff_kind_input(input: &mut dyn Input, limits: &Limits) -> Result<Option<FileKind>, ExtractError> {
    let head = input.read_upto(0, SNIFF_BYTES)?.into_owned();
    let kind = sniff_kind(&head);
    if kind.is_none() && long_header_block(input, limits, &head)? {
        return Ok(Some(FileKind::Eml));
    }
    if kind.is_none() {
        // A package or PDF behind a prefix is found from its end, as its readers find it.
        if zip::zip_end_record_in_tail(input).is_some() {
            return Ok(Some(FileKind::Zip));
        }
        if pdf::header_behind_prefix(input, limits)?.is_some() {
            return Ok(Some(FileKind::Pdf));
        }
    }
    Ok(kind)
}

/// Whether a file whose first [`SNIFF_BYTES`] leave an e-mail header block open is an e-mail
/// once more of it (at most `max_header_bytes`) is read.
fn long_header_block(input: &mut dyn Input, limits: &Limits, head: &[u8]) -> Result<bool, ExtractError> {
    if head.len() < SNIFF_BYTES || !eml::sniff_undecided(head) {
        return Ok(false);
    }
    Ok(eml::sniff(&input.read_upto(0, limits.max_header_bytes as usize)?))
}

/// The labels of a ZIP archive (`ex` holds the ZIP layer's findings and flags, which come
/// first): an OPC package's, or none for a plain archive.
fn package(input: &mut dyn Input, archive: &zip::Archive, mut ex: Extraction, limits: &Limits) -> Result<Extraction, ExtractError> {
    if !ooxml::is_opc(archive) {
        return Ok(ex);
    }
    let mut result = ooxml::extract(input, archive, limits)?;
    for f in std::mem::take(&mut ex.findings).into_iter().rev() {
        result.findings.insert(0, f);
    }
    result.flags.extend(ex.flags);
    Ok(result)
}

fn run(input: &mut dyn Input, limits: &Limits) -> Result<Extraction, ExtractError> {
    let head = input.read_upto(0, SNIFF_BYTES)?.into_owned();
    let mut container = sniff(&head);
    // Only the e-mail question is asked again here: the end of an unknown file is looked at by
    // `unrecognised_start`, once.
    if container == Container::Unknown && long_header_block(input, limits, &head)? {
        container = Container::Eml;
    }
    match container {
        Container::Zip => {
            let mut ex = Extraction::new(FileKind::Zip);
            let archive = zip::open(input, limits, &mut ex)?;
            package(input, &archive, ex, limits)
        }
        Container::Pdf { header_offset } => pdf::extract(input, limits, header_offset),
        Container::Cfb => compound::extract(input, limits),
        Container::Eml => eml::extract(input, limits),
        Container::Archive(kind) => Ok(Extraction::new(kind)),
        Container::Unknown => unrecognised_start(input, limits),
    }
}

/// A file whose first bytes match nothing may still be a ZIP package or a PDF behind a prefix:
/// ZIP readers (and Office's repair) find a package from its end record, PDF readers from
/// `startxref` at the end, whatever precedes it (a self-extractor stub, an image header, junk).
fn unrecognised_start(input: &mut dyn Input, limits: &Limits) -> Result<Extraction, ExtractError> {
    if let Some(end_record) = zip::zip_end_record_in_tail(input) {
        let mut ex = Extraction::new(FileKind::Zip);
        // A guess from the end: an archive that does not hold together leaves the file unknown,
        // unless local file headers precede the end record too (a damaged archive behind a
        // prefix is as malformed as one without).
        let opened = zip::open(input, limits, &mut ex);
        if let Err(ExtractError::Malformed { reason, .. }) = &opened {
            if zip::local_header_before(input, end_record)? {
                return Err(ExtractError::malformed("zip", format!("archive behind a prefix: {reason}")));
            }
        }
        if let Ok(archive) = opened {
            if !archive.entries.is_empty() {
                let start = archive.entries.iter().map(|e| e.local_offset).min().unwrap_or(0);
                let note = format!("zip: the archive starts at offset {start}, after data that is no part of it");
                if !ex.findings.iter().any(|f| f.contains("precede the archive")) {
                    ex.finding(note);
                }
                return package(input, &archive, ex, limits);
            }
        }
    }
    if zip::zip_end_record_in_tail(input).is_none() {
        if let Some(at) = zip::plausible_local_header(input, 64 * 1024 * 1024)? {
            // Archive members without an end: unreadable here, recoverable by `zip -FF` or
            // Office's repair. Malformed, as the same archive without a prefix is.
            return Err(ExtractError::malformed(
                "zip",
                format!("local file headers from offset {at} but no end-of-central-directory record"),
            ));
        }
    }
    if let Some(at) = pdf::header_behind_prefix(input, limits)? {
        match pdf::extract(input, limits, at) {
            Ok(mut ex) => {
                let note = if at == 0 {
                    "pdf: no %PDF- header, read from its end as pdf.js reads it".to_string()
                } else {
                    format!("pdf: the document starts at offset {at}, after data that is no part of it")
                };
                ex.findings.insert(0, note);
                return Ok(ex);
            }
            // A guess from the end that does not hold together: the file stays unknown.
            Err(ExtractError::Malformed { .. }) if at == 0 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Extraction::new(FileKind::Unknown))
}

/// The push interface: feed an upload chunk by chunk as it arrives, then [`finish`](Self::finish).
/// It reads the file's own labels; files inside it are `labelgate-unpack`'s, which needs the
/// whole file (held or spooled).
///
/// Containers whose labels sit at the end (ZIP, PDF) or anywhere (CFB) are kept in memory up to
/// [`Limits::max_buffered_bytes`]; for e-mail only the header block is kept. A start that
/// matches nothing is kept too (to the same limit, then only its last 64 KiB), since a ZIP
/// package or a PDF found from its end may follow a prefix. The answer equals [`extract_with`]
/// on the concatenated chunks (or, past the limit, a `max_buffered_bytes` error for a file that
/// a package or PDF ends).
pub struct Inspector {
    limits: Limits,
    state: State,
    total: u64,
}

enum State {
    Sniffing(Vec<u8>),
    Buffering(Vec<u8>),
    EmlHeaders(Vec<u8>),
    /// A start that matched nothing: kept (to `max_buffered_bytes`) because a ZIP package or a
    /// PDF may still end the file, behind a prefix.
    Unrecognised(Vec<u8>),
    /// An unrecognised file past `max_buffered_bytes`: only its last bytes, enough to tell
    /// whether a package or PDF ends it (then it cannot be read, and says so).
    UnrecognisedTail(Vec<u8>),
    Decided(Result<Extraction, ExtractError>),
    Failed(ExtractError),
}

impl Inspector {
    /// A new inspector for one file.
    pub fn new(limits: Limits) -> Inspector {
        Inspector { limits, state: State::Sniffing(Vec::with_capacity(SNIFF_BYTES)), total: 0 }
    }

    /// Bytes fed so far.
    pub fn bytes_seen(&self) -> u64 {
        self.total
    }

    /// Offers the next chunk. An error (a limit) is also kept and returned again by `finish`.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), ExtractError> {
        self.total += chunk.len() as u64;
        let state = std::mem::replace(&mut self.state, State::Sniffing(Vec::new()));
        self.state = match state {
            State::Sniffing(mut head) => {
                let before = head.len();
                head.extend_from_slice(chunk);
                // Decided when the sniff bytes are in, then (while an e-mail header block stays
                // open) at every further 64 KiB: never re-read on every small chunk.
                let first = before < SNIFF_BYTES && head.len() >= SNIFF_BYTES;
                let step = before / (64 * 1024) != head.len() / (64 * 1024);
                if first || (head.len() >= SNIFF_BYTES && step) || head.len() as u64 > self.limits.max_buffered_bytes {
                    self.decide(head)
                } else {
                    State::Sniffing(head)
                }
            }
            State::Buffering(mut buf) => {
                let needed = buf.len() as u64 + chunk.len() as u64;
                if needed > self.limits.max_buffered_bytes {
                    State::Failed(ExtractError::limit("max_buffered_bytes", self.limits.max_buffered_bytes))
                } else {
                    // Grow geometrically, but never past the limit.
                    if (buf.capacity() as u64) < needed {
                        let target = (buf.capacity() as u64 * 2).max(needed).min(self.limits.max_buffered_bytes);
                        buf.reserve_exact(target as usize - buf.len());
                    }
                    buf.extend_from_slice(chunk);
                    State::Buffering(buf)
                }
            }
            State::EmlHeaders(mut buf) => {
                buf.extend_from_slice(chunk);
                self.eml_progress(buf)
            }
            State::Unrecognised(mut buf) => {
                if buf.len() as u64 + chunk.len() as u64 > self.limits.max_buffered_bytes {
                    buf.extend_from_slice(chunk);
                    keep_tail(&mut buf);
                    State::UnrecognisedTail(buf)
                } else {
                    buf.extend_from_slice(chunk);
                    State::Unrecognised(buf)
                }
            }
            State::UnrecognisedTail(mut tail) => {
                tail.extend_from_slice(chunk);
                keep_tail(&mut tail);
                State::UnrecognisedTail(tail)
            }
            other => other,
        };
        match &self.state {
            State::Failed(e) => Err(clone_error(e)),
            _ => Ok(()),
        }
    }

    fn decide(&self, head: Vec<u8>) -> State {
        // As `run` decides: the first SNIFF_BYTES, then, while an e-mail header block is open,
        // at most `max_header_bytes` of it.
        let first = &head[..head.len().min(SNIFF_BYTES)];
        let mut container = sniff(first);
        if container == Container::Unknown && first.len() == SNIFF_BYTES && eml::sniff_undecided(first) {
            let cap = head.len().min(usize::try_from(self.limits.max_header_bytes).unwrap_or(usize::MAX));
            if eml::sniff(&head[..cap]) {
                container = Container::Eml;
            } else if eml::sniff_undecided(&head[..cap]) && (head.len() as u64) < self.limits.max_header_bytes {
                return State::Sniffing(head);
            }
        }
        match container {
            Container::Unknown if head.len() as u64 > self.limits.max_buffered_bytes => {
                let mut tail = head;
                keep_tail(&mut tail);
                State::UnrecognisedTail(tail)
            }
            Container::Unknown => State::Unrecognised(head),
            Container::Archive(kind) => State::Decided(Ok(Extraction::new(kind))),
            Container::Eml => self.eml_progress(head),
            _ => {
                if head.len() as u64 > self.limits.max_buffered_bytes {
                    State::Failed(ExtractError::limit("max_buffered_bytes", self.limits.max_buffered_bytes))
                } else {
                    State::Buffering(head)
                }
            }
        }
    }

    fn eml_progress(&self, buf: Vec<u8>) -> State {
        if eml::header_end(&buf).is_some() || buf.len() as u64 > self.limits.max_header_bytes {
            // The header block is complete (or too large): the answer is known now.
            State::Decided(extract_with(&buf, &self.limits))
        } else {
            State::EmlHeaders(buf)
        }
    }

    /// The answer for everything fed.
    pub fn finish(self) -> Result<Extraction, ExtractError> {
        match self.state {
            State::Sniffing(buf) | State::Buffering(buf) | State::EmlHeaders(buf) | State::Unrecognised(buf) => {
                extract_with(&buf, &self.limits)
            }
            State::UnrecognisedTail(tail) => {
                let zip_end = memchr::memmem::find(&tail, b"PK\x05\x06").is_some();
                let pdf_end = memchr::memmem::find(&tail[tail.len().saturating_sub(4096)..], b"startxref").is_some();
                if zip_end || pdf_end {
                    Err(ExtractError::limit("max_buffered_bytes", self.limits.max_buffered_bytes))
                } else {
                    Ok(Extraction::new(FileKind::Unknown))
                }
            }
            State::Decided(result) => result,
            State::Failed(e) => Err(e),
        }
    }
}

// Debug shows the state and sizes only: an inspector holds upload bytes, which must never reach
// a log line.
impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (state, held) = match &self.state {
            State::Sniffing(b) => ("sniffing", b.len()),
            State::Buffering(b) => ("buffering", b.len()),
            State::EmlHeaders(b) => ("eml-headers", b.len()),
            State::Unrecognised(b) => ("unrecognised", b.len()),
            State::UnrecognisedTail(b) => ("unrecognised-tail", b.len()),
            State::Decided(_) => ("decided", 0),
            State::Failed(_) => ("failed", 0),
        };
        f.debug_struct("Inspector").field("state", &state).field("bytes_held", &held).field("bytes_seen", &self.total).finish()
    }
}

/// Keeps the last 64 KiB + 22 bytes: where a ZIP end record (and a PDF's `startxref`) must be.
fn keep_tail(buf: &mut Vec<u8>) {
    const TAIL: usize = 64 * 1024 + 22;
    if buf.len() > TAIL {
        buf.drain(..buf.len() - TAIL);
    }
}

fn clone_error(e: &ExtractError) -> ExtractError {
    match e {
        ExtractError::Malformed { container, reason } => ExtractError::Malformed { container, reason: reason.clone() },
        ExtractError::LimitExceeded { limit, max } => ExtractError::LimitExceeded { limit, max: *max },
        ExtractError::Io(io) => ExtractError::Io(std::io::Error::new(io.kind(), io.to_string())),
    }
}
