//! Content detection at rest: `[[detectors]]` compiled with the built-in detectors, and one
//! file's text (Office and PDF text from `labelgate-extract`, message bodies through
//! `labelgate-unpack`'s MIME reader, plain text) counted by them. Only counts leave, never the
//! text or what matched.

use labelgate_detect::{Counter, Detector, BUILT_IN};
use labelgate_diagnostics::{key, Problem, Step};
use labelgate_extract::{FileKind, Input, Limits, ReaderInput, TextLimits, TextOut};
use serde::{Deserialize, Serialize};
use toml::Spanned;

/// One `[[detectors]]` entry: a custom detector (`pattern` or `keywords`), or a built-in one's
/// `min_count`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorConfig {
    /// The name rules use in `detectors = [...]`.
    pub name: Spanned<String>,
    /// A regular expression (Rust `regex` syntax; no look-around, linear time).
    #[serde(default)]
    pub pattern: Option<Spanned<String>>,
    /// Words or phrases, matched case-insensitively as whole words.
    #[serde(default)]
    pub keywords: Option<Spanned<Vec<String>>>,
    /// Finds needed for the detector to hold (default 1).
    #[serde(default)]
    pub min_count: Option<Spanned<i64>>,
}

/// The detectors and how much of each file's text they read.
#[derive(Debug, Clone)]
pub struct Detection {
    /// Built-in and configured detectors.
    pub detectors: Vec<Detector>,
    /// Per file.
    pub text: TextLimits,
}

impl Detection {
    /// What changes the counts: the index keys on it.
    pub fn fingerprint(&self) -> String {
        let detectors: Vec<String> = self.detectors.iter().map(|d| format!("{}={:?}/{}", d.name, d.kind, d.min_count)).collect();
        format!("detectors [{}] {:?}", detectors.join(", "), self.text)
    }
}

/// The built-in detectors plus `[[detectors]]`; problems name the entry and key.
pub fn compile(configs: &[DetectorConfig], text: TextLimits) -> (Detection, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut detectors: Vec<Detector> = BUILT_IN.iter().filter_map(|n| Detector::built_in(n, 1)).collect();
    for (i, c) in configs.iter().enumerate() {
        let entry = [Step::Key("detectors".into()), Step::Index(i)];
        let name = c.name.get_ref().trim().to_string();
        let mut problem = |at: &[&str], message: String| problems.push(Problem::error(key(at), message).within(&entry));
        let min_count = match c.min_count.as_ref().map(|m| *m.get_ref()) {
            None => 1,
            Some(n) if (1..=1_000_000).contains(&n) => n as usize,
            Some(n) => {
                problem(&["min_count"], format!("[[detectors]] {name:?}: min_count must be between 1 and 1000000, not {n}"));
                continue;
            }
        };
        let valid_name = !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid_name {
            problem(&["name"], format!("[[detectors]] name {name:?}: 1 to 64 letters, digits, '_' or '-'"));
            continue;
        }
        let built_in = BUILT_IN.contains(&name.as_str());
        let compiled = match (&c.pattern, &c.keywords, built_in) {
            (None, None, true) => Detector::built_in(&name, min_count).ok_or_else(|| "unknown built-in".to_string()),
            (Some(_), _, true) | (_, Some(_), true) => {
                problem(
                    &["name"],
                    format!("[[detectors]] {name:?} is a built-in detector: give it only min_count, or choose another name for a pattern"),
                );
                continue;
            }
            (Some(p), None, false) => Detector::pattern(&name, p.get_ref(), min_count).map_err(|e| e.to_string()),
            (None, Some(k), false) => Detector::keywords(&name, k.get_ref(), min_count).map_err(|e| e.to_string()),
            (Some(_), Some(_), false) | (None, None, false) => {
                problem(&["name"], format!("[[detectors]] {name:?}: give exactly one of pattern or keywords"));
                continue;
            }
        };
        match compiled {
            Ok(d) => {
                if let Some(slot) = detectors.iter_mut().find(|x| x.name == d.name) {
                    if built_in && slot.min_count == 1 {
                        *slot = d;
                    } else {
                        problem(&["name"], format!("[[detectors]] {name:?} is defined twice"));
                    }
                } else {
                    detectors.push(d);
                }
            }
            Err(why) => problem(if c.pattern.is_some() { &["pattern"] } else { &["keywords"] }, why),
        }
    }
    (Detection { detectors, text }, problems)
}

