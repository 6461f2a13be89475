//! Strings that encode a file: base64 (RFC 4648 §4), base64url (§5), padded or not, with line
//! breaks or spaces, and `data:` URLs (RFC 2397, base64 or percent-encoded).

use crate::{BodyError, Limits};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent).with_decode_allow_trailing_bits(true);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);

/// Base64 characters decoded for the sniff: 4 KiB of output.
const HEAD_CHARS: usize = 4096 / 3 * 4 + 4;
/// Base64 characters decoded from the end: 64 KiB + 22 of output (a ZIP end record's reach).
const TAIL_CHARS: usize = (64 * 1024 + 22) / 3 * 4 + 8;

/// The payload of a `data:` URL and whether it is base64.
fn data_url(value: &[u8]) -> Option<(&[u8], bool)> {
    let rest = value.strip_prefix(b"data:").or_else(|| value.strip_prefix(b"DATA:"))?;
    let comma = memchr::memchr(b',', &rest[..rest.len().min(1024)])?;
    let meta = &rest[..comma];
    let base64 = meta.len() >= 7 && meta[meta.len() - 7..].eq_ignore_ascii_case(b";base64");
    Some((&rest[comma + 1..], base64))
}

/// A cheap first look at a long string: could it be an encoded file at all (a `data:` URL, or
/// base64 characters in its first 64 bytes, or JSON that may hold one)? Prose fails at once.
pub(crate) fn may_encode(value: &[u8]) -> bool {
    let start = value.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(0);
    let head = &value[start..value.len().min(start + 64)];
    let tail = &value[value.len().saturating_sub(64)..];
    // One pass, failing at the first sign of prose: base64 characters, with spaces only between
    // groups of four (the first token of a sample may be cut, so it is not counted).
    let encoded = |s: &[u8]| {
        let mut run = 0usize;
        let mut first = true;
        for &b in s {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' | b'-' | b'_' | b'=' => run += 1,
                b'\r' | b'\n' => {}
                b' ' | b'\t' => {
                    if !first && (run == 0 || run % 4 != 0) {
                        return false;
                    }
                    first = false;
                    run = 0;
                }
                _ => return false,
            }
        }
        true
    };
    head.starts_with(b"data:")
        || head.starts_with(b"DATA:")
        || matches!(head.first(), Some(b'{' | b'['))
        || encoded(head)
        // A label before a long run (`base64:…`, `q3.docx;base64,…`): the run ends the value.
        || (encoded(tail) && tail.iter().filter(|b| b.is_ascii_alphanumeric()).count() > 48)
}

/// Whether a value is shaped like an encoded file: a `data:` URL, or base64/base64url text
/// (white space allowed) long enough.
pub fn looks_encoded(value: &[u8], min_len: usize) -> bool {
    if value.len() < min_len {
        return false;
    }
    if data_url(value).is_some() {
        return true;
    }
    let sample = &value[..value.len().min(HEAD_CHARS)];
    sample.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_' | b'=' | b'\r' | b'\n' | b' ' | b'\t'))
}

/// Characters of either base64 alphabet (without padding or white space).
const ALPHABET: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'-' || b == b'_';
        c += 1;
    }
    t
};

/// The base64 alphabet characters of `text` (white space and padding dropped), or `None` when
/// something else is in it; and whether the URL-safe alphabet is used. Text that is all alphabet
/// (the usual case) is borrowed, not copied.
fn clean(text: &[u8]) -> Option<(std::borrow::Cow<'_, [u8]>, bool)> {
    let body = text.strip_suffix(b"==").or_else(|| text.strip_suffix(b"=")).unwrap_or(text);
    if body.iter().all(|&b| ALPHABET[b as usize]) {
        let url = memchr::memchr2(b'-', b'_', body).is_some();
        if url && memchr::memchr2(b'+', b'/', body).is_some() {
            return None;
        }
        return Some((std::borrow::Cow::Borrowed(body), url));
    }
    clean_copy(text).map(|(v, url)| (std::borrow::Cow::Owned(v), url))
}

