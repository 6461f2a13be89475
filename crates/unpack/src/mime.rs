//! MIME parts of an RFC 5322 message: multipart bodies split on their boundaries (nested
//! multiparts recurse), each leaf part decoded (base64, quoted-printable) into an inner file;
//! `message/rfc822` parts are inner files that are messages in turn.
//!
//! Written here rather than with a mail crate because a DLP check must see the bytes a
//! recipient's client would save: general mail parsers decode text parts through their charset
//! (lossy for a binary file sent as `text/plain`) and hide the raw structure of nested messages.

use crate::{Body, Problem, Walker};
use base64::Engine;
use labelgate_extract::{Input, SliceInput};

/// Multipart nesting followed inside one message (message/rfc822 parts are files of their own,
/// bounded by the walker's depth).
const MAX_MULTIPART_NESTING: usize = 32;

pub(crate) fn members(walker: &mut Walker<'_>, input: &mut dyn Input, path: &[String], depth: u32) -> Result<(), Problem> {
    let cap = walker.bounds.max_inner_bytes;
    if input.len() > cap {
        return Err(Problem::NestedLimit { limit: "max_inner_bytes", max: cap });
    }
    let raw = input.read_at(0, input.len() as usize, "eml").map_err(|e| Problem::from_extract(&e))?.into_owned();
    let mut parts = Vec::new();
    let mut decoded = Vec::new();
    collect(&raw, &raw, 0, &mut parts, &mut decoded, walker.bounds.max_members)?;
    // Parts are held together: overlapping boundaries must not multiply one message's bytes.
    let total: u64 = parts.iter().map(|p| p.data.len() as u64).sum();
    if total > walker.remaining_budget() {
        return Err(Problem::NestedLimit { limit: "max_expanded_bytes", max: walker.bounds.max_expanded_bytes });
    }
    // Mail readers disagree on malformed structure (duplicate or commented parameters, parts
    // after the close delimiter, unknown encodings) and decode base64 and uuencoded blocks
    // wherever they find them: every such block the structured walk did not decode is a file too.
    sweep(&raw, &decoded, &mut parts, walker.bounds.max_members)?;
    for (n, part) in parts.into_iter().enumerate() {
        let mut child = path.to_vec();
        child.push(part.name.unwrap_or_else(|| format!("part {}", n + 1)));
        let size = part.data.len() as u64;
        walker.child(Body::Input(&mut SliceInput::new(&part.data)), child, depth + 1, Some(size))?;
    }
    Ok(())
}

/// One leaf part, decoded.
struct Part {
    name: Option<String>,
    data: Vec<u8>,
    /// Its body text (a `text/*` part with no file name and no `attachment` disposition):
    /// `Some(charset)` (empty when none is stated), with `html` for `text/html`.
    body: Option<(String, bool)>,
}

/// The body text of a message: its `text/plain` and `text/html` parts that are not attached
/// files, decoded from their transfer encoding and charset (UTF-8 when none is stated or the
/// charset is unknown), each with whether it is HTML (which keeps its markup). At most
/// `max_parts` parts are looked at.
pub fn message_body_text(raw: &[u8], max_parts: u64) -> Result<Vec<(String, bool)>, Problem> {
    let mut parts = Vec::new();
    collect(raw, raw, 0, &mut parts, &mut Vec::new(), max_parts)?;
    Ok(parts
        .into_iter()
        .filter_map(|part| {
            let (charset, html) = part.body?;
            let encoding = encoding_rs::Encoding::for_label(charset.as_bytes()).unwrap_or(encoding_rs::UTF_8);
            Some((encoding.decode_with_bom_removal(&part.data).0.into_owned(), html))
        })
        .collect())
}

/// Walks one entity (headers + body): a multipart is split and each part walked; anything else
/// (the top-level body too) is a leaf. The top-level entity's own body is a part like any other
/// (a message may be a single base64 attachment).
fn collect(
    raw: &[u8],
    entity: &[u8],
    nesting: usize,
    out: &mut Vec<Part>,
    decoded: &mut Vec<(usize, usize)>,
    max_parts: u64,
) -> Result<(), Problem> {
    if out.len() as u64 >= max_parts {
        return Err(Problem::NestedLimit { limit: "max_members", max: max_parts });
    }
    let (headers, body) = split_entity(entity);
    let fields = unfold(headers);
    // Readers disagree on which of two boundary parameters (plain or RFC 2231, or in two
    // Content-Type fields) counts: every distinct one is used, and the parts of all are read.
    let mut mime = String::new();
    let mut boundaries: Vec<String> = Vec::new();
    for (_, value) in fields.iter().filter(|(n, _)| n.eq_ignore_ascii_case("content-type")) {
        let (m, params) = parse_params(value);
        if mime.is_empty() {
            mime = m;
        }
        for (k, v) in params {
            if k == "boundary" && !v.is_empty() && !boundaries.contains(&v) {
                boundaries.push(v);
            }
        }
    }
    if mime.starts_with("multipart/") && boundaries.len() > 1 {
        for boundary in &boundaries {
            collect_with(raw, &fields, Some(boundary), body, nesting, out, decoded, max_parts)?;
        }
        return Ok(());
    }
    collect_with(raw, &fields, None, body, nesting, out, decoded, max_parts)
}

