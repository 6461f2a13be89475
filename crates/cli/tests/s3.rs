//! An S3 `PutObject` by boto3 through `labelgate serve` (intercepted HTTPS) to moto's S3 server
//! (crates/cli/tests/s3_peer.py): boto3 sends `Content-Encoding: aws-chunked` with a trailing
//! checksum by default. The labeled corpus docx is refused (403) and never stored; the unlabeled
//! twin is stored byte-exact.

mod common;
use common::*;
use sha2::{Digest, Sha256};
use std::process::Command;

#[test]
fn boto3_put_object_with_aws_chunked_is_inspected() {
    let dir = std::env::temp_dir().join(format!("labelgate-s3-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let python = labelgate_testkit::test_python();
    let peer = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/s3_peer.py");
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
