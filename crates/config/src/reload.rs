//! Atomic configuration reload: on a change of the file (polled) or SIGHUP, the file is read and
//! validated in full; only a valid configuration replaces the one in force, in one pointer swap,
//! so a reader sees the old configuration or the new one and never waits. A rejected file is
//! counted and its diagnostics kept; the old configuration stays.
//!
//! Everything in `[policy]`, `[[labels]]` and `[[cloud_apps]]` reloads. Settings that bind
//! resources (listen addresses, the CA) are read at start only, by the crates that own them.

use crate::{load_path, Diagnostic, LoadError, LoadedConfig};
use arc_swap::ArcSwap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// Counters for metrics and `check` output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReloadStats {
    /// Configurations swapped in.
    pub reloads: u64,
    /// Files rejected (the old configuration stayed).
    pub rejected: u64,
}

/// Holds the configuration in force and replaces it atomically.
#[derive(Debug)]
pub struct Reloader {
    path: Option<PathBuf>,
    current: ArcSwap<LoadedConfig>,
    reloads: AtomicU64,
    rejected: AtomicU64,
    last_rejection: Mutex<Vec<Diagnostic>>,
    fingerprint: Mutex<Option<u64>>,
}

/// What a reload attempt did.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// A new configuration is in force.
    Applied,
    /// The file has not changed.
    Unchanged,
    /// The file was rejected; the old configuration stays.
    Rejected(LoadError),
}

fn fingerprint(path: &PathBuf) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    Some(h.finish())
}

impl Reloader {
    /// Starts with `initial` in force; reloads re-read `initial.path` (the embedded default
    /// never changes).
    pub fn new(initial: LoadedConfig) -> Arc<Reloader> {
        let path = initial.path.clone();
        let print = path.as_ref().and_then(fingerprint);
        Arc::new(Reloader {
            path,
            current: ArcSwap::from_pointee(initial),
            reloads: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            last_rejection: Mutex::new(Vec::new()),
            fingerprint: Mutex::new(print),
        })
    }

    /// The configuration in force (wait-free).
    pub fn current(&self) -> Arc<LoadedConfig> {
        self.current.load_full()
    }

    /// Counters.
    pub fn stats(&self) -> ReloadStats {
        ReloadStats { reloads: self.reloads.load(Ordering::Relaxed), rejected: self.rejected.load(Ordering::Relaxed) }
    }

    /// Diagnostics of the last rejected file.
    pub fn last_rejection(&self) -> Vec<Diagnostic> {
        self.last_rejection.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Reads and validates the file now; `force` reloads even when its content is unchanged.
    pub fn reload(&self, force: bool) -> ReloadOutcome {
        let Some(path) = &self.path else { return ReloadOutcome::Unchanged };
        let mut print = self.fingerprint.lock().unwrap_or_else(PoisonError::into_inner);
        let now = fingerprint(path);
        if !force && now.is_some() && now == *print {
            return ReloadOutcome::Unchanged;
        }
        *print = now;
        match load_path(path) {
            Ok(config) => {
                self.current.store(Arc::new(config));
                self.reloads.fetch_add(1, Ordering::Relaxed);
                ReloadOutcome::Applied
            }
            Err(e) => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                if let LoadError::Invalid(d) = &e {
                    *self.last_rejection.lock().unwrap_or_else(PoisonError::into_inner) = d.clone();
                }
                ReloadOutcome::Rejected(e)
            }
        }
    }

    /// Watches the file (polled every `interval`) and SIGHUP; calls `report` after each attempt
    /// that did something. The watch stops when the handle is dropped.
    pub fn watch(self: &Arc<Self>, interval: Duration, report: impl Fn(&ReloadOutcome) + Send + 'static) -> std::io::Result<WatchHandle> {
        let hup = Arc::new(AtomicBool::new(false));
        let sig_id = signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup))?;
        let stop = Arc::new(AtomicBool::new(false));
        let me = Arc::clone(self);
        let stop_flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name("config-watch".into()).spawn(move || {
            while !stop_flag.load(Ordering::Relaxed) {
                std::thread::sleep(interval);
                let forced = hup.swap(false, Ordering::Relaxed);
                let outcome = me.reload(forced);
                if !matches!(outcome, ReloadOutcome::Unchanged) {
                    report(&outcome);
                }
            }
        })?;
        Ok(WatchHandle { stop, thread: Some(thread), sig_id: Some(sig_id) })
    }
}

/// Stops the watch thread when dropped.
#[derive(Debug)]
pub struct WatchHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    sig_id: Option<signal_hook::SigId>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(id) = self.sig_id.take() {
            signal_hook::low_level::unregister(id);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
