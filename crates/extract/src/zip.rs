//! A ZIP reader built for inspection rather than extraction: the central directory is
//! authoritative, every entry we read has its local header cross-checked, and only the entries
//! asked for are inflated, each under a size cap.
//!
//! General-purpose ZIP crates hide the disagreements an attacker uses (a local header that names
//! another file, a second end record in the comment, sizes that differ): here each one becomes a
//! finding with the `ambiguous` flag.

use crate::error::ExtractError;
use crate::input::Input;
use crate::limits::Limits;
use crate::model::Extraction;

const EOCD_SIG: &[u8; 4] = b"PK\x05\x06";
const ZIP64_LOCATOR_SIG: &[u8; 4] = b"PK\x06\x07";
const ZIP64_EOCD_SIG: &[u8; 4] = b"PK\x06\x06";
const CDH_SIG: &[u8; 4] = b"PK\x01\x02";
const LFH_SIG: &[u8; 4] = b"PK\x03\x04";
const DD_SIG: &[u8; 4] = b"PK\x07\x08";
const MAX_EOCD_SEARCH: u64 = 22 + 65_535;

/// One central-directory entry.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Where the name sits in `Archive::directory`.
    pub name_at: usize,
    pub name_len: usize,
    /// The name holds a `%` (it may percent-encode a part name).
    pub percent: bool,
    pub method: u16,
    pub flags: u16,
    pub crc32: u32,
    pub compressed_size: u64,
    pub uncompressed_size: u64,
    pub local_offset: u64,
}

pub(crate) struct Archive {
    /// The raw central directory; entry names point into it.
    pub directory: Vec<u8>,
    pub entries: Vec<Entry>,
    /// Where the central directory starts in the input (after any prefix correction).
    pub directory_start: u64,
}

impl Archive {
    pub(crate) fn name(&self, entry: &Entry) -> &[u8] {
        &self.directory[entry.name_at..entry.name_at + entry.name_len]
    }
}

fn u16le(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2).map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}
fn u32le(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4).map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}
fn u64le(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8).map_or(0, |s| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        u64::from_le_bytes(a)
    })
}

fn malformed(reason: impl Into<String>) -> ExtractError {
    ExtractError::malformed("zip", reason)
}

