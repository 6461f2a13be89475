//! Never fail open, never lose a byte: when labelgate cannot hold a body for inspection — the
//! spool quota spent, a spool write failing (a test-only fault hook), no room for another upload
//! session — the answer is 503 with Retry-After, counted and audited; the origin never answers a
//! truncated body with success (hold and stream mode), and nothing passes as `oversize`.

use crate::common::*;
use std::sync::atomic::Ordering;

const SHIPPED: &str = include_str!("../../config/labelgate.toml");

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("labelgate-exhaustion-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A 1 MiB body of bytes no engine reads (spooled past a 64 KiB memory limit).
fn body(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("body.bin");
    let bytes: Vec<u8> = (0..(1u32 << 20)).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&path, bytes).unwrap();
    path
}

/// curl with the response headers: (status, headers and body).
fn upload(proxy: std::net::SocketAddr, file: &std::path::Path, url: &str) -> (String, String) {
    let out = std::process::Command::new("curl")
        .args(["-s", "-i", "-H", "Expect:", "--max-time", "20", "-x", &format!("http://{proxy}"), "-T"])
        .arg(file)
        .arg(url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text.split_whitespace().nth(1).unwrap_or("").to_string();
    (status, text)
}

fn unavailable_count(admin: std::net::SocketAddr, resource: &str) -> u64 {
    let (metrics, _) = get(&format!("http://{admin}/metrics"));
    let key = format!("labelgate_unavailable_total{{resource=\"{resource}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(key.as_str())).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

#[test]
fn a_spool_that_cannot_hold_the_body_answers_503_and_the_origin_never_completes_it() {
    for mode in ["hold", "stream"] {
        for (fault, resource) in [("write", "spool_write"), ("quota", "spool_quota")] {
            let dir = scratch(&format!("{mode}-{fault}"));
            let config = dir.join("labelgate.toml");
            let mut text = SHIPPED
                .replace("memory_limit = 16777216", "memory_limit = 65536")
                .replace(r#"mode = "hold""#, &format!(r#"mode = "{mode}""#));
            if fault == "quota" {
                // Room for one body and a half: a stalled upload holds most of it.
                text = text.replace("spool_quota = 8589934592", "spool_quota = 1600000");
            }
            std::fs::write(&config, text).unwrap();
            let env: &[(&str, &str)] = if fault == "write" { &[("LABELGATE_TEST_FAULT_SPOOL_WRITE_AFTER", "200000")] } else { &[] };
            let (serve, proxy, admin) =
                serve_with_env(&["--config", config.to_str().unwrap(), "--state-dir", dir.join("state").to_str().unwrap()], env);
            let (origin, count) = crate::common::origin();
            let _stalled = (fault == "quota").then(|| stall_upload(proxy, origin, &dir.join("state").join("spool"), 800_000));
            let (status, answer) = upload(proxy, &body(&dir), &format!("http://{origin}/upload"));
            assert_eq!(status, "503", "{mode}/{fault}: {answer}");
            assert!(answer.to_ascii_lowercase().contains("retry-after: 5"), "{mode}/{fault}: {answer}");
            std::thread::sleep(std::time::Duration::from_millis(300));
            assert_eq!(count.load(Ordering::SeqCst), 0, "{mode}/{fault}: the origin never received the whole body");
            assert_eq!(unavailable_count(admin, resource), 1, "{mode}/{fault}");
            let records = serve.audit_until(|r| r.iter().any(|r| r["action"] == "unavailable"));
            assert!(
                records.iter().any(|r| r["action"] == "unavailable" && r["reason"].as_str().unwrap_or("").starts_with(resource)),
                "{records:?}"
            );
            assert!(!records.iter().any(|r| r["action"] == "allow"), "{mode}/{fault}: never passed: {records:?}");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// An upload that sends `bytes` of a larger body and stalls, holding that much spool; returns
/// once the spool holds it.
fn stall_upload(proxy: std::net::SocketAddr, origin: std::net::SocketAddr, spool: &std::path::Path, bytes: usize) -> std::net::TcpStream {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(proxy).unwrap();
    write!(stream, "PUT http://{origin}/stalled HTTP/1.1\r\nHost: {origin}\r\nContent-Length: {}\r\n\r\n", bytes * 2).unwrap();
    stream.write_all(&vec![9u8; bytes]).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let held: u64 = std::fs::read_dir(spool).map(|d| d.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum()).unwrap_or(0);
        if held >= bytes as u64 - 65536 {
            return stream;
        }
        assert!(std::time::Instant::now() < deadline, "the stalled upload never reached the spool ({held} bytes)");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn no_room_for_another_upload_session_answers_503() {
    let dir = scratch("sessions");
    let config = dir.join("labelgate.toml");
    std::fs::write(&config, SHIPPED.replace("max_upload_sessions = 1024", "max_upload_sessions = 1")).unwrap();
    let (_serve, proxy, admin) = serve_with(&["--config", config.to_str().unwrap(), "--state-dir", dir.join("state").to_str().unwrap()]);
    let (origin, _) = crate::common::origin();
    let piece = dir.join("piece.bin");
    std::fs::write(&piece, vec![7u8; 1000]).unwrap();
    assert_eq!(put_piece(proxy, origin, &piece, "first.bin"), "200", "the one session the table holds");
    assert_eq!(put_piece(proxy, origin, &piece, "second.bin"), "503", "no room for a second: retry later, not incomplete");
    assert_eq!(unavailable_count(admin, "upload_sessions"), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_upload_that_waits_too_long_for_its_inspection_answers_503() {
    // One inspection at a time, each made to take 6 s (test-only fault hook); the second upload,
    // sent 1.5 s later, may wait 1 s for its turn: 503, never a pass.
    let dir = scratch("inspections");
    let (_serve, proxy, admin) = serve_one_inspection_at_a_time(&dir);
    let (origin, count) = crate::common::origin();
    let small = dir.join("small.txt");
    std::fs::write(&small, b"hello").unwrap();
    let first = {
        let (small, url) = (small.clone(), format!("http://{origin}/first"));
        std::thread::spawn(move || upload(proxy, &small, &url).0)
    };
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (status, answer) = upload(proxy, &small, &format!("http://{origin}/second"));
    assert_eq!(status, "503", "{answer}");
    assert_eq!(first.join().unwrap(), "200", "the first one had its turn");
    assert_eq!(count.load(Ordering::SeqCst), 1, "only the inspected upload reached the origin");
    assert_eq!(unavailable_count(admin, "inspections"), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_piece_that_waits_too_long_for_its_reading_answers_503() {
    // Pieces of upload sessions take inspection turns too.
    let dir = scratch("piece-turns");
    let (_serve, proxy, admin) = serve_one_inspection_at_a_time(&dir);
    let (origin, _) = crate::common::origin();
    let piece = dir.join("piece.bin");
    std::fs::write(&piece, vec![7u8; 1000]).unwrap();
    let piece_to = move |name: &str| put_piece(proxy, origin, &piece, name);
    let first = {
        let piece_to = piece_to.clone();
        std::thread::spawn(move || piece_to("first.bin"))
    };
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(piece_to("second.bin"), "503");
    assert_eq!(first.join().unwrap(), "200");
    assert_eq!(unavailable_count(admin, "inspections"), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A `Content-Range` piece (bytes 0-999 of 5000) of `piece` to `/dav/NAME`; the status.
fn put_piece(proxy: std::net::SocketAddr, origin: std::net::SocketAddr, piece: &std::path::Path, name: &str) -> String {
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-x",
            &format!("http://{proxy}"),
            "-H",
            "Content-Range: bytes 0-999/5000",
            "-T",
        ])
        .arg(piece)
        .arg(format!("http://{origin}/dav/{name}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// `serve` inspecting one upload at a time, each made to take 6 s (test-only fault hook), and
/// letting another wait 1 s for its turn.
fn serve_one_inspection_at_a_time(dir: &std::path::Path) -> (Serve, std::net::SocketAddr, std::net::SocketAddr) {
    let config = dir.join("labelgate.toml");
    std::fs::write(
        &config,
        SHIPPED
            .replace("max_concurrent_inspections = 64", "max_concurrent_inspections = 1")
            .replace("inspection_queue_secs = 10", "inspection_queue_secs = 1"),
    )
    .unwrap();
    serve_with_env(
        &["--config", config.to_str().unwrap(), "--state-dir", dir.join("state").to_str().unwrap()],
        &[("LABELGATE_TEST_FAULT_INSPECTION_DELAY_MS", "6000")],
    )
}

#[test]
fn big_bodies_are_read_whole_and_only_past_max_inspect_are_oversize_which_the_shipped_rule_blocks() {
    // The shipped config scaled down: max_body 1 MiB, max_inspect 8 MiB. A 5 MiB docx whose
    // label comes after its media streams past max_body and is still read whole: 403, the
    // unlabeled twin arrives byte-exact. A 9 MiB body is oversize: the shipped rule blocks it
    // towards an unsanctioned destination.
    let dir = scratch("big");
    let config = dir.join("labelgate.toml");
    std::fs::write(
        &config,
        SHIPPED.replace("max_body = 268435456", "max_body = 1048576").replace("max_inspect = 4294967296", "max_inspect = 8388608"),
    )
    .unwrap();
    let (serve, proxy, _admin) = serve_with(&["--config", config.to_str().unwrap(), "--state-dir", dir.join("state").to_str().unwrap()]);
    let (origin, count) = crate::common::origin();
    for labeled in [true, false] {
        let mut entries = vec![labelgate_testkit::Entry::new("word/media/video.mp4", labelgate_testkit::filler(5 << 20, 3)).stored()];
        let custom = labeled.then(|| labelgate_testkit::custom_xml(&[(labelgate_testkit::GUID_A, labelgate_testkit::SITE_OTHER, "true")]));
        entries.extend(labelgate_testkit::docx(custom, None));
        let file = dir.join(format!("padded-{labeled}.docx"));
        std::fs::write(&file, labelgate_testkit::zip(&entries)).unwrap();
        let (status, answer) = upload(proxy, &file, &format!("http://{origin}/padded-{labeled}.docx"));
        assert_eq!(status, if labeled { "403" } else { "200" }, "{answer}");
    }
    assert_eq!(count.load(Ordering::SeqCst), 1, "only the unlabeled twin arrived whole");
    let huge = dir.join("huge.bin");
    std::fs::write(&huge, labelgate_testkit::filler(9 << 20, 5)).unwrap();
    let (status, answer) = upload(proxy, &huge, &format!("http://{origin}/huge.bin"));
    assert_eq!(status, "403", "{answer}");
    let records = serve.audit_until(|r| r.len() >= 3);
    assert!(records[0]["files"][0]["labels"][0]["id"] == labelgate_testkit::GUID_A, "{records:?}");
    assert!(records[1]["files"][0]["unscannable"].is_null(), "read whole: {records:?}");
    assert_eq!(records[2]["files"][0]["unscannable"], "oversize", "{records:?}");
    assert_eq!(records[2]["rule"], "Labeled files stay in sanctioned apps", "{records:?}");
    assert_eq!(count.load(Ordering::SeqCst), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_part_the_spool_cannot_keep_answers_503_not_incomplete() {
    // An Azure block held in memory whose copy into the session store finds the spool spent by
    // a stalled upload: 503 (the client retries the block), never `incomplete`.
    let dir = scratch("part-quota");
    let config = dir.join("labelgate.toml");
    std::fs::write(
        &config,
        SHIPPED.replace("memory_limit = 16777216", "memory_limit = 1200000").replace("spool_quota = 8589934592", "spool_quota = 1600000"),
    )
    .unwrap();
    let (serve, proxy, admin) = serve_with(&["--config", config.to_str().unwrap(), "--state-dir", dir.join("state").to_str().unwrap()]);
    let (origin, count) = crate::common::origin();
    // Past memory_limit, so on disk: 1.3 of the spool's 1.6 MB.
    let _stalled = stall_upload(proxy, origin, &dir.join("state").join("spool"), 1_300_000);
    let block = dir.join("block.bin");
    std::fs::write(&block, labelgate_testkit::filler(1 << 20, 9)).unwrap();
    let (status, answer) = upload(proxy, &block, &format!("http://{origin}/container/big.bin?comp=block&blockid=QUFB"));
    assert_eq!(status, "503", "{answer}");
    assert_eq!(unavailable_count(admin, "spool_quota"), 1);
    assert_eq!(count.load(Ordering::SeqCst), 0);
    let records = serve.audit_until(|r| r.iter().any(|r| r["action"] == "unavailable"));
    assert!(!records.iter().any(|r| r["session"]["incomplete"].is_string()), "never incomplete: {records:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