/// [`collect`] for an entity whose header fields are already unfolded, split on `boundary` when
/// given (else on its Content-Type's).
#[allow(clippy::too_many_arguments)]
fn collect_with(
    raw: &[u8],
    fields: &[(String, String)],
    boundary: Option<&str>,
    body: &[u8],
    nesting: usize,
    out: &mut Vec<Part>,
    decoded: &mut Vec<(usize, usize)>,
    max_parts: u64,
) -> Result<(), Problem> {
    let header = |name: &str| fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
    let content_type = header("content-type").unwrap_or("text/plain");
    let (mime, params) = parse_params(content_type);
    let encoding = header("content-transfer-encoding").map(strip_comments).unwrap_or_default();
    let encoding = encoding.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
    if mime.starts_with("multipart/") {
        let boundary = boundary.map(str::to_string).or_else(|| params.iter().find(|(k, _)| k == "boundary").map(|(_, v)| v.clone()));
        if let Some(boundary) = boundary.filter(|b| !b.is_empty()) {
            if nesting >= MAX_MULTIPART_NESTING {
                return Err(Problem::NestedLimit { limit: "max_depth", max: MAX_MULTIPART_NESTING as u64 });
            }
            // A multipart body may not be encoded, but some senders encode it and some
            // readers decode it anyway.
            let plain: Vec<u8>;
            let body = match encoding.as_str() {
                "base64" => {
                    decoded.extend(offset_in(raw, body));
                    plain = decode_base64(body);
                    &plain[..]
                }
                "quoted-printable" => {
                    plain = decode_qp(body);
                    &plain[..]
                }
                _ => body,
            };
            for part in split_multipart(body, boundary.as_bytes()) {
                collect(raw, part, nesting + 1, out, decoded, max_parts)?;
            }
            return Ok(());
        }
    }
    let disposition = header("content-disposition").map(parse_params).map(|(_, p)| p).unwrap_or_default();
    let name = disposition
        .iter()
        .chain(params.iter())
        .find(|(k, _)| k == "filename" || k == "name")
        .map(|(_, v)| labelgate_extract::decode_rfc2047(v));
    let range = offset_in(raw, body);
    let data = match encoding.as_str() {
        "base64" => {
            decoded.extend(range);
            decode_base64(body)
        }
        "quoted-printable" => decode_qp(body),
        "x-uuencode" | "uuencode" | "x-uue" | "uue" => {
            decoded.extend(range);
            let mut blocks = uu_blocks(body);
            if blocks.is_empty() {
                uudecode_lines(body)
            } else {
                // Every block of the part is a file; the first is the part itself.
                let first = blocks.remove(0).2;
                for (_, block_name, data) in blocks {
                    if out.len() as u64 >= max_parts {
                        return Err(Problem::NestedLimit { limit: "max_members", max: max_parts });
                    }
                    out.push(Part { name: Some(block_name), data, body: None });
                }
                first
            }
        }
        _ => body.to_vec(),
    };
    let attached = name.is_some() || header("content-disposition").is_some_and(|d| parse_params(d).0.eq_ignore_ascii_case("attachment"));
    let body = (mime.starts_with("text/") && !attached).then(|| {
        let charset = params.iter().find(|(k, _)| k == "charset").map(|(_, v)| v.clone()).unwrap_or_default();
        (charset, mime == "text/html")
    });
    out.push(Part { name, data, body });
    Ok(())
}

/// Where `inner` lies in `raw`, when it is a subslice of it (a part of a decoded multipart body
/// is not: it covers nothing of the raw message).
fn offset_in(raw: &[u8], inner: &[u8]) -> Option<(usize, usize)> {
    let (base, at) = (raw.as_ptr() as usize, inner.as_ptr() as usize);
    let start = at.checked_sub(base)?;
    let end = start.checked_add(inner.len())?;
    (end <= raw.len()).then_some((start, end))
}

