//! Evasions found by red-teaming the engine as a determined insider would: each is a file that
//! unzip, 7-Zip, GNU tar or a mail reader still opens to the labeled file. Every one must show
//! the label (or a reason policy blocks on), never pass as clean.

use labelgate_extract::{FileKind, Flag, Limits};
use labelgate_testkit::*;
use labelgate_unpack::{inspect_slice, Inspection, UnpackLimits};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn labeled_docx() -> Vec<u8> {
    zip(&docx(Some(custom_xml(&[(GUID_A, SITE_MS, "true")])), None))
}

fn clean_docx() -> Vec<u8> {
    zip(&docx(None, None))
}

fn inspect(bytes: &[u8]) -> Inspection {
    inspect_slice(bytes, &Limits::default(), &UnpackLimits::default())
}

/// Labeled somewhere, or a reason the default policy blocks on (ambiguous, malformed, a limit).
fn caught(i: &Inspection) -> bool {
    let flagged = |flags: &std::collections::BTreeSet<Flag>| flags.contains(&Flag::Ambiguous);
    i.all_labels().count() > 0
        || i.outer.as_ref().map(|e| flagged(&e.flags)).unwrap_or(true)
        || i.container.is_some()
        || i.inner.iter().any(|f| flagged(&f.flags) || f.error.as_ref().is_some_and(|e| e.reason() != "encrypted"))
}

fn labels(i: &Inspection) -> usize {
    i.all_labels().count()
}

/// `prefix` + a ZIP whose offsets count from the start of the whole file (as a writer appending
/// to an existing file produces).
fn appended_zip(prefix: &[u8], entries: &[Entry]) -> Vec<u8> {
    let mut z = zip(entries);
    let shift = prefix.len() as u32;
    let eocd = z.len() - 22;
    let cd_size = u32::from_le_bytes(z[eocd + 12..eocd + 16].try_into().unwrap()) as usize;
    let cd_offset = u32::from_le_bytes(z[eocd + 16..eocd + 20].try_into().unwrap()) as usize;
    let mut at = cd_offset;
    while at < cd_offset + cd_size {
        let local = u32::from_le_bytes(z[at + 42..at + 46].try_into().unwrap()) + shift;
        z[at + 42..at + 46].copy_from_slice(&local.to_le_bytes());
        let n = u16::from_le_bytes([z[at + 28], z[at + 29]]) as usize;
        let x = u16::from_le_bytes([z[at + 30], z[at + 31]]) as usize;
        let c = u16::from_le_bytes([z[at + 32], z[at + 33]]) as usize;
        at += 46 + n + x + c;
    }
    let cd = (cd_offset as u32 + shift).to_le_bytes();
    z[eocd + 16..eocd + 20].copy_from_slice(&cd);
    let mut out = prefix.to_vec();
    out.extend(z);
    out
}

#[test]
fn zips_behind_other_bytes_are_opened() {
    let member = [Entry::new("a.docx", labeled_docx())];
    let stub = b"#!/bin/sh\necho self-extracting\nexit 0\n".to_vec();
    let png = {
        let mut p = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        p.extend(filler(3000, 3));
        p
    };
    let legacy_doc = compound(&[("/WordDocument", &[0u8; 4096][..])]);
    let tar = [tar_header("a.txt", 5, b'0'), padded(b"hello"), vec![0u8; 1024]].concat();
    let eml = b"From: a@example.com\r\nTo: b@example.com\r\n\r\nhello\r\n".to_vec();
    for (what, prefix) in [
        ("one newline", b"\n".to_vec()),
        ("a script stub", stub),
        ("a PNG", png),
        ("a legacy .doc", legacy_doc),
        ("a tar", tar),
        ("an e-mail", eml),
    ] {
        for (how, bytes) in [
            ("offsets from the file start", appended_zip(&prefix, &member)),
            ("offsets from the archive", build_zip(&member, &ZipOptions { prefix: prefix.clone(), ..ZipOptions::default() })),
        ] {
            let i = inspect(&bytes);
            assert!(labels(&i) >= 1, "a labeled docx in a ZIP behind {what} ({how}): {:?}", i.inner);
        }
    }
}

