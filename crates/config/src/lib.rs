//! `labelgate-config`: the one TOML file admins write (`labelgate.toml`), composed of sections
//! whose types belong to the crates they configure (`[policy]` and `[[cloud_apps]]` to
//! labelgate-policy, `[[labels]]` to labelgate-catalog, `[proxy]` and `[inspection]` to
//! labelgate-proxy). It loads and validates the file, reports
//! every problem as `file:line:col: severity: message`, carries the embedded default, and
//! reloads atomically ([`Reloader`]): a file that fails validation never replaces the one in force.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod reload;

pub mod edit;
pub use reload::{ReloadOutcome, ReloadStats, Reloader, WatchHandle};

use labelgate_catalog::{Catalog, Label, LabelConfig};
use labelgate_diagnostics::Step;
use labelgate_policy::{CloudAppConfig, Policy, PolicyConfig, Problem, ResolvedPolicy, Severity};
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The annotated default configuration, embedded in the binary.
pub const DEFAULT_CONFIG: &str = include_str!("../../../config/labelgate.toml");

/// Where a configuration comes from when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "config/labelgate.toml";

/// The file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `[policy]`.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// `[[labels]]`.
    #[serde(default)]
    pub labels: Vec<LabelConfig>,
    /// `[[cloud_apps]]`.
    #[serde(default)]
    pub cloud_apps: Vec<CloudAppConfig>,
    /// `[proxy]` (read at start; a change needs a restart).
    #[serde(default)]
    pub proxy: labelgate_proxy::ProxyConfig,
    /// `[inspection]`.
    #[serde(default)]
    pub inspection: labelgate_proxy::InspectionConfig,
    /// `[admin]` (read at start).
    #[serde(default)]
    pub admin: labelgate_admin::AdminConfig,
    /// `[[accounts]]`: MIP accounts whose labels are retrieved from Graph.
    #[serde(default)]
    pub accounts: Vec<labelgate_sync::AccountConfig>,
    /// `[scan]`: `labelgate scan`.
    #[serde(default)]
    pub scan: labelgate_scan::ScanConfig,
    /// `[[detectors]]`: content detectors for at-rest rules.
    #[serde(default)]
    pub detectors: Vec<labelgate_scan::detection::DetectorConfig>,
}

/// A located problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file (as given, or `<embedded default>`).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (characters).
    pub column: usize,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
    /// The key it is about, when it was reported at a key.
    pub key: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}:{}:{}: {sev}: {}", self.file, self.line, self.column, self.message)
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let mut start = offset;
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let before = &text[..start];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// A validated configuration, ready to use.
#[derive(Debug)]
pub struct LoadedConfig {
    /// Where it was read (`None` for the embedded default).
    pub path: Option<PathBuf>,
    /// The directory relative paths in the file are resolved against.
    pub base_dir: PathBuf,
    /// The file as written.
    pub file: ConfigFile,
    /// The compiled policy (label names not yet resolved).
    pub policy: Policy,
    /// `[[labels]]` as labels.
    pub static_labels: Vec<Label>,
    /// The built-in and configured content detectors.
    pub detection: labelgate_scan::detection::Detection,
    /// Warnings found while validating (errors make loading fail).
    pub warnings: Vec<Diagnostic>,
    /// The text as loaded (later diagnostics are located in it, not in a file that may have
    /// changed since).
    text: String,
}

impl LoadedConfig {
    /// The catalog of static labels alone.
    pub fn static_catalog(&self) -> Arc<Catalog> {
        Arc::new(Catalog::from_static(self.static_labels.clone()))
    }

    /// Binds the policy to a catalog snapshot, with name-resolution problems as diagnostics.
    pub fn resolve(&self, catalog: Arc<Catalog>) -> (ResolvedPolicy, Vec<Diagnostic>) {
        let (resolved, problems) = self.policy.resolve(catalog);
        (resolved, problems.into_iter().map(|p| self.locate(&p)).collect())
    }

    fn display_name(&self) -> String {
        self.path.as_ref().map_or_else(|| "<embedded default>".to_string(), |p| p.display().to_string())
    }

