//! The text of documents, for content detectors: what Office or a PDF reader shows, fed to a
//! sink piece by piece as it is decoded, never held whole.
//!
//! - OOXML: Word body, headers, footers, footnotes, endnotes and comments (`w:t`, deleted text
//!   too: it is still in the file); Excel shared strings, inline strings and cell values, and
//!   comments; PowerPoint slides and notes (`a:t`). Runs are joined as Office shows them (text
//!   split across `<w:r>` elements is one word); paragraph, cell, row, tab and break ends become
//!   `\n` or `\t`. Parts are inflated as a stream and read by a streaming XML reader.
//! - PDF: see `pdf_text.rs`.
//! - Documents embedded in a package (`…/embeddings/*.xlsx`, `.docx`, `.pptx`, `.pdf`): their
//!   text too, within the same budget, at most three deep.
//!
//! Bounded twice per file by [`TextLimits`]: text handed to the sink, and decompressed source
//! bytes read to find it (a part of markup with little text is still read at most that far).
//! Past either, reading stops and the report says which limit stopped it.

use crate::input::{Input, WindowInput};
use crate::limits::Limits;
use crate::model::Extraction;
use crate::zip::{self, Archive};
use crate::ExtractError;
use quick_xml::events::Event;
use std::io::{BufRead, BufReader, Read};

/// How much of one file's text is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextLimits {
    /// Text handed to the sink, in UTF-8 bytes.
    pub max_text_bytes: u64,
    /// Decompressed source (XML, PDF content streams, message bodies) read to find the text.
    pub max_source_bytes: u64,
}

impl Default for TextLimits {
    fn default() -> TextLimits {
        TextLimits { max_text_bytes: 8 << 20, max_source_bytes: 128 << 20 }
    }
}

/// What reading a file's text saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextReport {
    /// UTF-8 bytes of text handed to the sink.
    pub text_bytes: u64,
    /// The limit that stopped reading before the end (`max_text_bytes`, `max_source_bytes`).
    pub truncated: Option<&'static str>,
    /// Parts that hold text but could not be read, and why (their text is missing).
    pub unreadable: Vec<String>,
}

/// A sink with its budget: every piece of a file's text goes through [`TextOut::push`]; readers
/// of other formats (e-mail bodies) use it too, so that one file has one budget.
pub struct TextOut<'s> {
    sink: &'s mut dyn FnMut(&str),
    limits: TextLimits,
    source: u64,
    report: TextReport,
}

impl<'s> TextOut<'s> {
    /// A budget of `limits` in front of `sink`.
    pub fn new(sink: &'s mut dyn FnMut(&str), limits: &TextLimits) -> TextOut<'s> {
        TextOut { sink, limits: limits.clone(), source: 0, report: TextReport::default() }
    }

    /// Hands `text` on, cut at the text limit (on a character boundary). False once stopped.
    pub fn push(&mut self, text: &str) -> bool {
        if self.report.truncated.is_some() {
            return false;
        }
        let room = self.limits.max_text_bytes.saturating_sub(self.report.text_bytes);
        let mut take = text.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        while !text.is_char_boundary(take) {
            take -= 1;
        }
        if take > 0 {
            (self.sink)(&text[..take]);
            self.report.text_bytes += take as u64;
        }
        if take < text.len() {
            self.report.truncated = Some("max_text_bytes");
            return false;
        }
        true
    }

    /// Source bytes still allowed.
    pub fn source_left(&self) -> u64 {
        self.limits.max_source_bytes.saturating_sub(self.source)
    }

    /// Counts `n` source bytes read; stops (and says so) when `hit` (the source ran into the
    /// budget before its end).
    pub fn consumed(&mut self, n: u64, hit: bool) {
        self.source = self.source.saturating_add(n);
        if hit && self.report.truncated.is_none() {
            self.report.truncated = Some("max_source_bytes");
        }
    }

    /// Whether a limit stopped reading.
    pub fn stopped(&self) -> bool {
        self.report.truncated.is_some()
    }

    /// Records a part whose text could not be read.
    pub fn unreadable(&mut self, what: String) {
        if self.report.unreadable.len() < 32 {
            self.report.unreadable.push(what);
        }
    }

    /// What was read.
    pub fn report(&self) -> &TextReport {
        &self.report
    }

    /// What was read, ending the budget.
    pub fn finish(self) -> TextReport {
        self.report
    }
}

/// Whether the first bytes of a file (up to [`crate::SNIFF_BYTES`]) are text: a UTF-16 byte
/// order mark, or no NUL and no other control characters than white space, form feed and escape
/// in more than 1 % of them.
pub fn looks_like_text(head: &[u8]) -> bool {
    if head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]) || utf16_without_bom(head).is_some() {
        return true;
    }
    if head.is_empty() || head.contains(&0) {
        return false;
    }
    let control = head.iter().filter(|&&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c | 0x1b)).count();
    control * 100 <= head.len()
}

