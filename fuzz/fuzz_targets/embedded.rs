//! Fuzz target for files hidden in documents: Office embeddings (OLE Packager streams,
//! ObjectPool storages, default-password packages in compound files; embedded parts in OOXML),
//! PDF attachments (name trees, annotations, portfolios, encrypted with an empty user password)
//! and packages or PDFs behind a prefix. The first byte picks the signature the rest keeps
//! (0 compound file, 1 PDF, 2 ZIP, 3 as is: prefixes); seeds: fuzz/seed.sh (files built by
//! crates/unpack/tests/make_hidden.py).
#![no_main]
use labelgate_extract::{Inspector, Limits, SliceInput};
use libfuzzer_sys::fuzz_target;

#[path = "unpack_common.rs"]
mod unpack_common;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let bytes = match pick % 4 {
        0 => unpack_common::with_magic(rest, b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1"),
        1 => unpack_common::with_magic(rest, b"%PDF-"),
        2 => unpack_common::with_magic(rest, b"PK\x03\x04"),
        _ => rest.to_vec(),
    };
    unpack_common::check(&bytes);
    let limits = Limits { max_part_bytes: 1 << 20, max_buffered_bytes: 8 << 20, max_decrypted_bytes: 8 << 20, ..Limits::default() };
    // The push interface agrees with the slice, whatever the start (prefixes are found from the end).
    let whole = labelgate_extract::extract_with(&bytes, &limits).map(|e| (e.kind, e.labels)).map_err(|e| e.to_string());
    let mut pushed = Inspector::new(limits.clone());
    for piece in bytes.chunks(4093) {
        let _ = pushed.feed(piece);
    }
    let fed = pushed.finish().map(|e| (e.kind, e.labels)).map_err(|e| e.to_string());
    assert_eq!(whole, fed, "slice and push interface disagree");
    // The attachment and embedding readers on their own, bounded.
    if let Ok(found) = labelgate_extract::pdf_attachments(&mut SliceInput::new(&bytes), &limits, 1 << 20, 64, 4 << 20) {
        assert!(found.len() <= 64);
        assert!(found.iter().all(|a| a.data.as_ref().map_or(true, |d| d.len() <= 1 << 20)));
    }
    let _ = labelgate_extract::cfb_embedded_documents(&mut SliceInput::new(&bytes), &limits, 64);
    let _ = labelgate_extract::default_password_package_of(&mut SliceInput::new(&bytes), &limits);
});