    fn locate(&self, p: &Problem) -> Diagnostic {
        diagnostic(&self.display_name(), &self.text, p)
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file has problems; every one is listed.
    #[error("{} problem(s) in the configuration", .0.len())]
    Invalid(Vec<Diagnostic>),
}

/// The configuration `--config` names, else `./config/labelgate.toml` if present, else the
/// embedded default.
pub fn load(config: Option<&Path>) -> Result<LoadedConfig, LoadError> {
    match config {
        Some(p) => load_path(p),
        None if Path::new(DEFAULT_CONFIG_PATH).is_file() => load_path(Path::new(DEFAULT_CONFIG_PATH)),
        None => load_str(None, DEFAULT_CONFIG),
    }
}

/// Loads and validates a file.
pub fn load_path(path: &Path) -> Result<LoadedConfig, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read { path: path.display().to_string(), source })?;
    load_str(Some(path), &text)
}

/// Loads and validates text (`path` names it in diagnostics and anchors relative paths).
pub fn load_str(path: Option<&Path>, text: &str) -> Result<LoadedConfig, LoadError> {
    let name = path.map_or_else(|| "<embedded default>".to_string(), |p| p.display().to_string());
    let file: ConfigFile = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        LoadError::Invalid(vec![diagnostic(&name, text, &Problem::error(span, e.message().trim()))])
    })?;
    // Every section reports its problems in the one type, each at a span or a key path.
    let mut problems: Vec<Problem> = Vec::new();
    let (static_labels, label_problems) = labelgate_catalog::labels_from_config(&file.labels);
    problems.extend(label_problems);
    let kinds: Vec<&str> = labelgate_extract::FileKind::ALL.iter().map(|k| k.as_str()).collect();
    // The tenants of [[accounts]] (named by GUID) count as own tenants.
    let account_tenants: Vec<String> = file
        .accounts
        .iter()
        .filter(|a| labelgate_catalog::parse_guid(&a.tenant_id).is_some())
        .map(|a| labelgate_catalog::normalize_id(&a.tenant_id))
        .collect();
    let (policy, policy_problems) = Policy::compile(&file.policy, &file.cloud_apps, &kinds, &account_tenants);
    problems.extend(policy_problems);
    problems.extend(file.proxy.problems());
    problems.extend(file.inspection.problems());
    problems.extend(file.admin.problems());
    let (detection, detector_problems) = labelgate_scan::detection::compile(&file.detectors, file.scan.text_limits());
    problems.extend(detector_problems);
    for rule in &file.policy.rules {
        for (name, span) in rule.detector_names() {
            if !name.is_empty() && !detection.detectors.iter().any(|d| d.name == name) {
                let known: Vec<&str> = detection.detectors.iter().map(|d| d.name.as_str()).collect();
                problems.push(Problem::error(
                    span,
                    format!(
                        "rule {:?} names detector {name:?}, which is neither built in nor in [[detectors]] (known: {})",
                        rule.name.get_ref(),
                        known.join(", ")
                    ),
                ));
            }
        }
    }
    problems.extend(file.scan.problems());
    // Relative paths in the file (secrets, users) are resolved against its directory.
    let base_dir = path.and_then(Path::parent).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    // MIP accounts: each problem at its key in its own [[accounts]] table.
    let mut names = std::collections::HashSet::new();
    for (i, account) in file.accounts.iter().enumerate() {
        let entry = [Step::Key("accounts".into()), Step::Index(i)];
        let own = account.problems();
        let valid = own.is_empty();
        for p in own {
            let message = format!("[[accounts]] {:?}: {}", account.name, p.message);
            problems.push(Problem { message, ..p }.within(&entry));
        }
        if !names.insert(account.name.trim().to_lowercase()) {
            problems.push(
                Problem::error(labelgate_diagnostics::key(&["name"]), format!("[[accounts]] name {:?} is used twice", account.name))
                    .within(&entry),
            );
        }
        if valid {
            if let Err(e) = account.credential(&base_dir) {
                problems.push(
                    Problem::warning(
                        labelgate_diagnostics::key(&[e.key()]),
                        format!("[[accounts]] {:?}: {e} (the account will show Validation Failed)", account.name),
                    )
                    .within(&entry),
                );
            }
        }
    }
    // Secret files must be readable and well-formed now, not at the first request.
    if let Some(users) = &file.proxy.users_file {
        if let Err(e) = labelgate_proxy::Users::load(&base_dir.join(users)) {
            problems.push(Problem::error(labelgate_diagnostics::key(&["proxy", "users_file"]), format!("[proxy] users_file: {e}")));
        }
    }
    // Label names: a name several [[labels]] share is an error now; a name no [[labels]] entry
    // has may be known from Graph, so it is reported by `resolve` against the catalog in use.
    let (_, resolve_problems) = policy.resolve(Arc::new(Catalog::from_static(static_labels.clone())));
    problems.extend(resolve_problems.into_iter().filter(|p| p.severity == Severity::Error));
    let mut diagnostics: Vec<Diagnostic> = problems.iter().map(|p| diagnostic(&name, text, p)).collect();
    diagnostics.sort_by_key(|d| (d.line, d.column));
    if diagnostics.iter().any(|d| d.severity == Severity::Error) {
        return Err(LoadError::Invalid(diagnostics));
    }
    Ok(LoadedConfig {
        path: path.map(Path::to_path_buf),
        base_dir,
        file,
        policy,
        static_labels,
        detection,
        warnings: diagnostics,
        text: text.to_string(),
    })
}

