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
mod idle;
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

pub use audit::{AuditDestination, AuditFile, AuditLabel, AuditLost, AuditRecord, AuditSession, AuditSink};
pub use auth::{hash_line, HashError, User, Users, UsersError};
pub use labelgate_policy::facts::{file_facts, inner_facts, inspection_facts, FileRecord};
pub use metrics::ProxyMetrics;
pub use net::{Cidr, RuleError, BUILT_IN_DENIED};

pub use server::{Interception, PolicySource, Proxy, SettingsHandle};

use labelgate_diagnostics::Problem;
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
    /// A transaction whose audit record cannot be written is not let through (default false:
    /// the loss is counted and said loudly, and the upload goes on). With true, an upload the
    /// policy allows answers 503 with Retry-After instead; a block stays a block.
    #[serde(default)]
    pub audit_required: bool,
    /// Where audit records go: a file (relative to the config file; appended to, created 0600,
    /// reopened on SIGHUP after logrotate renames it) instead of standard output. A change needs
    /// a restart.
    #[serde(default)]
    pub audit_file: Option<std::path::PathBuf>,
    /// Client networks allowed to use the proxy (default: loopback only).
    #[serde(default = "default_clients")]
    pub allow_clients: Vec<String>,
    /// Hosts whose CONNECT tunnels are relayed without interception (`*.bank.example`, …).
    #[serde(default)]
    pub bypass: Vec<String>,
    /// Destinations clients may never reach through the proxy: CIDRs (checked against the
    /// resolved address at connect time) or host globs. Always wins over `allow_destinations`.
    #[serde(default)]
    pub deny_destinations: Vec<String>,
    /// Exceptions to the built-in refusals (loopback, link-local incl. 169.254.169.254, the
    /// unspecified addresses, and their IPv4-mapped/compatible IPv6 forms): CIDRs or host globs.
    /// labelgate's own listeners are refused whatever this says.
    #[serde(default)]
    pub allow_destinations: Vec<String>,
    /// Ports `CONNECT` may open: numbers or `"from-to"` ranges (default `[443]`).
    #[serde(default = "default_connect_ports")]
    pub connect_ports: Vec<PortSpec>,
    /// Connections one client address may hold at once (default 256), tunnels included.
    #[serde(default = "default_max_per_client")]
    pub max_connections_per_client: usize,
    /// Seconds to connect to an origin (default 10).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// Seconds a TLS handshake may take, with the client inside a tunnel or with the origin
    /// (default 10).
    #[serde(default = "default_tls_timeout")]
    pub tls_handshake_timeout_secs: u64,
    /// Seconds an origin may take to answer once the request is sent (default 300).
    #[serde(default = "default_response_timeout")]
    pub response_timeout_secs: u64,
    /// Seconds a client connection may wait for a request's head, idle between requests
    /// included (default 30).
    #[serde(default = "default_header_timeout")]
    pub header_timeout_secs: u64,
    /// Seconds a WebSocket or a blind (bypassed) tunnel may stay silent both ways (default 600).
    #[serde(default = "default_tunnel_idle")]
    pub tunnel_idle_timeout_secs: u64,
    /// Bytes per second an upload body must average over every 30 s once it has started
    /// (default 512): a trickle cannot hold a connection for the whole upload_timeout.
    #[serde(default = "default_min_rate")]
    pub body_min_bytes_per_sec: u64,
    /// The window that rate is judged over, in seconds (default 30).
    #[serde(default = "default_rate_window")]
    pub body_rate_window_secs: u64,
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

fn default_connect_ports() -> Vec<PortSpec> {
    vec![PortSpec::One(443)]
}

/// A port, or a range of ports written `"from-to"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum PortSpec {
    /// One port.
    One(u16),
    /// `"from-to"`, both included.
    Range(String),
}

impl PortSpec {
    /// The ports it names, or what is wrong with it.
    pub fn bounds(&self) -> Result<(u16, u16), net::RuleError> {
        match self {
            PortSpec::One(p) => Ok((*p, *p)),
            PortSpec::Range(r) => {
                let (a, b) = r.split_once('-').ok_or_else(|| net::RuleError::Ports(r.clone()))?;
                let (a, b) = (a.trim().parse::<u16>(), b.trim().parse::<u16>());
                match (a, b) {
                    (Ok(a), Ok(b)) if a <= b => Ok((a, b)),
                    _ => Err(net::RuleError::PortRange(r.clone())),
                }
            }
        }
    }
}

impl std::fmt::Display for PortSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortSpec::One(p) => write!(f, "{p}"),
            PortSpec::Range(r) => f.write_str(r),
        }
    }
}

fn default_max_per_client() -> usize {
    256
}

fn default_connect_timeout() -> u64 {
    10
}

fn default_tls_timeout() -> u64 {
    10
}

fn default_response_timeout() -> u64 {
    300
}

fn default_header_timeout() -> u64 {
    30
}

fn default_tunnel_idle() -> u64 {
    600
}

fn default_min_rate() -> u64 {
    512
}

