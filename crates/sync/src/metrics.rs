//! Per-account metrics for `/metrics`: status (one series per status value, 1 for the current
//! one), label count, last success time, retrieval errors by kind. Label values are bounded:
//! account names come from the config, statuses and kinds are fixed sets.

use crate::engine::Status;
use crate::failure::ErrorKind;
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

/// The sync component's metrics.
#[derive(Clone)]
pub struct SyncMetrics {
    status: IntGaugeVec,
    labels: IntGaugeVec,
    last_success: IntGaugeVec,
    errors: IntCounterVec,
}

impl SyncMetrics {
    /// Registers them.
    pub fn register(registry: &Registry) -> prometheus::Result<SyncMetrics> {
        let status = IntGaugeVec::new(
            Opts::new("labelgate_account_status", "MIP account status: 1 for the account's current status, 0 for the others"),
            &["account", "status"],
        )?;
        let labels = IntGaugeVec::new(Opts::new("labelgate_account_labels", "Labels the last retrieval returned"), &["account"])?;
        let last_success = IntGaugeVec::new(
            Opts::new("labelgate_account_last_success_timestamp_seconds", "Unix time of the last successful label retrieval"),
            &["account"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new("labelgate_account_retrieval_errors_total", "Failed validations and retrievals, by kind"),
            &["account", "kind"],
        )?;
        registry.register(Box::new(status.clone()))?;
        registry.register(Box::new(labels.clone()))?;
        registry.register(Box::new(last_success.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        Ok(SyncMetrics { status, labels, last_success, errors })
    }

    pub(crate) fn set(&self, account: &str, current: Status, label_count: usize, last_success: Option<u64>) {
        for s in Status::ALL {
            self.status.with_label_values(&[account, s.as_str()]).set(i64::from(s == current));
        }
        self.labels.with_label_values(&[account]).set(label_count as i64);
        self.last_success.with_label_values(&[account]).set(last_success.map_or(0, |t| t as i64));
        for k in ErrorKind::ALL {
            // Present from the start, so a rate() sees the first error.
            let _ = self.errors.with_label_values(&[account, k.as_str()]);
        }
    }

    pub(crate) fn error(&self, account: &str, kind: ErrorKind) {
        self.errors.with_label_values(&[account, kind.as_str()]).inc();
    }

    pub(crate) fn forget(&self, account: &str) {
        for s in Status::ALL {
            let _ = self.status.remove_label_values(&[account, s.as_str()]);
        }
        let _ = self.labels.remove_label_values(&[account]);
        let _ = self.last_success.remove_label_values(&[account]);
        for k in ErrorKind::ALL {
            let _ = self.errors.remove_label_values(&[account, k.as_str()]);
        }
    }
}