/// Reads the end records and the central directory.
pub(crate) fn open(input: &mut dyn Input, limits: &Limits, ex: &mut Extraction) -> Result<Archive, ExtractError> {
    let len = input.len();
    let tail_len = len.min(MAX_EOCD_SEARCH);
    let tail_start = len - tail_len;
    // Copy out only the end record (22 bytes) and what may precede it (zip64 locator).
    let (eocd_in_tail, eocd_and_locator) = {
        let tail = input.read_at(tail_start, tail_len as usize, "zip")?;
        // Candidates whose comment runs exactly to the end of the file; a second one hiding in a
        // comment is a parser differential.
        let mut exact = Vec::new();
        let mut loose = None;
        // Forward search is vectorised; reverse search is not.
        let mut found: Vec<usize> = memchr::memmem::find_iter(&tail, EOCD_SIG).collect();
        found.reverse();
        for p in found {
            if p + 22 > tail.len() {
                continue;
            }
            let comment_len = u16le(&tail, p + 20) as usize;
            if p + 22 + comment_len == tail.len() {
                exact.push(p);
            } else if loose.is_none() {
                loose = Some(p);
            }
        }
        let at = match (exact.first(), loose) {
            (Some(&p), _) => {
                if exact.len() > 1 {
                    ex.ambiguous("zip: more than one end-of-central-directory record");
                    // An empty record hiding at the end of another's comment is a decoy: the
                    // one that lists entries is the archive 7-Zip reads.
                    exact.iter().copied().find(|&q| u16le(&tail, q + 10) > 0).unwrap_or(p)
                } else {
                    p
                }
            }
            (None, Some(p)) => {
                ex.finding("zip: data after the end-of-central-directory record");
                p
            }
            (None, None) => return Err(malformed("no end-of-central-directory record")),
        };
        let from = at.saturating_sub(20);
        (at - from, (tail_start + at as u64, tail[from..at + 22].to_vec()))
    };
    let (eocd_pos, tail) = eocd_and_locator;
    let eocd = &tail[eocd_in_tail..];
    if u16le(eocd, 4) != 0 || u16le(eocd, 6) != 0 {
        return Err(malformed("multi-disk archives are not supported"));
    }
    let mut total_entries = u16le(eocd, 10) as u64;
    let mut cd_size = u32le(eocd, 12) as u64;
    let mut cd_offset = u32le(eocd, 16) as u64;
    let mut cd_end = eocd_pos;

    // Zip64: a locator just before the end record points at the zip64 end record.
    if eocd_in_tail >= 20 && &tail[eocd_in_tail - 20..eocd_in_tail - 16] == ZIP64_LOCATOR_SIG {
        let loc = &tail[eocd_in_tail - 20..eocd_in_tail];
        let z64_offset = u64le(loc, 8);
        let z64 = read_zip64_eocd(input, z64_offset, eocd_pos - 20)?;
        if let Some((pos, rec)) = z64 {
            let (entries64, size64, offset64) = (u64le(&rec, 32), u64le(&rec, 40), u64le(&rec, 48));
            // A classic field that is not the zip64 sentinel must agree: readers that ignore
            // zip64 follow the classic record.
            if (total_entries != 0xFFFF && total_entries != entries64)
                || (cd_size != 0xFFFF_FFFF && cd_size != size64)
                || (cd_offset != 0xFFFF_FFFF && cd_offset != offset64)
            {
                ex.ambiguous("zip: the end record and the zip64 end record describe different directories");
            }
            total_entries = entries64;
            cd_size = size64;
            cd_offset = offset64;
            cd_end = pos;
        }
    }

    if total_entries > limits.max_zip_entries {
        return Err(ExtractError::limit("max_zip_entries", limits.max_zip_entries));
    }
    if cd_size > limits.max_central_directory_bytes {
        return Err(ExtractError::limit("max_central_directory_bytes", limits.max_central_directory_bytes));
    }
    if cd_size > cd_end {
        return Err(malformed("central directory larger than the file"));
    }
    // Where the directory really is: at its declared offset, or (with data prepended to the
    // archive, as in self-extracting stubs) right before the end records.
    let actual_start = cd_end - cd_size;
    let mut delta: u64 = 0;
    let declared_ok = cd_offset.checked_add(cd_size).is_some_and(|e| e <= len) && input.read_upto(cd_offset, 4)?.as_ref() == CDH_SIG;
    let cd_start = if declared_ok || total_entries == 0 {
        cd_offset
    } else if actual_start > cd_offset && input.read_upto(actual_start, 4)?.as_ref() == CDH_SIG {
        delta = actual_start - cd_offset;
        ex.finding(format!("zip: {delta} bytes precede the archive"));
        actual_start
    } else {
        return Err(malformed("central directory not found at its declared offset"));
    };
    let cd = input.read_at(cd_start, cd_size as usize, "zip")?.into_owned();

    let mut entries = Vec::with_capacity(total_entries.min(4096) as usize);
    let mut at = 0usize;
    while at + 46 <= cd.len() && &cd[at..at + 4] == CDH_SIG {
        if entries.len() as u64 >= limits.max_zip_entries {
            return Err(ExtractError::limit("max_zip_entries", limits.max_zip_entries));
        }
        let h = &cd[at..];
        let flags = u16le(h, 8);
        let method = u16le(h, 10);
        let crc32 = u32le(h, 16);
        let mut compressed_size = u32le(h, 20) as u64;
        let mut uncompressed_size = u32le(h, 24) as u64;
        let name_len = u16le(h, 28) as usize;
        let extra_len = u16le(h, 30) as usize;
        let comment_len = u16le(h, 32) as usize;
        let mut local_offset = u32le(h, 42) as u64;
        let record_len = 46 + name_len + extra_len + comment_len;
        let Some(record) = cd.get(at..at + record_len) else {
            return Err(malformed("central directory entry runs past the directory"));
        };
        let extra = &record[46 + name_len..46 + name_len + extra_len];
        // Zip64 extended information: present fields follow the order of the sentinels.
        let mut e = 0usize;
        while e + 4 <= extra.len() {
            let id = u16le(extra, e);
            let size = u16le(extra, e + 2) as usize;
            let Some(data) = extra.get(e + 4..e + 4 + size) else { break };
            if id == 0x0001 {
                let mut f = 0usize;
                let mut take = |v: &mut u64| {
                    if *v == 0xFFFF_FFFF && f + 8 <= data.len() {
                        *v = u64le(data, f);
                        f += 8;
                    }
                };
                take(&mut uncompressed_size);
                take(&mut compressed_size);
                take(&mut local_offset);
            }
            e += 4 + size;
        }
        entries.push(Entry {
            name_at: at + 46,
            name_len,
            percent: memchr::memchr(b'%', &record[46..46 + name_len]).is_some(),
            method,
            flags,
            crc32,
            compressed_size,
            uncompressed_size,
            local_offset: local_offset.saturating_add(delta),
        });
        at += record_len;
    }
    if at != cd.len() {
        ex.ambiguous("zip: the central directory holds bytes that are not entries");
    }
    // A directory found where it says it is, but local headers that are not where it says:
    // offsets counted from the archive's start behind a prefix whose directory offset alone was
    // corrected. 7-Zip reads it (a "headers error"): so must this reader.
    // (Or a directory offset that was wrong, so the correction above was too.)
    if let Some(first) = entries.iter().map(|e| e.local_offset).min() {
        if input.read_upto(first, 4)?.as_ref() != LFH_SIG {
            if let Some(found) = first_local_header(input, cd_start)? {
                let shift = found as i64 - first as i64;
                let moved = |e: &Entry| e.local_offset.checked_add_signed(shift);
                let mut fits = shift != 0;
                for e in entries.iter().take(3) {
                    fits &= match moved(e) {
                        Some(at) => input.read_upto(at, 4)?.as_ref() == LFH_SIG,
                        None => false,
                    };
                }
                if fits {
                    ex.ambiguous(format!("zip: local headers lie {shift} bytes from where the central directory puts them"));
                    for e in &mut entries {
                        e.local_offset = moved(e).unwrap_or(e.local_offset);
                    }
                }
            }
        }
    }
    if total_entries != 0xFFFF && entries.len() as u64 != total_entries {
        ex.ambiguous(format!("zip: the end record counts {total_entries} entries, the central directory holds {}", entries.len()));
    }
    Ok(Archive { directory: cd, entries, directory_start: cd_start })
}

