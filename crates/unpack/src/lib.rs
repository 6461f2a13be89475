//! `labelgate-unpack`: files inside files. Opens archives (ZIP, tar, cpio, ar, 7z; gzip, bzip2,
//! xz, zstd and legacy lzma streams; the streams of compound files) and
//! e-mail (`.eml` MIME parts, Outlook `.msg` attachments and embedded messages), recursively,
//! and reads the labels of every inner file with `labelgate-extract`:
//! `inspect(file) = extract(file) ∪ inspect(each inner file)`.
//!
//! ```
//! use labelgate_unpack::{inspect_slice, UnpackLimits};
//! use labelgate_extract::Limits;
//!
//! let eml = b"From: a@example.com\r\nTo: b@example.com\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n\
//!     --x\r\nContent-Type: message/rfc822\r\n\r\n\
//!     From: c@example.com\r\nTo: d@example.com\r\nmsip_labels: MSIP_Label_f42aa342-8706-4288-bd11-ebb85995028c_Enabled=true\r\n\r\nhi\r\n\
//!     --x--\r\n";
//! let found = inspect_slice(eml, &Limits::default(), &UnpackLimits::default());
//! assert!(found.outer.as_ref().unwrap().labels.is_empty());
//! assert_eq!(found.inner[0].path, ["part 1"]);
//! assert_eq!(found.inner[0].labels[0].id, "f42aa342-8706-4288-bd11-ebb85995028c");
//! ```
//!
//! A member's kind is decided by its content: every member's first bytes are checked for every
//! signature the engine reads, and only a member that matches none is skipped (it cannot carry
//! a label at any depth). Matching members are read through the extractor in place (stored ZIP
//! members are windows onto the archive) or decompressed once, as a stream, into memory bounded
//! by [`UnpackLimits::max_inner_bytes`]. Every decompressed byte is charged to a per-call budget
//! and checked against an expansion ratio. Nothing is written to disk; no inner name is ever
//! used as a path. Pure and synchronous, like the extractor.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cpio;
mod meter;
mod mime;
mod sevenz;
mod sevenz_guard;
mod tar;
mod tnef;
pub mod transfer;

pub use mime::decode_qp as quoted_printable;
pub use mime::message_body_text;

use labelgate_extract::{
    extract_input, msg_attachments, sniff_kind, zip_end_record_in_tail, zip_members, EffectiveLabel, ExtractError, Extraction, FileKind,
    Flag, Input, InputReader, Limits, MsgBounds, MsgContent, ReaderInput, SegmentsInput, SliceInput, WindowInput, ZipListing, SNIFF_BYTES,
};
use meter::{limit_hit, Counted, Metered};
use std::cell::Cell;
use std::collections::BTreeSet;
use std::io::{self, Read, Seek};
use std::rc::Rc;

/// Bounds on opening files inside files. Each one reached is a [`Problem::NestedLimit`] naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Containers opened inside one another (the uploaded file is depth 0, its members 1).
    pub max_depth: u32,
    /// Bytes one inner file may expand to (held in memory while it is read).
    pub max_inner_bytes: u64,
    /// Bytes decompressed in all, per call (per transaction in the proxy).
    pub max_expanded_bytes: u64,
    /// Members of one archive (entries of a ZIP, tar, 7z; parts of a message).
    pub max_members: u64,
    /// Decompressed bytes per compressed byte of one stream (judged past 1 MiB of output).
    pub max_ratio: u64,
    /// Take the SHA-256 of labeled and flagged inner files ([`InnerFile::sha256`]) for audit
    /// records (default true); the cost is one pass over each such file.
    pub hash_flagged: bool,
}

impl Default for UnpackLimits {
    fn default() -> UnpackLimits {
        UnpackLimits {
            max_depth: 5,
            max_inner_bytes: 64 * 1024 * 1024,
            max_expanded_bytes: 1024 * 1024 * 1024,
            max_members: 10_000,
            max_ratio: 250,
            hash_flagged: true,
        }
    }
}

/// Why a container (or one inner file) could not be opened completely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// An [`UnpackLimits`] bound was reached.
    #[error("limit reached: {limit} (maximum {max})")]
    NestedLimit {
        /// The `UnpackLimits` field (`max_depth`, `max_inner_bytes`, …).
        limit: &'static str,
        /// Its value.
        max: u64,
    },
    /// Encrypted (a password-protected member or archive): its content cannot be read.
    #[error("encrypted: {0}")]
    Encrypted(String),
    /// A container or coding the engine recognises but cannot open (RAR, an unknown ZIP
    /// compression method, …).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Broken structure (a truncated stream, a corrupt header) or an extractor error.
    #[error("malformed: {0}")]
    Malformed(String),
}

impl Problem {
    /// The stable reason name policy decides on: `nested_limit`, `encrypted`, `unsupported`,
    /// `malformed`.
    pub fn reason(&self) -> &'static str {
        match self {
            Problem::NestedLimit { .. } => "nested_limit",
            Problem::Encrypted(_) => "encrypted",
            Problem::Unsupported(_) => "unsupported",
            Problem::Malformed(_) => "malformed",
        }
    }

    fn from_io(e: &io::Error, what: &str) -> Problem {
        match limit_hit(e) {
            Some(hit) => Problem::NestedLimit { limit: hit.limit, max: hit.max },
            None => Problem::Malformed(format!("{what}: {e}")),
        }
    }

    fn from_extract(e: &ExtractError) -> Problem {
        match e {
            ExtractError::LimitExceeded { limit: limit @ ("max_members" | "max_attachments"), max } => {
                Problem::NestedLimit { limit: if *limit == "max_attachments" { "max_members" } else { limit }, max: *max }
            }
            ExtractError::LimitExceeded { limit: "max_depth", max } => Problem::NestedLimit { limit: "max_depth", max: *max },
            ExtractError::LimitExceeded { limit: "max_inner_bytes", max } => Problem::NestedLimit { limit: "max_inner_bytes", max: *max },
            ExtractError::LimitExceeded { limit: "max_expanded_bytes", max } => {
                Problem::NestedLimit { limit: "max_expanded_bytes", max: *max }
            }
            other => Problem::Malformed(other.to_string()),
        }
    }
}

/// One file found inside the inspected file, at any depth.
#[derive(Debug, Clone)]
pub struct InnerFile {
    /// Names from the outermost container down (`["q3.zip", "finance/q3.docx"]`): member names,
    /// attachment file names, or `part N` for unnamed MIME parts. Any character may appear.
    pub path: Vec<String>,
    /// 1 for a member of the inspected file, 2 for a member of that member, …
    pub depth: u32,
    /// What its bytes are.
    pub kind: FileKind,
    /// Its size in bytes, when known.
    pub size: Option<u64>,
    /// Its effective labels.
    pub labels: Vec<EffectiveLabel>,
    /// Its flags (encrypted, protected, ambiguous).
    pub flags: BTreeSet<Flag>,
    /// What the extractor (or the container reader) noticed.
    pub findings: Vec<String>,
    /// Why it could not be read or opened completely, if so.
    pub error: Option<Problem>,
    /// Hex SHA-256 of its bytes, for a file that carries a label or could not be read as what
    /// it claims (what an audit record needs to find the document again); `None` otherwise.
    pub sha256: Option<String>,
}