/// What the detectors found in one file's text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detections {
    /// Detectors with at least one find, in definition order.
    pub counts: Vec<DetectorCount>,
    /// UTF-8 bytes of text read.
    pub text_bytes: u64,
    /// The limit that stopped reading before the end of the text, if one did: the counts are
    /// then of the text read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<String>,
    /// Parts whose text could not be read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<String>,
}

/// One detector's finds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectorCount {
    /// Its name.
    pub detector: String,
    /// How many finds.
    pub count: u64,
}

/// Kinds whose text is not read here: binary Office formats and Visio, whose text sits in
/// binary records, and archives other than ZIP and compound files, whose files the detectors do
/// not open (a spreadsheet of card numbers in a 7z is not clean). Their detections are never
/// complete.
const TEXT_NOT_READ: &[&str] = &[
    "doc", "xls", "ppt", "xlsb", "vsdx", "vsdm", "cfb", "gzip", "bzip2", "xz", "zstd", "tar", "cpio", "ar", "lzma", "7z", "rar", "tnef",
    "compress", "cab", "wim", "lz4",
];

impl Detections {
    /// Whether the detectors saw less than all of the file's text: a limit stopped reading, a
    /// part could not be read, or the kind's text is not read at all.
    pub fn incomplete(&self, kind: &str) -> bool {
        self.truncated.is_some() || !self.unreadable.is_empty() || TEXT_NOT_READ.contains(&kind)
    }

    /// The detectors that reach their `min_count`.
    pub fn holding(&self, detection: &Detection) -> Vec<String> {
        detection
            .detectors
            .iter()
            .filter(|d| self.counts.iter().any(|c| c.detector == d.name && c.count >= d.min_count as u64))
            .map(|d| d.name.clone())
            .collect()
    }
}

/// Reads the text of `file` (of `kind`, as its labels were read) and counts it.
pub fn detect<R: std::io::Read + std::io::Seek>(file: R, kind: &str, detection: &Detection, limits: &Limits) -> Detections {
    let mut counter = Counter::new(&detection.detectors);
    let mut feed = |piece: &str| counter.feed(piece);
    let mut out = TextOut::new(&mut feed, &detection.text);
    let read = match ReaderInput::new(file) {
        Ok(mut input) => read_text(&mut input, kind, limits, &mut out, 0),
        Err(e) => Err(e.to_string()),
    };
    let mut report = out.finish();
    if let Err(why) = read {
        report.unreadable.push(why);
    }
    counter.finish();
    Detections {
        counts: counter
            .counts()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| DetectorCount { detector: name.to_string(), count: n as u64 })
            .collect(),
        text_bytes: report.text_bytes,
        truncated: report.truncated.map(str::to_string),
        unreadable: report.unreadable,
    }
}

fn read_text(input: &mut dyn Input, kind: &str, limits: &Limits, out: &mut TextOut<'_>, depth: u32) -> Result<(), String> {
    let is = |k: FileKind| kind == k.as_str();
    if is(FileKind::Zip) {
        if depth >= MAX_ARCHIVE_DEPTH {
            out.unreadable(format!("an archive nested more than {MAX_ARCHIVE_DEPTH} deep"));
            return Ok(());
        }
        return archive_text(input, limits, out, depth);
    }
    if is(FileKind::Eml) {
        return message_text(input, out);
    }
    if is(FileKind::Msg) {
        let budget = out.source_left();
        let bodies = labelgate_extract::msg_body_text(input, limits, budget).map_err(|e| e.to_string())?;
        out.consumed(bodies.iter().map(|(b, _)| b.len() as u64).sum(), false);
        push_bodies(bodies, out);
        return Ok(());
    }
    if is(FileKind::Unknown) {
        let head = input.read_upto(0, labelgate_extract::SNIFF_BYTES).map_err(|e| e.to_string())?;
        if labelgate_extract::looks_like_text(&head) {
            return labelgate_extract::plain_text(input, out).map_err(|e| e.to_string());
        }
        return Ok(());
    }
    labelgate_extract::document_text(input, limits, out).map_err(|e| e.to_string())
}

