//! `[[accounts]]`: one MIP account per entry (name, tenant, app credentials, where to reach the
//! identity platform and Graph, how often to refresh), and the secret it authenticates with,
//! read from the environment or a file and never printed.

use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which Graph endpoint lists the tenant's labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum LabelApi {
    /// `GET /beta/security/informationProtection/sensitivityLabels` (flat, `parent` embedded).
    #[default]
    #[serde(rename = "beta")]
    Beta,
    /// `GET /v1.0/security/dataSecurityAndGovernance/sensitivityLabels` (nested `sublabels`).
    #[serde(rename = "v1.0")]
    V1,
}

impl LabelApi {
    /// The path under the Graph base URL.
    pub fn path(self) -> &'static str {
        match self {
            LabelApi::Beta => "/beta/security/informationProtection/sensitivityLabels",
            LabelApi::V1 => "/v1.0/security/dataSecurityAndGovernance/sensitivityLabels",
        }
    }

    /// The name used in config and API answers.
    pub fn as_str(self) -> &'static str {
        match self {
            LabelApi::Beta => "beta",
            LabelApi::V1 => "v1.0",
        }
    }
}

/// One `[[accounts]]` entry as written.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// Unique name (shown to admins, used in policy as the label's account).
    pub name: String,
    /// Directory (tenant) GUID or verified domain.
    pub tenant_id: String,
    /// Application (client) GUID.
    pub client_id: String,
    /// Name of the environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// File holding the client secret (relative to the config file).
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// PEM certificate registered for the app (client-assertion flow, with `private_key_file`).
    #[serde(default)]
    pub certificate_file: Option<PathBuf>,
    /// PEM PKCS#8 RSA private key of that certificate.
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    /// Identity platform base URL.
    #[serde(default = "default_authority")]
    pub authority_url: String,
    /// Graph base URL.
    #[serde(default = "default_graph")]
    pub graph_url: String,
    /// Token scope (independent of `graph_url`).
    #[serde(default = "default_scope")]
    pub scope: String,
    /// Which label endpoint to call.
    #[serde(default)]
    pub api: LabelApi,
    /// Label retrieval on (false: the account is validated only and shows Tenant Inactive).
    #[serde(default = "yes")]
    pub retrieval: bool,
    /// How often labels are retrieved again (`12h`, `30m`, `90s`, `1d`).
    #[serde(default = "default_refresh")]
    pub refresh_interval: String,
}

fn default_authority() -> String {
    "https://login.microsoftonline.com".into()
}
fn default_graph() -> String {
    "https://graph.microsoft.com".into()
}
fn default_scope() -> String {
    "https://graph.microsoft.com/.default".into()
}
fn yes() -> bool {
    true
}
fn default_refresh() -> String {
    "12h".into()
}

/// Parses `12h`, `30m`, `90s`, `1d` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = digits.parse().ok()?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}

impl AccountConfig {
    /// Everything wrong with this entry, each at its key (a path within the entry: the config
    /// crate puts it under `["accounts", i]`).
    pub fn problems(&self) -> Vec<labelgate_diagnostics::Problem> {
        use labelgate_diagnostics::{key, Problem};
        let mut out = Vec::new();
        if self.name.trim().is_empty() {
            out.push(Problem::error(key(&["name"]), "name must not be empty"));
        }
        if self.tenant_id.trim().is_empty() || self.tenant_id.contains('/') {
            out.push(Problem::error(key(&["tenant_id"]), format!("tenant_id {:?} is not a tenant GUID or domain", self.tenant_id)));
        }
        if self.client_id.trim().is_empty() {
            out.push(Problem::error(key(&["client_id"]), "client_id must not be empty"));
        }
        let sources = [self.client_secret_env.is_some(), self.client_secret_file.is_some(), self.certificate_file.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if sources != 1 {
            out.push(Problem::error(
                key(&["name"]),
                "give exactly one of client_secret_env, client_secret_file or certificate_file (+ private_key_file)",
            ));
        }
        if self.certificate_file.is_some() != self.private_key_file.is_some() {
            let k = if self.certificate_file.is_some() { "certificate_file" } else { "private_key_file" };
            out.push(Problem::error(key(&[k]), "certificate_file and private_key_file go together"));
        }
        for (k, url) in [("authority_url", &self.authority_url), ("graph_url", &self.graph_url)] {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                out.push(Problem::error(key(&[k]), format!("{k} {url:?} is not an http(s) URL")));
            }
        }
        if !self.scope.ends_with("/.default") {
            out.push(Problem::error(key(&["scope"]), format!("scope {:?} must end with /.default (client credentials)", self.scope)));
        }
        if parse_duration(&self.refresh_interval).is_none() {
            out.push(Problem::error(
                key(&["refresh_interval"]),
                format!("refresh_interval {:?} is not a duration like 12h, 30m or 90s", self.refresh_interval),
            ));
        }
        out
    }