/// Everything read from one file and the files inside it.
#[derive(Debug)]
pub struct Inspection {
    /// The inspected file itself, as `labelgate_extract` reads it (container-level ambiguity,
    /// such as a ZIP member whose local header disagrees, is added to its flags).
    pub outer: Result<Extraction, ExtractError>,
    /// Why the inspected file could not be opened completely as a container, if so.
    pub container: Option<Problem>,
    /// Every inner file the engine reads, depth-first, parents before their members. Members
    /// that match no signature the engine reads are not listed.
    pub inner: Vec<InnerFile>,
}

impl Inspection {
    /// Every effective label, on the file or inside it.
    pub fn all_labels(&self) -> impl Iterator<Item = &EffectiveLabel> {
        self.outer.iter().flat_map(|e| e.labels.iter()).chain(self.inner.iter().flat_map(|f| f.labels.iter()))
    }
}

/// Inspects an in-memory file.
pub fn inspect_slice(bytes: &[u8], limits: &Limits, bounds: &UnpackLimits) -> Inspection {
    inspect(&mut SliceInput::new(bytes), limits, bounds)
}

/// Inspects a file held as consecutive pieces (an upload's chunks), in place.
pub fn inspect_segments<S: AsRef<[u8]>>(segments: &[S], limits: &Limits, bounds: &UnpackLimits) -> Inspection {
    inspect(&mut SegmentsInput::new(segments), limits, bounds)
}

/// Inspects a seekable file (on disk, spooled).
pub fn inspect_reader<R: Read + Seek>(reader: R, limits: &Limits, bounds: &UnpackLimits) -> Inspection {
    match ReaderInput::new(reader) {
        Ok(mut input) => inspect(&mut input, limits, bounds),
        Err(e) => Inspection { outer: Err(e), container: None, inner: Vec::new() },
    }
}

/// The expansion budget ([`UnpackLimits::max_expanded_bytes`]) shared by every file of one
/// transaction (the parts of a multipart upload), inspected one after another.
#[derive(Debug, Default)]
pub struct Budget {
    spent: std::sync::atomic::AtomicU64,
}

impl Budget {
    /// A fresh budget, nothing spent.
    pub fn new() -> Budget {
        Budget::default()
    }

    /// Bytes decompressed (or read in place as members) so far.
    pub fn spent(&self) -> u64 {
        self.spent.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Inspects any input: the file's own labels, then every file inside it.
pub fn inspect(input: &mut dyn Input, limits: &Limits, bounds: &UnpackLimits) -> Inspection {
    inspect_with_budget(input, limits, bounds, &Budget::new())
}

/// [`inspect`], charging what it expands to a budget other files of the same transaction share.
pub fn inspect_with_budget(input: &mut dyn Input, limits: &Limits, bounds: &UnpackLimits, budget: &Budget) -> Inspection {
    let mut outer = extract_input(input, limits);
    let spent = Rc::new(Cell::new(budget.spent()));
    let mut walker = Walker { limits, bounds, spent: Rc::clone(&spent), examined: 0, inflater: None, inner: Vec::new() };
    let mut container = None;
    if let Ok(ex) = outer.as_mut() {
        if let Err(problem) = walker.open(input, ex, &[], 0) {
            container = Some(problem);
        }
    }
    budget.spent.fetch_max(spent.get(), std::sync::atomic::Ordering::Relaxed);
    Inspection { outer, container, inner: walker.inner }
}

/// Members examined per call, as a multiple of `max_members` (one archive's worth at every
/// level of a few nested ones).
const EXAMINED_PER_ARCHIVE: u64 = 16;

/// Inner files listed at most per call, whatever the limits (each costs a record in the answer).
const MAX_LISTED: usize = 100_000;

struct Walker<'l> {
    limits: &'l Limits,
    bounds: &'l UnpackLimits,
    /// Bytes decompressed (or read in place as a member) so far.
    spent: Rc<Cell<u64>>,
    /// Members whose first bytes were examined so far, at every depth.
    examined: u64,
    /// A raw-deflate decoder reused for the first bytes of every deflated member.
    inflater: Option<flate2::Decompress>,
    inner: Vec<InnerFile>,
}

/// What the first inflated bytes of a deflated member say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Head {
    /// A format the engine reads: inflated whole and read.
    Known,
    /// XML or HTML text (the parts of a package): nothing inside can carry a label.
    Markup,
    /// Anything else (an image, media, junk): drained and checked from its end, where a ZIP
    /// package behind such a prefix has its end record.
    Unrecognised,
}

/// Text that starts like markup (after a UTF-8 byte order mark and white space) and holds no
/// NUL: an XML part, not a binary prefix.
fn is_markup(head: &[u8]) -> bool {
    let text = head.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(head);
    let start = text.iter().position(|b| !b.is_ascii_whitespace());
    start.is_some_and(|i| text[i] == b'<') && memchr::memchr(0, text).is_none()
}

