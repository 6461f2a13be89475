//! Fuzz target for files inside archives (zip members, tar, gzip, bzip2, xz, 7z, zstd, cpio, ar,
//! lzma). The first byte
//! picks which archive signature the rest is forced to start with, so mutations stay inside one
//! reader; seeds: fuzz/seed.sh (containers built by crates/unpack/tests/make_containers.py).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "unpack_common.rs"]
mod unpack_common;

const MAGICS: &[&[u8]] = &[b"PK\x03\x04", b"\x1f\x8b\x08", b"BZh9", b"\xfd7zXZ\x00", b"7z\xbc\xaf\x27\x1c", b"", b"\x28\xb5\x2f\xfd", b"070707", b"070701", b"!<arch>\n", b"\x5d\x00\x00\x80\x00"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let magic = MAGICS[pick as usize % MAGICS.len()];
    unpack_common::check(&unpack_common::with_magic(rest, magic));
});