/// UTF-16 text without a byte order mark (as some Windows tools write): of its first bytes,
/// nearly every other one is NUL and the rest are printable ASCII.
fn utf16_without_bom(head: &[u8]) -> Option<&'static encoding_rs::Encoding> {
    if head.len() < 16 {
        return None;
    }
    let pairs = head.len() / 2;
    let shape = |zero_at: usize| {
        let zeros = head.chunks_exact(2).filter(|p| p[zero_at] == 0).count();
        let ascii = head.chunks_exact(2).filter(|p| p[1 - zero_at] >= 0x09 && p[1 - zero_at] < 0x7f).count();
        zeros * 10 >= pairs * 9 && ascii * 10 >= pairs * 9
    };
    if shape(1) {
        Some(encoding_rs::UTF_16LE)
    } else if shape(0) {
        Some(encoding_rs::UTF_16BE)
    } else {
        None
    }
}

/// The text of a plain text file: UTF-16 by its byte order mark or its shape, else UTF-8, else
/// (when its first bytes are not UTF-8) Windows-1252. Decoded in 64 KiB steps.
pub fn plain_text(input: &mut dyn Input, out: &mut TextOut<'_>) -> Result<(), ExtractError> {
    let head = input.read_upto(0, crate::SNIFF_BYTES)?.into_owned();
    let encoding = match encoding_rs::Encoding::for_bom(&head) {
        Some((encoding, _)) => encoding,
        None if utf16_without_bom(&head).is_some() => utf16_without_bom(&head).unwrap_or(encoding_rs::UTF_8),
        None => match std::str::from_utf8(&head) {
            Ok(_) => encoding_rs::UTF_8,
            // A character cut at the end of the sniffed bytes is still UTF-8.
            Err(e) if e.error_len().is_none() => encoding_rs::UTF_8,
            Err(_) => encoding_rs::WINDOWS_1252,
        },
    };
    let mut decoder = encoding.new_decoder();
    let mut text = String::with_capacity(64 * 1024 * 3);
    let mut at = 0u64;
    let len = input.len();
    while at < len && !out.stopped() {
        let budget = out.source_left();
        let step = (len - at).min(64 * 1024).min(budget);
        if step == 0 {
            out.consumed(0, true);
            break;
        }
        let chunk = input.read_at(at, step as usize, "text")?;
        at += step;
        text.clear();
        text.reserve(decoder.max_utf8_buffer_length(chunk.len()).unwrap_or(chunk.len() * 3));
        let _ = decoder.decode_to_string(&chunk, &mut text, at == len);
        out.consumed(step, false);
        out.push(&text);
    }
    Ok(())
}

/// How a member is read for text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartText {
    /// An XML part: read if its root element is one that holds shown text ([`TEXT_ROOTS`]),
    /// whatever the part is called (Office follows relationships, not names: a renamed
    /// `document.xml` is still the body).
    Xml,
    /// A document embedded in this one (`…/embeddings/…` as a package or a PDF): an insider's
    /// place to hide a table of numbers. Read within the same budget, nested at most
    /// [`MAX_EMBEDDING_DEPTH`] deep.
    Embedded,
}

