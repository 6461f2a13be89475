//! Files inside files through `labelgate serve` on its default config, over intercepted HTTPS,
//! with curl: a labeled corpus docx (or PDF, or legacy .doc) in every archive and e-mail shape a
//! desktop makes is blocked with the inner file named, and the origin never sees it; the same
//! container around an unlabeled file arrives byte-exact. Containers are built by Python's own
//! writers and 7-Zip (crates/unpack/tests/make_containers.py).

use crate::common::*;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

static ORIGIN_HITS: AtomicUsize = AtomicUsize::new(0);

/// Uploads `file` through the proxy with curl, raw (`-T`) or as a multipart form, asking for a
/// JSON answer: (body, status).
fn upload(proxy: std::net::SocketAddr, ca_pem: &Path, url: &str, file: &Path, multipart: bool) -> (String, String) {
    let cacert = ["--cacert", ca_pem.to_str().unwrap()];
    let form = format!("file=@{}", file.display());
    let body: [&str; 2] = if multipart { ["-F", &form] } else { ["-T", file.to_str().unwrap()] };
    curl(proxy, &[&cacert[..], &body[..], &["-H", "Accept: application/json", url]].concat())
}

fn make_fixtures(dir: &Path) {
    let status = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../unpack/tests/make_containers.py"))
        .arg(dir)
        .arg(corpus("lab_caf_identity-baseline-discipline-template.docx"))
        .arg(corpus("unl_gc_pco-summary-word.docx"))
        .arg(corpus("lab_kernel-memory_legacy-word.doc"))
        .arg(corpus("lab_azfunc_perksplus.pdf"))
        .status()
        .expect("python3 runs");
    assert!(status.success());
}

