//! Fuzz target for the upload-session grammars (labelgate-pieces): `Content-Range`, request
//! heads of every protocol, the answers that name a session (JSON `uploadUrl`, S3 `UploadId`,
//! `Location`), CompleteMultipartUpload and Azure BlockList documents, and the coverage of pieces. The first byte
//! picks the grammar. Nothing may panic; coverage must stay sorted, disjoint and exact.
#![no_main]
use labelgate_pieces::{azure_block_list, complete_multipart_parts, content_range, recognise, Coverage, Recognised, RequestHead, MAX_PARTS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    match pick % 4 {
        0 => {
            if let Some(labelgate_pieces::ContentRange::Bytes { first, last, total }) = content_range(&text) {
                assert!(first <= last && total.is_none_or(|t| last < t));
            }
        }
        1 => {
            // A request head: lines of `name: value`, the first line the path and query.
            let mut lines = text.lines();
            let target = lines.next().unwrap_or("/");
            let (path, query) = target.split_once('?').map_or((target, None), |(p, q)| (p, Some(q)));
            let mut headers = http::HeaderMap::new();
            for line in lines.take(32) {
                if let Some((k, v)) = line.split_once(':') {
                    if let (Ok(k), Ok(v)) = (http::HeaderName::from_bytes(k.trim().as_bytes()), http::HeaderValue::from_str(v.trim())) {
                        headers.append(k, v);
                    }
                }
            }
            for method in [http::Method::POST, http::Method::PUT, http::Method::PATCH, http::Method::DELETE] {
                let head = RequestHead { method: &method, authority: "up.example:443", path, query, headers: &headers, has_body: pick & 0x80 != 0 };
                if let Some(Recognised::Start(start)) = recognise(&head) {
                    // The answer: the same bytes as headers and as a body.
                    let _ = start.session(200, &headers, rest);
                    let _ = start.session(201, &http::HeaderMap::new(), rest);
                }
            }
        }
        2 => {
            if let Ok(parts) = complete_multipart_parts(rest) {
                assert!(!parts.is_empty() && parts.len() <= MAX_PARTS as usize);
            }
            if let Ok(blocks) = azure_block_list(rest) {
                assert!(blocks.iter().all(|b| !b.id.is_empty()));
            }
        }
        _ => {
            let mut coverage = Coverage::new();
            let mut bytes = vec![false; 4096];
            for pair in rest.chunks_exact(4) {
                let a = u16::from_le_bytes([pair[0], pair[1]]) as u64 % 4096;
                let b = u16::from_le_bytes([pair[2], pair[3]]) as u64 % 4096;
                let (a, b) = (a.min(b), a.max(b));
                coverage.insert(a, b);
                bytes[a as usize..b as usize].iter_mut().for_each(|x| *x = true);
            }
            assert_eq!(coverage.len(), bytes.iter().filter(|x| **x).count() as u64);
            assert!(coverage.ranges().windows(2).all(|w| w[0].1 < w[1].0), "sorted, disjoint, not touching");
            let first_gap = bytes.iter().position(|x| !x).unwrap_or(4096) as u64;
            assert_eq!(coverage.is_complete(first_gap.max(1)), first_gap >= 1);
        }
    }
});
