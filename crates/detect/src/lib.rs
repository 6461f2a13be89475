//! `labelgate-detect`: content detectors over text, for auto-classification at rest. Built-in
//! detectors validate what they match, as DLP engines do, so that a number that merely looks
//! like a card is not counted:
//! - `payment_card`: 13–19 digits (spaces or dashes between groups) in a known issuer range
//!   (Visa, Mastercard, American Express, Discover, JCB, Diners Club, UnionPay) passing Luhn;
//! - `iban`: a country code, two check digits and the country's exact length, mod 97 = 1;
//! - `us_ssn`: `AAA-GG-SSSS` or `AAA GG SSSS` with a valid area (not 000, 666, 900–999), group
//!   (not 00) and serial (not 0000); nine bare digits are too common to count;
//! - `email_address`.
//!
//! Custom detectors match a regular expression or any of a list of keywords (case-insensitive,
//! whole words). Text is fed in pieces as it is extracted ([`Counter::feed`]): a match split
//! across two pieces is still found once. Only counts leave this crate, never matched values.

use regex::Regex;

/// Bytes of a searched chunk carried into the next, to find a match that straddles two chunks
/// whole: longer than any built-in detector's match (an e-mail address is at most 64 + 1 +
/// 8 × 64 + 24 bytes here). A custom pattern's match longer than this may be cut at a chunk
/// boundary.
const OVERLAP: usize = 1024;

/// What a detector looks for.
#[derive(Debug, Clone)]
pub enum Kind {
    /// Validated payment card numbers.
    PaymentCard,
    /// Validated IBANs.
    Iban,
    /// Formatted US Social Security numbers in valid ranges.
    UsSsn,
    /// E-mail addresses.
    Email,
    /// An organisation's own regular expression.
    Pattern(Regex),
    /// Any of these words or phrases (case-insensitive, whole words).
    Keywords(Regex),
}

/// One detector: its name, what it finds, and how many finds make it hold.
#[derive(Debug, Clone)]
pub struct Detector {
    /// The name rules use.
    pub name: String,
    /// What it finds.
    pub kind: Kind,
    /// Finds needed for the detector to hold (at least 1).
    pub min_count: usize,
    matcher: Regex,
}

/// Why a detector cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    /// Not a valid regular expression (or too large).
    #[error("detector {name:?}: pattern: {why}")]
    Pattern {
        /// The detector.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// An empty keyword list or keyword.
    #[error("detector {0:?}: keywords must be a non-empty list of non-empty words")]
    Keywords(String),
}

/// The built-in detectors' names.
pub const BUILT_IN: &[&str] = &["payment_card", "iban", "us_ssn", "email_address"];

/// Regexes are bounded: a pattern that compiles to more than this is refused.
const MAX_REGEX: usize = 1 << 20;

fn compile(name: &str, pattern: &str) -> Result<Regex, DetectorError> {
    regex::RegexBuilder::new(pattern)
        .size_limit(MAX_REGEX)
        .dfa_size_limit(MAX_REGEX)
        .build()
        .map_err(|e| DetectorError::Pattern { name: name.to_string(), why: e.to_string() })
}

impl Detector {
    /// A built-in detector by name.
    pub fn built_in(name: &str, min_count: usize) -> Option<Detector> {
        // ASCII word boundaries: what these formats need, and they keep the search on the
        // regex crate's DFA (Unicode boundaries fall back to a much slower engine).
        let (kind, pattern) = match name {
            "payment_card" => (Kind::PaymentCard, r"(?-u:\b)[0-9](?:[ -]?[0-9]){12,18}(?-u:\b)"),
            "iban" => (Kind::Iban, r"(?-u:\b)[A-Za-z]{2}[0-9]{2}(?: ?[A-Za-z0-9]){11,30}(?-u:\b)"),
            "us_ssn" => (Kind::UsSsn, r"(?-u:\b)[0-9]{3}([- ])[0-9]{2}[- ][0-9]{4}(?-u:\b)"),
            "email_address" => (Kind::Email, r"(?-u:\b)[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}(?-u:\b)"),
            _ => return None,
        };
        let matcher = Regex::new(pattern).ok()?;
        Some(Detector { name: name.to_string(), kind, min_count: min_count.max(1), matcher })
    }

    /// A custom detector matching `pattern`.
    pub fn pattern(name: &str, pattern: &str, min_count: usize) -> Result<Detector, DetectorError> {
        let matcher = compile(name, pattern)?;
        Ok(Detector { name: name.to_string(), kind: Kind::Pattern(matcher.clone()), min_count: min_count.max(1), matcher })
    }

