//! An S3 `PutObject` by boto3 through `labelgate serve` (intercepted HTTPS) to moto's S3 server
//! (crates/cli/tests/s3_peer.py): boto3 sends `Content-Encoding: aws-chunked` with a trailing
//! checksum by default. The labeled corpus docx is refused (403) and never stored; the unlabeled
//! twin is stored byte-exact.

use crate::common::*;
use sha2::{Digest, Sha256};
use std::process::Command;

#[test]
fn boto3_put_object_with_aws_chunked_is_inspected() {
    let dir = std::env::temp_dir().join(format!("labelgate-s3-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let python = labelgate_testkit::test_python();
    let peer = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/e2e/s3_peer.py");
    let (_origin, port) = python_origin(peer, &dir);
    let (_serve, proxy, _admin, ca) = serve_trusting(&dir, &dir.join("origin-ca.pem"));

    let put = |key: &str, file: &str| -> serde_json::Value {
        let out = Command::new(&python)
            .args([peer, "put", &proxy.port().to_string(), ca.to_str().unwrap(), &port.to_string(), key])
            .arg(corpus(file))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{file}: {e}: {text} {}", String::from_utf8_lossy(&out.stderr)))
    };
    let blocked = put("q3.docx", "lab_caf_identity-baseline-discipline-template.docx");
    assert_eq!(blocked["content_encoding"], "aws-chunked", "boto3 sent aws-chunked: {blocked}");
    assert_eq!(blocked["ok"], false, "{blocked}");
    assert_eq!(blocked["status"], 403, "{blocked}");
    let stored = put("minutes.docx", "unl_gc_pco-summary-word.docx");
    assert_eq!(stored["ok"], true, "{stored}");
    let sha: String =
        Sha256::digest(std::fs::read(corpus("unl_gc_pco-summary-word.docx")).unwrap()).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(stored["stored_sha256"], sha, "stored byte-exact: {stored}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn boto3_multipart_uploads_are_decided_whole_at_completion() {
    // boto3's managed transfer: 5 MiB parts, three at a time (in any order), each part
    // aws-chunked; CompleteMultipartUpload is held while the assembled file is inspected.
    let dir = std::env::temp_dir().join(format!("labelgate-s3-multipart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let python = labelgate_testkit::test_python();
    let peer = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/e2e/s3_peer.py");
    let pieces_peer = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/e2e/pieces_peer.py");
    let (_origin, port) = python_origin(peer, &dir);
    let (serve, proxy, _admin, ca) = serve_trusting(&dir, &dir.join("origin-ca.pem"));
    let pad = |src: &str, dst: &str| {
        let out = Command::new(&python).args([pieces_peer, "pad"]).arg(corpus(src)).arg(dir.join(dst)).arg("12000000").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::read(dir.join(dst)).unwrap()
    };
    let labeled = pad("lab_caf_identity-baseline-discipline-template.docx", "q3.docx");
    let unlabeled = pad("unl_gc_pco-summary-word.docx", "minutes.docx");
    let run = |command: &str, key: &str, arg: &str| -> serde_json::Value {
        let out = Command::new(&python)
            .args([peer, command, &proxy.port().to_string(), ca.to_str().unwrap(), &port.to_string(), key, arg])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.trim())
            .unwrap_or_else(|e| panic!("{command} {key}: {e}: {text} {}", String::from_utf8_lossy(&out.stderr)))
    };
    let sha = |b: &[u8]| -> String { Sha256::digest(b).iter().map(|b| format!("{b:02x}")).collect() };

    let blocked = run("multipart", "q3.docx", dir.join("q3.docx").to_str().unwrap());
    assert_eq!(blocked["ok"], false, "{blocked}");
    assert!(blocked["error"].as_str().unwrap().contains("403") || blocked["error"].as_str().unwrap().contains("Forbidden"), "{blocked}");
    assert_eq!(blocked["parts"], 3, "three parts were sent: {blocked}");
    let stored = run("multipart", "minutes.docx", dir.join("minutes.docx").to_str().unwrap());
    assert_eq!(stored["ok"], true, "{stored}");
    assert_eq!(stored["stored_sha256"], sha(&unlabeled), "assembled byte-exact: {stored}");
    // A part copied from another object never passed through the proxy: incomplete, blocked by
    // the shipped policy for an unsanctioned destination.
    let copied = run("copypart", "copy.docx", "minutes.docx");
    assert_eq!(copied["ok"], false, "{copied}");
    assert!(copied["error"].as_str().unwrap().contains("403") || copied["error"].as_str().unwrap().contains("Forbidden"), "{copied}");

    let records = serve.audit_until(|r| r.iter().filter(|r| r.get("session").is_some()).count() >= 3);
    let sessions: Vec<&serde_json::Value> = records.iter().filter(|r| r["session"]["protocol"] == "s3_multipart").collect();
    assert_eq!(sessions.len(), 3, "{records:#?}");
    assert_eq!((sessions[0]["action"].as_str(), sessions[0]["files"][0]["sha256"].as_str()), (Some("block"), Some(sha(&labeled).as_str())));
    assert_eq!(sessions[1]["action"], "allow");
    assert_eq!(sessions[2]["files"][0]["unscannable"], "incomplete", "{:?}", sessions[2]);
    let _ = std::fs::remove_dir_all(&dir);
}