/// Where an inner file's bytes come from.
enum Body<'b> {
    /// Read in place (a stored member, a held attachment).
    Input(&'b mut dyn Input),
    /// Decompressed as it is read (through the meter that charges the budget).
    Stream(&'b mut dyn Read),
    /// A member of a sequential archive (tar, cpio, ar, 7z) that its reader drains anyway to
    /// reach the next one: a member whose start matches nothing is kept while it is drained (up
    /// to `max_inner_bytes`) and checked from its end too, as a stored ZIP member is.
    Drained(&'b mut dyn Read),
}

impl Walker<'_> {
    /// Opens the members of a file already read as `ex` (if its kind is a container) and visits
    /// each. Container-level findings go to `ex`.
    fn open(&mut self, input: &mut dyn Input, ex: &mut Extraction, path: &[String], depth: u32) -> Result<(), Problem> {
        // Where the file's own structure ends, for the kinds a ZIP can be appended to unseen;
        // `None` for kinds whose readers reject (or flag) trailing data themselves.
        let extent: Option<u64> = match ex.kind {
            FileKind::Gzip | FileKind::Bzip2 | FileKind::Xz | FileKind::Zstd => {
                // The stream's own name (gzip FNAME), else the container's name without its
                // suffix ("q3.docx.gz" → "q3.docx"), else a placeholder.
                let stripped = path.last().and_then(|p| {
                    let lower = p.to_ascii_lowercase();
                    [".gz", ".tgz", ".bz2", ".tbz2", ".xz", ".txz", ".zst", ".tzst"].iter().find(|s| lower.ends_with(*s)).map(|s| {
                        let base = &p[..p.len() - s.len()];
                        if s.starts_with(".t") {
                            format!("{base}.tar")
                        } else {
                            base.to_string()
                        }
                    })
                });
                let name = match ex.kind {
                    FileKind::Gzip => gzip_name(input).or(stripped).unwrap_or_else(|| "(gzip content)".into()),
                    FileKind::Bzip2 => stripped.unwrap_or_else(|| "(bzip2 content)".into()),
                    FileKind::Zstd => stripped.unwrap_or_else(|| "(zstd content)".into()),
                    _ => {
                        xz_dictionary_fits(input, self.bounds.max_inner_bytes)?;
                        stripped.unwrap_or_else(|| "(xz content)".into())
                    }
                };
                let consumed = Rc::new(Cell::new(0));
                let raw = Counted { inner: InputReader::new(input), count: Rc::clone(&consumed) };
                let decoder: Box<dyn Read + '_> = match ex.kind {
                    FileKind::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
                    FileKind::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(raw)),
                    FileKind::Zstd => Box::new(meter::ZstdFrames::new(io::BufReader::new(raw))),
                    _ => Box::new(lzma_rust2::XzReader::new(raw, true)),
                };
                let mut stream = self.meter(decoder, consumed);
                let mut child = path.to_vec();
                child.push(name);
                self.child(Body::Stream(&mut stream), child, depth + 1, None)?;
                // Not looked for a ZIP at its end: compressed data may hold a member's end record
                // verbatim (stored blocks), which is no appended archive.
                None
            }
            FileKind::Tar => {
                let mut reader = InputReader::new(input);
                Some(tar::members(self, &mut reader, path, depth)?)
            }
            FileKind::SevenZ => Some(sevenz::members(self, input, path, depth)?),
            FileKind::Eml => {
                mime::members(self, input, path, depth)?;
                Some(0)
            }
            FileKind::Msg => {
                self.msg_members(input, path, depth)?;
                labelgate_extract::cfb_extent(input, self.limits).ok()
            }
            FileKind::Doc | FileKind::Xls | FileKind::Ppt | FileKind::Cfb => {
                self.cfb_stream_members(input, path, depth)?;
                labelgate_extract::cfb_extent(input, self.limits).ok()
            }
            FileKind::EncryptedOoxml if !ex.flags.contains(&Flag::Encrypted) => {
                // Opened with Excel's default password: the files inside the package are read
                // like those of any package.
                if let Some(package) =
                    labelgate_extract::default_password_package_of(input, self.limits).map_err(|e| Problem::from_extract(&e))?
                {
                    let mut child = path.to_vec();
                    child.push("(decrypted package)".into());
                    let len = package.len() as u64;
                    self.child(Body::Input(&mut SliceInput::new(&package)), child, depth + 1, Some(len))?;
                }
                labelgate_extract::cfb_extent(input, self.limits).ok()
            }
            // The package stream is ciphertext: nothing inside is readable.
            FileKind::ProtectedOoxml | FileKind::EncryptedOoxml => labelgate_extract::cfb_extent(input, self.limits).ok(),
            FileKind::Cpio => {
                cpio::cpio_members(self, &mut InputReader::new(input), path, depth)?;
                None
            }
            FileKind::Ar => {
                cpio::ar_members(self, &mut InputReader::new(input), path, depth)?;
                None
            }
            FileKind::Lzma => {
                // The dictionary the header declares is allocated up front: bounded first.
                let head = input.read_upto(0, 13).map_err(|e| Problem::from_extract(&e))?.into_owned();
                let dict = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as u64;
                let declared = u64::from_le_bytes(head[5..13].try_into().unwrap_or([0xff; 8]));
                if dict.min(declared) > self.bounds.max_inner_bytes.max(64 * 1024 * 1024) {
                    return Err(Problem::NestedLimit { limit: "max_inner_bytes", max: self.bounds.max_inner_bytes });
                }
                let consumed = Rc::new(Cell::new(0));
                let raw = Counted { inner: InputReader::new(input), count: Rc::clone(&consumed) };
                let decoder =
                    lzma_rust2::LzmaReader::new_mem_limit(raw, u32::MAX, None).map_err(|e| Problem::Malformed(format!("lzma: {e}")))?;
                let mut stream = self.meter(Box::new(decoder), consumed);
                let mut child = path.to_vec();
                child
                    .push(path.last().and_then(|p| p.strip_suffix(".lzma").map(str::to_string)).unwrap_or_else(|| "(lzma content)".into()));
                self.child(Body::Stream(&mut stream), child, depth + 1, None)?;
                None
            }
            FileKind::Compress => return Err(Problem::Unsupported("Unix compress (.Z) data is not opened".into())),
            FileKind::Cab => return Err(Problem::Unsupported("cabinet (.cab) archives are not opened".into())),
            FileKind::Wim => return Err(Problem::Unsupported("Windows imaging (.wim) archives are not opened".into())),
            FileKind::Lz4 => return Err(Problem::Unsupported("LZ4 frames are not opened".into())),
            FileKind::Rar => return Err(Problem::Unsupported("RAR archives are not opened".into())),
            FileKind::Tnef => {
                tnef::members(self, input, path, depth)?;
                None
            }
            FileKind::Pdf => {
                self.pdf_attachments(input, path, depth)?;
                // PDFs with data after their end are the extractor's `ambiguous` already.
                None
            }
            kind if is_zip_based(kind) => {
                self.zip_members(input, ex, path, depth)?;
                None
            }
            FileKind::Unknown => {
                self.embedded_7z(input, path, depth)?;
                Some(0)
            }
            // PDFs with data after their end are the extractor's `ambiguous` already.
            _ => None,
        };
        match extent {
            Some(extent) => self.appended_zip(input, ex, path, depth, extent),
            None => Ok(()),
        }
    }

    /// 7-Zip finds a 7z archive behind a self-extractor stub (or any prefix) by its signature and
    /// a start header whose CRC holds: searched in the first 1 MiB of an unrecognised file.
    fn embedded_7z(&mut self, input: &mut dyn Input, path: &[String], depth: u32) -> Result<(), Problem> {
        let Some(at) = embedded_7z_at(input) else { return Ok(()) };
        let len = input.len() - at as u64;
        let Some(mut window) = WindowInput::new(input, at as u64, len) else { return Ok(()) };
        let mut child = path.to_vec();
        child.push(format!("(7z archive at offset {at})"));
        self.child(Body::Input(&mut window), child, depth + 1, Some(len))
    }

    /// ZIP readers find an archive from its end record, whatever precedes it: a ZIP that begins
    /// past the file's own structure (appended to a document, an archive, an image, junk) is
    /// opened too. One that lies inside the file's own data is one of its members, already read.
    fn appended_zip(
        &mut self,
        input: &mut dyn Input,
        ex: &mut Extraction,
        path: &[String],
        depth: u32,
        extent: u64,
    ) -> Result<(), Problem> {
        let Some(end_record) = zip_end_record_in_tail(input) else { return Ok(()) };
        if end_record < extent {
            return Ok(());
        }
        let mut scratch = Extraction::new(ex.kind);
        let listing = zip_members(input, self.limits, self.bounds.max_members, &mut scratch).map_err(|e| Problem::from_extract(&e))?;
        if listing.prefix_len < extent {
            return Ok(());
        }
        ex.flags.extend(scratch.flags);
        for f in scratch.findings {
            ex.finding(f);
        }
        ex.finding(format!("a ZIP archive follows the {} at offset {}", ex.kind, listing.prefix_len));
        // The prefix of an unrecognised file may be anything (a stub, the other half of a
        // polyglot); a recognised file's prefix is the file itself, already read.
        self.read_zip_listing(input, listing, path, depth, ex.kind == FileKind::Unknown)
    }

    fn meter<'r>(&self, decoder: Box<dyn Read + 'r>, consumed: Rc<Cell<u64>>) -> Metered<Box<dyn Read + 'r>> {
        Metered {
            inner: decoder,
            consumed,
            produced: 0,
            budget: Rc::clone(&self.spent),
            max_expanded: self.bounds.max_expanded_bytes,
            max_ratio: self.bounds.max_ratio,
        }
    }

    /// One member: its first bytes decide whether it can carry a label; if so it is read
    /// through the extractor, listed, and opened in turn. An `Err` is the parent's problem
    /// (depth, member count, expansion budget); a problem of the member alone is listed with it.
    fn child(&mut self, body: Body<'_>, path: Vec<String>, depth: u32, size: Option<u64>) -> Result<(), Problem> {
        self.count_examined()?;
        match body {
            Body::Input(input) => {
                // The sniff looks at the end too (a ZIP end record, a PDF's `startxref`).
                let kind = labelgate_extract::sniff_kind_input(input, self.limits).map_err(|e| Problem::from_extract(&e))?;
                if kind.is_none() && embedded_7z_at(input).is_none() {
                    return Ok(());
                }
                // A file read in place counts like one decompressed: overlapping stored members
                // cannot multiply the work for free.
                let spent = self.spent.get().saturating_add(input.len());
                self.spent.set(spent);
                if spent > self.bounds.max_expanded_bytes {
                    return Err(Problem::NestedLimit { limit: "max_expanded_bytes", max: self.bounds.max_expanded_bytes });
                }
                self.admit(depth)?;
                self.visit(input, path, depth);
                Ok(())
            }
            Body::Drained(stream) => {
                let mut head = Vec::with_capacity(SNIFF_BYTES);
                if let Err(e) = stream.take(SNIFF_BYTES as u64).read_to_end(&mut head) {
                    return self.stream_failed(e, path, depth);
                }
                if sniff_kind(&head).is_some() {
                    let mut rest = io::Cursor::new(head).chain(stream);
                    return self.child(Body::Stream(&mut rest), path, depth, size);
                }
                self.drained_unknown(head, stream, path, depth)
            }
            Body::Stream(stream) => {
                let mut head = Vec::with_capacity(SNIFF_BYTES);
                if let Err(e) = stream.take(SNIFF_BYTES as u64).read_to_end(&mut head) {
                    return self.stream_failed(e, path, depth);
                }
                // A start that matches nothing may still be a package behind a prefix: read to
                // the end (keeping its tail) and looked at from there.
                let Some(kind) = sniff_kind(&head) else { return self.drained_unknown(head, stream, path, depth) };
                self.admit(depth)?;
                if kind == FileKind::Tar {
                    // A tar is read as it streams: never held whole.
                    let at = self.list(path.clone(), depth, size, Extraction::new(FileKind::Tar));
                    let mut joined = io::Cursor::new(head).chain(stream);
                    if let Err(problem) = tar::members(self, &mut joined, &path, depth) {
                        self.fail(at, problem)?;
                    }
                    return Ok(());
                }
                let cap = self.bounds.max_inner_bytes;
                let mut held = head;
                // Sized once from the declared size (never past the cap): no regrowth copies.
                if let Some(declared) = size {
                    held.reserve_exact(declared.min(cap.saturating_add(1)).saturating_sub(held.len() as u64) as usize);
                }
                match stream.take(cap.saturating_add(1).saturating_sub(held.len() as u64)).read_to_end(&mut held) {
                    Ok(_) if held.len() as u64 > cap => {
                        let mut ex = Extraction::new(kind);
                        ex.finding(format!("larger than max_inner_bytes ({cap})"));
                        let at = self.list(path, depth, None, ex);
                        self.inner[at].error = Some(Problem::NestedLimit { limit: "max_inner_bytes", max: cap });
                        Ok(())
                    }
                    Ok(_) => {
                        self.visit(&mut SliceInput::new(&held), path, depth);
                        Ok(())
                    }
                    Err(e) => self.stream_failed(e, path, depth),
                }
            }
        }
    }

    /// A drained member whose start matched nothing: kept (to `max_inner_bytes`, then only its
    /// last 64 KiB) while it is read to its end, then checked for a ZIP end record, a 7z behind
    /// a prefix, or a long e-mail header block, and opened if one is there.
    fn drained_unknown(&mut self, head: Vec<u8>, stream: &mut dyn Read, path: Vec<String>, depth: u32) -> Result<(), Problem> {
        const TAIL: usize = 64 * 1024 + 22;
        let cap = self.bounds.max_inner_bytes as usize;
        let mut held = head;
        let mut overflowed = false;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => return self.stream_failed(e, path, depth),
            };
            held.extend_from_slice(&buf[..n]);
            if held.len() > cap {
                overflowed = true;
                // Past the cap only the tail is kept: enough to see an end record.
                let cut = held.len() - TAIL;
                held.drain(..cut);
            }
        }
        let mut input = SliceInput::new(&held);
        let zip_at_end = zip_end_record_in_tail(&mut input).is_some();
        if overflowed {
            if zip_at_end {
                self.admit(depth)?;
                let at = self.list(path, depth, None, Extraction::new(FileKind::Unknown));
                self.inner[at].error = Some(Problem::NestedLimit { limit: "max_inner_bytes", max: self.bounds.max_inner_bytes });
            }
            return Ok(());
        }
        let mail = labelgate_extract::sniff_kind_input(&mut input, self.limits).ok().flatten().is_some();
        if zip_at_end || mail || embedded_7z_at(&mut input).is_some() {
            self.admit(depth)?;
            self.visit(&mut input, path, depth);
        }
        Ok(())
    }

    /// A stream that failed while a member was read: a budget is the parent's problem; a corrupt
    /// stream is the member's (listed as malformed, so policy decides on it).
    fn stream_failed(&mut self, e: io::Error, path: Vec<String>, depth: u32) -> Result<(), Problem> {
        let problem = Problem::from_io(&e, "decompression failed");
        // The transaction's budget stops everything; a member's own ratio or size is the
        // member's problem, and its siblings are still read.
        if matches!(problem, Problem::NestedLimit { limit: "max_expanded_bytes" | "max_members" | "max_depth", .. }) {
            return Err(problem);
        }
        let at = self.list(path, depth, None, Extraction::new(FileKind::Unknown));
        self.inner[at].error = Some(problem);
        Ok(())
    }

    /// May a member at `depth` be read?
    fn admit(&self, depth: u32) -> Result<(), Problem> {
        if depth > self.bounds.max_depth {
            return Err(Problem::NestedLimit { limit: "max_depth", max: self.bounds.max_depth as u64 });
        }
        if self.inner.len() >= MAX_LISTED {
            return Err(Problem::NestedLimit { limit: "max_members", max: MAX_LISTED as u64 });
        }
        Ok(())
    }

    /// Reads one inner file through the extractor, lists it, and opens it if it is a container.
    fn visit(&mut self, input: &mut dyn Input, path: Vec<String>, depth: u32) {
        let size = Some(input.len());
        match extract_input(input, self.limits) {
            Ok(ex) => {
                let worth_hashing = self.bounds.hash_flagged && (ex.is_labeled() || !ex.flags.is_empty());
                let at = self.list(path.clone(), depth, size, ex);
                if worth_hashing {
                    self.inner[at].sha256 = sha256_of(input);
                }
                let mut ex = Extraction::new(self.inner[at].kind);
                let result = self.open(input, &mut ex, &path, depth);
                let file = &mut self.inner[at];
                file.flags.extend(ex.flags);
                for f in ex.findings {
                    if file.findings.len() < 64 {
                        file.findings.push(f);
                    }
                }
                if let Err(problem) = result {
                    if file.error.is_none() {
                        file.error = Some(problem);
                    }
                }
            }
            Err(e) => {
                let at = self.list(path, depth, size, Extraction::new(FileKind::Unknown));
                self.inner[at].error = Some(Problem::from_extract(&e));
            }
        }
    }

    /// Adds an inner file to the list; its index.
    fn list(&mut self, path: Vec<String>, depth: u32, size: Option<u64>, ex: Extraction) -> usize {
        self.inner.push(InnerFile {
            path,
            depth,
            kind: ex.kind,
            size,
            labels: ex.labels,
            flags: ex.flags,
            findings: ex.findings,
            error: None,
            sha256: None,
        });
        self.inner.len() - 1
    }

    /// Records a problem on a listed file; a limit stops the parent too.
    fn fail(&mut self, at: usize, problem: Problem) -> Result<(), Problem> {
        let stop = matches!(problem, Problem::NestedLimit { limit: "max_expanded_bytes", .. });
        if self.inner[at].error.is_none() {
            self.inner[at].error = Some(problem.clone());
        }
        if stop {
            Err(problem)
        } else {
            Ok(())
        }
    }

    /// Files attached to a PDF (name tree, portfolio, annotations, associated files).
    fn pdf_attachments(&mut self, input: &mut dyn Input, path: &[String], depth: u32) -> Result<(), Problem> {
        let attachments = match labelgate_extract::pdf_attachments(
            input,
            self.limits,
            self.bounds.max_inner_bytes,
            self.bounds.max_members as usize,
            self.remaining_budget(),
        ) {
            Ok(a) => a,
            // The document's own reading already reported a damaged structure.
            Err(ExtractError::Malformed { .. }) => return Ok(()),
            Err(e) => return Err(Problem::from_extract(&e)),
        };
        for attachment in attachments {
            let mut child = path.to_vec();
            child.push(attachment.name);
            match attachment.data {
                Ok(data) => self.child(Body::Input(&mut SliceInput::new(&data)), child, depth + 1, Some(data.len() as u64))?,
                Err(e) => self.unreadable(child, depth + 1, None, Problem::from_extract(&e))?,
            }
        }
        Ok(())
    }

    /// Lists a member that cannot be read at all (encrypted, unsupported coding).
    fn unreadable(&mut self, path: Vec<String>, depth: u32, size: Option<u64>, problem: Problem) -> Result<(), Problem> {
        self.admit(depth)?;
        let at = self.list(path, depth, size, Extraction::new(FileKind::Unknown));
        self.inner[at].error = Some(problem);
        Ok(())
    }

    fn zip_members(&mut self, input: &mut dyn Input, ex: &mut Extraction, path: &[String], depth: u32) -> Result<(), Problem> {
        let listing = zip_members(input, self.limits, self.bounds.max_members, ex).map_err(|e| Problem::from_extract(&e))?;
        self.read_zip_listing(input, listing, path, depth, true)
    }

    fn read_zip_listing(
        &mut self,
        input: &mut dyn Input,
        listing: ZipListing,
        path: &[String],
        depth: u32,
        examine_prefix: bool,
    ) -> Result<(), Problem> {
        if examine_prefix && listing.prefix_len > 0 {
            // What precedes the archive is a file of its own to some reader (a polyglot's other
            // half, a stub, a whole other archive): examined like a member.
            let mut child = path.to_vec();
            child.push("(data before the archive)".into());
            if let Some(mut prefix) = WindowInput::new(input, 0, listing.prefix_len) {
                self.child(Body::Input(&mut prefix), child, depth + 1, Some(listing.prefix_len))?;
            }
        }
        for member in listing.members {
            if member.is_directory() {
                continue;
            }
            let mut child = path.to_vec();
            child.push(String::from_utf8_lossy(&member.name).into_owned());
            let size = Some(member.uncompressed_size);
            if member.is_encrypted() {
                let how = if member.method == 99 { "AES" } else { "traditional PKWARE" };
                self.unreadable(child, depth + 1, size, Problem::Encrypted(format!("ZIP member encrypted ({how})")))?;
                continue;
            }
            let Some(offset) = member.data_offset else { continue };
            if member.method == 0 {
                let Some(mut window) = WindowInput::new(input, offset, member.compressed_size) else {
                    self.unreadable(child, depth + 1, size, Problem::Malformed("ZIP member runs past the end of the archive".into()))?;
                    continue;
                };
                self.child(Body::Input(&mut window), child, depth + 1, size)?;
                continue;
            }
            let Some(window) = WindowInput::new(input, offset, member.compressed_size) else {
                self.unreadable(child, depth + 1, size, Problem::Malformed("ZIP member runs past the end of the archive".into()))?;
                continue;
            };
            let mut window = window;
            let head = if member.method == 8 { self.deflated_head(&mut window)? } else { Head::Unrecognised };
            if head == Head::Markup {
                // Most members of most packages: XML parts. Their first bytes, inflated with a
                // reused decoder, say no label can be inside; nothing more is read.
                self.count_examined()?;
                continue;
            }
            if head == Head::Known {
                // A member that may hold a label: inflated once, in one pass, into memory sized
                // from its declared size (never past max_inner_bytes).
                let cap = self.bounds.max_inner_bytes;
                let held = if member.compressed_size > cap.saturating_add(64 * 1024) {
                    Err(Problem::NestedLimit { limit: "max_inner_bytes", max: cap })
                } else {
                    let raw = window.read_at(0, member.compressed_size as usize, "zip").map_err(|e| Problem::from_extract(&e))?;
                    self.inflate_whole(&raw, member.uncompressed_size)
                };
                match held {
                    // Already charged while inflating: refunded so `child` charges it once.
                    Ok(held) => {
                        self.spent.set(self.spent.get().saturating_sub(held.len() as u64));
                        self.child(Body::Input(&mut SliceInput::new(&held)), child, depth + 1, size)?
                    }
                    Err(problem @ Problem::NestedLimit { limit: "max_expanded_bytes", .. }) => return Err(problem),
                    // A member's own limit (its size, its ratio) is the member's: its siblings are
                    // still read.
                    Err(problem) => self.unreadable(child, depth + 1, size, problem)?,
                }
                continue;
            }
            let consumed = Rc::new(Cell::new(0));
            let raw = Counted { inner: InputReader::new(&mut window), count: Rc::clone(&consumed) };
            let decoder: Box<dyn Read + '_> = match member.method {
                8 => Box::new(flate2::read::DeflateDecoder::new(raw)),
                12 => Box::new(bzip2::read::BzDecoder::new(raw)),
                14 => match zip_lzma(raw, member.uncompressed_size, self.bounds.max_inner_bytes) {
                    Ok(d) => d,
                    Err(e) => {
                        self.unreadable(child, depth + 1, size, Problem::Malformed(format!("ZIP LZMA member: {e}")))?;
                        continue;
                    }
                },
                93 => Box::new(meter::ZstdFrames::new(io::BufReader::new(raw))),
                95 => {
                    drop(raw);
                    if let Err(problem) = xz_dictionary_fits(&mut window, self.bounds.max_inner_bytes) {
                        self.unreadable(child, depth + 1, size, problem)?;
                        continue;
                    }
                    Box::new(lzma_rust2::XzReader::new(Counted { inner: InputReader::new(&mut window), count: Rc::clone(&consumed) }, true))
                }
                method => {
                    self.unreadable(child, depth + 1, size, Problem::Unsupported(format!("ZIP compression method {method}")))?;
                    continue;
                }
            };
            let mut stream = self.meter(decoder, consumed);
            // An unrecognised start is drained and checked from its end (a package behind an
            // image header or junk), never held whole past max_inner_bytes.
            self.child(Body::Drained(&mut stream), child, depth + 1, size)?;
        }
        Ok(())
    }

    /// Members examined in all: overlapping entries can make every level of a small archive
    /// fan out again, so the work, not only each archive, is bounded.
    fn count_examined(&mut self) -> Result<(), Problem> {
        self.examined += 1;
        if self.examined > self.bounds.max_members.saturating_mul(EXAMINED_PER_ARCHIVE) {
            return Err(Problem::NestedLimit { limit: "max_members", max: self.bounds.max_members });
        }
        Ok(())
    }

    /// Inflates the first [`SNIFF_BYTES`] of a deflated member with the walker's reused
    /// decoder (setting one up costs more than inflating a small part) and says whether they
    /// match a format the engine reads. A member that does not inflate is "known": the full
    /// read then reports it.
    fn deflated_head(&mut self, window: &mut WindowInput<'_>) -> Result<Head, Problem> {
        // Deflate never needs much more input than output for a prefix: 4 KiB out, 5 KiB in.
        // Most members decide on their first 1 KiB (an XML part's first line is no header field
        // and holds no signature); only an open header block asks for the rest.
        let want = window.len().min(SNIFF_BYTES as u64 + 1024) as usize;
        let raw = window.read_at(0, want, "zip").map_err(|e| Problem::from_extract(&e))?;
        let inflater = self.inflater.get_or_insert_with(|| flate2::Decompress::new(false));
        inflater.reset(false);
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        let mut consumed = 0usize;
        for step in [1024usize, SNIFF_BYTES] {
            head.reserve_exact(step.saturating_sub(head.len()));
            let before = inflater.total_in();
            let status = match inflater.decompress_vec(&raw[consumed..], &mut head, flate2::FlushDecompress::Sync) {
                Ok(status) => status,
                Err(_) => return Ok(Head::Known),
            };
            consumed += (inflater.total_in() - before) as usize;
            let ended = status == flate2::Status::StreamEnd;
            if sniff_kind(&head).is_some() {
                return Ok(Head::Known);
            }
            if ended {
                // The whole member is in `head`: a package behind a prefix would be seen here.
                return Ok(if zip_end_record_in_tail(&mut SliceInput::new(&head)).is_some() { Head::Known } else { Head::Markup });
            }
            if !labelgate_extract::sniff_needs_more(&head) {
                return Ok(if is_markup(&head) { Head::Markup } else { Head::Unrecognised });
            }
            if step == SNIFF_BYTES {
                break;
            }
        }
        // Not decided within the input read: let the full read decide.
        Ok(if head.len() < SNIFF_BYTES && window.len() as usize > want { Head::Known } else { Head::Unrecognised })
    }

    /// Inflates a whole deflated member with the reused decoder: at most `max_inner_bytes`, and
    /// within the expansion ratio.
    fn inflate_whole(&mut self, raw: &[u8], declared: u64) -> Result<Vec<u8>, Problem> {
        let cap = self.bounds.max_inner_bytes;
        let inflater = self.inflater.get_or_insert_with(|| flate2::Decompress::new(false));
        inflater.reset(false);
        let mut out = Vec::with_capacity(declared.min(cap.saturating_add(1)) as usize);
        loop {
            if out.len() == out.capacity() {
                if out.len() as u64 > cap {
                    return Err(Problem::NestedLimit { limit: "max_inner_bytes", max: cap });
                }
                let room = (out.capacity().max(64 * 1024) as u64).min(cap.saturating_add(1).saturating_sub(out.len() as u64).max(1));
                out.reserve_exact(room as usize);
            }
            let consumed = inflater.total_in() as usize;
            let before = (inflater.total_in(), inflater.total_out());
            let status = inflater
                .decompress_vec(&raw[consumed.min(raw.len())..], &mut out, flate2::FlushDecompress::Finish)
                .map_err(|e| Problem::Malformed(format!("ZIP member does not inflate: {e}")))?;
            if out.len() as u64 > meter::RATIO_FLOOR && out.len() as u64 / (inflater.total_in().max(1)) > self.bounds.max_ratio {
                return Err(Problem::NestedLimit { limit: "max_ratio", max: self.bounds.max_ratio });
            }
            if status == flate2::Status::StreamEnd {
                break;
            }
            if (inflater.total_in(), inflater.total_out()) == before && out.len() < out.capacity() {
                return Err(Problem::Malformed("ZIP member is truncated".into()));
            }
        }
        if out.len() as u64 > cap {
            return Err(Problem::NestedLimit { limit: "max_inner_bytes", max: cap });
        }
        // Every byte inflated counts, whatever it turns out to be.
        self.charge(out.len() as u64)?;
        Ok(out)
    }

    /// What is left of the expansion budget.
    fn remaining_budget(&self) -> u64 {
        self.bounds.max_expanded_bytes.saturating_sub(self.spent.get())
    }

    /// Charges `bytes` to the per-call expansion budget.
    fn charge(&mut self, bytes: u64) -> Result<(), Problem> {
        let spent = self.spent.get().saturating_add(bytes);
        self.spent.set(spent);
        if spent > self.bounds.max_expanded_bytes {
            return Err(Problem::NestedLimit { limit: "max_expanded_bytes", max: self.bounds.max_expanded_bytes });
        }
        Ok(())
    }

    /// The streams of a compound file that are files the engine reads (an OLE `Package` holding
    /// a document, anything 7-Zip would list and a user could save): examined like members.
    fn cfb_stream_members(&mut self, input: &mut dyn Input, path: &[String], depth: u32) -> Result<(), Problem> {
        let mut wanted = |head: &[u8]| sniff_kind(head).is_some();
        let streams = labelgate_extract::cfb_streams(
            input,
            self.limits,
            SNIFF_BYTES,
            self.bounds.max_inner_bytes,
            self.bounds.max_members as usize,
            self.remaining_budget(),
            &mut wanted,
        )
        .map_err(|e| Problem::from_extract(&e))?;
        for stream in streams {
            let mut child = path.to_vec();
            child.push(stream.path.join("/"));
            match stream.data {
                Ok(data) => self.child(Body::Input(&mut SliceInput::new(&data)), child, depth + 1, Some(data.len() as u64))?,
                Err(e) => self.unreadable(child, depth + 1, None, Problem::from_extract(&e))?,
            }
        }
        // Documents embedded as storages (Word's `ObjectPool/_1234`, Excel's `MBD…`): read as the
        // compound files they were; their own embeddings are streams and storages found above.
        let documents = labelgate_extract::cfb_embedded_documents(input, self.limits, self.bounds.max_members as usize)
            .map_err(|e| Problem::from_extract(&e))?;
        for document in documents {
            self.count_examined()?;
            self.admit(depth + 1)?;
            let mut child = path.to_vec();
            child.push(document.path.join("/"));
            match document.extraction {
                Ok(ex) => {
                    self.list(child, depth + 1, None, ex);
                }
                Err(e) => {
                    let at = self.list(child, depth + 1, None, Extraction::new(FileKind::Cfb));
                    self.inner[at].error = Some(Problem::from_extract(&e));
                }
            }
        }
        Ok(())
    }

    fn msg_members(&mut self, input: &mut dyn Input, path: &[String], depth: u32) -> Result<(), Problem> {
        let room = self.bounds.max_depth.saturating_sub(depth) as usize;
        let bounds = MsgBounds {
            max_attachment_bytes: self.bounds.max_inner_bytes,
            max_depth: room.saturating_sub(1),
            max_attachments: self.bounds.max_members as usize,
            max_total_bytes: self.remaining_budget(),
        };
        let attachments = msg_attachments(input, self.limits, bounds).map_err(|e| Problem::from_extract(&e))?;
        for attachment in attachments {
            let inner_depth = depth + attachment.path.len() as u32;
            let mut child = path.to_vec();
            child.extend(attachment.path);
            match attachment.content {
                MsgContent::File(bytes) => {
                    self.child(Body::Input(&mut SliceInput::new(&bytes)), child, inner_depth, Some(bytes.len() as u64))?
                }
                MsgContent::Message(ex) => {
                    self.admit(inner_depth)?;
                    self.list(child, inner_depth, None, ex);
                }
                MsgContent::Unreadable(ExtractError::Malformed { reason, .. }) if reason.starts_with("unsupported: ") => {
                    self.unreadable(child, inner_depth, None, Problem::Unsupported(reason.trim_start_matches("unsupported: ").to_string()))?
                }
                MsgContent::Unreadable(e) => self.unreadable(child, inner_depth, None, Problem::from_extract(&e))?,
            }
        }
        Ok(())
    }
}