fn read_zip64_eocd(input: &mut dyn Input, declared: u64, locator_pos: u64) -> Result<Option<(u64, Vec<u8>)>, ExtractError> {
    let try_at = |input: &mut dyn Input, at: u64| -> Result<Option<Vec<u8>>, ExtractError> {
        let rec = input.read_upto(at, 56)?;
        if rec.len() == 56 && &rec[..4] == ZIP64_EOCD_SIG {
            Ok(Some(rec.into_owned()))
        } else {
            Ok(None)
        }
    };
    if let Some(rec) = try_at(input, declared)? {
        return Ok(Some((declared, rec)));
    }
    // Prepended data: the record sits right before the locator (no extensible data sector).
    if locator_pos >= 56 {
        if let Some(rec) = try_at(input, locator_pos - 56)? {
            return Ok(Some((locator_pos - 56, rec)));
        }
    }
    Err(malformed("zip64 locator points at no zip64 end record"))
}

/// Reads and decompresses one entry, capped at `max_part_bytes`. `Ok(None)` when the entry
/// cannot be read for a reason recorded as a finding (encrypted, unknown method, broken local
/// header); those set the `ambiguous` flag because Office might read what we cannot.
pub(crate) fn read_entry(
    input: &mut dyn Input,
    archive: &Archive,
    entry: &Entry,
    limits: &Limits,
    ex: &mut Extraction,
) -> Result<Option<Vec<u8>>, ExtractError> {
    let Some(compressed) = entry_payload(input, archive, entry, limits, ex)? else { return Ok(None) };
    let what = shown_name(archive.name(entry));
    let data = match entry.method {
        0 => compressed,
        _ => match crate::inflate::inflate(&compressed, false, limits.max_part_bytes, entry.uncompressed_size as usize) {
            Ok(d) => d,
            Err(crate::inflate::InflateError::TooLarge) => return Err(ExtractError::limit("max_part_bytes", limits.max_part_bytes)),
            Err(crate::inflate::InflateError::Corrupt) => {
                ex.ambiguous(format!("zip: entry {what} does not inflate"));
                return Ok(None);
            }
        },
    };
    if data.len() as u64 != entry.uncompressed_size {
        ex.ambiguous(format!("zip: entry {what} inflates to {} bytes, the central directory says {}", data.len(), entry.uncompressed_size));
    }
    if crc32fast::hash(&data) != entry.crc32 {
        ex.ambiguous(format!("zip: entry {what} fails its CRC check"));
    }
    Ok(Some(data))
}