    /// A custom detector matching any of `keywords` (case-insensitive, whole words).
    pub fn keywords(name: &str, keywords: &[String], min_count: usize) -> Result<Detector, DetectorError> {
        if keywords.is_empty() || keywords.iter().any(|k| k.trim().is_empty()) {
            return Err(DetectorError::Keywords(name.to_string()));
        }
        let alternatives: Vec<String> = keywords.iter().map(|k| regex::escape(k.trim())).collect();
        let matcher = compile(name, &format!(r"(?i)\b(?:{})\b", alternatives.join("|")))?;
        Ok(Detector { name: name.to_string(), kind: Kind::Keywords(matcher.clone()), min_count: min_count.max(1), matcher })
    }

    /// The real find within one match, as a byte span of it (the built-ins validate). A match
    /// that runs on past a valid number (`4111 1111 1111 1111 123`, an IBAN followed by a
    /// BIC) or starts before one (`123 4111 1111 1111 1111`) is cut at a separator, so the
    /// number is not lost to what surrounds it.
    fn accept(&self, found: &str) -> Option<(usize, usize)> {
        match &self.kind {
            Kind::PaymentCard => {
                if payment_card(found) {
                    return Some((0, found.len()));
                }
                let cuts: Vec<usize> = found.match_indices([' ', '-']).map(|(i, _)| i).collect();
                let enough = |s: &str| s.bytes().filter(u8::is_ascii_digit).count() >= 13;
                let prefix = cuts.iter().rev().map(|&i| (0, i)).find(|&(a, b)| enough(&found[a..b]) && payment_card(&found[a..b]));
                prefix.or_else(|| {
                    cuts.iter().map(|&i| (i + 1, found.len())).find(|&(a, b)| enough(&found[a..b]) && payment_card(&found[a..b]))
                })
            }
            Kind::Iban => {
                if iban(found) {
                    return Some((0, found.len()));
                }
                // The country's length of characters, spaces between groups skipped.
                let country = found.get(..2)?.to_ascii_uppercase();
                let &(_, len) = IBAN_LENGTHS.iter().find(|(c, _)| *c == country)?;
                let end = found.char_indices().filter(|(_, c)| !c.is_whitespace()).nth(len - 1).map(|(i, c)| i + c.len_utf8())?;
                iban(&found[..end]).then_some((0, end))
            }
            Kind::UsSsn => us_ssn(found).then_some((0, found.len())),
            Kind::Email | Kind::Pattern(_) | Kind::Keywords(_) => Some((0, found.len())),
        }
    }
}

/// Counts the finds of each detector over text fed in pieces.
///
/// Pieces are gathered into chunks of [`CHUNK`] bytes, and each chunk is searched except its
/// last `OVERLAP` bytes, which start the next one: a match that a piece boundary (or a chunk
/// boundary) cuts is found whole, once, and the next search resumes where the last match
/// ended (the suffix of a long address is not a second address), so the counts are those of
/// one search over the whole text. Call [`Counter::finish`] after the last piece.
pub struct Counter<'d> {
    detectors: &'d [Detector],
    counts: Vec<usize>,
    /// Text not yet searched past its carried start.
    buf: String,
    /// Per detector: in `buf`, where the last match ended (the search resumes there).
    floors: Vec<usize>,
}

/// Text gathered before it is searched.
pub const CHUNK: usize = 32 * 1024;

