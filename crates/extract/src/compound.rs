//! Labels in compound files: IRM-protected OOXML (`\x06DataSpaces/TransformInfo/LabelInfo`),
//! password-encrypted OOXML, legacy .doc/.xls/.ppt property sets and Outlook .msg
//! (label-formats.md §5, §6, §8.2).

use crate::cfb::{eq_name, Cfb};
use crate::error::ExtractError;
use crate::input::Input;
use crate::limits::Limits;
use crate::model::{Extraction, FileKind, Flag, Source};
use crate::msip::{apply_labelinfo_precedence, PropertyCollector};
use crate::{eml, office_crypt, oleprops, xml};

/// PS_INTERNET_HEADERS {00020386-0000-0000-C000-000000000046} as stored in `__substg1.0_00020102`.
const PS_INTERNET_HEADERS: [u8; 16] = [0x86, 0x03, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x46];

pub(crate) fn extract(input: &mut dyn Input, limits: &Limits) -> Result<Extraction, ExtractError> {
    let mut cfb = Cfb::open(input, limits)?;
    extract_storage(&mut cfb, 0, limits)
}

/// The labels of the document whose streams are the children of `storage`: the root, or an
/// embedded document's storage (`ObjectPool/_1234`, an Excel `MBD…` storage).
pub(crate) fn extract_storage(cfb: &mut Cfb<'_>, storage: usize, limits: &Limits) -> Result<Extraction, ExtractError> {
    let mut ex = Extraction::new(FileKind::Cfb);
    let root: Vec<usize> = cfb.children(storage);
    let has = |cfb: &Cfb<'_>, name: &str| root.iter().any(|&i| eq_name(&cfb.entries[i].name, name));

    let dataspaces = cfb.find(storage, "\u{6}DataSpaces");
    let mut records = Vec::new();

    if has(cfb, "EncryptedPackage") {
        // Encrypted OOXML: rights management (label in the clear) or a password (nothing readable).
        let transform = dataspaces.first().map(|&d| cfb.find(d, "TransformInfo")).unwrap_or_default();
        let drm = transform.first().is_some_and(|&t| !cfb.find(t, "DRMEncryptedTransform").is_empty());
        if drm {
            ex.kind = FileKind::ProtectedOoxml;
            ex.flags.insert(Flag::Protected);
        } else {
            ex.kind = FileKind::EncryptedOoxml;
        }
        if let Some(&t) = transform.first() {
            let streams = cfb.find(t, "LabelInfo");
            if streams.len() > 1 {
                ex.ambiguous("cfb: more than one LabelInfo stream");
            }
            if let Some(&s) = streams.first() {
                let bytes = cfb.read_stream(s)?;
                records.extend(labelinfo_stream(&bytes, limits, &mut ex)?);
            }
        }
        if !drm {
            match default_password_package(cfb, storage, limits)? {
                Opened::Package(package) => {
                    // The package Excel opens without asking: its labels are this file's.
                    ex.finding(format!(
                        "cfb: encrypted with Excel's default password {}; read as Excel opens it",
                        office_crypt::DEFAULT_PASSWORD
                    ));
                    match crate::extract_with(&package, limits) {
                        Ok(inner) => {
                            records.extend(inner.records);
                            ex.flags.extend(inner.flags);
                            for f in inner.findings {
                                ex.finding(format!("decrypted package: {f}"));
                            }
                        }
                        Err(ExtractError::Malformed { reason, .. }) => ex.ambiguous(format!("cfb: decrypted package unreadable: {reason}")),
                        Err(e) => return Err(e),
                    }
                }
                // Only names in the clear (a LabelInfo stream) can be read, if any.
                Opened::RealPassword if records.is_empty() => {
                    ex.flags.insert(Flag::Encrypted);
                }
                Opened::RealPassword => {}
                Opened::Unsupported(why) => {
                    if records.is_empty() {
                        ex.flags.insert(Flag::Encrypted);
                    }
                    ex.finding(format!("cfb: encryption not opened: {why}"));
                }
            }
        } else if drm && records.is_empty() {
            ex.finding("cfb: protected content without a LabelInfo stream: the label is inside the encrypted package");
        }
    } else if has(cfb, "WordDocument") {
        ex.kind = FileKind::Doc;
        if let Some(&w) = cfb.find(storage, "WordDocument").first() {
            // FIB: fEncrypted is bit 8 of the flags word at offset 0x0A.
            let fib = cfb.read_stream_prefix(w, 12)?;
            if fib.len() >= 12 && fib[0x0B] & 0x01 != 0 {
                ex.flags.insert(Flag::Encrypted);
            }
        }
    } else if has(cfb, "Workbook") || has(cfb, "Book") {
        ex.kind = FileKind::Xls;
        let stream = cfb.find(storage, "Workbook").first().or(cfb.find(storage, "Book").first()).copied();
        if let Some(w) = stream {
            // A FILEPASS record (0x002F) among the first records means the workbook is encrypted.
            let head = cfb.read_stream_prefix(w, 4096)?;
            let mut at = 0usize;
            for _ in 0..16 {
                let Some(rec) = head.get(at..at + 4) else { break };
                let id = u16::from_le_bytes([rec[0], rec[1]]);
                let len = u16::from_le_bytes([rec[2], rec[3]]) as usize;
                if id == 0x002F {
                    ex.flags.insert(Flag::Encrypted);
                    break;
                }
                at += 4 + len;
            }
        }
    } else if has(cfb, "PowerPoint Document") {
        ex.kind = FileKind::Ppt;
        if has(cfb, "EncryptedSummary") {
            ex.flags.insert(Flag::Encrypted);
        }
    } else if has(cfb, "__properties_version1.0") || has(cfb, "__nameid_version1.0") {
        ex.kind = FileKind::Msg;
        records.extend(msg_labels(cfb, storage, limits, &mut ex)?);
    }
    if !dataspaces.is_empty() && !matches!(ex.kind, FileKind::ProtectedOoxml | FileKind::EncryptedOoxml) {
        // IRM on legacy binary formats (\x09DRMContent): the same LabelInfo rule applies.
        ex.flags.insert(Flag::Protected);
        if let Some(&t) = dataspaces.first().map(|&d| cfb.find(d, "TransformInfo")).unwrap_or_default().first() {
            if let Some(&s) = cfb.find(t, "LabelInfo").first() {
                let bytes = cfb.read_stream(s)?;
                records.extend(labelinfo_stream(&bytes, limits, &mut ex)?);
            }
        }
    }

    // User-defined properties in \x05DocumentSummaryInformation (legacy Office, AIP, and possibly
    // the clear-text properties of protected files).
    let dsi = cfb.find(storage, "\u{5}DocumentSummaryInformation");
    if dsi.len() > 1 {
        ex.ambiguous("cfb: more than one DocumentSummaryInformation stream");
    }
    if let Some(&d) = dsi.first() {
        let bytes = cfb.read_stream(d)?;
        let mut collector = PropertyCollector::new(Source::OleProps, limits.max_records);
        if let Err(why) = oleprops::read_user_defined(&bytes, &mut collector, &mut ex) {
            if ex.has_flag(Flag::Encrypted) {
                ex.finding(format!("cfb: DocumentSummaryInformation unreadable: {why}"));
            } else {
                ex.ambiguous(format!("cfb: DocumentSummaryInformation unreadable: {why}"));
            }
        }
        records.extend(collector.finish(&mut ex));
    }

    apply_labelinfo_precedence(&mut records);
    records.truncate(limits.max_records);
    ex.records = records;
    ex.finalize();
    Ok(ex)
}