/// The still-compressed bytes of an entry (method 0 or 8) after its local header has been
/// cross-checked against the central directory; `Ok(None)` with a finding when unreadable.
pub(crate) fn entry_payload(
    input: &mut dyn Input,
    archive: &Archive,
    entry: &Entry,
    limits: &Limits,
    ex: &mut Extraction,
) -> Result<Option<Vec<u8>>, ExtractError> {
    let what = shown_name(archive.name(entry));
    if entry.flags & 1 != 0 {
        ex.ambiguous(format!("zip: entry {what} is encrypted"));
        return Ok(None);
    }
    if entry.uncompressed_size > limits.max_part_bytes {
        return Err(ExtractError::limit("max_part_bytes", limits.max_part_bytes));
    }
    let Some(data_offset) = local_data_offset(input, archive, entry, ex)? else { return Ok(None) };
    // Deflate never expands a part by more than a small constant; anything larger is not a
    // metadata part we should be holding.
    let max_compressed = limits.max_part_bytes + 64 * 1024;
    if entry.compressed_size > max_compressed {
        return Err(ExtractError::limit("max_part_bytes", limits.max_part_bytes));
    }
    if !matches!(entry.method, 0 | 8) {
        ex.ambiguous(format!("zip: entry {what} uses unsupported compression method {}", entry.method));
        return Ok(None);
    }
    Ok(Some(input.read_at(data_offset, entry.compressed_size as usize, "zip")?.into_owned()))
}

/// Where an entry's (still compressed) data starts: for readers that stream it.
pub(crate) fn entry_data_offset(
    input: &mut dyn Input,
    archive: &Archive,
    entry: &Entry,
    ex: &mut Extraction,
) -> Result<Option<u64>, ExtractError> {
    local_data_offset(input, archive, entry, ex)
}

/// Where an entry's data starts, after its local header has been cross-checked against the
/// central directory (each disagreement is an `ambiguous` finding); `Ok(None)` with a finding
/// when there is no local header where the directory points.
fn local_data_offset(input: &mut dyn Input, archive: &Archive, entry: &Entry, ex: &mut Extraction) -> Result<Option<u64>, ExtractError> {
    let raw_name = archive.name(entry);
    let what = shown_name(raw_name);
    let header = input.read_upto(entry.local_offset, 30)?.into_owned();
    if header.len() < 30 || &header[..4] != LFH_SIG {
        ex.ambiguous(format!("zip: entry {what} has no local header where the central directory points"));
        return Ok(None);
    }
    let local_flags = u16le(&header, 6);
    let local_method = u16le(&header, 8);
    let local_crc = u32le(&header, 14);
    let local_csize = u32le(&header, 18);
    let local_usize = u32le(&header, 22);
    let name_len = u16le(&header, 26) as usize;
    let extra_len = u16le(&header, 28) as usize;
    let local_name = input.read_at(entry.local_offset + 30, name_len, "zip")?;
    if local_name.as_ref() != raw_name {
        let shown = shown_name(&local_name);
        ex.ambiguous(format!("zip: entry {what}: local header names {shown:?}"));
    }
    if local_method != entry.method {
        ex.ambiguous(format!(
            "zip: entry {what}: local header compression method {local_method} differs from the central directory's {}",
            entry.method
        ));
    }
    if (local_flags & 8) != (entry.flags & 8) || (local_flags & 1) != (entry.flags & 1) {
        ex.ambiguous(format!("zip: entry {what}: local header flags differ from the central directory"));
    }
    if local_flags & 8 == 0 {
        let sizes_differ = (local_csize != 0xFFFF_FFFF && local_csize as u64 != entry.compressed_size)
            || (local_usize != 0xFFFF_FFFF && local_usize as u64 != entry.uncompressed_size);
        if local_crc != entry.crc32 || sizes_differ {
            ex.ambiguous(format!("zip: entry {what}: local header CRC or sizes differ from the central directory"));
        }
    }
    let data_offset = entry.local_offset + 30 + name_len as u64 + extra_len as u64;
    if entry.method != 0 && entry.compressed_size == 0 {
        // Compressed data is never empty (an empty deflate stream is 2 bytes): the directory
        // hides what a streaming reader would inflate from the local entry.
        ex.ambiguous(format!("zip: entry {what} is compressed but the central directory gives it no data"));
    }
    if entry.flags & 8 != 0 {
        // The data descriptor after the data must agree with the directory.
        let descriptor = input.read_upto(data_offset.saturating_add(entry.compressed_size), 24)?.into_owned();
        let fields = if descriptor.starts_with(DD_SIG) { descriptor.get(4..) } else { Some(&descriptor[..]) };
        let agrees = fields.is_some_and(|f| {
            u32le(f, 0) == entry.crc32
                && (u32le(f, 4) as u64 == entry.compressed_size & 0xFFFF_FFFF || u64le(f, 4) == entry.compressed_size)
        });
        if !agrees {
            ex.ambiguous(format!("zip: entry {what}: the data descriptor disagrees with the central directory"));
        }
    }
    Ok(Some(data_offset))
}

