//! `labelgate-proxy`: the forward proxy browsers use. This first slice relays absolute-form
//! HTTP requests and tunnels CONNECT without interception; every upload body (POST/PUT/PATCH)
//! is held, split into files (multipart parts, or the whole body), read by the label extractor,
//! and decided by policy before a byte reaches the origin. A block answers 403 with a block page
//! (HTML, or JSON for API clients); an allow forwards the exact bytes the client sent. One audit
//! record per inspected transaction.
//!
//! Not yet here (issue 4 continues): TLS interception, HTTP/2, streaming mode, spill files, proxy
//! authentication, client ACLs beyond loopback, the admin listener and metrics.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod audit;
mod block;
mod inspect;
mod metrics;
mod server;
mod tls;

pub use tls::{upstream_client_config, CertAuthority, TlsError};

pub use audit::{AuditFile, AuditRecord, AuditSink};
pub use inspect::file_facts;
pub use metrics::ProxyMetrics;
pub use server::{Interception, PolicySource, Proxy};

use serde::Deserialize;
use std::net::SocketAddr;

/// `[proxy]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Where browsers connect (default `127.0.0.1:3128`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Keep the query string in audit records (default false: queries often carry tokens).
    #[serde(default)]
    pub audit_query: bool,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 3128))
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig { listen: default_listen(), audit_query: false }
    }
}

/// `[inspection]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InspectionConfig {
    /// Largest body inspected; a larger one is `oversize` for `on_unscannable` (default 256 MiB).
    #[serde(default = "default_max_body")]
    pub max_body: u64,
}

fn default_max_body() -> u64 {
    256 * 1024 * 1024
}

impl Default for InspectionConfig {
    fn default() -> Self {
        InspectionConfig { max_body: default_max_body() }
    }
}
