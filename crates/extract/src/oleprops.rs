//! MS-OLEPS property sets: the user-defined section of `\x05DocumentSummaryInformation`, where
//! legacy Office and AIP store `MSIP_Label_*` properties (label-formats.md §6).

use crate::model::Extraction;
use crate::msip::PropertyCollector;

/// FMTID_UserDefinedProperties {D5CDD505-2E9C-101B-9397-08002B2CF9AE} in stream byte order.
const FMTID_USER_DEFINED: [u8; 16] = [0x05, 0xD5, 0xCD, 0xD5, 0x9C, 0x2E, 0x1B, 0x10, 0x93, 0x97, 0x08, 0x00, 0x2B, 0x2C, 0xF9, 0xAE];
const VT_I2: u16 = 0x0002;
const VT_BSTR: u16 = 0x0008;
const VT_BOOL: u16 = 0x000B;
const VT_LPSTR: u16 = 0x001E;
const VT_LPWSTR: u16 = 0x001F;
const CP_UTF16: u16 = 1200;
const MAX_PROPERTIES: usize = 4096;

fn u16le(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at.checked_add(2)?).map(|s| u16::from_le_bytes([s[0], s[1]]))
}
fn u32le(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at.checked_add(4)?).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Decodes bytes in a Windows code page (names and `VT_LPSTR` values).
pub(crate) fn decode_codepage(bytes: &[u8], codepage: u16) -> String {
    let bytes = bytes.split(|&b| b == 0).next().unwrap_or(&[]);
    let encoding = match codepage {
        65001 => encoding_rs::UTF_8,
        932 => encoding_rs::SHIFT_JIS,
        936 => encoding_rs::GBK,
        949 => encoding_rs::EUC_KR,
        950 => encoding_rs::BIG5,
        874 => encoding_rs::WINDOWS_874,
        1250 => encoding_rs::WINDOWS_1250,
        1251 => encoding_rs::WINDOWS_1251,
        1253 => encoding_rs::WINDOWS_1253,
        1254 => encoding_rs::WINDOWS_1254,
        1255 => encoding_rs::WINDOWS_1255,
        1256 => encoding_rs::WINDOWS_1256,
        1257 => encoding_rs::WINDOWS_1257,
        1258 => encoding_rs::WINDOWS_1258,
        _ => encoding_rs::WINDOWS_1252,
    };
    encoding.decode_without_bom_handling(bytes).0.into_owned()
}

fn utf16le(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).take_while(|&u| u != 0).collect();
    String::from_utf16_lossy(&units)
}

/// Feeds every named user-defined property of a DocumentSummaryInformation stream to `collector`.
/// Returns an error text when the stream is structurally broken.
/// Why a property-set stream could not be read (the file is then flagged, never a panic).
#[derive(Debug, thiserror::Error)]
pub(crate) enum PropertySetError {
    /// A structure is missing or cut short.
    #[error("{0}")]
    Truncated(&'static str),
    /// A count past the limits.
    #[error("{what} claims {count} {unit}")]
    Count { what: &'static str, count: usize, unit: &'static str },
}

impl From<&'static str> for PropertySetError {
    fn from(why: &'static str) -> Self {
        PropertySetError::Truncated(why)
    }
}

pub(crate) fn read_user_defined(stream: &[u8], collector: &mut PropertyCollector, ex: &mut Extraction) -> Result<(), PropertySetError> {
    if u16le(stream, 0) != Some(0xFFFE) {
        return Err(PropertySetError::Truncated("property set stream has no byte-order mark"));
    }
    let sets = u32le(stream, 24).ok_or("property set header truncated")?;
    for i in 0..sets.min(4) as usize {
        let at = 28 + i * 20;
        let fmtid = stream.get(at..at + 16).ok_or("property set list truncated")?;
        let offset = u32le(stream, at + 16).ok_or("property set list truncated")? as usize;
        if fmtid == FMTID_USER_DEFINED {
            read_section(stream, offset, collector, ex)?;
        }
    }
    Ok(())
}

fn read_section(stream: &[u8], offset: usize, collector: &mut PropertyCollector, ex: &mut Extraction) -> Result<(), PropertySetError> {
    let section = stream.get(offset..).ok_or("section offset outside the stream")?;
    let size = u32le(section, 0).ok_or("section truncated")? as usize;
    let section = section.get(..size.min(section.len())).ok_or("section truncated")?;
    let count = u32le(section, 4).ok_or("section truncated")? as usize;
    if count > MAX_PROPERTIES {
        return Err(PropertySetError::Count { what: "section", count, unit: "properties" });
    }
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let pid = u32le(section, 8 + i * 8).ok_or("property list truncated")?;
        let off = u32le(section, 12 + i * 8).ok_or("property list truncated")? as usize;
        ids.push((pid, off));
    }
    let codepage = ids
        .iter()
        .find(|(pid, _)| *pid == 1)
        .and_then(|(_, off)| (u16le(section, *off) == Some(VT_I2)).then(|| u16le(section, off + 4)).flatten())
        .unwrap_or(1252);

    // PID 0: the dictionary of names.
    let mut names: Vec<(u32, String)> = Vec::new();
    if let Some((_, off)) = ids.iter().find(|(pid, _)| *pid == 0) {
        let n = u32le(section, *off).ok_or("dictionary truncated")? as usize;
        if n > MAX_PROPERTIES {
            return Err(PropertySetError::Count { what: "dictionary", count: n, unit: "entries" });
        }
        let mut at = off + 4;
        for _ in 0..n {
            let pid = u32le(section, at).ok_or("dictionary truncated")?;
            let len = u32le(section, at + 4).ok_or("dictionary truncated")? as usize;
            at += 8;
            if codepage == CP_UTF16 {
                let bytes = len.checked_mul(2).ok_or("dictionary entry too long")?;
                let raw = section.get(at..at + bytes).ok_or("dictionary entry truncated")?;
                names.push((pid, utf16le(raw)));
                at += bytes;
                at = at.div_ceil(4) * 4;
            } else {
                let raw = section.get(at..at + len).ok_or("dictionary entry truncated")?;
                names.push((pid, decode_codepage(raw, codepage)));
                at += len;
            }
        }
    }

    for (pid, name) in &names {
        if !crate::msip::is_msip_key(name) {
            continue;
        }
        let Some((_, off)) = ids.iter().find(|(p, _)| p == pid) else { continue };
        let value = read_value(section, *off, codepage).unwrap_or_default();
        collector.add(name, &value, ex);
    }
    Ok(())
}

fn read_value(section: &[u8], off: usize, codepage: u16) -> Option<String> {
    let vt = u16le(section, off)?;
    let data = section.get(off + 4..)?;
    match vt {
        VT_LPSTR | VT_BSTR => {
            let len = u32le(data, 0)? as usize;
            let raw = data.get(4..4usize.checked_add(len)?)?;
            Some(if codepage == CP_UTF16 { utf16le(raw) } else { decode_codepage(raw, codepage) })
        }
        VT_LPWSTR => {
            let len = u32le(data, 0)? as usize;
            let raw = data.get(4..4usize.checked_add(len.checked_mul(2)?)?)?;
            Some(utf16le(raw))
        }
        VT_BOOL => Some(if u16le(data, 0)? != 0 { "true".into() } else { "false".into() }),
        _ => None,
    }
}
