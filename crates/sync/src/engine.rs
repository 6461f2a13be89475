//! The accounts and their statuses: one refresh loop per account (independent and concurrent, so
//! a slow tenant delays nobody), the status machine of docs/graph-labels.md §5.2 as amended by
//! the issue, the label catalog swapped atomically after each good retrieval, and the last good
//! state persisted to `<state-dir>/accounts/` (temp file, fsync, rename) and loaded first on start.

use crate::client::{Client, ClientOptions, TokenCache};
use crate::clock::{rfc3339, unix, Clock};
use crate::config::AccountConfig;
use crate::failure::{Effect, ErrorKind, Failure, LastError};
use crate::metrics::SyncMetrics;
use labelgate_catalog::{parse_guid, Label, LabelCache};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;
use tokio::sync::Notify;

/// An account's status, with the exact strings admins see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// The credentials work (token and one label request succeeded).
    #[serde(rename = "Validation Success")]
    ValidationSuccess,
    /// The credentials or permissions were refused.
    #[serde(rename = "Validation Failed")]
    ValidationFailed,
    /// Not retrieved yet: validation and the first retrieval are pending or in progress.
    #[serde(rename = "Retrieval Pending")]
    RetrievalPending,
    /// Labels retrieved; refreshed periodically.
    #[serde(rename = "Active")]
    Active,
    /// Labels are not retrieved: retrieval is disabled, or the tenant is blocked or gone.
    #[serde(rename = "Tenant Inactive")]
    TenantInactive,
}

impl Status {
    /// Every status (for metrics).
    pub const ALL: [Status; 5] =
        [Status::ValidationSuccess, Status::ValidationFailed, Status::RetrievalPending, Status::Active, Status::TenantInactive];

    /// The string admins see.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::ValidationSuccess => "Validation Success",
            Status::ValidationFailed => "Validation Failed",
            Status::RetrievalPending => "Retrieval Pending",
            Status::Active => "Active",
            Status::TenantInactive => "Tenant Inactive",
        }
    }
}

/// One status change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// When (RFC 3339).
    pub at: String,
    /// The new status.
    pub status: Status,
    /// Why.
    pub reason: String,
}

/// What is known about an account (persisted).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AccountState {
    /// tenant|client|api|graph: a snapshot of another identity is not loaded.
    fingerprint: String,
    status: Status,
    /// A validation succeeded at least once (AADSTS90002 then means the tenant went away).
    validated_once: bool,
    /// Every label known for the account, those Graph no longer returns flagged deleted.
    labels: Vec<Label>,
    label_count: usize,
    last_retrieval: Option<String>,
    last_success_unix: Option<u64>,
    last_attempt: Option<String>,
    last_error: Option<LastError>,
    history: Vec<Transition>,
}

const HISTORY: usize = 20;

impl AccountState {
    fn new(fingerprint: String) -> AccountState {
        AccountState {
            fingerprint,
            status: Status::RetrievalPending,
            validated_once: false,
            labels: Vec::new(),
            label_count: 0,
            last_retrieval: None,
            last_success_unix: None,
            last_attempt: None,
            last_error: None,
            history: Vec::new(),
        }
    }

    fn set(&mut self, status: Status, at: &str, reason: impl Into<String>) {
        if self.status == status && !self.history.is_empty() {
            return;
        }
        self.status = status;
        self.history.push(Transition { at: at.to_string(), status, reason: reason.into() });
        if self.history.len() > HISTORY {
            self.history.remove(0);
        }
    }
}

/// An account as the admin API shows it (never a secret).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AccountView {
    /// Unique name.
    pub name: String,
    /// Tenant.
    pub tenant_id: String,
    /// Application (client) id.
    pub client_id: String,
    /// Status.
    pub status: Status,
    /// Labels the last retrieval returned (inactive ones included, deleted ones not).
    pub label_count: usize,
    /// Last successful retrieval (RFC 3339).
    pub last_retrieval: Option<String>,
    /// Last attempt (RFC 3339).
    pub last_attempt: Option<String>,
    /// The error of the last failed attempt, cleared by a success.
    pub last_error: Option<LastError>,
    /// Label retrieval enabled.
    pub retrieval: bool,
    /// `beta` or `v1.0`.
    pub api: &'static str,
    /// The refresh interval as configured.
    pub refresh_interval: String,
    /// Credential kind: `client_secret` or `certificate`.
    pub credential: &'static str,
    /// Recent status changes, oldest first.
    pub history: Vec<Transition>,
}

