//! The accept loop and routing: the origin check first, then Deep Chat on each route's path
//! (`--path` and every `--route PATH`: WebSocket upgrade, HTTP POST, CORS preflight), the page on `/` and its local Deep Chat bundle. On
//! shutdown: stop accepting, let sessions finish within the drain timeout.

pub mod idle;

use crate::access::connections::ConnectionSlot;
use crate::access::ip_slots::IpSlot;
use crate::access::ratelimit::ClientKey;
use crate::config::{PageScript, BUNDLE_PATH};
use crate::deepchat::{history_api, http, page, ws};
use crate::error::{ProxyError, RequestError};
use crate::ops::telemetry;
use crate::ops::{health, otel};
use crate::reply::pipeline::{self, ReplyScope};
use crate::request_id::{self, RequestId};
use crate::response::{self, Body};
use crate::App;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use idle::Activity;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Most unsent bytes the kernel queues toward one client. Without a bound, Linux grows a
/// socket's send buffer to megabytes, and a client that stops reading lets the proxy push that
/// much more of the reply (and keep it) before backpressure reaches the upstream. A chat
/// stream never needs more in flight than this.
const CLIENT_UNSENT_BYTES: u32 = 16 * 1024;

#[cfg(any(target_os = "linux", target_os = "android"))]
fn limit_unsent(stream: &tokio::net::TcpStream) {
    if let Err(err) = socket2::SockRef::from(stream).set_tcp_notsent_lowat(CLIENT_UNSENT_BYTES) {
        tracing::debug!(%err, "TCP_NOTSENT_LOWAT not set");
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn limit_unsent(_stream: &tokio::net::TcpStream) {}

/// Accepts connections until `shutdown` resolves, then drains. With `ops_listener`, the
/// operational endpoints live there instead of on the main listener.
pub async fn serve(
    listener: TcpListener,
    ops_listener: Option<TcpListener>,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let ops_on_main = ops_listener.is_none();
    if let Some(ops) = ops_listener {
        tokio::spawn(health::serve(ops, app.ops.clone(), app.shutdown.clone()));
    }
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.as_mut() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        limit_unsent(&stream);
        let app = app.clone();
        let connections = app.sessions.clone();
        connections.spawn(serve_connection(stream, peer, app, ops_on_main));
    }

    // Closing the listener at once makes new connections fail fast (connection refused), so a
    // load balancer moves them elsewhere instead of letting them hang in the accept queue.
    drop(listener);
    tracing::info!("shutting down: no new connections, draining replies");
    app.shutdown.cancel();
    app.sessions.close();
    if tokio::time::timeout(app.config.drain_timeout, app.sessions.wait())
        .await
        .is_err()
    {
        // Running replies now end with an error frame (and the stop key) before sockets close.
        tracing::warn!("drain timeout reached; stopping the remaining replies");
        app.force_stop.cancel();
        let _ = tokio::time::timeout(FORCED_STOP_GRACE, app.sessions.wait()).await;
    }
    Ok(())
}

/// Serves one client connection: its share of the limits, deadlines for a client that sends
/// nothing, or nothing more, and the routing of its requests.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Arc<App>,
    ops_on_main: bool,
) {
    let limits = &app.config.limits;
    // The permits live as long as this task, which owns the connection and its session. An
    // upgraded WebSocket outlives this task, so its session holds a clone too.
    let Some(per_ip) = acquire_ip_slot(&app, peer) else {
        refuse_overloaded(stream, ProxyError::Overloaded { per_ip: true }).await;
        return;
    };
    let Ok(permit) = app.connections.clone().try_acquire_owned() else {
        refuse_overloaded(stream, ProxyError::Overloaded { per_ip: false }).await;
        return;
    };
    let slot = Arc::new(ConnectionSlot::new(permit, per_ip));
    // hyper's header timeout starts with the first byte, and the HTTP/1-or-2 detection waits
    // for bytes with no deadline of its own: a socket that sends nothing is closed here.
    let mut first = [0u8; 1];
    match tokio::time::timeout(limits.request_timeout, stream.peek(&mut first)).await {
        Ok(Ok(n)) if n > 0 => {}
        Ok(_) => return,
        Err(_) => {
            telemetry::rejected(&RequestError::SlowBody(limits.request_timeout.as_secs()).into());
            tracing::debug!(%peer, "connection sent nothing before --request-timeout");
            return;
        }
    }
    let activity = Arc::new(Activity::default());
    let service_app = app.clone();
    let service_activity = activity.clone();
    let service = hyper::service::service_fn(move |request| {
        let app = service_app.clone();
        let slot = slot.clone();
        let busy = service_activity.busy();
        async move {
            let response = route(request, app, peer, slot, ops_on_main).await;
            Ok::<_, Infallible>(idle::hold_until_sent(response, busy))
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.request_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_streams_per_connection as u32);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    let stop = tokio::select! {
        result = connection.as_mut() => {
            if let Err(err) = result {
                tracing::debug!(%peer, %err, "connection ended with an error");
            }
            return;
        }
        _ = app.shutdown.cancelled() => "shutdown",
        _ = activity.idle_for(limits.http_idle_timeout) => "idle",
    };
    tracing::debug!(%peer, reason = stop, "closing the client connection");
    connection.as_mut().graceful_shutdown();
    // Graceful: on shutdown running requests finish (the drain bounds them); an idle
    // connection has none and closes at once.
    if stop == "idle" {
        let _ = tokio::time::timeout(IDLE_CLOSE_GRACE, connection).await;
    } else {
        let _ = connection.await;
    }
}

/// The connection's per-IP slot: `Some(None)` when there is no per-IP cap, `None` when the
/// peer's IP is at its cap.
fn acquire_ip_slot(app: &App, peer: SocketAddr) -> Option<Option<IpSlot>> {
    if app.config.limits.max_connections_per_ip.is_none() {
        return Some(None);
    }
    app.ip_slots.acquire(peer.ip()).map(Some)
}

/// Time an idle connection gets to close after being told to.
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(5);

/// After the drain timeout: time for the final error frames to reach the clients.
const FORCED_STOP_GRACE: Duration = Duration::from_secs(2);

/// Over `--max-connections`: a plain 503, written without starting an HTTP session.
async fn refuse_overloaded(mut stream: tokio::net::TcpStream, error: ProxyError) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    telemetry::rejected(&error);
    // Let the request head arrive first: HTTP clients reject an answer that precedes it.
    let mut head = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(500), stream.read(&mut head)).await;
    let body = format!("{error}\n");
    let status = error.status();
    let response = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: text/plain\r\nretry-after: 1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        stream.write_all(response.as_bytes()),
    )
    .await;
    let _ = stream.shutdown().await;
}

