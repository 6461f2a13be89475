//! Account changes: `[[accounts]]` tables added, edited, renamed, duplicated, switched on or
//! off and deleted. Secrets go to 0600 files under the state directory and are referenced from
//! the config; they never appear in the config text or in any answer.

use super::{commit, draft, invalid, same_name, validated, Applied, EditError, FieldError};

use std::path::{Path, PathBuf};

/// Bytes a field may have (secrets: [`MAX_SECRET`]).
pub const MAX_FIELD: usize = 512;
/// Bytes a secret (client secret, certificate or key PEM) may have.
pub const MAX_SECRET: usize = 64 * 1024;

/// The `[[accounts]]` keys a change may set, and the credential.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountInput {
    /// The `name` key (unchanged when absent).
    pub name: Option<String>,
    /// The `tenant_id` key (unchanged when absent).
    pub tenant_id: Option<String>,
    /// The `client_id` key (unchanged when absent).
    pub client_id: Option<String>,
    /// The `authority_url` key (unchanged when absent).
    pub authority_url: Option<String>,
    /// The `graph_url` key (unchanged when absent).
    pub graph_url: Option<String>,
    /// The `scope` key (unchanged when absent).
    pub scope: Option<String>,
    /// The `api` key (unchanged when absent).
    pub api: Option<String>,
    /// The `retrieval` key (unchanged when absent).
    pub retrieval: Option<bool>,
    /// The `refresh_interval` key (unchanged when absent).
    pub refresh_interval: Option<String>,
    /// A client secret (written to its own 0600 file).
    pub client_secret: Option<String>,
    /// A certificate (PEM) and its PKCS#8 key (PEM), written to their own 0600 files.
    pub certificate_pem: Option<String>,
    /// The `private_key_pem` key (unchanged when absent).
    pub private_key_pem: Option<String>,
}