/// A member name for a finding: lossy UTF-8, at most 200 characters (names may be 64 KiB).
fn shown_name(raw: &[u8]) -> String {
    let name = String::from_utf8_lossy(&raw[..raw.len().min(800)]);
    let mut shown: String = name.chars().take(200).collect();
    if shown.len() < name.len() || raw.len() > 800 {
        shown.push('…');
    }
    shown
}

/// One member of a ZIP archive, as its central directory lists it.
#[derive(Debug, Clone)]
pub struct ZipMember {
    /// The name as stored (any bytes; usually UTF-8 or CP437). Never a path to write to.
    pub name: Vec<u8>,
    /// Compression method (0 stored, 8 deflate, 12 bzip2, 14 LZMA, 95 xz, 99 AES, …).
    pub method: u16,
    /// General-purpose flags (bit 0: encrypted).
    pub flags: u16,
    /// CRC-32 of the uncompressed data, as the directory states it.
    pub crc32: u32,
    /// Compressed size, as the directory states it.
    pub compressed_size: u64,
    /// Uncompressed size, as the directory states it.
    pub uncompressed_size: u64,
    /// Where the member's (compressed) data starts in the archive; `None` when its local
    /// header is missing (the archive is then `ambiguous`).
    pub data_offset: Option<u64>,
}

impl ZipMember {
    /// Encrypted (traditional PKWARE encryption, or WinZip AES as method 99).
    pub fn is_encrypted(&self) -> bool {
        self.flags & 1 != 0 || self.method == 99
    }

    /// A directory entry (name ends with `/` and holds no data).
    pub fn is_directory(&self) -> bool {
        self.name.ends_with(b"/") && self.uncompressed_size == 0
    }
}

/// What a ZIP archive holds: its members as the central directory lists them, and what lies
/// outside them.
#[derive(Debug, Clone, Default)]
pub struct ZipListing {
    /// Members, in central-directory order, then any member found only by its local header in
    /// bytes the directory does not account for (7-Zip and some tools extract those too).
    pub members: Vec<ZipMember>,
    /// Bytes before the first member (a self-extractor stub, a polyglot's other file, or a
    /// whole other archive); 0 when the archive starts at the first byte.
    pub prefix_len: u64,
}