/// RFC 5322 comments (`(…)`, nested) removed from a header value, outside quoted strings.
fn strip_comments(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let (mut depth, mut quoted, mut escaped) = (0usize, false, false);
    for c in value.chars() {
        if escaped {
            if depth == 0 {
                out.push(c);
            }
            escaped = false;
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Base64 and uuencoded blocks outside the ranges the structured walk decoded, as parts.
fn sweep(raw: &[u8], decoded: &[(usize, usize)], out: &mut Vec<Part>, max_parts: u64) -> Result<(), Problem> {
    let covered = |at: usize| decoded.iter().any(|&(s, e)| at >= s && at < e);
    for (at, name, data) in uu_blocks(raw) {
        if !covered(at) {
            if out.len() as u64 >= max_parts {
                return Err(Problem::NestedLimit { limit: "max_members", max: max_parts });
            }
            out.push(Part { name: Some(name), data, body: None });
        }
    }
    // Runs of base64 lines (at least 256 characters: smaller blocks cannot hold a labeled file).
    let mut run_start: Option<usize> = None;
    let mut run_len = 0usize;
    let mut at = 0usize;
    let flush = |start: Option<usize>, end: usize, len: usize, out: &mut Vec<Part>| -> Result<(), Problem> {
        if let Some(start) = start {
            if len >= 256 && !covered(start) {
                if out.len() as u64 >= max_parts {
                    return Err(Problem::NestedLimit { limit: "max_members", max: max_parts });
                }
                out.push(Part { name: Some(format!("(base64 at offset {start})")), data: decode_base64(&raw[start..end]), body: None });
            }
        }
        Ok(())
    };
    // Lines end at LF, CR or CRLF; the empty piece between CR and LF continues a run.
    for line in raw.split(|&b| b == b'\n' || b == b'\r') {
        let end = at + line.len();
        if line.is_empty() {
            at = end + 1;
            continue;
        }
        let trimmed = line.trim_ascii();
        let is_b64 = trimmed.len() >= 4
            && trimmed.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/' || *c == b'=')
            && trimmed.iter().skip_while(|c| **c != b'=').all(|c| *c == b'=');
        if is_b64 {
            if run_start.is_none() {
                run_start = Some(at);
                run_len = 0;
            }
            run_len += trimmed.len();
        } else {
            flush(run_start.take(), at, run_len, out)?;
        }
        at = end + 1;
    }
    flush(run_start.take(), raw.len(), run_len, out)
}

/// uuencoded blocks (`begin <mode> <name>` … `end`): their offset, name and bytes.
fn uu_blocks(data: &[u8]) -> Vec<(usize, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0usize;
    let mut current: Option<(usize, String, usize)> = None;
    for line in data.split(|&b| b == b'\n') {
        let text = line.strip_suffix(b"\r").unwrap_or(line);
        match &current {
            None => {
                if let Some(rest) = text.strip_prefix(b"begin ") {
                    let mut fields = rest.splitn(2, |&b| b == b' ');
                    let mode = fields.next().unwrap_or(&[]);
                    if (3..=4).contains(&mode.len()) && mode.iter().all(|c| (b'0'..=b'7').contains(c)) {
                        let name = String::from_utf8_lossy(fields.next().unwrap_or(&[])).trim().to_string();
                        current = Some((at, name, at + line.len() + 1));
                    }
                }
            }
            Some((start, name, body_start)) => {
                if text.trim_ascii() == b"end" {
                    let body = &data[(*body_start).min(at)..at];
                    out.push((*start, name.clone(), uudecode_lines(body)));
                    current = None;
                }
            }
        }
        at += line.len() + 1;
    }
    out
}

/// The lines of a uuencoded body: each starts with its length character, then groups of four
/// characters carry three bytes.
fn uudecode_lines(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    for line in body.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some((&first, rest)) = line.split_first() else { continue };
        if line.starts_with(b"begin ") || line == b"end" {
            continue;
        }
        let n = (first.wrapping_sub(b' ') & 0x3f) as usize;
        let value = |c: u8| (c.wrapping_sub(b' ') & 0x3f) as u32;
        let mut produced = Vec::with_capacity(n + 3);
        for group in rest.chunks(4) {
            let mut g = [b'`'; 4];
            g[..group.len()].copy_from_slice(group);
            let v = (value(g[0]) << 18) | (value(g[1]) << 12) | (value(g[2]) << 6) | value(g[3]);
            produced.extend_from_slice(&[(v >> 16) as u8, (v >> 8) as u8, v as u8]);
        }
        produced.truncate(n);
        out.extend_from_slice(&produced);
    }
    out
}

/// Header block and body: the body starts after the first empty line (CRLF or LF).
fn split_entity(entity: &[u8]) -> (&[u8], &[u8]) {
    if entity.starts_with(b"\r\n") {
        return (&[], &entity[2..]);
    }
    if entity.starts_with(b"\n") {
        return (&[], &entity[1..]);
    }
    let mut i = 0;
    while let Some(nl) = memchr::memchr(b'\n', &entity[i..]) {
        let at = i + nl + 1;
        match entity.get(at) {
            Some(b'\n') => return (&entity[..at], &entity[at + 1..]),
            Some(b'\r') if entity.get(at + 1) == Some(&b'\n') => return (&entity[..at], &entity[at + 2..]),
            _ => {}
        }
        i = at;
    }
    (entity, &[])
}

/// Header fields with continuation lines joined.
fn unfold(block: &[u8]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in block.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let text = String::from_utf8_lossy(line);
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some((_, v)) = out.last_mut() {
                v.push(' ');
                v.push_str(text.trim());
            }
            continue;
        }
        if let Some((name, value)) = text.split_once(':') {
            out.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    out
}

/// `type/subtype; key=value; key="quoted; value"` → lowercase type and (lowercase key, value)
/// pairs. RFC 2231 continuations (`name*0*=`, `name*1*=`) and charsets (`name*=utf-8''…`) are
/// joined and decoded.
fn parse_params(value: &str) -> (String, Vec<(String, String)>) {
    let value = strip_comments(value);
    let value = value.as_str();
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            current.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => pieces.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    pieces.push(current);
    let mime = pieces.first().map(|s| s.trim().to_ascii_lowercase()).unwrap_or_default();
    let mut params: Vec<(String, String)> = Vec::new();
    let mut continued: Vec<(String, usize, bool, String)> = Vec::new();
    for piece in pieces.iter().skip(1) {
        let Some((key, value)) = piece.split_once('=') else { continue };
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim().to_string();
        // name*N* / name*N / name*
        if let Some(star) = key.find('*') {
            let base = key[..star].to_string();
            let rest = &key[star + 1..];
            let encoded = rest.ends_with('*') || rest.is_empty();
            let index = rest.trim_end_matches('*').parse::<usize>().unwrap_or(0);
            continued.push((base, index, encoded, value));
        } else {
            params.push((key, value));
        }
    }
    continued.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut i = 0;
    while i < continued.len() {
        let base = continued[i].0.clone();
        let mut bytes = Vec::new();
        let mut charset = String::new();
        while i < continued.len() && continued[i].0 == base {
            let (_, index, encoded, value) = &continued[i];
            let mut text = value.as_str();
            if *encoded && *index == 0 {
                // charset'language'text
                let mut split = text.splitn(3, '\'');
                if let (Some(cs), Some(_), Some(rest)) = (split.next(), split.next(), split.next()) {
                    charset = cs.to_string();
                    text = rest;
                }
            }
            if *encoded {
                bytes.extend(percent_decode(text));
            } else {
                bytes.extend_from_slice(text.as_bytes());
            }
            i += 1;
        }
        let encoding = encoding_rs::Encoding::for_label(charset.as_bytes()).unwrap_or(encoding_rs::UTF_8);
        params.insert(0, (base, encoding.decode(&bytes).0.into_owned()));
    }
    (mime, params)
}

fn percent_decode(s: &str) -> Vec<u8> {
    decode_escapes(s.as_bytes(), b'%', false)
}

/// The parts between `--boundary` delimiter lines, up to the `--boundary--` close delimiter (or
/// the end, when a sender forgot it: clients still show those parts).
fn split_multipart<'a>(body: &'a [u8], boundary: &[u8]) -> Vec<&'a [u8]> {
    let mut delimiter = Vec::with_capacity(boundary.len() + 2);
    delimiter.extend_from_slice(b"--");
    delimiter.extend_from_slice(boundary);
    let finder = memchr::memmem::Finder::new(&delimiter);
    // Delimiters are at the start of a line.
    let mut starts = Vec::new();
    for at in finder.find_iter(body) {
        // At the start of a line, whatever ends lines (some readers split on a bare CR too).
        if at == 0 || body[at - 1] == b'\n' || body[at - 1] == b'\r' {
            let after = at + delimiter.len();
            let close = body.get(after..after + 2) == Some(b"--");
            starts.push((at, after, close));
            if close {
                break;
            }
        }
    }
    let mut parts = Vec::new();
    for (i, &(_, after, close)) in starts.iter().enumerate() {
        if close {
            break;
        }
        // The part starts after the delimiter line's end (LF, CRLF or a bare CR).
        let line_end = match body[after..].iter().position(|&b| b == b'\n' || b == b'\r') {
            Some(n) if body.get(after + n) == Some(&b'\r') && body.get(after + n + 1) == Some(&b'\n') => after + n + 2,
            Some(n) => after + n + 1,
            None => body.len(),
        };
        let end = starts.get(i + 1).map_or(body.len(), |&(next, _, _)| next);
        if line_end > end {
            continue;
        }
        // The CRLF before the next delimiter belongs to the delimiter.
        let mut part = &body[line_end..end];
        if starts.get(i + 1).is_some() {
            part = part.strip_suffix(b"\n").unwrap_or(part);
            part = part.strip_suffix(b"\r").unwrap_or(part);
        }
        parts.push(part);
    }
    parts
}

