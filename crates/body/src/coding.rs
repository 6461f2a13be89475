//! Content codings (RFC 9110 §8.4): every coding a request lists, in every `Content-Encoding`
//! field (fields combine as one list), undone in reverse order of application. gzip and x-gzip
//! (concatenated members), deflate (zlib, or raw deflate as some clients send it), br, zstd, and
//! `aws-chunked`, the signed-chunk framing current S3 SDKs put on every upload.

use crate::BodyError;
use std::io::{self, BufRead, BufReader, Read};

/// One content coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// gzip, x-gzip.
    Gzip,
    /// deflate: a zlib stream, or raw deflate.
    Deflate,
    /// Brotli.
    Br,
    /// Zstandard.
    Zstd,
    /// AWS SigV4 streaming chunks (`aws-chunked`).
    AwsChunked,
}

/// The codings listed by `Content-Encoding` field values, in the order they were applied
/// (`identity` dropped). An unknown coding is an error naming it.
pub fn parse_codings<'v>(values: impl IntoIterator<Item = &'v [u8]>) -> Result<Vec<Coding>, BodyError> {
    let mut out = Vec::new();
    for value in values {
        for token in String::from_utf8_lossy(value).split(',') {
            let token = token.trim().to_ascii_lowercase();
            out.push(match token.as_str() {
                "" | "identity" => continue,
                "gzip" | "x-gzip" => Coding::Gzip,
                "deflate" => Coding::Deflate,
                "br" => Coding::Br,
                "zstd" => Coding::Zstd,
                "aws-chunked" => Coding::AwsChunked,
                _ => return Err(BodyError::UnknownCoding(token)),
            });
        }
    }
    Ok(out)
}

/// A reader of `inner` with `codings` undone (the last applied first).
pub fn decoder<'r>(codings: &[Coding], inner: Box<dyn Read + Send + 'r>) -> Result<Box<dyn Read + Send + 'r>, BodyError> {
    let mut reader = inner;
    for coding in codings.iter().rev() {
        reader = match coding {
            Coding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
            Coding::Deflate => {
                // RFC 9110 says zlib; some clients send raw deflate. The first two bytes tell.
                let mut buffered = BufReader::new(reader);
                let head = buffered.fill_buf().map_err(BodyError::Io)?;
                let zlib = head.len() >= 2 && head[0] & 0x0f == 8 && (u16::from(head[0]) << 8 | u16::from(head[1])) % 31 == 0;
                if zlib {
                    Box::new(flate2::read::ZlibDecoder::new(buffered))
                } else {
                    Box::new(flate2::read::DeflateDecoder::new(buffered))
                }
            }
            Coding::Br => Box::new(brotli_decompressor::Decompressor::new(reader, 64 * 1024)),
            Coding::Zstd => Box::new(ZstdFrames::new(reader)?),
            Coding::AwsChunked => Box::new(AwsChunked::new(reader)),
        };
    }
    Ok(reader)
}

type Source<'r> = Box<dyn Read + Send + 'r>;

/// Reads every frame of a zstd stream (the streaming decoder stops after the first).
struct ZstdFrames<'r> {
    decoder: Option<ruzstd::decoding::StreamingDecoder<Source<'r>, ruzstd::decoding::FrameDecoder>>,
}

impl<'r> ZstdFrames<'r> {
    fn new(source: Source<'r>) -> Result<Self, BodyError> {
        let decoder = ruzstd::decoding::StreamingDecoder::new(source).map_err(|e| BodyError::Corrupt(format!("zstd: {e}")))?;
        Ok(ZstdFrames { decoder: Some(decoder) })
    }
}

