//! MIP accounts end to end: the real `labelgate serve` with two accounts against the fake
//! identity platform + Graph on loopback, a policy naming a label by name, a file carrying that
//! label's GUID uploaded through the proxy with curl and blocked with the label's display name;
//! the account API, the CSV download, `/metrics` through promtool, a restart with Graph gone,
//! and no secret anywhere labelgate writes or answers.

use crate::common::{curl, origin};
use labelgate_fakegraph::{App, AppSecret, FakeGraph, FakeLabel, Tenant, World};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const T1: &str = "11111111-1111-4111-8111-111111111111";
const T2: &str = "22222222-2222-4222-8222-222222222222";
const APP1: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const APP2: &str = "aaaaaaaa-0000-4000-8000-000000000002";
const SECRET1: &str = "Qx9~contoso-app-secret-8f14e45fceea167a5a36";
const SECRET2: &str = "Wm3~fabrikam-app-secret-c9f0f895fb98ab9159f5";
const CONFIDENTIAL: &str = "8cf764ac-ef2b-4787-8ccd-0a8a65e7bafa";
const FINANCE: &str = "a20cbae4-0c05-448c-b342-cb6c618d0957";
const RESTRICTED: &str = "7a7a7a7a-0000-4000-8000-000000000001";

fn fake_label(id: &str, name: &str, parent: Option<&str>) -> FakeLabel {
    FakeLabel {
        id: id.into(),
        name: name.into(),
        sensitivity: 5,
        is_active: true,
        content_formats: vec!["file".into()],
        parent: parent.map(str::to_string),
        tooltip: if name == "Finance" { "=HYPERLINK(\"http://evil.invalid\",\"click\")".into() } else { format!("{name}, for staff") },
        ..FakeLabel::default()
    }
}

fn world() -> World {
    let app = |client: &str, secret: &str| App {
        client_id: client.into(),
        secrets: vec![AppSecret { value: secret.into(), expired: false }],
        roles: vec!["InformationProtectionPolicy.Read.All".into(), "SensitivityLabels.Read.All".into()],
        ..App::default()
    };
    World {
        tenants: vec![
            Tenant {
                id: T1.into(),
                domains: vec!["contoso.onmicrosoft.com".into()],
                apps: vec![app(APP1, SECRET1)],
                labels: vec![fake_label(CONFIDENTIAL, "Confidential", None), fake_label(FINANCE, "Finance", Some(CONFIDENTIAL))],
                ..Tenant::default()
            },
            Tenant {
                id: T2.into(),
                domains: vec!["fabrikam.onmicrosoft.com".into()],
                apps: vec![app(APP2, SECRET2)],
                labels: vec![fake_label(RESTRICTED, "Restricted", None)],
                ..Tenant::default()
            },
        ],
        token_lifetime_secs: 3599,
        page_size: 1,
        faults: vec![],
    }
}

fn labeled_docx(label: &str, tenant: &str) -> Vec<u8> {
    use labelgate_testkit::{custom_xml, docx, zip};
    zip(&docx(Some(custom_xml(&[(label, tenant, "true")])), None))
}

