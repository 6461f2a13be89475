//! `stream` inspection mode: the upload flows to the origin while it is inspected, except its
//! last `stream_holdback` bytes, which wait for the verdict. A block aborts the upstream request
//! with an error frame, so hyper tears the request down (HTTP/1.1: connection closed before the
//! body is complete, never a terminating chunk; HTTP/2: stream reset) and the origin never sees a
//! complete body. For ZIP-based Office files and PDFs the withheld tail is where the central
//! directory and trailer live, so a truncated upload is not a usable file.

use bytes::Bytes;
use hyper::body::Frame;
use std::collections::VecDeque;
use tokio::sync::{mpsc, oneshot};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Item = Result<Frame<Bytes>, BoxError>;

/// The upload was blocked: the error that aborts the upstream request.
#[derive(Debug, thiserror::Error)]
#[error("upload blocked by policy")]
pub(crate) struct Blocked;

/// The client side of a streamed upload: pushes bytes towards the origin, holding back the tail.
pub(crate) struct Outflow {
    tx: mpsc::Sender<Item>,
    abort: Option<oneshot::Sender<()>>,
    held: VecDeque<Bytes>,
    held_len: u64,
    holdback: u64,
    /// The origin side stopped reading (failed or answered early): bytes are dropped.
    gone: bool,
}

/// Bytes sent ahead of the outflow's (a held body's start read back from the spool).
pub(crate) type Prefix = std::pin::Pin<Box<dyn futures_util::Stream<Item = Item> + Send + Sync>>;

/// Creates the outflow and the body stream the upstream request sends.
pub(crate) fn channel(holdback: u64) -> (Outflow, impl futures_util::Stream<Item = Item> + Send + 'static) {
    channel_after(holdback, None)
}

/// `channel`, the body stream sending `prefix` first; a block aborts the prefix too.
pub(crate) fn channel_after(holdback: u64, prefix: Option<Prefix>) -> (Outflow, impl futures_util::Stream<Item = Item> + Send + 'static) {
    use futures_util::StreamExt;
    // Two chunks in flight: the client waits on the origin rather than the proxy buffering.
    let (tx, rx) = mpsc::channel::<Item>(2);
    let (abort_tx, abort_rx) = oneshot::channel::<()>();
    let stream = futures_util::stream::unfold((rx, Some(abort_rx), prefix), |(mut rx, mut abort, mut prefix)| async move {
        loop {
            match abort.as_mut() {
                Some(signal) => tokio::select! {
                    biased;
                    fired = signal => match fired {
                        // Blocked: one error frame, then the end.
                        Ok(()) => return Some((Err(Box::new(Blocked) as BoxError), (rx, None::<oneshot::Receiver<()>>, None))),
                        // The outflow finished normally and dropped its abort handle.
                        Err(_) => { abort = None; continue; }
                    },
                    item = async { match prefix.as_mut() { Some(p) => p.next().await, None => None } }, if prefix.is_some() => match item {
                        Some(i) => return Some((i, (rx, abort, prefix))),
                        None => { prefix = None; continue; }
                    },
                    item = rx.recv(), if prefix.is_none() => return item.map(|i| (i, (rx, abort, None))),
                },
                None => {
                    if let Some(p) = prefix.as_mut() {
                        match p.next().await {
                            Some(i) => return Some((i, (rx, None, prefix))),
                            None => {
                                prefix = None;
                                continue;
                            }
                        }
                    }
                    return rx.recv().await.map(|i| (i, (rx, None, None)));
                }
            }
        }
    });
    (Outflow { tx, abort: Some(abort_tx), held: VecDeque::new(), held_len: 0, holdback, gone: false }, stream)
}

impl Outflow {
    /// Queues a chunk and sends everything older than the holdback window.
    pub(crate) async fn push(&mut self, data: Bytes) {
        self.held_len += data.len() as u64;
        self.held.push_back(data);
        while let Some(front) = self.held.front() {
            if self.held_len - (front.len() as u64) < self.holdback {
                break;
            }
            let len = front.len() as u64;
            if let Some(chunk) = self.held.pop_front() {
                self.held_len -= len;
                self.send(chunk).await;
            }
        }
    }

    async fn send(&mut self, chunk: Bytes) {
        if !self.gone && self.tx.send(Ok(Frame::data(chunk))).await.is_err() {
            self.gone = true;
        }
    }

    /// The verdict allowed the upload: releases the withheld tail.
    pub(crate) async fn release(&mut self) {
        while let Some(chunk) = self.held.pop_front() {
            self.send(chunk).await;
        }
        self.held_len = 0;
    }

    /// Sends a chunk straight through (after the verdict).
    pub(crate) async fn pass(&mut self, data: Bytes) {
        self.send(data).await;
    }

    /// Ends the body normally.
    pub(crate) fn finish(mut self) {
        // Dropping the abort handle unsent lets the stream drain `tx`, which ends with `self`.
        self.abort.take();
    }

    /// Aborts the upstream request (blocked, or the client failed): the withheld tail is dropped.
    pub(crate) fn abort(self) {}
}

impl Drop for Outflow {
    /// Anything but `finish` aborts: a body must never end cleanly by accident, since a clean end
    /// of a chunked body would hand the origin a complete-looking, truncated upload.
    fn drop(&mut self) {
        if let Some(a) = self.abort.take() {
            let _ = a.send(());
        }
    }
}