impl Read for ZstdFrames<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(decoder) = self.decoder.as_mut() else { return Ok(0) };
            let n = decoder.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            // This frame is done: another may follow.
            let Some(decoder) = self.decoder.take() else { return Ok(0) };
            let mut source = decoder.into_inner();
            let mut probe = [0u8; 4];
            let mut got = 0;
            while got < 4 {
                match source.read(&mut probe[got..])? {
                    0 => break,
                    k => got += k,
                }
            }
            if got == 0 {
                return Ok(0);
            }
            let chained: Source<'_> = Box::new(io::Cursor::new(probe[..got].to_vec()).chain(source));
            self.decoder = Some(
                ruzstd::decoding::StreamingDecoder::new(chained)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}")))?,
            );
        }
    }
}

/// `aws-chunked`: `hex-size[;chunk-signature=…]\r\n` data `\r\n` … `0[;…]\r\n` then trailers and
/// an empty line. Each chunk's size is bounded by what follows; a malformed frame is an error.
struct AwsChunked<R: Read> {
    inner: BufReader<R>,
    left: u64,
    done: bool,
}

impl<R: Read> AwsChunked<R> {
    fn new(inner: R) -> Self {
        AwsChunked { inner: BufReader::new(inner), left: 0, done: false }
    }

    fn line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        (&mut self.inner).take(4096).read_until(b'\n', &mut line)?;
        if !line.ends_with(b"\n") {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "aws-chunked: a chunk header does not end"));
        }
        Ok(String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_string())
    }
}

impl<R: Read> Read for AwsChunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let header = self.line()?;
            let size = header.split(';').next().unwrap_or("").trim();
            self.left = u64::from_str_radix(size, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("aws-chunked: bad chunk size {size:?}")))?;
            if self.left == 0 {
                // Trailers (x-amz-checksum-…, x-amz-trailer-signature) up to the empty line.
                while !self.line()?.is_empty() {}
                self.done = true;
                return Ok(0);
            }
        }
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "aws-chunked: the body ends inside a chunk"));
        }
        self.left -= n as u64;
        if self.left == 0 {
            let mut crlf = [0u8; 2];
            self.inner.read_exact(&mut crlf)?;
            if &crlf != b"\r\n" {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "aws-chunked: a chunk does not end with CRLF"));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn decode(codings: &[Coding], data: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        decoder(codings, Box::new(io::Cursor::new(data.to_vec()))).map_err(|e| io::Error::other(e.to_string()))?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn codings_combine_across_fields_and_unknown_ones_are_named() {
        let values: Vec<&[u8]> = vec![b"gzip", b" X-Gzip , identity,br"];
        assert_eq!(parse_codings(values).unwrap(), [Coding::Gzip, Coding::Gzip, Coding::Br]);
        assert!(matches!(parse_codings([b"gzip, compress".as_slice()]), Err(BodyError::UnknownCoding(c)) if c == "compress"));
    }

    #[test]
    fn gzip_twice_deflate_both_ways_and_aws_chunks() {
        let plain = b"PK\x03\x04 the file".repeat(50);
        let gz = |d: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(d).unwrap();
            e.finish().unwrap()
        };
        assert_eq!(decode(&[Coding::Gzip, Coding::Gzip], &gz(&gz(&plain))).unwrap(), plain);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&plain).unwrap();
        assert_eq!(decode(&[Coding::Deflate], &z.finish().unwrap()).unwrap(), plain);
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(&plain).unwrap();
        assert_eq!(decode(&[Coding::Deflate], &raw.finish().unwrap()).unwrap(), plain);

        let mut chunked = Vec::new();
        for piece in plain.chunks(300) {
            chunked.extend_from_slice(format!("{:x};chunk-signature=abc\r\n", piece.len()).as_bytes());
            chunked.extend_from_slice(piece);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0;chunk-signature=def\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n");
        assert_eq!(decode(&[Coding::AwsChunked], &chunked).unwrap(), plain);
        assert!(decode(&[Coding::AwsChunked], b"zz\r\nabc").is_err());
        assert!(decode(&[Coding::AwsChunked], b"10\r\nabc").is_err(), "a chunk cut short");
    }
}
