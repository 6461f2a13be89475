//! Typed errors for files that cannot be read at all.

use thiserror::Error;

/// Why a file could not be read. A password-encrypted file is *not* an error: it reads fine and
/// carries the `encrypted` flag.
#[derive(Debug, Error)]
pub enum ExtractError {
    /// The container structure is broken beyond what readers recover from.
    #[error("malformed {container}: {reason}")]
    Malformed {
        /// Which container parser gave up (`zip`, `pdf`, `cfb`, `eml`).
        container: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// An input-driven size or count went past a configured [`Limits`](crate::Limits) field.
    #[error("limit exceeded: {limit} (maximum {max})")]
    LimitExceeded {
        /// The name of the `Limits` field that was exceeded.
        limit: &'static str,
        /// Its configured value.
        max: u64,
    },
    /// Reading the underlying file or spool failed.
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

impl ExtractError {
    pub(crate) fn malformed(container: &'static str, reason: impl Into<String>) -> ExtractError {
        ExtractError::Malformed { container, reason: reason.into() }
    }

    pub(crate) fn limit(limit: &'static str, max: u64) -> ExtractError {
        ExtractError::LimitExceeded { limit, max }
    }

    /// A short machine-friendly reason class: `malformed`, `limit`, `io`.
    pub fn class(&self) -> &'static str {
        match self {
            ExtractError::Malformed { .. } => "malformed",
            ExtractError::LimitExceeded { .. } => "limit",
            ExtractError::Io(_) => "io",
        }
    }
}
