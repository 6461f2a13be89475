//! MIP accounts changed through the admin API, written back to the config file: ETag and
//! If-Match (428, 412), validation with `labelgate check`'s messages as field errors, secrets in
//! 0600 files and nowhere else, comments kept byte for byte, a rename that keeps the stored
//! labels, enable/disable, delete, a read-only config (409), the reload applying each change.

use crate::common::*;

const CONFIG: &str = "# Our labelgate — comments and order the admin chose must survive.\n\
[policy]\n\
default_action = \"allow\"   # allow by default\n\
\n\
# The Contoso tenant.\n\
[[accounts]]\n\
name = \"Contoso\"\n\
tenant_id = \"contoso.onmicrosoft.com\"  # by domain\n\
client_id = \"11111111-1111-1111-1111-111111111111\"\n\
client_secret_env = \"CONTOSO_SECRET\"\n\
retrieval = false\n";

const SECRET: &str = "s3cr3t-Value-never-echoed-7f1c";

/// Waits until the account list satisfies `done` (the reload applies changes within ~1 s).
trait Accounts {
    fn until(&self, what: &str, done: impl Fn(&[serde_json::Value]) -> bool);
}

impl Accounts for AdminApi {
    fn until(&self, what: &str, done: impl Fn(&[serde_json::Value]) -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let (_, _, list) = self.call("GET", "/api/v1/accounts", None, None);
            if list.as_array().is_some_and(|l| done(l)) {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{what}: {list}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

fn names(list: &[serde_json::Value]) -> Vec<String> {
    list.iter().filter_map(|a| a["name"].as_str().map(str::to_string)).collect()
}

#[test]
fn accounts_are_added_edited_renamed_disabled_and_deleted_through_the_api_and_the_config_file_keeps_its_comments() {
    let dir = std::env::temp_dir().join(format!("labelgate-accounts-write-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("labelgate.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let state = dir.join("state");
    let (serve, _proxy, admin) = serve_as_configured(&["--config", config.to_str().unwrap(), "--state-dir", state.to_str().unwrap()]);
    let api = AdminApi { admin, token: std::fs::read_to_string(state.join("admin-token")).unwrap().trim().to_string() };
    let etag = api.etag();

    let fabrikam = format!(
        r#"{{"name": "Fabrikam", "tenant_id": "fabrikam.onmicrosoft.com", "client_id": "22222222-2222-2222-2222-222222222222", "retrieval": false, "client_secret": "{SECRET}"}}"#
    );
    // Without If-Match: 428. With a stale one: 412.
    assert_eq!(api.call("POST", "/api/v1/accounts", Some(&fabrikam), None).0, 428);
    assert_eq!(api.call("POST", "/api/v1/accounts", Some(&fabrikam), Some("\"0000\"")).0, 412);
    // Invalid fields: the messages `labelgate check` gives, at their field.
    let bad = r#"{"name": "Bad", "tenant_id": "a/b", "client_id": "c", "client_secret": "x", "refresh_interval": "soon"}"#;
    let (status, _, answer) = api.call("POST", "/api/v1/accounts", Some(bad), Some(&etag));
    assert_eq!(status, 400, "{answer}");
    let fields: Vec<&str> = answer["errors"].as_array().unwrap().iter().filter_map(|e| e["field"].as_str()).collect();
    assert!(fields.contains(&"tenant_id") && fields.contains(&"refresh_interval"), "{answer}");
    assert!(answer.to_string().contains("is not a tenant GUID or domain"), "{answer}");
    let dup = r#"{"name": " contoso ", "tenant_id": "t.onmicrosoft.com", "client_id": "c", "client_secret": "x"}"#;
    let (status, _, answer) = api.call("POST", "/api/v1/accounts", Some(dup), Some(&etag));
    assert_eq!((status, answer["errors"][0]["field"].as_str()), (400, Some("name")), "names are unique, trimmed, any case: {answer}");
    let long = format!(r#"{{"name": "{}", "tenant_id": "t", "client_id": "c"}}"#, "n".repeat(600));
    assert_eq!(api.call("POST", "/api/v1/accounts", Some(&long), Some(&etag)).0, 400, "fields are bounded");
    // Each field, invalid, answered at that field.
    let base = r#""tenant_id": "t.onmicrosoft.com", "client_id": "c", "client_secret": "x""#;
    let cases = [
        ("name", r#"{"name": "  ", "tenant_id": "t", "client_id": "c", "client_secret": "x"}"#.to_string()),
        ("client_id", r#"{"name": "N", "tenant_id": "t.onmicrosoft.com", "client_id": " ", "client_secret": "x"}"#.to_string()),
        ("authority_url", format!(r#"{{"name": "N", {base}, "authority_url": "ftp://x"}}"#)),
        ("graph_url", format!(r#"{{"name": "N", {base}, "graph_url": "graph"}}"#)),
        ("scope", format!(r#"{{"name": "N", {base}, "scope": "https://graph.microsoft.com/User.Read"}}"#)),
        ("api", format!(r#"{{"name": "N", {base}, "api": "v2"}}"#)),
        ("refresh_interval", format!(r#"{{"name": "N", {base}, "refresh_interval": "weekly"}}"#)),
        ("client_secret", r#"{"name": "N", "tenant_id": "t.onmicrosoft.com", "client_id": "c", "client_secret": " "}"#.to_string()),
        ("certificate_pem", r#"{"name": "N", "tenant_id": "t.onmicrosoft.com", "client_id": "c", "certificate_pem": "x"}"#.to_string()),
        ("tenant_id", r#"{"name": "N", "tenant_id": "a\u0007b", "client_id": "c", "client_secret": "x"}"#.to_string()),
    ];
    for (field, body) in cases {
        let (status, _, answer) = api.call("POST", "/api/v1/accounts", Some(&body), Some(&etag));
        assert_eq!(status, 400, "{field}: {answer}");
        let fields: Vec<&str> = answer["errors"].as_array().unwrap().iter().filter_map(|e| e["field"].as_str()).collect();
        assert!(fields.contains(&field), "{field}: {answer}");
    }
    let (status, _, answer) = api.call("POST", "/api/v1/accounts", Some(r#"{"name": "N", "retrieval": "yes"}"#), Some(&etag));
    assert_eq!(status, 400, "a field of the wrong type: {answer}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), CONFIG, "nothing refused was written");

    // Add: 201, a new ETag, the config appended to (everything before byte-identical), the
    // secret in its own 0600 file and nowhere else.
    let (status, new_etag, answer) = api.call("POST", "/api/v1/accounts", Some(&fabrikam), Some(&etag));
    assert_eq!(status, 201, "{answer}");
    let etag = new_etag.expect("a change answers the new ETag");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.starts_with(CONFIG), "the admin's text is kept byte for byte:\n{text}");
    assert!(!text.contains(SECRET));
    let secret_file =
        text.lines().find_map(|l| l.strip_prefix("client_secret_file = \"")).map(|l| l.trim_end_matches('"').to_string()).unwrap();
    assert_eq!(std::fs::read_to_string(&secret_file).unwrap(), SECRET);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&secret_file).unwrap().permissions().mode() & 0o777, 0o600);
    api.until("the reload adds Fabrikam", |l| names(l).contains(&"Fabrikam".to_string()));

    // Duplicate: the credential is not copied (so the copy needs one), names stay unique.
    let (status, _, answer) = api.call("POST", "/api/v1/accounts/Fabrikam/duplicate", Some(r#"{"name": "Fabrikam Copy"}"#), Some(&etag));
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["errors"][0]["field"], "client_secret", "{answer}");
    let (status, _, answer) = api.call("POST", "/api/v1/accounts/Fabrikam/duplicate", Some(r#"{"name": "fabrikam"}"#), Some(&etag));
    assert_eq!((status, answer["errors"][0]["field"].as_str()), (400, Some("name")), "{answer}");
    let copy = r#"{"name": "Fabrikam Copy", "client_secret": "another-secret-for-the-copy"}"#;
    let (status, next, answer) = api.call("POST", "/api/v1/accounts/Fabrikam/duplicate", Some(copy), Some(&etag));
    assert_eq!(status, 201, "{answer}");
    let etag = next.unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    assert_eq!(text.matches("tenant_id = \"fabrikam.onmicrosoft.com\"").count(), 2, "the copy keeps the keys:\n{text}");
    assert_eq!(text.matches("client_secret_file").count(), 2, "each its own secret file");
    api.until("the reload adds the copy", |l| names(l).contains(&"Fabrikam Copy".to_string()));
    let (status, next, _) = api.call("DELETE", "/api/v1/accounts/Fabrikam%20Copy", None, Some(&etag));
    assert_eq!(status, 200);
    let etag = next.unwrap();

    // Rename Fabrikam (its stored snapshot moves with it), then ten toggles of Contoso: the
    // text outside the edited tables stays byte for byte.
    let (status, renamed_etag, answer) = api.call("PUT", "/api/v1/accounts/Fabrikam", Some(r#"{"name": "Fabrikam EU"}"#), Some(&etag));
    assert_eq!(status, 200, "{answer}");
    let mut etag = renamed_etag.unwrap();
    api.until("the reload renames Fabrikam", |l| names(l) == vec!["Contoso".to_string(), "Fabrikam EU".to_string()]);
    for i in 0..10 {
        let path = if i % 2 == 0 { "/api/v1/accounts/Contoso/enable" } else { "/api/v1/accounts/Contoso/disable" };
        let (status, next, answer) = api.call("POST", path, None, Some(&etag));
        assert_eq!(status, 200, "{answer}");
        etag = next.unwrap();
    }
    let text = std::fs::read_to_string(&config).unwrap();
    let head = CONFIG.split("retrieval = false").next().unwrap();
    assert!(text.starts_with(head), "comments and formatting outside the edited values survive ten edits:\n{text}");
    assert!(text.contains("tenant_id = \"contoso.onmicrosoft.com\"  # by domain"));
    assert!(text.contains("retrieval = false"), "ten toggles end disabled");

    // Where the credential goes cannot change without the credential: a write token that does
    // not know the secret cannot send it elsewhere.
    let (status, _, answer) = api.call("PUT", "/api/v1/accounts/Contoso", Some(r#"{"authority_url": "http://evil.example"}"#), Some(&etag));
    assert_eq!((status, answer["errors"][0]["field"].as_str()), (400, Some("authority_url")), "{answer}");

    // A hand edit makes the client's ETag stale.
    std::fs::write(&config, format!("{text}\n# edited by hand\n")).unwrap();
    assert_eq!(api.call("DELETE", "/api/v1/accounts/Fabrikam%20EU", None, Some(&etag)).0, 412);
    let etag = api.etag();
    assert_eq!(api.call("DELETE", "/api/v1/accounts/Nobody", None, Some(&etag)).0, 404);
    let (status, etag_after_delete, _) = api.call("DELETE", "/api/v1/accounts/Fabrikam%20EU", None, Some(&etag));
    assert_eq!(status, 200);
    api.until("the reload deletes Fabrikam EU", |l| names(l) == vec!["Contoso".to_string()]);
    assert!(!std::path::Path::new(&secret_file).exists(), "a deleted account's secret file goes with it");

    // A read-only config: 409 config_read_only.
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o444)).unwrap();
    let (status, _, answer) = api.call("POST", "/api/v1/accounts/Contoso/enable", None, Some(&etag_after_delete.unwrap()));
    assert_eq!((status, answer["error"].as_str()), (409, Some("config_read_only")), "{answer}");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();

    // Every change is in the audit trail, with who and what, never the secret.
    let changes = serve.audit_until(|r| r.iter().filter(|r| r["event"] == "account_change").count() >= 15);
    let changes: Vec<&serde_json::Value> = changes.iter().filter(|r| r["event"] == "account_change").collect();
    assert_eq!(changes[0]["who"], "admin");
    assert_eq!(changes[0]["what"], "add");
    assert_eq!(changes[0]["after"]["client_secret_file"], "(set)");
    assert_eq!(changes[1]["what"], "duplicate");
    assert_eq!(changes[3]["before"]["name"], "Fabrikam");
    assert_eq!(changes[3]["after"]["name"], "Fabrikam EU");
    // The secret is in its own file only: not in the config, the state, the audit, the logs.
    let mut everywhere = std::fs::read_to_string(&config).unwrap();
    for record in serve.audit() {
        everywhere.push_str(&record.to_string());
    }
    for line in serve.2.lock().unwrap().iter() {
        everywhere.push_str(line);
    }
    for f in std::fs::read_dir(&state).unwrap().flatten().filter(|e| e.path().is_file()) {
        everywhere.push_str(&String::from_utf8_lossy(&std::fs::read(f.path()).unwrap()));
    }
    assert!(!everywhere.contains(SECRET), "the secret leaked");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `labelgate accounts …` against the running instance: (exit code, stdout, stderr).
fn cli(
    config: &std::path::Path,
    state: &std::path::Path,
    admin: Option<std::net::SocketAddr>,
    args: &[&str],
    stdin: Option<&str>,
) -> (i32, String, String) {
    use std::io::Write;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_labelgate"));
    cmd.arg("accounts").args(args).arg("--config").arg(config).arg("--state-dir").arg(state);
    match admin {
        Some(a) => cmd.args(["--admin-url", &format!("http://{a}")]),
        // Nothing listens on the discard port.
        None => cmd.args(["--admin-url", "http://127.0.0.1:9"]),
    };
    let mut child =
        cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    if let Some(s) = stdin {
        child.stdin.as_mut().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn the_accounts_cli_manages_a_running_instance_with_exit_codes_scripts_can_rely_on() {
    let dir = std::env::temp_dir().join(format!("labelgate-accounts-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("labelgate.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let state = dir.join("state");
    let (serve, _proxy, admin) = serve_as_configured(&["--config", config.to_str().unwrap(), "--state-dir", state.to_str().unwrap()]);
    let run = |args: &[&str], stdin: Option<&str>| cli(&config, &state, Some(admin), args, stdin);
    let list = || -> Vec<String> {
        let (code, out, err) = run(&["list", "--json"], None);
        assert_eq!(code, 0, "{err}");
        let v: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        v.iter().filter_map(|a| a["name"].as_str().map(str::to_string)).collect()
    };
    let until = |what: &str, want: Vec<&str>| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while list() != want {
            assert!(std::time::Instant::now() < deadline, "{what}: {:?}", list());
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    // Add, the secret from standard input (never an argument).
    let (code, _, err) = run(
        &[
            "add",
            "Fabrikam",
            "--tenant-id",
            "fabrikam.onmicrosoft.com",
            "--client-id",
            "22222222-2222-2222-2222-222222222222",
            "--retrieval",
            "false",
            "--client-secret-stdin",
        ],
        Some(SECRET),
    );
    assert_eq!(code, 0, "{err}");
    until("added", vec!["Contoso", "Fabrikam"]);
    assert!(!std::fs::read_to_string(&config).unwrap().contains(SECRET));
    // Invalid input: exit 1 with the field named; a name taken: 1; unknown: 3; usage: 2.
    let (code, _, err) = run(&["add", "Bad", "--tenant-id", "a/b", "--client-id", "c", "--client-secret-stdin"], Some("x"));
    assert_eq!(code, 1);
    assert!(err.contains("tenant_id: "), "{err}");
    assert_eq!(run(&["delete", "Nobody"], None).0, 3);
    assert_eq!(run(&["add"], None).0, 2);
    // Rename, disable, show, validate (the env secret is unset: not valid, exit 1), delete.
    assert_eq!(run(&["rename", "Fabrikam", "Fabrikam EU"], None).0, 0);
    until("renamed", vec!["Contoso", "Fabrikam EU"]);
    assert_eq!(run(&["enable", "Contoso"], None).0, 0);
    let (code, out, _) = run(&["show", "Contoso"], None);
    assert_eq!(code, 0);
    assert!(out.contains("\"name\": \"Contoso\""), "{out}");
    let (code, out, _) = run(&["validate", "Contoso", "--json"], None);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("\"valid\": false"), "{out}");
    assert_eq!(run(&["edit", "Contoso", "--refresh-interval", "30m"], None).0, 0);
    let secret_file = dir.join("copy.secret");
    std::fs::write(&secret_file, "copy-secret-value").unwrap();
    let (code, _, err) = run(&["duplicate", "Contoso", "Contoso 2", "--client-secret-file", secret_file.to_str().unwrap()], None);
    assert_eq!(code, 0, "{err}");
    until("duplicated", vec!["Contoso", "Contoso 2", "Fabrikam EU"]);
    assert!(std::fs::read_to_string(&config).unwrap().contains("refresh_interval = \"30m\""));
    assert_eq!(run(&["refresh", "Contoso"], None).0, 0);
    let (code, out, _) = run(&["labels", "Contoso", "--csv"], None);
    assert_eq!(code, 0);
    assert!(out.starts_with("id,"), "{out}");
    assert_eq!(run(&["delete", "Contoso 2"], None).0, 0);
    assert_eq!(run(&["delete", "Fabrikam EU"], None).0, 0);
    until("deleted", vec!["Contoso"]);
    // A read-only config: conflict, 4.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o444)).unwrap();
    assert_eq!(run(&["disable", "Contoso"], None).0, 4);
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    // The API unreachable: reads fall back to the stored snapshots (said on stderr); changes fail.
    drop(serve);
    let (code, out, err) = cli(&config, &state, None, &["list"], None);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("unreachable") && out.contains("Contoso"), "{out}{err}");
    assert_eq!(cli(&config, &state, None, &["disable", "Contoso"], None).0, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_mip_labels_page_is_served_by_the_binary_with_a_strict_policy() {
    // The page and its assets come from the binary (no CDN, no inline script: the CSP forbids
    // it), and the API says who a token is.
    let dir = std::env::temp_dir().join(format!("labelgate-ui-served-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (_serve, _proxy, admin) = serve_with(&["--state-dir", dir.join("state").to_str().unwrap()]);
    for (path, kind) in [("/ui/", "text/html"), ("/ui/app.js", "text/javascript"), ("/ui/app.css", "text/css")] {
        let out = std::process::Command::new("curl")
            .args(["-s", "-D", "-", "-o", "/dev/null", &format!("http://{admin}{path}")])
            .output()
            .unwrap();
        let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
        assert!(head.contains(&format!("content-type: {kind}")), "{path}: {head}");
        assert!(head.contains("content-security-policy: default-src 'self'; frame-ancestors 'none'; base-uri 'none'"), "{path}: {head}");
        assert!(head.contains("x-content-type-options: nosniff"), "{path}: {head}");
    }
    let page = std::process::Command::new("curl").args(["-s", &format!("http://{admin}/ui/")]).output().unwrap();
    let page = String::from_utf8_lossy(&page.stdout);
    assert!(!page.contains("<script>") && page.contains("<script type=\"module\" src=\"/ui/app.js\""), "no inline script");
    let token = std::fs::read_to_string(dir.join("state/admin-token")).unwrap().trim().to_string();
    let api = AdminApi { admin, token };
    let (status, _, who) = api.call("GET", "/api/v1/whoami", None, None);
    assert_eq!((status, who["name"].as_str(), who["role"].as_str()), (200, Some("admin"), Some("write")));
    let _ = std::fs::remove_dir_all(&dir);
}