fn labelinfo_stream(bytes: &[u8], limits: &Limits, ex: &mut Extraction) -> Result<Vec<crate::model::LabelRecord>, ExtractError> {
    // The stream holds the labelList XML; tolerate a binary prefix before the first '<'.
    let start = if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) || bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        0
    } else {
        memchr::memchr(b'<', bytes).unwrap_or(bytes.len())
    };
    let text = match xml::decode_text(&bytes[start..]) {
        Ok(t) => t,
        Err(e) => {
            ex.ambiguous(format!("cfb: LabelInfo stream cannot be decoded: {e}"));
            return Ok(Vec::new());
        }
    };
    match xml::parse_labelinfo(&text, Source::CfbLabelInfo, limits, ex) {
        Ok((records, notes)) => {
            if notes.dtd {
                ex.ambiguous("cfb: LabelInfo stream contains a DTD");
            }
            Ok(records)
        }
        Err(xml::XmlError::TooDeep(_)) => Err(ExtractError::limit("max_xml_depth", limits.max_xml_depth as u64)),
        Err(e) => {
            ex.ambiguous(format!("cfb: LabelInfo stream cannot be parsed: {e}"));
            Ok(Vec::new())
        }
    }
}

/// `.msg`: the `msip_labels` named string property (PS_INTERNET_HEADERS), else the transport
/// headers (PR_TRANSPORT_MESSAGE_HEADERS, 0x007D) parsed as an e-mail header block. `message` is
/// the storage holding the message's properties: the root, or an embedded message's
/// `__substg1.0_3701000D` storage (whose named properties are mapped by the root's name table).
pub(crate) fn msg_labels(
    cfb: &mut Cfb<'_>,
    message: usize,
    limits: &Limits,
    ex: &mut Extraction,
) -> Result<Vec<crate::model::LabelRecord>, ExtractError> {
    let mut collector = PropertyCollector::new(Source::Msg, limits.max_records);
    let mut found = false;
    if let Some(&nameid) = cfb.find(0, "__nameid_version1.0").first() {
        let guids = cfb.find(nameid, "__substg1.0_00020102").first().copied();
        let entries = cfb.find(nameid, "__substg1.0_00030102").first().copied();
        let strings = cfb.find(nameid, "__substg1.0_00040102").first().copied();
        if let (Some(g), Some(e), Some(s)) = (guids, entries, strings) {
            let guids = cfb.read_stream(g)?;
            let entries = cfb.read_stream(e)?;
            let strings = cfb.read_stream(s)?;
            for (index, entry) in entries.chunks_exact(8).enumerate() {
                let name_offset = u32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]) as usize;
                let kind_and_guid = u16::from_le_bytes([entry[4], entry[5]]);
                if kind_and_guid & 1 == 0 {
                    continue; // numerical named property
                }
                let guid_index = (kind_and_guid >> 1) as usize;
                // 1 = PS_MAPI, 2 = PS_PUBLIC_STRINGS, ≥3 = index into the GUID stream.
                let guid_ok = guid_index >= 3 && guids.get((guid_index - 3) * 16..(guid_index - 2) * 16) == Some(&PS_INTERNET_HEADERS[..]);
                if !guid_ok {
                    continue;
                }
                let Some(len_bytes) = strings.get(name_offset..name_offset + 4) else { continue };
                let len = u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
                let Some(name) = strings.get(name_offset + 4..name_offset + 4 + len) else { continue };
                let units: Vec<u16> = name.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
                if !String::from_utf16_lossy(&units).eq_ignore_ascii_case("msip_labels") {
                    continue;
                }
                let prop_id = 0x8000 + index;
                let stream_name = format!("__substg1.0_{prop_id:04X}001F");
                if let Some(&v) = cfb.find(message, &stream_name).first() {
                    let raw = cfb.read_stream(v)?;
                    let units: Vec<u16> = raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).take_while(|&u| u != 0).collect();
                    let value = String::from_utf16_lossy(&units);
                    eml::parse_msip_labels_value(&value, &mut collector, ex);
                    found = true;
                }
            }
        }
    }
    if !found {
        if let Some(&h) = cfb.find(message, "__substg1.0_007D001F").first() {
            let raw = cfb.read_stream(h)?;
            let units: Vec<u16> = raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).take_while(|&u| u != 0).collect();
            let headers = String::from_utf16_lossy(&units);
            eml::collect_from_headers(headers.as_bytes(), &mut collector, limits, ex);
        }
    }
    Ok(collector.finish(ex))
}

