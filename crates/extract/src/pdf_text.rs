//! The text of a PDF as a reader shows it, for content detectors: every page's content streams
//! (in page order, resources inherited down the page tree), their text-showing operators (`Tj`,
//! `TJ`, `'`, `"`) decoded through the font in use.
//!
//! Font encodings decoded:
//! - a font's `/ToUnicode` CMap (`bfchar`, `bfrange` with offsets or arrays; one- or two-byte
//!   codes from its code space), which Office, LibreOffice and most writers embed;
//! - simple fonts without one: `/WinAnsiEncoding` (also used for `/StandardEncoding` and fonts
//!   naming no encoding, which agree with it on letters, digits and punctuation),
//!   `/MacRomanEncoding`, and `/Differences` with standard glyph names, `uniXXXX` and `uXXXX`.
//!
//! A composite (Type0) font without `/ToUnicode` has no defined Unicode text: it is reported as
//! unreadable, not guessed. Form XObjects a page draws are read (browsers' print-to-PDF puts
//! whole pages in one); annotations are not. Line moves
//! (`Td`/`TD` with a vertical move, `Tm` to a new line, `T*`) become `\n`; a `TJ` gap wider than
//! 0.2 em becomes a space, as text extraction tools read word gaps.

use super::{header_behind_prefix, malformed, open, Doc};
use crate::input::Input;
use crate::limits::Limits;
use crate::model::{Extraction, FileKind, Flag};
use crate::pdf_syntax::{dict_get, Dict, Obj, Parser};
use crate::text::TextOut;
use crate::ExtractError;
use std::collections::HashMap;
use std::rc::Rc;

/// One content stream is decoded whole (at most this), then read.
const MAX_CONTENT_STREAM: u64 = 64 << 20;
/// ToUnicode CMaps larger than this are not read.
const MAX_CMAP: u64 = 4 << 20;
/// Form XObjects drawn inside form XObjects, followed this deep.
const MAX_FORM_NESTING: usize = 4;
/// Forms drawn by one content stream that are read.
const MAX_FORMS: usize = 256;
/// Mappings kept per font.
const MAX_MAPPINGS: usize = 1 << 17;

pub(crate) fn pdf_text(input: &mut dyn Input, limits: &Limits, out: &mut TextOut<'_>) -> Result<(), ExtractError> {
    let head = input.read_upto(0, 1024)?.into_owned();
    let header_offset = match memchr::memmem::find(&head, b"%PDF-") {
        Some(at) => at as u64,
        None => header_behind_prefix(input, limits)?.ok_or_else(|| malformed("no %PDF- header"))?,
    };
    let mut ex = Extraction::new(FileKind::Pdf);
    let mut doc = open(input, limits, header_offset, &mut ex)?;
    if ex.flags.contains(&Flag::Encrypted) {
        out.unreadable("pdf: encrypted with a password".into());
        return Ok(());
    }
    // Every page costs a few objects: a wider budget than the labels need.
    doc.limits.max_pdf_objects = limits.max_pdf_objects.saturating_mul(16);
    let mut reader = PageReader { fonts: HashMap::new(), cmaps: HashMap::new() };
    reader.pages(&mut doc, out)
}

/// A font's way from shown bytes to text.
struct Font {
    /// Bytes per code.
    code_bytes: usize,
    /// From the ToUnicode CMap (shared by the fonts that name the same one).
    to_unicode: Rc<HashMap<u32, String>>,
    /// For simple fonts: each byte's character when the CMap does not map it.
    simple: Option<Box<[char; 256]>>,
}

impl Font {
    fn show(&self, bytes: &[u8], text: &mut String) {
        for code in bytes.chunks(self.code_bytes) {
            let value = code.iter().fold(0u32, |acc, &b| (acc << 8) | b as u32);
            if let Some(s) = self.to_unicode.get(&value) {
                text.push_str(s);
            } else if let Some(table) = &self.simple {
                let c = table[(value & 0xff) as usize];
                if c != '\0' {
                    text.push(c);
                }
            }
        }
    }
}

