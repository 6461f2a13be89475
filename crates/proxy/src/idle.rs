//! Byte relays that end when both directions have been silent for a while (WebSocket
//! connections, blind tunnels): a peer that stops talking cannot hold a connection slot forever.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An IO that notes when bytes last moved through it.
struct Noted<T> {
    inner: T,
    last: Arc<AtomicU64>,
    epoch: Instant,
}

impl<T> Noted<T> {
    fn note(&self) {
        self.last.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Noted<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.note();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Noted<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.note();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// When bytes last moved through the IOs it wraps.
#[derive(Clone)]
pub(crate) struct Activity {
    last: Arc<AtomicU64>,
    epoch: Instant,
}

impl Activity {
    pub(crate) fn new() -> Activity {
        Activity { last: Arc::new(AtomicU64::new(0)), epoch: Instant::now() }
    }

    /// `io`, noting its traffic here.
    pub(crate) fn wrap<T>(&self, io: T) -> impl AsyncRead + AsyncWrite + Unpin + Send + 'static
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        Noted { inner: io, last: Arc::clone(&self.last), epoch: self.epoch }
    }

    /// Resolves once nothing has moved for `idle`.
    pub(crate) async fn until_idle(&self, idle: Duration) {
        let idle = idle.max(Duration::from_millis(100));
        loop {
            let since = Duration::from_millis((self.epoch.elapsed().as_millis() as u64).saturating_sub(self.last.load(Ordering::Relaxed)));
            if since >= idle {
                return;
            }
            tokio::time::sleep(idle - since).await;
        }
    }
}

/// Copies both ways until either side ends or nothing has moved for `idle`.
pub(crate) async fn relay<A, B>(a: A, b: B, idle: Duration)
where
    A: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new();
    let mut a = activity.wrap(a);
    let mut b = activity.wrap(b);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut a, &mut b) => {}
        _ = activity.until_idle(idle) => {}
    }
}
