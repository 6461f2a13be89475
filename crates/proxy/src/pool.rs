//! Idle upstream connections, reused across transactions to the same origin. A TCP connect and
//! a TLS handshake per upload would cost more CPU than inspecting it. Keys carry the scheme,
//! the authority and the HTTP versions offered, so a connection is only reused for requests that
//! would have opened an identical one (and passed the same address rules at connect time).

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;

/// A connection to an origin in either HTTP version.
pub(crate) enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Body>),
    H2(hyper::client::conn::http2::SendRequest<Body>),
}

impl Sender {
    fn usable(&self) -> bool {
        match self {
            Sender::H1(s) => s.is_ready(),
            Sender::H2(s) => s.is_ready(),
        }
    }
}

/// What makes two upstream connections interchangeable.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(crate) struct PoolKey {
    pub https: bool,
    /// Lowercased `host:port`.
    pub authority: String,
    /// Whether h2 was offered in ALPN.
    pub h2: bool,
}

/// Idle connections by origin, bounded per origin and in total, dropped after `idle_timeout`.
pub(crate) struct Pool {
    idle: Mutex<HashMap<PoolKey, Vec<(Instant, Sender)>>>,
    per_origin: usize,
    total: usize,
    idle_timeout: Duration,
    /// Bumped when the address rules change: connections opened under older rules are not
    /// reused (each new one is checked when it opens).
    generation: std::sync::atomic::AtomicU64,
}

impl Pool {
    pub(crate) fn new() -> Pool {
        Pool {
            idle: Mutex::new(HashMap::new()),
            per_origin: 32,
            total: 1024,
            idle_timeout: Duration::from_secs(60),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The rules' generation now: what a connection opened or taken now was checked under.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Forgets every idle connection, and every one in use once it is offered back.
    pub(crate) fn clear(&self) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }

    /// An idle, still-open connection for `key`, if there is one. HTTP/2 connections stay in
    /// the pool (they multiplex); HTTP/1.1 ones are taken out until their response ends.
    pub(crate) fn take(&self, key: &PoolKey) -> Option<Sender> {
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(key)?;
        let now = Instant::now();
        list.retain(|(since, s)| now.duration_since(*since) < self.idle_timeout && s.usable());
        let found = match list.last() {
            Some((_, Sender::H2(s))) => Some(Sender::H2(s.clone())),
            Some((_, Sender::H1(_))) => list.pop().map(|(_, s)| s),
            None => None,
        };
        if list.is_empty() {
            idle.remove(key);
        }
        found
    }

    /// Offers a connection back for reuse.
    pub(crate) fn put(&self, key: PoolKey, sender: Sender, born: u64) {
        if !sender.usable() || born != self.generation() {
            return;
        }
        let Ok(mut idle) = self.idle.lock() else { return };
        let total: usize = idle.values().map(Vec::len).sum();
        let list = idle.entry(key).or_default();
        if list.len() < self.per_origin && total < self.total {
            list.push((Instant::now(), sender));
        }
    }

    /// Returns an HTTP/1.1 connection once its current response has been read to the end, or an
    /// HTTP/2 connection right away.
    pub(crate) fn recycle(self: &std::sync::Arc<Self>, key: PoolKey, sender: Sender, born: u64) {
        match sender {
            Sender::H2(s) => self.put(key, Sender::H2(s), born),
            Sender::H1(mut s) => {
                let pool = std::sync::Arc::clone(self);
                tokio::spawn(async move {
                    if s.ready().await.is_ok() {
                        pool.put(key, Sender::H1(s), born);
                    }
                });
            }
        }
    }
}
