//! Time as the sync component sees it: the system clock in production, a virtual clock in
//! in-process tests (a `Retry-After: 300` is then honoured without waiting five minutes, and the
//! test can check that it was).

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, and waiting.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> SystemTime;
    /// Waits `d`.
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// The real clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// A clock that moves only when something sleeps on it, and remembers every wait.
#[derive(Debug)]
pub struct VirtualClock {
    now: Mutex<SystemTime>,
    waits: Mutex<Vec<Duration>>,
}

impl VirtualClock {
    /// Starts at `start`.
    pub fn new(start: SystemTime) -> VirtualClock {
        VirtualClock { now: Mutex::new(start), waits: Mutex::new(Vec::new()) }
    }

    /// Every wait so far, in order.
    pub fn waits(&self) -> Vec<Duration> {
        self.waits.lock().map(|w| w.clone()).unwrap_or_default()
    }

    /// Moves time forward without a wait.
    pub fn advance(&self, d: Duration) {
        if let Ok(mut n) = self.now.lock() {
            *n += d;
        }
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> SystemTime {
        self.now.lock().map(|n| *n).unwrap_or(UNIX_EPOCH)
    }
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        self.advance(d);
        if let Ok(mut w) = self.waits.lock() {
            w.push(d);
        }
        Box::pin(tokio::task::yield_now())
    }
}

/// RFC 3339 in UTC, to the second (`2026-11-27T16:35:16Z`).
pub fn rfc3339(t: SystemTime) -> String {
    let at = time::OffsetDateTime::from(t);
    at.replace_nanosecond(0).unwrap_or(at).format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// Seconds since the Unix epoch.
pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_797_316)), "2026-11-27T16:35:16Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
    }
}
