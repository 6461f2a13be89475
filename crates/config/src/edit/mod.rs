//! Changes written back to the config file that defines them: the file is the source of truth.
//! Each change is made with `toml_edit` (the admin's comments, ordering and formatting outside
//! the edited table survive byte for byte), validated exactly as `labelgate check` validates the
//! file (the same messages), then written atomically (temp file, fsync, rename) after checking
//! the file is still the one the client saw (its SHA-256, the ETag).
//!
//! - [`accounts`]: `[[accounts]]` (re-exported here: [`apply`], [`AccountChange`], …);
//! - [`cloud_apps`]: `[[cloud_apps]]` and their tags.

pub mod accounts;
pub mod cloud_apps;

pub use accounts::{apply, AccountChange, AccountInput, MAX_FIELD, MAX_SECRET};

use crate::{load_str, Diagnostic, LoadError};
use std::path::{Path, PathBuf};

/// A field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// The key, when the problem is about one.
    pub field: Option<String>,
    /// What is wrong (the same words as `labelgate check`).
    pub message: String,
}

/// Why a change was not made.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// No file defines the configuration (the embedded default), or it cannot be written.
    #[error("the configuration cannot be written: {0}")]
    ReadOnly(String),
    /// The file changed since the client read it (its ETag).
    #[error("the configuration changed since it was read")]
    Stale,
    /// No entry by that name (what was looked for, e.g. "no such account").
    #[error("{0}")]
    NotFound(String),
    /// The change makes the configuration invalid.
    #[error("the change is not valid")]
    Invalid(Vec<FieldError>),
    /// Unexpected I/O.
    #[error("{0}")]
    Io(String),
}

/// What a successful change did: the new ETag, the account's name before and after (a rename
/// moves the stored snapshot), and the account as written, without secrets.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The file's new ETag.
    pub etag: String,
    /// The account before, without secrets (none for an add).
    pub before: Option<serde_json::Value>,
    /// The account after, without secrets (none for a delete).
    pub after: Option<serde_json::Value>,
    /// (old name, new name) of a rename.
    pub renamed: Option<(String, String)>,
}

/// The ETag of a file's bytes: their SHA-256, hex, quoted.
pub fn etag_of(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    format!("\"{}\"", digest.as_ref().iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// The ETag of the config file now.
pub fn current_etag(path: &Path) -> Result<String, EditError> {
    std::fs::read(path).map(|b| etag_of(&b)).map_err(|e| EditError::Io(format!("{}: {e}", path.display())))
}

/// The file to change and its document, if its ETag is still `if_match` and it may be written.
pub(crate) fn draft(path: Option<&Path>, if_match: &str) -> Result<(PathBuf, toml_edit::DocumentMut), EditError> {
    let Some(path) = path else { return Err(EditError::ReadOnly("labelgate runs on its embedded default configuration".into())) };
    let bytes = std::fs::read(path).map_err(|e| EditError::Io(format!("{}: {e}", path.display())))?;
    if etag_of(&bytes) != if_match.trim() {
        return Err(EditError::Stale);
    }
    let meta = std::fs::metadata(path).map_err(|e| EditError::Io(format!("{}: {e}", path.display())))?;
    if meta.permissions().readonly() {
        return Err(EditError::ReadOnly(format!("{} is read-only", path.display())));
    }
    let text = String::from_utf8(bytes).map_err(|_| EditError::Io(format!("{} is not UTF-8", path.display())))?;
    let doc = text.parse().map_err(|e| EditError::Io(format!("{}: {e}", path.display())))?;
    Ok((path.to_path_buf(), doc))
}

/// The document's new text, if it loads exactly as `labelgate check` would load it; else every
/// error, each with the field `field` finds for it.
pub(crate) fn validated(
    path: &Path,
    doc: &toml_edit::DocumentMut,
    field: impl Fn(&Diagnostic, &str) -> Option<String>,
) -> Result<String, EditError> {
    let new_text = doc.to_string();
    if let Err(LoadError::Invalid(diagnostics)) = load_str(Some(path), &new_text) {
        let errors: Vec<FieldError> = diagnostics
            .iter()
            .filter(|d| d.severity == labelgate_policy::Severity::Error)
            .map(|d| FieldError { field: field(d, &new_text), message: d.message.clone() })
            .collect();
        if !errors.is_empty() {
            return Err(EditError::Invalid(errors));
        }
    }
    Ok(new_text)
}

/// Writes `new_text` over the file, unless it changed since it was read as `if_match` (a hand
/// edit made while the change was validated is not overwritten); the new ETag.
pub(crate) fn commit(path: &Path, if_match: &str, new_text: &str) -> Result<String, EditError> {
    if current_etag(path)? != if_match.trim() {
        return Err(EditError::Stale);
    }
    // A symlinked config is written where it really lives.
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    write_atomically(&real, new_text.as_bytes())?;
    Ok(etag_of(new_text.as_bytes()))
}

/// Names compare trimmed and case-insensitively.
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

pub(crate) fn invalid(field: &str, message: String) -> EditError {
    EditError::Invalid(vec![FieldError { field: Some(field.to_string()), message }])
}

/// The field a diagnostic is about: the key on its line, or the one a "missing field" names.
pub(crate) fn field_of(d: &Diagnostic, text: &str) -> Option<String> {
    if let Some(k) = &d.key {
        return Some(k.clone());
    }
    if let Some(rest) = d.message.split_once("missing field `").map(|(_, r)| r) {
        return rest.split('`').next().map(str::to_string);
    }
    let line = text.lines().nth(d.line.saturating_sub(1))?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    (!key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).then(|| key.to_string())
}

/// Replaces `path` with `bytes`: a temp file beside it (same mode), fsync, rename, fsync of
/// the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), EditError> {
    use std::io::Write;
    let io = |e: std::io::Error| EditError::Io(format!("{}: {e}", path.display()));
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".labelgate-config-").tempfile_in(dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            EditError::ReadOnly(format!("{}: {e}", dir.display()))
        } else {
            io(e)
        }
    })?;
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(tmp.path(), meta.permissions());
    }
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
