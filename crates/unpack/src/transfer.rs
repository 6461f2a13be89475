//! A multipart part's `Content-Transfer-Encoding` (base64, quoted-printable) undone as the part
//! is read, so a large encoded part is decoded into the spool chunk by chunk instead of being
//! read whole into memory twice (encoded and decoded).

use std::io::Read;

/// Bytes read from the encoded source per refill.
const STEP: usize = 64 * 1024;

/// Copies decoded bytes not yet read from `out` into `buf`, from `pos` on.
fn hand_out(out: &[u8], pos: &mut usize, buf: &mut [u8]) -> usize {
    let n = (out.len() - *pos).min(buf.len());
    buf[..n].copy_from_slice(&out[*pos..*pos + n]);
    *pos += n;
    n
}

/// Base64 (standard or URL-safe alphabet) decoded as it is read: line breaks and other
/// whitespace are skipped; `=` is padding, after which only more `=` and whitespace may follow
/// (data after padding is an error: lenient decoders disagree on it — Python's skips the `=` and
/// decodes on — so it could hide a file from one reading and not the other); any other byte
/// outside the alphabet is an error. A final group of 2 or 3 characters gives its 1 or 2 bytes;
/// a single leftover character is dropped.
pub struct Base64Reader<R> {
    inner: R,
    group: u32,
    have: u8,
    out: Vec<u8>,
    pos: usize,
    ended: bool,
    /// Padding was seen: only padding and whitespace may follow.
    padded: bool,
}

impl<R: Read> Base64Reader<R> {
    /// Decodes what `inner` gives.
    pub fn new(inner: R) -> Self {
        Base64Reader { inner, group: 0, have: 0, out: Vec::with_capacity(STEP), pos: 0, ended: false, padded: false }
    }

    fn sextet(b: u8) -> Option<u32> {
        Some(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    }

    /// The bytes of an incomplete last group.
    fn flush_group(&mut self) {
        match self.have {
            2 => self.out.push((self.group >> 4) as u8),
            3 => self.out.extend_from_slice(&[(self.group >> 10) as u8, (self.group >> 2) as u8]),
            _ => {}
        }
        self.have = 0;
        self.group = 0;
    }

    fn refill(&mut self) -> std::io::Result<()> {
        self.out.clear();
        self.pos = 0;
        let mut raw = [0u8; STEP];
        while self.out.is_empty() && !self.ended {
            let n = self.inner.read(&mut raw)?;
            if n == 0 {
                self.ended = true;
                self.flush_group();
                break;
            }
            for &b in &raw[..n] {
                if self.padded {
                    if b == b'=' || b.is_ascii_whitespace() {
                        continue;
                    }
                    return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "base64 data after its padding"));
                }
                if let Some(v) = Self::sextet(b) {
                    self.group = (self.group << 6) | v;
                    self.have += 1;
                    if self.have == 4 {
                        let g = self.group;
                        self.out.extend_from_slice(&[(g >> 16) as u8, (g >> 8) as u8, g as u8]);
                        self.have = 0;
                        self.group = 0;
                    }
                } else if b == b'=' {
                    self.padded = true;
                    self.flush_group();
                } else if !b.is_ascii_whitespace() {
                    return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "a byte outside the base64 alphabet"));
                }
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for Base64Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.out.len() && !self.ended {
            self.refill()?;
        }
        Ok(hand_out(&self.out, &mut self.pos, buf))
    }
}

/// Quoted-printable decoded as it is read, exactly as [`crate::quoted_printable`]
/// decodes a whole value: an escape cut by a refill (`=` in the last two bytes) waits for the
/// bytes after it.
pub struct QuotedPrintableReader<R> {
    inner: R,
    carry: Vec<u8>,
    out: Vec<u8>,
    pos: usize,
    ended: bool,
}

impl<R: Read> QuotedPrintableReader<R> {
    /// Decodes what `inner` gives.
    pub fn new(inner: R) -> Self {
        QuotedPrintableReader { inner, carry: Vec::new(), out: Vec::new(), pos: 0, ended: false }
    }

    fn refill(&mut self) -> std::io::Result<()> {
        self.pos = 0;
        self.out.clear();
        while self.out.is_empty() && !self.ended {
            let mut raw = std::mem::take(&mut self.carry);
            let start = raw.len();
            raw.resize(start + STEP, 0);
            let n = self.inner.read(&mut raw[start..])?;
            raw.truncate(start + n);
            if n == 0 {
                self.ended = true;
                self.out = crate::quoted_printable(&raw);
                break;
            }
            let tail_from = raw.len().saturating_sub(2);
            let cut = raw[tail_from..].iter().position(|&b| b == b'=').map_or(raw.len(), |p| tail_from + p);
            self.carry = raw[cut..].to_vec();
            self.out = crate::quoted_printable(&raw[..cut]);
        }
        Ok(())
    }
}

impl<R: Read> Read for QuotedPrintableReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.out.len() && !self.ended {
            self.refill()?;
        }
        Ok(hand_out(&self.out, &mut self.pos, buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `step` bytes per read, to cut escapes and groups anywhere.
    struct Dribble<'a>(&'a [u8], usize);
    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn base64_decodes_across_any_cut_like_the_whole_value_decoder() {
        use base64::Engine;
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 + i / 3) as u8).collect();
        let mut encoded = base64::engine::general_purpose::STANDARD.encode(&data).into_bytes();
        // MIME line breaks every 76 characters.
        let mut wrapped = Vec::new();
        for line in encoded.chunks(76) {
            wrapped.extend_from_slice(line);
            wrapped.extend_from_slice(b"\r\n");
        }
        for step in [1, 3, 4, 77, 1000] {
            let mut out = Vec::new();
            Base64Reader::new(Dribble(&wrapped, step)).read_to_end(&mut out).unwrap();
            assert_eq!(out, data, "step {step}");
        }
        encoded.retain(|&b| b != b'=');
        let mut out = Vec::new();
        Base64Reader::new(&encoded[..]).read_to_end(&mut out).unwrap();
        assert_eq!(out, data, "unpadded");
        assert!(Base64Reader::new(&b"QUJD*"[..]).read_to_end(&mut Vec::new()).is_err());
        // Data after padding is refused, not skipped nor decoded: a file behind a stray `=`
        // must not pass as an empty part.
        let mut hidden = b"=".to_vec();
        hidden.extend_from_slice(&encoded);
        assert!(Base64Reader::new(&hidden[..]).read_to_end(&mut Vec::new()).is_err());
        assert!(Base64Reader::new(&b"QUI=QUJD"[..]).read_to_end(&mut Vec::new()).is_err());
        let mut out = Vec::new();
        Base64Reader::new(&b"QUI=\r\n=  \n"[..]).read_to_end(&mut out).unwrap();
        assert_eq!(out, b"AB", "padding and whitespace may end it");
    }

    #[test]
    fn quoted_printable_decodes_across_any_cut_like_the_whole_value_decoder() {
        let encoded = b"caf=C3=A9 =3D long line=\r\n joined=\nalso =XZ literal, ==41 and a final =";
        let whole = crate::quoted_printable(encoded);
        for step in 1..8 {
            let mut out = Vec::new();
            QuotedPrintableReader::new(Dribble(encoded, step)).read_to_end(&mut out).unwrap();
            assert_eq!(out, whole, "step {step}");
        }
    }
}