#[test]
fn a_zip_inside_a_tar_or_msg_is_not_read_twice() {
    // The docx is the tar's last member: its end record is in the tar's tail, but inside the
    // tar's own data. It is one member, read once, with no stray "data before the archive".
    let doc = labeled_docx();
    let tar = [tar_header("a.docx", doc.len(), b'0'), padded(&doc), vec![0u8; 1024]].concat();
    let i = inspect(&tar);
    let paths: Vec<&Vec<String>> = i.inner.iter().map(|f| &f.path).collect();
    assert_eq!(paths, [&vec!["a.docx".to_string()]]);
    assert!(i.container.is_none() && i.inner[0].error.is_none());
}

#[test]
fn local_headers_the_directory_does_not_list_are_read_and_ambiguous() {
    // 7-Zip extracts a.docx although only b.docx is in the central directory.
    let hidden = zip(&[Entry::new("a.docx", labeled_docx())]);
    let eocd = hidden.len() - 22;
    let cd_offset = u32::from_le_bytes(hidden[eocd + 16..eocd + 20].try_into().unwrap()) as usize;
    let bytes = appended_zip(&hidden[..cd_offset], &[Entry::new("b.docx", clean_docx())]);
    let i = inspect(&bytes);
    assert!(i.outer.as_ref().unwrap().has_flag(Flag::Ambiguous));
    assert!(labels(&i) >= 1, "{:?}", i.inner);
    // Two whole archives one after the other: the first is read too.
    let mut two = zip(&[Entry::new("a.docx", labeled_docx())]);
    two = appended_zip(&two, &[Entry::new("b.docx", clean_docx())]);
    assert!(labels(&inspect(&two)) >= 1);
    // An empty central directory in front of local entries.
    let mut empty_cd = hidden[..cd_offset].to_vec();
    let mut end = hidden[eocd..].to_vec();
    end[8..16].copy_from_slice(&[0; 8]);
    end[16..20].copy_from_slice(&(cd_offset as u32).to_le_bytes());
    empty_cd.extend(end);
    assert!(caught(&inspect(&empty_cd)));
}

#[test]
fn tar_members_with_data_are_read_whatever_their_type() {
    let doc = labeled_docx();
    for typeflag in [b'Z', b'2', b'5', b'6', b'x' + 1, 0x01, 0xff] {
        let t = [tar_header("a.docx", doc.len(), typeflag), padded(&doc), vec![0u8; 1024]].concat();
        assert_eq!(labels(&inspect(&t)), 1, "type flag {typeflag:#x}");
    }
}

fn mail(headers: &str, body_headers: &str, attachment: &[u8]) -> Vec<u8> {
    let b64 = {
        use base64::Engine;
        let s = base64::engine::general_purpose::STANDARD.encode(attachment);
        s.as_bytes().chunks(76).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("\r\n")
    };
    format!("{headers}\r\n--BND\r\nContent-Type: text/plain\r\n\r\nhello\r\n--BND\r\n{body_headers}\r\n\r\n{b64}\r\n--BND--\r\n")
        .into_bytes()
}

#[test]
fn mail_that_readers_open_however_its_headers_start() {
    let doc = labeled_docx();
    let part = "Content-Type: application/octet-stream; name=\"a.docx\"\r\nContent-Transfer-Encoding: base64";
    let mime = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"BND\"\r\n";
    let cases = [
        format!("X-Foo: bar\r\n{mime}"),
        format!("Importance: high\r\n{mime}"),
        format!("X-Long: {}\r\n{mime}", "a".repeat(8000)),
        format!("{}{mime}", (0..300).map(|n| format!("X-H{n}: v\r\n")).collect::<String>()),
        format!("\u{feff}From: a@b\r\n{mime}"),
        format!("Microsoft Mail Internet Headers Version 2.0\r\nFrom: a@b\r\n{mime}"),
        "Content-Type: multipart/mixed; boundary=\"BND\" (a comment)\r\n".to_string(),
    ];
    for headers in &cases {
        let bytes = mail(headers, part, &doc);
        let i = inspect(&bytes);
        assert_eq!(i.outer.as_ref().unwrap().kind, FileKind::Eml, "{}", &headers[..headers.len().min(60)]);
        assert_eq!(labels(&i), 1, "{}", &headers[..headers.len().min(60)]);
    }
}