/// Where a 7z archive starts behind a prefix, in the first 1 MiB of `input`: its signature and a
/// start header whose CRC holds.
fn embedded_7z_at(input: &mut dyn Input) -> Option<usize> {
    const SIGNATURE: &[u8] = b"7z\xbc\xaf\x27\x1c";
    let head = input.read_upto(0, 1024 * 1024 + 32).ok()?;
    memchr::memmem::find_iter(&head, SIGNATURE).find(|&at| {
        at > 0 && head.get(at + 8..at + 32).is_some_and(|h| crc32fast::hash(&h[4..]) == u32::from_le_bytes([h[0], h[1], h[2], h[3]]))
    })
}

/// Hex SHA-256 of an input, read in 64 KiB pieces.
fn sha256_of(input: &mut dyn Input) -> Option<String> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let mut at = 0u64;
    while at < input.len() {
        let piece = input.read_upto(at, 64 * 1024).ok()?;
        if piece.is_empty() {
            return None;
        }
        at += piece.len() as u64;
        hasher.update(&piece);
    }
    Some(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// ZIP method 14: a 4-byte LZMA SDK version/size header, 5 bytes of properties, raw LZMA.
fn zip_lzma<'r, R: Read + 'r>(mut raw: R, size: u64, cap: u64) -> io::Result<Box<dyn Read + 'r>> {
    let mut header = [0u8; 9];
    raw.read_exact(&mut header)?;
    let props_len = u16::from_le_bytes([header[2], header[3]]);
    if props_len != 5 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "LZMA properties are not 5 bytes"));
    }
    let dict = u32::from_le_bytes([header[5], header[6], header[7], header[8]]);
    // The dictionary is allocated up front: never more than the data it serves, nor more than
    // is ever read of it (back-references cannot reach further than the output so far).
    let dict = dict.min(u32::try_from(size.min(cap.saturating_add(1))).unwrap_or(u32::MAX)).max(4096);
    let reader = lzma_rust2::LzmaReader::new_with_props(raw, size, header[4], dict, None)?;
    Ok(Box::new(reader))
}

