//! JSON bodies walked as a stream (RFC 8259): every string value, unescaped (`\/`, `\n`,
//! `\uXXXX` and surrogate pairs), named by its path (`$.message.attachments[0].contentBytes`);
//! a string that is JSON itself is walked too (four levels). Strings are kept whole only while
//! they may be a candidate; nesting is bounded.

use crate::{candidate, BodyError, Candidate, Limits};
use std::io::BufRead;

/// How deep JSON held in JSON strings is walked.
const MAX_EMBEDDED: usize = 4;

enum Frame {
    /// The current member's key (its allocation reused from member to member).
    Object { key: String, has_key: bool },
    /// `bytes`: the elements so far while every one is an integer 0–255 (how JavaScript
    /// serialises a `Uint8Array` or a Node `Buffer`'s data).
    Array { index: usize, bytes: Vec<u8>, numeric: bool },
}

/// The candidates of a JSON body. A syntax error ends the walk: what was found before it is
/// returned with the error.
pub fn json_candidates(reader: &mut dyn BufRead, limits: &Limits) -> (Vec<Candidate>, Option<BodyError>) {
    let mut out = Vec::new();
    let error = walk(reader, "$", limits, 0, &mut out).err();
    (out, error)
}

fn path_of(root: &str, stack: &[Frame]) -> String {
    let mut path = root.to_string();
    for f in stack {
        match f {
            Frame::Object { key: k, has_key: true } => {
                if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    path.push('.');
                    path.push_str(k);
                } else {
                    path.push_str(&format!("[{k:?}]"));
                }
            }
            Frame::Object { has_key: false, .. } => path.push_str(".?"),
            Frame::Array { index, .. } => path.push_str(&format!("[{index}]")),
        }
    }
    path
}

fn next_byte(reader: &mut dyn BufRead) -> Result<Option<u8>, BodyError> {
    let buf = reader.fill_buf()?;
    let Some(&b) = buf.first() else { return Ok(None) };
    reader.consume(1);
    Ok(Some(b))
}

fn syntax(what: &str) -> BodyError {
    BodyError::Corrupt(format!("JSON: {what}"))
}

/// Reads a string's bytes after its opening quote into `out` (cleared first), unescaped, keeping
/// at most `keep` bytes (the rest is read and dropped). Returns whether all were kept.
fn string(reader: &mut dyn BufRead, keep: usize, out: &mut Vec<u8>) -> Result<bool, BodyError> {
    out.clear();
    let mut whole = true;
    // Kept up to exactly `keep` bytes, however the reads cut the string.
    let mut push = |out: &mut Vec<u8>, bytes: &[u8]| {
        let room = keep.saturating_sub(out.len());
        if bytes.len() > room {
            whole = false;
        }
        out.extend_from_slice(&bytes[..bytes.len().min(room)]);
    };
    loop {
        // Plain runs are copied a buffer at a time.
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Err(syntax("a string does not end"));
        }
        let special = memchr::memchr2(b'"', b'\\', buf);
        let stop = special.unwrap_or(buf.len());
        push(out, &buf[..stop]);
        reader.consume(stop);
        if special.is_none() {
            // The string goes on in the next buffer.
            continue;
        }
        match next_byte(reader)? {
            Some(b'"') => return Ok(whole),
            Some(_) => {}
            None => return Err(syntax("a string does not end")),
        }
        let escaped = next_byte(reader)?.ok_or_else(|| syntax("an escape does not end"))?;
        let byte = match escaped {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 8,
            b'f' => 12,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let mut unit = hex4(reader)?;
                if (0xD800..0xDC00).contains(&unit) {
                    // A surrogate pair: the low half follows as another \u escape.
                    let (Some(b'\\'), Some(b'u')) = (next_byte(reader)?, next_byte(reader)?) else {
                        return Err(syntax("a lone surrogate"));
                    };
                    let low = hex4(reader)?;
                    unit = 0x10000 + ((unit - 0xD800) << 10) + (low.wrapping_sub(0xDC00) & 0x3FF);
                }
                let c = char::from_u32(unit).unwrap_or('\u{FFFD}');
                let mut utf8 = [0u8; 4];
                push(out, c.encode_utf8(&mut utf8).as_bytes());
                continue;
            }
            _ => return Err(syntax("a bad escape")),
        };
        push(out, &[byte]);
    }
}

