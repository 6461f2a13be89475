//! PDF object syntax (ISO 32000-1 §7.3): a bounded parser for one object at a time, with name
//! `#xx` escapes, literal and hex strings, references, and text-string decoding.

use std::fmt;

/// A parsed PDF object. Strings and names hold decoded bytes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Obj {
    Null,
    Bool(bool),
    Int(i64),
    Real(f64),
    Str(Vec<u8>),
    Name(Vec<u8>),
    Array(Vec<Obj>),
    Dict(Dict),
    Ref(u32, u16),
}

pub(crate) type Dict = Vec<(Vec<u8>, Obj)>;

pub(crate) fn dict_get<'d>(dict: &'d Dict, key: &[u8]) -> Option<&'d Obj> {
    dict.iter().rev().find(|(k, _)| k.as_slice() == key).map(|(_, v)| v)
}

impl Obj {
    pub(crate) fn as_int(&self) -> Option<i64> {
        match self {
            Obj::Int(i) => Some(*i),
            Obj::Real(r) if r.fract() == 0.0 => Some(*r as i64),
            _ => None,
        }
    }
    pub(crate) fn as_dict(&self) -> Option<&Dict> {
        match self {
            Obj::Dict(d) => Some(d),
            _ => None,
        }
    }
    pub(crate) fn as_name(&self) -> Option<&[u8]> {
        match self {
            Obj::Name(n) => Some(n),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SyntaxError {
    /// The object runs past the end of the window; a larger window may complete it.
    Incomplete,
    /// Nesting deeper than allowed.
    TooDeep,
    Bad(String),
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyntaxError::Incomplete => write!(f, "object truncated"),
            SyntaxError::TooDeep => write!(f, "objects nested too deeply"),
            SyntaxError::Bad(m) => write!(f, "{m}"),
        }
    }
}

type R<T> = Result<T, SyntaxError>;

pub(crate) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'\x0c' | b'\0')
}
fn is_delim(b: u8) -> bool {
    matches!(b, b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%')
}

pub(crate) struct Parser<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
    max_depth: usize,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(buf: &'a [u8], max_depth: usize) -> Parser<'a> {
        Parser { buf, pos: 0, max_depth }
    }

    pub(crate) fn skip_ws(&mut self) {
        while self.pos < self.buf.len() {
            let b = self.buf[self.pos];
            if is_ws(b) {
                self.pos += 1;
            } else if b == b'%' {
                while self.pos < self.buf.len() && !matches!(self.buf[self.pos], b'\r' | b'\n') {
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    fn peek(&self) -> R<u8> {
        self.buf.get(self.pos).copied().ok_or(SyntaxError::Incomplete)
    }

    /// A bare keyword or number token.
    pub(crate) fn token(&mut self) -> R<&'a [u8]> {
        self.skip_ws();
        let start = self.pos;
        while self.pos < self.buf.len() && !is_ws(self.buf[self.pos]) && !is_delim(self.buf[self.pos]) {
            self.pos += 1;
        }
        if self.pos == self.buf.len() {
            return Err(SyntaxError::Incomplete);
        }
        Ok(&self.buf[start..self.pos])
    }

    pub(crate) fn expect_keyword(&mut self, kw: &[u8]) -> R<()> {
        let t = self.token()?;
        if t == kw {
            Ok(())
        } else {
            Err(SyntaxError::Bad(format!("expected {:?}", String::from_utf8_lossy(kw))))
        }
    }

    pub(crate) fn parse_u64(&mut self) -> R<u64> {
        let t = self.token()?;
        std::str::from_utf8(t).ok().and_then(|s| s.parse().ok()).ok_or_else(|| SyntaxError::Bad("expected an unsigned integer".into()))
    }

    pub(crate) fn parse(&mut self) -> R<Obj> {
        self.parse_depth(0)
    }

    fn parse_depth(&mut self, depth: usize) -> R<Obj> {
        if depth > self.max_depth {
            return Err(SyntaxError::TooDeep);
        }
        self.skip_ws();
        let b = self.peek()?;
        match b {
            b'/' => {
                self.pos += 1;
                Ok(Obj::Name(self.name_body()))
            }
            b'(' => {
                self.pos += 1;
                Ok(Obj::Str(self.literal_body()?))
            }
            b'<' => {
                if self.buf.get(self.pos + 1) == Some(&b'<') {
                    self.pos += 2;
                    let mut dict = Vec::new();
                    loop {
                        self.skip_ws();
                        match self.peek()? {
                            b'>' => {
                                if self.buf.get(self.pos + 1) == Some(&b'>') {
                                    self.pos += 2;
                                    return Ok(Obj::Dict(dict));
                                }
                                if self.pos + 1 >= self.buf.len() {
                                    return Err(SyntaxError::Incomplete);
                                }
                                return Err(SyntaxError::Bad("stray '>' in dictionary".into()));
                            }
                            b'/' => {
                                self.pos += 1;
                                let key = self.name_body();
                                let value = self.parse_depth(depth + 1)?;
                                dict.push((key, value));
                            }
                            _ => {
                                // Tolerate junk tokens as real readers do, but stay bounded.
                                let before = self.pos;
                                let _ = self.parse_depth(depth + 1)?;
                                if self.pos == before {
                                    self.pos += 1;
                                }
                            }
                        }
                    }
                }
                self.pos += 1;
                Ok(Obj::Str(self.hex_body()?))
            }
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_ws();
                    if self.peek()? == b']' {
                        self.pos += 1;
                        return Ok(Obj::Array(items));
                    }
                    let before = self.pos;
                    items.push(self.parse_depth(depth + 1)?);
                    if self.pos == before {
                        self.pos += 1;
                    }
                }
            }
            b')' | b'>' | b']' | b'{' | b'}' => {
                self.pos += 1;
                Ok(Obj::Null)
            }
            _ => {
                let t = self.token()?;
                match t {
                    b"true" => Ok(Obj::Bool(true)),
                    b"false" => Ok(Obj::Bool(false)),
                    b"null" => Ok(Obj::Null),
                    _ => self.number_or_ref(t),
                }
            }
        }
    }

    fn number_or_ref(&mut self, t: &[u8]) -> R<Obj> {
        let s = std::str::from_utf8(t).map_err(|_| SyntaxError::Bad("bad token".into()))?;
        if let Ok(i) = s.parse::<i64>() {
            // `n g R`?
            let save = self.pos;
            if (0..=u32::MAX as i64).contains(&i) {
                if let Ok(g) = self.token() {
                    if let Ok(g) = std::str::from_utf8(g).unwrap_or("x").parse::<u16>() {
                        if let Ok(r) = self.token() {
                            if r == b"R" {
                                return Ok(Obj::Ref(i as u32, g));
                            }
                        }
                    }
                }
            }
            self.pos = save;
            return Ok(Obj::Int(i));
        }
        if let Ok(r) = s.parse::<f64>() {
            return Ok(Obj::Real(r));
        }
        if s.is_empty() {
            return Err(SyntaxError::Bad("unexpected character".into()));
        }
        // An unknown keyword (e.g. `stream`, `endobj`): report it to the caller as a name-less null.
        Err(SyntaxError::Bad(format!("unexpected keyword {:?}", crate::msip::truncate(s))))
    }

    fn name_body(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while self.pos < self.buf.len() {
            let b = self.buf[self.pos];
            if is_ws(b) || is_delim(b) {
                break;
            }
            if b == b'#' {
                let hex = self
                    .buf
                    .get(self.pos + 1..self.pos + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(v) = hex {
                    out.push(v);
                    self.pos += 3;
                    continue;
                }
            }
            out.push(b);
            self.pos += 1;
        }
        out
    }

    fn literal_body(&mut self) -> R<Vec<u8>> {
        let mut out = Vec::new();
        let mut depth = 1usize;
        loop {
            let b = self.peek()?;
            self.pos += 1;
            match b {
                b'\\' => {
                    let e = self.peek()?;
                    self.pos += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'(' | b')' | b'\\' => out.push(e),
                        b'\r' => {
                            if self.buf.get(self.pos) == Some(&b'\n') {
                                self.pos += 1;
                            }
                        }
                        b'\n' => {}
                        b'0'..=b'7' => {
                            let mut v = (e - b'0') as u32;
                            for _ in 0..2 {
                                match self.buf.get(self.pos) {
                                    Some(&d @ b'0'..=b'7') => {
                                        v = v * 8 + (d - b'0') as u32;
                                        self.pos += 1;
                                    }
                                    _ => break,
                                }
                            }
                            out.push((v & 0xFF) as u8);
                        }
                        other => out.push(other),
                    }
                }
                b'(' => {
                    depth += 1;
                    out.push(b);
                }
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(out);
                    }
                    out.push(b);
                }
                b'\r' => {
                    // EOL normalisation: CR and CRLF become LF.
                    if self.buf.get(self.pos) == Some(&b'\n') {
                        self.pos += 1;
                    }
                    out.push(b'\n');
                }
                _ => out.push(b),
            }
        }
    }

    fn hex_body(&mut self) -> R<Vec<u8>> {
        let mut out = Vec::new();
        let mut high: Option<u8> = None;
        loop {
            let b = self.peek()?;
            self.pos += 1;
            if b == b'>' {
                if let Some(h) = high {
                    out.push(h << 4);
                }
                return Ok(out);
            }
            if is_ws(b) {
                continue;
            }
            let v = (b as char).to_digit(16).ok_or_else(|| SyntaxError::Bad("bad hex string".into()))? as u8;
            match high.take() {
                Some(h) => out.push((h << 4) | v),
                None => high = Some(v),
            }
        }
    }
}

