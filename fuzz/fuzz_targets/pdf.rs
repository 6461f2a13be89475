//! Fuzz target for the pdf container parser (seeds: see fuzz/README.md).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

const MAGIC: Option<&[u8]> = Some(b"%PDF-");

fuzz_target!(|data: &[u8]| {
    match MAGIC {
        Some(magic) => common::check(&common::with_magic(data, magic)),
        None => common::check(data),
    }
});
