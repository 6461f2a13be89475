//! The admin pages in a real headless Chromium, driven over W3C WebDriver (Debian's
//! `chromium-driver`; a small client here, spoken with curl), against `labelgate serve` wired to
//! the fake identity platform and Graph.
//!
//! MIP Labels: sign in (a wrong token refused), add an account (a field error inline first),
//! watch it go Retrieval Pending → Active after Reload, expand it (the sublabel under its parent,
//! a label named like markup shown as text), search, download the CSV (byte-equal to the API's,
//! read with `fetch()`), duplicate, set a wrong secret and see Validation Failed with its AADSTS
//! cause, delete; every control reachable by Tab with a visible focus; no horizontal scroll at
//! 640×480; a read token sees no write action. Cloud Application Tags: filter by tag, add a tag
//! that a policy rule then matches in `labelgate policy test`, a change orphaning a rule refused
//! with the rule named. Screenshots of both pages go to `target/` (scripts/ui-screenshots.sh
//! copies them into the README's images).

use crate::common::{policy_test_labeled, AdminApi, Kill};
use labelgate_fakegraph::{App, AppSecret, FakeGraph, FakeLabel, Fault, FaultAction, Route, Tenant, World};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TENANT: &str = "11111111-1111-4111-8111-111111111111";
const APP: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const SECRET: &str = "ui-test-secret-4c1e";
const PARENT: &str = "8cf764ac-ef2b-4787-8ccd-0a8a65e7bafa";
const CHILD: &str = "a20cbae4-0c05-448c-b342-cb6c618d0957";
const OTHER: &str = "f42aa342-8706-4288-bd11-ebb85995028c";
const MARKUP: &str = "<img src=x onerror=alert(1)>";
const READ_TOKEN: &str = "auditor-token-5b9e0c7d11f2a3";
const RULE: &str = "Labeled files never go to unsanctioned apps";

fn debug() -> bool {
    std::env::var_os("UI_DEBUG").is_some()
}

/// A W3C WebDriver session, spoken with curl.
struct Driver {
    base: String,
    session: String,
}

