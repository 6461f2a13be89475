//! What a multipart body holds outside its parts (a preamble before the first delimiter, an
//! epilogue after the close delimiter: bytes no part accounts for, which a receiving application
//! may still read). Quoted-printable, the other part transfer encoding, is
//! `labelgate_unpack::quoted_printable`, the e-mail parser's.

use std::io::Read;

/// The bytes before the first delimiter and after the last close delimiter of a multipart body
/// (each at most `cap`), read in one pass with only a delimiter's length carried between reads.
pub fn outside_parts(mut source: impl Read, boundary: &[u8], cap: u64) -> (Vec<u8>, Vec<u8>) {
    let delimiter = [b"--".as_slice(), boundary].concat();
    let close = [delimiter.as_slice(), b"--"].concat();
    let cap = cap as usize;
    let (mut preamble, mut epilogue) = (Vec::new(), Vec::new());
    let (mut in_preamble, mut after_close) = (true, false);
    let mut tail: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match source.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let joined = [tail.as_slice(), chunk].concat();
        if in_preamble {
            match memchr::memmem::find(&joined, &delimiter) {
                Some(at) if at >= tail.len() => {
                    preamble.extend_from_slice(&chunk[..(at - tail.len()).min(cap.saturating_sub(preamble.len()))])
                }
                // Part of the delimiter was already taken as preamble.
                Some(at) => preamble.truncate(preamble.len().saturating_sub(tail.len() - at)),
                None => preamble.extend_from_slice(&chunk[..chunk.len().min(cap.saturating_sub(preamble.len()))]),
            }
            in_preamble = memchr::memmem::find(&joined, &delimiter).is_none();
        }
        match memchr::memmem::rfind(&joined, &close) {
            // A close delimiter that ends in this read: what follows it is the epilogue so far.
            Some(at) if at + close.len() > tail.len() => {
                after_close = true;
                epilogue.clear();
                let rest = &joined[at + close.len()..];
                epilogue.extend_from_slice(&rest[..rest.len().min(cap)]);
            }
            _ if after_close => epilogue.extend_from_slice(&chunk[..chunk.len().min(cap.saturating_sub(epilogue.len()))]),
            _ => {}
        }
        let keep = joined.len().min(close.len());
        tail = joined[joined.len() - keep..].to_vec();
    }
    if in_preamble {
        // No delimiter at all: no parts, so nothing lies outside them (the parser reports it).
        return (Vec::new(), Vec::new());
    }
    (preamble, epilogue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preamble_and_epilogue_are_found_across_reads() {
        let body = b"PRE-DATA\r\n--b0undary\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--b0undary--\r\nEPI-DATA".to_vec();
        struct Trickle(Vec<u8>, usize);
        impl Read for Trickle {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = 3.min(self.0.len() - self.1).min(buf.len());
                buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
                self.1 += n;
                Ok(n)
            }
        }
        for source in [Box::new(std::io::Cursor::new(body.clone())) as Box<dyn Read + Send>, Box::new(Trickle(body.clone(), 0))] {
            let (pre, epi) = outside_parts(source, b"b0undary", 1 << 20);
            assert_eq!(pre, b"PRE-DATA\r\n");
            assert_eq!(epi, b"\r\nEPI-DATA");
        }
    }
}
