//! Evasions found by red-teaming the engine as a determined insider would: each is a file that
//! unzip, 7-Zip, GNU tar or a mail reader still opens to the labeled file. Every one must show
//! the label (or a reason policy blocks on), never pass as clean.

use labelgate_extract::{FileKind, Flag, Limits};
use labelgate_testkit::*;
use labelgate_unpack::{inspect_slice, Inspection, UnpackLimits};

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
    let tar = {
        let mut t = vec![0u8; 512];
        t[..5].copy_from_slice(b"a.txt");
        t[100..107].copy_from_slice(b"0000644");
        t[124..135].copy_from_slice(b"00000000005");
        t[156] = b'0';
        t[257..263].copy_from_slice(b"ustar\0");
        t[263..265].copy_from_slice(b"00");
        t[148..156].copy_from_slice(b"        ");
        let sum: u32 = t.iter().map(|&b| b as u32).sum();
        t[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        t.extend(b"hello");
        t.resize(1024, 0);
        t.extend(vec![0u8; 1024]);
        t
    };
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
    let mut tar = Vec::new();
    {
        let doc = labeled_docx();
        let mut t = vec![0u8; 512];
        t[..6].copy_from_slice(b"a.docx");
        t[100..107].copy_from_slice(b"0000644");
        t[124..135].copy_from_slice(format!("{:011o}", doc.len()).as_bytes());
        t[156] = b'0';
        t[257..263].copy_from_slice(b"ustar\0");
        t[263..265].copy_from_slice(b"00");
        t[148..156].copy_from_slice(b"        ");
        let sum: u32 = t.iter().map(|&b| b as u32).sum();
        t[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        tar.extend(t);
        tar.extend(&doc);
        tar.resize(tar.len().div_ceil(512) * 512 + 1024, 0);
    }
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
        let mut t = vec![0u8; 512];
        t[..6].copy_from_slice(b"a.docx");
        t[100..107].copy_from_slice(b"0000644");
        t[124..135].copy_from_slice(format!("{:011o}", doc.len()).as_bytes());
        t[156] = typeflag;
        t[257..263].copy_from_slice(b"ustar\0");
        t[263..265].copy_from_slice(b"00");
        t[148..156].copy_from_slice(b"        ");
        let sum: u32 = t.iter().map(|&b| b as u32).sum();
        t[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        t.extend(&doc);
        t.resize(t.len().div_ceil(512) * 512 + 1024, 0);
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
