//! `labelgate-body` finds the files an HTTP request body carries when they are not its bytes
//! as they stand: content codings undone ([`coding`]), and files encoded as text inside
//! structured bodies — JSON string values (Graph `contentBytes`, Gmail `raw`, chat APIs'
//! `file_data`, `data:` URLs), form fields, a whole text body, long query-string and header
//! values — as base64, base64url (padded or not, with line breaks) or `data:` URLs.
//!
//! A string is a candidate only when it is long enough to hold a file
//! ([`Limits::min_encoded_len`]) and its first decoded bytes are something the engine reads
//! (or its last ones end a ZIP package or a PDF, which may sit behind a prefix); only then is it
//! decoded whole. Every walk is bounded (nesting depth, candidates, decoded bytes); nothing here
//! panics on any input. Pure and synchronous.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod brotli;
pub mod coding;
mod encoded;
mod form;
mod json;
pub mod multipart;

pub use encoded::{decode_encoded, decompressed_file, looks_encoded};
pub use form::form_candidates;
pub use json::json_candidates;

/// Why a body could not be read as what it claims to be.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// A content coding this reader does not know.
    #[error("unknown content coding {0:?}")]
    UnknownCoding(String),
    /// Data that does not decode.
    #[error("corrupt body: {0}")]
    Corrupt(String),
    /// A limit was reached.
    #[error("limit reached: {limit} (maximum {max})")]
    Limit {
        /// The limit's name.
        limit: &'static str,
        /// Its value.
        max: u64,
    },
    /// Reading the body failed.
    #[error("reading the body failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Bounds on the walks.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Shortest encoded string looked at (a file needs more than a few bytes).
    pub min_encoded_len: usize,
    /// Most bytes one decoded candidate may have.
    pub max_decoded_bytes: u64,
    /// Most candidates per body.
    pub max_candidates: usize,
    /// Deepest JSON nesting (and JSON inside JSON strings: 4 levels).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { min_encoded_len: 256, max_decoded_bytes: 64 * 1024 * 1024, max_candidates: 1000, max_depth: 512 }
    }
}

/// Text in UTF-16 or UTF-32 (by its byte order mark, the `charset` given, or the NUL pattern
/// of ASCII in it), as UTF-8; `None` for anything else (UTF-8 and ASCII are read as they are).
pub fn wide_text_as_utf8(bytes: &[u8], charset: Option<&str>) -> Option<Vec<u8>> {
    let charset = charset.map(|c| c.trim().trim_matches('"').to_ascii_lowercase());
    let head = &bytes[..bytes.len().min(64)];
    let nul_at = |parity: usize| head.len() >= 8 && head.iter().skip(parity).step_by(2).take(16).all(|&b| b == 0);
    let utf32 = |little: bool, data: &[u8]| -> Vec<u8> {
        data.chunks_exact(4)
            .filter_map(|c| {
                char::from_u32(if little {
                    u32::from_le_bytes([c[0], c[1], c[2], c[3]])
                } else {
                    u32::from_be_bytes([c[0], c[1], c[2], c[3]])
                })
            })
            .collect::<String>()
            .into_bytes()
    };
    let utf16 = |little: bool, data: &[u8]| -> Vec<u8> {
        let units = data.chunks_exact(2).map(|c| if little { u16::from_le_bytes([c[0], c[1]]) } else { u16::from_be_bytes([c[0], c[1]]) });
        char::decode_utf16(units).map(|r| r.unwrap_or('\u{FFFD}')).collect::<String>().into_bytes()
    };
    if bytes.starts_with(&[0xFF, 0xFE, 0, 0]) {
        return Some(utf32(true, &bytes[4..]));
    }
    if bytes.starts_with(&[0, 0, 0xFE, 0xFF]) {
        return Some(utf32(false, &bytes[4..]));
    }
    if bytes.starts_with(&[0xFF, 0xFE]) {
        return Some(utf16(true, &bytes[2..]));
    }
    if bytes.starts_with(&[0xFE, 0xFF]) {
        return Some(utf16(false, &bytes[2..]));
    }
    match charset.as_deref() {
        Some("utf-32" | "utf-32le") => return Some(utf32(true, bytes)),
        Some("utf-32be") => return Some(utf32(false, bytes)),
        Some("utf-16" | "utf-16le") => return Some(utf16(true, bytes)),
        Some("utf-16be") => return Some(utf16(false, bytes)),
        _ => {}
    }
    // ASCII in UTF-32 has three NULs in every four bytes; in UTF-16 one in every two.
    let quad = |lead: usize| head.len() >= 16 && head.chunks_exact(4).take(8).all(|c| (0..4).filter(|&i| i != lead).all(|i| c[i] == 0));
    if quad(0) {
        return Some(utf32(true, bytes));
    }
    if quad(3) {
        return Some(utf32(false, bytes));
    }
    if nul_at(1) {
        return Some(utf16(true, bytes));
    }
    if nul_at(0) {
        return Some(utf16(false, bytes));
    }
    None
}

