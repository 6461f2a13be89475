//! CONNECT: a tunnel to an origin. With interception, TLS is terminated with a per-host
//! certificate from the local CA and the requests inside are relayed (and inspected) like plain
//! ones; bypassed hosts, or a proxy without interception, get a blind relay under the same
//! address rules.

use crate::auth::User;
use crate::net::host_matches;
use crate::server::{relay, simple, Body, Slot, State, Target};
use crate::upstream::connect;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// CONNECT: with interception, TLS is terminated with a minted leaf and the requests inside are
/// relayed (and inspected) like plain ones; without it, a blind tunnel.
pub(crate) async fn tunnel(state: Arc<State>, peer: SocketAddr, req: Request<Incoming>, user: Option<User>) -> Response<Body> {
    let Some(authority) = req.uri().authority().cloned() else {
        return simple(StatusCode::BAD_REQUEST, "CONNECT needs host:port");
    };
    let settings = state.settings.load_full();
    let bypass = settings.config.bypass.iter().any(|g| host_matches(g, authority.host()));
    if authority.port().is_some() && authority.port_u16().is_none() {
        return simple(StatusCode::BAD_REQUEST, "CONNECT needs a port number below 65536");
    }
    let port = authority.port_u16().unwrap_or(443);
    // As Squid ships (`deny CONNECT !SSL_ports`): tunnels go to the HTTPS port only, unless
    // connect_ports widens it; and never to a refused destination, checked before the tunnel
    // opens (and again on the address each connection inside it uses).
    if !settings.destinations.connect_port(port) {
        return crate::upstream::error_page(
            StatusCode::FORBIDDEN,
            "Destination denied",
            &format!("CONNECT to port {port} is not allowed (connect_ports)."),
        );
    }
    if let Err(refused) = crate::upstream::destination(&state, authority.host(), port).await {
        return refused;
    }
    let slot = Slot::of(&req);
    let handshake = Duration::from_secs(settings.config.tls_handshake_timeout_secs.max(1));
    let header_timeout = Duration::from_secs(settings.config.header_timeout_secs.max(1));
    // Blind tunnels: tunnel_idle_timeout_secs; HTTP connections inside intercepted ones also
    // wait for an origin's answer.
    let idle = Duration::from_secs(settings.config.tunnel_idle_timeout_secs.max(1));
    let http_idle = settings.config.connection_idle();
    tokio::spawn(async move {
        // The tunnel holds its client connection's slot until it ends.
        let _slot = slot.clone();
        let Ok(upgraded) = hyper::upgrade::on(req).await else { return };
        match state.tls.clone().filter(|_| !bypass) {
            Some(tls) => {
                let config = tls.ca.server_config(authority.host());
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                // A client that never finishes its handshake does not hold the tunnel.
                let Ok(Ok(stream)) = tokio::time::timeout(handshake, acceptor.accept(TokioIo::new(upgraded))).await else { return };
                // The browser chooses: h2 when it offers it, HTTP/1.1 (with upgrades) otherwise.
                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                // Either way, nothing moving for tunnel_idle_timeout_secs ends the connection
                // (h2 has no per-request head timeout to do it).
                let activity = crate::idle::Activity::new();
                let stream = activity.wrap(stream);
                let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                    if let Some(slot) = &slot {
                        req.extensions_mut().insert(Arc::clone(slot));
                    }
                    intercepted(Arc::clone(&state), peer, req, authority.clone(), user.clone())
                });
                if h2 {
                    let conn = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .timer(TokioTimer::new())
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = conn => {}
                        _ = activity.until_idle(http_idle) => {}
                    }
                } else {
                    // A small read buffer per connection keeps memory flat under many uploads.
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(header_timeout)
                        .max_buf_size(64 * 1024)
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades();
                    tokio::select! {
                        _ = conn => {}
                        _ = activity.until_idle(http_idle) => {}
                    }
                }
            }
            None => {
                // Bypassed (or no interception): a blind relay, still under the address rules.
                let Ok(server) = connect(&state, authority.host(), port).await else { return };
                crate::idle::relay(TokioIo::new(upgraded), server, idle).await;
            }
        }
    });
    Response::new(Empty::new().map_err(|never| match never {}).boxed())
}

/// A request inside an intercepted tunnel: origin-form, for the CONNECT authority.
async fn intercepted(
    state: Arc<State>,
    peer: SocketAddr,
    req: Request<Incoming>,
    authority: http::uri::Authority,
    user: Option<User>,
) -> Result<Response<Body>, Infallible> {
    let host_header = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_string);
    let named = host_header.or_else(|| req.uri().authority().map(|a| a.as_str().to_string()));
    if let Some(named) = named {
        let strip = |s: &str| s.trim().trim_end_matches(":443").to_ascii_lowercase();
        if strip(&named) != strip(authority.as_str()) {
            return Ok(simple(StatusCode::MISDIRECTED_REQUEST, "the Host header does not match the CONNECT target"));
        }
    }
    if let Some(refused) = crate::server::client_refused(&state, peer) {
        return Ok(refused);
    }
    Ok(relay(state, peer, req, Target { authority, https: true }, user).await)
}