struct PageReader {
    /// Fonts by object number, loaded once per document.
    fonts: HashMap<u32, Rc<Font>>,
    /// ToUnicode CMaps by object number, parsed once per document (fonts written inline on
    /// every page share them).
    cmaps: HashMap<u32, Cmap>,
}

/// A parsed ToUnicode CMap: its mappings and, when its code space says, the bytes per code.
type Cmap = (Rc<HashMap<u32, String>>, Option<usize>);

impl PageReader {
    /// Every page in order: its content streams with its (inherited) resources.
    fn pages(&mut self, doc: &mut Doc<'_>, out: &mut TextOut<'_>) -> Result<(), ExtractError> {
        let Some(catalog) = doc.catalog()? else { return Ok(()) };
        let Some(pages) = dict_get(&catalog, b"Pages").cloned() else { return Ok(()) };
        doc.walk_pages(pages, |doc, page, resources| {
            if let Some(contents) = dict_get(&page, b"Contents").cloned() {
                let data = self.contents(doc, &contents, out)?;
                self.run(doc, &data, resources.as_ref(), out, 0)?;
                out.push("\n");
            }
            Ok(!out.stopped())
        })
    }

    /// Shows one content stream's text, then that of the form XObjects it draws (their own
    /// resources, else the caller's), nested at most [`MAX_FORM_NESTING`] deep.
    fn run(
        &mut self,
        doc: &mut Doc<'_>,
        data: &[u8],
        resources: Option<&Obj>,
        out: &mut TextOut<'_>,
        nesting: usize,
    ) -> Result<(), ExtractError> {
        let fonts = self.page_fonts(doc, resources, out)?;
        let forms = show_text(data, &fonts, out);
        if forms.is_empty() || nesting >= MAX_FORM_NESTING || out.stopped() {
            return Ok(());
        }
        let Some(Obj::Dict(resources_dict)) = resources.map(|r| doc.lenient_deref(r, 0)).transpose()?.flatten() else { return Ok(()) };
        let Some(xobjects) = dict_get(&resources_dict, b"XObject").cloned() else { return Ok(()) };
        let Some(Obj::Dict(xobjects)) = doc.lenient_deref(&xobjects, 0)? else { return Ok(()) };
        let mut seen = std::collections::HashSet::new();
        for name in forms {
            let Some(Obj::Ref(n, _)) = dict_get(&xobjects, &name) else { continue };
            if !seen.insert(*n) {
                continue;
            }
            let Some(stream) = lenient(doc.resolve_stream_from(*n, 0))? else { continue };
            if dict_get(&stream.dict, b"Subtype").and_then(Obj::as_name) != Some(b"Form") {
                continue;
            }
            let budget = out.source_left().min(MAX_CONTENT_STREAM);
            let data = match doc.stream_data_capped(&stream, budget) {
                Ok(bytes) => bytes,
                Err(ExtractError::LimitExceeded { .. }) => {
                    out.consumed(budget, true);
                    break;
                }
                Err(ExtractError::Malformed { reason, .. }) => {
                    out.unreadable(format!("pdf: form {n}: {reason}"));
                    continue;
                }
                Err(e) => return Err(e),
            };
            out.consumed(data.len() as u64, false);
            let own = dict_get(&stream.dict, b"Resources").cloned();
            self.run(doc, &data, own.as_ref().or(resources), out, nesting + 1)?;
            out.push("\n");
        }
        Ok(())
    }

