//! The ZIP layer of a package rewrite: the central directory read (bounded; ZIP64 refused),
//! every member's bytes copied as they are — local header, data, data descriptor — except the
//! parts that change, which are written anew (deflated); then a new central directory.
//!
//! Written here rather than with the `zip` crate because the rewrite must keep every other
//! member byte for byte (its local header, extra fields, compressed data and descriptor), which
//! a ZIP writer that recompresses or normalises headers would not.

use crate::ApplyError;
use std::io::Write;

/// Random access to a package's bytes: the file being labelled, or (fuzzing) a slice.
pub(crate) trait Source {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()>;
}

impl Source for std::fs::File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
}

impl Source for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| std::io::ErrorKind::UnexpectedEof)?;
        let end = start.checked_add(buf.len()).filter(|&e| e <= self.len()).ok_or(std::io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(&self[start..end]);
        Ok(())
    }
}

const EOCD_SIG: &[u8; 4] = b"PK\x05\x06";
const CDH_SIG: &[u8; 4] = b"PK\x01\x02";
const LFH_SIG: &[u8; 4] = b"PK\x03\x04";
const DD_SIG: &[u8; 4] = b"PK\x07\x08";

/// Members a package may have to be rewritten here.
const MAX_MEMBERS: usize = 65_535;
/// A part read to be edited (custom properties, relationships, content types, LabelInfo).
pub(crate) const MAX_EDITED_PART: u64 = 16 << 20;

/// One member as the central directory describes it.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub name: String,
    pub method: u16,
    pub flags: u16,
    pub compressed_size: u64,
    pub uncompressed_size: u64,
    pub local_offset: u64,
    /// Its central directory record, as read.
    pub record: Vec<u8>,
}

/// A package's members and the archive comment.
#[derive(Debug)]
pub(crate) struct Archive {
    pub members: Vec<Member>,
    pub comment: Vec<u8>,
}