impl AccountInput {
    /// The text keys of an account, with what the change gives for each.
    fn text_fields(&self) -> [(&'static str, &Option<String>); 8] {
        [
            ("name", &self.name),
            ("tenant_id", &self.tenant_id),
            ("client_id", &self.client_id),
            ("authority_url", &self.authority_url),
            ("graph_url", &self.graph_url),
            ("scope", &self.scope),
            ("api", &self.api),
            ("refresh_interval", &self.refresh_interval),
        ]
    }
}

/// One change to the accounts.
#[derive(Debug, Clone)]
pub enum AccountChange {
    /// A new account.
    Add(AccountInput),
    /// Edit (rename included, with `input.name`).
    #[allow(missing_docs)]
    Edit { name: String, input: AccountInput },
    /// Remove an account.
    #[allow(missing_docs)]
    Delete { name: String },
    /// A copy under `input.name`; the credential only when given.
    #[allow(missing_docs)]
    Duplicate { name: String, input: AccountInput },
    /// Label retrieval on or off.
    #[allow(missing_docs)]
    Retrieval { name: String, on: bool },
}

/// Applies `change` to the config file at `path` if its ETag is still `if_match`.
pub fn apply(path: Option<&Path>, state_dir: &Path, if_match: &str, change: AccountChange) -> Result<Applied, EditError> {
    let (path, mut doc) = draft(path, if_match)?;
    let mut secrets: Vec<(PathBuf, String)> = Vec::new();
    // Credential files the change leaves unreferenced (removed once the config is written).
    let mut replaced: Vec<PathBuf> = Vec::new();
    let (before, after, renamed) = {
        let accounts = accounts_of(&mut doc)?;
        let find = |accounts: &toml_edit::ArrayOfTables, name: &str| {
            accounts.iter().position(|t| t.get("name").and_then(|v| v.as_str()).is_some_and(|n| same_name(n, name)))
        };
        match change {
            AccountChange::Add(input) => {
                bounded(&input)?;
                let name = input.name.clone().unwrap_or_default();
                if find(accounts, &name).is_some() {
                    return Err(invalid("name", format!("an account named {:?} exists", name.trim())));
                }
                needs_credential(&input)?;
                let mut table = toml_edit::Table::new();
                set_fields(&mut table, &input, state_dir, &mut secrets)?;
                let after = describe(&table);
                accounts.push(table);
                (None, Some(after), None)
            }
            AccountChange::Edit { name, input } => {
                bounded(&input)?;
                let i = find(accounts, &name).ok_or_else(no_such_account)?;
                if let Some(new) = &input.name {
                    if !same_name(new, &name) && find(accounts, new).is_some() {
                        return Err(invalid("name", format!("an account named {:?} exists", new.trim())));
                    }
                }
                let table = accounts.get_mut(i).ok_or_else(no_such_account)?;
                // Where the credential goes and what it is for cannot change without the
                // credential itself: a write token that does not know the secret must not be able
                // to send it (or a token bought with it) somewhere else.
                let new_credential = input.client_secret.is_some() || input.certificate_pem.is_some();
                for (key, given) in [
                    ("authority_url", &input.authority_url),
                    ("graph_url", &input.graph_url),
                    ("scope", &input.scope),
                    ("tenant_id", &input.tenant_id),
                    ("client_id", &input.client_id),
                ] {
                    let current = table.get(key).and_then(|v| v.as_str()).map(str::to_string);
                    if given.as_ref().is_some_and(|g| Some(g) != current.as_ref()) && !new_credential {
                        return Err(invalid(
                            key,
                            format!("changing {key} needs the credential again (client_secret, or certificate_pem and private_key_pem)"),
                        ));
                    }
                }
                let before = describe(table);
                let old = table.get("name").and_then(|v| v.as_str()).unwrap_or_default().to_string();
                if new_credential {
                    replaced.extend(credential_files(table));
                }
                set_fields(table, &input, state_dir, &mut secrets)?;
                let new = table.get("name").and_then(|v| v.as_str()).unwrap_or_default().to_string();
                let renamed = (old != new).then_some((old, new));
                (Some(before), Some(describe(table)), renamed)
            }
            AccountChange::Delete { name } => {
                let i = find(accounts, &name).ok_or_else(no_such_account)?;
                let before = accounts.get(i).map(describe);
                if let Some(t) = accounts.get(i) {
                    replaced.extend(credential_files(t));
                }
                accounts.remove(i);
                (before, None, None)
            }
            AccountChange::Duplicate { name, input } => {
                bounded(&input)?;
                let i = find(accounts, &name).ok_or_else(no_such_account)?;
                let new_name = input.name.clone().unwrap_or_default();
                if find(accounts, &new_name).is_some() {
                    return Err(invalid("name", format!("an account named {:?} exists", new_name.trim())));
                }
                let mut copy = accounts.get(i).cloned().ok_or_else(no_such_account)?;
                copy.decor_mut().clear();
                // The credential is not copied unless given.
                for k in ["client_secret_env", "client_secret_file", "certificate_file", "private_key_file"] {
                    copy.remove(k);
                }
                needs_credential(&input)?;
                set_fields(&mut copy, &input, state_dir, &mut secrets)?;
                let after = describe(&copy);
                accounts.push(copy);
                (None, Some(after), None)
            }
            AccountChange::Retrieval { name, on } => {
                let i = find(accounts, &name).ok_or_else(no_such_account)?;
                let table = accounts.get_mut(i).ok_or_else(no_such_account)?;
                let before = describe(table);
                table["retrieval"] = toml_edit::value(on);
                (Some(before), Some(describe(table)), None)
            }
        }
    };
    let new_text = validated(&path, &doc, super::field_of)?;
    for (file, content) in &secrets {
        write_private(file, content)?;
    }
    let etag = commit(&path, if_match, &new_text).inspect_err(|_| {
        for (file, _) in &secrets {
            let _ = std::fs::remove_file(file);
        }
    })?;
    // Credentials no longer referenced: only files this module wrote, under the state dir.
    let ours = state_dir.join("secrets");
    for file in replaced {
        let mine = file.file_name().is_some_and(|n| n.to_string_lossy().starts_with("account-"));
        let within = std::fs::canonicalize(&file).ok().zip(std::fs::canonicalize(&ours).ok()).is_some_and(|(f, d)| f.starts_with(d));
        if mine && within {
            let _ = std::fs::remove_file(&file);
        }
    }
    Ok(Applied { etag, before, after, renamed })
}

/// A new account (or a copy, which does not inherit one) needs its own credential: said at the
/// field the client can fill, not at the config key it would become.
fn needs_credential(input: &AccountInput) -> Result<(), EditError> {
    if input.client_secret.is_none() && input.certificate_pem.is_none() {
        return Err(invalid("client_secret", "a client secret (or certificate_pem and private_key_pem) is required".into()));
    }
    Ok(())
}

fn no_such_account() -> EditError {
    EditError::NotFound("no such account".into())
}

/// Every field bounded, and free of control characters.
fn bounded(input: &AccountInput) -> Result<(), EditError> {
    let fields = input.text_fields();
    let mut errors = Vec::new();
    for (field, value) in fields {
        if let Some(v) = value {
            if v.len() > MAX_FIELD {
                errors.push(FieldError { field: Some(field.into()), message: format!("{field} is longer than {MAX_FIELD} bytes") });
            } else if v.chars().any(char::is_control) {
                errors.push(FieldError { field: Some(field.into()), message: format!("{field} holds a control character") });
            }
        }
    }
    if input.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        errors.push(FieldError { field: Some("name".into()), message: "name must not be empty".into() });
    }
    for (field, value) in
        [("client_secret", &input.client_secret), ("certificate_pem", &input.certificate_pem), ("private_key_pem", &input.private_key_pem)]
    {
        if value.as_ref().is_some_and(|v| v.len() > MAX_SECRET || v.trim().is_empty()) {
            errors.push(FieldError { field: Some(field.into()), message: format!("{field} must be 1 to {MAX_SECRET} bytes") });
        }
    }
    if input.certificate_pem.is_some() != input.private_key_pem.is_some() {
        errors
            .push(FieldError { field: Some("certificate_pem".into()), message: "certificate_pem and private_key_pem go together".into() });
    }
    if input.client_secret.is_some() && input.certificate_pem.is_some() {
        errors.push(FieldError { field: Some("client_secret".into()), message: "give a client secret or a certificate, not both".into() });
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(EditError::Invalid(errors))
    }
}