struct Running {
    child: Child,
    proxy: SocketAddr,
    admin: SocketAddr,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `labelgate serve` with its stderr and stdout (the audit log) kept in files.
fn serve(dir: &Path, config: &Path, run: &str) -> Running {
    let stderr_path = dir.join(format!("stderr-{run}.log"));
    let stdout_path = dir.join(format!("audit-{run}.jsonl"));
    let child = Command::new(env!("CARGO_BIN_EXE_labelgate"))
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    // Owned by the guard at once: killed and reaped whatever happens next.
    let unset = SocketAddr::from(([0, 0, 0, 0], 0));
    let mut running = Running { child, proxy: unset, admin: unset };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        let find = |needle: &str| {
            text.lines()
                .find_map(|l| l.split_once(needle))
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .and_then(|a| a.parse().ok())
        };
        if let (Some(proxy), Some(admin)) = (find("proxy listening on "), find("admin listening on ")) {
            running.proxy = proxy;
            running.admin = admin;
            return running;
        }
        assert!(Instant::now() < deadline, "serve did not start: {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An admin API call with curl: (body, status, headers).
fn api(admin: SocketAddr, token: Option<&str>, method: &str, path: &str) -> (String, String, String) {
    let headers = std::env::temp_dir().join(format!("lg-api-headers-{}-{}", std::process::id(), rand_suffix()));
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-S", "-X", method, "-D"]).arg(&headers).args(["-o", "-", "-w", "\n%{http_code}"]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let out = cmd.arg(format!("http://{admin}{path}")).output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    let head = std::fs::read_to_string(&headers).unwrap_or_default();
    let _ = std::fs::remove_file(&headers);
    (body.to_string(), code.to_string(), head)
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

fn every_file_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(every_file_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn two_accounts_feed_the_policy_and_the_admin_api_and_survive_graph_going_away() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeGraph::start(world())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("contoso.secret"), format!("{SECRET1}\n")).unwrap();
    std::fs::write(d.join("fabrikam.secret"), SECRET2).unwrap();
    let config = d.join("labelgate.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[policy]
default_action = "allow"

[[policy.rules]]
name = "Finance stays home"
action = "block"
labels = ["Confidential \\ Finance"]
message = "Keep these documents inside Contoso."

[[accounts]]
name = "Contoso"
tenant_id = "{T1}"
client_id = "{APP1}"
client_secret_file = "contoso.secret"
authority_url = "{url}"
graph_url = "{url}"

[[accounts]]
name = "Fabrikam EU"
tenant_id = "fabrikam.onmicrosoft.com"
client_id = "{APP2}"
client_secret_file = "fabrikam.secret"
authority_url = "{url}"
graph_url = "{url}/"
api = "v1.0"
refresh_interval = "30m"
"#,
            url = fake.url()
        ),
    )
    .unwrap();
    // The proxy's origin listens on loopback: opened the one way tests open it.
    std::fs::write(&config, crate::common::loopback_origins(&std::fs::read_to_string(&config).unwrap())).unwrap();
    let (origin, count) = origin();
    let up = format!("http://{origin}/upload");
    let finance = d.join("budget.docx");
    std::fs::write(&finance, labeled_docx(&FINANCE.to_uppercase(), T1)).unwrap();
    let restricted = d.join("notes.docx");
    std::fs::write(&restricted, labeled_docx(RESTRICTED, T2)).unwrap();

    let lg = serve(d, &config, "first");
    let token_file = d.join("state/admin-token");
    let token = std::fs::read_to_string(&token_file).expect("the admin token is generated on first start").trim().to_string();
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // Both accounts become Active on their own.
    let deadline = Instant::now() + Duration::from_secs(20);
    let accounts: serde_json::Value = loop {
        let (body, code, _) = api(lg.admin, Some(&token), "GET", "/api/v1/accounts");
        assert_eq!(code, "200", "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if v.as_array().unwrap().iter().all(|a| a["status"] == "Active") {
            break v;
        }
        assert!(Instant::now() < deadline, "accounts did not become Active: {body}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let list = accounts.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let contoso = list.iter().find(|a| a["name"] == "Contoso").unwrap();
    assert_eq!(contoso["tenant_id"], T1);
    assert_eq!(contoso["client_id"], APP1);
    assert_eq!(contoso["label_count"], 2);
    assert_eq!(contoso["retrieval"], true);
    assert!(contoso["last_retrieval"].is_string() && contoso["last_attempt"].is_string() && contoso["last_error"].is_null());
    assert_eq!(list.iter().find(|a| a["name"] == "Fabrikam EU").unwrap()["label_count"], 1);

    // The policy names the label; the file carries only its GUID: blocked, with its display name.
    let (page, code) = curl(lg.proxy, &["-T", finance.to_str().unwrap(), &up]);
    assert_eq!(code, "403", "{page}");
    assert!(page.contains("Finance") && page.contains("Keep these documents inside Contoso."), "{page}");
    assert_eq!(count.load(Ordering::SeqCst), 0);
    let (reply, code) = curl(lg.proxy, &["-T", restricted.to_str().unwrap(), &up]);
    assert_eq!(code, "200", "a label no rule names passes: {reply}");

    // The account API.
    let mut answers = String::new();
    let (body, code, _) = api(lg.admin, Some(&token), "GET", "/api/v1/accounts?q=fabrik");
    assert_eq!(code, "200");
    let found: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["name"], "Fabrikam EU");
    answers.push_str(&body);
    let (body, code, _) = api(lg.admin, Some(&token), "GET", "/api/v1/accounts/Fabrikam%20EU");
    assert_eq!(code, "200", "{body}");
    let one: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(one["api"], "v1.0");
    let statuses: Vec<&str> = one["history"].as_array().unwrap().iter().map(|t| t["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["Validation Success", "Retrieval Pending", "Active"]);
    answers.push_str(&body);
    let (body, code, _) = api(lg.admin, Some(&token), "GET", "/api/v1/accounts/Contoso/labels");
    assert_eq!(code, "200");
    let labels: serde_json::Value = serde_json::from_str(&body).unwrap();
    let finance_entry = labels.as_array().unwrap().iter().find(|l| l["id"] == FINANCE).unwrap();
    assert_eq!(finance_entry["parent"], CONFIDENTIAL);
    assert_eq!(finance_entry["parent_name"], "Confidential");
    answers.push_str(&body);
    let (csv, code, headers) = api(lg.admin, Some(&token), "GET", "/api/v1/accounts/Contoso/labels.csv");
    assert_eq!(code, "200");
    assert!(headers.to_ascii_lowercase().contains("content-type: text/csv"), "{headers}");
    assert!(headers.contains("attachment; filename=\"Contoso-labels.csv\""), "{headers}");
    let rows: Vec<&str> = csv.split("\r\n").filter(|r| !r.is_empty()).collect();
    assert_eq!(rows[0], "id,name,display_name,parent,priority,active,protection,tooltip,deleted");
    assert_eq!(rows.len(), 3);
    let finance_row = rows.iter().find(|r| r.starts_with(FINANCE)).unwrap();
    assert!(finance_row.contains(",Confidential,") && finance_row.contains("\"'=HYPERLINK("), "a formula is neutralised: {finance_row}");
    answers.push_str(&csv);
    assert_eq!(api(lg.admin, None, "GET", "/api/v1/accounts").1, "401");
    assert_eq!(api(lg.admin, Some("wrong-token"), "GET", "/api/v1/accounts").1, "401");
    assert_eq!(api(lg.admin, Some(&token), "GET", "/api/v1/accounts/Nobody").1, "404");
    let (body, code, _) = api(lg.admin, Some(&token), "POST", "/api/v1/accounts/Contoso/refresh");
    assert_eq!(code, "202", "{body}");
    assert_eq!(api(lg.admin, Some(&token), "POST", "/api/v1/accounts").1, "428", "a change needs If-Match");
    assert_eq!(api(lg.admin, Some(&token), "PATCH", "/api/v1/accounts").1, "405");

    // /metrics: per-account series, valid for promtool.
    let (metrics, code, _) = api(lg.admin, None, "GET", "/metrics");
    assert_eq!(code, "200");
    assert!(metrics.contains(r#"labelgate_account_status{account="Contoso",status="Active"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"labelgate_account_labels{account="Fabrikam EU"} 1"#));
    assert!(metrics.contains(r#"labelgate_account_retrieval_errors_total{account="Contoso",kind="throttled"} 0"#));
    assert!(metrics.contains("labelgate_account_last_success_timestamp_seconds{account=\"Contoso\"}"));
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed by scripts/test.sh (Debian package prometheus)");
    std::io::Write::write_all(promtool.stdin.as_mut().unwrap(), metrics.as_bytes()).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(checked.status.success(), "promtool: {}{}", String::from_utf8_lossy(&checked.stdout), String::from_utf8_lossy(&checked.stderr));
    drop(lg);

    // Offline tools resolve the name from the stored labels: `check` is quiet about it and
    // `policy test` gives the verdict serve gives; without the state dir, both say they do not know it.
    let lg_bin = env!("CARGO_BIN_EXE_labelgate");
    let state = d.join("state");
    let check = |state_dir: &Path| {
        Command::new(lg_bin).arg("check").arg("--config").arg(&config).arg("--state-dir").arg(state_dir).output().unwrap()
    };
    let out = check(&state);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("no known label"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 accounts with 3 stored labels"), "{}", String::from_utf8_lossy(&out.stdout));
    let empty = d.join("empty-state");
    let out = check(&empty);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no known label is named \"Confidential \\\\ Finance\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let policy_test = |state_dir: &Path| {
        let out = Command::new(lg_bin)
            .args(["policy", "test", "--json", "--url", "https://files.example.com/upload", "--config"])
            .arg(&config)
            .arg("--state-dir")
            .arg(state_dir)
            .arg("--file")
            .arg(&finance)
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let report = policy_test(&state);
    assert_eq!(report["verdict"]["action"], "block", "{report}");
    assert_eq!(report["verdict"]["rule"], "Finance stays home");
    assert_eq!(report["labels"][0]["name"], "Finance");
    assert_eq!(policy_test(&empty)["verdict"]["action"], "allow");
    // `labelgate accounts` shows the same accounts and labels offline.
    let accounts_cmd = |extra: &[&str]| {
        let out =
            Command::new(lg_bin).arg("accounts").arg("--config").arg(&config).arg("--state-dir").arg(&state).args(extra).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let table = accounts_cmd(&[]);
    let contoso_line = table.lines().find(|l| l.starts_with("Contoso ")).expect(&table);
    assert!(contoso_line.contains("Active") && contoso_line.split_whitespace().nth(2) == Some("2"), "{table}");
    assert_eq!(accounts_cmd(&["labels", "Contoso", "--csv"]), csv, "the CSV the API serves");
    let listed: serde_json::Value = serde_json::from_str(&accounts_cmd(&["list", "--query", "v1", "--json"])).unwrap_or_default();
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "the query matches name, tenant, client id or status only");
    let listed: serde_json::Value = serde_json::from_str(&accounts_cmd(&["list", "-q", "fabrikam", "--json"])).unwrap();
    assert_eq!(listed[0]["name"], "Fabrikam EU");

    // Graph and the identity platform go away; labelgate restarts and still enforces by name.
    drop(fake);
    drop(runtime);
    let lg = serve(d, &config, "second");
    let (page, code) = curl(lg.proxy, &["-T", finance.to_str().unwrap(), &up]);
    assert_eq!(code, "403", "enforced from the last snapshot: {page}");
    assert!(page.contains("Finance"), "{page}");
    let (body, _, _) = api(lg.admin, Some(&token), "GET", "/api/v1/accounts/Contoso");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "Active", "a transient outage keeps the status: {body}");
    assert_eq!(v["label_count"], 2);
    answers.push_str(&body);
    drop(lg);

    // No secret in anything labelgate wrote or answered.
    let mut written = answers;
    for f in every_file_under(d) {
        if f.extension().is_some_and(|e| e == "secret") || f.ends_with("admin-token") {
            continue;
        }
        written.push_str(&String::from_utf8_lossy(&std::fs::read(&f).unwrap()));
    }
    assert!(written.contains("proxy listening on"), "the logs were read");
    for secret in [SECRET1, SECRET2, &token] {
        assert!(!written.contains(secret), "a secret leaked into logs, snapshots, audit, API answers or CSV");
    }
}

#[test]
fn named_tokens_roles_validate_and_throttled_sign_ins() {
    // A read token sees and validates but cannot change; the write token (`admin`, any case of
    // the Bearer scheme) changes and is named in the trail; validate asks the fake identity
    // platform and Graph now and answers the result (a wrong secret: AADSTS7000215); failed
    // sign-ins are audited and, past ten a minute from one address, throttled.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeGraph::start(world())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("contoso.secret"), SECRET1).unwrap();
    std::fs::write(d.join("wrong.secret"), "not-the-secret").unwrap();
    std::fs::write(d.join("reader.token"), "reader-token-0123456789abcdef").unwrap();
    let config = d.join("labelgate.toml");
    std::fs::write(
        &config,
        format!(
            r#"[admin]
listen = "127.0.0.1:0"

[[admin.tokens]]
name = "auditor"
token_file = "reader.token"
role = "read"

[[accounts]]
name = "Contoso"
tenant_id = "{T1}"
client_id = "{APP1}"
client_secret_file = "contoso.secret"
authority_url = "{url}"
graph_url = "{url}"
retrieval = false

[[accounts]]
name = "Wrong"
tenant_id = "{T1}"
client_id = "{APP1}"
client_secret_file = "wrong.secret"
authority_url = "{url}"
graph_url = "{url}"
retrieval = false
"#,
            url = fake.url()
        ),
    )
    .unwrap();
    let lg = serve(d, &config, "roles");
    let admin_token = std::fs::read_to_string(d.join("state/admin-token")).unwrap().trim().to_string();
    let reader = "reader-token-0123456789abcdef";

    // Validate: now, with the answer; a read token may.
    let (body, code, _) = api(lg.admin, Some(reader), "POST", "/api/v1/accounts/Contoso/validate");
    assert_eq!(code, "200", "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["valid"], true, "{v}");
    let (body, _, _) = api(lg.admin, Some(reader), "POST", "/api/v1/accounts/Wrong/validate");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["valid"], false, "{v}");
    assert_eq!(v["error"]["aadsts"], 7000215, "{v}");
    assert!(!body.contains("not-the-secret"));

    // The read token cannot change anything; the write token can, under any case of "Bearer".
    let (_, _, head) = api(lg.admin, Some(reader), "GET", "/api/v1/accounts");
    let etag = head.lines().find_map(|l| l.strip_prefix("etag: ")).unwrap().trim().to_string();
    let disable = |token: &str, scheme: &str| {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
            .args(["-H", &format!("Authorization: {scheme} {token}"), "-H", &format!("If-Match: {etag}")])
            .arg(format!("http://{}/api/v1/accounts/Contoso/disable", lg.admin))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(disable(reader, "Bearer"), "403", "a read token changes nothing");
    assert_eq!(disable(&admin_token, "bEaReR"), "200", "the scheme is case-insensitive");

    // A rename keeps the labels: Contoso retrieves, is disabled, renamed; "Contoso HQ" shows the
    // stored labels at once (its snapshot moved with it).
    let change = |method: &str, path: &str, body: Option<&str>| {
        let (_, _, head) = api(lg.admin, Some(&admin_token), "GET", "/api/v1/accounts");
        let etag = head.lines().find_map(|l| l.strip_prefix("etag: ")).unwrap().trim().to_string();
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", method]).args([
            "-H",
            &format!("Authorization: Bearer {admin_token}"),
            "-H",
            &format!("If-Match: {etag}"),
        ]);
        if let Some(b) = body {
            cmd.args(["-H", "Content-Type: application/json", "--data-binary", b]);
        }
        let out = cmd.arg(format!("http://{}{path}", lg.admin)).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{method} {path}");
    };
    let wait_for = |what: &str, done: &dyn Fn(&[serde_json::Value]) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (body, _, _) = api(lg.admin, Some(reader), "GET", "/api/v1/accounts");
            let list: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap_or_default();
            if done(&list) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: {body}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    change("POST", "/api/v1/accounts/Contoso/enable", None);
    wait_for("Contoso retrieves", &|l| l.iter().any(|a| a["name"] == "Contoso" && a["status"] == "Active" && a["label_count"] == 2));
    change("POST", "/api/v1/accounts/Contoso/disable", None);
    wait_for("Contoso stops", &|l| l.iter().any(|a| a["name"] == "Contoso" && a["retrieval"] == false));
    change("PUT", "/api/v1/accounts/Contoso", Some(r#"{"name": "Contoso HQ"}"#));
    wait_for("renamed with its labels", &|l| l.iter().any(|a| a["name"] == "Contoso HQ" && a["label_count"] == 2));
    let (body, code, _) = api(lg.admin, Some(reader), "GET", "/api/v1/accounts/Contoso%20HQ/labels");
    assert_eq!(code, "200");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap().as_array().unwrap().len(), 2, "{body}");

    // Failed sign-ins: audited; the eleventh in a minute is throttled, even with the right token.
    for _ in 0..10 {
        assert_eq!(api(lg.admin, Some("wrong"), "GET", "/api/v1/accounts").1, "401");
    }
    let (_, code, head) = api(lg.admin, Some(&admin_token), "GET", "/api/v1/accounts");
    assert_eq!(code, "429");
    assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let trail = loop {
        let text = std::fs::read_to_string(d.join("audit-roles.jsonl")).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        if lines.iter().filter(|l| l["event"] == "admin_sign_in_failed").count() >= 10
            && lines.iter().any(|l| l["event"] == "account_change")
        {
            break lines;
        }
        assert!(Instant::now() < deadline, "{lines:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let change = trail.iter().find(|l| l["event"] == "account_change").unwrap();
    assert_eq!((change["who"].as_str(), change["what"].as_str()), (Some("admin"), Some("disable")));
    assert!(!trail.iter().any(|l| l.to_string().contains(reader) || l.to_string().contains(&admin_token)), "no token in the trail");
}