    /// How often labels are retrieved.
    pub fn refresh(&self) -> Duration {
        parse_duration(&self.refresh_interval).unwrap_or(Duration::from_secs(12 * 3600))
    }

    /// Reads the credential now (relative paths against `base`).
    pub fn credential(&self, base: &Path) -> Result<Credential, CredentialError> {
        if let Some(var) = &self.client_secret_env {
            return match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Ok(Credential::Secret(Secret(v.trim().to_string()))),
                _ => Err(CredentialError::EnvUnset(var.clone())),
            };
        }
        if let Some(file) = &self.client_secret_file {
            let path = base.join(file);
            return match std::fs::read_to_string(&path) {
                Ok(v) if !v.trim().is_empty() => Ok(Credential::Secret(Secret(v.trim().to_string()))),
                Ok(_) => Err(CredentialError::FileEmpty(path.display().to_string())),
                Err(e) => Err(CredentialError::FileUnreadable { path: path.display().to_string(), source: e }),
            };
        }
        if let (Some(cert), Some(key)) = (&self.certificate_file, &self.private_key_file) {
            return Ok(Credential::Certificate(crate::assertion::CertificateCredential::load(&base.join(cert), &base.join(key))?));
        }
        Err(CredentialError::Missing)
    }
}

/// Why an account's credential could not be read. Messages name the config key and the file or
/// variable, never the secret.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// `client_secret_env` names a variable that is not set (or empty).
    #[error("client_secret_env: environment variable {0} is not set")]
    EnvUnset(String),
    /// `client_secret_file` is empty.
    #[error("client_secret_file: {0} is empty")]
    FileEmpty(String),
    /// `client_secret_file` cannot be read.
    #[error("client_secret_file: {path}: {source}")]
    FileUnreadable {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The certificate or its key.
    #[error(transparent)]
    Certificate(#[from] crate::assertion::CertificateError),
    /// No credential key at all.
    #[error("no credential configured")]
    Missing,
}

impl CredentialError {
    /// The `[[accounts]]` key the problem is about.
    pub fn key(&self) -> &'static str {
        match self {
            CredentialError::EnvUnset(_) => "client_secret_env",
            CredentialError::FileEmpty(_) | CredentialError::FileUnreadable { .. } => "client_secret_file",
            CredentialError::Certificate(e) => e.key(),
            CredentialError::Missing => "name",
        }
    }
}

/// A client secret: its value is reachable only through [`Secret::expose`], and it prints as
/// `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the token request body only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// How an account proves who it is.
#[derive(Clone, Debug)]
pub enum Credential {
    /// A client secret.
    Secret(Secret),
    /// A certificate and its key (a signed client assertion per request).
    Certificate(crate::assertion::CertificateCredential),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("12h"), Some(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("12 parsecs"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn secrets_do_not_print() {
        let c = Credential::Secret(Secret::new("hunter2-very-secret"));
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