fn hex4(reader: &mut dyn BufRead) -> Result<u32, BodyError> {
    let mut v = 0u32;
    for _ in 0..4 {
        let b = next_byte(reader)?.ok_or_else(|| syntax("a \\u escape does not end"))?;
        v = v * 16 + (b as char).to_digit(16).ok_or_else(|| syntax("a bad \\u escape"))?;
    }
    Ok(v)
}

/// Bytes that change the walk's state; everything else (white space, `:`, numbers, literals) is
/// skipped in bulk.
const STRUCTURAL: [bool; 256] = {
    let mut t = [false; 256];
    t[b'"' as usize] = true;
    t[b'{' as usize] = true;
    t[b'[' as usize] = true;
    t[b'}' as usize] = true;
    t[b']' as usize] = true;
    t[b',' as usize] = true;
    t
};

/// The walk's position in the document: open containers and whether a key comes next.
struct State {
    stack: Vec<Frame>,
    expect_key: bool,
    /// The text of a numeric array's element cut by the end of a buffer.
    element: Vec<u8>,
}

impl State {
    /// Ends the current element of a numeric array with the text before a structural byte `b`.
    fn element_ends(&mut self, text: &[u8], b: u8, limits: &Limits) {
        let carried = std::mem::take(&mut self.element);
        let Some(Frame::Array { bytes, numeric, .. }) = self.stack.last_mut() else { return };
        if !*numeric {
            return;
        }
        if matches!(b, b'{' | b'[' | b'"') {
            *numeric = false;
            bytes.clear();
            return;
        }
        let whole = [carried.as_slice(), text].concat();
        let token = whole.trim_ascii();
        if token.is_empty() && b == b']' && bytes.is_empty() {
            return;
        }
        let value = (1..=3).contains(&token.len()) && token.iter().all(u8::is_ascii_digit);
        match std::str::from_utf8(token).ok().filter(|_| value).and_then(|t| t.parse::<u8>().ok()) {
            Some(v) if (bytes.len() as u64) < limits.max_decoded_bytes => bytes.push(v),
            _ => {
                *numeric = false;
                bytes.clear();
            }
        }
    }

    /// Keeps the start of a numeric array's element that the buffer cut.
    fn element_continues(&mut self, text: &[u8]) {
        if let Some(Frame::Array { numeric: true, bytes, .. }) = self.stack.last_mut() {
            if self.element.len() + text.len() > 16 {
                // No byte is written in more than a few characters.
                bytes.clear();
                if let Some(Frame::Array { numeric, .. }) = self.stack.last_mut() {
                    *numeric = false;
                }
                self.element.clear();
            } else {
                self.element.extend_from_slice(text);
            }
        }
    }

    /// A structural byte other than a quote.
    fn structure(&mut self, b: u8, limits: &Limits, root: &str, out: &mut Vec<Candidate>) -> Result<(), BodyError> {
        match b {
            b'{' | b'[' => {
                if self.stack.len() >= limits.max_depth {
                    return Err(BodyError::Limit { limit: "max_json_depth", max: limits.max_depth as u64 });
                }
                self.stack.push(if b == b'{' {
                    Frame::Object { key: String::new(), has_key: false }
                } else {
                    Frame::Array { index: 0, bytes: Vec::new(), numeric: true }
                });
                self.expect_key = b == b'{';
            }
            b'}' | b']' => {
                let closed = self.stack.pop();
                if let Some(Frame::Array { bytes, numeric: true, .. }) = closed {
                    if bytes.len() >= limits.min_encoded_len && crate::encoded::is_file(&bytes) {
                        if out.len() >= limits.max_candidates {
                            return Err(BodyError::Limit { limit: "max_candidates", max: limits.max_candidates as u64 });
                        }
                        out.push(Candidate { name: path_of(root, &self.stack), data: Ok(bytes) });
                    }
                }
                self.expect_key = false;
            }
            _ => match self.stack.last_mut() {
                Some(Frame::Array { index, .. }) => *index += 1,
                Some(Frame::Object { has_key, .. }) => {
                    *has_key = false;
                    self.expect_key = true;
                }
                None => {}
            },
        }
        Ok(())
    }