struct Account {
    config: AccountConfig,
    tokens: TokenCache,
    state: Mutex<AccountState>,
    /// One sync in flight per account.
    cycle: tokio::sync::Mutex<()>,
    wake: Notify,
}

impl Account {
    fn state(&self) -> std::sync::MutexGuard<'_, AccountState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn view(&self) -> AccountView {
        view_of(&self.config, &self.state())
    }
}

fn view_of(config: &AccountConfig, s: &AccountState) -> AccountView {
    AccountView {
        name: config.name.clone(),
        tenant_id: config.tenant_id.clone(),
        client_id: config.client_id.clone(),
        status: s.status,
        label_count: s.label_count,
        last_retrieval: s.last_retrieval.clone(),
        last_attempt: s.last_attempt.clone(),
        last_error: s.last_error.clone(),
        retrieval: config.retrieval,
        api: config.api.as_str(),
        refresh_interval: config.refresh_interval.clone(),
        credential: if config.certificate_file.is_some() { "certificate" } else { "client_secret" },
        history: s.history.clone(),
    }
}

fn fingerprint(c: &AccountConfig) -> String {
    format!("{}|{}|{}|{}", c.tenant_id.to_ascii_lowercase(), c.client_id.to_ascii_lowercase(), c.api.as_str(), c.graph_url)
}

/// Where and how the sync component runs.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// State directory (snapshots go to `<state_dir>/accounts/`).
    pub state_dir: PathBuf,
    /// Relative secret and key paths are resolved against this (the config file's directory).
    pub base_dir: PathBuf,
    /// HTTP client settings.
    pub client: ClientOptions,
}

type OnChange = Box<dyn Fn() + Send + Sync>;

/// All MIP accounts, their statuses and the label catalog they feed.
pub struct Syncer {
    client: Client,
    clock: Arc<dyn Clock>,
    cache: Arc<LabelCache>,
    accounts: RwLock<BTreeMap<String, Arc<Account>>>,
    loops: Mutex<BTreeMap<String, tokio::task::JoinHandle<()>>>,
    options: SyncOptions,
    metrics: Option<SyncMetrics>,
    on_change: RwLock<Option<OnChange>>,
}

