//! Fuzz target for files inside e-mail: .eml MIME parts (multipart, base64, quoted-printable,
//! message/rfc822), .msg attachments and embedded messages, and TNEF winmail.dat attachments
//! (the first byte picks which).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "unpack_common.rs"]
mod unpack_common;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    match pick % 3 {
        0 => unpack_common::check(&unpack_common::with_magic(rest, b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1")),
        1 => unpack_common::check(rest),
        _ => unpack_common::check(&unpack_common::with_magic(rest, b"\x78\x9f\x3e\x22")),
    }
});