    fn set_key(&mut self, raw: &[u8]) {
        if let Some(Frame::Object { key, has_key }) = self.stack.last_mut() {
            key.clear();
            key.push_str(&String::from_utf8_lossy(raw));
            *has_key = true;
        }
        self.expect_key = false;
    }
}

fn walk(reader: &mut dyn BufRead, root: &str, limits: &Limits, embedded: usize, out: &mut Vec<Candidate>) -> Result<(), BodyError> {
    // Base64 of the largest decodable candidate, plus room for a data: URL's header.
    let keep = (limits.max_decoded_bytes as usize / 3 * 4).saturating_add(4096);
    let mut state = State { stack: Vec::new(), expect_key: false, element: Vec::new() };
    // One buffer for the strings that must be gathered (long ones, ones across reads).
    let mut value: Vec<u8> = Vec::new();
    loop {
        // A whole buffer is handled at once: structure, and strings that end inside it.
        let (used, string_at_end) = {
            let buf = reader.fill_buf()?;
            if buf.is_empty() {
                return Ok(());
            }
            let mut i = 0;
            let mut string_at_end = false;
            while i < buf.len() {
                let Some(k) = buf[i..].iter().position(|&b| STRUCTURAL[b as usize]) else {
                    state.element_continues(&buf[i..]);
                    i = buf.len();
                    break;
                };
                let b = buf[i + k];
                state.element_ends(&buf[i..i + k], b, limits);
                i += k + 1;
                if b != b'"' {
                    state.structure(b, limits, root, out)?;
                    continue;
                }
                match memchr::memchr2(b'"', b'\\', &buf[i..]) {
                    Some(k) if buf[i + k] == b'"' => {
                        let text = &buf[i..i + k];
                        i += k + 1;
                        if state.expect_key {
                            state.set_key(&text[..text.len().min(1024)]);
                        } else if text.len() >= limits.min_encoded_len && crate::encoded::may_encode(text) {
                            value.clear();
                            value.extend_from_slice(text);
                            value_found(&mut value, true, root, &state, limits, embedded, out)?;
                        }
                    }
                    // An escape, or the string goes on past this buffer: read by `string`.
                    _ => {
                        string_at_end = true;
                        break;
                    }
                }
            }
            (i, string_at_end)
        };
        reader.consume(used);
        if string_at_end {
            if state.expect_key {
                string(reader, 1024, &mut value)?;
                state.set_key(&value.clone());
            } else {
                let whole = string(reader, keep, &mut value)?;
                if value.len() >= limits.min_encoded_len && crate::encoded::may_encode(&value) {
                    value_found(&mut value, whole, root, &state, limits, embedded, out)?;
                }
            }
        }
    }
}

