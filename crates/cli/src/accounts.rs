//! `labelgate accounts`: the MIP accounts, managed through the running instance's admin API
//! (address and token from the config and the state dir, or `--admin-url` / `--token-file` /
//! `LABELGATE_ADMIN_URL` / `LABELGATE_ADMIN_TOKEN`). Reads fall back to what `labelgate serve`
//! last stored in the state directory when the API is unreachable (said on standard error);
//! changes need the API. Secrets are read from a file or standard input, never an argument.
//! Exit codes: 0 ok, 1 failed, 2 usage, 3 not found, 4 conflict (the config changed meanwhile, or
//! cannot be written).

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct AccountsArgs {
    /// State directory of `labelgate serve`.
    #[arg(long, value_name = "DIR", default_value = "state", global = true)]
    state_dir: PathBuf,
    /// Print JSON.
    #[arg(long, global = true)]
    json: bool,
    /// The admin API (default: from [admin] listen; https when it has tls_cert).
    #[arg(long, value_name = "URL", env = "LABELGATE_ADMIN_URL", global = true)]
    admin_url: Option<String>,
    /// A file holding the API token (default: LABELGATE_ADMIN_TOKEN, else <state-dir>/admin-token).
    #[arg(long, value_name = "FILE", global = true)]
    token_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<AccountsCommand>,
}

/// The `[[accounts]]` keys a change sets.
#[derive(Args, Debug, Default, Clone)]
struct Fields {
    /// Tenant id (GUID) or domain.
    #[arg(long)]
    tenant_id: Option<String>,
    /// The app registration's client id.
    #[arg(long)]
    client_id: Option<String>,
    #[arg(long)]
    authority_url: Option<String>,
    #[arg(long)]
    graph_url: Option<String>,
    #[arg(long)]
    scope: Option<String>,
    /// `beta` or `v1.0`.
    #[arg(long)]
    api: Option<String>,
    /// Label retrieval on or off.
    #[arg(long)]
    retrieval: Option<bool>,
    /// Like 12h, 30m, 90s.
    #[arg(long)]
    refresh_interval: Option<String>,
    /// Read the client secret from this file.
    #[arg(long, value_name = "FILE")]
    client_secret_file: Option<PathBuf>,
    /// Read the client secret from standard input.
    #[arg(long)]
    client_secret_stdin: bool,
    /// A certificate (PEM) for the client-assertion flow, with --private-key-file.
    #[arg(long, value_name = "FILE")]
    certificate_file: Option<PathBuf>,
    /// Its PKCS#8 private key (PEM).
    #[arg(long, value_name = "FILE")]
    private_key_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug, Clone)]
enum AccountsCommand {
    /// List the accounts (the default).
    List {
        /// Only accounts whose name, tenant, client id or status contains this text.
        #[arg(long, short)]
        query: Option<String>,
    },
    /// One account's labels.
    Labels {
        /// The account name.
        name: String,
        /// Print CSV (the admin API's labels.csv).
        #[arg(long)]
        csv: bool,
    },
    /// One account: its status, last error and recent status changes.
    Show { name: String },
    /// Add an account.
    Add {
        /// Its name (unique).
        name: String,
        #[command(flatten)]
        fields: Fields,
    },
    /// Change an account's keys or credential.
    Edit {
        name: String,
        #[command(flatten)]
        fields: Fields,
    },
    /// Rename an account (its stored labels move with it).
    Rename { name: String, new_name: String },
    /// Delete an account.
    Delete { name: String },
    /// Copy an account under a new name (the credential only when given).
    Duplicate {
        name: String,
        new_name: String,
        #[command(flatten)]
        fields: Fields,
    },
    /// Ask for a token and one page of labels now.
    Validate { name: String },
    /// Retrieve the labels now.
    Refresh { name: String },
    /// Turn label retrieval on.
    Enable { name: String },
    /// Turn label retrieval off.
    Disable { name: String },
}