#[test]
fn mail_parts_readers_decode_despite_their_structure() {
    let doc = labeled_docx();
    let mime = "From: a@b\r\nTo: c@d\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"BND\"\r\n";
    for part in [
        "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: BASE64 (sent as is)",
        "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: x-unknown",
        "Content-Type: application/octet-stream\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64",
        "Content-Type: text/plain; charset=utf-8",
    ] {
        assert_eq!(labels(&inspect(&mail(mime, part, &doc))), 1, "{part}");
    }
    // An attachment after the close delimiter (the epilogue).
    let mut bytes = mail(mime, "Content-Type: text/plain", b"x");
    bytes.extend(mail("", "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64", &doc));
    assert_eq!(labels(&inspect(&bytes)), 1);
    // uuencoded, as a transfer encoding and inside a text body.
    let uu = {
        let mut out = b"begin 644 a.docx\n".to_vec();
        for chunk in doc.chunks(45) {
            out.push(b' ' + chunk.len() as u8);
            for g in chunk.chunks(3) {
                let mut b = [0u8; 3];
                b[..g.len()].copy_from_slice(g);
                let v = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
                for shift in [18, 12, 6, 0] {
                    let c = ((v >> shift) & 0x3f) as u8;
                    out.push(if c == 0 { b'`' } else { b' ' + c });
                }
            }
            out.push(b'\n');
        }
        out.extend(b"`\nend\n");
        out
    };
    let text =
        [format!("{mime}\r\n--BND\r\nContent-Type: text/plain\r\n\r\nsee below\r\n").into_bytes(), uu.clone(), b"\r\n--BND--\r\n".to_vec()]
            .concat();
    assert_eq!(labels(&inspect(&text)), 1, "uuencoded in a text body");
    let cte = [
        format!("{mime}\r\n--BND\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n").into_bytes(),
        uu,
        b"\r\n--BND--\r\n".to_vec(),
    ]
    .concat();
    assert_eq!(labels(&inspect(&cte)), 1, "x-uuencode");
    // A multipart body encoded as a whole.
    let inner = mail("", "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64", &doc);
    let encoded = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&inner)
    };
    let whole = format!("{mime}\r\n--BND\r\nContent-Type: multipart/mixed; boundary=\"BND\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n--BND--\r\n");
    assert_eq!(labels(&inspect(whole.as_bytes())), 1, "an encoded multipart");
}

fn padded(data: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    v.resize(data.len().div_ceil(512) * 512, 0);
    v
}

fn pax_record(key: &str, value: &str) -> String {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while format!("{len}{body}").len() != len {
        len += 1;
    }
    format!("{len}{body}")
}

#[test]
fn tar_headers_that_hide_a_member_are_refused_or_read() {
    let doc = labeled_docx();
    let member = [tar_header("secret.docx", doc.len(), b'0'), padded(&doc)].concat();
    let cover = |declared: usize| [tar_header("cover.txt", declared, b'0'), vec![b'A'; 512]].concat();
    let end = vec![0u8; 1024];
    // A Solaris 'X' extended header saying the cover is 512 bytes (its header says it swallows
    // the docx): GNU tar and 7-Zip read the 'X' size.
    for (typeflag, value) in
        [(b'X', "512".to_string()), (b'x', format!("+{}", 512 + member.len())), (b'x', format!(" {}", 512 + member.len()))]
    {
        let px = pax_record("size", &value);
        let header_size = if value == "512" { 512 + member.len() } else { 512 };
        let bytes =
            [tar_header("PaxHeaders/c", px.len(), typeflag), padded(px.as_bytes()), cover(header_size), member.clone(), end.clone()]
                .concat();
        assert!(caught(&inspect(&bytes)), "pax size {value:?} in a {} header", typeflag as char);
    }
    // A global header setting a size for every later member.
    let px = pax_record("size", "512");
    let global =
        [tar_header("PaxHeaders/g", px.len(), b'g'), padded(px.as_bytes()), cover(512 + member.len()), member.clone(), end.clone()]
            .concat();
    assert!(caught(&inspect(&global)));
    // A header with the ustar magic and a wrong checksum (GNU tar skips to the next header).
    let mut bad = cover(512 + member.len());
    bad[148..156].copy_from_slice(b"0000000\0");
    assert!(caught(&inspect(&[bad, member, end].concat())));
}