fn clean_copy(text: &[u8]) -> Option<(Vec<u8>, bool)> {
    let mut out = Vec::with_capacity(text.len());
    let mut url = false;
    let mut standard = false;
    for &b in text {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => out.push(b),
            b'+' | b'/' => {
                standard = true;
                out.push(b)
            }
            b'-' | b'_' => {
                url = true;
                out.push(b)
            }
            b'=' | b'\r' | b'\n' | b' ' | b'\t' => {}
            _ => return None,
        }
    }
    if url && standard {
        return None;
    }
    Some((out, url))
}

fn decode_clean(chars: &[u8], url: bool) -> Option<Vec<u8>> {
    let engine = if url { &URL_SAFE } else { &STANDARD };
    // A trailing single character is no whole byte: dropped, as lenient decoders do.
    let usable = if chars.len() % 4 == 1 { &chars[..chars.len() - 1] } else { chars };
    engine.decode(usable).ok()
}

/// Decodes an encoded string whole (a `data:` URL, base64 or base64url); `None` when it is none.
pub fn decode_encoded(value: &[u8]) -> Option<Vec<u8>> {
    if let Some((payload, base64)) = data_url(value) {
        if !base64 {
            return Some(percent_encoding::percent_decode(payload).collect());
        }
        let (chars, url) = clean(payload)?;
        return decode_clean(&chars, url);
    }
    let (chars, url) = clean(value)?;
    decode_clean(&chars, url)
}

/// The decoded bytes of a value that encodes a file the engine reads, decoded whole only then.
pub(crate) fn candidate_data(value: &[u8], limits: &Limits) -> Option<Result<Vec<u8>, BodyError>> {
    layered(value, limits, 0)
}

/// How many encodings deep a value is undone (base64 of base64, hex of base64, base64 of a zlib
/// stream…).
const MAX_LAYERS: usize = 3;

fn is_hex(value: &[u8]) -> bool {
    value.len() >= 2 && value.len() % 2 == 0 && value.iter().all(u8::is_ascii_hexdigit)
}

fn hex_decode(value: &[u8]) -> Vec<u8> {
    value
        .chunks_exact(2)
        .map(|p| ((p[0] as char).to_digit(16).unwrap_or(0) * 16 + (p[1] as char).to_digit(16).unwrap_or(0)) as u8)
        .collect()
}

/// Bytes that are one more layer: encoded text again, or a zlib / raw deflate stream whose
/// inflated start is something the engine reads.
/// A body (or value) that is a compressed stream without a coding declared for it — zlib, raw
/// deflate or brotli — whose decompressed start is something the engine reads: decompressed.
pub fn decompressed_file(bytes: &[u8], limits: &Limits) -> Option<Result<Vec<u8>, BodyError>> {
    next_layer(bytes, limits, 0)
}