impl<'d> Counter<'d> {
    /// A counter for `detectors`.
    pub fn new(detectors: &'d [Detector]) -> Counter<'d> {
        Counter { detectors, counts: vec![0; detectors.len()], buf: String::new(), floors: vec![0; detectors.len()] }
    }

    /// Takes the next piece of text. Pieces are joined as they come: a caller separating
    /// paragraphs or cells feeds a separator between them. Text is read as a person reads it
    /// ([`push_as_read`]): characters that show nothing do not split a number.
    pub fn feed(&mut self, piece: &str) {
        push_as_read(&mut self.buf, piece);
        if self.buf.len() >= CHUNK {
            self.search(false);
        }
    }

    /// Searches what is left: the text has ended.
    pub fn finish(&mut self) {
        self.search(true);
    }

    fn search(&mut self, last: bool) {
        let mut safe = if last { self.buf.len() } else { self.buf.len().saturating_sub(OVERLAP) };
        while !self.buf.is_char_boundary(safe) {
            safe -= 1;
        }
        // One character before `safe` stays as context: a word boundary at the start of the
        // next search is then what it is in the whole text.
        let keep = self.buf[..safe].chars().next_back().map_or(safe, |c| safe - c.len_utf8());
        for ((d, count), floor) in self.detectors.iter().zip(self.counts.iter_mut()).zip(self.floors.iter_mut()) {
            // Searching resumes where the last match ended, as one search over the whole text
            // would: every match starting before `safe` is decided here, with all of its text.
            let mut at = (*floor).min(self.buf.len());
            let mut reached = 0;
            while let Some(m) = d.matcher.find_at(&self.buf, at) {
                if m.start() >= safe {
                    break;
                }
                let end = match d.accept(m.as_str()) {
                    Some((_, end)) => {
                        *count += 1;
                        m.start() + end
                    }
                    // A number the match ran into from before (`2024 4111 1111 1111 1111`) is
                    // searched for again from the match's first separator.
                    None => match d.kind {
                        Kind::PaymentCard | Kind::Iban => m.as_str().find([' ', '-']).map_or(m.end(), |i| m.start() + i + 1),
                        _ => m.end(),
                    },
                };
                reached = end;
                at = if end > m.start() {
                    end
                } else {
                    // An empty match (a custom pattern may allow one): step over one character.
                    match self.buf[end..].chars().next() {
                        Some(c) => end + c.len_utf8(),
                        None => break,
                    }
                };
            }
            *floor = reached.max(safe).saturating_sub(keep);
        }
        self.buf.drain(..keep);
    }

    /// Each detector's name and count, in the order given (complete after [`Counter::finish`]).
    pub fn counts(&self) -> Vec<(&'d str, usize)> {
        self.detectors.iter().zip(&self.counts).map(|(d, &n)| (d.name.as_str(), n)).collect()
    }

    /// Whether the detector `name` reached its `min_count`.
    pub fn holds(&self, name: &str) -> bool {
        self.detectors.iter().zip(&self.counts).any(|(d, &n)| d.name == name && n >= d.min_count)
    }
}

/// Appends `text` as a reader sees it: invisible characters (zero-width spaces and joiners,
/// word joiner, byte order mark, soft hyphen, direction marks and isolates, invisible
/// operators, the grapheme joiner) dropped, so that `4111\u{200B}1111…` is the number it shows;
/// other spaces (no-break, the U+2000 range, ideographic) as a space; Unicode hyphens and dashes
/// as `-`; decimal digits of other forms and scripts (full-width, mathematical, Arabic-Indic,
/// Devanagari) and full-width Latin letters as ASCII.
pub fn push_as_read(out: &mut String, text: &str) {
    if text.is_ascii() {
        out.push_str(text);
        return;
    }
    let digit = |base: u32, c: char| char::from(b'0' + ((c as u32 - base) % 10) as u8);
    for c in text.chars() {
        match c {
            '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
            | '\u{00AD}'
            | '\u{034F}' => {}
            '\u{00A0}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}' => out.push(' '),
            '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE63}' | '\u{FF0D}' => out.push('-'),
            '\u{FF10}'..='\u{FF19}' => out.push(digit(0xFF10, c)),
            '\u{1D7CE}'..='\u{1D7FF}' => out.push(digit(0x1D7CE, c)),
            '\u{0660}'..='\u{0669}' => out.push(digit(0x0660, c)),
            '\u{06F0}'..='\u{06F9}' => out.push(digit(0x06F0, c)),
            '\u{0966}'..='\u{096F}' => out.push(digit(0x0966, c)),
            '\u{FF21}'..='\u{FF3A}' => out.push(char::from(b'A' + (c as u32 - 0xFF21) as u8)),
            '\u{FF41}'..='\u{FF5A}' => out.push(char::from(b'a' + (c as u32 - 0xFF41) as u8)),
            '\u{FF20}' => out.push('@'),
            '\u{FF0E}' => out.push('.'),
            _ => out.push(c),
        }
    }
}

/// Luhn's check over the digits of `s`.
pub fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(*d);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum % 10 == 0
}

fn digits_of(s: &str) -> Vec<u8> {
    s.bytes().filter(u8::is_ascii_digit).map(|b| b - b'0').collect()
}

