//! WebSocket connections labelgate relays (RFC 6455): every data message the client sends is
//! inspected before it is relayed — a binary message as a file, a text message as a body (JSON,
//! form values, base64) — and decided by the same policy as an upload. A blocked message closes
//! the connection with 1008 (policy violation) on both sides and is audited. Messages from the
//! origin pass as they come.
//!
//! `permessage-deflate` (and any other extension) is not negotiated: the offer is removed from
//! the handshake, so every frame the client sends is plain. A frame with reserved bits set is a
//! protocol error (1002). A message larger than `max_body` is `oversize`, decided by policy.

use crate::auth::User;
use crate::inspect::{self, Inspected};
use crate::server::{Body, State, Target};
use crate::upload::{decide, record, Who};
use crate::upstream::{send_upstream, strip_hop_by_hop};
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use labelgate_policy::{Action, FileFacts, UnscannableReason};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Close codes this relay sends.
const POLICY_VIOLATION: u16 = 1008;
const PROTOCOL_ERROR: u16 = 1002;

/// Whether a request is a WebSocket handshake.
pub(crate) fn is_websocket(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case("websocket")))
}

/// Relays a WebSocket handshake to the origin and, once both sides have switched, inspects the
/// client's messages.
pub(crate) async fn relay(
    state: Arc<State>,
    peer: SocketAddr,
    target: Target,
    user: Option<User>,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let client_side = hyper::upgrade::on(&mut req);
    let slot = crate::server::Slot::of(&req);
    let idle = Duration::from_secs(state.settings.load().config.tunnel_idle_timeout_secs.max(1));
    let (mut parts, _) = req.into_parts();
    // No extension is negotiated: frames stay plain, so what is inspected is what is sent.
    parts.headers.remove(header::SEC_WEBSOCKET_EXTENSIONS);
    let method = parts.method.clone();
    let uri = parts.uri.clone();
    let empty = Empty::new().map_err(|never| match never {}).boxed();
    let mut resp = match send_upstream(&state, &target, parts, empty, true, None).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (mut rparts, rbody) = resp.into_parts();
        strip_hop_by_hop(&mut rparts.headers);
        return Response::from_parts(rparts, rbody.map_err(|e| Box::new(e) as crate::server::BoxError).boxed());
    }
    // An origin that negotiates an extension anyway (none was offered) is not followed.
    if resp.headers().contains_key(header::SEC_WEBSOCKET_EXTENSIONS) {
        return crate::server::simple(StatusCode::BAD_GATEWAY, "the origin negotiated a WebSocket extension that was not offered");
    }
    let origin_side = hyper::upgrade::on(&mut resp);
    tokio::spawn(async move {
        // The connection's slot is held while the WebSocket lives; silence both ways past
        // tunnel_idle_timeout_secs ends it.
        let _slot = slot;
        let (Ok(client), Ok(origin)) = (client_side.await, origin_side.await) else { return };
        let activity = crate::idle::Activity::new();
        let (client_read, client_write) = tokio::io::split(activity.wrap(TokioIo::new(client)));
        let (origin_read, origin_write) = tokio::io::split(activity.wrap(TokioIo::new(origin)));
        let client_write = Arc::new(tokio::sync::Mutex::new(client_write));
        // Origin → client: as it comes.
        let back = Arc::clone(&client_write);
        let downstream = tokio::spawn(async move {
            let mut origin_read = origin_read;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match origin_read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if back.lock().await.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let conn = Connection { state, peer, target, user, method, uri };
        tokio::select! {
            _ = conn.upstream(client_read, client_write, origin_write) => {}
            _ = activity.until_idle(idle) => {}
        }
        downstream.abort();
    });
    let (rparts, _) = resp.into_parts();
    Response::from_parts(rparts, Empty::new().map_err(|never| match never {}).boxed())
}

struct Connection {
    state: Arc<State>,
    peer: SocketAddr,
    target: Target,
    user: Option<User>,
    method: http::Method,
    uri: http::Uri,
}

/// One frame as read: its header fields, its unmasked payload, and its bytes as sent.
struct Frame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
    raw: Vec<u8>,
}

enum ReadError {
    Closed,
    /// A frame this relay cannot pass on faithfully (unmasked, reserved bits, bad control frame).
    Protocol,
    TooLarge,
}

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, max: u64) -> Result<Frame, ReadError> {
    let mut head = [0u8; 2];
    r.read_exact(&mut head).await.map_err(|_| ReadError::Closed)?;
    let mut raw = head.to_vec();
    if head[0] & 0x70 != 0 {
        return Err(ReadError::Protocol);
    }
    let (fin, opcode, masked) = (head[0] & 0x80 != 0, head[0] & 0x0f, head[1] & 0x80 != 0);
    if !masked {
        return Err(ReadError::Protocol);
    }
    let mut len = (head[1] & 0x7f) as u64;
    if len == 126 {
        let mut ext = [0u8; 2];
        r.read_exact(&mut ext).await.map_err(|_| ReadError::Closed)?;
        raw.extend_from_slice(&ext);
        len = u16::from_be_bytes(ext) as u64;
    } else if len == 127 {
        let mut ext = [0u8; 8];
        r.read_exact(&mut ext).await.map_err(|_| ReadError::Closed)?;
        raw.extend_from_slice(&ext);
        len = u64::from_be_bytes(ext);
    }
    if opcode >= 8 && (len > 125 || !fin) {
        return Err(ReadError::Protocol);
    }
    if len > max {
        return Err(ReadError::TooLarge);
    }
    let mut mask = [0u8; 4];
    r.read_exact(&mut mask).await.map_err(|_| ReadError::Closed)?;
    raw.extend_from_slice(&mask);
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload).await.map_err(|_| ReadError::Closed)?;
    raw.extend_from_slice(&payload);
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    Ok(Frame { fin, opcode, payload, raw })
}

