//! Fuzz target for the body walkers (labelgate-body): JSON strings, form values, text bodies,
//! content codings, multipart preambles/epilogues, and the transfer encodings (quoted-printable,
//! base64) decoded whole and as they are read. The first byte picks the
//! walker. Every walk must end (bounded), never panic, and agree whatever the read sizes are.
#![no_main]
use labelgate_body::{coding, form_candidates, json_candidates, text_candidates, Limits};
use libfuzzer_sys::fuzz_target;
use std::io::{BufReader, Read};

/// Reads a few bytes at a time: walkers must not depend on where reads end.
struct Trickle<'a>(&'a [u8], usize);
impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.1.min(self.0.len()).min(buf.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let limits = Limits { min_encoded_len: 16, max_decoded_bytes: 1 << 20, max_candidates: 64, max_depth: 64 };
    let summary = |found: &[labelgate_body::Candidate]| -> Vec<(String, Result<Vec<u8>, String>)> {
        found.iter().map(|c| (c.name.clone(), c.data.as_ref().map(|d| d.clone()).map_err(|e| e.to_string()))).collect()
    };
    match pick % 5 {
        0 => {
            let (whole, e1) = json_candidates(&mut std::io::Cursor::new(rest), &limits);
            let step = (pick as usize % 7) + 1;
            let (pieces, e2) = json_candidates(&mut BufReader::with_capacity(step + 1, Trickle(rest, step)), &limits);
            assert_eq!(summary(&whole), summary(&pieces), "read sizes changed the answer");
            assert_eq!(e1.is_some(), e2.is_some());
            assert!(whole.len() <= 64 + 1);
        }
        1 => {
            let found = form_candidates(rest, &limits);
            assert!(found.len() <= 64);
        }
        2 => {
            let _ = text_candidates(rest, &limits);
            let _ = labelgate_body::decode_encoded(rest);
        }
        4 => {
            // Multipart outside its parts (a boundary from the first bytes) and quoted-printable.
            let (boundary, body) = rest.split_at(rest.len().min(1 + (pick as usize % 12)));
            let (pre, epi) = labelgate_body::multipart::outside_parts(Box::new(std::io::Cursor::new(body.to_vec())), boundary, 1 << 20);
            assert!(pre.len() <= body.len() && epi.len() <= body.len());
            // Transfer encodings decoded as they are read agree with the whole-value decoders,
            // wherever the reads end.
            let whole = labelgate_unpack::quoted_printable(body);
            let mut streamed = Vec::new();
            let step = (pick as usize % 5) + 1;
            labelgate_unpack::transfer::QuotedPrintableReader::new(Trickle(body, step)).read_to_end(&mut streamed).unwrap();
            assert_eq!(whole, streamed, "quoted-printable: read sizes changed the answer");
            let mut one = Vec::new();
            let mut other = Vec::new();
            let a = labelgate_unpack::transfer::Base64Reader::new(body).read_to_end(&mut one);
            let b = labelgate_unpack::transfer::Base64Reader::new(Trickle(body, step)).read_to_end(&mut other);
            assert_eq!(a.is_ok(), b.is_ok());
            if a.is_ok() {
                assert_eq!(one, other, "base64: read sizes changed the answer");
                assert!(one.len() <= body.len());
            }
        }
        _ => {
            // A coding list from the first bytes, then the rest decoded (bounded output).
            let names = ["gzip", "deflate", "br", "zstd", "aws-chunked"];
            let list: Vec<&[u8]> = rest.iter().take(3).map(|b| names[*b as usize % names.len()].as_bytes()).collect();
            let body = rest.get(3..).unwrap_or(&[]).to_vec();
            if let Ok(codings) = coding::parse_codings(list) {
                if let Ok(reader) = coding::decoder(&codings, Box::new(std::io::Cursor::new(body))) {
                    let mut out = Vec::new();
                    let _ = reader.take(4 << 20).read_to_end(&mut out);
                }
            }
        }
    }
});