/// A card number: one kind of separator at most, a known issuer range and length, Luhn.
fn payment_card(found: &str) -> bool {
    if found.contains(' ') && found.contains('-') {
        return false;
    }
    let d = digits_of(found);
    let n = d.len();
    let prefix = |k: usize| d.iter().take(k).fold(0u32, |acc, &x| acc * 10 + u32::from(x));
    let issuer = match (prefix(1), prefix(2), prefix(3), prefix(4), prefix(6)) {
        (4, ..) => matches!(n, 13 | 16 | 19),
        (_, 34 | 37, ..) => n == 15,
        (_, 51..=55, ..) => n == 16,
        (_, _, _, 2221..=2720, _) => n == 16,
        (_, _, _, 6011, _) | (_, _, 644..=649, ..) | (_, 65, ..) => (16..=19).contains(&n),
        (_, _, _, 3528..=3589, _) => (16..=19).contains(&n),
        (_, _, 300..=305, ..) | (_, 36 | 38 | 39, ..) => (14..=19).contains(&n),
        (_, 62, ..) => (16..=19).contains(&n),
        _ => false,
    };
    issuer && luhn(&d)
}

/// IBAN lengths by country (ISO 13616 registry).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NL", 18),
    ("NO", 15),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SC", 31),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
];

/// An IBAN: the country's length, and the check digits (mod 97 = 1).
fn iban(found: &str) -> bool {
    // Written in lower case too (mod 97 keeps chance matches out).
    let compact: String = found.chars().filter(|c| !c.is_whitespace()).map(|c| c.to_ascii_uppercase()).collect();
    let Some(&(_, len)) = IBAN_LENGTHS.iter().find(|(c, _)| compact.starts_with(c)) else { return false };
    if compact.len() != len || !compact.chars().all(|c| c.is_ascii_alphanumeric()) {
        return false;
    }
    let (head, rest) = compact.split_at(4);
    let mut remainder = 0u32;
    for c in rest.chars().chain(head.chars()) {
        let v = c.to_digit(36).unwrap_or(0);
        remainder = if v >= 10 { (remainder * 100 + v) % 97 } else { (remainder * 10 + v) % 97 };
    }
    remainder == 1
}

