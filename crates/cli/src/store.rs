//! The account store behind the admin API's writes: changes go to the config file that
//! defines the accounts (`labelgate_config::edit`), a rename moves the stored snapshot, and
//! every change is one audit line (who, what, before and after — never a secret). The reload
//! that follows the file's change applies it.

use labelgate_admin::write::{AccountOp, AccountStore, ChangeError, FieldError};
use labelgate_config::edit::{self, AccountChange, AccountInput, EditError};
use std::path::PathBuf;
use std::sync::Arc;

/// The config file (none: the embedded default, read-only), the state directory, the trail.
pub struct ConfigStore {
    pub path: Option<PathBuf>,
    pub state_dir: PathBuf,
    pub audit: Arc<labelgate_proxy::AuditSink>,
    /// One change at a time: two requests that read the same ETag must not both pass its check
    /// and the later overwrite the earlier (the second gets 412).
    pub one_at_a_time: std::sync::Mutex<()>,
}

impl AccountStore for ConfigStore {
    fn etag(&self) -> Option<String> {
        self.path.as_deref().and_then(|p| edit::current_etag(p).ok())
    }

    fn apply(&self, op: AccountOp<'_>, body: &[u8], if_match: &str, who: &str) -> Result<String, ChangeError> {
        let input: AccountInput = if body.iter().all(u8::is_ascii_whitespace) {
            AccountInput::default()
        } else {
            serde_json::from_slice(body).map_err(|e| {
                ChangeError::Invalid(vec![FieldError { field: None, message: format!("the body is not an account object: {e}") }])
            })?
        };
        let (what, change) = match op {
            AccountOp::Add => ("add", AccountChange::Add(input)),
            AccountOp::Edit(name) => ("edit", AccountChange::Edit { name: name.to_string(), input }),
            AccountOp::Delete(name) => ("delete", AccountChange::Delete { name: name.to_string() }),
            AccountOp::Duplicate(name) => {
                if input.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
                    return Err(ChangeError::Invalid(vec![FieldError {
                        field: Some("name".into()),
                        message: "the copy needs a name".into(),
                    }]));
                }
                ("duplicate", AccountChange::Duplicate { name: name.to_string(), input })
            }
            AccountOp::Retrieval(name, on) => {
                (if on { "enable" } else { "disable" }, AccountChange::Retrieval { name: name.to_string(), on })
            }
        };
        let _turn = self.one_at_a_time.lock().unwrap_or_else(|e| e.into_inner());
        let applied = edit::apply(self.path.as_deref(), &self.state_dir, if_match, change).map_err(|e| match e {
            EditError::ReadOnly(why) => ChangeError::ReadOnly(why),
            EditError::Stale => ChangeError::Stale,
            EditError::NotFound => ChangeError::NotFound,
            EditError::Invalid(list) => {
                ChangeError::Invalid(list.into_iter().map(|f| FieldError { field: f.field, message: f.message }).collect())
            }
            EditError::Io(why) => ChangeError::Io(why),
        })?;
        if let Some((old, new)) = &applied.renamed {
            if let Err(e) = labelgate_sync::rename_snapshot(&self.state_dir, old, new) {
                tracing::warn!(error = %e, "cannot move the stored snapshot of a renamed account");
            }
        }
        let line = serde_json::json!({
            "time": time_now(),
            "event": "account_change",
            "who": who,
            "what": what,
            "before": applied.before,
            "after": applied.after,
        });
        let _ = self.audit.write_value(&line);
        tracing::info!(who, what, "account changed");
        Ok(applied.etag)
    }
}

pub(crate) fn time_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now).format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}