    /// A page's content streams, joined (an operator may be split across two of them).
    fn contents(&mut self, doc: &mut Doc<'_>, contents: &Obj, out: &mut TextOut<'_>) -> Result<Vec<u8>, ExtractError> {
        let mut refs = Vec::new();
        match contents {
            Obj::Ref(n, _) => match doc.resolve_stream_from(*n, 0) {
                Ok(Some(_)) => refs.push(*n),
                Ok(None) | Err(ExtractError::Malformed { .. }) => {
                    if let Some(Obj::Array(items)) = doc.lenient_deref(contents, 0)? {
                        refs.extend(items.iter().filter_map(|i| if let Obj::Ref(n, _) = i { Some(*n) } else { None }));
                    }
                }
                Err(e) => return Err(e),
            },
            Obj::Array(items) => refs.extend(items.iter().filter_map(|i| if let Obj::Ref(n, _) = i { Some(*n) } else { None })),
            _ => {}
        }
        let mut data = Vec::new();
        for n in refs {
            let budget = out.source_left().min(MAX_CONTENT_STREAM);
            if budget == 0 {
                out.consumed(0, true);
                break;
            }
            let Some(stream) = lenient(doc.resolve_stream_from(n, 0))? else { continue };
            match doc.stream_data_capped(&stream, budget) {
                Ok(bytes) => {
                    out.consumed(bytes.len() as u64, false);
                    data.extend_from_slice(&bytes);
                    data.push(b'\n');
                }
                Err(ExtractError::LimitExceeded { .. }) => {
                    out.consumed(budget, true);
                    break;
                }
                Err(ExtractError::Malformed { reason, .. }) => out.unreadable(format!("pdf: content stream {n}: {reason}")),
                Err(e) => return Err(e),
            }
        }
        Ok(data)
    }

    /// The fonts a page's resources name.
    fn page_fonts(
        &mut self,
        doc: &mut Doc<'_>,
        resources: Option<&Obj>,
        out: &mut TextOut<'_>,
    ) -> Result<HashMap<Vec<u8>, Rc<Font>>, ExtractError> {
        let mut fonts = HashMap::new();
        let Some(resources) = resources else { return Ok(fonts) };
        let Some(Obj::Dict(resources)) = doc.lenient_deref(resources, 0)? else { return Ok(fonts) };
        let Some(font_dict) = dict_get(&resources, b"Font").cloned() else { return Ok(fonts) };
        let Some(Obj::Dict(font_dict)) = doc.lenient_deref(&font_dict, 0)? else { return Ok(fonts) };
        for (name, font) in font_dict {
            let key = if let Obj::Ref(n, _) = font { Some(n) } else { None };
            if let Some(loaded) = key.and_then(|n| self.fonts.get(&n)) {
                fonts.insert(name, loaded.clone());
                continue;
            }
            let Some(Obj::Dict(dict)) = doc.lenient_deref(&font, 0)? else { continue };
            let loaded = Rc::new(self.load_font(doc, &dict, &name, out)?);
            if let Some(n) = key {
                self.fonts.insert(n, loaded.clone());
            }
            fonts.insert(name, loaded);
        }
        Ok(fonts)
    }
}

fn lenient<T>(r: Result<Option<T>, ExtractError>) -> Result<Option<T>, ExtractError> {
    match r {
        Err(ExtractError::Malformed { .. }) => Ok(None),
        other => other,
    }
}

impl PageReader {
    fn load_font(&mut self, doc: &mut Doc<'_>, dict: &Dict, name: &[u8], out: &mut TextOut<'_>) -> Result<Font, ExtractError> {
        let composite = dict_get(dict, b"Subtype").and_then(Obj::as_name) == Some(b"Type0");
        let mut font = Font { code_bytes: if composite { 2 } else { 1 }, to_unicode: Rc::default(), simple: None };
        if let Some(Obj::Ref(n, _)) = dict_get(dict, b"ToUnicode") {
            if !self.cmaps.contains_key(n) {
                let mut parsed = (Rc::default(), None);
                if let Some(stream) = lenient(doc.resolve_stream_from(*n, 0))? {
                    match doc.stream_data_capped(&stream, MAX_CMAP) {
                        Ok(cmap) => {
                            out.consumed(cmap.len() as u64, false);
                            let (map, width) = parse_cmap(&cmap);
                            parsed = (Rc::new(map), width);
                        }
                        Err(ExtractError::Io(e)) => return Err(ExtractError::Io(e)),
                        Err(_) => {}
                    }
                }
                self.cmaps.insert(*n, parsed);
            }
            if let Some((map, width)) = self.cmaps.get(n) {
                font.to_unicode = Rc::clone(map);
                if let Some(width) = width {
                    font.code_bytes = *width;
                }
            }
        }
        if !composite {
            let encoding = match dict_get(dict, b"Encoding") {
                Some(e) => doc.lenient_deref(e, 0)?,
                None => None,
            };
            font.simple = Some(simple_table(encoding.as_ref()));
        } else if font.to_unicode.is_empty() {
            out.unreadable(format!("pdf: composite font {} has no ToUnicode map", String::from_utf8_lossy(name)));
        }
        Ok(font)
    }
}