impl Driver {
    fn call(base: &str, method: &str, path: &str, body: Option<Value>) -> Value {
        if debug() {
            eprintln!("webdriver {method} {path}");
        }
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "--max-time", "60", "-X", method, "-H", "Content-Type: application/json"]);
        if let Some(b) = body {
            cmd.args(["--data-binary", &b.to_string()]);
        }
        let out = cmd.arg(format!("{base}{path}")).output().expect("curl runs");
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let v = Driver::call(&self.base, method, &format!("/session/{}{path}", self.session), body);
        assert!(v["value"]["error"].is_null(), "webdriver {method} {path}: {v}");
        v["value"].clone()
    }

    fn js(&self, script: &str) -> Value {
        self.cmd("POST", "/execute/sync", Some(json!({"script": script, "args": []})))
    }

    /// Runs `script` with `done` (the callback) in scope; its argument is the answer.
    fn js_async(&self, script: &str) -> Value {
        let wrapped = format!("const done = arguments[arguments.length - 1]; {script}");
        self.cmd("POST", "/execute/async", Some(json!({"script": wrapped, "args": []})))
    }

    fn element(&self, css: &str) -> String {
        let v = self.cmd("POST", "/element", Some(json!({"using": "css selector", "value": css})));
        v["element-6066-11e4-a52e-4f735466cecf"].as_str().unwrap_or_else(|| panic!("no element {css}: {v}")).to_string()
    }

    /// Clicks the element `css` finds. The page re-renders after each change (its tables are
    /// rebuilt from the API's answer), so an element found just before may be replaced before
    /// the click lands: found again and clicked again, never a failure by chance.
    fn click(&self, css: &str) {
        self.click_found(css, || {});
    }

    /// Like [`Driver::click`], running `mark` (which sets `css` up) before each attempt.
    fn click_found(&self, css: &str, mark: impl Fn()) {
        if debug() {
            eprintln!("click {css}");
        }
        for _ in 0..20 {
            mark();
            let e = self.element(css);
            let v = Driver::call(&self.base, "POST", &format!("/session/{}/element/{e}/click", self.session), Some(json!({})));
            match v["value"]["error"].as_str() {
                None => return,
                Some("stale element reference") => std::thread::sleep(Duration::from_millis(50)),
                Some(_) => panic!("click {css}: {v}"),
            }
        }
        panic!("click {css}: the element kept being replaced");
    }

    /// Clicks the button whose text is `text` within the element `within`.
    fn click_button(&self, within: &str, text: &str) {
        self.click_found("[data-click='1']", || {
            let marked = self.js(&format!(
                "const b = [...document.querySelectorAll({within:?} + ' button')].find((b) => b.textContent === {text:?} && !b.hidden);\
                 document.querySelectorAll('[data-click]').forEach((x) => x.removeAttribute('data-click'));\
                 if (!b) return false; b.setAttribute('data-click', '1'); return true;"
            ));
            assert_eq!(marked, Value::Bool(true), "no button {text:?} in {within}: {}", self.text());
        });
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css);
        self.cmd("POST", &format!("/element/{e}/clear"), Some(json!({})));
        if !text.is_empty() {
            self.cmd("POST", &format!("/element/{e}/value"), Some(json!({"text": text})));
        }
    }

    fn accept_alert(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = Driver::call(&self.base, "POST", &format!("/session/{}/alert/accept", self.session), Some(json!({})));
            if v["value"]["error"].is_null() {
                return;
            }
            assert!(Instant::now() < deadline, "no confirmation was asked: {v}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Saves the open form dialog and waits until it closes (the API accepted the change).
    fn save_dialog(&self) {
        self.click("#save");
        self.until("the dialog closes", "!document.getElementById('dialog').open");
    }

    fn press_tab(&self) {
        self.press("\u{E004}");
    }

    fn press(&self, key: &str) {
        self.cmd(
            "POST",
            "/actions",
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": [{"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]}]})),
        );
    }

    fn text(&self) -> Value {
        self.js("return document.body.innerText;")
    }

    /// Waits until `script` (an expression) is true.
    fn until(&self, what: &str, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.js(&format!("return !!({script});")) != Value::Bool(true) {
            assert!(Instant::now() < deadline, "{what}: {}", self.text());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Clicks `reload` until `script` is true (the page shows what the API said when loaded).
    fn until_reloading(&self, what: &str, reload: &str, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(40);
        while self.js(&format!("return !!({script});")) != Value::Bool(true) {
            assert!(Instant::now() < deadline, "{what}: {}", self.text());
            self.click(reload);
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn window(&self, width: u32, height: u32) {
        self.cmd("POST", "/window/rect", Some(json!({"width": width, "height": height})));
    }

    /// Tabs through the page from its first control: every visible control is reached, each
    /// with a visible focus ring. Controls are known by their row and text, not by element, so a
    /// re-render meanwhile does not count as a miss.
    fn every_control_reached_by_tab(&self, page: &str) {
        let key = "((e) => { const row = e.closest('tr'); return (row ? row.getAttribute('data-account') || row.getAttribute('data-app') || row.getAttribute('data-tag') || '' : '') + '|' + (e.id || '') + '|' + (e.getAttribute('aria-label') || e.textContent); })";
        let controls = "[...document.querySelectorAll('a[href], button, input, select, textarea')].filter((e) => e.offsetParent !== null && !e.closest('dialog'))";
        self.js(&format!("window.scrollTo(0, 0); window.kbSeen = new Set(); const first = {controls}[0]; first.focus(); window.kbSeen.add({key}(first));"));
        let count = self.js(&format!("return {controls}.length;")).as_u64().unwrap_or(0);
        assert!(count > 5, "{page}: controls on the page: {count}");
        // A re-render meanwhile (a reload the page scheduled) may move focus back: Tab on until
        // every control was reached, within three rounds.
        let missed = format!("return {controls}.filter((e) => !window.kbSeen.has({key}(e))).map((e) => e.outerHTML);");
        for _ in 0..count * 3 {
            if self.js(&missed) == json!([]) {
                break;
            }
            self.press_tab();
            let ring = self.js(&format!(
                "const e = document.activeElement; if (!e || e === document.body) return 'none';\
                 window.kbSeen.add({key}(e)); const s = getComputedStyle(e);\
                 return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2 ? 'ring' : 'no ring on ' + e.outerHTML;"
            ));
            assert!(ring == "ring" || ring == "none", "{page}: focus is visible: {ring}");
        }
        assert_eq!(self.js(&missed), json!([]), "{page}: every control is reached by Tab");
    }

    fn screenshot(&self, name: &str) {
        let png = self.cmd("GET", "/screenshot", None);
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap_or_default()).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"));
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
        let _ = std::fs::create_dir_all(&target);
        std::fs::write(target.join(name), bytes).unwrap();
    }
}

fn world() -> World {
    let label = |id: &str, name: &str, parent: Option<&str>| FakeLabel {
        id: id.into(),
        name: name.into(),
        sensitivity: if parent.is_some() { 6 } else { 5 },
        is_active: true,
        content_formats: vec!["file".into()],
        parent: parent.map(str::to_string),
        tooltip: format!("Tooltip of {name}"),
        ..FakeLabel::default()
    };
    World {
        tenants: vec![Tenant {
            id: TENANT.into(),
            domains: vec!["contoso.onmicrosoft.com".into()],
            apps: vec![App {
                client_id: APP.into(),
                secrets: vec![AppSecret { value: SECRET.into(), expired: false }],
                roles: vec!["InformationProtectionPolicy.Read.All".into()],
                ..App::default()
            }],
            labels: vec![label(PARENT, "Confidential", None), label(CHILD, MARKUP, Some(PARENT)), label(OTHER, "General", None)],
            ..Tenant::default()
        }],
        token_lifetime_secs: 3599,
        page_size: 10,
        // The first retrieval (after the validating request) takes 4 s: Retrieval Pending is seen.
        faults: vec![Fault {
            route: Route::Labels,
            tenant: None,
            page: None,
            after: 1,
            times: 1,
            action: FaultAction::DelayMs(4000),
            seen: 0,
        }],
    }
}

fn config(dir: &Path) -> PathBuf {
    std::fs::write(dir.join("auditor.token"), READ_TOKEN).unwrap();
    let path = dir.join("labelgate.toml");
    std::fs::write(
        &path,
        format!(
            "[[cloud_apps]]\nname = \"Paste site\"\nhosts = [\"paste.example.test\"]\ntags = [\"Personal\"]\n\n\
             [[cloud_apps]]\nname = \"Box\"\nhosts = [\"box.example.test\"]\ntags = [\"Unsanctioned\"]\n\n\
             [policy]\ndefault_action = \"allow\"\n\n\
             [[policy.rules]]\nname = \"{RULE}\"\naction = \"block\"\nlabeled = true\ncloud_app_tags = [\"Unsanctioned\"]\n\n\
             [[admin.tokens]]\nname = \"auditor\"\nrole = \"read\"\ntoken_file = \"auditor.token\"\n"
        ),
    )
    .unwrap();
    path
}

fn start_browser(dir: &Path, downloads: &Path) -> (Kill, Driver) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = std::env::var("UI_DRIVER_LOG").map(|l| vec!["--verbose".to_string(), format!("--log-path={l}")]).unwrap_or_default();
    let driver = Kill(
        Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .args(log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed by scripts/test.sh (Debian package chromium-driver)"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Driver::call(&base, "GET", "/status", None)["value"]["ready"] != Value::Bool(true) {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let created = Driver::call(
        &base,
        "POST",
        "/session",
        Some(json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1100,800", "--no-proxy-server",
                         "--lang=en-US", format!("--user-data-dir={}", dir.join("chromium-profile").display())],
                "prefs": {"download.default_directory": downloads.display().to_string(), "download.prompt_for_download": false}
            }
        }}})),
    );
    let session = created["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {created}")).to_string();
    (driver, Driver { base, session })
}