#[test]
fn tnef_files_under_another_type_word_or_only_in_mapi_properties() {
    let doc = labeled_docx();
    let start = || {
        let mut out = 0x223e_9f78u32.to_le_bytes().to_vec();
        out.extend_from_slice(&0u16.to_le_bytes());
        tnef_attribute(&mut out, 2, 0x0006_9002, &[1, 0, 0, 0]);
        out
    };
    let mut typed = start();
    tnef_attribute(&mut typed, 2, 0x0001_800f, &doc); // attAttachData with a byte-string type word
    assert_eq!(labels(&inspect(&typed)), 1);
    let mut mapi = start();
    let mut props = 1u32.to_le_bytes().to_vec();
    props.extend_from_slice(&0x3701_0102u32.to_le_bytes());
    props.extend_from_slice(&1u32.to_le_bytes());
    props.extend_from_slice(&(doc.len() as u32).to_le_bytes());
    props.extend_from_slice(&doc);
    tnef_attribute(&mut mapi, 2, 0x0006_9005, &props);
    assert_eq!(labels(&inspect(&mapi)), 1);
}

#[test]
fn a_compressed_member_the_directory_says_is_empty_is_ambiguous() {
    // funzip and Java's ZipInputStream inflate it from the local entry.
    let mut entry = Entry::new("s.docx", labeled_docx());
    entry.data_descriptor = true;
    let mut z = zip(&[entry, Entry::new("a.txt", b"hello".repeat(100)).stored()]);
    let eocd = z.len() - 22;
    let cd = u32::from_le_bytes(z[eocd + 16..eocd + 20].try_into().unwrap()) as usize;
    z[cd + 20..cd + 28].copy_from_slice(&[0; 8]); // compressed and uncompressed sizes
    let i = inspect(&z);
    assert!(i.outer.as_ref().unwrap().has_flag(Flag::Ambiguous), "{:?}", i.outer);
}