/// A simple font's byte → character table from its `/Encoding` (a name, or a dictionary with
/// `/BaseEncoding` and `/Differences`).
fn simple_table(encoding: Option<&Obj>) -> Box<[char; 256]> {
    let (base, differences) = match encoding {
        Some(Obj::Name(n)) => (Some(n.as_slice()), None),
        Some(Obj::Dict(d)) => (dict_get(d, b"BaseEncoding").and_then(Obj::as_name), dict_get(d, b"Differences")),
        _ => (None, None),
    };
    let codec = if base == Some(b"MacRomanEncoding") { encoding_rs::MACINTOSH } else { encoding_rs::WINDOWS_1252 };
    let mut table = Box::new(['\0'; 256]);
    for (b, slot) in table.iter_mut().enumerate() {
        let byte = [b as u8];
        let (decoded, bad) = codec.decode_without_bom_handling(&byte);
        if !bad {
            *slot = decoded.chars().next().unwrap_or('\0');
        }
    }
    if let Some(Obj::Array(items)) = differences {
        let mut code: Option<usize> = None;
        for item in items {
            match item {
                Obj::Int(i) => code = usize::try_from(*i).ok(),
                Obj::Name(glyph) => {
                    if let Some(c) = code.filter(|c| *c < 256) {
                        table[c] = glyph_char(glyph).unwrap_or('\0');
                        code = Some(c + 1);
                    }
                }
                _ => {}
            }
        }
    }
    table
}

/// The character of a standard glyph name (the Adobe Glyph List's names for ASCII, plus
/// `uniXXXX` and `uXXXX`–`uXXXXXX`).
fn glyph_char(name: &[u8]) -> Option<char> {
    // `one.tnum`, `zero.lf`: a variant of the glyph before the dot.
    let name = name.split(|&b| b == b'.').next().filter(|n| !n.is_empty()).unwrap_or(name);
    const NAMED: &[(&[u8], char)] = &[
        (b"space", ' '),
        (b"exclam", '!'),
        (b"quotedbl", '"'),
        (b"numbersign", '#'),
        (b"dollar", '$'),
        (b"percent", '%'),
        (b"ampersand", '&'),
        (b"quotesingle", '\''),
        (b"quoteright", '’'),
        (b"parenleft", '('),
        (b"parenright", ')'),
        (b"asterisk", '*'),
        (b"plus", '+'),
        (b"comma", ','),
        (b"hyphen", '-'),
        (b"minus", '−'),
        (b"period", '.'),
        (b"slash", '/'),
        (b"zero", '0'),
        (b"one", '1'),
        (b"two", '2'),
        (b"three", '3'),
        (b"four", '4'),
        (b"five", '5'),
        (b"six", '6'),
        (b"seven", '7'),
        (b"eight", '8'),
        (b"nine", '9'),
        (b"colon", ':'),
        (b"semicolon", ';'),
        (b"less", '<'),
        (b"equal", '='),
        (b"greater", '>'),
        (b"question", '?'),
        (b"at", '@'),
        (b"bracketleft", '['),
        (b"backslash", '\\'),
        (b"bracketright", ']'),
        (b"underscore", '_'),
        (b"nbspace", '\u{a0}'),
    ];
    if let [c] = name {
        return c.is_ascii_alphabetic().then_some(*c as char);
    }
    if let Some((_, c)) = NAMED.iter().find(|(n, _)| *n == name) {
        return Some(*c);
    }
    let hex =
        name.strip_prefix(b"uni").filter(|h| h.len() == 4).or_else(|| name.strip_prefix(b"u").filter(|h| (4..=6).contains(&h.len())))?;
    u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok().and_then(char::from_u32)
}

/// One token of a content stream or CMap.
enum Tok<'a> {
    Operand(Obj),
    Op(&'a [u8]),
}

