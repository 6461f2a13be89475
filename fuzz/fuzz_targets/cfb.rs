//! Fuzz target for the cfb container parser (seeds: see fuzz/README.md).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

const MAGIC: Option<&[u8]> = Some(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1");

fuzz_target!(|data: &[u8]| {
    match MAGIC {
        Some(magic) => common::check(&common::with_magic(data, magic)),
        None => common::check(data),
    }
});