/// Stream names that make a storage a document of its own (as Office embeds one).
const DOCUMENT_STREAMS: [&str; 6] =
    ["WordDocument", "Workbook", "Book", "PowerPoint Document", "EncryptedPackage", "\u{5}DocumentSummaryInformation"];

/// One document embedded as a storage of a compound file.
#[derive(Debug)]
pub struct EmbeddedDocument {
    /// Storage names from the root down.
    pub path: Vec<String>,
    /// What its streams say, read as a compound file of its own is.
    pub extraction: Result<Extraction, ExtractError>,
}

/// Every storage below the root that is a document of its own — how Word keeps an embedded
/// Word 97 document or Excel sheet (`ObjectPool/_1234`), Excel an embedded object (`MBD…`) —
/// read as the compound file it was before it was embedded. At most `max_storages` storages are
/// visited.
pub fn cfb_embedded_documents(input: &mut dyn Input, limits: &Limits, max_storages: usize) -> Result<Vec<EmbeddedDocument>, ExtractError> {
    let mut cfb = Cfb::open(input, limits)?;
    let mut out = Vec::new();
    let mut stack: Vec<(usize, Vec<String>)> = vec![(0, Vec::new())];
    let mut seen = vec![false; cfb.entries.len()];
    let mut visited = 0usize;
    while let Some((storage, path)) = stack.pop() {
        for child in cfb.children(storage) {
            if cfb.entries[child].kind != 1 || std::mem::replace(&mut seen[child], true) {
                continue;
            }
            visited += 1;
            if visited > max_storages {
                return Err(ExtractError::limit("max_members", max_storages as u64));
            }
            let mut inner = path.clone();
            inner.push(cfb.entries[child].name.clone());
            let names = cfb.children(child);
            let is_document = names.iter().any(|&i| DOCUMENT_STREAMS.iter().any(|d| eq_name(&cfb.entries[i].name, d)));
            if is_document {
                let extraction = extract_storage(&mut cfb, child, limits);
                out.push(EmbeddedDocument { path: inner.clone(), extraction });
            }
            stack.push((child, inner));
        }
    }
    Ok(out)
}

