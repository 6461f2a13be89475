//! `labelgate-proxy`: the forward proxy browsers use. It relays absolute-form HTTP requests,
//! tunnels CONNECT (intercepting TLS with per-host certificates from a local CA unless the host is
//! bypassed), speaks HTTP/1.1 and HTTP/2 on both sides, and passes upgrades through. Every upload
//! body (POST/PUT/PATCH) is split into files (multipart parts, or the whole body), read by the
//! label extractor and decided by policy: in `hold` mode before a byte reaches the origin, in
//! `stream` mode while it flows, with the final bytes withheld until the verdict. A block answers
//! 403 with a block page (HTML, or JSON for API clients); an allow forwards the exact bytes the
//! client sent. One audit record per inspected transaction.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod audit;
mod auth;
mod block;
mod inspect;
mod metrics;
mod net;
mod pool;
mod server;
mod sessions;
mod spool;
mod stream;
mod tls;
mod tunnel;
mod upload;
mod upstream;
mod websocket;

pub use tls::{upstream_client_config, CertAuthority, TlsError};

pub use audit::{AuditFile, AuditLabel, AuditRecord, AuditSession, AuditSink};
pub use auth::{hash_line, User, Users};
pub use inspect::{file_facts, inner_facts, inspection_facts, FileRecord};
pub use metrics::ProxyMetrics;
pub use net::Cidr;
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
    /// Client networks allowed to use the proxy (default: loopback only).
    #[serde(default = "default_clients")]
    pub allow_clients: Vec<String>,
    /// Hosts whose CONNECT tunnels are relayed without interception (`*.bank.example`, …).
    #[serde(default)]
    pub bypass: Vec<String>,
    /// Destinations clients may never reach through the proxy: CIDRs (checked against the
    /// resolved address at connect time) or host globs.
    #[serde(default)]
    pub deny_destinations: Vec<String>,
    /// Users file (relative to the config file) enabling proxy Basic authentication: lines of
    /// `user:argon2-hash[:group,…]` (`labelgate passwd USER` writes one).
    #[serde(default)]
    pub users_file: Option<std::path::PathBuf>,
    /// Client connections served at once; more are closed at accept (default 10000).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds an upload body may stall between chunks before the request fails (default 60).
    #[serde(default = "default_body_idle")]
    pub body_idle_timeout_secs: u64,
    /// Seconds a whole upload body may take to arrive, however steadily it trickles (default
    /// 3600); past it the request fails with 408.
    #[serde(default = "default_upload_timeout")]
    pub upload_timeout_secs: u64,
    /// Seconds a shutdown waits for transactions in flight (default 30).
    #[serde(default = "default_drain")]
    pub drain_timeout_secs: u64,
}

fn default_max_connections() -> usize {
    10_000
}

fn default_body_idle() -> u64 {
    60
}

fn default_upload_timeout() -> u64 {
    3600
}

fn default_drain() -> u64 {
    30
}

fn default_clients() -> Vec<String> {
    vec!["127.0.0.0/8".into(), "::1/128".into()]
}

impl ProxyConfig {
    /// Problems with the address rules: (message, is_error).
    pub fn problems(&self) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        for c in &self.allow_clients {
            if let Err(e) = Cidr::parse(c) {
                out.push((format!("[proxy] allow_clients: {e}"), true));
            }
        }
        for d in &self.deny_destinations {
            if d.contains('/') || d.parse::<std::net::IpAddr>().is_ok() {
                if let Err(e) = Cidr::parse(d) {
                    out.push((format!("[proxy] deny_destinations: {e}"), true));
                }
            }
        }
        if !self.listen.ip().is_loopback() && self.deny_destinations.is_empty() {
            out.push((
                format!("[proxy] listen {} is reachable beyond loopback and deny_destinations is empty: clients could reach this host's own and internal services", self.listen),
                false,
            ));
        }
        out
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 3128))
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: default_listen(),
            audit_query: false,
            allow_clients: default_clients(),
            bypass: Vec::new(),
            deny_destinations: Vec::new(),
            users_file: None,
            max_connections: default_max_connections(),
            body_idle_timeout_secs: default_body_idle(),
            upload_timeout_secs: default_upload_timeout(),
            drain_timeout_secs: default_drain(),
        }
    }
}

