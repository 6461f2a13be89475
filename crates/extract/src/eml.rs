//! E-mail: the `msip_labels` header of an RFC 5322 message (folded, RFC 2047-encoded, possibly
//! empty or repeated) and the per-attribute `msip_label_<guid>_<attr>` headers older AIP clients
//! wrote (label-formats.md §8).

use crate::error::ExtractError;
use crate::input::Input;
use crate::limits::Limits;
use crate::model::{Extraction, FileKind, Source};
use crate::msip::{is_msip_key, PropertyCollector};
use base64::Engine;

/// Header fields read before a block of unknown fields is judged not to be a message.
const MAX_SNIFF_LINES: usize = 100_000;

const KNOWN_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "received",
    "mime-version",
    "return-path",
    "content-type",
    "reply-to",
    "sender",
    "delivered-to",
    "x-mailer",
    "references",
    "in-reply-to",
    "thread-topic",
    "thread-index",
    "msip_labels",
    "dkim-signature",
    "authentication-results",
];

/// Does this look like the start of an RFC 5322 message? At least two well-known header fields
/// (or `msip_labels`) among the first lines, every line before them a valid header field.
pub(crate) fn sniff(head: &[u8]) -> bool {
    sniff_state(head, false) == Some(true)
}

/// Could more bytes after `head` make [`sniff`] say yes? True while every complete line so far
/// is a header field and the block has not ended (a message whose first fields are unusual).
pub(crate) fn sniff_undecided(head: &[u8]) -> bool {
    sniff_state(head, true).is_none()
}

/// `Some(answer)` when the lines seen decide; `None` when the header block runs past `head`
/// (only with `complete_lines_only`, which ignores a last line cut short).
fn sniff_state(head: &[u8], complete_lines_only: bool) -> Option<bool> {
    let head = if complete_lines_only {
        match memchr::memrchr(b'\n', head) {
            Some(end) => &head[..end],
            None => return if head.len() < 64 * 1024 { None } else { Some(false) },
        }
    } else {
        head
    };
    // A UTF-8 byte-order mark before the first field: mail clients skip it.
    let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let mut known = 0;
    let mut lines = 0;
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return Some(false);
        }
        lines += 1;
        if lines > MAX_SNIFF_LINES {
            return Some(false);
        }
        if line[0] == b' ' || line[0] == b'\t' {
            continue;
        }
        if lines == 1 && (line.starts_with(b"From ") || line.starts_with(b"Microsoft Mail Internet Headers Version")) {
            continue; // mbox separator; Outlook's saved-headers preamble
        }
        let Some(colon) = memchr::memchr(b':', line) else { return Some(false) };
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&c| (33..=126).contains(&c) && c != b':') {
            return Some(false);
        }
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        // msip_labels, or a MIME field: a block of header fields that says how its body is
        // encoded is a message (or a MIME entity) to every mail reader, whatever else it holds.
        if matches!(name.as_str(), "msip_labels" | "content-type" | "mime-version" | "content-transfer-encoding") {
            return Some(true);
        }
        if KNOWN_HEADERS.contains(&name.as_str()) {
            known += 1;
            if known >= 2 {
                return Some(true);
            }
        }
    }
    if complete_lines_only {
        None
    } else {
        Some(false)
    }
}

pub(crate) fn extract(input: &mut dyn Input, limits: &Limits) -> Result<Extraction, ExtractError> {
    let mut ex = Extraction::new(FileKind::Eml);
    let len = input.len().min(limits.max_header_bytes + 4);
    let head = input.read_at(0, len as usize, "eml")?.into_owned();
    let end = header_end(&head);
    let block = match end {
        Some(e) => &head[..e],
        None if (head.len() as u64) < limits.max_header_bytes => &head[..],
        None => return Err(ExtractError::limit("max_header_bytes", limits.max_header_bytes)),
    };
    let mut collector = PropertyCollector::new(Source::Eml, limits.max_records);
    collect_from_headers(block, &mut collector, limits, &mut ex);
    ex.records = collector.finish(&mut ex);
    ex.finalize();
    Ok(ex)
}

/// Offset of the blank line ending the header block.
pub(crate) fn header_end(data: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(nl) = memchr::memchr(b'\n', &data[i..]) {
        let at = i + nl + 1;
        match data.get(at) {
            Some(b'\n') => return Some(at),
            Some(b'\r') if data.get(at + 1) == Some(&b'\n') => return Some(at),
            _ => {}
        }
        i = at;
    }
    None
}