/// Decodes a PDF text string: UTF-16BE (BOM FE FF, language escapes removed), UTF-8 (BOM, or
/// valid UTF-8 as some writers emit), else PDFDocEncoding.
pub(crate) fn decode_text_string(bytes: &[u8]) -> String {
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        let mut units = Vec::with_capacity(rest.len() / 2);
        let mut in_escape = false;
        for c in rest.chunks_exact(2) {
            let u = u16::from_be_bytes([c[0], c[1]]);
            if c[0] == 0x1B || (in_escape && u != 0x1B && c[1] != 0x1B) {
                if c[0] == 0x1B {
                    in_escape = !in_escape;
                }
                continue;
            }
            units.push(u);
        }
        return String::from_utf16_lossy(&units);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return String::from_utf8_lossy(rest).into_owned();
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        return s.to_string();
    }
    bytes.iter().map(|&b| pdfdoc_char(b)).collect()
}

fn pdfdoc_char(b: u8) -> char {
    const HIGH: [char; 32] = [
        '•', '†', '‡', '…', '—', '–', 'ƒ', '⁄', '‹', '›', '−', '‰', '„', '“', '”', '‘', '’', '‚', '™', 'ﬁ', 'ﬂ', 'Ł', 'Œ', 'Š', 'Ÿ', 'Ž',
        'ı', 'ł', 'œ', 'š', 'ž', '\u{FFFD}',
    ];
    match b {
        0x80..=0x9F => HIGH[(b - 0x80) as usize],
        0xA0 => '€',
        _ => b as char,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[u8]) -> Obj {
        Parser::new(s, 32).parse().expect("parses")
    }

    #[test]
    fn strings_and_names() {
        assert_eq!(p(b"(\\164rue) "), Obj::Str(b"true".to_vec()));
        assert_eq!(p(b"(a\\\r\nb(c)\\)) "), Obj::Str(b"ab(c))".to_vec()));
        assert_eq!(p(b"<74 72 75 65> "), Obj::Str(b"true".to_vec()));
        assert_eq!(p(b"<747> "), Obj::Str(vec![0x74, 0x70]));
        assert_eq!(p(b"/MSIP#5FLabel "), Obj::Name(b"MSIP_Label".to_vec()));
        assert_eq!(p(b"12 0 R "), Obj::Ref(12, 0));
        assert_eq!(p(b"[1 2 R 3] "), Obj::Array(vec![Obj::Ref(1, 2), Obj::Int(3)]));
        assert_eq!(p(b"[1 2 3] "), Obj::Array(vec![Obj::Int(1), Obj::Int(2), Obj::Int(3)]));
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = "[".repeat(100);
        assert_eq!(Parser::new(deep.as_bytes(), 32).parse(), Err(SyntaxError::TooDeep));
    }

    #[test]
    fn text_strings() {
        assert_eq!(decode_text_string(&[0xFE, 0xFF, 0, b'h', 0, b'i']), "hi");
        assert_eq!(decode_text_string("Général".as_bytes()), "Général");
        assert_eq!(decode_text_string(&[b'a', 0x92]), "a™");
    }
}