/// Every member of the ZIP archive held by `input`, with the local headers cross-checked:
/// disagreements are recorded in `ex` as `ambiguous` findings, and so is a local header in
/// bytes the central directory does not account for (its member is listed too). At most
/// `max_members` members (else `LimitExceeded { limit: "max_members" }`).
pub fn zip_members(input: &mut dyn Input, limits: &Limits, max_members: u64, ex: &mut Extraction) -> Result<ZipListing, ExtractError> {
    let bounded = Limits { max_zip_entries: limits.max_zip_entries.min(max_members), ..limits.clone() };
    let archive = match open(input, &bounded, ex) {
        Err(ExtractError::LimitExceeded { limit: "max_zip_entries", .. }) if max_members < limits.max_zip_entries => {
            return Err(ExtractError::limit("max_members", max_members))
        }
        other => other?,
    };
    let mut members = Vec::with_capacity(archive.entries.len());
    // Byte ranges the directory accounts for: each member's header and data, and the directory
    // with the end records.
    let mut covered: Vec<(u64, u64)> = vec![(archive.directory_start, input.len())];
    // Entries that share a local header (overlapping members, a bomb's shape) are checked once.
    let mut checked: std::collections::HashMap<u64, Option<u64>> = std::collections::HashMap::new();
    let mut shared = false;
    for entry in &archive.entries {
        let data_offset = match checked.get(&entry.local_offset) {
            Some(&known) => {
                if !shared {
                    shared = true;
                    ex.ambiguous("zip: several central-directory entries point at one local header");
                }
                known
            }
            None => {
                let found = local_data_offset(input, &archive, entry, ex)?;
                checked.insert(entry.local_offset, found);
                found
            }
        };
        if let Some(at) = data_offset {
            // A data descriptor (up to 24 bytes) may follow the data.
            let slack = if entry.flags & 8 != 0 { 24 } else { 0 };
            covered.push((entry.local_offset, at.saturating_add(entry.compressed_size).saturating_add(slack)));
        }
        members.push(ZipMember {
            name: archive.name(entry).to_vec(),
            method: entry.method,
            flags: entry.flags,
            crc32: entry.crc32,
            compressed_size: entry.compressed_size,
            uncompressed_size: entry.uncompressed_size,
            data_offset,
        });
    }
    let prefix_len = archive.entries.iter().map(|e| e.local_offset).min().unwrap_or(archive.directory_start).min(archive.directory_start);
    for (start, end) in gaps(&mut covered, 0) {
        for at in find_in_range(input, start, end, LFH_SIG)? {
            if members.len() as u64 >= max_members {
                return Err(ExtractError::limit("max_members", max_members));
            }
            ex.ambiguous(format!("zip: a local file header at offset {at} is not in the central directory"));
            if let Some(hidden) = hidden_member(input, at, end)? {
                members.push(hidden);
            }
        }
    }
    Ok(ZipListing { members, prefix_len })
}

/// The uncovered ranges from `from` to the end.
fn gaps(covered: &mut [(u64, u64)], from: u64) -> Vec<(u64, u64)> {
    covered.sort_unstable();
    let mut out = Vec::new();
    let mut at = from;
    for &(start, end) in covered.iter() {
        if start > at {
            out.push((at, start));
        }
        at = at.max(end);
    }
    out
}

/// Offsets of `needle` in `input[start..end]`, read in 1 MiB pieces (overlapping by the
/// needle's length).
fn find_in_range(input: &mut dyn Input, start: u64, end: u64, needle: &[u8]) -> Result<Vec<u64>, ExtractError> {
    const PIECE: u64 = 1024 * 1024;
    let mut found = Vec::new();
    let mut at = start;
    while at < end && found.len() < 4096 {
        let len = (end - at).min(PIECE + needle.len() as u64);
        let piece = input.read_at(at, len as usize, "zip")?;
        for p in memchr::memmem::find_iter(&piece, needle) {
            if (p as u64) < PIECE || at + len == end {
                found.push(at + p as u64);
            }
        }
        at += PIECE;
    }
    found.dedup();
    Ok(found)
}

/// A member known only by its local header at `at`, its data running at most to `limit`.
fn hidden_member(input: &mut dyn Input, at: u64, limit: u64) -> Result<Option<ZipMember>, ExtractError> {
    let header = input.read_upto(at, 30)?.into_owned();
    if header.len() < 30 {
        return Ok(None);
    }
    let flags = u16le(&header, 6);
    let method = u16le(&header, 8);
    let name_len = u16le(&header, 26) as u64;
    let extra_len = u16le(&header, 28) as u64;
    let data_offset = at + 30 + name_len + extra_len;
    if data_offset > limit {
        return Ok(None);
    }
    let name = input.read_at(at + 30, name_len as usize, "zip")?.into_owned();
    let stated = u32le(&header, 18) as u64;
    // With a data descriptor (or a zip64 sentinel) the sizes are not in the header: the data
    // runs at most to the end of the gap (deflate ends itself).
    let room = limit - data_offset;
    let compressed_size = if flags & 8 != 0 || stated == 0xFFFF_FFFF || stated > room { room } else { stated };
    let uncompressed = u32le(&header, 22) as u64;
    Ok(Some(ZipMember {
        name,
        method,
        flags,
        crc32: u32le(&header, 14),
        compressed_size,
        uncompressed_size: if uncompressed == 0xFFFF_FFFF || flags & 8 != 0 { compressed_size } else { uncompressed },
        data_offset: Some(data_offset),
    }))
}

