//! The MIP Labels page in a real headless Chromium, driven over WebDriver (Debian's
//! `chromium-driver`, a small W3C client here), against `labelgate serve` wired to the fake
//! identity platform and Graph: sign in, watch the account go Active after Reload, expand it and
//! see the sublabel under its parent, a label named like markup shown as text, search, add an
//! account through the dialog (a field error inline first), and a screenshot under `target/`.

use labelgate_fakegraph::{App, AppSecret, FakeGraph, FakeLabel, Tenant, World};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TENANT: &str = "11111111-1111-4111-8111-111111111111";
const APP: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const SECRET: &str = "ui-test-secret-4c1e";
const PARENT: &str = "8cf764ac-ef2b-4787-8ccd-0a8a65e7bafa";
const CHILD: &str = "a20cbae4-0c05-448c-b342-cb6c618d0957";
const MARKUP: &str = "<img src=x onerror=alert(1)>";

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A W3C WebDriver session, spoken with curl.
struct Driver {
    base: String,
    session: String,
}

impl Driver {
    fn call(base: &str, method: &str, path: &str, body: Option<serde_json::Value>) -> serde_json::Value {
        if std::env::var_os("UI_DEBUG").is_some() {
            eprintln!("webdriver {method} {path}");
        }
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "--max-time", "60", "-X", method, "-H", "Content-Type: application/json"]);
        if let Some(b) = body {
            cmd.args(["--data-binary", &b.to_string()]);
        }
        let out = cmd.arg(format!("{base}{path}")).output().expect("curl runs");
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    fn cmd(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> serde_json::Value {
        let v = Driver::call(&self.base, method, &format!("/session/{}{path}", self.session), body);
        assert!(v["value"]["error"].is_null(), "webdriver {method} {path}: {v}");
        v["value"].clone()
    }

    fn js(&self, script: &str) -> serde_json::Value {
        if std::env::var_os("UI_DEBUG").is_some() {
            let alert = Driver::call(&self.base, "GET", &format!("/session/{}/alert/text", self.session), None);
            eprintln!("alert? {alert}");
        }
        self.cmd("POST", "/execute/sync", Some(serde_json::json!({"script": script, "args": []})))
    }

    fn element(&self, css: &str) -> String {
        let v = self.cmd("POST", "/element", Some(serde_json::json!({"using": "css selector", "value": css})));
        v["element-6066-11e4-a52e-4f735466cecf"].as_str().unwrap_or_else(|| panic!("no element {css}: {v}")).to_string()
    }

    fn click(&self, css: &str) {
        if std::env::var_os("UI_DEBUG").is_some() {
            let text = self.js(&format!("return document.querySelector({css:?}).outerHTML;"));
            eprintln!("click {css}: {text}");
        }
        let e = self.element(css);
        self.cmd("POST", &format!("/element/{e}/click"), Some(serde_json::json!({})));
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css);
        self.cmd("POST", &format!("/element/{e}/clear"), Some(serde_json::json!({})));
        self.cmd("POST", &format!("/element/{e}/value"), Some(serde_json::json!({"text": text})));
    }

    /// Waits until `script` (an expression) is true.
    fn until(&self, what: &str, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.js(&format!("return !!({script});")) != serde_json::Value::Bool(true) {
            assert!(Instant::now() < deadline, "{what}: {}", self.js("return document.body.innerText;"));
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn world() -> World {
    let label = |id: &str, name: &str, parent: Option<&str>| FakeLabel {
        id: id.into(),
        name: name.into(),
        sensitivity: 5,
        is_active: true,
        content_formats: vec!["file".into()],
        parent: parent.map(str::to_string),
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
            labels: vec![label(PARENT, "Confidential", None), label(CHILD, MARKUP, Some(PARENT))],
            ..Tenant::default()
        }],
        token_lifetime_secs: 3599,
        page_size: 10,
        faults: vec![],
    }
}