async fn route(
    request: Request<hyper::body::Incoming>,
    app: Arc<App>,
    peer: SocketAddr,
    permit: Arc<ConnectionSlot>,
    ops_on_main: bool,
) -> Response<Body> {
    if ops_on_main {
        if let Some(response) = health::route(&request, &app.ops).await {
            return response;
        }
    }
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let scope = ReplyScope {
        request_id: RequestId::from_headers(request.headers()),
        client_ip: client_ip(&request, peer, app.config.limits.client_ip_header.as_ref()),
        trace_parent: otel::parent_from(request.headers()),
    };
    if !app.config.origins.allows(origin.as_deref()) {
        log_rejected_origin(origin.as_deref().unwrap_or(""), &scope);
        let error = ProxyError::Origin;
        telemetry::rejected(&error);
        return error.response(&scope.request_id);
    }
    let path = request.uri().path();
    // A route's own path, or its `{path}/history` (Deep Chat's loadHistory).
    let found = app.config.routes.iter().find_map(|route| {
        if path == route.path {
            Some((route.clone(), false))
        } else if path.strip_prefix(route.path.trim_end_matches('/')) == Some("/history") {
            Some((route.clone(), true))
        } else {
            None
        }
    });
    let mut response = if let Some((route, on_history)) = found {
        let mut client = ClientKey {
            ip: scope.client_ip.clone(),
            identity: None,
        };
        if let (Some(auth), false) = (&app.config.auth, request.method() == Method::OPTIONS) {
            match auth.verify(request.headers()) {
                Ok(identity) => client.identity = Some(identity),
                Err(err) => {
                    let error = ProxyError::Unauthorized(err.to_string());
                    pipeline::refused(&error, &scope);
                    // Before any work (and before any WebSocket upgrade); the page may read it.
                    let mut response = error.response(&scope.request_id);
                    allow_origin(&mut response, origin.as_deref());
                    return response;
                }
            }
        }
        match *request.method() {
            Method::OPTIONS if on_history => preflight(&request, "GET, DELETE, OPTIONS"),
            _ if on_history => history_api::handle(&request, &app, &client, &scope).await,
            Method::GET if ws::is_upgrade(request.headers()) => {
                ws::upgrade(request, app, route, client, permit)
            }
            Method::GET => response::plain(
                StatusCode::UPGRADE_REQUIRED,
                "this is a Deep Chat endpoint: connect with websocket: true, or POST",
            ),
            Method::POST => {
                let request_id = scope.request_id.clone();
                let mut response = http::handle(request, app, route, client, scope).await;
                response
                    .headers_mut()
                    .insert(request_id::HEADER, request_id.header_value());
                response
            }
            Method::OPTIONS => preflight(&request, "POST, OPTIONS"),
            _ => response::plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        }
    } else if let Some(response) = page_route(&request, &app) {
        response
    } else {
        response::plain(StatusCode::NOT_FOUND, "not found")
    };
    allow_origin(&mut response, origin.as_deref());
    response
}

