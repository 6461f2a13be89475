//! `labelgate-sync`: MIP accounts. Each `[[accounts]]` entry is validated with the Microsoft
//! identity platform (client-credentials grant), its tenant's sensitivity labels are retrieved
//! from Microsoft Graph (beta `security/informationProtection` or v1.0
//! `dataSecurityAndGovernance`, every page), normalised into the catalog's `Label`, and swapped
//! into the [`labelgate_catalog::LabelCache`] the proxy reads without locks. Each account moves
//! through the statuses admins see (`Validation Success`, `Validation Failed`, `Retrieval
//! Pending`, `Active`, `Tenant Inactive`), refreshes on its own schedule, and keeps its last good
//! labels on disk so policy is enforced even when Graph is unreachable.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use labelgate_sync::{AccountConfig, SyncOptions, Syncer, SystemClock};
//! use std::sync::Arc;
//! let accounts: Vec<AccountConfig> = toml::from_str::<Accounts>(r#"
//!     [[accounts]]
//!     name = "Contoso"
//!     tenant_id = "contoso.onmicrosoft.com"
//!     client_id = "11111111-2222-3333-4444-555555555555"
//!     client_secret_env = "CONTOSO_SECRET"
//! "#)?.accounts;
//! # #[derive(serde::Deserialize)] struct Accounts { accounts: Vec<AccountConfig> }
//! let cache = Arc::new(labelgate_catalog::LabelCache::new(labelgate_catalog::Catalog::default()));
//! let options = SyncOptions { state_dir: "state".into(), base_dir: ".".into(), client: Default::default() };
//! let syncer = Arc::new(Syncer::new(accounts, cache, options, Arc::new(SystemClock), None)?);
//! syncer.start();
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod assertion;
mod client;
mod clock;
mod config;
mod engine;
mod failure;
mod labels;
mod metrics;

pub use assertion::{CertificateCredential, CertificateError};
pub use client::{Client, ClientError, ClientOptions, RetryPolicy, Token, TokenCache};
pub use clock::{rfc3339, Clock, SystemClock, VirtualClock};
pub use config::{parse_duration, AccountConfig, Credential, CredentialError, LabelApi, Secret};
pub use engine::{rename_snapshot, stored_accounts, AccountView, Status, SyncError, SyncOptions, Syncer, Transition};
pub use failure::{ErrorKind, LastError};
pub use labels::normalize;
pub use metrics::SyncMetrics;

/// A random GUID (version 4), for `client-request-id` and assertion ids.
pub fn new_guid() -> String {
    let mut b = [0u8; 16];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}