#[test]
#[ignore = "work in progress (issue 17): WebDriver calls hang at a timing-dependent step (after expanding an account, or in the reload loop); UI_DEBUG=1 traces them; run with --ignored"]
fn the_mip_labels_page_in_headless_chromium() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeGraph::start(world())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("contoso.secret"), SECRET).unwrap();
    let config = d.join("labelgate.toml");
    std::fs::write(
        &config,
        format!(
            "[[accounts]]\nname = \"Contoso\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{APP}\"\nclient_secret_file = \"contoso.secret\"\nauthority_url = \"{url}\"\ngraph_url = \"{url}\"\n",
            url = fake.url()
        ),
    )
    .unwrap();
    let (_serve, _proxy, admin) =
        crate::common::serve_as_configured(&["--config", config.to_str().unwrap(), "--state-dir", d.join("state").to_str().unwrap()]);
    let token = std::fs::read_to_string(d.join("state/admin-token")).unwrap().trim().to_string();

    // chromedriver on a port of its own; Chromium headless, talking to loopback only.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _driver = Kill(
        Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .args(std::env::var("UI_DRIVER_LOG").map(|l| vec!["--verbose".to_string(), format!("--log-path={l}")]).unwrap_or_default())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed by scripts/test.sh (Debian package chromium-driver)"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Driver::call(&base, "GET", "/status", None)["value"]["ready"] != serde_json::Value::Bool(true) {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let profile = d.join("chromium-profile");
    let created = Driver::call(
        &base,
        "POST",
        "/session",
        Some(serde_json::json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1024,768", "--no-proxy-server", format!("--user-data-dir={}", profile.display())]
        }}}})),
    );
    let session = created["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {created}")).to_string();
    let b = Driver { base, session };

    // Sign in: a wrong token says so; the right one shows the table.
    b.cmd("POST", "/url", Some(serde_json::json!({"url": format!("http://{admin}/ui/")})));
    b.until("the sign-in form", "document.getElementById('token') && !document.getElementById('signin').hidden");
    b.type_into("#token", "wrong-token");
    b.click("#signin button[type=submit]");
    b.until("a wrong token is refused", "document.getElementById('signin-error').textContent.includes('refused')");
    b.type_into("#token", &token);
    b.click("#signin button[type=submit]");
    b.until("the account table", "document.querySelector('tr[data-account=\"Contoso\"]')");
    b.until("the writer's actions", "!document.getElementById('add').hidden");

    // Retrieval Pending → Active after Reload.
    let deadline = Instant::now() + Duration::from_secs(30);
    while b.js("return document.querySelector('tr[data-account=\"Contoso\"]').textContent.includes('Active');")
        != serde_json::Value::Bool(true)
    {
        assert!(Instant::now() < deadline, "Contoso never became Active: {}", b.js("return document.body.innerText;"));
        b.click("#reload");
        std::thread::sleep(Duration::from_millis(300));
    }
    b.until("the retrieval time, in a <time> element", "document.querySelector('tr[data-account=\"Contoso\"] time[datetime]')");

    // Expand: the sublabel under its parent, the markup-like name as text.
    b.click("tr[data-account=\"Contoso\"] td button");
    b.until("the labels", "document.querySelector('tr.labels li.sub')");
    let shown = b.js("return document.querySelector('tr.labels li.sub strong').textContent;");
    assert_eq!(shown, MARKUP, "the name is text");
    assert_eq!(b.js("return document.querySelectorAll('tr.labels img').length;"), 0, "no element was made from a label name");
    assert_eq!(b.js("return document.querySelector('tr.labels li:not(.sub) strong').textContent;"), "Confidential");

    // Search filters as you type.
    b.type_into("#search", "no such account");
    b.until("search hides the account", "!document.querySelector('tr[data-account=\"Contoso\"]')");
    b.type_into("#search", "conto");
    b.until("search finds it", "document.querySelector('tr[data-account=\"Contoso\"]')");

    // Add through the dialog: a field error inline, then the account.
    b.click("#add");
    b.until("the dialog", "document.getElementById('editor').open");
    b.type_into("#f-name", "Fabrikam");
    b.type_into("#f-tenant_id", "a/b");
    b.type_into("#f-client_id", "22222222-2222-2222-2222-222222222222");
    b.type_into("#f-client_secret", "another-secret");
    b.click("#save");
    b.until("the tenant error inline", "document.querySelector('.error[data-field=\"tenant_id\"]').textContent.includes('tenant')");
    b.type_into("#f-tenant_id", "fabrikam.onmicrosoft.com");
    b.click("#save");
    b.until("the dialog closes", "!document.getElementById('editor').open");
    let deadline = Instant::now() + Duration::from_secs(30);
    while b.js("return !!document.querySelector('tr[data-account=\"Fabrikam\"]');") != serde_json::Value::Bool(true) {
        assert!(Instant::now() < deadline, "Fabrikam never appeared: {}", b.js("return document.body.innerText;"));
        b.click("#reload");
        std::thread::sleep(Duration::from_millis(300));
    }

    // A screenshot for the README.
    let png = b.cmd("GET", "/screenshot", None);
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap_or_default()).unwrap();
    assert!(bytes.starts_with(b"\x89PNG"));
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
    let _ = std::fs::create_dir_all(&target);
    std::fs::write(target.join("ui-mip-labels.png"), bytes).unwrap();
    let _ = Driver::call(&b.base, "DELETE", &format!("/session/{}", b.session), None);
}