/// Root elements (local names) of the parts whose text a reader is shown: Word stories,
/// comments and notes; shared strings and worksheets; slides, notes, layouts and masters;
/// charts, drawings and SmartArt.
const TEXT_ROOTS: &[&[u8]] = &[
    b"document",
    b"glossaryDocument",
    b"hdr",
    b"ftr",
    b"footnotes",
    b"endnotes",
    b"comments",
    b"sst",
    b"worksheet",
    b"sld",
    b"notes",
    b"sldLayout",
    b"sldMaster",
    b"notesMaster",
    b"handoutMaster",
    b"chartSpace",
    b"wsDr",
    b"dataModel",
    b"drawing",
];

/// Embedded documents inside embedded documents, followed this deep.
const MAX_EMBEDDING_DEPTH: u32 = 3;

fn numbered(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix).and_then(|rest| rest.strip_suffix(".xml")).is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
}

/// How a member is read, and when: the main story first (body, shared strings, sheets,
/// slides), then the other parts Office names, then any other XML part, then embedded
/// documents, so that a large secondary part cannot spend the budget before the body is read.
fn part_text(name: &str) -> Option<(PartText, u8)> {
    let name = name.trim_start_matches('/').to_ascii_lowercase();
    let embedded = ["docx", "docm", "xlsx", "xlsm", "pptx", "pptm", "pdf"];
    if name.contains("/embeddings/") && name.rsplit_once('.').is_some_and(|(_, ext)| embedded.contains(&ext)) {
        return Some((PartText::Embedded, 3));
    }
    if !name.ends_with(".xml") || name.starts_with("customxml/") || name == "[content_types].xml" {
        return None;
    }
    let main = name == "word/document.xml"
        || name == "xl/sharedstrings.xml"
        || numbered(&name, "xl/worksheets/sheet")
        || numbered(&name, "ppt/slides/slide");
    let known = ["word/footnotes.xml", "word/endnotes.xml", "word/comments.xml"].contains(&name.as_str())
        || numbered(&name, "word/header")
        || numbered(&name, "word/footer")
        || numbered(&name, "xl/comments")
        || numbered(&name, "ppt/notesslides/notesslide");
    Some((
        PartText::Xml,
        if main {
            0
        } else if known {
            1
        } else {
            2
        },
    ))
}

/// Sorts `slide10` after `slide9`: the reading order, which only decides where part
/// boundaries fall.
fn reading_order(name: &str) -> (String, u64) {
    let lower = name.to_ascii_lowercase();
    let digits = lower.trim_end_matches(".xml").bytes().rev().take_while(u8::is_ascii_digit).count();
    let stem_end = lower.len().saturating_sub(4 + digits);
    let n = lower.get(stem_end..lower.len().saturating_sub(4)).and_then(|d| d.parse().ok()).unwrap_or(0);
    (lower.get(..stem_end).unwrap_or(&lower).to_string(), n)
}

/// The text of an OOXML package (`input` holds a ZIP archive).
pub(crate) fn package_text(input: &mut dyn Input, limits: &Limits, out: &mut TextOut<'_>) -> Result<(), ExtractError> {
    package_text_at(input, limits, out, 0)
}

