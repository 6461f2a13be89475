//! A real headless Chromium (Debian `chromium`) through `labelgate serve`: it opens a local
//! HTTPS page whose form uploads a file, with labelgate's CA trusted through its SPKI hash.
//! A labeled file gets the block page; an unlabeled one reaches the origin's success page.

use crate::common::*;
use std::process::Command;

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A page that puts `file` into a file input and submits the form, as a user would.
fn upload_page(name: &str, file: &[u8]) -> String {
    format!(
        r#"<!doctype html><html><body><form id="f" method="post" action="/upload-html" enctype="multipart/form-data"><input type="file" name="file" id="i"></form>
<script>
const bytes = Uint8Array.from(atob("{}"), c => c.charCodeAt(0));
const dt = new DataTransfer();
dt.items.add(new File([bytes], "{name}"));
document.getElementById("i").files = dt.files;
document.getElementById("f").submit();
</script></body></html>"#,
        base64(file)
    )
}

#[test]
fn chromium_sees_the_block_page_for_labeled_files_and_success_for_clean_ones() {
    let dir = std::env::temp_dir().join(format!("labelgate-chromium-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let labeled = std::fs::read(corpus("lab_caf_identity-baseline-discipline-template.docx")).unwrap();
    let clean = std::fs::read(corpus("unl_markitdown_test.pdf")).unwrap();
    let (origin, origin_ca) = https_origin_with_pages(
        &dir,
        vec![("/labeled".into(), upload_page("q3-forecast.docx", &labeled)), ("/clean".into(), upload_page("readme.pdf", &clean))],
    );
    let state = dir.join("state");
    let spki = Command::new(env!("CARGO_BIN_EXE_labelgate")).args(["ca", "export", "--spki", "--state-dir"]).arg(&state).output().unwrap();
    let spki = String::from_utf8(spki.stdout).unwrap().trim().to_string();
    let (_serve, proxy, _) = serve_with(&["--state-dir", state.to_str().unwrap(), "--upstream-ca", origin_ca.to_str().unwrap()]);

    let browse = |path: &str| -> String {
        let profile = dir.join(format!("profile{}", path.replace('/', "-")));
        let out = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--proxy-server=http://{proxy}"))
            // Chromium sends loopback destinations direct unless told otherwise.
            .arg("--proxy-bypass-list=<-loopback>")
            .arg(format!("--ignore-certificate-errors-spki-list={spki}"))
            .args(["--virtual-time-budget=15000", "--dump-dom"])
            .arg(format!("https://{origin}{path}"))
            .output()
            .expect("chromium runs (Debian package chromium; scripts/test.sh installs it)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    let blocked = browse("/labeled");
    assert!(blocked.contains("Upload blocked"), "Chromium should show the block page, got: {blocked}");
    assert!(blocked.contains("q3-forecast.docx"));
    let ok = browse("/clean");
    assert!(ok.contains("UPLOAD-OK stored "), "Chromium should reach the origin, got: {ok}");
    let _ = std::fs::remove_dir_all(&dir);
}