fn default_rate_window() -> u64 {
    30
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
    /// How long an HTTP connection may see no byte move either way: the tunnel idle timeout,
    /// but never less than an origin is given to answer (plus a margin), so a request waiting
    /// for its answer — or its 504 — is not cut first.
    pub fn connection_idle(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.tunnel_idle_timeout_secs.max(self.response_timeout_secs + 5).max(1))
    }

    /// Problems with the address rules, each at its key.
    pub fn problems(&self) -> Vec<Problem> {
        let at = |k: &str| labelgate_diagnostics::key(&["proxy", k]);
        let mut out = Vec::new();
        for c in &self.allow_clients {
            if let Err(e) = Cidr::parse(c) {
                out.push(Problem::error(at("allow_clients"), format!("[proxy] allow_clients: {e}")));
            }
        }
        for (key, list) in [("deny_destinations", &self.deny_destinations), ("allow_destinations", &self.allow_destinations)] {
            for d in list {
                if d.contains('/') || d.parse::<std::net::IpAddr>().is_ok() {
                    if let Err(e) = Cidr::parse(d) {
                        out.push(Problem::error(at(key), format!("[proxy] {key}: {e}")));
                    }
                }
            }
        }
        for p in &self.connect_ports {
            if let Err(e) = p.bounds() {
                out.push(Problem::error(at("connect_ports"), format!("[proxy] connect_ports: {e}")));
            }
        }
        if self.connect_ports.is_empty() {
            out.push(Problem::warning(at("connect_ports"), "[proxy] connect_ports: empty: no CONNECT tunnel (no HTTPS) can be opened"));
        }
        if !self.listen.ip().is_loopback() && self.deny_destinations.is_empty() {
            out.push(Problem::warning(
                at("listen"),
                format!("[proxy] listen {} is reachable beyond loopback and deny_destinations is empty: clients could reach this host's own and internal services", self.listen),
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
            audit_required: false,
            audit_file: None,
            allow_clients: default_clients(),
            bypass: Vec::new(),
            deny_destinations: Vec::new(),
            allow_destinations: Vec::new(),
            connect_ports: default_connect_ports(),
            max_connections_per_client: default_max_per_client(),
            connect_timeout_secs: default_connect_timeout(),
            tls_handshake_timeout_secs: default_tls_timeout(),
            response_timeout_secs: default_response_timeout(),
            header_timeout_secs: default_header_timeout(),
            tunnel_idle_timeout_secs: default_tunnel_idle(),
            body_min_bytes_per_sec: default_min_rate(),
            body_rate_window_secs: default_rate_window(),
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
    /// Largest body held whole before any of it reaches the origin in `hold` mode (default 256
    /// MiB). Past it the body streams on while it is still spooled and inspected, its last
    /// `stream_holdback` bytes waiting for the verdict.
    #[serde(default = "default_max_body")]
    pub max_body: u64,
    /// Largest body (or decoded body, or file sent in pieces) inspected (default 4 GiB); a larger
    /// one is `oversize` for `on_unscannable`. At most `spool_quota` takes effect.
    #[serde(default = "default_max_inspect")]
    pub max_inspect: u64,
    /// Bytes of one body held in memory before it is spooled to disk (default 16 MiB).
    #[serde(default = "default_memory_limit")]
    pub memory_limit: u64,
    /// Bytes all bodies held at once may keep in memory together (default 64 MiB); past it,
    /// bodies are spooled to disk however small, so concurrency cannot exhaust RAM.
    #[serde(default = "default_memory_budget")]
    pub memory_budget: u64,
    /// Disk all spooled bodies may use together (default 8 GiB). A body that finds it spent by
    /// others is refused for now (503 with Retry-After), never passed.
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
    /// Uploads inspected at once (default 64; fixed at start); more wait their turn.
    #[serde(default = "default_max_inspections")]
    pub max_concurrent_inspections: usize,
    /// Seconds an upload may wait for its turn to be inspected (default 10); past it, 503 with
    /// Retry-After (never a pass).
    #[serde(default = "default_inspection_queue")]
    pub inspection_queue_secs: u64,
}

impl InspectionConfig {
    /// The largest body, decoded body or pieced file that is inspected: `max_inspect`, or the
    /// whole spool when that is smaller (a body the spool could never hold is `oversize`, not
    /// refused for ever).
    pub fn inspect_limit(&self) -> u64 {
        self.max_inspect.max(self.max_body).min(self.spool_quota.max(self.memory_limit))
    }

    /// What `labelgate check` reports about these limits, each at its key.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if self.max_inspect < self.max_body {
            out.push(Problem::error(
                labelgate_diagnostics::key(&["inspection", "max_inspect"]),
                format!(
                    "[inspection] max_inspect ({}) is smaller than max_body ({}): bodies past max_inspect are not inspected, so it must be at least max_body",
                    self.max_inspect, self.max_body
                )
            ));
        }
        if self.stream_holdback == 0 || self.stream_holdback > 64 << 20 {
            out.push(Problem::error(
                labelgate_diagnostics::key(&["inspection", "stream_holdback"]),
                format!(
                    "[inspection] stream_holdback ({}) must be between 1 and 67108864: with 0 a streamed body would reach the origin whole before its verdict",
                    self.stream_holdback
                )
            ));
        }
        if self.max_inspect > self.spool_quota {
            out.push(Problem::warning(
                labelgate_diagnostics::key(&["inspection", "max_inspect"]),
                format!(
                    "[inspection] max_inspect ({}) is larger than spool_quota ({}): bodies past spool_quota cannot be held, so they are oversize",
                    self.max_inspect, self.spool_quota
                )
            ));
        }
        out
    }

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
    /// The whole body is held until the verdict, up to `max_body`; past it the body streams on
    /// as in `Stream`, still inspected whole.
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

fn default_max_inspections() -> usize {
    64
}

fn default_inspection_queue() -> u64 {
    10
}

fn default_max_body() -> u64 {
    256 * 1024 * 1024
}

fn default_max_inspect() -> u64 {
    4 * 1024 * 1024 * 1024
}

impl Default for InspectionConfig {
    fn default() -> Self {
        InspectionConfig {
            max_body: default_max_body(),
            max_inspect: default_max_inspect(),
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
            max_concurrent_inspections: default_max_inspections(),
            inspection_queue_secs: default_inspection_queue(),
        }
    }
}