/// A problem as `file:line:column: severity: message`, located in `text`.
fn diagnostic(file: &str, text: &str, p: &Problem) -> Diagnostic {
    let span = labelgate_diagnostics::locate(text, &p.at);
    let (line, column) = line_col(text, span.start);
    let key = match &p.at {
        labelgate_diagnostics::Location::Key(path) => path.iter().rev().find_map(|s| match s {
            Step::Key(k) => Some(k.clone()),
            Step::Index(_) => None,
        }),
        labelgate_diagnostics::Location::Span(_) => None,
    };
    Diagnostic { file: file.to_string(), line, column, severity: p.severity, message: p.message.clone(), key }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match load_str(Some(Path::new("t.toml")), text) {
            Ok(c) => c.warnings.iter().map(ToString::to_string).collect(),
            Err(LoadError::Invalid(d)) => d.iter().map(ToString::to_string).collect(),
            Err(e) => vec![e.to_string()],
        }
    }

    #[test]
    fn the_embedded_default_is_valid() {
        let c = load_str(None, DEFAULT_CONFIG).expect("default config loads");
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.policy.rule_names().count(), 1);
    }

    #[test]
    fn line_and_column() {
        assert_eq!(line_col("a\nbc\ndéf", 8), (3, 3));
        assert_eq!(line_col("a\nbc\ndéf", 7), (3, 2), "inside a character: its start");
        assert_eq!(line_col("abc", 0), (1, 1));
    }

    #[test]
    fn syntax_error_is_located() {
        assert_eq!(errors("[policy]\ndefault_action = \n"), ["t.toml:2:18: error: string values must be quoted, expected literal string"]);
    }

    #[test]
    fn unknown_key_is_located() {
        let e = errors("[policy]\ndefault_action = \"allow\"\ndefualt = 1\n");
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("t.toml:3:1: error: unknown field `defualt`"), "{e:?}");
    }

    #[test]
    fn wrong_type_is_located() {
        let e = errors("[[policy.rules]]\nname = \"x\"\naction = \"maybe\"\n");
        assert!(e[0].starts_with("t.toml:3:10: error: unknown variant `maybe`"), "{e:?}");
    }

    #[test]
    fn semantic_errors_are_located() {
        let e = errors(
            "[[policy.rules]]\nname = \"x\"\naction = \"block\"\ncloud_apps = [\"Nope\"]\n[[labels]]\nid = \"not-a-guid\"\nname = \"A\"\n",
        );
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("t.toml:4:15: error: rule \"x\" names cloud app \"Nope\""), "{e:?}");
        assert!(e[1].starts_with("t.toml:6:6: error: label id \"not-a-guid\" is not a GUID"), "{e:?}");
    }

    #[test]
    fn an_open_listener_without_denied_destinations_is_a_warning() {
        let c = load_str(Some(Path::new("t.toml")), "[proxy]\nlisten = \"0.0.0.0:3128\"\nallow_clients = [\"10.0.0.0/8\"]\n")
            .expect("a warning only");
        assert!(
            c.warnings[0].to_string().starts_with("t.toml:2:1: warning: [proxy] listen 0.0.0.0:3128 is reachable beyond loopback"),
            "{}",
            c.warnings[0]
        );
        let e = errors("[proxy]\nallow_clients = [\"10.0.0.0/99\"]\n");
        assert!(e[0].contains("error: [proxy] allow_clients"), "{e:?}");
    }

    #[test]
    fn an_unreadable_users_file_is_an_error_at_its_key() {
        let e = errors("[proxy]\nusers_file = \"does-not-exist.txt\"\n");
        assert!(e[0].starts_with("t.toml:2:1: error: [proxy] users_file: does-not-exist.txt: cannot read"), "{e:?}");
    }

    #[test]
    fn account_problems_are_located_at_their_keys() {
        let text = "[[accounts]]\nname = \"A\"\ntenant_id = \"t.example\"\nclient_id = \"c\"\nclient_secret_env = \"LG_TEST_UNSET_SECRET_VAR\"\n\n[[accounts]]\nname = \"a\"\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_secret_env = \"X\"\nrefresh_interval = \"soon\"\n";
        let e = errors(text);
        assert!(e.iter().any(|d| d.starts_with("t.toml:12:1: error: [[accounts]] \"a\": refresh_interval \"soon\"")), "{e:?}");
        assert!(e.iter().any(|d| d.starts_with("t.toml:8:1: error: [[accounts]] name \"a\" is used twice")), "{e:?}");
        let e = errors(
            "[[accounts]]\nname = \"A\"\ntenant_id = \"t.example\"\nclient_id = \"c\"\nclient_secret_env = \"LG_TEST_UNSET_SECRET_VAR\"\n",
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with(
                "t.toml:5:1: warning: [[accounts]] \"A\": client_secret_env: environment variable LG_TEST_UNSET_SECRET_VAR is not set"
            ),
            "{e:?}"
        );
        let e = errors("[[accounts]]\nname = \"A\"\ntenant_id = \"t\"\nclient_id = \"c\"\n");
        assert!(e[0].starts_with("t.toml:2:1: error: [[accounts]] \"A\": give exactly one of client_secret_env"), "{e:?}");
        let e = errors("[[accounts]]\nname = \"A\"\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_secret_env = \"X\"\napi = \"v2\"\n");
        assert!(e[0].starts_with("t.toml:6:7: error: unknown variant `v2`"), "{e:?}");
    }

    #[test]
    fn unknown_label_name_is_a_warning() {
        let c = load_str(Some(Path::new("t.toml")), "[[policy.rules]]\nname = \"x\"\naction = \"block\"\nlabels = [\"Secret\"]\n")
            .expect("warnings do not fail");
        assert!(c.warnings.is_empty(), "reported against the catalog in use, not at load: {:?}", c.warnings);
        let (_, names) = c.resolve(c.static_catalog());
        assert_eq!(names.len(), 1);
        assert!(names[0].to_string().starts_with("t.toml:4:11: warning: rule \"x\": no known label is named \"Secret\""), "{}", names[0]);
        let mut graph = labelgate_catalog::Label::new("f5dc2dea-db0f-47cd-8b20-a52e1590fb64", "Secret");
        graph.account = Some("Contoso".into());
        let (_, names) = c.resolve(Arc::new(Catalog::build(vec![], vec![graph])));
        assert!(names.is_empty(), "a name a retrieved label has: {names:?}");
    }
}