/// The next token, or `None` at the end (or at an unterminated string, which would otherwise
/// be searched to the end from every following byte).
fn next_token<'a>(p: &mut Parser<'a>) -> Option<Tok<'a>> {
    loop {
        p.skip_ws();
        let b = *p.buf.get(p.pos)?;
        match b {
            b'+' | b'-' | b'.' | b'0'..=b'9' => {
                // Numbers, the most common operand, read directly: content streams have no
                // references, so the object parser's look-ahead for `n g R` is not needed.
                let start = p.pos;
                let end =
                    p.buf[start..].iter().position(|c| !matches!(c, b'+' | b'-' | b'.' | b'0'..=b'9')).map_or(p.buf.len(), |n| start + n);
                p.pos = end.max(start + 1);
                let text = std::str::from_utf8(&p.buf[start..end]).unwrap_or("");
                let number = match text.parse::<i64>() {
                    Ok(i) => Obj::Int(i),
                    Err(_) => Obj::Real(text.parse::<f64>().unwrap_or(0.0)),
                };
                return Some(Tok::Operand(number));
            }
            b'/' | b'(' | b'<' | b'[' => {
                let before = p.pos;
                match p.parse() {
                    Ok(o) => return Some(Tok::Operand(o)),
                    Err(crate::pdf_syntax::SyntaxError::Incomplete) => return None,
                    Err(_) => p.pos = before + 1,
                }
            }
            b')' | b'>' | b']' | b'{' | b'}' => p.pos += 1,
            _ => match p.token() {
                Ok(t) if !t.is_empty() => return Some(Tok::Op(t)),
                Ok(_) => p.pos += 1,
                Err(_) => return None,
            },
        }
    }
}

/// Parses a ToUnicode CMap: its mappings and, from its code space, the bytes per code.
fn parse_cmap(data: &[u8]) -> (HashMap<u32, String>, Option<usize>) {
    let mut buf = data.to_vec();
    buf.push(b' ');
    let mut p = Parser::new(&buf, 8);
    let mut map = HashMap::new();
    let mut width = None;
    let mut operands: Vec<Obj> = Vec::new();
    // Range iterations are bounded as well as mappings: ranges whose destinations map nothing
    // would otherwise cost 65,536 steps each, thousands of times.
    let mut work = 0usize;
    let code = |o: &Obj| match o {
        Obj::Str(s) if !s.is_empty() && s.len() <= 4 => Some(s.iter().fold(0u32, |a, &b| (a << 8) | b as u32)),
        _ => None,
    };
    let utf16 =
        |s: &[u8]| String::from_utf16_lossy(&s.chunks(2).map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])).collect::<Vec<_>>());
    while let Some(tok) = next_token(&mut p) {
        match tok {
            Tok::Operand(o) => {
                if operands.len() < 4096 {
                    operands.push(o);
                }
            }
            Tok::Op(op) => {
                match op {
                    b"endcodespacerange" => {
                        if let Some(Obj::Str(lo)) = operands.first() {
                            width = Some(lo.len().clamp(1, 4));
                        }
                    }
                    b"endbfchar" => {
                        for pair in operands.chunks(2) {
                            if let [src, Obj::Str(dst)] = pair {
                                if let Some(c) = code(src) {
                                    if map.len() < MAX_MAPPINGS {
                                        map.insert(c, utf16(dst));
                                    }
                                }
                            }
                        }
                    }
                    b"endbfrange" => {
                        for triple in operands.chunks(3) {
                            let [lo, hi, dst] = triple else { continue };
                            let (Some(lo), Some(hi)) = (code(lo), code(hi)) else { continue };
                            if hi < lo || hi - lo > 0xffff {
                                continue;
                            }
                            for (i, c) in (lo..=hi).enumerate() {
                                work += 1;
                                if map.len() >= MAX_MAPPINGS || work > 4 * MAX_MAPPINGS {
                                    break;
                                }
                                let text = match dst {
                                    Obj::Str(base) if !base.is_empty() => {
                                        // The last byte is incremented across the range.
                                        let mut bytes = base.clone();
                                        let last = bytes.len() - 1;
                                        bytes[last] = bytes[last].wrapping_add(i as u8);
                                        utf16(&bytes)
                                    }
                                    Obj::Array(items) => match items.get(i) {
                                        Some(Obj::Str(s)) => utf16(s),
                                        _ => continue,
                                    },
                                    _ => continue,
                                };
                                map.insert(c, text);
                            }
                        }
                    }
                    _ => {}
                }
                operands.clear();
            }
        }
    }
    (map, width)
}