#[test]
fn more_wrappings_the_second_round_found() {
    let doc = labeled_docx();
    // zstd behind a skippable frame.
    let mut zst = 0x184D_2A50u32.to_le_bytes().to_vec();
    zst.extend_from_slice(&16u32.to_le_bytes());
    zst.extend_from_slice(&[b'S'; 16]);
    let status = std::process::Command::new("zstd")
        .args(["-q", "-c", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn();
    let mut child = status.expect("zstd runs (scripts/test.sh installs it)");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &doc).unwrap();
    drop(child.stdin.take());
    zst.extend(child.wait_with_output().unwrap().stdout);
    assert_eq!(labels(&inspect(&zst)), 1, "a skippable frame first");
    // A docx in an OLE stream of a compound file (7-Zip lists and extracts it).
    let ole = compound(&[("/Package", &doc[..]), ("/\u{1}CompObj", &[0u8; 64][..])]);
    assert_eq!(labels(&inspect(&ole)), 1, "a Package stream");
    // Mail with bare CRs before the boundaries and 12-character base64 lines.
    let b64 = {
        use base64::Engine;
        let s = base64::engine::general_purpose::STANDARD.encode(&doc);
        s.as_bytes().chunks(12).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("\r\n")
    };
    let cr = format!("From: a@b\r\nTo: c@d\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nhi\r--b1\r\nContent-Type: application/octet-stream; name=\"s.docx\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r--b1--\r\n");
    assert_eq!(labels(&inspect(cr.as_bytes())), 1, "bare CR delimiters");
    // Two boundary parameters, plain and RFC 2231: readers pick differently.
    let two = mail(
        "From: a@b\r\nTo: c@d\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary*=''fake; boundary=\"BND\"\r\n",
        "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64",
        &doc,
    );
    assert!(labels(&inspect(&two)) >= 1, "two boundary parameters");
}

/// Runs a Python snippet that writes a file to argv[1]; the file's bytes.
fn python_built(snippet: &str) -> Vec<u8> {
    let path = std::env::temp_dir().join(format!("labelgate-evasion-{}-{}", std::process::id(), snippet.len()));
    let status = std::process::Command::new("python3").args(["-c", snippet]).arg(&path).status().expect("python3 runs");
    assert!(status.success());
    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    bytes
}

#[test]
fn declared_dictionaries_are_checked_in_every_xz_stream_and_block() {
    // Two xz streams; the second block header's LZMA2 dictionary patched to 4 GiB (header CRC
    // recomputed), as an attacker would: refused before any decoder allocates it.
    let bytes = python_built(
        "import lzma, sys, zlib, struct\n\
a = lzma.compress(b'a' * 1000)\n\
b = bytearray(lzma.compress(b'b' * 1000))\n\
size = (b[12] + 1) * 4\n\
h = b[12:12 + size]\n\
i = h.find(bytes([0x21, 0x01]))\n\
h[i + 2] = 40\n\
struct.pack_into('<I', h, size - 4, zlib.crc32(bytes(h[:size - 4])))\n\
b[12:12 + size] = h\n\
open(sys.argv[1], 'wb').write(a + bytes(b))\n",
    );
    let (i, peak) = peak_heap_during(|| inspect(&bytes));
    assert!(matches!(i.container, Some(labelgate_unpack::Problem::NestedLimit { limit: "max_inner_bytes", .. })), "{:?}", i.container);
    assert!(peak < 16 * 1024 * 1024, "peak {peak}");
}

#[test]
fn many_entries_sharing_one_local_header_with_a_long_name_cost_one_check() {
    // 5,000 directory entries, one local header with a 65,535-byte name.
    let name = vec![1u8; 65_535];
    let mut local = b"PK\x03\x04".to_vec();
    local.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    local.extend_from_slice(&(name.len() as u16).to_le_bytes());
    local.extend_from_slice(&0u16.to_le_bytes());
    local.extend_from_slice(&name);
    let mut cd = Vec::new();
    for _ in 0..5000 {
        cd.extend_from_slice(b"PK\x01\x02");
        cd.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        cd.extend_from_slice(&(name.len() as u16).to_le_bytes());
        cd.extend_from_slice(&[0; 12]);
        cd.extend_from_slice(&0u32.to_le_bytes());
        cd.extend_from_slice(&name);
    }
    let mut bytes = local.clone();
    let cd_at = bytes.len() as u32;
    bytes.extend_from_slice(&cd);
    bytes.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    bytes.extend_from_slice(&5000u16.to_le_bytes());
    bytes.extend_from_slice(&5000u16.to_le_bytes());
    bytes.extend_from_slice(&(cd.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&cd_at.to_le_bytes());
    bytes.extend_from_slice(&0u16.to_le_bytes());
    let limits = Limits { max_central_directory_bytes: 1 << 30, ..Limits::default() };
    let started = std::time::Instant::now();
    let i = inspect_slice(&bytes, &limits, &UnpackLimits::default());
    assert!(i.outer.as_ref().unwrap().has_flag(Flag::Ambiguous));
    assert!(i.outer.as_ref().unwrap().findings.iter().all(|f| f.len() < 2000), "findings stay short");
    // A guard against a hang in CI, not a timing assertion on the result.
    assert!(started.elapsed().as_secs() < 60);
}

#[test]
fn a_prefixed_zip_inside_a_tar_or_a_tar_gz_is_found_while_the_member_is_drained() {
    // `unzip` opens the member once saved: a script stub, then a ZIP holding the labeled docx.
    let mut member = b"#!/bin/sh\nexit 0\n".to_vec();
    member.extend(vec![b'#'; 5000]);
    let sfx = appended_zip(&member, &[Entry::new("a.docx", labeled_docx())]);
    let tar = [tar_header("setup.sh", sfx.len(), b'0'), padded(&sfx), vec![0u8; 1024]].concat();
    assert!(labels(&inspect(&tar)) >= 1, "in a tar");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    assert!(labels(&inspect(&gz.finish().unwrap())) >= 1, "in a tar.gz");
}