/// The longest block of consecutive lines of a run that are standard base64 only: (its offset,
/// its characters), when at least `min_len` long.
fn base64_lines(run: &[u8], min_len: usize) -> Option<(usize, Vec<u8>)> {
    let pure = |l: &[u8]| !l.is_empty() && l.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    let mut best: Option<(usize, Vec<u8>)> = None;
    let mut current: Option<(usize, Vec<u8>)> = None;
    let mut at = 0;
    for line in run.split(|&b| b == b'\n') {
        let trimmed = line.strip_suffix(b"\r").unwrap_or(line);
        if pure(trimmed) {
            current.get_or_insert_with(|| (at, Vec::new())).1.extend_from_slice(trimmed);
        } else if let Some(done) = current.take() {
            if best.as_ref().is_none_or(|b| done.1.len() > b.1.len()) {
                best = Some(done);
            }
        }
        at += line.len() + 1;
    }
    if let Some(done) = current {
        if best.as_ref().is_none_or(|b| done.1.len() > b.1.len()) {
            best = Some(done);
        }
    }
    best.filter(|(_, block)| block.len() >= min_len)
}

/// Character references and the predefined entities of XML (`&#43;`, `&#x2F;`, `&amp;`) undone,
/// for text that is XML: base64 written with them decodes as the application reads it.
pub fn xml_unescaped(text: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if memchr::memchr(b'&', text).is_none() {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'&' {
            if let Some(end) = text[i..text.len().min(i + 12)].iter().position(|&b| b == b';') {
                let entity = &text[i + 1..i + end];
                let c = match entity {
                    b"amp" => Some('&'),
                    b"lt" => Some('<'),
                    b"gt" => Some('>'),
                    b"quot" => Some('"'),
                    b"apos" => Some('\''),
                    [b'#', b'x' | b'X', hex @ ..] => {
                        std::str::from_utf8(hex).ok().and_then(|h| u32::from_str_radix(h, 16).ok()).and_then(char::from_u32)
                    }
                    [b'#', dec @ ..] => std::str::from_utf8(dec).ok().and_then(|d| d.parse::<u32>().ok()).and_then(char::from_u32),
                    _ => None,
                };
                if let Some(c) = c {
                    let mut utf8 = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                    i += end + 1;
                    continue;
                }
            }
        }
        out.push(text[i]);
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

/// A file found encoded in a body.
#[derive(Debug)]
pub struct Candidate {
    /// Where it was: a JSON path (`$.attachments[0].contentBytes`), a field name, `(body)`.
    pub name: String,
    /// Its decoded bytes, or why they could not be had (too large).
    pub data: Result<Vec<u8>, BodyError>,
}

/// The candidate an encoded string stands for, if it is one (see the crate docs).
pub fn candidate(name: &str, value: &[u8], limits: &Limits) -> Option<Candidate> {
    if value.len() < limits.min_encoded_len {
        return None;
    }
    if let Some(data) = encoded::candidate_data(value, limits) {
        return Some(Candidate { name: name.to_string(), data });
    }
    // A run inside the value (`base64:…`, `q3.docx;base64,…`, a sentence around it).
    let runs = sweep_candidates(value, &Limits { max_candidates: 1, ..limits.clone() });
    runs.into_iter().next().map(|c| Candidate { name: name.to_string(), data: c.data })
}

/// The candidates of a body that is text as a whole (`text/plain`, XML, HTML, an unknown type):
/// the body itself as one encoded string, or else every long run of base64 characters in it (an
/// element's content in a SOAP or EWS request, a blob pasted into prose), named by its offset.
pub fn text_candidates(body: &[u8], limits: &Limits) -> Vec<Candidate> {
    let trimmed = body.trim_ascii();
    // XML: its character references undone first, then swept (element content, attributes).
    if trimmed.first() == Some(&b'<') {
        return sweep_candidates(&xml_unescaped(body), limits);
    }
    if let Some(c) = candidate("(body)", trimmed, limits) {
        return vec![c];
    }
    sweep_candidates(body, limits)
}

/// Every run of base64 or base64url characters (line breaks allowed inside) at least
/// `min_encoded_len` long that encodes a file the engine reads; named `(text at offset N)`.
pub fn sweep_candidates(text: &[u8], limits: &Limits) -> Vec<Candidate> {
    let is_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_' | b'=');
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() && out.len() < limits.max_candidates {
        if !is_char(text[i]) {
            i += 1;
            continue;
        }
        let start = i;
        // A run goes on across CR/LF (wrapped base64) but not across other characters.
        while i < text.len()
            && (is_char(text[i]) || ((text[i] == b'\r' || text[i] == b'\n') && text.get(i + 1).is_some_and(|&b| is_char(b) || b == b'\n')))
        {
            i += 1;
        }
        let run = &text[start..i];
        if run.len() >= limits.min_encoded_len {
            // The run as a whole (no sweep of the sweep), else its block of whole base64 lines
            // (armour such as `-----BEGIN …-----` glued to its first or last line).
            if let Some(data) = encoded::candidate_data(run, limits) {
                out.push(Candidate { name: format!("(text at offset {start})"), data });
            } else if let Some((at, block)) = base64_lines(run, limits.min_encoded_len) {
                if let Some(data) = encoded::candidate_data(&block, limits) {
                    out.push(Candidate { name: format!("(text at offset {})", start + at), data });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    /// Brotli from the `brotli` command line (no encoder crate is a dependency).
    fn by_brotli(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut child = std::process::Command::new("brotli")
            .arg("-c")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the brotli command line (scripts/test.sh installs it)");
        child.stdin.take().unwrap().write_all(data).unwrap();
        child.wait_with_output().unwrap().stdout
    }

    #[test]
    fn compressed_bodies_without_a_declared_coding_are_found() {
        let file = labelgate_testkit::zip(&labelgate_testkit::docx(Some(labelgate_testkit::custom_xml(&[])), None));
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut z, &file).unwrap();
        for (what, body) in [("zlib", z.finish().unwrap()), ("brotli", by_brotli(&file))] {
            assert_eq!(decompressed_file(&body, &Limits::default()).unwrap().unwrap(), file, "{what}");
        }
        assert!(decompressed_file(&labelgate_testkit::filler(20_000, 3), &Limits::default()).is_none());
    }

    #[test]
    fn hex_double_base64_compressed_and_prefixed_values_are_found() {
        let file = labelgate_testkit::zip(&labelgate_testkit::docx(Some(labelgate_testkit::custom_xml(&[])), None));
        let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
        let hex: String = file.iter().map(|b| format!("{b:02x}")).collect();
        let zlib = {
            use std::io::Write;
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            z.write_all(&file).unwrap();
            z.finish().unwrap()
        };
        let raw = {
            use std::io::Write;
            let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            z.write_all(&file).unwrap();
            z.finish().unwrap()
        };
        let limits = Limits::default();
        for (what, value) in [
            ("hex", hex.clone()),
            ("upper-case hex", hex.to_uppercase()),
            ("base64 of base64", b64(b64(&file).as_bytes())),
            ("base64 of hex", b64(hex.as_bytes())),
            ("base64 of zlib", b64(&zlib)),
            ("base64 of raw deflate", b64(&raw)),
            ("base64 of brotli", b64(&by_brotli(&file))),
            ("a label before the run", format!("base64:{}", b64(&file))),
            ("a file name before the run", format!("q3.docx;base64,{}", b64(&file))),
            (
                "spaces every 4 characters",
                b64(&file).as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(" "),
            ),
        ] {
            let found = candidate("v", value.as_bytes(), &limits).unwrap_or_else(|| panic!("{what}: not found"));
            assert_eq!(found.data.unwrap(), file, "{what}");
        }
        let png_like = b64(&[&[0x89u8, b'P', b'N', b'G'][..], &[7u8; 3000][..]].concat());
        assert!(candidate("v", png_like.as_bytes(), &limits).is_none(), "an image is no candidate");
    }

    #[test]
    fn wide_text_is_read_as_utf8() {
        let text = r#"{"f":"UEsDBA=="}"#;
        let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        let u32le: Vec<u8> = text.chars().flat_map(|c| (c as u32).to_le_bytes()).collect();
        let u32be: Vec<u8> = text.chars().flat_map(|c| (c as u32).to_be_bytes()).collect();
        for (what, bytes, charset) in [
            ("utf-16le with BOM", [&[0xFF, 0xFE][..], &le].concat(), None),
            ("utf-16be without BOM", be.clone(), None),
            ("utf-16le by charset", le.clone(), Some("UTF-16LE")),
            ("utf-32le with BOM", [&[0xFF, 0xFE, 0, 0][..], &u32le].concat(), None),
            ("utf-32be without BOM", u32be, None),
        ] {
            assert_eq!(wide_text_as_utf8(&bytes, charset).as_deref(), Some(text.as_bytes()), "{what}");
        }
        assert!(wide_text_as_utf8(text.as_bytes(), None).is_none(), "UTF-8 stays as it is");
    }

    #[test]
    fn base64_inside_xml_or_prose_is_found() {
        let file = labelgate_testkit::zip(&labelgate_testkit::docx(Some(labelgate_testkit::custom_xml(&[])), None));
        let b64 = base64::engine::general_purpose::STANDARD.encode(&file);
        let wrapped: String = b64.as_bytes().chunks(76).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join("\r\n");
        let soap = format!("<?xml version=\"1.0\"?><soap:Envelope><t:FileAttachment><t:Name>q3.docx</t:Name><t:Content>{wrapped}</t:Content></t:FileAttachment></soap:Envelope>");
        let found = text_candidates(soap.as_bytes(), &Limits::default());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].data.as_ref().unwrap(), &file);
        let pem: String = format!("-----BEGIN FILE-----\n{wrapped}\n-----END FILE-----\n").replace("\r", "");
        assert_eq!(text_candidates(pem.as_bytes(), &Limits::default())[0].data.as_ref().unwrap(), &file, "PEM armour");
        let entities = format!("<a v=\"{}\" w=\"{}\"/>", b64.replace('+', "&#43;").replace('/', "&#x2F;"), "QUJD&#43;".repeat(80));
        assert_eq!(text_candidates(entities.as_bytes(), &Limits::default())[0].data.as_ref().unwrap(), &file, "XML references");
        let prose = format!("Hi Bob, here it is: {b64} -- cheers");
        assert_eq!(text_candidates(prose.as_bytes(), &Limits::default())[0].data.as_ref().unwrap(), &file);
        assert!(text_candidates(b"plain words only, nothing encoded here at all".repeat(20).as_slice(), &Limits::default()).is_empty());
    }
}