/// Where, in the last 64 KiB + 22 bytes of `input`, a plausible ZIP end-of-central-directory
/// record sits (the last one): ZIP readers find an archive from its end, whatever precedes it
/// (a self-extractor stub, an image, another file of any kind).
pub fn zip_end_record_in_tail(input: &mut dyn Input) -> Option<u64> {
    let len = input.len();
    let tail_len = len.min(MAX_EOCD_SEARCH);
    let tail_start = len - tail_len;
    let tail = input.read_at(tail_start, tail_len as usize, "zip").ok()?;
    let found: Vec<usize> = memchr::memmem::find_iter(&tail, EOCD_SIG).collect();
    found
        .into_iter()
        .rev()
        .find(|&p| {
            let Some(record) = tail.get(p..p + 22) else { return false };
            let comment = u16le(record, 20) as usize;
            let cd_size = u32le(record, 12) as u64;
            let entries = u16le(record, 10);
            // The comment fits in the file and the directory fits before the record.
            p + 22 + comment <= tail.len() && cd_size <= tail_start + p as u64 && (entries > 0 || cd_size == 0)
        })
        .map(|p| tail_start + p as u64)
}

/// Whether the last 64 KiB + 22 bytes of some data (`tail`, which may be only the end of it)
/// hold a ZIP end record: one with entries whose comment fits.
pub(crate) fn has_end_record(tail: &[u8]) -> bool {
    memchr::memmem::find_iter(tail, EOCD_SIG)
        .any(|p| tail.get(p..p + 22).is_some_and(|r| p + 22 + u16le(r, 20) as usize <= tail.len() && u16le(r, 10) > 0))
}

/// Where the first local file header signature lies before `end` (scanned in 1 MiB windows).
fn first_local_header(input: &mut dyn Input, end: u64) -> Result<Option<u64>, ExtractError> {
    const STEP: u64 = 1 << 20;
    let mut at = 0u64;
    while at < end {
        let window = input.read_upto(at, (STEP + 3).min(end - at) as usize)?;
        if let Some(p) = memchr::memmem::find(&window, LFH_SIG) {
            return Ok(Some(at + p as u64));
        }
        at += STEP;
    }
    Ok(None)
}

/// Whether a local file header signature lies before `end`.
pub(crate) fn local_header_before(input: &mut dyn Input, end: u64) -> Result<bool, ExtractError> {
    Ok(first_local_header(input, end)?.is_some())
}

/// Where, in the first `scan` bytes, a local file header lies whose fields are those of a real
/// one (version, flags, method, a printable name): the start of a ZIP that has lost (or never
/// had) its central directory, which `zip -FF` and Office's repair still recover.
pub(crate) fn plausible_local_header(input: &mut dyn Input, scan: u64) -> Result<Option<u64>, ExtractError> {
    const STEP: u64 = 1 << 20;
    let end = input.len().min(scan);
    let mut at = 0u64;
    while at < end {
        let window = input.read_upto(at, (STEP + 1024 + 30).min(input.len() - at) as usize)?.into_owned();
        for p in memchr::memmem::find_iter(&window, LFH_SIG) {
            if p as u64 >= STEP {
                break;
            }
            let Some(h) = window.get(p..p + 30) else { continue };
            let version = h[4];
            let flags = u16le(h, 6);
            let method = u16le(h, 8);
            let name_len = u16le(h, 26) as usize;
            let plausible_fields = version <= 63
                && flags & !0x284F == 0
                && matches!(method, 0 | 8 | 9 | 12 | 14 | 93 | 95 | 98 | 99)
                && (1..=1024).contains(&name_len);
            let printable = window.get(p + 30..p + 30 + name_len).is_some_and(|n| n.iter().all(|&b| b >= 0x20 && b != 0x7f));
            if plausible_fields && printable {
                return Ok(Some(at + p as u64));
            }
        }
        at += STEP;
    }
    Ok(None)
}