fn u16le(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn bad(why: impl Into<String>) -> ApplyError {
    ApplyError::Package(why.into())
}

fn read_at(file: &(impl Source + ?Sized), offset: u64, len: usize) -> Result<Vec<u8>, ApplyError> {
    let mut buf = vec![0; len];
    file.read_exact_at(&mut buf, offset).map_err(ApplyError::Io)?;
    Ok(buf)
}

/// Reads the central directory of the package in `file` (`len` bytes).
pub(crate) fn read(file: &(impl Source + ?Sized), len: u64) -> Result<Archive, ApplyError> {
    if len < 22 {
        return Err(bad("too short for a ZIP archive"));
    }
    let tail_len = len.min(65_535 + 22);
    let tail = read_at(file, len - tail_len, tail_len as usize)?;
    let candidates: Vec<usize> = (0..tail.len().saturating_sub(21))
        .rev()
        .filter(|&i| &tail[i..i + 4] == EOCD_SIG && i + 22 + u16le(&tail, i + 20) as usize == tail.len())
        .collect();
    // Two records that could each end the archive (one inside the other's comment): readers
    // disagree on which, so the package is not rewritten.
    let at = match candidates.as_slice() {
        [one] => *one,
        [] => return Err(bad("no end of central directory record at the end of the file")),
        _ => return Err(bad("two end of central directory records")),
    };
    let eocd = &tail[at..];
    let (disk, cd_disk) = (u16le(eocd, 4), u16le(eocd, 6));
    let count = u16le(eocd, 10) as usize;
    let cd_size = u32le(eocd, 12) as u64;
    let cd_offset = u32le(eocd, 16) as u64;
    if disk != 0 || cd_disk != 0 {
        return Err(bad("a multi-disk archive"));
    }
    if count == 0xFFFF || cd_size == 0xFFFF_FFFF || cd_offset == 0xFFFF_FFFF {
        return Err(bad("a ZIP64 archive (not rewritten here)"));
    }
    let eocd_at = len - tail_len + at as u64;
    if cd_offset + cd_size != eocd_at {
        return Err(bad("data between the central directory and its end record"));
    }
    if count > MAX_MEMBERS {
        return Err(bad("too many members"));
    }
    if cd_size > 64 << 20 {
        return Err(bad("central directory larger than 64 MiB"));
    }
    let directory = read_at(file, cd_offset, cd_size as usize)?;
    let mut members = Vec::with_capacity(count);
    let mut names = std::collections::HashSet::with_capacity(count);
    let mut p = 0usize;
    for _ in 0..count {
        let head = directory.get(p..p + 46).ok_or_else(|| bad("central directory truncated"))?;
        if &head[..4] != CDH_SIG {
            return Err(bad("bad central directory record"));
        }
        let (name_len, extra_len, comment_len) = (u16le(head, 28) as usize, u16le(head, 30) as usize, u16le(head, 32) as usize);
        let end = p + 46 + name_len + extra_len + comment_len;
        let record = directory.get(p..end).ok_or_else(|| bad("central directory truncated"))?.to_vec();
        let name = String::from_utf8(record[46..46 + name_len].to_vec()).map_err(|_| bad("a member name that is not UTF-8"))?;
        let member = Member {
            name,
            method: u16le(head, 10),
            flags: u16le(head, 8),
            compressed_size: u32le(head, 20) as u64,
            uncompressed_size: u32le(head, 24) as u64,
            local_offset: u32le(head, 42) as u64,
            record,
        };
        if member.compressed_size == 0xFFFF_FFFF || member.uncompressed_size == 0xFFFF_FFFF || member.local_offset == 0xFFFF_FFFF {
            return Err(bad("a ZIP64 member (not rewritten here)"));
        }
        if member.flags & 1 != 0 {
            return Err(bad(format!("member {} is encrypted", member.name)));
        }
        if !names.insert(member.name.to_ascii_lowercase()) {
            return Err(bad(format!("member {} appears twice", member.name)));
        }
        members.push(member);
        p = end;
    }
    if p != directory.len() {
        return Err(bad("central directory size disagrees with its records"));
    }
    // Every local entry where the directory says, named as it says: checked before anything
    // is written.
    for m in &members {
        local_extent(file, m, len)?;
    }
    Ok(Archive { members, comment: eocd[22..].to_vec() })
}

/// The extent of a member's local entry: header, name, extra, data and data descriptor.
fn local_extent(file: &(impl Source + ?Sized), m: &Member, len: u64) -> Result<u64, ApplyError> {
    let header = read_at(file, m.local_offset, 30)?;
    if &header[..4] != LFH_SIG {
        return Err(bad(format!("member {}: no local header where the directory points", m.name)));
    }
    let name_len = u16le(&header, 26) as u64;
    let extra_len = u16le(&header, 28) as u64;
    let local_name = read_at(file, m.local_offset + 30, name_len as usize)?;
    if local_name != m.name.as_bytes() {
        return Err(bad(format!("member {}: its local header names another", m.name)));
    }
    let mut end = m.local_offset + 30 + name_len + extra_len + m.compressed_size;
    if m.flags & 8 != 0 {
        let probe = read_at(file, end, 4.min((len - end.min(len)) as usize))?;
        end += if probe.as_slice() == DD_SIG { 16 } else { 12 };
    }
    if end > len {
        return Err(bad(format!("member {}: data past the end of the file", m.name)));
    }
    Ok(end - m.local_offset)
}

/// A member's content, inflated (at most [`MAX_EDITED_PART`] bytes).
pub(crate) fn content(file: &(impl Source + ?Sized), m: &Member) -> Result<Vec<u8>, ApplyError> {
    if m.uncompressed_size > MAX_EDITED_PART || m.compressed_size > MAX_EDITED_PART + (64 << 10) {
        return Err(bad(format!("part {} is larger than {MAX_EDITED_PART} bytes", m.name)));
    }
    let header = read_at(file, m.local_offset, 30)?;
    let data_at = m.local_offset + 30 + u16le(&header, 26) as u64 + u16le(&header, 28) as u64;
    let raw = read_at(file, data_at, m.compressed_size as usize)?;
    let data = match m.method {
        0 => raw,
        8 => {
            let mut out = Vec::with_capacity(m.uncompressed_size as usize);
            let decoder = flate2::read::DeflateDecoder::new(&raw[..]);
            std::io::Read::read_to_end(&mut std::io::Read::take(decoder, MAX_EDITED_PART + 1), &mut out)
                .map_err(|e| bad(format!("part {} does not inflate: {e}", m.name)))?;
            out
        }
        other => return Err(bad(format!("part {} uses compression method {other}", m.name))),
    };
    if data.len() as u64 != m.uncompressed_size || crc32fast::hash(&data) != u32le(&m.record, 16) {
        return Err(bad(format!("part {} fails its size or CRC check", m.name)));
    }
    Ok(data)
}

/// What becomes of the package: parts replaced (by name) and parts added (at the end).
pub(crate) struct Edits {
    pub replaced: Vec<(String, Vec<u8>)>,
    pub added: Vec<(String, Vec<u8>)>,
}

/// Writes the package with `edits` to `out`: every other member's local entry copied byte for
/// byte from `file`, in the original order.
pub(crate) fn rewrite(
    file: &(impl Source + ?Sized),
    len: u64,
    archive: &Archive,
    edits: &Edits,
    out: &mut dyn Write,
) -> Result<(), ApplyError> {
    let mut offset = 0u64;
    let mut directory = Vec::new();
    let mut count = 0usize;
    let mut emit = |bytes: &[u8], offset: &mut u64| -> Result<(), ApplyError> {
        out.write_all(bytes).map_err(ApplyError::Io)?;
        *offset += bytes.len() as u64;
        Ok(())
    };
    for m in &archive.members {
        let new_offset = offset;
        if let Some((_, data)) = edits.replaced.iter().find(|(n, _)| *n == m.name) {
            let (local, record) = new_entry(&m.name, data, new_offset)?;
            emit(&local, &mut offset)?;
            directory.extend_from_slice(&record);
        } else {
            let extent = local_extent(file, m, len)?;
            let mut at = m.local_offset;
            let end = m.local_offset + extent;
            let mut buf = vec![0u8; (1 << 20).min(extent as usize)];
            while at < end {
                let n = ((end - at) as usize).min(buf.len());
                file.read_exact_at(&mut buf[..n], at).map_err(ApplyError::Io)?;
                emit(&buf[..n], &mut offset)?;
                at += n as u64;
            }
            let mut record = m.record.clone();
            record[42..46].copy_from_slice(&u32::try_from(new_offset).map_err(|_| bad("the package would need ZIP64"))?.to_le_bytes());
            directory.extend_from_slice(&record);
        }
        count += 1;
    }
    for (name, data) in &edits.added {
        let (local, record) = new_entry(name, data, offset)?;
        emit(&local, &mut offset)?;
        directory.extend_from_slice(&record);
        count += 1;
    }
    let cd_offset = u32::try_from(offset).map_err(|_| bad("the package would need ZIP64"))?;
    let mut end = Vec::with_capacity(22 + archive.comment.len());
    end.extend_from_slice(EOCD_SIG);
    end.extend_from_slice(&[0, 0, 0, 0]);
    let count = u16::try_from(count).map_err(|_| bad("too many members"))?;
    end.extend_from_slice(&count.to_le_bytes());
    end.extend_from_slice(&count.to_le_bytes());
    end.extend_from_slice(&u32::try_from(directory.len()).map_err(|_| bad("central directory too large"))?.to_le_bytes());
    end.extend_from_slice(&cd_offset.to_le_bytes());
    end.extend_from_slice(&(archive.comment.len() as u16).to_le_bytes());
    end.extend_from_slice(&archive.comment);
    emit(&directory, &mut offset)?;
    emit(&end, &mut offset)?;
    Ok(())
}

/// A new deflated member: its local entry and its central directory record. Times are the
/// DOS epoch, as Office writes them.
fn new_entry(name: &str, data: &[u8], offset: u64) -> Result<(Vec<u8>, Vec<u8>), ApplyError> {
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).map_err(ApplyError::Io)?;
    let compressed = encoder.finish().map_err(ApplyError::Io)?;
    let crc = crc32fast::hash(data);
    let too_big = |_| bad("a part too large for a package without ZIP64");
    let (csize, usize_) = (u32::try_from(compressed.len()).map_err(too_big)?, u32::try_from(data.len()).map_err(too_big)?);
    let offset = u32::try_from(offset).map_err(|_| bad("the package would need ZIP64"))?;
    let name_len = u16::try_from(name.len()).map_err(|_| bad("a part name too long"))?;
    // Version 2.0, deflate, DOS time 0:00 1980-01-01; the UTF-8 flag for a name that needs it.
    let flags: u16 = if name.is_ascii() { 0 } else { 1 << 11 };
    let mut local = Vec::with_capacity(30 + name.len() + compressed.len());
    local.extend_from_slice(LFH_SIG);
    local.extend_from_slice(&20u16.to_le_bytes());
    local.extend_from_slice(&flags.to_le_bytes());
    local.extend_from_slice(&8u16.to_le_bytes());
    local.extend_from_slice(&0u16.to_le_bytes());
    local.extend_from_slice(&0x21u16.to_le_bytes());
    local.extend_from_slice(&crc.to_le_bytes());
    local.extend_from_slice(&csize.to_le_bytes());
    local.extend_from_slice(&usize_.to_le_bytes());
    local.extend_from_slice(&name_len.to_le_bytes());
    local.extend_from_slice(&0u16.to_le_bytes());
    local.extend_from_slice(name.as_bytes());
    local.extend_from_slice(&compressed);
    let mut record = Vec::with_capacity(46 + name.len());
    record.extend_from_slice(CDH_SIG);
    record.extend_from_slice(&45u16.to_le_bytes());
    record.extend_from_slice(&20u16.to_le_bytes());
    record.extend_from_slice(&flags.to_le_bytes());
    record.extend_from_slice(&8u16.to_le_bytes());
    record.extend_from_slice(&0u16.to_le_bytes());
    record.extend_from_slice(&0x21u16.to_le_bytes());
    record.extend_from_slice(&crc.to_le_bytes());
    record.extend_from_slice(&csize.to_le_bytes());
    record.extend_from_slice(&usize_.to_le_bytes());
    record.extend_from_slice(&name_len.to_le_bytes());
    record.extend_from_slice(&[0; 8]);
    record.extend_from_slice(&[0; 4]);
    record.extend_from_slice(&offset.to_le_bytes());
    record.extend_from_slice(name.as_bytes());
    Ok((local, record))
}