/// ZIP archives nested in ZIP archives, followed this deep.
const MAX_ARCHIVE_DEPTH: u32 = 3;
/// Members of one archive whose text is read.
const MAX_ARCHIVE_MEMBERS: u64 = 10_000;

/// The text of every file in a ZIP archive, each read as what it is (a document, a message,
/// plain text, another archive), within the file's one budget: zipping a spreadsheet of card
/// numbers does not hide them. Members that cannot be read are reported.
fn archive_text(input: &mut dyn Input, limits: &Limits, out: &mut TextOut<'_>, depth: u32) -> Result<(), String> {
    let mut ex = labelgate_extract::Extraction::new(FileKind::Zip);
    let listing = labelgate_extract::zip_members(input, limits, MAX_ARCHIVE_MEMBERS, &mut ex).map_err(|e| e.to_string())?;
    for member in listing.members.iter().filter(|m| !m.is_directory()) {
        if out.stopped() {
            break;
        }
        let name = String::from_utf8_lossy(&member.name).chars().take(200).collect::<String>();
        let (Some(at), false) = (member.data_offset, member.is_encrypted()) else {
            out.unreadable(format!("{name}: encrypted, or no local header"));
            continue;
        };
        let budget = out.source_left();
        if member.compressed_size > budget.saturating_add(64 << 10) {
            out.consumed(budget, true);
            break;
        }
        let raw = input.read_at(at, member.compressed_size as usize, "zip").map_err(|e| e.to_string())?;
        // The bytes read are charged whatever becomes of them (a member that does not inflate
        // costs its reading too); what is inside is charged by its own reader.
        out.consumed(raw.len() as u64, false);
        let data = match member.method {
            0 => raw.into_owned(),
            8 => {
                let mut data = Vec::new();
                let compressed = raw;
                let decoder = flate2::read::DeflateDecoder::new(&compressed[..]);
                if let Err(e) = std::io::Read::read_to_end(&mut std::io::Read::take(decoder, budget.saturating_add(1)), &mut data) {
                    out.unreadable(format!("{name}: does not inflate: {e}"));
                    continue;
                }
                data
            }
            m => {
                out.unreadable(format!("{name}: compression method {m}"));
                continue;
            }
        };
        if data.len() as u64 > budget {
            out.consumed(budget, true);
            break;
        }
        let mut inner = labelgate_extract::SliceInput::new(&data);
        let kind = labelgate_extract::extract_input(&mut inner, limits).map(|ex| ex.kind).unwrap_or(FileKind::Unknown);
        if let Err(why) = read_text(&mut inner, kind.as_str(), limits, out, depth + 1) {
            out.unreadable(format!("{name}: {why}"));
        }
        out.push("\n");
    }
    Ok(())
}

/// A message's body text (its text parts that are not attached files), HTML as the text it
/// shows.
fn message_text(input: &mut dyn Input, out: &mut TextOut<'_>) -> Result<(), String> {
    let budget = out.source_left();
    if input.len() > budget {
        out.consumed(budget, true);
        return Ok(());
    }
    let raw = input.read_at(0, input.len() as usize, "eml").map_err(|e| e.to_string())?;
    out.consumed(raw.len() as u64, false);
    let bodies = labelgate_unpack::message_body_text(&raw, 1024).map_err(|e| e.reason().to_string())?;
    push_bodies(bodies, out);
    Ok(())
}

/// A message's bodies as the text they show, one after another.
fn push_bodies(bodies: Vec<(String, bool)>, out: &mut TextOut<'_>) {
    for (body, html) in bodies {
        let shown = if html { html_text(&body) } else { body };
        if !out.push(&shown) || !out.push("\n") {
            break;
        }
    }
}