/// A long string value that may encode a file (or hold JSON): checked, and kept when it does.
fn value_found(
    value: &mut Vec<u8>,
    whole: bool,
    root: &str,
    state: &State,
    limits: &Limits,
    embedded: usize,
    out: &mut Vec<Candidate>,
) -> Result<(), BodyError> {
    if out.len() >= limits.max_candidates {
        return Err(BodyError::Limit { limit: "max_candidates", max: limits.max_candidates as u64 });
    }
    let path = path_of(root, &state.stack);
    let first = value.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if embedded < MAX_EMBEDDED && matches!(first, Some(b'{' | b'[')) {
        // JSON sent as a string: its strings are walked too.
        let inner_text = std::mem::take(value);
        let mut inner = std::io::Cursor::new(&inner_text[..]);
        let _ = walk(&mut inner, &path, limits, embedded + 1, out);
        return Ok(());
    }
    if let Some(c) = candidate(&path, value, limits) {
        let data = if whole { c.data } else { Err(BodyError::Limit { limit: "max_inner_bytes", max: limits.max_decoded_bytes }) };
        out.push(Candidate { name: c.name, data });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine;

    fn docx() -> Vec<u8> {
        labelgate_testkit::zip(&labelgate_testkit::docx(Some(labelgate_testkit::custom_xml(&[])), None))
    }

    fn walk_str(json: &str) -> Vec<(String, Vec<u8>)> {
        let (found, error) = json_candidates(&mut std::io::Cursor::new(json.as_bytes()), &Limits::default());
        assert!(error.is_none(), "{error:?}");
        found.into_iter().map(|c| (c.name, c.data.unwrap())).collect()
    }

    #[test]
    fn strings_anywhere_are_found_with_their_paths() {
        let file = docx();
        let b64 = B64.encode(&file);
        let escaped = b64.replace('/', "\\/");
        let json = format!(
            r#"{{"message":{{"subject":"q3","attachments":[{{"name":"a"}},{{"@odata.type":"file","contentBytes":"{escaped}"}}]}},"n":[1,2.5e3,true,null]}}"#
        );
        assert_eq!(walk_str(&json), [("$.message.attachments[1].contentBytes".to_string(), file.clone())]);
        // A data: URL with \n line breaks, JSON inside a string, a key that needs quoting.
        let wrapped = b64.as_bytes().chunks(76).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join("\\n");
        let inner = format!(r#"{{\"file_data\":\"data:application/octet-stream;base64,{wrapped}\"}}"#);
        let json = format!(r#"[{{"a b":"{inner}"}}]"#);
        assert_eq!(walk_str(&json), [(r#"$[0]["a b"].file_data"#.to_string(), file)]);
    }

    /// Three bytes at a time: strings and escapes that span reads.
    struct Trickle(Vec<u8>, usize);
    impl std::io::Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = 3.min(self.0.len() - self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }

    #[test]
    fn strings_split_across_reads_are_whole() {
        let file = docx();
        // A key longer than what is kept of keys: cut at the same place however it is read.
        let key = "k".repeat(3000);
        let json = format!(r#"{{"a": "x\"y", "{key}": "{}"}}"#, B64.encode(&file).replace('/', "\\/"));
        let (whole, _) = json_candidates(&mut std::io::Cursor::new(json.clone().into_bytes()), &Limits::default());
        let mut reader = std::io::BufReader::with_capacity(7, Trickle(json.into_bytes(), 0));
        let (found, error) = json_candidates(&mut reader, &Limits::default());
        assert!(error.is_none(), "{error:?}");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].data.as_ref().unwrap(), &file);
        assert_eq!(found[0].name, whole[0].name);
    }

    #[test]
    fn arrays_of_bytes_are_files() {
        let file = docx();
        let numbers = file.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(", ");
        let json = format!(r#"{{"type":"Buffer","data":[{numbers}],"other":[1,2,300],"mixed":[1,"a",2]}}"#);
        let (whole, error) = json_candidates(&mut std::io::Cursor::new(json.clone().into_bytes()), &Limits::default());
        assert!(error.is_none(), "{error:?}");
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0].name, "$.data");
        assert_eq!(whole[0].data.as_ref().unwrap(), &file);
        // Read three bytes at a time: elements cut by buffer ends are joined.
        let mut reader = std::io::BufReader::with_capacity(5, Trickle(json.into_bytes(), 0));
        let (pieces, _) = json_candidates(&mut reader, &Limits::default());
        assert_eq!(pieces.len(), 1);
        assert_eq!(pieces[0].data.as_ref().unwrap(), &file);
        // A top-level array; numbers that are no bytes are no file.
        let top = format!("[{numbers}]");
        assert_eq!(json_candidates(&mut std::io::Cursor::new(top.into_bytes()), &Limits::default()).0[0].name, "$");
        let big = format!("[{}, 256]", numbers);
        assert!(json_candidates(&mut std::io::Cursor::new(big.into_bytes()), &Limits::default()).0.is_empty());
    }

    #[test]
    fn malformed_and_deep_json_end_with_an_error() {
        let (_, e) = json_candidates(&mut std::io::Cursor::new(b"{\"a\": \"unterminated".to_vec()), &Limits::default());
        assert!(e.is_some());
        let deep = "[".repeat(10_000);
        let (_, e) = json_candidates(&mut std::io::Cursor::new(deep.into_bytes()), &Limits::default());
        assert!(matches!(e, Some(BodyError::Limit { limit: "max_json_depth", .. })));
    }
}