fn next_layer(decoded: &[u8], limits: &Limits, depth: usize) -> Option<Result<Vec<u8>, BodyError>> {
    if depth + 1 >= MAX_LAYERS {
        return None;
    }
    let text = decoded.trim_ascii();
    if text.len() >= 64 && (is_hex(text) || looks_encoded(text, 64)) {
        return layered(text, limits, depth + 1);
    }
    let zlib = decoded.len() >= 2 && decoded[0] & 0x0f == 8 && (u16::from(decoded[0]) << 8 | u16::from(decoded[1])) % 31 == 0;
    let inflate = |data: &[u8], cap: u64| -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let reader: Box<dyn std::io::Read + '_> =
            if zlib { Box::new(flate2::read::ZlibDecoder::new(data)) } else { Box::new(flate2::read::DeflateDecoder::new(data)) };
        std::io::Read::read_to_end(&mut std::io::Read::take(reader, cap), &mut out).ok()?;
        Some(out)
    };
    // Brotli has no signature: its start is tried too, as a reader would.
    if !zlib {
        let mut head = Vec::with_capacity(4096);
        let mut br = crate::brotli::decoder(&decoded[..decoded.len().min(8192)], 4096);
        let _ = std::io::Read::read_to_end(&mut std::io::Read::take(&mut br, 4096), &mut head);
        if !head.is_empty() && labelgate_extract::sniff_kind(&head).is_some() {
            let mut all = Vec::new();
            let whole = crate::brotli::decoder(decoded, 64 * 1024);
            return Some(match std::io::Read::read_to_end(&mut std::io::Read::take(whole, limits.max_decoded_bytes + 1), &mut all) {
                Ok(_) if all.len() as u64 <= limits.max_decoded_bytes => Ok(all),
                Ok(_) => Err(BodyError::Limit { limit: "max_inner_bytes", max: limits.max_decoded_bytes }),
                Err(e) => Err(BodyError::Corrupt(format!("brotli: {e}"))),
            });
        }
    }
    // The inflated start decides; only then is the whole stream inflated.
    let head = inflate(&decoded[..decoded.len().min(8192)], 4096).or_else(|| {
        // A short stream inflates whole within its first 8 KiB; a cut one errs: retry as a prefix.
        let mut d = flate2::Decompress::new(zlib);
        let mut out = Vec::with_capacity(4096);
        d.decompress_vec(&decoded[..decoded.len().min(8192)], &mut out, flate2::FlushDecompress::Sync).ok()?;
        Some(out)
    })?;
    labelgate_extract::sniff_kind(&head)?;
    Some(
        inflate(decoded, limits.max_decoded_bytes + 1)
            .filter(|all| all.len() as u64 <= limits.max_decoded_bytes)
            .ok_or(BodyError::Limit { limit: "max_inner_bytes", max: limits.max_decoded_bytes }),
    )
}

fn layered(value: &[u8], limits: &Limits, depth: usize) -> Option<Result<Vec<u8>, BodyError>> {
    let trimmed = value.trim_ascii();
    if is_hex(trimmed) && trimmed.len() >= 64 {
        // Hex: the first 4 KiB decide, as for base64.
        let head = hex_decode(&trimmed[..trimmed.len().min(8192)]);
        let tail = if trimmed.len() > 8192 { hex_decode(&trimmed[trimmed.len().saturating_sub(131_116) / 2 * 2..]) } else { Vec::new() };
        if interesting(&head, &tail) {
            if trimmed.len() as u64 / 2 > limits.max_decoded_bytes {
                return Some(Err(BodyError::Limit { limit: "max_inner_bytes", max: limits.max_decoded_bytes }));
            }
            return Some(Ok(hex_decode(trimmed)));
        }
        if depth + 1 < MAX_LAYERS {
            let all = hex_decode(&trimmed[..trimmed.len().min(limits.max_decoded_bytes as usize * 2)]);
            return next_layer(&all, limits, depth);
        }
        return None;
    }
    let (payload, base64) = match data_url(value) {
        Some(p) => p,
        None => (value, true),
    };
    if !base64 {
        let bytes: Vec<u8> = percent_encoding::percent_decode(payload).collect();
        return interesting(&bytes, &bytes).then_some(Ok(bytes));
    }
    let (chars, url) = clean(payload)?;
    let head = decode_clean(&chars[..chars.len().min(HEAD_CHARS) / 4 * 4], url)?;
    let tail = if chars.len() > HEAD_CHARS {
        // Aligned to the 4-character groups counted from the start.
        let from = chars.len().saturating_sub(TAIL_CHARS) / 4 * 4;
        decode_clean(&chars[from..], url).unwrap_or_default()
    } else {
        Vec::new()
    };
    if !interesting(&head, &tail) {
        // Perhaps one more layer (base64 of base64, of hex, of a zlib stream).
        if depth + 1 < MAX_LAYERS && (looks_encoded(&head, 64) || is_hex(head.trim_ascii()) || head.len() >= 2) {
            let max_chars = limits.max_decoded_bytes as usize / 3 * 4;
            let cap = if chars.len() > max_chars { max_chars / 4 * 4 } else { chars.len() };
            let quick = next_layer(&head, limits, depth).is_some() || looks_encoded(&head, 64) || is_hex(head.trim_ascii());
            if quick {
                let all = decode_clean(&chars[..cap], url)?;
                return next_layer(&all, limits, depth);
            }
        }
        return None;
    }
    let decoded_len = chars.len() as u64 / 4 * 3;
    if decoded_len > limits.max_decoded_bytes + 3 {
        return Some(Err(BodyError::Limit { limit: "max_inner_bytes", max: limits.max_decoded_bytes }));
    }
    Some(decode_clean(&chars, url).ok_or_else(|| BodyError::Corrupt("base64 does not decode".into())))
}