/// A close frame with `code`: unmasked toward the client, masked (any key) toward the origin.
fn close_frame(code: u16, masked: bool) -> Vec<u8> {
    let body = code.to_be_bytes();
    if masked {
        let key = [0x5a, 0x17, 0x3c, 0x81];
        let mut out = vec![0x88, 0x80 | 2];
        out.extend_from_slice(&key);
        out.extend(body.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        out
    } else {
        vec![0x88, 2, body[0], body[1]]
    }
}

impl Connection {
    /// Client → origin: frames are read, data messages gathered, inspected and decided whole,
    /// then relayed exactly as the client sent them; control frames pass at once.
    async fn upstream<R, W, O>(self, mut client_read: R, client_write: Arc<tokio::sync::Mutex<W>>, mut origin_write: O)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
        O: AsyncWrite + Unpin,
    {
        let max = self.state.settings.load().inspection.max_body;
        let mut message: Vec<u8> = Vec::new();
        let mut frames: Vec<u8> = Vec::new();
        let mut opcode = 0u8;
        let mut started = Instant::now();
        loop {
            let frame = match read_frame(&mut client_read, max).await {
                Ok(f) => f,
                Err(ReadError::Closed) => break,
                Err(ReadError::Protocol) => {
                    self.close(&client_write, &mut origin_write, PROTOCOL_ERROR).await;
                    break;
                }
                Err(ReadError::TooLarge) => {
                    let files = vec![oversized(max)];
                    if self.judge(&files, max, started).await == Action::Block {
                        self.close(&client_write, &mut origin_write, POLICY_VIOLATION).await;
                    } else {
                        // Allowed although too large to inspect: nothing more can be framed here.
                        self.close(&client_write, &mut origin_write, 1009).await;
                    }
                    break;
                }
            };
            if frame.opcode >= 8 {
                if origin_write.write_all(&frame.raw).await.is_err() || frame.opcode == 8 {
                    break;
                }
                continue;
            }
            if frame.opcode != 0 {
                if !message.is_empty() || !frames.is_empty() {
                    self.close(&client_write, &mut origin_write, PROTOCOL_ERROR).await;
                    break;
                }
                opcode = frame.opcode;
                started = Instant::now();
            }
            frames.extend_from_slice(&frame.raw);
            message.extend_from_slice(&frame.payload);
            if message.len() as u64 > max {
                let files = vec![oversized(message.len() as u64)];
                if self.judge(&files, message.len() as u64, started).await == Action::Block {
                    self.close(&client_write, &mut origin_write, POLICY_VIOLATION).await;
                } else {
                    self.close(&client_write, &mut origin_write, 1009).await;
                }
                break;
            }
            if !frame.fin {
                continue;
            }
            let size = message.len() as u64;
            let name = if opcode == 2 { "(websocket binary message)" } else { "(websocket text message)" };
            let files = inspect::message_files(
                name,
                std::mem::take(&mut message),
                &self.state.spool,
                &inspect::Reading::new(&self.state.settings.load().inspection),
            )
            .await;
            // (A message is held in memory: no spool is needed to read it. Should one ever be, the
            // message is refused for now, as an upload would be: 1013 Try Again Later.)
            let Ok(files) = files else {
                self.close(&client_write, &mut origin_write, 1013).await;
                break;
            };
            let carried = !files.is_empty();
            let action = if carried { self.judge(&files, size, started).await } else { Action::Allow };
            if action == Action::Block {
                self.close(&client_write, &mut origin_write, POLICY_VIOLATION).await;
                break;
            }
            if origin_write.write_all(&std::mem::take(&mut frames)).await.is_err() {
                break;
            }
        }
        let _ = origin_write.shutdown().await;
        let _ = client_write.lock().await.shutdown().await;
    }

    /// Decides on the files a message carries and audits it.
    async fn judge(&self, files: &[Inspected], size: u64, started: Instant) -> Action {
        let who = Who { state: &self.state, peer: self.peer, target: &self.target, user: self.user.as_ref() };
        let decision = decide(&who, &self.method, &self.uri, files, size, started);
        let recorded = record(&who, "WEBSOCKET", &self.uri, files, &decision, started, None).await;
        // audit_required, and the record is lost: the message does not pass.
        if !recorded.may_release() {
            return Action::Block;
        }
        decision.verdict.action
    }

    async fn close<W: AsyncWrite + Unpin, O: AsyncWrite + Unpin>(&self, client: &Arc<tokio::sync::Mutex<W>>, origin: &mut O, code: u16) {
        // The client first, holding its writer: nothing the origin sends back (an echo of the
        // close) can reach the client ahead of the reason.
        let mut client = client.lock().await;
        let _ = client.write_all(&close_frame(code, false)).await;
        let _ = origin.write_all(&close_frame(code, true)).await;
        drop(client);
    }
}

fn oversized(size: u64) -> Inspected {
    Inspected {
        facts: FileFacts {
            name: Some("(websocket message)".into()),
            kind: "unknown".into(),
            labels: Vec::new(),
            unscannable: Some(UnscannableReason::Oversize),
            detected: Vec::new(),
        },
        path: Vec::new(),
        size,
        sha256: None,
    }
}