/// The original file name a gzip header may carry (FNAME).
fn gzip_name(input: &mut dyn Input) -> Option<String> {
    let head = input.read_upto(0, 4096).ok()?.into_owned();
    let flags = *head.get(3)?;
    let mut at = 10usize;
    if flags & 4 != 0 {
        let len = u16::from_le_bytes([*head.get(10)?, *head.get(11)?]) as usize;
        at += 2 + len;
    }
    if flags & 8 == 0 {
        return None;
    }
    let rest = head.get(at..)?;
    let end = memchr::memchr(0, rest)?;
    let name = String::from_utf8_lossy(&rest[..end]).into_owned();
    (!name.is_empty()).then_some(name)
}

/// The xz decoder allocates the dictionary each block header declares (up to 4 GiB) when it
/// reaches that block. Every block of every stream is found from the streams' indexes (read
/// backwards from the end, as `xz --list` does) and its LZMA2 dictionary checked against `cap`
/// (never below 64 MiB, what xz -9 uses) before anything is decoded.
fn xz_dictionary_fits(input: &mut dyn Input, cap: u64) -> Result<(), Problem> {
    let cap = cap.max(64 * 1024 * 1024);
    let bad = |why: &str| Problem::Malformed(format!("xz: {why}"));
    let read = |input: &mut dyn Input, at: u64, len: usize| -> Result<Vec<u8>, Problem> {
        input.read_at(at, len, "xz").map(|c| c.into_owned()).map_err(|_| bad("a structure points past the end"))
    };
    let mut end = input.len();
    let mut blocks_seen = 0usize;
    while end > 0 {
        // Stream padding: groups of four zero bytes, read a piece at a time.
        if end >= 4 && read(input, end - 4, 4)? == [0, 0, 0, 0] {
            let piece_len = end.min(64 * 1024) as usize & !3;
            let piece = read(input, end - piece_len as u64, piece_len)?;
            let zeros = piece.rchunks_exact(4).take_while(|c| *c == [0, 0, 0, 0]).count() as u64;
            end -= zeros * 4;
            continue;
        }
        if end < 24 {
            return Err(bad("shorter than a stream"));
        }
        let footer = read(input, end - 12, 12)?;
        if &footer[10..12] != b"YZ" {
            return Err(bad("no stream footer"));
        }
        let backward = (u32::from_le_bytes([footer[4], footer[5], footer[6], footer[7]]) as u64 + 1) * 4;
        let index_at = end.checked_sub(12 + backward).ok_or_else(|| bad("index past the start"))?;
        if backward > 64 * 1024 * 1024 {
            return Err(Problem::NestedLimit { limit: "max_inner_bytes", max: cap });
        }
        let index = read(input, index_at, backward as usize)?;
        let mut at = 1usize; // index indicator 0x00
        let mut varint = || -> Result<u64, Problem> {
            let mut value = 0u64;
            for i in 0..9 {
                let b = *index.get(at).ok_or_else(|| bad("index ends early"))?;
                at += 1;
                value |= ((b & 0x7f) as u64) << (7 * i);
                if b & 0x80 == 0 {
                    return Ok(value);
                }
            }
            Err(bad("index number too long"))
        };
        let records = varint()?;
        let mut sizes = Vec::new();
        for _ in 0..records {
            let unpadded = varint()?;
            let _uncompressed = varint()?;
            sizes.push(unpadded.div_ceil(4) * 4);
            blocks_seen += 1;
            if blocks_seen > 1_000_000 {
                return Err(Problem::NestedLimit { limit: "max_members", max: 1_000_000 });
            }
        }
        let blocks_total: u64 = sizes.iter().try_fold(0u64, |a, &b| a.checked_add(b)).ok_or_else(|| bad("block sizes overflow"))?;
        let stream_start =
            blocks_total.checked_add(12).and_then(|b| index_at.checked_sub(b)).ok_or_else(|| bad("blocks past the start"))?;
        let mut block_at = stream_start + 12;
        for size in sizes {
            let header_size = read(input, block_at, 1)?[0] as usize;
            if header_size == 0 {
                return Err(bad("a block header where the index puts a block"));
            }
            let header = read(input, block_at, (header_size + 1) * 4)?;
            check_xz_block_header(&header, cap)?;
            block_at = block_at.checked_add(size).ok_or_else(|| bad("block sizes overflow"))?;
        }
        end = stream_start;
    }
    Ok(())
}