#[test]
fn archives_and_mail_through_intercepted_https_on_the_default_config() {
    let dir = std::env::temp_dir().join(format!("labelgate-nested-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fixtures = dir.join("fixtures");
    make_fixtures(&fixtures);
    let (_serve, proxy, admin, ca_pem, origin) = serve_intercepting(&dir);
    let url = format!("https://{origin}/upload");
    let send = |file: &Path, multipart: bool| upload(proxy, &ca_pem, &url, file, multipart);

    let containers = [
        "lab_stored.zip",
        "lab_deflated.zip",
        "lab_zip_in_zip.zip",
        "lab_three_deep.zip",
        "lab.tar",
        "lab.tar.gz",
        "lab.tar.bz2",
        "lab.tar.xz",
        "lab.docx.gz",
        "lab.tar.zst",
        "lab.cpgz",
        "lab_stub.7z.exe",
        "lab.7z",
        "lab_base64.eml",
        "lab_rfc822.eml",
        "lab_eml_as_octets.eml",
        "lab_legacy_doc.eml",
        "lab_pdf.eml",
    ];
    for name in containers {
        let file = fixtures.join(name);
        for multipart in [false, true] {
            let (answer, code) = send(&file, multipart);
            assert_eq!(code, "403", "{name} (multipart {multipart}): {answer}");
            let json: serde_json::Value = serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{name}: {e}: {answer}"));
            let files = json["files"].as_array().cloned().unwrap_or_default();
            assert!(
                files.iter().any(|f| f["name"].as_str().is_some_and(|n| n.contains('\u{25b8}')
                    && (n.ends_with(".docx") || n.ends_with(".doc") || n.ends_with(".pdf") || n.ends_with("(gzip content)")))),
                "{name}: the block names the inner file: {answer}"
            );
        }
        let unlabeled = fixtures.join(name.replacen("lab", "unl", 1));
        if unlabeled.exists() {
            let (reply, code) = send(&unlabeled, false);
            assert_eq!(code, "200", "{}: {reply}", unlabeled.display());
            let sha: String = Sha256::digest(std::fs::read(&unlabeled).unwrap()).iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(reply, format!("stored {sha}"), "{name}: byte-exact at the origin");
            ORIGIN_HITS.fetch_add(1, Ordering::SeqCst);
        }
    }
    // Encrypted archives cannot be seen into: blocked where labeled files may not go.
    for name in ["enc_zipcrypto.zip", "enc_aes.zip", "enc_headers.7z", "enc_content.7z"] {
        let (answer, code) = send(&fixtures.join(name), false);
        assert_eq!(code, "403", "{name}: {answer}");
        assert!(answer.contains("encrypted"), "{name}: {answer}");
    }
    // Over plain HTTP too, with an origin that counts what reaches it: nothing of a blocked
    // container arrives.
    let (plain_origin, count) = crate::common::origin();
    for name in ["lab.tar.gz", "lab_rfc822.eml", "lab.7z"] {
        let (page, code) = curl(proxy, &["-T", fixtures.join(name).to_str().unwrap(), &format!("http://{plain_origin}/upload")]);
        assert_eq!(code, "403", "{name}: {page}");
    }
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 0, "the origin never sees a blocked upload");
    // The origin saw exactly the unlabeled uploads.
    let (metrics, _) = get(&format!("http://{admin}/metrics"));
    assert!(metrics.contains("labelgate_unscannable_total{reason=\"encrypted\"}"), "{metrics}");
    assert!(ORIGIN_HITS.load(Ordering::SeqCst) >= 10);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn inspect_and_policy_test_report_the_inner_files() {
    let dir = std::env::temp_dir().join(format!("labelgate-nested-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    make_fixtures(&dir);
    let out =
        Command::new(env!("CARGO_BIN_EXE_labelgate")).args(["inspect", "--json"]).arg(dir.join("lab_three_deep.zip")).output().unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["kind"], "zip");
    assert_eq!(json["labels"].as_array().map(Vec::len), Some(0), "the zip's own labels keep their meaning");
    let inner = json["inner"].as_array().unwrap();
    let docx = inner.iter().find(|f| f["kind"] == "docx").unwrap();
    assert_eq!(docx["depth"], 4);
    let path: Vec<&str> = docx["path"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert_eq!(&path[1..], ["a.tar.gz", "a.tar", "b.zip", "q3 report.docx"]);
    assert_eq!(docx["labels"][0]["id"], "f42aa342-8706-4288-bd11-ebb85995028c");

    // The config's [inspection] limits are the ones used: with max_depth = 2 the docx is out of
    // reach, the tar is where the limit is reached, and policy test blocks for nested_limit.
    let config = dir.join("shallow.toml");
    let shipped = include_str!("../../config/labelgate.toml");
    std::fs::write(&config, shipped.replace("max_depth = 5 ", "max_depth = 2 ")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_labelgate"))
        .args(["--config", config.to_str().unwrap(), "inspect", "--json"])
        .arg(dir.join("lab_three_deep.zip"))
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reasons: Vec<&str> = json["inner"].as_array().unwrap().iter().filter_map(|f| f["unscannable"].as_str()).collect();
    assert_eq!(reasons, ["nested_limit"], "{json}");
    let verdict = |config: Option<&Path>, file: &str| -> serde_json::Value {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_labelgate"));
        if let Some(c) = config {
            cmd.args(["--config", c.to_str().unwrap()]);
        }
        let out = cmd
            .args(["policy", "test", "--json", "--url", "https://drive.google.com/upload", "--state-dir"])
            .arg(dir.join("state"))
            .arg("--file")
            .arg(dir.join(file))
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
    };
    let deep = verdict(None, "lab_three_deep.zip");
    assert_eq!(deep["verdict"]["action"], "block");
    assert!(deep["verdict"]["reason"].as_str().unwrap().contains("matched"), "{deep}");
    let shallow = verdict(Some(&config), "lab_three_deep.zip");
    assert_eq!(shallow["verdict"]["action"], "block");
    assert!(shallow["verdict"]["reason"].as_str().unwrap().contains("nested_limit"), "{shallow}");
    assert_eq!(verdict(None, "unl_three_deep.zip")["verdict"]["action"], "allow");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Files hidden the ways of crates/unpack/tests/make_hidden.py (Office embeddings, PDF
/// attachments, prefixes, no-secret encryption): each labeled one is blocked with the file that
/// carries the label named, and the origin never sees it; each unlabeled twin arrives byte-exact.
#[test]
fn hidden_files_through_intercepted_https_on_the_default_config() {
    let dir = std::env::temp_dir().join(format!("labelgate-hidden-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fixtures = dir.join("fixtures");
    labelgate_testkit::make_hidden_fixtures(&fixtures);
    let (_serve, proxy, _admin, ca_pem, origin) = serve_intercepting(&dir);
    let url = format!("https://{origin}/upload");
    let send = |file: &Path, multipart: bool| upload(proxy, &ca_pem, &url, file, multipart);
    let hidden = [
        ("docx_embedded_xlsx.docx", "Microsoft_Excel_Worksheet.xlsx"),
        ("pptx_embedded_docx.pptx", "Microsoft_Word_Document.docx"),
        ("docx_oleobject_native.docx", "report.docx"),
        ("xlsx_oleobject_native.xlsx", "report.docx"),
        ("docx_altchunk.docx", "afchunk.docx"),
        ("doc_objectpool_package.doc", "Package"),
        ("doc_objectpool_native.doc", "report.docx"),
        ("doc_objectpool_storage.doc", "_1234567892"),
        ("pdf_attached_docx.pdf", "report.docx"),
        ("pdf_annot_docx.pdf", "report.docx"),
        ("pdf_portfolio.pdf", "report.docx"),
        ("pdf_attached_pdf.pdf", "report.pdf"),
        ("pdf_attached_deep.pdf", "report.docx"),
        ("pdf_owner_aes256_attached.pdf", "report.docx"),
        ("xlsx_velvet_agile.xlsx", ""),
        ("xlsx_velvet_standard.xlsx", ""),
        ("prefix1_docx.docx", ""),
        ("prefixgif_docx.docx", ""),
        ("prefix64k_docx.docx", ""),
        ("prefix64k_adjusted_docx.docx", ""),
        ("prefix1_pdf.pdf", ""),
        ("prefixgif_pdf.pdf", ""),
        ("prefix64k_pdf.pdf", ""),
        ("pdf_owner_rc4_40.pdf", ""),
        ("pdf_owner_rc4_128.pdf", ""),
        ("pdf_owner_aes128.pdf", ""),
        ("pdf_owner_aes128_objstm.pdf", ""),
        ("pdf_owner_aes256.pdf", ""),
    ];
    for (name, inner) in hidden {
        let labeled = fixtures.join(format!("lab_{name}"));
        for multipart in [false, true] {
            let (answer, code) = send(&labeled, multipart);
            assert_eq!(code, "403", "{name} (multipart {multipart}): {answer}");
            let json: serde_json::Value = serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{name}: {e}: {answer}"));
            let files = json["files"].as_array().cloned().unwrap_or_default();
            assert!(
                files
                    .iter()
                    .any(|f| f["name"].as_str().is_some_and(|n| n.ends_with(inner) && (inner.is_empty() || n.contains('\u{25b8}')))),
                "{name}: the block names {inner:?}: {answer}"
            );
        }
        let unlabeled = fixtures.join(format!("unl_{name}"));
        let (reply, code) = send(&unlabeled, false);
        assert_eq!(code, "200", "{}: {reply}", unlabeled.display());
        let sha: String = Sha256::digest(std::fs::read(&unlabeled).unwrap()).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(reply, format!("stored {sha}"), "{name}: byte-exact at the origin");
    }
    // A real password hides everything: blocked as encrypted where labeled files may not go.
    for name in ["lab_pdf_userpw_aes256.pdf", "lab_xlsx_password_agile.xlsx"] {
        let (answer, code) = send(&fixtures.join(name), false);
        assert_eq!(code, "403", "{name}: {answer}");
        assert!(answer.contains("encrypted"), "{name}: {answer}");
    }
    // Over plain HTTP with an origin that counts what reaches it: nothing of a blocked file arrives.
    let (plain_origin, count) = crate::common::origin();
    for name in ["lab_prefix64k_docx.docx", "lab_pdf_owner_aes256.pdf", "lab_xlsx_velvet_agile.xlsx", "lab_docx_oleobject_native.docx"] {
        let (page, code) = curl(proxy, &["-T", fixtures.join(name).to_str().unwrap(), &format!("http://{plain_origin}/upload")]);
        assert_eq!(code, "403", "{name}: {page}");
    }
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 0, "the origin never sees a blocked upload");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn inspect_json_names_embedded_attached_and_decrypted_files() {
    let dir = std::env::temp_dir().join(format!("labelgate-hidden-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    labelgate_testkit::make_hidden_fixtures(&dir);
    let inspect = |name: &str| -> serde_json::Value {
        let out = Command::new(env!("CARGO_BIN_EXE_labelgate")).args(["inspect", "--json"]).arg(dir.join(name)).output().unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let labeled_inner = |json: &serde_json::Value| -> Vec<(Vec<String>, String)> {
        json["inner"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["labels"].as_array().is_some_and(|l| !l.is_empty()))
            .map(|f| {
                let path = f["path"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect();
                (path, f["labels"][0]["id"].as_str().unwrap().to_string())
            })
            .collect()
    };
    let ole = inspect("lab_docx_oleobject_native.docx");
    assert_eq!(ole["kind"], "docx");
    assert_eq!(
        labeled_inner(&ole),
        [(
            vec![
                dir.join("lab_docx_oleobject_native.docx").display().to_string(),
                "word/embeddings/oleObject1.bin".into(),
                "report.docx".into()
            ],
            "f42aa342-8706-4288-bd11-ebb85995028c".to_string()
        )]
    );
    let attached = inspect("lab_pdf_portfolio.pdf");
    assert_eq!(labeled_inner(&attached)[0].0[1], "report.docx");
    // The file's own label, read through the encryption or the prefix, with a finding that says so.
    for (name, label, says) in [
        ("lab_pdf_owner_aes256.pdf", "1f8e20e6-048a-4bad-a26b-318dd1cd4d47", "empty user password"),
        ("lab_xlsx_velvet_agile.xlsx", "3d0ca00b-3f0e-465a-aac7-1a6a22fcea40", "VelvetSweatshop"),
        ("lab_prefix64k_docx.docx", "f42aa342-8706-4288-bd11-ebb85995028c", "precede the archive"),
    ] {
        let json = inspect(name);
        assert_eq!(json["labels"][0]["id"], label, "{name}: {json}");
        let findings = json["findings"].to_string();
        assert!(findings.contains(says), "{name}: {findings}");
        assert!(json["flags"].as_array().is_none_or(|f| !f.iter().any(|x| x == "encrypted")), "{name}: {json}");
    }
    let locked = inspect("lab_pdf_userpw_aes256.pdf");
    assert!(locked["flags"].as_array().unwrap().iter().any(|f| f == "encrypted"), "{locked}");
    let _ = std::fs::remove_dir_all(&dir);
}