/// Why the sync component could not start.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The HTTP client could not be built.
    #[error(transparent)]
    Client(#[from] crate::client::ClientError),
    /// The state directory is unusable.
    #[error("state directory {path}: {source}")]
    State {
        /// Where.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

impl Syncer {
    /// Loads each account's last good snapshot (its labels go into `cache` at once, so policy is
    /// enforced before Graph answers, or when it never does). Nothing is fetched until
    /// [`Syncer::start`] or [`Syncer::refresh`].
    pub fn new(
        accounts: Vec<AccountConfig>,
        cache: Arc<LabelCache>,
        options: SyncOptions,
        clock: Arc<dyn Clock>,
        metrics: Option<SyncMetrics>,
    ) -> Result<Syncer, SyncError> {
        let client = Client::new(options.client.clone(), Arc::clone(&clock)).map_err(SyncError::Client)?;
        let dir = options.state_dir.join("accounts");
        std::fs::create_dir_all(&dir).map_err(|source| SyncError::State { path: dir.display().to_string(), source })?;
        let syncer = Syncer {
            client,
            clock,
            cache,
            accounts: RwLock::new(BTreeMap::new()),
            loops: Mutex::new(BTreeMap::new()),
            options,
            metrics,
            on_change: RwLock::new(None),
        };
        for config in accounts {
            syncer.insert(config);
        }
        Ok(syncer)
    }

    /// Called after every catalog change (to re-resolve policy label names).
    pub fn on_change(&self, f: impl Fn() + Send + Sync + 'static) {
        if let Ok(mut slot) = self.on_change.write() {
            *slot = Some(Box::new(f));
        }
    }

    fn changed(&self) {
        if let Ok(slot) = self.on_change.read() {
            if let Some(f) = slot.as_ref() {
                f();
            }
        }
    }

    fn snapshot_path(&self, name: &str) -> PathBuf {
        snapshot_path(&self.options.state_dir, name)
    }

    fn insert(&self, config: AccountConfig) {
        let loaded = read_snapshot(&self.options.state_dir, &config);
        let state = loaded.unwrap_or_else(|| AccountState::new(fingerprint(&config)));
        if !state.labels.is_empty() {
            self.cache.replace_account(&config.name, state.labels.clone());
        }
        let name = config.name.clone();
        let account = Arc::new(Account {
            config,
            tokens: TokenCache::default(),
            state: Mutex::new(state),
            cycle: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
        });
        self.observe(&account);
        if let Ok(mut map) = self.accounts.write() {
            map.insert(name, account);
        }
    }

    fn get(&self, name: &str) -> Option<Arc<Account>> {
        self.accounts.read().ok()?.get(name).cloned()
    }

    /// Every account, by name.
    pub fn accounts(&self) -> Vec<AccountView> {
        let list: Vec<Arc<Account>> = self.accounts.read().map(|m| m.values().cloned().collect()).unwrap_or_default();
        list.iter().map(|a| a.view()).collect()
    }

    /// One account.
    pub fn account(&self, name: &str) -> Option<AccountView> {
        self.get(name).map(|a| a.view())
    }

    /// An account's labels (deleted ones included, flagged).
    pub fn labels(&self, name: &str) -> Option<Vec<Label>> {
        self.get(name).map(|a| a.state().labels.clone())
    }

    /// Runs one sync cycle of an account now and returns its new view.
    pub async fn refresh(&self, name: &str) -> Option<AccountView> {
        let account = self.get(name)?;
        self.cycle(&account).await;
        Some(account.view())
    }

    /// Validates an account now: a token and one label request, no retrieval and no status
    /// change; `None` for an unknown account, else the labels on the first page or the failure
    /// (as the account's last error would show it).
    pub async fn validate(&self, name: &str) -> Option<Result<usize, LastError>> {
        let account = self.get(name)?;
        let config = &account.config;
        let credential = match config.credential(&self.options.base_dir) {
            Ok(c) => c,
            Err(e) => {
                let mut f = Failure::new(Effect::ValidationFailed, ErrorKind::Configuration, e.to_string());
                f.error.at = rfc3339(self.clock.now());
                return Some(Err(f.error));
            }
        };
        Some(match self.client.fetch_labels(config, &credential, &account.tokens, true).await {
            Ok((page, _)) => Ok(page.len()),
            Err(mut f) => {
                f.error.at = rfc3339(self.clock.now());
                Err(f.error)
            }
        })
    }

    /// Asks the account's refresh loop to run now (returns false for an unknown account).
    pub fn request_refresh(&self, name: &str) -> bool {
        match self.get(name) {
            Some(a) => {
                a.wake.notify_one();
                true
            }
            None => false,
        }
    }

    /// Starts one refresh loop per account: a first cycle at once, then every
    /// `refresh_interval` (sooner after a failure, with backoff), or when asked.
    pub fn start(self: &Arc<Self>) {
        let names: Vec<String> = self.accounts.read().map(|m| m.keys().cloned().collect()).unwrap_or_default();
        for name in names {
            self.spawn_loop(&name);
        }
    }

    fn spawn_loop(self: &Arc<Self>, name: &str) {
        let Some(account) = self.get(name) else { return };
        let me = Arc::clone(self);
        let handle = tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                me.cycle(&account).await;
                let failed = account.state().last_error.is_some();
                failures = if failed { failures.saturating_add(1) } else { 0 };
                let interval = account.config.refresh();
                let wait = if failed {
                    interval.min(Duration::from_secs(60).saturating_mul(1 << (failures - 1).min(6))).min(Duration::from_secs(3600))
                } else {
                    interval
                };
                tokio::select! {
                    _ = me.clock.sleep(wait) => {}
                    _ = account.wake.notified() => {}
                }
            }
        });
        if let Ok(mut loops) = self.loops.lock() {
            if let Some(old) = loops.insert(name.to_string(), handle) {
                old.abort();
            }
        }
    }

    /// Applies a new `[[accounts]]` list (config reload): removed accounts stop and their labels
    /// leave the catalog; changed ones restart (keeping their state when the identity is the
    /// same); new ones start.
    pub fn reconcile(self: &Arc<Self>, configs: Vec<AccountConfig>, running: bool) {
        let wanted: HashSet<String> = configs.iter().map(|c| c.name.clone()).collect();
        let existing: Vec<(String, Arc<Account>)> =
            self.accounts.read().map(|m| m.iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect()).unwrap_or_default();
        let mut catalog_changed = false;
        for (name, _) in existing.iter().filter(|(n, _)| !wanted.contains(n)) {
            self.stop_loop(name);
            if let Ok(mut m) = self.accounts.write() {
                m.remove(name);
            }
            self.cache.remove_account(name);
            let _ = std::fs::remove_file(self.snapshot_path(name));
            if let Some(m) = &self.metrics {
                m.forget(name);
            }
            catalog_changed = true;
        }
        for config in configs {
            let same = existing.iter().find(|(n, _)| *n == config.name).map(|(_, a)| a.config == config);
            if same == Some(true) {
                continue;
            }
            let name = config.name.clone();
            if same == Some(false) {
                self.stop_loop(&name);
                self.cache.remove_account(&name);
                catalog_changed = true;
            }
            self.insert(config);
            if running {
                self.spawn_loop(&name);
            }
        }
        if catalog_changed {
            self.changed();
        }
    }

    fn stop_loop(&self, name: &str) {
        if let Ok(mut loops) = self.loops.lock() {
            if let Some(h) = loops.remove(name) {
                h.abort();
            }
        }
    }

    /// One cycle: validate (token + one label request) unless the account is already working,
    /// then retrieve every page, then publish.
    async fn cycle(&self, account: &Account) {
        let _one = account.cycle.lock().await;
        let now = rfc3339(self.clock.now());
        account.state().last_attempt = Some(now.clone());
        let config = &account.config;
        let credential = match config.credential(&self.options.base_dir) {
            Ok(c) => c,
            Err(e) => {
                let f = Failure::new(Effect::ValidationFailed, ErrorKind::Configuration, e.to_string());
                return self.failed(account, f);
            }
        };
        let working = matches!(account.state().status, Status::Active) && config.retrieval;
        if !working {
            if let Err(f) = self.client.fetch_labels(config, &credential, &account.tokens, true).await {
                return self.failed(account, f);
            }
            let at = rfc3339(self.clock.now());
            let mut s = account.state();
            s.validated_once = true;
            s.set(Status::ValidationSuccess, &at, "token and label list request succeeded");
            if !config.retrieval {
                s.set(Status::TenantInactive, &at, "label retrieval is disabled for this account");
                s.last_error = None;
                drop(s);
                self.persist(account);
                return self.observe(account);
            }
            let reason = "validated; retrieving labels";
            if s.last_retrieval.is_none() {
                s.set(Status::RetrievalPending, &at, reason);
            }
            drop(s);
            self.observe(account);
        }
        let (values, tenant) = match self.client.fetch_labels(config, &credential, &account.tokens, false).await {
            Ok(v) => v,
            Err(f) => return self.failed(account, f),
        };
        let tenant = tenant.or_else(|| parse_guid(&config.tenant_id).map(|_| config.tenant_id.to_ascii_lowercase()));
        let fresh = crate::labels::normalize(&values, config.api, tenant.as_deref());
        let at = self.clock.now();
        let merged = {
            let mut s = account.state();
            let returned: HashSet<String> = fresh.iter().map(|l| l.id.clone()).collect();
            let mut merged = fresh.clone();
            // A label Graph no longer returns stays known (files still carry it), flagged deleted.
            for mut old in s.labels.iter().filter(|l| !returned.contains(&l.id)).cloned() {
                old.deleted = true;
                merged.push(old);
            }
            for l in &mut merged {
                l.account = Some(config.name.clone());
            }
            s.labels = merged.clone();
            s.label_count = fresh.len();
            s.last_retrieval = Some(rfc3339(at));
            s.last_success_unix = Some(unix(at));
            s.last_error = None;
            s.validated_once = true;
            merged
        };
        // Readers see the old catalog or the new one, never a mix; and the policy is re-bound to
        // it before the account says Active, so whoever sees Active sees the labels in force.
        self.cache.replace_account(&config.name, merged);
        self.changed();
        account.state().set(Status::Active, &rfc3339(at), format!("retrieved {} label(s)", fresh.len()));
        self.persist(account);
        self.observe(account);
    }

    fn failed(&self, account: &Account, mut f: Failure) {
        let at = rfc3339(self.clock.now());
        f.error.at = at.clone();
        {
            let mut s = account.state();
            let status = match f.effect {
                Effect::ValidationFailed => Some(Status::ValidationFailed),
                Effect::TenantInactive => Some(Status::TenantInactive),
                Effect::TenantNotFound if s.validated_once => Some(Status::TenantInactive),
                Effect::TenantNotFound => Some(Status::ValidationFailed),
                // The status and the last good labels stay.
                Effect::Transient => None,
            };
            if let Some(status) = status {
                s.set(status, &at, f.error.message.clone());
            }
            s.last_error = Some(f.error.clone());
        }
        if let Some(m) = &self.metrics {
            m.error(&account.config.name, f.error.kind);
        }
        self.persist(account);
        self.observe(account);
    }

    fn observe(&self, account: &Account) {
        if let Some(m) = &self.metrics {
            let s = account.state();
            m.set(&account.config.name, s.status, s.label_count, s.last_success_unix);
        }
    }

    /// Writes the account's state: temp file, fsync, rename, so a crash leaves the old
    /// snapshot or the new one.
    fn persist(&self, account: &Account) {
        let path = self.snapshot_path(&account.config.name);
        let state = account.state().clone();
        if let Err(e) = write_atomic(&path, &state) {
            tracing::warn!(account = %account.config.name, error = %e, "cannot save the label snapshot");
        }
    }
}

