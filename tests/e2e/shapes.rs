//! Bodies in every shape, through `labelgate serve` on its default config over intercepted HTTPS
//! with curl: a labeled corpus file sent the ways real web apps send files (JSON base64 and
//! `data:` URLs, forms, multipart text fields and transfer encodings, preambles, nested and
//! related multiparts, stacked content codings, any method, query strings and headers) is
//! blocked; its unlabeled twin arrives byte-exact.

use crate::common::*;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

const LABELED: &str = "lab_caf_identity-baseline-discipline-template.docx";
const UNLABELED: &str = "unl_gc_pco-summary-word.docx";

fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// `data` through a compressor's command line (installed by scripts/test.sh).
fn by_tool(tool: &str, args: &[&str], data: &[u8]) -> Vec<u8> {
    let mut child = std::process::Command::new(tool)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool}: {e} (scripts/test.sh installs it)"));
    let mut stdin = child.stdin.take().unwrap();
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{tool} failed");
    out.stdout
}

/// A body shape: its extra curl arguments (headers, method) and its bytes, built around `file`.
struct Shape {
    name: &'static str,
    args: Vec<String>,
    body: Vec<u8>,
}

fn shapes(file: &[u8]) -> Vec<Shape> {
    let b64 = B64.encode(file);
    let h = |v: &str| vec!["-H".to_string(), v.to_string()];
    let boundary = "----lgb0undary";
    let multipart = |parts: &[(&str, &[u8])], preamble: &[u8], epilogue: &[u8]| -> Vec<u8> {
        let mut out = preamble.to_vec();
        for (headers, data) in parts {
            out.extend_from_slice(format!("--{boundary}\r\n{headers}\r\n\r\n").as_bytes());
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        out.extend_from_slice(epilogue);
        out
    };
    let form_data = |extra: &str| [h(&format!("Content-Type: multipart/{extra}; boundary={boundary}"))].concat();
    let wrapped: String = b64.as_bytes().chunks(76).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join("\r\n");
    let inner_boundary = "inner-b";
    let nested = {
        let mut inner = format!(
            "--{inner_boundary}\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=q3.docx\r\n\r\n"
        )
        .into_bytes();
        inner.extend_from_slice(file);
        inner.extend_from_slice(format!("\r\n--{inner_boundary}--\r\n").as_bytes());
        inner
    };
    let pct: String = file.iter().map(|b| format!("%{b:02X}")).collect();
    vec![
        Shape {
            name: "JSON base64 (Graph contentBytes)",
            args: h("Content-Type: application/json"),
            body: format!(r#"{{"name":"q3.docx","contentBytes":"{}"}}"#, b64.replace('/', "\\/")).into_bytes(),
        },
        Shape {
            name: "JSON data: URL",
            args: h("Content-Type: application/json"),
            body: format!(r#"{{"messages":[{{"content":[{{"type":"file","file_data":"data:application/octet-stream;base64,{b64}"}}]}}]}}"#)
                .into_bytes(),
        },
        Shape { name: "text/plain base64", args: h("Content-Type: text/plain"), body: wrapped.clone().into_bytes() },
        Shape {
            name: "JSON in UTF-16 with a byte order mark",
            args: h("Content-Type: application/json"),
            body: [&[0xFF, 0xFE][..], &format!(r#"{{"f":"{b64}"}}"#).encode_utf16().flat_map(u16::to_le_bytes).collect::<Vec<u8>>()].concat(),
        },
        Shape {
            name: "JSON in UTF-16BE named by its charset",
            args: h("Content-Type: application/json; charset=utf-16be"),
            body: format!(r#"{{"f":"{b64}"}}"#).encode_utf16().flat_map(u16::to_be_bytes).collect(),
        },
        Shape {
            name: "JSON byte array (a Node Buffer's toJSON)",
            args: h("Content-Type: application/json"),
            body: format!(r#"{{"type":"Buffer","data":[{}]}}"#, file.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(",")).into_bytes(),
        },
        Shape {
            name: "a zlib stream sent without a declared coding",
            args: h("Content-Type: application/octet-stream"),
            body: {
                let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
                z.write_all(file).unwrap();
                z.finish().unwrap()
            },
        },
        Shape {
            name: "multipart part with its own Content-Encoding: deflate",
            args: form_data("form-data"),
            body: {
                let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
                z.write_all(file).unwrap();
                let deflated = z.finish().unwrap();
                multipart(
                    &[("Content-Disposition: form-data; name=\"f\"; filename=\"q3.bin\"\r\nContent-Type: application/octet-stream\r\nContent-Encoding: deflate", &deflated)],
                    b"",
                    b"",
                )
            },
        },
        Shape { name: "JSON hex string", args: h("Content-Type: application/json"), body: format!(r#"{{"hex":"{}"}}"#, file.iter().map(|b| format!("{b:02x}")).collect::<String>()).into_bytes() },
        Shape {
            name: "JSON base64 of base64",
            args: h("Content-Type: application/json"),
            body: format!(r#"{{"f":"{}"}}"#, B64.encode(b64.as_bytes())).into_bytes(),
        },
        Shape {
            name: "XML element content (EWS CreateAttachment)",
            args: h("Content-Type: text/xml; charset=utf-8"),
            body: format!(
                r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><soap:Body><CreateAttachment><Attachments><t:FileAttachment><t:Name>q3.docx</t:Name><t:Content>{wrapped}</t:Content></t:FileAttachment></Attachments></CreateAttachment></soap:Body></soap:Envelope>"#
            )
            .into_bytes(),
        },
        Shape {
            name: "JSON with an escape a strict parser refuses, before the file",
            args: h("Content-Type: application/json"),
            body: format!(r#"{{"note":"bad \q escape","raw":"{}"}}"#, URL_SAFE_NO_PAD.encode(file)).into_bytes(),
        },
        Shape {
            name: "form-urlencoded, percent-encoded",
            args: h("Content-Type: application/x-www-form-urlencoded"),
            body: format!("title=q3&doc={pct}").into_bytes(),
        },
        Shape {
            name: "multipart text field with base64",
            args: form_data("form-data"),
            body: multipart(&[("Content-Disposition: form-data; name=\"note\"", b64.as_bytes())], b"", b""),
        },
        Shape {
            name: "multipart file part with Content-Transfer-Encoding: base64",
            args: form_data("form-data"),
            body: multipart(
                &[(
                    "Content-Disposition: form-data; name=\"f\"; filename=\"q3.bin\"\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64",
                    wrapped.as_bytes(),
                )],
                b"",
                b"",
            ),
        },
        Shape {
            name: "multipart preamble",
            args: form_data("form-data"),
            body: multipart(&[("Content-Disposition: form-data; name=\"a\"", b"x")], &[file, b"\r\n"].concat(), b""),
        },
        Shape {
            name: "multipart epilogue",
            args: form_data("form-data"),
            body: multipart(&[("Content-Disposition: form-data; name=\"a\"", b"x")], b"", file),
        },
        Shape {
            name: "nested multipart/mixed",
            args: form_data("form-data"),
            body: multipart(
                &[(&format!("Content-Disposition: form-data; name=\"files\"\r\nContent-Type: multipart/mixed; boundary={inner_boundary}"), &nested)],
                b"",
                b"",
            ),
        },
        Shape {
            name: "multipart/related (Drive)",
            args: form_data("related"),
            body: multipart(
                &[("Content-Type: application/json; charset=UTF-8", br#"{"name":"q3.docx"}"#), ("Content-Type: application/octet-stream", file)],
                b"",
                b"",
            ),
        },
        Shape { name: "br (the brotli command line)", args: h("Content-Encoding: br"), body: by_tool("brotli", &["-c"], file) },
        Shape {
            name: "zstd, two frames (the zstd command line)",
            args: h("Content-Encoding: zstd"),
            body: {
                let half = file.len() / 2;
                [by_tool("zstd", &["-q", "-c"], &file[..half]), by_tool("zstd", &["-q", "-c"], &file[half..])].concat()
            },
        },
        Shape {
            name: "raw deflate, then gzip, in one field",
            args: h("Content-Encoding: deflate, gzip"),
            body: {
                let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
                raw.write_all(file).unwrap();
                gzip(&raw.finish().unwrap())
            },
        },
        Shape {
            name: "gzip under two Content-Encoding fields",
            args: [h("Content-Encoding: gzip"), h("Content-Encoding: gzip")].concat(),
            body: gzip(&gzip(file)),
        },
    ]
}

fn send(proxy: std::net::SocketAddr, ca: &Path, url: &str, method: &str, args: &[String], body: &Path, http2: bool) -> (String, String) {
    let mut all: Vec<String> = vec!["--cacert".into(), ca.display().to_string(), "-X".into(), method.into()];
    if http2 {
        all.push("--http2".into());
    }
    all.extend(args.iter().cloned());
    all.extend(["--data-binary".into(), format!("@{}", body.display()), "-H".into(), "Accept: application/json".into(), url.into()]);
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    curl(proxy, &refs)
}

#[test]
fn files_in_every_body_shape_and_method_are_inspected() {
    let dir = std::env::temp_dir().join(format!("labelgate-shapes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (_serve, proxy, _admin, ca, origin) = serve_intercepting(&dir);
    let url = format!("https://{origin}/upload");
    let labeled = std::fs::read(corpus(LABELED)).unwrap();
    let unlabeled = std::fs::read(corpus(UNLABELED)).unwrap();
    for (lab, unl) in shapes(&labeled).into_iter().zip(shapes(&unlabeled)) {
        let lab_path = dir.join("lab.body");
        let unl_path = dir.join("unl.body");
        std::fs::write(&lab_path, &lab.body).unwrap();
        std::fs::write(&unl_path, &unl.body).unwrap();
        for http2 in [false, true] {
            let (answer, code) = send(proxy, &ca, &url, "POST", &lab.args, &lab_path, http2);
            assert_eq!(code, "403", "{} (h2 {http2}): {answer}", lab.name);
            let (reply, code) = send(proxy, &ca, &url, "POST", &unl.args, &unl_path, http2);
            assert_eq!(code, "200", "{} unlabeled (h2 {http2}): {reply}", unl.name);
            assert_eq!(reply, format!("stored {}", sha(&unl.body)), "{}: byte-exact at the origin", unl.name);
        }
    }
    // Over plain HTTP too, to an origin that counts what reaches it: no labeled body arrives.
    let (plain, count) = crate::common::origin();
    let plain_url = format!("http://{plain}/upload");
    let mut allowed = 0;
    for (lab, unl) in shapes(&labeled).into_iter().zip(shapes(&unlabeled)) {
        let lab_path = dir.join("lab.body");
        let unl_path = dir.join("unl.body");
        std::fs::write(&lab_path, &lab.body).unwrap();
        std::fs::write(&unl_path, &unl.body).unwrap();
        let (answer, code) = send(proxy, &ca, &plain_url, "POST", &lab.args, &lab_path, false);
        assert_eq!(code, "403", "{} over plain HTTP: {answer}", lab.name);
        let (reply, code) = send(proxy, &ca, &plain_url, "POST", &unl.args, &unl_path, false);
        assert_eq!((code.as_str(), reply), ("200", format!("stored {}", sha(&unl.body))), "{} over plain HTTP", unl.name);
        allowed += 1;
    }
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), allowed, "only the unlabeled bodies reached the origin");
    // Any method carries a body, in any case, over HTTP/1.1 and h2.
    let lab_path = dir.join("lab.docx");
    let unl_path = dir.join("unl.docx");
    std::fs::write(&lab_path, &labeled).unwrap();
    std::fs::write(&unl_path, &unlabeled).unwrap();
    for method in ["GET", "DELETE", "OPTIONS", "PROPFIND", "MKCOL", "LOCK", "put", "post", "patch"] {
        for http2 in [false, true] {
            let (answer, code) = send(proxy, &ca, &url, method, &[], &lab_path, http2);
            assert_eq!(code, "403", "{method} (h2 {http2}): {answer}");
        }
        let (reply, code) = send(proxy, &ca, &url, method, &[], &unl_path, false);
        assert_eq!((code.as_str(), reply), ("200", format!("stored {}", sha(&unlabeled))), "{method}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_small_file_in_a_query_string_or_a_header_is_inspected() {
    let dir = std::env::temp_dir().join(format!("labelgate-shapes-q-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (_serve, proxy, _admin, ca, origin) = serve_intercepting(&dir);
    let xlsx = std::fs::read(corpus("lab_markitdown_test_labelinfo-only.xlsx")).unwrap();
    let encoded = URL_SAFE_NO_PAD.encode(&xlsx);
    let cacert = ["--cacert", ca.to_str().unwrap()];
    let header = format!("X-Attachment: {encoded}");
    for version in ["--http1.1", "--http2"] {
        let (answer, code) = curl(proxy, &[&cacert[..], &[version, &format!("https://{origin}/view?doc={encoded}")]].concat());
        assert_eq!(code, "403", "query ({version}): {answer}");
        let (answer, code) = curl(proxy, &[&cacert[..], &[version, "-H", &header, &format!("https://{origin}/view")]].concat());
        assert_eq!(code, "403", "header ({version}): {answer}");
    }
    // Long values that carry no file pass (a JWT-like cookie, a long query).
    let jwt = URL_SAFE_NO_PAD.encode("{\"sub\":\"alice\",\"scope\":\"files.read\"}".repeat(20));
    let (_, code) = curl(
        proxy,
        &[&cacert[..], &["-H", &format!("Cookie: session={jwt}"), &format!("https://{origin}/view?q={}", "a".repeat(400))]].concat(),
    );
    assert_eq!(code, "404", "no file: the origin answers (its 404 for GET pages)");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn transfer_codings_other_than_chunked_are_refused() {
    use std::io::Read;
    let (serve, proxy, _admin) = serve_with(&[]);
    let _serve = serve;
    let (origin, count) = crate::common::origin();
    let body = gzip(b"hello");
    let mut chunked = format!("{:x}\r\n", body.len()).into_bytes();
    chunked.extend_from_slice(&body);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let mut s = std::net::TcpStream::connect(proxy).unwrap();
    let head =
        format!("POST http://{origin}/upload HTTP/1.1\r\nHost: {origin}\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&chunked).unwrap();
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 501"), "{reply}");
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 0, "never forwarded");
}

#[test]
fn a_body_that_decodes_past_max_body_is_still_read_from_its_start() {
    // A small gzip body that inflates past max_body (a docx, then zeros): what was decoded is
    // inspected, and the upload is refused rather than passed as `oversize`.
    let dir = std::env::temp_dir().join(format!("labelgate-shapes-bomb-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let shipped = include_str!("../../config/labelgate.toml");
    let config = dir.join("small.toml");
    std::fs::write(&config, shipped.replace("max_body = 268435456", "max_body = 1048576")).unwrap();
    let (_serve, proxy, _admin) = serve_with(&["--config", config.to_str().unwrap(), "--state-dir", dir.join("state").to_str().unwrap()]);
    let (origin, count) = crate::common::origin();
    let mut bomb_plain = std::fs::read(corpus(LABELED)).unwrap();
    bomb_plain.extend(std::iter::repeat_n(0u8, 3 << 20));
    let body = dir.join("bomb.gz");
    std::fs::write(&body, gzip(&bomb_plain)).unwrap();
    let (answer, code) = curl(
        proxy,
        &["-H", "Content-Encoding: gzip", "--data-binary", &format!("@{}", body.display()), &format!("http://{origin}/upload")],
    );
    assert_eq!(code, "403", "{answer}");
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