pub fn run(config: Option<&Path>, args: &AccountsArgs) -> Result<ExitCode> {
    let loaded = match crate::load_or_report(config)? {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let command = args.command.clone().unwrap_or(AccountsCommand::List { query: None });
    let api = Remote::new(&loaded, args);
    match remote(&api, &command, args.json) {
        Ok(code) => return Ok(code),
        Err(Unreachable(why)) => {
            if !matches!(command, AccountsCommand::List { .. } | AccountsCommand::Labels { .. }) {
                eprintln!("labelgate accounts: the admin API is unreachable ({why}); changes need a running labelgate serve");
                return Ok(ExitCode::from(1));
            }
            eprintln!(
                "labelgate accounts: the admin API is unreachable ({why}); showing what serve last stored in {}",
                args.state_dir.display()
            );
        }
    }
    let stored = labelgate_sync::stored_accounts(&args.state_dir, &loaded.file.accounts);
    match &command {
        AccountsCommand::List { query } => {
            let q = query.as_deref().map(str::to_lowercase);
            let views: Vec<&labelgate_sync::AccountView> = stored
                .iter()
                .map(|(v, _)| v)
                .filter(|v| {
                    q.as_deref().is_none_or(|q| {
                        [v.name.as_str(), &v.tenant_id, &v.client_id, v.status.as_str()].iter().any(|f| f.to_lowercase().contains(q))
                    })
                })
                .collect();
            if args.json {
                println!("{}", serde_json::to_string_pretty(&views)?);
                return Ok(ExitCode::SUCCESS);
            }
            if views.is_empty() {
                println!("no accounts{}", if loaded.file.accounts.is_empty() { " configured ([[accounts]])" } else { " match" });
                return Ok(ExitCode::SUCCESS);
            }
            println!("{:<24} {:<20} {:>6}  {:<22} LAST ERROR", "NAME", "STATUS", "LABELS", "LAST RETRIEVAL");
            for v in views {
                let error = v.last_error.as_ref().map_or_else(String::new, |e| e.message.clone());
                println!(
                    "{:<24} {:<20} {:>6}  {:<22} {error}",
                    v.name,
                    v.status.as_str(),
                    v.label_count,
                    v.last_retrieval.as_deref().unwrap_or("never")
                );
            }
        }
        AccountsCommand::Labels { name, csv } => {
            let Some((_, labels)) = stored.iter().find(|(v, _)| v.name == *name) else {
                bail!("no account named {name:?} in the configuration");
            };
            if *csv {
                print!("{}", labelgate_admin::api::labels_csv(labels));
            } else if args.json {
                println!("{}", serde_json::to_string_pretty(labels)?);
            } else {
                for l in labels {
                    let parent =
                        l.parent.as_deref().and_then(|p| labels.iter().find(|x| x.id == p)).map(|p| format!("{} \\ ", p.display_name));
                    let flags =
                        [(!l.is_active).then_some("inactive"), l.deleted.then_some("deleted"), l.has_protection.then_some("protected")];
                    let flags: Vec<&str> = flags.into_iter().flatten().collect();
                    println!(
                        "{}  {}{}{}",
                        l.id,
                        parent.unwrap_or_default(),
                        l.display_name,
                        if flags.is_empty() { String::new() } else { format!("  ({})", flags.join(", ")) }
                    );
                }
            }
        }
        _ => unreachable_command(),
    }
    Ok(ExitCode::SUCCESS)
}

fn unreachable_command() {}

/// The admin API could not be reached (no answer at all).
struct Unreachable(String);

/// The running instance's admin API.
struct Remote {
    base: String,
    token: Option<String>,
    tls_root: Option<PathBuf>,
}

impl Remote {
    fn new(loaded: &labelgate_config::LoadedConfig, args: &AccountsArgs) -> Remote {
        let admin = &loaded.file.admin;
        let base = args.admin_url.clone().unwrap_or_else(|| {
            let scheme = if admin.tls_cert.is_some() { "https" } else { "http" };
            format!("{scheme}://{}", admin.listen)
        });
        let token = match &args.token_file {
            Some(f) => std::fs::read_to_string(f).ok().map(|t| t.trim().to_string()),
            None => std::env::var("LABELGATE_ADMIN_TOKEN")
                .ok()
                .or_else(|| admin.named_tokens(&loaded.base_dir, &args.state_dir).ok().and_then(|t| t.into_iter().next()).map(|t| t.value)),
        };
        let tls_root = admin.tls_cert.as_ref().map(|c| loaded.base_dir.join(c));
        Remote { base: base.trim_end_matches('/').to_string(), token, tls_root }
    }

    /// One request: (status, ETag, body); `Err` when nothing answered.
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
        if_match: Option<&str>,
    ) -> Result<(u16, Option<String>, String), Unreachable> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| Unreachable(e.to_string()))?;
        runtime.block_on(async {
            let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
            if let Some(pem) = &self.tls_root {
                use rustls::pki_types::pem::PemObject;
                for cert in rustls::pki_types::CertificateDer::pem_file_iter(pem).map_err(|e| Unreachable(e.to_string()))?.flatten() {
                    let _ = roots.add(cert);
                }
            }
            let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| Unreachable(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            let client = reqwest::Client::builder()
                .use_preconfigured_tls(tls)
                .no_proxy()
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .map_err(|e| Unreachable(e.to_string()))?;
            let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| Unreachable(e.to_string()))?;
            let mut req = client.request(method, format!("{}{path}", self.base));
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            if let Some(e) = if_match {
                req = req.header("If-Match", e);
            }
            if let Some(b) = body {
                req = req.header("Content-Type", "application/json").body(b);
            }
            let resp = req.send().await.map_err(|e| Unreachable(e.to_string()))?;
            let status = resp.status().as_u16();
            let etag = resp.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_string);
            let text = resp.text().await.map_err(|e| Unreachable(e.to_string()))?;
            Ok((status, etag, text))
        })
    }
}