/// Lenient base64, as mail clients decode: characters outside the alphabet (line breaks,
/// spaces, stray junk, padding) are dropped and the rest decoded.
fn decode_base64(data: &[u8]) -> Vec<u8> {
    let clean: Vec<u8> = data.iter().copied().filter(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/').collect();
    let usable = clean.len() - clean.len() % 4 + if clean.len() % 4 >= 2 { clean.len() % 4 } else { 0 };
    base64::engine::general_purpose::STANDARD_NO_PAD.decode(&clean[..usable]).unwrap_or_else(|_| {
        base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_allow_trailing_bits(true)
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        )
        .decode(&clean[..usable])
        .unwrap_or_default()
    })
}

/// Quoted-printable (RFC 2045 §6.7): `=XX` escapes, soft line breaks (`=` at the end of a line).
pub fn decode_qp(data: &[u8]) -> Vec<u8> {
    decode_escapes(data, b'=', true)
}

/// `<escape>XX` hex escapes decoded (percent-encoding, quoted-printable); with `soft_breaks`, an
/// escape character ending a line joins it to the next (quoted-printable's soft line break).
fn decode_escapes(data: &[u8], escape: u8, soft_breaks: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i] == escape {
            if soft_breaks && data.get(i + 1) == Some(&b'\r') && data.get(i + 2) == Some(&b'\n') {
                i += 3;
                continue;
            }
            if soft_breaks && data.get(i + 1) == Some(&b'\n') {
                i += 2;
                continue;
            }
            let hex = |c: Option<&u8>| c.and_then(|c| (*c as char).to_digit(16));
            if let (Some(h), Some(l)) = (hex(data.get(i + 1)), hex(data.get(i + 2))) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(data[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_quoted_and_continued() {
        let (mime, p) = parse_params("multipart/mixed; boundary=\"a;b\"");
        assert_eq!(mime, "multipart/mixed");
        assert_eq!(p, vec![("boundary".to_string(), "a;b".to_string())]);
        let (_, p) = parse_params("attachment; filename*0*=utf-8''r%C3%A9; filename*1*=sum%C3%A9.docx");
        assert_eq!(p[0], ("filename".to_string(), "résumé.docx".to_string()));
    }

    #[test]
    fn decoders() {
        assert_eq!(decode_base64(b"aGVs\r\nbG8=\r\n"), b"hello");
        assert_eq!(decode_base64(b"aGVsbG8"), b"hello");
        assert_eq!(decode_qp(b"caf=E9=\r\nx"), b"caf\xe9x");
        assert_eq!(labelgate_extract::decode_rfc2047("=?utf-8?B?csOpc3Vtw6kuZG9jeA==?="), "résumé.docx");
    }

    #[test]
    fn comments_and_uuencode() {
        let (_, p) = parse_params("multipart/mixed; boundary=\"QQ\" (a comment; with=signs)");
        assert_eq!(p, vec![("boundary".to_string(), "QQ".to_string())]);
        assert_eq!(strip_comments("base64 (as (nested) sent)"), "base64 ");
        // `begin 644 hi.txt` / "hello world" uuencoded / end
        let blocks = uu_blocks(b"text\nbegin 644 hi.txt\n+:&5L;&\\@=V]R;&0`\n`\nend\nmore");
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].1, "hi.txt");
        assert_eq!(blocks[0].2, b"hello world");
    }

    #[test]
    fn multipart_split() {
        let body = b"preamble\r\n--b\r\nA: 1\r\n\r\none\r\n--b\r\n\r\ntwo\r\n--b--\r\nepilogue";
        assert_eq!(split_multipart(body, b"b"), vec![&b"A: 1\r\n\r\none"[..], &b"\r\ntwo"[..]]);
    }
}