/// A US SSN: the same separator twice, area not 000/666/9xx, group not 00, serial not 0000.
fn us_ssn(found: &str) -> bool {
    let seps: Vec<char> = found.chars().filter(|c| !c.is_ascii_digit()).collect();
    if seps.len() != 2 || seps[0] != seps[1] {
        return false;
    }
    let d = digits_of(found);
    let num = |r: std::ops::Range<usize>| d[r].iter().fold(0u32, |a, &x| a * 10 + u32::from(x));
    let (area, group, serial) = (num(0..3), num(3..5), num(5..9));
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(name: &str, text: &str) -> usize {
        let d = [Detector::built_in(name, 1).unwrap()];
        let mut c = Counter::new(&d);
        c.feed(text);
        c.finish();
        c.counts()[0].1
    }

    #[test]
    fn payment_cards_are_luhn_valid_numbers_in_issuer_ranges() {
        assert_eq!(count("payment_card", "Visa 4111 1111 1111 1111, MC 5500-0000-0000-0004, Amex 378282246310005"), 3);
        assert_eq!(count("payment_card", "4111 1111 1111 1112"), 0, "Luhn fails");
        assert_eq!(count("payment_card", "1234 5678 9012 3452"), 0, "Luhn holds, no issuer starts with 1");
        assert_eq!(
            count("payment_card", "card 4111 1111 1111 1111 123 and 123 5500 0000 0000 0004"),
            2,
            "digits around a card do not hide it"
        );
        assert_eq!(count("payment_card", "4111-1111 1111-1111"), 0, "mixed separators");
        assert_eq!(count("payment_card", "order 4111111111111111"), 1, "no separators");
        assert_eq!(count("payment_card", "Discover 6011 1111 1111 1117 and JCB 3530111333300000"), 2);
    }

    #[test]
    fn ibans_have_their_country_length_and_check_digits() {
        assert_eq!(count("iban", "pay to DE89 3704 0044 0532 0130 00 or GB82WEST12345698765432"), 2);
        assert_eq!(count("iban", "DE88 3704 0044 0532 0130 00"), 0, "wrong check digits");
        assert_eq!(count("iban", "DE89 3704 0044 0532 0130"), 0, "too short for DE");
        assert_eq!(count("iban", "ZZ89 3704 0044 0532 0130 00"), 0, "no such country");
    }

    #[test]
    fn us_ssns_are_formatted_and_in_valid_ranges() {
        assert_eq!(count("us_ssn", "SSN 123-45-6789; 078 05 1120"), 2);
        for bad in ["000-12-3456", "666-12-3456", "900-12-3456", "123-00-4567", "123-45-0000", "123-45 6789", "123456789"] {
            assert_eq!(count("us_ssn", bad), 0, "{bad}");
        }
    }

    #[test]
    fn email_addresses_and_custom_detectors() {
        assert_eq!(count("email_address", "write to alice@contoso.com or bob.smith+x@mail.fabrikam.co.uk, not @foo"), 2);
        let d = [
            Detector::keywords("project", &["Project Falcon".into(), "falcon-x".into()], 2).unwrap(),
            Detector::pattern("case", r"\bCASE-\d{6}\b", 1).unwrap(),
        ];
        let mut c = Counter::new(&d);
        c.feed("project falcon starts; see CASE-123456. Falconry is not it. FALCON-X too");
        c.finish();
        assert_eq!(c.counts(), [("project", 2), ("case", 1)]);
        assert!(c.holds("project") && c.holds("case"));
        assert!(Detector::pattern("bad", "(", 1).is_err());
        assert!(Detector::keywords("empty", &[], 1).is_err());
    }

    #[test]
    fn a_match_split_across_pieces_is_counted_once() {
        let d = [Detector::built_in("payment_card", 2).unwrap()];
        let mut c = Counter::new(&d);
        // As Word splits a number across runs.
        c.feed("card 41");
        c.feed("11 1111 1111 1111 and");
        c.feed(" 5500 0000 0000 0004.");
        c.finish();
        assert_eq!(c.counts(), [("payment_card", 2)]);
        assert!(c.holds("payment_card"));
        c.feed(" nothing else");
        c.finish();
        assert_eq!(c.counts(), [("payment_card", 2)], "nothing searched is counted twice");
    }

    #[test]
    fn invisible_characters_do_not_hide_a_number() {
        for text in [
            "4111\u{200B}1111\u{200B}1111\u{200B}1111",
            "4111\u{00A0}1111\u{00A0}1111\u{00A0}1111",
            "４１１１ １１１１ １１１１ １１１１",
            "4111\u{2011}1111\u{2011}1111\u{2011}1111",
            "41\u{00AD}11111111111111",
        ] {
            assert_eq!(count("payment_card", text), 1, "{text:?}");
        }
        assert_eq!(count("us_ssn", "123\u{2013}45\u{2013}6789"), 1);
        for text in [
            "𝟒𝟏𝟏𝟏 𝟏𝟏𝟏𝟏 𝟏𝟏𝟏𝟏 𝟏𝟏𝟏𝟏",
            "٤١١١ ١١١١ ١١١١ ١١١١",
            "4111\u{200E}1111\u{2066}1111\u{2069}1111",
            "4111\u{3000}1111\u{3000}1111\u{3000}1111",
        ] {
            assert_eq!(count("payment_card", text), 1, "{text:?}");
        }
        assert_eq!(count("iban", "ＧＢ82 ＷＥＳＴ 1234 5698 7654 32"), 1);
    }

    #[test]
    fn chunk_boundaries_neither_lose_nor_repeat_a_match() {
        let d = [Detector::built_in("payment_card", 1).unwrap(), Detector::built_in("email_address", 1).unwrap()];
        // A word boundary at the seam is what it is in the whole text.
        let k = [Detector::keywords("falcon", &["falcon".to_string()], 1).unwrap()];
        let pad = CHUNK - 1000;
        for delta in 0..12 {
            // The search stops `delta` bytes before "falcon"'s end; the rest starts the next.
            let mut c = Counter::new(&k);
            c.feed(&format!("{}falcon{}", "x".repeat(pad), " ".repeat(OVERLAP - 6 + delta)));
            c.finish();
            assert_eq!(c.counts(), [("falcon", 0)], "seam {delta}");
        }
        let label = "b".repeat(60);
        let address = format!("{}@{label}.{label}.{label}.example.com", "a".repeat(60));
        // Every position of a card and of a long address relative to the chunk boundary.
        for pad in (CHUNK - 600..CHUNK + 40).step_by(7) {
            let text = format!("{} 4111 1111 1111 1111 {address} .", "x".repeat(pad));
            let mut c = Counter::new(&d);
            for piece in text.as_bytes().chunks(1000) {
                c.feed(std::str::from_utf8(piece).unwrap());
            }
            c.finish();
            assert_eq!(c.counts(), [("payment_card", 1), ("email_address", 1)], "padding {pad}");
        }
    }
}