/// `<state_dir>/accounts/<name>.json`, the name percent-encoded beyond `[A-Za-z0-9_-]`.
fn snapshot_path(state_dir: &Path, name: &str) -> PathBuf {
    let mut file = String::new();
    for b in name.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => file.push(b as char),
            _ => file.push_str(&format!("%{b:02X}")),
        }
    }
    state_dir.join("accounts").join(format!("{file}.json"))
}

/// Moves an account's stored snapshot with a rename (its labels stay with it: the snapshot is
/// keyed by the account's identity, not its name). No snapshot yet is fine.
pub fn rename_snapshot(state_dir: &Path, old: &str, new: &str) -> std::io::Result<()> {
    match std::fs::rename(snapshot_path(state_dir, old), snapshot_path(state_dir, new)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// The stored state of an account, when it was made with the same identity.
fn read_snapshot(state_dir: &Path, config: &AccountConfig) -> Option<AccountState> {
    let bytes = std::fs::read(snapshot_path(state_dir, &config.name)).ok()?;
    serde_json::from_slice::<AccountState>(&bytes).ok().filter(|s| s.fingerprint == fingerprint(config))
}

/// Each configured account as `labelgate serve` last stored it in `state_dir` (no network; an
/// account never synced shows `Retrieval Pending`), with its labels: what `labelgate accounts`
/// shows and `labelgate check` / `policy test` resolve label names against.
pub fn stored_accounts(state_dir: &Path, accounts: &[AccountConfig]) -> Vec<(AccountView, Vec<Label>)> {
    accounts
        .iter()
        .map(|a| {
            let state = read_snapshot(state_dir, a).unwrap_or_else(|| AccountState::new(fingerprint(a)));
            (view_of(a, &state), state.labels)
        })
        .collect()
}

fn write_atomic(path: &Path, state: &AccountState) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let bytes = serde_json::to_vec(state).map_err(std::io::Error::other)?;
    let mut tmp = tempfile_in(dir)?;
    tmp.1.write_all(&bytes)?;
    tmp.1.sync_all()?;
    std::fs::rename(&tmp.0, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    for _ in 0..16 {
        let p = dir.join(format!(".snapshot-{}.tmp", crate::new_guid()));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&p) {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("cannot create a temporary file"))
}
