//! The small grammars of the upload protocols: `Content-Range`, query strings, tus metadata,
//! Graph item paths, and the two S3 XML documents. Each is bounded: numbers past
//! [`crate::MAX_OFFSET`] and documents past [`MAX_PARTS`] parts are refused, not trusted.

use base64::Engine;
use quick_xml::events::Event;

/// Most parts an S3 multipart upload has (S3's own limit).
pub const MAX_PARTS: u32 = 10_000;

/// A parsed `Content-Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentRange {
    /// `bytes first-last/total` (`total` unknown for `*`).
    Bytes {
        /// First byte (inclusive).
        first: u64,
        /// Last byte (inclusive).
        last: u64,
        /// The file's size, when given.
        total: Option<u64>,
    },
    /// `bytes */total`: no bytes, only the size (a status query or a finalising request).
    Unsatisfied {
        /// The file's size.
        total: u64,
    },
}

/// A decimal number no larger than [`crate::MAX_OFFSET`].
pub(crate) fn number(text: &str) -> Option<u64> {
    // As servers read it: an optional `+` and leading zeros are accepted; anything else (signs,
    // separators, letters) is refused, and callers treat a refused number as unreadable.
    let text = text.trim();
    let digits = text.strip_prefix('+').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let significant = digits.trim_start_matches('0');
    if significant.len() > 16 {
        return None;
    }
    if significant.is_empty() {
        return Some(0);
    }
    significant.parse::<u64>().ok().filter(|n| *n <= crate::MAX_OFFSET)
}

/// Parses `Content-Range` (RFC 9110 §14.4); `None` for anything malformed or inconsistent.
pub fn content_range(value: &str) -> Option<ContentRange> {
    let value = value.trim();
    let (unit, rest) = value.split_once(' ')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let (range, total) = rest.trim().split_once('/')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(number(t)?),
    };
    if range.trim() == "*" {
        return Some(ContentRange::Unsatisfied { total: total? });
    }
    let (first, last) = range.trim().split_once('-')?;
    let (first, last) = (number(first)?, number(last)?);
    if first > last || total.is_some_and(|t| last >= t) {
        return None;
    }
    Some(ContentRange::Bytes { first, last, total })
}

/// A query string's parameters, split and percent-decoded once (borrowed when nothing is
/// escaped; a `+` stays a `+`: Azure block ids are base64).
pub(crate) struct Query<'a> {
    pairs: Vec<(std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
}

impl<'a> Query<'a> {
    pub(crate) fn new(query: &'a str) -> Query<'a> {
        let decode = |s: &'a str| percent_encoding::percent_decode_str(s).decode_utf8_lossy();
        let pairs = query
            .split('&')
            .filter(|p| !p.is_empty())
            .take(256)
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect();
        Query { pairs }
    }

    /// The value of `name` (compared exactly after decoding, as S3 and Google do).
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.to_string())
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == name)
    }

    /// Whether `name` appears more than once (which one a server reads is its own choice).
    pub(crate) fn repeated(&self, name: &str) -> bool {
        self.pairs.iter().filter(|(k, _)| k == name).nth(1).is_some()
    }
}

/// The `filename` (or `name`) of tus `Upload-Metadata` (`key base64,key base64`).
pub(crate) fn tus_filename(metadata: &str) -> Option<String> {
    metadata.split(',').take(256).find_map(|pair| {
        let mut it = pair.trim().splitn(2, ' ');
        let key = it.next()?;
        if !(key == "filename" || key == "name") {
            return None;
        }
        let value = base64::engine::general_purpose::STANDARD.decode(it.next()?.trim()).ok()?;
        String::from_utf8(value).ok().filter(|s| !s.is_empty() && s.len() <= 1024)
    })
}

/// The item name of a Graph drive path (`…/root:/folder/name.docx:/createUploadSession`).
pub(crate) fn graph_item_name(path: &str) -> Option<String> {
    let (_, item) = path.split_once(":/")?;
    let item = item.rsplit_once(':').map_or(item, |(i, _)| i);
    let name = item.rsplit('/').find(|s| !s.is_empty())?;
    Some(percent_encoding::percent_decode_str(name).decode_utf8_lossy().into_owned())
}

/// The text of the first element named `name` (local name) of an XML document, at most
/// `max_len` bytes of it.
fn first_element_text(xml: &[u8], name: &[u8], max_len: usize) -> Option<String> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut inside = false;
    let mut events = 0usize;
    loop {
        events += 1;
        if events > 100_000 {
            return None;
        }
        match reader.read_event() {
            Ok(Event::Start(e)) if e.local_name().as_ref() == name => inside = true,
            Ok(Event::Text(t)) if inside => {
                let text = t.decode().ok()?.trim().to_string();
                return (!text.is_empty() && text.len() <= max_len).then_some(text);
            }
            Ok(Event::End(_)) if inside => return None,
            Ok(Event::Eof) | Err(_) => return None,
            _ => {}
        }
    }
}

/// The text an entity or character reference stands for; an unknown entity is refused (what a
/// server would read there cannot be known).
fn reference(r: &quick_xml::events::BytesRef<'_>) -> Result<String, PartListError> {
    if let Some(c) = r.resolve_char_ref().map_err(|_| PartListError::Malformed)? {
        return Ok(c.to_string());
    }
    let name = r.decode().map_err(|_| PartListError::Malformed)?;
    quick_xml::escape::resolve_predefined_entity(&name).map(str::to_string).ok_or(PartListError::Malformed)
}