fn package_text_at(input: &mut dyn Input, limits: &Limits, out: &mut TextOut<'_>, depth: u32) -> Result<(), ExtractError> {
    let mut scratch = Extraction::new(crate::FileKind::Zip);
    let archive = zip::open(input, limits, &mut scratch)?;
    let mut parts: Vec<(usize, PartText, u8, String)> = archive
        .entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let name = String::from_utf8_lossy(archive.name(e)).into_owned();
            part_text(&name).map(|(kind, order)| (i, kind, order, name))
        })
        .collect();
    parts.sort_by_key(|(_, _, order, name)| (*order, reading_order(name)));
    for (i, kind, _, name) in parts {
        if out.stopped() {
            break;
        }
        let read = match kind {
            PartText::Embedded if depth >= MAX_EMBEDDING_DEPTH => Err(format!("embedded more than {MAX_EMBEDDING_DEPTH} deep")),
            PartText::Embedded => embedded(input, &archive, i, limits, out, depth),
            PartText::Xml => part(input, &archive, i, out),
        };
        if let Err(why) = read {
            out.unreadable(format!("{name}: {why}"));
        }
        out.push("\n");
    }
    Ok(())
}

/// An embedded document's text: inflated (within the source budget) and read as what it is.
fn embedded(
    input: &mut dyn Input,
    archive: &Archive,
    index: usize,
    limits: &Limits,
    out: &mut TextOut<'_>,
    depth: u32,
) -> Result<(), String> {
    let budget = out.source_left();
    let mut data = Vec::new();
    let hit = {
        let mut reader = member_reader(input, archive, index)?;
        (&mut reader).take(budget).read_to_end(&mut data).map_err(|e| format!("does not inflate: {e}"))?;
        data.len() as u64 == budget && reader.read(&mut [0u8]).is_ok_and(|n| n > 0)
    };
    out.consumed(data.len() as u64, hit);
    if hit {
        return Ok(());
    }
    let mut inner = crate::SliceInput::new(&data);
    let head = &data[..data.len().min(crate::SNIFF_BYTES)];
    let result = match crate::sniff(head) {
        crate::Container::Zip => package_text_at(&mut inner, limits, out, depth + 1),
        crate::Container::Pdf { .. } => crate::pdf::text::pdf_text(&mut inner, limits, out),
        _ => Ok(()),
    };
    result.map_err(|e| e.to_string())
}

/// A reader over a window that owns it (`InputReader` borrows its input).
struct WindowReader<'i> {
    window: WindowInput<'i>,
    at: u64,
}

impl Read for WindowReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        crate::input::read_from(&mut self.window, &mut self.at, buf)
    }
}

/// A member's decompressed bytes as a stream.
fn member_reader<'i>(input: &'i mut dyn Input, archive: &Archive, index: usize) -> Result<Box<dyn Read + 'i>, String> {
    let entry = &archive.entries[index];
    if entry.flags & 1 != 0 {
        return Err("encrypted".into());
    }
    let mut scratch = Extraction::new(crate::FileKind::Zip);
    let offset = zip::entry_data_offset(input, archive, entry, &mut scratch)
        .map_err(|e| e.to_string())?
        .ok_or("no local header where the central directory points")?;
    let window = WindowInput::new(input, offset, entry.compressed_size).ok_or("data past the end of the file")?;
    let raw = BufReader::with_capacity(64 * 1024, WindowReader { window, at: 0 });
    match entry.method {
        0 => Ok(Box::new(raw)),
        8 => Ok(Box::new(flate2::bufread::DeflateDecoder::new(raw))),
        m => Err(format!("compression method {m}")),
    }
}

/// Streams one part through inflate and the XML reader into `out`.
fn part(input: &mut dyn Input, archive: &Archive, index: usize, out: &mut TextOut<'_>) -> Result<(), String> {
    let budget = out.source_left();
    let mut limited = member_reader(input, archive, index)?.take(budget);
    let result = {
        let mut xml = quick_xml::Reader::from_reader(BufReader::with_capacity(64 * 1024, &mut limited));
        xml.config_mut().check_end_names = false;
        read_xml(&mut xml, out)
    };
    let left = limited.limit();
    out.consumed(budget - left, left == 0);
    result
}

/// Element-local-name checks, prefixes ignored: Office writes `w:`, `a:` and no prefix, but any
/// prefix may be bound to these namespaces.
fn local(name: &[u8]) -> &[u8] {
    match memchr::memchr(b':', name) {
        Some(at) => &name[at + 1..],
        None => name,
    }
}