fn check_xz_block_header(header: &[u8], cap: u64) -> Result<(), Problem> {
    let Some(&flags) = header.get(1) else { return Ok(()) };
    let mut at = 2usize;
    let varint = |at: &mut usize| -> Option<u64> {
        let mut value = 0u64;
        for i in 0..9 {
            let b = *header.get(*at)?;
            *at += 1;
            value |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    };
    if flags & 0x40 != 0 {
        varint(&mut at);
    }
    if flags & 0x80 != 0 {
        varint(&mut at);
    }
    for _ in 0..=(flags & 3) {
        let (Some(id), Some(props)) = (varint(&mut at), varint(&mut at)) else { return Ok(()) };
        if id == 0x21 && props == 1 {
            let code = header.get(at).copied().unwrap_or(0) as u32;
            let dict: u64 = if code >= 40 { u32::MAX as u64 } else { (2 | (code as u64 & 1)) << (code / 2 + 11) };
            if dict > cap {
                return Err(Problem::NestedLimit { limit: "max_inner_bytes", max: cap });
            }
        }
        at += props as usize;
    }
    Ok(())
}

/// Kinds whose bytes are a ZIP archive (plain ZIP and every OPC package).
fn is_zip_based(kind: FileKind) -> bool {
    !matches!(
        kind,
        FileKind::Pdf
            | FileKind::ProtectedOoxml
            | FileKind::EncryptedOoxml
            | FileKind::Doc
            | FileKind::Xls
            | FileKind::Ppt
            | FileKind::Msg
            | FileKind::Cfb
            | FileKind::Eml
            | FileKind::Gzip
            | FileKind::Bzip2
            | FileKind::Xz
            | FileKind::Zstd
            | FileKind::Lzma
            | FileKind::Cpio
            | FileKind::Ar
            | FileKind::Compress
            | FileKind::Cab
            | FileKind::Wim
            | FileKind::Lz4
            | FileKind::Tar
            | FileKind::SevenZ
            | FileKind::Rar
            | FileKind::Tnef
            | FileKind::Unknown
    )
}
