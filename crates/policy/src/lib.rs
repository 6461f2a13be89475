//! `labelgate-policy`: the DLP policy an admin writes in `[policy]` and `[[cloud_apps]]`, compiled
//! and checked, then evaluated as a pure function of (transaction facts, file findings, label
//! catalog) to a [`Verdict`] that says what to do and why.
//!
//! Rules are ordered; the first whose criteria all hold decides, else `default_action`. Files
//! that could not be inspected are decided by `on_unscannable` for their reason, overridable per
//! rule. A transaction's verdict is the strictest of its files' (block > audit > allow).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod eval;
pub mod facts;

pub use config::{same_app_name, CloudAppConfig, PolicyConfig, RuleConfig, TenantScope, UnscannableConfig};
pub use eval::{FileFacts, FileLabel, ResolvedPolicy, Transaction, Verdict};

use labelgate_catalog::Catalog;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What to do with a transaction (ordered by strictness: `Allow < Audit < Block`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Let it through.
    Allow,
    /// Let it through, recorded as a policy match.
    Audit,
    /// Stop it.
    Block,
}

impl Action {
    /// The stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Audit => "audit",
            Action::Block => "block",
        }
    }
}

/// Where the file is going: through the proxy, or being scanned where it lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// An upload seen by the proxy.
    Upload,
    /// A file at rest, not in flight (what `labelgate policy test --at-rest` evaluates).
    AtRest,
}

/// Why a file could not be inspected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnscannableReason {
    /// Encrypted: no label readable.
    Encrypted,
    /// Larger than inspection allows.
    Oversize,
    /// Not readable as its container.
    Malformed,
    /// Structure that could hide a label (the extractor's `ambiguous` flag).
    Ambiguous,
    /// Files inside files not all opened: an `[inspection]` nesting limit was reached.
    NestedLimit,
    /// A container the engine recognises but cannot open.
    Unsupported,
    /// A file sent in pieces (a resumable or multipart upload session) that the proxy could not
    /// reassemble: a gap, a start it never saw, a piece it could not keep.
    Incomplete,
    /// At rest, with content detectors: text the detectors did not see (past the text limit,
    /// a part that could not be read, a document kind whose text is not read such as legacy
    /// binary Office files). The counts are of what was read.
    TextUnread,
}

impl UnscannableReason {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            UnscannableReason::Encrypted => "encrypted",
            UnscannableReason::Oversize => "oversize",
            UnscannableReason::Malformed => "malformed",
            UnscannableReason::Ambiguous => "ambiguous",
            UnscannableReason::NestedLimit => "nested_limit",
            UnscannableReason::Unsupported => "unsupported",
            UnscannableReason::Incomplete => "incomplete",
            UnscannableReason::TextUnread => "text_unread",
        }
    }
}

pub use labelgate_diagnostics::{Location, Problem, Severity};

/// A compiled, validated policy (label names not yet resolved: see [`Policy::resolve`]).
#[derive(Debug, Clone)]
pub struct Policy {
    pub(crate) rules: Vec<eval::Rule>,
    pub(crate) default_action: Action,
    pub(crate) unscannable: eval::Unscannable,
    pub(crate) apps: eval::CloudApps,
    pub(crate) own_tenants: Vec<String>,
    pub(crate) kind_names: Vec<String>,
}

impl Policy {
    /// Compiles `[policy]` and `[[cloud_apps]]`. `known_kinds` are the valid file-kind names;
    /// `own_tenants` are the tenants of configured MIP accounts. Returns every problem found;
    /// the policy is usable only when none is an error.
    pub fn compile(config: &PolicyConfig, apps: &[CloudAppConfig], known_kinds: &[&str], own_tenants: &[String]) -> (Policy, Vec<Problem>) {
        config::compile(config, apps, known_kinds, own_tenants)
    }

    /// Resolves label references (names, sublabels) against a catalog snapshot. Names no label
    /// has are warnings (Graph may not have been reached yet); a name several labels share is an
    /// error.
    pub fn resolve(&self, catalog: Arc<Catalog>) -> (ResolvedPolicy, Vec<Problem>) {
        eval::resolve(self, catalog)
    }

    /// Whether a rule requires content detectors (`labelgate scan` then reads text).
    pub fn uses_detectors(&self) -> bool {
        self.rules.iter().any(|r| !r.detectors.is_empty())
    }

    /// Rule names, in order.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.name.as_str())
    }

    /// Cloud application name for a host, if any.
    pub fn cloud_app_for(&self, host: &str) -> Option<&str> {
        self.apps.resolve(host).map(|i| self.apps.apps[i].name.as_str())
    }
}