/// Feeds label headers of a header block to `collector`.
pub(crate) fn collect_from_headers(block: &[u8], collector: &mut PropertyCollector, limits: &Limits, ex: &mut Extraction) {
    let _ = limits;
    for (name, raw_value) in unfold(block) {
        let lname = name.to_ascii_lowercase();
        if lname == "msip_labels" {
            let value = decode_rfc2047(&raw_value);
            parse_msip_labels_value(&value, collector, ex);
        } else if is_msip_key(&lname) {
            collector.add(&name, &decode_rfc2047(&raw_value), ex);
        }
    }
}

/// Splits a header block into (name, unfolded value) pairs: CRLF + WSP continues a field.
fn unfold(block: &[u8]) -> Vec<(String, String)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for line in block.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some((_, v)) = out.last_mut() {
                v.extend_from_slice(line);
            }
            continue;
        }
        if let Some(colon) = memchr::memchr(b':', line) {
            let name = String::from_utf8_lossy(&line[..colon]).trim().to_string();
            out.push((name, line[colon + 1..].to_vec()));
        }
    }
    out.into_iter().map(|(n, v)| (n, String::from_utf8_lossy(&v).trim().to_string())).collect()
}

/// Splits `key=value; key=value` (separators `;`, whitespace optional, trailing `;` allowed).
pub(crate) fn parse_msip_labels_value(value: &str, collector: &mut PropertyCollector, ex: &mut Extraction) {
    for pair in value.split(';') {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        if let Some((k, v)) = pair.split_once('=') {
            collector.add(k.trim(), v.trim(), ex);
        }
    }
}

/// Decodes RFC 2047 encoded words (`=?charset?B|Q?text?=`); whitespace between adjacent encoded
/// words is dropped, as the RFC says.
pub fn decode_rfc2047(value: &str) -> String {
    if !value.contains("=?") {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    let mut last_was_word = false;
    while let Some(start) = rest.find("=?") {
        let (before, candidate) = rest.split_at(start);
        match decode_word(candidate) {
            Some((decoded, used)) => {
                if !(last_was_word && before.trim().is_empty()) {
                    out.push_str(before);
                }
                out.push_str(&decoded);
                rest = &candidate[used..];
                last_was_word = true;
            }
            None => {
                out.push_str(before);
                out.push_str("=?");
                rest = &candidate[2..];
                last_was_word = false;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Decodes one encoded word at the start of `s`; returns the text and the bytes consumed.
fn decode_word(s: &str) -> Option<(String, usize)> {
    let body = s.strip_prefix("=?")?;
    let q1 = body.find('?')?;
    let charset = &body[..q1];
    let after = &body[q1 + 1..];
    let q2 = after.find('?')?;
    let encoding = &after[..q2];
    let text_start = &after[q2 + 1..];
    let end = text_start.find("?=")?;
    let text = &text_start[..end];
    if text.contains(char::is_whitespace) {
        return None;
    }
    let bytes = if encoding.eq_ignore_ascii_case("b") {
        base64::engine::general_purpose::STANDARD
            .decode(text.trim_end_matches('='))
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text.trim_end_matches('=')))
            .ok()?
    } else if encoding.eq_ignore_ascii_case("q") {
        let mut out = Vec::new();
        let b = text.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'_' => out.push(b' '),
                b'=' => {
                    let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                    out.push(u8::from_str_radix(hex, 16).ok()?);
                    i += 2;
                }
                c => out.push(c),
            }
            i += 1;
        }
        out
    } else {
        return None;
    };
    let label = charset.split('*').next().unwrap_or(charset);
    let enc = encoding_rs::Encoding::for_label(label.as_bytes()).unwrap_or(encoding_rs::UTF_8);
    let (decoded, _, _) = enc.decode(&bytes);
    Some((decoded.into_owned(), 2 + q1 + 1 + q2 + 1 + end + 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2047_words() {
        assert_eq!(decode_rfc2047("=?utf-8?B?aGVsbG8=?= =?utf-8?Q?_world?="), "hello world");
        assert_eq!(decode_rfc2047("plain"), "plain");
        assert_eq!(decode_rfc2047("a =?bogus"), "a =?bogus");
        assert_eq!(decode_rfc2047("=?iso-8859-1?Q?caf=E9?="), "café");
    }

    #[test]
    fn sniffing() {
        assert!(sniff(b"From: a@b\r\nTo: c@d\r\n\r\nbody"));
        assert!(sniff(b"msip_labels: \r\n\r\n"));
        assert!(!sniff(b"hello world\nthis is text\n"));
        assert!(!sniff(b"Name: value\n\n"));
    }
}