/// Runs a page's content: the text its text-showing operators draw, with line and word breaks.
/// Returns the names of the XObjects it draws (`Do`), for the caller to read forms among them.
fn show_text(data: &[u8], fonts: &HashMap<Vec<u8>, Rc<Font>>, out: &mut TextOut<'_>) -> Vec<Vec<u8>> {
    let mut drawn: Vec<Vec<u8>> = Vec::new();
    // The tokenizer needs white space after the last token: added only when missing (page
    // contents end with one already), so a large stream is not copied.
    let padded: Vec<u8>;
    let buf: &[u8] = if data.last().is_some_and(|b| crate::pdf_syntax::is_ws(*b)) {
        data
    } else {
        padded = [data, b" "].concat();
        &padded
    };
    let mut p = Parser::new(buf, 8);
    let fallback = Font { code_bytes: 1, to_unicode: Rc::default(), simple: Some(simple_table(None)) };
    let mut font: Option<Rc<Font>> = None;
    let mut operands: Vec<Obj> = Vec::new();
    let mut text = String::new();
    let mut line_y: Option<f64> = None;
    // A move counts as a new line only past a third of the font size: imperceptible vertical
    // shifts inside a number do not split it.
    let (mut font_size, mut scale) = (1.0f64, 1.0f64);
    let number = |o: Option<&Obj>| match o {
        Some(Obj::Int(i)) => *i as f64,
        Some(Obj::Real(r)) => *r,
        _ => 0.0,
    };
    let new_line = |text: &mut String| {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
    };
    while let Some(tok) = next_token(&mut p) {
        let op = match tok {
            Tok::Operand(o) => {
                if operands.len() >= 64 {
                    operands.remove(0);
                }
                operands.push(o);
                continue;
            }
            Tok::Op(op) => op,
        };
        let current: &Font = font.as_deref().unwrap_or(&fallback);
        match op {
            b"Tf" => {
                font = operands.first().and_then(Obj::as_name).and_then(|n| fonts.get(n)).cloned();
                font_size = number(operands.get(1)).abs().max(1e-3);
            }
            b"Td" | b"TD" => {
                let ty = number(operands.get(1));
                if ty.abs() > font_size / 3.0 {
                    new_line(&mut text);
                }
                line_y = Some(line_y.unwrap_or(0.0) + ty * scale);
            }
            b"Tm" => {
                scale = number(operands.get(3)).abs().max(number(operands.get(1)).abs()).max(1e-3);
                let y = number(operands.get(5));
                if line_y.map_or(!text.is_empty(), |last| (last - y).abs() > font_size * scale / 3.0) {
                    new_line(&mut text);
                }
                line_y = Some(y);
            }
            b"T*" => new_line(&mut text),
            b"Do" => {
                if let Some(name) = operands.first().and_then(Obj::as_name) {
                    if drawn.len() < MAX_FORMS && !drawn.iter().any(|d| d == name) {
                        drawn.push(name.to_vec());
                    }
                }
            }
            b"Tj" => {
                if let Some(Obj::Str(s)) = operands.last() {
                    current.show(s, &mut text);
                }
            }
            b"'" | b"\"" => {
                new_line(&mut text);
                if let Some(Obj::Str(s)) = operands.last() {
                    current.show(s, &mut text);
                }
            }
            b"TJ" => {
                if let Some(Obj::Array(items)) = operands.last() {
                    for item in items {
                        match item {
                            Obj::Str(s) => current.show(s, &mut text),
                            Obj::Int(_) | Obj::Real(_) if number(Some(item)) < -200.0 && !text.ends_with(' ') => text.push(' '),
                            _ => {}
                        }
                    }
                }
            }
            b"BI" => {
                // An inline image: its data runs from `ID` to an `EI` between white space.
                let rest = &buf[p.pos..];
                let Some(id) = memchr::memmem::find(rest, b"ID") else { break };
                let data_at = p.pos + id + 3;
                let mut at = data_at;
                loop {
                    let Some(ei) = buf.get(at..).and_then(|r| memchr::memmem::find(r, b"EI")) else {
                        at = buf.len();
                        break;
                    };
                    let start = at + ei;
                    let before_ws = start > 0 && crate::pdf_syntax::is_ws(buf[start - 1]);
                    let after_ws = buf.get(start + 2).is_none_or(|b| crate::pdf_syntax::is_ws(*b));
                    at = start + 2;
                    if before_ws && after_ws {
                        break;
                    }
                }
                p.pos = at.min(buf.len());
            }
            _ => {}
        }
        operands.clear();
        if text.len() >= 16 * 1024 {
            if !out.push(&text) {
                return drawn;
            }
            text.clear();
        }
    }
    out.push(&text);
    drawn
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::TextLimits;

    fn shown(content: &[u8], fonts: &HashMap<Vec<u8>, Rc<Font>>) -> String {
        let mut got = String::new();
        let mut sink = |s: &str| got.push_str(s);
        let mut out = TextOut::new(&mut sink, &TextLimits::default());
        show_text(content, fonts, &mut out);
        got
    }

    #[test]
    fn cmaps_map_codes_to_text() {
        let cmap = b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap 1 begincodespacerange <0000> <FFFF> endcodespacerange \
            2 beginbfchar <0003> <0020> <0011> <0034> endbfchar 1 beginbfrange <0013> <0015> <0031> endbfrange \
            1 beginbfrange <0020> <0021> [<0041> <00420043>] endbfrange endcmap";
        let (map, width) = parse_cmap(cmap);
        assert_eq!(width, Some(2));
        assert_eq!(map.get(&0x11).map(String::as_str), Some("4"));
        assert_eq!(map.get(&0x14).map(String::as_str), Some("2"));
        assert_eq!(map.get(&0x21).map(String::as_str), Some("BC"));
        let font = Rc::new(Font { code_bytes: 2, to_unicode: Rc::new(map), simple: None });
        let fonts = HashMap::from([(b"F1".to_vec(), font)]);
        let content = b"BT /F1 11 Tf 72 700 Td <00110013> Tj [<0003> -250 <0014>] TJ 0 -14 Td <0020> Tj ET";
        assert_eq!(shown(content, &fonts), "41 2\nA");
    }

    #[test]
    fn simple_fonts_use_their_encoding_and_differences() {
        let differences = Obj::Dict(vec![(
            b"Differences".to_vec(),
            Obj::Array(vec![Obj::Int(65), Obj::Name(b"four".to_vec()), Obj::Name(b"uni0031".to_vec())]),
        )]);
        let font = Rc::new(Font { code_bytes: 1, to_unicode: Rc::default(), simple: Some(simple_table(Some(&differences))) });
        let fonts = HashMap::from([(b"F2".to_vec(), font)]);
        let content = b"BT /F2 9 Tf (AB) Tj (\\(x\\)\\101) Tj T* (caf\\351) ' BI /W 1 /H 1 ID \x00EI(\x01 EI ET";
        assert_eq!(shown(content, &fonts), "41(x)4\ncafé");
        // Without a font: WinAnsi.
        assert_eq!(shown(b"BT (4111 1111) Tj 1 0 0 1 72 600 Tm (\\2004) Tj", &HashMap::new()), "4111 1111\n€4");
        // Imperceptible vertical moves inside a number do not split it; a line move does.
        let shifted =
            b"BT /F9 11 Tf 1 0 0 1 72 700 Tm (4111 11) Tj 0 0.01 Td (11 1111) Tj 1 0 0 1 140 700.02 Tm ( 1111) Tj 0 -13 Td (next) Tj ET";
        assert_eq!(shown(shifted, &HashMap::new()), "4111 1111 1111 1111\nnext");
    }

    #[test]
    fn an_unterminated_string_ends_the_stream_quickly() {
        let mut content = b"BT (4111) Tj ".to_vec();
        content.extend(std::iter::repeat_n(b'(', 200_000));
        assert_eq!(shown(&content, &HashMap::new()), "4111");
    }
}
