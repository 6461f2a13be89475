//! WebSocket uploads through `labelgate serve` on its default config, with real libraries on both
//! ends (crates/cli/tests/ws_peer.py: the `websockets` server as the origin over TLS, the
//! `websocket-client` library as the client, through labelgate as its HTTP proxy, intercepted):
//! a labeled corpus docx as one binary message, as base64 text and inside a JSON text message is
//! refused with close code 1008 and never reaches the origin; the unlabeled twin is relayed and
//! the origin's reply names its exact bytes.

use crate::common::*;
use sha2::{Digest, Sha256};
use std::process::Command;

#[test]
fn websocket_messages_are_inspected_before_they_are_relayed() {
    let dir = std::env::temp_dir().join(format!("labelgate-ws-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let python = labelgate_testkit::test_python();
    let peer = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/e2e/ws_peer.py");
    let (_origin, port) = python_origin(peer, &dir);
    let (_serve, proxy, _admin, ca) = serve_trusting(&dir, &dir.join("origin-ca.pem"));

    let send = |mode: &str, file: &str| -> serde_json::Value {
        let out = Command::new(&python)
            .args([peer, "client", &proxy.port().to_string(), ca.to_str().unwrap(), &format!("wss://127.0.0.1:{port}/chat"), mode])
            .arg(corpus(file))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{mode} {file}: {e}: {text} {}", String::from_utf8_lossy(&out.stderr)))
    };
    for mode in ["binary", "base64-text", "json-text"] {
        let blocked = send(mode, "lab_caf_identity-baseline-discipline-template.docx");
        assert_eq!(blocked["close_code"], 1008, "{mode}: {blocked}");
        assert!(blocked["reply"].is_null(), "{mode}: nothing came back from the origin: {blocked}");
        let allowed = send(mode, "unl_gc_pco-summary-word.docx");
        assert!(allowed["close_code"].is_null(), "{mode}: {allowed}");
        if mode == "binary" {
            let sha: String =
                Sha256::digest(std::fs::read(corpus("unl_gc_pco-summary-word.docx")).unwrap()).iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(allowed["reply"], format!("stored {sha}"), "byte-exact at the origin");
        } else {
            assert!(allowed["reply"].as_str().is_some_and(|r| r.starts_with("stored ")), "{mode}: {allowed}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