/// The `[[accounts]]` array of the document (created when absent). Accounts written some other
/// way (an inline array) are left for the admin to edit by hand.
fn accounts_of(doc: &mut toml_edit::DocumentMut) -> Result<&mut toml_edit::ArrayOfTables, EditError> {
    if doc.get("accounts").is_none() {
        doc.insert("accounts", toml_edit::Item::ArrayOfTables(toml_edit::ArrayOfTables::new()));
    }
    match doc.get_mut("accounts") {
        Some(toml_edit::Item::ArrayOfTables(a)) => Ok(a),
        _ => Err(EditError::ReadOnly("accounts are not written as [[accounts]] tables; edit them by hand".into())),
    }
}

/// Sets the given fields of an account table; a credential goes to its own files.
fn set_fields(
    table: &mut toml_edit::Table,
    input: &AccountInput,
    state_dir: &Path,
    secrets: &mut Vec<(PathBuf, String)>,
) -> Result<(), EditError> {
    let strings = input.text_fields();
    for (key, value) in strings {
        if let Some(v) = value {
            let v = if key == "name" { v.trim() } else { v.as_str() };
            table[key] = toml_edit::value(v);
        }
    }
    if let Some(r) = input.retrieval {
        table["retrieval"] = toml_edit::value(r);
    }
    let dir = state_dir.join("secrets");
    let fresh = |ext: &str| -> Result<PathBuf, EditError> {
        let mut bytes = [0u8; 12];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).map_err(|_| EditError::Io("no randomness".into()))?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Ok(std::path::absolute(dir.join(format!("account-{id}.{ext}"))).unwrap_or_else(|_| dir.join(format!("account-{id}.{ext}"))))
    };
    let mut credential = |pairs: Vec<(&str, PathBuf, String)>| {
        for k in ["client_secret_env", "client_secret_file", "certificate_file", "private_key_file"] {
            table.remove(k);
        }
        for (key, file, content) in pairs {
            table[key] = toml_edit::value(file.display().to_string());
            secrets.push((file, content));
        }
    };
    if let Some(secret) = &input.client_secret {
        credential(vec![("client_secret_file", fresh("secret")?, secret.trim().to_string())]);
    } else if let (Some(cert), Some(key)) = (&input.certificate_pem, &input.private_key_pem) {
        credential(vec![("certificate_file", fresh("crt.pem")?, cert.clone()), ("private_key_file", fresh("key.pem")?, key.clone())]);
    }
    Ok(())
}

/// The credential files an account table references.
fn credential_files(table: &toml_edit::Table) -> Vec<PathBuf> {
    ["client_secret_file", "certificate_file", "private_key_file"]
        .iter()
        .filter_map(|k| table.get(k)?.as_str().map(PathBuf::from))
        .collect()
}

/// An account table as JSON, without secrets (credential files named only by their key).
fn describe(table: &toml_edit::Table) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (k, v) in table.iter() {
        let shown = match k {
            "client_secret_file" | "certificate_file" | "private_key_file" | "client_secret_env" => {
                serde_json::Value::String("(set)".into())
            }
            _ => match v.as_value() {
                Some(toml_edit::Value::String(s)) => serde_json::Value::String(s.value().clone()),
                Some(toml_edit::Value::Boolean(b)) => serde_json::Value::Bool(*b.value()),
                Some(other) => serde_json::Value::String(other.to_string().trim().to_string()),
                None => continue,
            },
        };
        out.insert(k.to_string(), shown);
    }
    serde_json::Value::Object(out)
}

/// Writes a secret to its own file, mode 0600.
fn write_private(path: &Path, content: &str) -> Result<(), EditError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| EditError::Io(format!("{}: {e}", dir.display())))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| EditError::Io(format!("{}: {e}", path.display())))?;
    f.write_all(content.as_bytes()).and_then(|_| f.sync_all()).map_err(|e| EditError::Io(format!("{}: {e}", path.display())))
}