/// The text of one open `mc:AlternateContent`: its choices' and its fallback's.
#[derive(Default)]
struct Alternate {
    choice: String,
    fallback: String,
    in_fallback: bool,
}

/// Text held per branch (beyond it, text goes straight on: no comparison, no loss).
const MAX_ALTERNATE_TEXT: usize = 1 << 20;

/// Hands text to the innermost open alternate-content branch, else to `out`.
fn emit(alternates: &mut [Alternate], out: &mut TextOut<'_>, text: &str) {
    if let Some(a) = alternates.last_mut() {
        let branch = if a.in_fallback { &mut a.fallback } else { &mut a.choice };
        if branch.len() + text.len() <= MAX_ALTERNATE_TEXT {
            branch.push_str(text);
            return;
        }
    }
    out.push(text);
}

fn read_xml<R: BufRead>(xml: &mut quick_xml::Reader<R>, out: &mut TextOut<'_>) -> Result<(), String> {
    let mut buf = Vec::with_capacity(8 * 1024);
    // Decided by the root element: a part that holds no shown text is left after its root.
    let mut root_seen = false;
    let mut sheet = false;
    // Inside an element whose text is shown (`t`, `delText`, a value).
    let mut in_text = 0usize;
    // Inside a phonetic run (`rPh`) or a formula: text that is not the cell's.
    let mut hidden = 0usize;
    // Open `mc:AlternateContent` elements, innermost last, with the text of each branch.
    let mut alternates: Vec<Alternate> = Vec::new();
    // The current cell's value is a shared-string index (`t="s"`), not text.
    let mut cell_is_index = false;
    loop {
        if out.stopped() {
            return Ok(());
        }
        let event = xml.read_event_into(&mut buf).map_err(|e| format!("not well-formed XML: {e}"))?;
        match event {
            Event::Start(e) | Event::Empty(e) if !root_seen => {
                root_seen = true;
                let name = e.name();
                let root = local(name.as_ref());
                if !TEXT_ROOTS.contains(&root) {
                    return Ok(());
                }
                sheet = root == b"worksheet";
            }
            Event::Start(e) => {
                let name = e.name();
                match local(name.as_ref()) {
                    b"t" | b"delText" => in_text += 1,
                    b"v" if sheet && !cell_is_index => in_text += 1,
                    // Phonetic runs, cell formulas, field codes: not text shown (an equation's
                    // `m:f` fraction is, so `f` is a formula in worksheets only).
                    b"rPh" | b"instrText" => hidden += 1,
                    b"f" if sheet => hidden += 1,
                    b"AlternateContent" => alternates.push(Alternate::default()),
                    b"Fallback" => {
                        if let Some(a) = alternates.last_mut() {
                            a.in_fallback = true;
                        }
                    }
                    b"c" if sheet => {
                        cell_is_index = e.attributes().flatten().any(|a| a.key.as_ref() == b"t" && a.value.as_ref() == b"s");
                    }
                    _ => {}
                }
            }
            Event::Empty(e) => {
                let shown = match local(e.name().as_ref()) {
                    b"tab" => "\t",
                    b"br" | b"cr" => "\n",
                    b"noBreakHyphen" => "-",
                    _ => "",
                };
                if !shown.is_empty() && hidden == 0 {
                    emit(&mut alternates, out, shown);
                }
            }
            Event::End(e) => {
                let name = e.name();
                let shown = match local(name.as_ref()) {
                    b"t" | b"delText" => {
                        in_text = in_text.saturating_sub(1);
                        ""
                    }
                    b"v" if sheet => {
                        in_text = in_text.saturating_sub(1);
                        ""
                    }
                    b"rPh" | b"instrText" => {
                        hidden = hidden.saturating_sub(1);
                        ""
                    }
                    b"f" if sheet => {
                        hidden = hidden.saturating_sub(1);
                        ""
                    }
                    b"Fallback" => {
                        if let Some(a) = alternates.last_mut() {
                            a.in_fallback = false;
                        }
                        ""
                    }
                    b"AlternateContent" => {
                        if let Some(a) = alternates.pop() {
                            // Both branches' text, unless the fallback repeats the choice (a
                            // text box is written twice, as DrawingML and as VML). Which branch
                            // a reader shows depends on what it understands; both are read.
                            let same = a.choice.split_whitespace().eq(a.fallback.split_whitespace());
                            emit(&mut alternates, out, &a.choice);
                            if !same {
                                emit(&mut alternates, out, "\n");
                                emit(&mut alternates, out, &a.fallback);
                            }
                        }
                        ""
                    }
                    b"p" | b"si" | b"tr" | b"row" => "\n",
                    b"tc" => "\t",
                    b"c" if sheet => {
                        cell_is_index = false;
                        "\t"
                    }
                    _ => "",
                };
                if !shown.is_empty() && hidden == 0 {
                    emit(&mut alternates, out, shown);
                }
            }
            Event::Text(t) if in_text > 0 && hidden == 0 => {
                let text = t.decode().map_err(|e| format!("bad text: {e}"))?;
                emit(&mut alternates, out, &text);
            }
            Event::CData(t) if in_text > 0 && hidden == 0 => {
                emit(&mut alternates, out, &String::from_utf8_lossy(&t));
            }
            Event::GeneralRef(r) if in_text > 0 && hidden == 0 => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    emit(&mut alternates, out, c.encode_utf8(&mut [0; 4]));
                } else if let Ok(name) = r.decode() {
                    if let Some(s) = quick_xml::escape::resolve_predefined_entity(&name) {
                        emit(&mut alternates, out, s);
                    }
                }
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
        buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(xml: &str) -> String {
        let mut got = String::new();
        let mut sink = |s: &str| got.push_str(s);
        let mut out = TextOut::new(&mut sink, &TextLimits::default());
        let mut reader = quick_xml::Reader::from_reader(xml.as_bytes());
        read_xml(&mut reader, &mut out).unwrap();
        got
    }

    #[test]
    fn runs_are_joined_as_word_shows_them() {
        let xml = r#"<w:document xmlns:w="x"><w:body><w:p><w:r><w:t>41</w:t></w:r><w:r><w:rPr/><w:t xml:space="preserve">11 1111 </w:t></w:r><w:r><w:t>1111 1111</w:t></w:r></w:p><w:p><w:r><w:t>A&amp;B&#x20;C</w:t><w:tab/><w:t>x</w:t></w:r></w:p></w:body></w:document>"#;
        assert_eq!(text_of(xml), "4111 1111 1111 1111\nA&B C\tx\n");
    }

    #[test]
    fn an_alternate_branch_with_other_text_is_read_too() {
        // A reader that does not understand the choice shows the fallback: both are read
        // when they differ.
        let xml = r#"<w:document><w:p><w:r><mc:AlternateContent><mc:Choice Requires="bogus"><w:t>nothing here</w:t></mc:Choice><mc:Fallback><w:t>4111 1111 1111 1111</w:t></mc:Fallback></mc:AlternateContent></w:r></w:p></w:document>"#;
        assert_eq!(text_of(xml), "nothing here\n4111 1111 1111 1111\n");
    }

    #[test]
    fn a_text_box_written_twice_is_read_once() {
        let xml = r#"<w:hdr><w:p><w:r><mc:AlternateContent><mc:Choice Requires="wps"><w:txbxContent><w:p><w:r><w:t>4111 1111 1111 1111</w:t></w:r></w:p></w:txbxContent></mc:Choice><mc:Fallback><w:pict><v:textbox><w:txbxContent><w:p><w:r><w:t>4111 1111 1111 1111</w:t></w:r></w:p></w:txbxContent></v:textbox></w:pict></mc:Fallback></mc:AlternateContent></w:r></w:p></w:hdr>"#;
        assert_eq!(text_of(xml), "4111 1111 1111 1111\n\n");
    }

    #[test]
    fn sheets_show_values_but_not_indexes_formulas_or_phonetics() {
        let sheet = r#"<worksheet><sheetData><row><c t="s"><v>7</v></c><c><f>A1*2</f><v>42</v></c><c t="inlineStr"><is><t>inline</t></is></c></row></sheetData></worksheet>"#;
        assert_eq!(text_of(sheet), "\t42\tinline\t\n");
        let strings = r#"<sst><si><t>one</t></si><si><r><t>tw</t></r><r><t>o</t></r><rPh><t>ツー</t></rPh></si></sst>"#;
        assert_eq!(text_of(strings), "one\ntwo\n");
        assert_eq!(text_of(r#"<styleSheet><t>4111 1111 1111 1111</t></styleSheet>"#), "", "no shown text in styles");
        let equation =
            r#"<w:document><w:p><m:oMath><m:f><m:num><m:r><m:t>4111 1111 1111 1111</m:t></m:r></m:num></m:f></m:oMath></w:p></w:document>"#;
        assert_eq!(text_of(equation), "4111 1111 1111 1111\n", "an equation's fraction is shown text");
    }

    #[test]
    fn the_text_limit_cuts_on_a_character_boundary() {
        let mut got = String::new();
        let mut sink = |s: &str| got.push_str(s);
        let mut out = TextOut::new(&mut sink, &TextLimits { max_text_bytes: 4, max_source_bytes: 1 << 20 });
        assert!(out.push("ab"));
        assert!(!out.push("cé"));
        assert!(!out.push("more"));
        assert_eq!(out.report.truncated, Some("max_text_bytes"));
        assert_eq!(got, "abc");
    }

    #[test]
    fn plain_text_in_every_encoding() {
        let read = |bytes: &[u8]| {
            assert!(looks_like_text(bytes), "{bytes:?}");
            let mut got = String::new();
            let mut sink = |s: &str| got.push_str(s);
            let mut out = TextOut::new(&mut sink, &TextLimits::default());
            plain_text(&mut crate::SliceInput::new(bytes), &mut out).unwrap();
            got
        };
        let text = "SSN 123-45-6789 café";
        let utf16le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let utf16be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        assert_eq!(read(text.as_bytes()), text);
        assert_eq!(read(&utf16le), text, "UTF-16LE without a byte order mark");
        assert_eq!(read(&utf16be), text);
        assert_eq!(read(&[&[0xFF, 0xFE][..], &utf16le].concat()), text);
        assert_eq!(read(b"caf\xe9 and more text"), "café and more text", "Windows-1252");
        assert!(!looks_like_text(b"\x00\x01\x02\x03binary\x00\x00\x10\x11\x12"));
    }

    #[test]
    fn text_parts_are_read_main_story_first() {
        assert_eq!(part_text("word/header12.xml"), Some((PartText::Xml, 1)));
        assert_eq!(part_text("/Word/Document.xml"), Some((PartText::Xml, 0)));
        assert_eq!(part_text("word/document2.xml"), Some((PartText::Xml, 2)), "a renamed body is still read");
        assert_eq!(part_text("xl/worksheets/_rels/sheet3.xml.rels"), None);
        assert_eq!(part_text("xl/worksheets/sheet3.xml"), Some((PartText::Xml, 0)));
        assert_eq!(part_text("ppt/notesSlides/notesSlide2.xml"), Some((PartText::Xml, 1)));
        assert_eq!(part_text("word/embeddings/Microsoft_Excel_Worksheet.xlsx"), Some((PartText::Embedded, 3)));
        assert!(reading_order("ppt/slides/slide9.xml") < reading_order("ppt/slides/slide10.xml"));
    }
}