/// The text an HTML body shows: tags dropped (a tag ends a word), `script` and `style`
/// contents dropped, character references decoded.
pub fn html_text(html: &str) -> String {
    // ASCII lowercasing keeps byte offsets: searched once, in step with the original.
    let lower = html.to_ascii_lowercase();
    let mut out = String::with_capacity(html.len());
    let mut at = 0;
    while let Some(lt) = lower[at..].find('<').map(|i| at + i) {
        push_decoded(&mut out, &html[at..lt]);
        // `<script` and `<style` as whole tag names (not `<scriptx>`).
        let tag = |name: &str| {
            lower[lt..].strip_prefix(name).is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/'))
        };
        let skip_to = if tag("<script") {
            lower[lt..].find("</script").map(|i| lt + i)
        } else if tag("<style") {
            lower[lt..].find("</style").map(|i| lt + i)
        } else if lower[lt..].starts_with("<!--") {
            lower[lt..].find("-->").map(|i| lt + i + 2)
        } else {
            None
        };
        let from = skip_to.unwrap_or(lt);
        match lower[from..].find('>') {
            Some(gt) => {
                out.push(' ');
                at = from + gt + 1;
            }
            None => {
                at = html.len();
            }
        }
    }
    push_decoded(&mut out, &html[at..]);
    out
}

fn push_decoded(out: &mut String, text: &str) {
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let end = after.find(';').filter(|&e| e <= 10);
        let decoded = end.and_then(|e| {
            let name = &after[..e];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" | "ensp" | "emsp" | "thinsp" => Some(' '),
                // Invisible: dropped below, as the detectors drop them.
                "shy" => Some('\u{00AD}'),
                "zwnj" => Some('\u{200C}'),
                "zwj" => Some('\u{200D}'),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &after[e + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_shows_its_text() {
        assert_eq!(
            html_text("<p>Card&nbsp;4111&#32;1111 1111 1111</p><script>var x='<p>5500'</script><!-- 5500 0000 --><b>A&amp;B</b>"),
            " Card 4111 1111 1111 1111    A&B "
        );
        assert_eq!(html_text("<scriptx>4111</scriptx><style>x</style>&#x34;&shy;1"), " 4111  4\u{00AD}1");
    }

    fn detection(toml_text: &str) -> (Detection, Vec<Problem>) {
        #[derive(Deserialize)]
        struct File {
            detectors: Vec<DetectorConfig>,
        }
        let file: File = toml::from_str(toml_text).unwrap();
        compile(&file.detectors, TextLimits::default())
    }

    #[test]
    fn detectors_are_configured_and_checked() {
        let (d, problems) = detection(
            "[[detectors]]\nname = \"payment_card\"\nmin_count = 3\n[[detectors]]\nname = \"project\"\nkeywords = [\"falcon\"]\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(d.detectors.iter().find(|x| x.name == "payment_card").unwrap().min_count, 3);
        assert!(d.detectors.iter().any(|x| x.name == "project"));
        let bad = [
            ("[[detectors]]\nname = \"iban\"\npattern = \"x\"\n", "is a built-in detector"),
            ("[[detectors]]\nname = \"x\"\n", "exactly one of pattern or keywords"),
            ("[[detectors]]\nname = \"x\"\npattern = \"(\"\n", "pattern"),
            ("[[detectors]]\nname = \"x\"\nkeywords = []\n", "keywords"),
            ("[[detectors]]\nname = \"x y\"\npattern = \"a\"\n", "letters, digits"),
            ("[[detectors]]\nname = \"x\"\npattern = \"a\"\nmin_count = 0\n", "min_count"),
            ("[[detectors]]\nname = \"x\"\npattern = \"a\"\n[[detectors]]\nname = \"x\"\npattern = \"b\"\n", "defined twice"),
        ];
        for (text, expected) in bad {
            let (_, problems) = detection(text);
            assert!(problems.iter().any(|p| p.message.contains(expected)), "{text}: {problems:?}");
        }
    }
}