/// The `UploadId` of an S3 `InitiateMultipartUploadResult`.
pub(crate) fn s3_upload_id(xml: &[u8]) -> Option<String> {
    first_element_text(xml, b"UploadId", 1024)
}

/// Why a CompleteMultipartUpload document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartListError {
    /// Not well-formed XML, or a part without a valid number.
    #[error("the part list is not a well-formed CompleteMultipartUpload document")]
    Malformed,
    /// More than [`MAX_PARTS`] parts.
    #[error("the part list names more than {MAX_PARTS} parts")]
    TooMany,
}

/// One part a completing request lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPart {
    /// The part's name (S3: the part number in decimal; Azure: the block id).
    pub id: String,
    /// S3: the ETag named (without quotes, lower-case).
    pub etag: Option<String>,
    /// Azure `<Committed>`: a block of the blob's current content, committed before.
    pub committed: bool,
}

/// The blocks an Azure `BlockList` document lists, in its order.
pub fn azure_block_list(xml: &[u8]) -> Result<Vec<ListedPart>, PartListError> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut parts = Vec::new();
    let mut current: Option<(bool, String)> = None;
    let mut saw_root = false;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => match e.local_name().as_ref() {
                b"BlockList" => saw_root = true,
                b"Committed" | b"Uncommitted" | b"Latest" => {
                    if parts.len() as u32 >= MAX_BLOCKS {
                        return Err(PartListError::TooMany);
                    }
                    current = Some((e.local_name().as_ref() == b"Committed", String::new()));
                }
                _ => return Err(PartListError::Malformed),
            },
            Ok(Event::Text(t)) => {
                if let Some((_, id)) = current.as_mut() {
                    id.push_str(t.decode().map_err(|_| PartListError::Malformed)?.trim());
                }
            }
            Ok(Event::CData(t)) => {
                if let Some((_, id)) = current.as_mut() {
                    id.push_str(t.decode().map_err(|_| PartListError::Malformed)?.trim());
                }
            }
            Ok(Event::GeneralRef(r)) => {
                if let Some((_, id)) = current.as_mut() {
                    id.push_str(&reference(&r)?);
                }
            }
            Ok(Event::End(e)) => {
                if matches!(e.local_name().as_ref(), b"Committed" | b"Uncommitted" | b"Latest") {
                    let (committed, id) = current.take().ok_or(PartListError::Malformed)?;
                    if id.is_empty() {
                        return Err(PartListError::Malformed);
                    }
                    parts.push(ListedPart { id, etag: None, committed });
                }
            }
            Ok(Event::Eof) => break,
            Err(_) => return Err(PartListError::Malformed),
            _ => {}
        }
    }
    if !saw_root {
        return Err(PartListError::Malformed);
    }
    Ok(parts)
}

/// Most blocks an Azure block blob has.
const MAX_BLOCKS: u32 = 50_000;

/// The parts a CompleteMultipartUpload document lists, in its order.
pub fn complete_multipart_parts(xml: &[u8]) -> Result<Vec<ListedPart>, PartListError> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut parts = Vec::new();
    let mut current: Option<((), Option<String>, String)> = None;
    let mut field: Option<Vec<u8>> = None;
    let mut saw_root = false;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                let name = e.local_name().as_ref().to_vec();
                match name.as_slice() {
                    b"CompleteMultipartUpload" => saw_root = true,
                    b"Part" => {
                        if parts.len() as u32 >= MAX_PARTS {
                            return Err(PartListError::TooMany);
                        }
                        current = Some(((), None, String::new()));
                    }
                    _ => field = Some(name),
                }
            }
            Ok(ev @ (Event::Text(_) | Event::CData(_) | Event::GeneralRef(_))) => {
                if let (Some(part), Some(f)) = (current.as_mut(), field.as_deref()) {
                    let text = match ev {
                        Event::Text(t) => t.decode().map_err(|_| PartListError::Malformed)?.trim().to_string(),
                        Event::CData(t) => t.decode().map_err(|_| PartListError::Malformed)?.trim().to_string(),
                        Event::GeneralRef(r) => reference(&r)?,
                        _ => String::new(),
                    };
                    match f {
                        // The number's text pieces (a reference splits it) are joined first.
                        b"PartNumber" => part.2.push_str(&text),
                        // Entity references (`&quot;` around the value) split the text: the pieces are joined.
                        b"ETag" => part.1.get_or_insert_with(String::new).push_str(&text.to_ascii_lowercase()),
                        _ => {}
                    }
                }
            }
            Ok(Event::End(e)) => {
                if e.local_name().as_ref() == b"Part" {
                    let (_, etag, number_text) = current.take().ok_or(PartListError::Malformed)?;
                    let part_number =
                        number(number_text.trim()).and_then(|n| u32::try_from(n).ok()).filter(|n| (1..=MAX_PARTS).contains(n));
                    let etag = etag.map(|e| e.trim_matches('"').to_string()).filter(|e| !e.is_empty());
                    parts.push(ListedPart { id: part_number.ok_or(PartListError::Malformed)?.to_string(), etag, committed: false });
                }
                field = None;
            }
            Ok(Event::Eof) => break,
            Err(_) => return Err(PartListError::Malformed),
            _ => {}
        }
    }
    if !saw_root || parts.is_empty() {
        return Err(PartListError::Malformed);
    }
    Ok(parts)
}