/// Whether bytes (an array of numbers, say) are a file the engine reads.
pub(crate) fn is_file(bytes: &[u8]) -> bool {
    interesting(&bytes[..bytes.len().min(4096)], &bytes[bytes.len().saturating_sub(64 * 1024 + 22)..])
}

/// Whether decoded bytes are something the engine reads: by their start, or by an end that is a
/// ZIP package's or a PDF's.
fn interesting(head: &[u8], tail: &[u8]) -> bool {
    if labelgate_extract::sniff_kind(head).is_some() {
        return true;
    }
    let end = if tail.is_empty() { head } else { tail };
    let mut input = labelgate_extract::SliceInput::new(end);
    labelgate_extract::zip_end_record_in_tail(&mut input).is_some()
        || memchr::memmem::rfind(&end[end.len().saturating_sub(4096)..], b"startxref").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD};

    fn docx() -> Vec<u8> {
        labelgate_testkit::zip(&labelgate_testkit::docx(Some(labelgate_testkit::custom_xml(&[])), None))
    }

    #[test]
    fn every_spelling_of_a_file_decodes_to_it() {
        let file = docx();
        let limits = Limits::default();
        let wrapped: Vec<u8> = B64.encode(&file).into_bytes().chunks(76).flat_map(|l| [l, b"\r\n"].concat()).collect();
        for text in [
            B64.encode(&file).into_bytes(),
            URL_SAFE_NO_PAD.encode(&file).into_bytes(),
            wrapped,
            format!("data:application/vnd.openxmlformats-officedocument.wordprocessingml.document;base64,{}", B64.encode(&file))
                .into_bytes(),
        ] {
            assert_eq!(candidate_data(&text, &limits).unwrap().unwrap(), file);
            assert_eq!(decode_encoded(&text).unwrap(), file);
        }
    }

    #[test]
    fn text_that_is_no_file_is_no_candidate() {
        let limits = Limits::default();
        let prose = B64.encode("hello world, this is only text ".repeat(40));
        assert!(candidate_data(prose.as_bytes(), &limits).is_none());
        assert!(candidate_data(b"not base64 at all { }", &limits).is_none());
        let mixed = format!("{}-_{}", "ab+/".repeat(100), "cd".repeat(10));
        assert!(candidate_data(mixed.as_bytes(), &limits).is_none(), "two alphabets at once");
    }

    #[test]
    fn a_package_behind_a_prefix_is_found_from_its_end() {
        let mut file = b"GIF89a".repeat(2000);
        file.extend(docx());
        let text = B64.encode(&file);
        assert_eq!(candidate_data(text.as_bytes(), &Limits::default()).unwrap().unwrap(), file);
    }

    #[test]
    fn too_large_a_candidate_is_a_limit() {
        let limits = Limits { max_decoded_bytes: 100, ..Limits::default() };
        let text = B64.encode(docx());
        assert!(matches!(candidate_data(text.as_bytes(), &limits), Some(Err(BodyError::Limit { .. }))));
    }
}