/// Names the origin and the flag that would let it in, so the operator can act on the line.
/// The value is the client's: visible ASCII (hyper's `to_str`), cut to a sane length.
fn log_rejected_origin(origin: &str, scope: &ReplyScope) {
    let origin: String = origin.chars().take(200).collect();
    tracing::warn!(
        %origin,
        request_id = %scope.request_id,
        client_ip = %scope.client_ip,
        "origin rejected: {origin} may not use the proxy; to allow it, start with \
         --allow-origin {origin} (or DEEPCHAT_PROXY_ALLOW_ORIGIN)"
    );
}

/// The client's IP for rate limiting: the last entry of `--client-ip-header` (the one the
/// reverse proxy appended) when configured and valid, else the TCP peer.
fn client_ip(
    request: &Request<hyper::body::Incoming>,
    peer: SocketAddr,
    header: Option<&header::HeaderName>,
) -> String {
    header
        .and_then(|name| request.headers().get_all(name).iter().next_back())
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.rsplit(',').next())
        .and_then(|last| last.trim().parse::<std::net::IpAddr>().ok())
        .unwrap_or_else(|| peer.ip())
        .to_string()
}

/// The origin passed the policy, so the browser may read the answer.
fn allow_origin(response: &mut Response<Body>, origin: Option<&str>) {
    if let Some(value) = origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
}

/// CORS preflight for the HTTP routes: `methods` with the headers the page asks for.
fn preflight(request: &Request<hyper::body::Incoming>, methods: &'static str) -> Response<Body> {
    let mut response = Response::new(response::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    let requested = request
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("content-type, authorization"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested);
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    response
}

/// The page at `/` and, when `--deep-chat-script` named a local file, the bundle it loads;
/// `None` when the request is for neither (or the page is off).
fn page_route(request: &Request<hyper::body::Incoming>, app: &App) -> Option<Response<Body>> {
    let page = app.config.page.as_ref()?;
    if request.method() != Method::GET {
        return None;
    }
    let (body, content_type) = match (request.uri().path(), &page.script) {
        ("/", script) => {
            let src = match script {
                PageScript::Remote(url) => url.as_str(),
                PageScript::Bundled(_) => BUNDLE_PATH,
            };
            let html = page::page(
                src,
                &app.config.path,
                &app.config.stop_key,
                &page.description,
            );
            (response::full(html), "text/html; charset=utf-8")
        }
        (BUNDLE_PATH, PageScript::Bundled(bytes)) => (
            response::full(bytes.clone()),
            "text/javascript; charset=utf-8",
        ),
        _ => return None,
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The page embeds this run's settings and the bundle may be swapped between runs.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(response)
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn client_sockets_bound_their_unsent_bytes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (accepted, _) = listener.accept().await.expect("accept");
        limit_unsent(&accepted);
        let lowat = socket2::SockRef::from(&accepted)
            .tcp_notsent_lowat()
            .expect("getsockopt");
        assert_eq!(lowat, CLIENT_UNSENT_BYTES);
    }
}