/// `[inspection]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InspectionConfig {
    /// Largest body inspected; a larger one is `oversize` for `on_unscannable` (default 256 MiB).
    #[serde(default = "default_max_body")]
    pub max_body: u64,
    /// Bytes of one body held in memory before it is spooled to disk (default 16 MiB).
    #[serde(default = "default_memory_limit")]
    pub memory_limit: u64,
    /// Bytes all bodies held at once may keep in memory together (default 64 MiB); past it,
    /// bodies are spooled to disk however small, so concurrency cannot exhaust RAM.
    #[serde(default = "default_memory_budget")]
    pub memory_budget: u64,
    /// Disk all spooled bodies may use together (default 8 GiB); beyond it, `oversize`.
    #[serde(default = "default_spool_quota")]
    pub spool_quota: u64,
    /// Where bodies are spooled (default: `<state dir>/spool` under `serve`).
    #[serde(default)]
    pub spool_dir: Option<std::path::PathBuf>,
    /// `hold` (default): no byte of an upload reaches the origin before its verdict. `stream`:
    /// bytes are forwarded as they arrive, the last `stream_holdback` bytes are withheld until
    /// the verdict, and a blocked upload is aborted upstream.
    #[serde(default)]
    pub mode: InspectionMode,
    /// Hash (SHA-256) every inspected file for the audit record, not only labeled and
    /// unscannable ones (default false: clean files are not hashed on the hot path).
    #[serde(default)]
    pub hash_all: bool,
    /// Bytes withheld from the origin in `stream` mode until the verdict (default 64 KiB).
    #[serde(default = "default_holdback")]
    pub stream_holdback: u64,
    /// Containers opened inside one another (default 5): the upload is depth 0, its members 1.
    #[serde(default = "default_max_depth")]
    pub max_depth: u32,
    /// Bytes one inner file may expand to while it is read (default 64 MiB).
    #[serde(default = "default_max_inner_bytes")]
    pub max_inner_bytes: u64,
    /// Bytes decompressed in all per transaction (default 1 GiB).
    #[serde(default = "default_max_expanded_bytes")]
    pub max_expanded_bytes: u64,
    /// Members of one archive or parts of one message (default 10,000).
    #[serde(default = "default_max_members")]
    pub max_members: u64,
    /// Decompressed bytes per compressed byte of one stream, judged past 1 MiB (default 250).
    #[serde(default = "default_max_ratio")]
    pub max_ratio: u64,
    /// Upload sessions (files sent in pieces) tracked at once (default 1024); a piece of a
    /// session that finds no room is `incomplete`.
    #[serde(default = "default_max_upload_sessions")]
    pub max_upload_sessions: usize,
    /// Seconds an upload session may wait for its next piece (default 3600); after that its
    /// pieces are dropped, it is recorded `incomplete`, and a later piece is one of a session
    /// whose start was never seen.
    #[serde(default = "default_upload_session_timeout")]
    pub upload_session_timeout_secs: u64,
    /// Seconds a piece carrying a file's last bytes is held while bytes before them are still
    /// missing (default 30): pieces sent in parallel fill the gap meanwhile; past it, the
    /// session is `incomplete`.
    #[serde(default = "default_upload_gap_wait")]
    pub upload_gap_wait_secs: u64,
}

impl InspectionConfig {
    /// The extractor's limits for one file of an upload.
    pub fn extract_limits(&self) -> labelgate_extract::Limits {
        labelgate_extract::Limits { max_buffered_bytes: self.max_body, ..labelgate_extract::Limits::default() }
    }

    /// The limits on files inside files.
    pub fn unpack_limits(&self) -> labelgate_unpack::UnpackLimits {
        labelgate_unpack::UnpackLimits {
            max_depth: self.max_depth,
            max_inner_bytes: self.max_inner_bytes,
            max_expanded_bytes: self.max_expanded_bytes,
            max_members: self.max_members,
            max_ratio: self.max_ratio,
            hash_flagged: true,
        }
    }
}

fn default_max_depth() -> u32 {
    labelgate_unpack::UnpackLimits::default().max_depth
}

fn default_max_inner_bytes() -> u64 {
    labelgate_unpack::UnpackLimits::default().max_inner_bytes
}

fn default_max_expanded_bytes() -> u64 {
    labelgate_unpack::UnpackLimits::default().max_expanded_bytes
}

fn default_max_members() -> u64 {
    labelgate_unpack::UnpackLimits::default().max_members
}

fn default_max_ratio() -> u64 {
    labelgate_unpack::UnpackLimits::default().max_ratio
}

/// When upload bytes reach the origin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InspectionMode {
    /// The whole body is held until the verdict.
    #[default]
    Hold,
    /// Bytes flow while they are inspected; the tail waits for the verdict.
    Stream,
}

fn default_holdback() -> u64 {
    64 * 1024
}

fn default_memory_limit() -> u64 {
    16 * 1024 * 1024
}

fn default_memory_budget() -> u64 {
    64 * 1024 * 1024
}

fn default_spool_quota() -> u64 {
    8 * 1024 * 1024 * 1024
}

fn default_max_upload_sessions() -> usize {
    1024
}

fn default_upload_session_timeout() -> u64 {
    3600
}

fn default_upload_gap_wait() -> u64 {
    30
}

fn default_max_body() -> u64 {
    256 * 1024 * 1024
}

impl Default for InspectionConfig {
    fn default() -> Self {
        InspectionConfig {
            max_body: default_max_body(),
            memory_limit: default_memory_limit(),
            memory_budget: default_memory_budget(),
            spool_quota: default_spool_quota(),
            spool_dir: None,
            mode: InspectionMode::default(),
            hash_all: false,
            stream_holdback: default_holdback(),
            max_depth: default_max_depth(),
            max_inner_bytes: default_max_inner_bytes(),
            max_expanded_bytes: default_max_expanded_bytes(),
            max_members: default_max_members(),
            max_ratio: default_max_ratio(),
            max_upload_sessions: default_max_upload_sessions(),
            upload_session_timeout_secs: default_upload_session_timeout(),
            upload_gap_wait_secs: default_upload_gap_wait(),
        }
    }
}