/// The account path of `name`, percent-encoded.
fn account_path(name: &str) -> String {
    let mut out = String::from("/api/v1/accounts/");
    for b in name.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The JSON body of a change: the given keys and the credential, read from files or stdin.
fn body_of(name: Option<&str>, f: &Fields) -> std::result::Result<String, String> {
    let mut o = serde_json::Map::new();
    if let Some(n) = name {
        o.insert("name".into(), n.into());
    }
    let strings = [
        ("tenant_id", &f.tenant_id),
        ("client_id", &f.client_id),
        ("authority_url", &f.authority_url),
        ("graph_url", &f.graph_url),
        ("scope", &f.scope),
        ("api", &f.api),
        ("refresh_interval", &f.refresh_interval),
    ];
    for (k, v) in strings {
        if let Some(v) = v {
            o.insert(k.into(), v.clone().into());
        }
    }
    if let Some(r) = f.retrieval {
        o.insert("retrieval".into(), r.into());
    }
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    if let Some(p) = &f.client_secret_file {
        o.insert("client_secret".into(), read(p)?.trim().to_string().into());
    } else if f.client_secret_stdin {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map_err(|e| format!("standard input: {e}"))?;
        o.insert("client_secret".into(), s.trim().to_string().into());
    }
    if let (Some(c), Some(k)) = (&f.certificate_file, &f.private_key_file) {
        o.insert("certificate_pem".into(), read(c)?.into());
        o.insert("private_key_pem".into(), read(k)?.into());
    }
    Ok(serde_json::Value::Object(o).to_string())
}

/// The exit code of an API answer: 0 ok, 1 failed, 3 not found, 4 conflict.
fn code_of(status: u16) -> ExitCode {
    match status {
        200..=299 => ExitCode::SUCCESS,
        404 => ExitCode::from(3),
        409 | 412 => ExitCode::from(4),
        _ => ExitCode::from(1),
    }
}

/// Runs `command` against the admin API.
fn remote(api: &Remote, command: &AccountsCommand, json: bool) -> std::result::Result<ExitCode, Unreachable> {
    use AccountsCommand as C;
    let show = |status: u16, body: &str| -> ExitCode {
        if (200..300).contains(&status) {
            if json || body.trim_start().starts_with('{') && !body.contains("\"ok\"") {
                println!("{}", body.trim_end());
            }
        } else {
            let v: serde_json::Value = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
            if json {
                eprintln!("{}", body.trim_end());
            } else if let Some(list) = v["errors"].as_array() {
                for e in list {
                    match e["field"].as_str() {
                        Some(f) => eprintln!("{f}: {}", e["message"].as_str().unwrap_or("")),
                        None => eprintln!("{}", e["message"].as_str().unwrap_or("")),
                    }
                }
            } else {
                eprintln!("{}", v["error"].as_str().unwrap_or(body.trim()));
            }
        }
        code_of(status)
    };
    // A change: the ETag first, then the change under If-Match.
    let change = |method: &str, path: String, body: Option<String>| -> std::result::Result<ExitCode, Unreachable> {
        let (status, etag, text) = api.call("GET", "/api/v1/accounts", None, None)?;
        if status != 200 {
            return Ok(show(status, &text));
        }
        let (status, _, text) = api.call(method, &path, body, etag.as_deref())?;
        Ok(show(status, &text))
    };
    let fields_body = |name: Option<&str>, f: &Fields| {
        body_of(name, f).map_err(|e| {
            eprintln!("labelgate accounts: {e}");
        })
    };
    match command {
        C::List { query } => {
            let path = match query {
                Some(q) => format!("/api/v1/accounts?q={}", account_path(q).trim_start_matches("/api/v1/accounts/")),
                None => "/api/v1/accounts".to_string(),
            };
            let (status, _, text) = api.call("GET", &path, None, None)?;
            if status != 200 || json {
                return Ok(show(status, &text));
            }
            let list: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap_or_default();
            println!("{:<24} {:<20} {:>6}  {:<22} LAST ERROR", "NAME", "STATUS", "LABELS", "LAST RETRIEVAL");
            for a in list {
                println!(
                    "{:<24} {:<20} {:>6}  {:<22} {}",
                    a["name"].as_str().unwrap_or(""),
                    a["status"].as_str().unwrap_or(""),
                    a["label_count"],
                    a["last_retrieval"].as_str().unwrap_or("never"),
                    a["last_error"]["message"].as_str().unwrap_or("")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        C::Labels { name, csv } => {
            let path = format!("{}/{}", account_path(name), if *csv { "labels.csv" } else { "labels" });
            let (status, _, text) = api.call("GET", &path, None, None)?;
            if status != 200 || *csv || json {
                if status == 200 {
                    print!("{text}");
                    return Ok(ExitCode::SUCCESS);
                }
                return Ok(show(status, &text));
            }
            let labels: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap_or_default();
            for l in labels {
                println!("{}  {}", l["id"].as_str().unwrap_or(""), l["display_name"].as_str().or(l["name"].as_str()).unwrap_or(""));
            }
            Ok(ExitCode::SUCCESS)
        }
        C::Show { name } => {
            let (status, _, text) = api.call("GET", &account_path(name), None, None)?;
            Ok(show(status, &text))
        }
        C::Add { name, fields } => match fields_body(Some(name), fields) {
            Ok(body) => change("POST", "/api/v1/accounts".into(), Some(body)),
            Err(()) => Ok(ExitCode::from(1)),
        },
        C::Edit { name, fields } => match fields_body(None, fields) {
            Ok(body) => change("PUT", account_path(name), Some(body)),
            Err(()) => Ok(ExitCode::from(1)),
        },
        C::Rename { name, new_name } => change("PUT", account_path(name), Some(serde_json::json!({"name": new_name}).to_string())),
        C::Delete { name } => change("DELETE", account_path(name), None),
        C::Duplicate { name, new_name, fields } => match fields_body(Some(new_name), fields) {
            Ok(body) => change("POST", format!("{}/duplicate", account_path(name)), Some(body)),
            Err(()) => Ok(ExitCode::from(1)),
        },
        C::Enable { name } => change("POST", format!("{}/enable", account_path(name)), None),
        C::Disable { name } => change("POST", format!("{}/disable", account_path(name)), None),
        C::Validate { name } => {
            let (status, _, text) = api.call("POST", &format!("{}/validate", account_path(name)), None, None)?;
            let code = show(status, &text);
            let valid = serde_json::from_str::<serde_json::Value>(&text).ok().is_some_and(|v| v["valid"] == true);
            Ok(if status == 200 && !valid { ExitCode::from(1) } else { code })
        }
        C::Refresh { name } => {
            let (status, _, text) = api.call("POST", &format!("{}/refresh", account_path(name)), None, None)?;
            Ok(show(status, &text))
        }
    }
}
