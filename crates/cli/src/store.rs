//! The config file behind the admin API: account and cloud app changes go to the file that
//! defines them (`labelgate_config::edit`), an account's rename moves its stored snapshot, and
//! every change is one audit line (who, what, before and after — never a secret). The reload
//! that follows the file's change applies it.

use labelgate_admin::write::{AccountOp, Change, ChangeError, CloudAppOp, ConfigStore, FieldError};
use labelgate_config::edit::{self, cloud_apps, AccountChange, AccountInput, Applied, EditError};
use std::path::PathBuf;
use std::sync::Arc;

/// The config file (none: the embedded default, read-only), the state directory, the trail.
pub struct FileStore {
    pub path: Option<PathBuf>,
    pub state_dir: PathBuf,
    pub audit: Arc<labelgate_proxy::AuditSink>,
    /// One change at a time: two requests that read the same ETag must not both pass its check
    /// and the later overwrite the earlier (the second gets 412).
    pub one_at_a_time: std::sync::Mutex<()>,
}

impl ConfigStore for FileStore {
    fn etag(&self) -> Option<String> {
        self.path.as_deref().and_then(|p| edit::current_etag(p).ok())
    }

    fn apply(&self, change: Change, body: &[u8], if_match: &str, who: &str) -> Result<String, ChangeError> {
        // What the change is about, for the audit line (the body may rename it).
        let subject = match &change {
            Change::Account(AccountOp::Add) | Change::CloudApp(CloudAppOp::Add) => None,
            Change::Account(AccountOp::Edit(n) | AccountOp::Delete(n) | AccountOp::Duplicate(n) | AccountOp::Retrieval(n, _)) => {
                Some(n.clone())
            }
            Change::CloudApp(
                CloudAppOp::Edit(n)
                | CloudAppOp::Delete(n)
                | CloudAppOp::Tag(n)
                | CloudAppOp::Untag(n, _)
                | CloudAppOp::RenameTag(n)
                | CloudAppOp::DeleteTag(n),
            ) => Some(n.clone()),
        };
        let (event, what, edit): (&str, &str, Box<Edit<'_>>) = match change {
            Change::Account(op) => {
                let (what, change) = account_change(op, body)?;
                ("account_change", what, Box::new(move || edit::apply(self.path.as_deref(), &self.state_dir, if_match, change)))
            }
            Change::CloudApp(op) => {
                let (what, change) = cloud_app_change(op, body)?;
                ("cloud_app_change", what, Box::new(move || cloud_apps::apply(self.path.as_deref(), if_match, change)))
            }
        };
        // One change at a time, its audit line written (and flushed) before the next: the trail
        // is in the order of the changes, and a change is never left unrecorded for a full queue.
        let _turn = self.one_at_a_time.lock().unwrap_or_else(|e| e.into_inner());
        let applied = edit().map_err(changed)?;
        if let (Some((old, new)), "account_change") = (&applied.renamed, event) {
            if let Err(e) = labelgate_sync::rename_snapshot(&self.state_dir, old, new) {
                tracing::warn!(error = %e, "cannot move the stored snapshot of a renamed account");
            }
        }
        let line = serde_json::json!({
            "time": time_now(),
            "event": event,
            "who": who,
            "what": what,
            "subject": subject,
            "renamed": applied.renamed,
            "before": applied.before,
            "after": applied.after,
        });
        if self.audit.write_value_blocking(&line).is_err() {
            tracing::error!(who, what, event, "a configuration change was applied but its audit record could not be written");
        }
        tracing::info!(who, what, event, "configuration changed");
        Ok(applied.etag)
    }

    fn cloud_apps(&self) -> Result<(serde_json::Value, Option<String>), ChangeError> {
        let bytes = match &self.path {
            Some(p) => std::fs::read(p).map_err(|e| ChangeError::Io(format!("{}: {e}", p.display())))?,
            None => labelgate_config::DEFAULT_CONFIG.as_bytes().to_vec(),
        };
        let text = String::from_utf8_lossy(&bytes);
        let list = cloud_apps::list(&text).map_err(changed)?;
        let etag = self.path.as_ref().map(|_| edit::etag_of(&bytes));
        Ok((serde_json::to_value(list).unwrap_or_default(), etag))
    }
}

/// A change to the file, made when it is this request's turn.
type Edit<'a> = dyn FnOnce() -> Result<Applied, EditError> + 'a;

fn changed(e: EditError) -> ChangeError {
    match e {
        EditError::ReadOnly(why) => ChangeError::ReadOnly(why),
        EditError::Stale => ChangeError::Stale,
        EditError::NotFound(what) => ChangeError::NotFound(what),
        EditError::Invalid(list) => {
            ChangeError::Invalid(list.into_iter().map(|f| FieldError { field: f.field, message: f.message }).collect())
        }
        EditError::Io(why) => ChangeError::Io(why),
    }
}

/// A JSON body as `T` (empty: the default).
fn body_of<T: serde::de::DeserializeOwned + Default>(body: &[u8], what: &str) -> Result<T, ChangeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ChangeError::Invalid(vec![FieldError { field: None, message: format!("the body is not {what}: {e}") }]))
}

fn account_change(op: AccountOp, body: &[u8]) -> Result<(&'static str, AccountChange), ChangeError> {
    let input: AccountInput = body_of(body, "an account object")?;
    Ok(match op {
        AccountOp::Add => ("add", AccountChange::Add(input)),
        AccountOp::Edit(name) => ("edit", AccountChange::Edit { name, input }),
        AccountOp::Delete(name) => ("delete", AccountChange::Delete { name }),
        AccountOp::Duplicate(name) => {
            if input.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
                return Err(ChangeError::Invalid(vec![FieldError { field: Some("name".into()), message: "the copy needs a name".into() }]));
            }
            ("duplicate", AccountChange::Duplicate { name, input })
        }
        AccountOp::Retrieval(name, on) => (if on { "enable" } else { "disable" }, AccountChange::Retrieval { name, on }),
    })
}

fn cloud_app_change(op: CloudAppOp, body: &[u8]) -> Result<(&'static str, cloud_apps::CloudAppChange), ChangeError> {
    use cloud_apps::CloudAppChange as C;
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Tag {
        tag: Option<String>,
    }
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Rename {
        name: Option<String>,
    }
    let missing =
        |field: &str, message: &str| ChangeError::Invalid(vec![FieldError { field: Some(field.into()), message: message.into() }]);
    Ok(match op {
        CloudAppOp::Add => ("add", C::Add(body_of(body, "a cloud app object")?)),
        CloudAppOp::Edit(name) => ("edit", C::Edit { name, input: body_of(body, "a cloud app object")? }),
        CloudAppOp::Delete(name) => ("delete", C::Delete { name }),
        CloudAppOp::Tag(app) => {
            let tag = body_of::<Tag>(body, "{\"tag\": …}")?.tag.ok_or_else(|| missing("tags", "the tag to add is missing"))?;
            ("tag", C::Tag { app, tag })
        }
        CloudAppOp::Untag(app, tag) => ("untag", C::Untag { app, tag }),
        CloudAppOp::RenameTag(tag) => {
            let to = body_of::<Rename>(body, "{\"name\": …}")?.name.ok_or_else(|| missing("name", "the tag's new name is missing"))?;
            ("rename_tag", C::RenameTag { tag, to })
        }
        CloudAppOp::DeleteTag(tag) => ("delete_tag", C::DeleteTag { tag }),
    })
}

pub(crate) fn time_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now).format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}