/// What the default password does to a password-encrypted package.
enum Opened {
    Package(Vec<u8>),
    RealPassword,
    Unsupported(String),
}

/// Decrypts the `EncryptedPackage` of `storage` with `VelvetSweatshop` (at most
/// `max_decrypted_bytes`).
fn default_password_package(cfb: &mut Cfb<'_>, storage: usize, limits: &Limits) -> Result<Opened, ExtractError> {
    let (Some(&info), Some(&package)) = (cfb.find(storage, "EncryptionInfo").first(), cfb.find(storage, "EncryptedPackage").first()) else {
        return Ok(Opened::Unsupported("no EncryptionInfo stream".into()));
    };
    let info = cfb.read_stream(info)?;
    let key = match office_crypt::unlock(&info, office_crypt::DEFAULT_PASSWORD) {
        Ok(key) => key,
        Err(office_crypt::NotOpened::RealPassword) => return Ok(Opened::RealPassword),
        Err(office_crypt::NotOpened::Unsupported(why)) => return Ok(Opened::Unsupported(why)),
    };
    let stream = cfb.read_stream_capped(package, limits.max_decrypted_bytes.saturating_add(4096), "max_decrypted_bytes")?;
    match office_crypt::decrypt_package(&key, &stream, limits.max_decrypted_bytes) {
        Ok(package) => Ok(Opened::Package(package)),
        Err(office_crypt::NotOpened::RealPassword) => Ok(Opened::RealPassword),
        Err(office_crypt::NotOpened::Unsupported(why)) => Ok(Opened::Unsupported(why)),
    }
}

/// The package inside an OOXML file encrypted with Excel's default password (`VelvetSweatshop`),
/// decrypted, for reading the files inside it; `None` for any other file.
pub fn default_password_package_of(input: &mut dyn Input, limits: &Limits) -> Result<Option<Vec<u8>>, ExtractError> {
    let mut cfb = Cfb::open(input, limits)?;
    if cfb.find(0, "EncryptedPackage").is_empty() {
        return Ok(None);
    }
    match default_password_package(&mut cfb, 0, limits)? {
        Opened::Package(p) => Ok(Some(p)),
        _ => Ok(None),
    }
}