const CONTOSO_ROW: &str = "document.querySelector('tr[data-account=\"Contoso\"]')";

#[test]
fn the_admin_pages_in_headless_chromium() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeGraph::start(world())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = config(d);
    let (_serve, _proxy, admin) =
        crate::common::serve_as_configured(&["--config", config.to_str().unwrap(), "--state-dir", d.join("state").to_str().unwrap()]);
    let token = std::fs::read_to_string(d.join("state/admin-token")).unwrap().trim().to_string();
    let downloads = d.join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let (_chromedriver, b) = start_browser(d, &downloads);

    // Sign in: a wrong token says so; the right one shows the (empty) table and the writer's actions.
    b.cmd("POST", "/url", Some(json!({"url": format!("http://{admin}/ui/")})));
    b.until("the sign-in form", "document.getElementById('token') && !document.getElementById('signin').hidden");
    b.type_into("#token", "wrong-token");
    b.click("#signin button[type=submit]");
    b.until("a wrong token is refused", "document.getElementById('signin-error').textContent.includes('refused')");
    b.type_into("#token", &token);
    b.click("#signin button[type=submit]");
    b.until(
        "the account table",
        "!document.getElementById('accounts').hidden && document.getElementById('rows').textContent.includes('No accounts')",
    );
    b.until("the writer's actions", "!document.getElementById('add').hidden");

    // Add an account through the dialog: the API's field message inline first.
    b.click("#add");
    b.until("the dialog", "document.getElementById('dialog').open");
    b.type_into("#f-name", "Contoso");
    b.type_into("#f-tenant_id", "a/b");
    b.type_into("#f-client_id", APP);
    b.type_into("#f-client_secret", SECRET);
    b.type_into("#f-authority_url", &fake.url());
    b.type_into("#f-graph_url", &fake.url());
    b.click("#save");
    b.until("the tenant's error inline", "document.querySelector('.error[data-field=\"tenant_id\"]').textContent.includes('tenant')");
    b.type_into("#f-tenant_id", TENANT);
    b.save_dialog();

    // Retrieval Pending (the first retrieval is slow), then Active after Reload, with the time.
    b.until_reloading(
        "Contoso shows Retrieval Pending",
        "#reload",
        &format!("{CONTOSO_ROW} && {CONTOSO_ROW}.textContent.includes('Retrieval Pending')"),
    );
    b.until_reloading("Contoso becomes Active", "#reload", &format!("{CONTOSO_ROW} && {CONTOSO_ROW}.textContent.includes('Active')"));
    b.until("the retrieval time in a <time> element", &format!("{CONTOSO_ROW}.querySelector('time[datetime]')"));
    let status = b.js(&format!("return {CONTOSO_ROW}.querySelector('td:nth-child(3)').textContent;"));
    let datetime = b.js(&format!("return {CONTOSO_ROW}.querySelector('time').getAttribute('datetime');"));
    assert!(status.as_str().unwrap().starts_with("Active · retrieved ") && status.as_str().unwrap().ends_with(')'), "{status}");
    assert!(datetime.as_str().unwrap().ends_with('Z'), "the UTC instant: {datetime}");
    assert_eq!(b.js(&format!("return {CONTOSO_ROW}.querySelector('td:nth-child(2)').textContent;")), "3");

    // Expand: the sublabel under its parent; the markup-like name is text.
    b.click("tr[data-account=\"Contoso\"] button.expand");
    b.until("the labels", "document.querySelector('tr.labels li.sub')");
    let order = b.js(
        "return [...document.querySelectorAll('tr.labels li')].map((li) => [li.className.trim(), li.querySelector('strong').textContent]);",
    );
    assert_eq!(order, json!([["", "Confidential"], ["sub", MARKUP], ["", "General"]]), "the sublabel right under its parent");
    let indented = b.js("const [p, c] = [...document.querySelectorAll('tr.labels li')]; return c.getBoundingClientRect().left - p.getBoundingClientRect().left;");
    assert!(indented.as_f64().unwrap_or(0.0) >= 16.0, "indented: {indented}");
    assert_eq!(b.js("return document.querySelectorAll('tr.labels img').length;"), 0, "no element was made from a label name");
    assert!(b.js("return document.querySelector('tr.labels li.sub').textContent;").as_str().unwrap().contains("under Confidential"));

    // Search filters as you type.
    b.type_into("#search", "no such account");
    b.until("search hides the account", &format!("!{CONTOSO_ROW}"));
    b.type_into("#search", "conto");
    b.until("search finds it", CONTOSO_ROW);
    b.type_into("#search", "");

    // Download the CSV: the file the browser saved is the API's CSV, byte for byte.
    b.click_button("tr[data-account=\"Contoso\"]", "Download CSV");
    let saved = downloads.join("Contoso-labels.csv");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !saved.is_file() {
        assert!(
            Instant::now() < deadline,
            "no download: {:?}",
            std::fs::read_dir(&downloads).unwrap().flatten().map(|e| e.path()).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    let fetched = b.js_async(
        "fetch('/api/v1/accounts/Contoso/labels.csv', {headers: {Authorization: 'Bearer ' + sessionStorage.getItem('labelgate-token')}})\
         .then((r) => r.text()).then(done, (e) => done('failed: ' + e));",
    );
    let downloaded = std::fs::read_to_string(&saved).unwrap();
    assert_eq!(Value::String(downloaded.clone()), fetched);
    assert!(downloaded.contains(MARKUP) && downloaded.lines().count() == 4, "{downloaded}");

    // Duplicate.
    b.click_button("tr[data-account=\"Contoso\"]", "Duplicate");
    b.until("the copy's dialog", "document.getElementById('dialog').open");
    b.type_into("#f-name", "Contoso copy");
    b.click("#save");
    b.until(
        "the copy needs its credential",
        "document.querySelector('#dialog .error[data-field=\"client_secret\"]').textContent.includes('client secret')",
    );
    b.type_into("#f-client_secret", SECRET);
    b.save_dialog();
    let copy = "document.querySelector('tr[data-account=\"Contoso copy\"]')";
    b.until_reloading("the copy appears", "#reload", copy);

    // A wrong secret: Validation Failed, with its cause.
    b.click_button("tr[data-account=\"Contoso copy\"]", "Edit");
    b.until("the edit dialog", "document.getElementById('dialog').open");
    b.type_into("#f-client_secret", "not-the-secret");
    b.save_dialog();
    b.until_reloading(
        "the copy fails validation with its cause",
        "#reload",
        &format!("{copy} && {copy}.textContent.includes('Validation Failed') && {copy}.querySelector('.cause') && {copy}.querySelector('.cause').textContent.includes('AADSTS7000215')"),
    );

    assert!(
        b.js("return !!document.querySelector('tr.labels[data-account=\"Contoso\"] li.sub');") == Value::Bool(true),
        "Contoso stays expanded across searches and reloads"
    );

    // Every control by keyboard, visible focus; no horizontal scroll at 640×480; a screenshot.
    b.every_control_reached_by_tab("MIP Labels");
    // A keyboard user keeps their place when the table is rebuilt: Enter on "Retrieve now", and
    // after the reload it schedules, focus is on the same control of the new row.
    b.js(&format!("{CONTOSO_ROW}.setAttribute('data-old', '1'); [...{CONTOSO_ROW}.querySelectorAll('button')].find((e) => e.textContent === 'Retrieve now').focus();"));
    b.press("\u{E007}");
    b.until("the table is rebuilt", &format!("{CONTOSO_ROW} && !{CONTOSO_ROW}.hasAttribute('data-old')"));
    assert_eq!(
        b.js("const e = document.activeElement; return [e.closest('tr') && e.closest('tr').getAttribute('data-account'), e.textContent];"),
        json!(["Contoso", "Retrieve now"]),
        "focus is kept across a re-render"
    );
    b.window(640, 480);
    b.until("no horizontal scroll at 640×480 (MIP Labels)", "document.documentElement.scrollWidth <= document.documentElement.clientWidth");
    b.window(1100, 800);
    b.screenshot("ui-mip-labels.png");

    // Delete, after confirmation.
    b.click_button("tr[data-account=\"Contoso copy\"]", "Delete");
    b.accept_alert();
    b.until_reloading("the copy is gone", "#reload", &format!("!{copy} && {CONTOSO_ROW}"));

    // The Cloud Application Tags page (the token is kept for the tab).
    assert_eq!(policy_test_labeled(&config, "https://paste.example.test/new").0, "allow");
    // An app and a tag named like markup (through the API) are shown as text.
    let api = AdminApi { admin, token: token.clone() };
    let etag = api.call("GET", "/api/v1/cloud-apps", None, None).1.unwrap();
    let hostile = json!({"name": "<svg onload=alert(1)>", "hosts": ["svg.example.test"], "tags": ["<b>bold</b>"]}).to_string();
    assert_eq!(api.call("POST", "/api/v1/cloud-apps", Some(&hostile), Some(&etag)).0, 201);
    b.cmd("POST", "/url", Some(json!({"url": format!("http://{admin}/ui/cloud-apps")})));
    b.until("the hostile app", "document.querySelector('tr[data-app=\"<svg onload=alert(1)>\"]')");
    assert_eq!(
        b.js("return document.querySelector('tr[data-app=\"<svg onload=alert(1)>\"] strong').textContent;"),
        "<svg onload=alert(1)>"
    );
    assert_eq!(b.js("return document.querySelector('tr[data-tag=\"<b>bold</b>\"] button').textContent;"), "<b>bold</b>");
    assert_eq!(b.js("return document.querySelectorAll('main svg, main b').length;"), 0, "no element was made from an app or tag name");
    b.until(
        "the cloud apps",
        "document.querySelector('tr[data-app=\"Paste site\"]') && document.querySelector('tr[data-tag=\"Unsanctioned\"]')",
    );
    assert_eq!(b.js("return document.getElementById('title').textContent;"), "Cloud Application Tags");
    assert!(b.js("return document.querySelector('tr[data-tag=\"Unsanctioned\"]').textContent;").as_str().unwrap().contains(RULE));
    // Filter by tag.
    b.js("const s = document.getElementById('tag-filter'); s.value = 'Unsanctioned'; s.dispatchEvent(new Event('change'));");
    b.until(
        "only Box is tagged Unsanctioned",
        "document.querySelector('tr[data-app=\"Box\"]') && !document.querySelector('tr[data-app=\"Paste site\"]')",
    );
    b.js("const s = document.getElementById('tag-filter'); s.value = ''; s.dispatchEvent(new Event('change'));");
    b.until("every app again", "document.querySelector('tr[data-app=\"Paste site\"]')");
    // Tag the paste site Unsanctioned: the rule now matches it.
    b.click_button("tr[data-app=\"Paste site\"]", "Add tag");
    b.until("the tag dialog", "document.getElementById('dialog').open");
    b.type_into("#f-tags", "Unsanctioned");
    b.save_dialog();
    b.until_reloading(
        "the paste site carries the tag",
        "#apps-reload",
        "document.querySelector('tr[data-app=\"Paste site\"] .tag[data-tag=\"Unsanctioned\"]')",
    );
    assert_eq!(policy_test_labeled(&config, "https://paste.example.test/new"), ("block".to_string(), Some(RULE.to_string())));
    // Removing the tag everywhere would orphan the rule: refused, the rule named, nothing written.
    let before = std::fs::read_to_string(&config).unwrap();
    b.click_button("tr[data-tag=\"Unsanctioned\"]", "Delete");
    b.accept_alert();
    b.until("the refusal names the rule", &format!("document.getElementById('message').textContent.includes({RULE:?})"));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before);
    b.every_control_reached_by_tab("Cloud Application Tags");
    b.window(640, 480);
    b.until(
        "no horizontal scroll at 640×480 (Cloud Application Tags)",
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth",
    );
    b.window(1100, 800);
    b.screenshot("ui-cloud-apps.png");

    // A read token sees both pages without a write action.
    b.click("#signout");
    b.until(
        "signed out, nothing of the session left",
        "!document.getElementById('signin').hidden && !document.querySelector('#app-rows tr')",
    );
    b.type_into("#token", READ_TOKEN);
    b.click("#signin button[type=submit]");
    b.until(
        "the reader's view",
        "document.getElementById('who').textContent === 'auditor (read)' && document.querySelector('tr[data-app=\"Box\"]')",
    );
    let visible_writes = "[...document.querySelectorAll('button')].filter((e) => e.offsetParent !== null && /^(Add|Edit|Delete|Duplicate|Disable|Enable|Rename|×)/.test(e.textContent)).length";
    assert_eq!(b.js(&format!("return {visible_writes};")), 0);
    b.cmd("POST", "/url", Some(json!({"url": format!("http://{admin}/ui/")})));
    b.until("the reader's accounts", CONTOSO_ROW);
    assert_eq!(b.js(&format!("return {visible_writes};")), 0);
    assert!(b.js(&format!("return {CONTOSO_ROW}.textContent;")).as_str().unwrap().contains("Download CSV"));
    let _ = Driver::call(&b.base, "DELETE", &format!("/session/{}", b.session), None);
}
