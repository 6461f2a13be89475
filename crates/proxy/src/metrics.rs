//! Proxy metrics for the admin listener's `/metrics`, named as the Prometheus naming guide
//! asks: counters end in `_total`, units are in the name (`_seconds`, `_bytes`). Label values
//! are bounded: actions, rule names from the config, reasons, resources, and label ids the
//! catalog knows (any other id is `unknown`).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Inspection-latency buckets (seconds): a typical verdict takes ~0.3 ms, a fresh process's first
/// ones 5–22 ms, a 10 MiB upload among hundreds seconds; 100 µs to 60 s resolves both ends.
pub const INSPECTION_BUCKETS: [f64; 18] =
    [0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// The proxy's metrics, registered once.
#[derive(Debug, Clone)]
pub struct ProxyMetrics {
    /// Inspected transactions by action and deciding rule.
    pub transactions: IntCounterVec,
    /// Labels seen on inspected files (known ids; `unknown` for the rest).
    pub labels_seen: IntCounterVec,
    /// Body bytes inspected.
    pub bytes_inspected: IntCounter,
    /// Time from last body byte to verdict.
    pub inspection_seconds: Histogram,
    /// Files that could not be inspected, by reason.
    pub unscannable: IntCounterVec,
    /// Leaf certificates minted (cache misses).
    pub certificates_minted: IntCounter,
    /// TLS handshakes served a cached leaf.
    pub certificate_cache_hits: IntCounter,
    /// Upstream requests sent on a pooled connection (no new connect or handshake).
    pub upstream_reused: IntCounter,
    /// Client connections open now.
    pub active_connections: IntGauge,
    /// Origins that could not be reached or failed.
    pub upstream_errors: IntCounter,
    /// Audit records that could not be written.
    pub audit_failures: IntCounter,
    /// Upload sessions (files sent in pieces) in progress.
    pub upload_sessions: IntGauge,
    /// Transactions refused with 503 because a shared resource was exhausted, by resource.
    pub unavailable: IntCounterVec,
}

impl ProxyMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<ProxyMetrics> {
        let m = ProxyMetrics {
            transactions: IntCounterVec::new(
                Opts::new("labelgate_transactions_total", "Inspected transactions by action and rule"),
                &["action", "rule"],
            )?,
            labels_seen: IntCounterVec::new(
                Opts::new("labelgate_labels_seen_total", "Sensitivity labels seen on uploaded files"),
                &["label"],
            )?,
            bytes_inspected: IntCounter::new("labelgate_inspected_bytes_total", "Upload body bytes inspected")?,
            inspection_seconds: Histogram::with_opts(
                HistogramOpts::new("labelgate_inspection_seconds", "Time from the last body byte to the verdict")
                    .buckets(INSPECTION_BUCKETS.to_vec()),
            )?,
            unscannable: IntCounterVec::new(
                Opts::new("labelgate_unscannable_total", "Files that could not be inspected, by reason"),
                &["reason"],
            )?,
            certificates_minted: IntCounter::new("labelgate_certificates_minted_total", "Leaf certificates minted")?,
            certificate_cache_hits: IntCounter::new("labelgate_certificate_cache_hits_total", "TLS handshakes served a cached leaf")?,
            upstream_reused: IntCounter::new(
                "labelgate_upstream_connections_reused_total",
                "Upstream requests sent on a pooled connection",
            )?,
            active_connections: IntGauge::new("labelgate_active_connections", "Client connections open")?,
            upstream_errors: IntCounter::new("labelgate_upstream_errors_total", "Origins that could not be reached or failed")?,
            audit_failures: IntCounter::new("labelgate_audit_failures_total", "Audit records that could not be written")?,
            upload_sessions: IntGauge::new("labelgate_upload_sessions", "Upload sessions (files sent in pieces) being reassembled")?,
            unavailable: IntCounterVec::new(
                Opts::new("labelgate_unavailable_total", "Transactions refused with 503 because a shared resource was exhausted"),
                &["resource"],
            )?,
        };
        registry.register(Box::new(m.transactions.clone()))?;
        registry.register(Box::new(m.labels_seen.clone()))?;
        registry.register(Box::new(m.bytes_inspected.clone()))?;
        registry.register(Box::new(m.inspection_seconds.clone()))?;
        registry.register(Box::new(m.unscannable.clone()))?;
        registry.register(Box::new(m.certificates_minted.clone()))?;
        registry.register(Box::new(m.active_connections.clone()))?;
        registry.register(Box::new(m.certificate_cache_hits.clone()))?;
        registry.register(Box::new(m.upstream_reused.clone()))?;
        registry.register(Box::new(m.upstream_errors.clone()))?;
        registry.register(Box::new(m.audit_failures.clone()))?;
        registry.register(Box::new(m.upload_sessions.clone()))?;
        registry.register(Box::new(m.unavailable.clone()))?;
        Ok(m)
    }
}
