//! The accept loop and routing: the origin check first, then Deep Chat on `--path` (WebSocket
//! upgrade, HTTP POST, CORS preflight) and the demo page on `/`. On shutdown: stop accepting,
//! let sessions finish within the drain timeout.

use crate::config::ProviderConfig;
use crate::deepchat::response::{self, Body};
use crate::deepchat::{http, page, ws};
use crate::App;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Accepts connections until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
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
        let app = app.clone();
        let connections = app.sessions.clone();
        connections.spawn(async move {
            let service_app = app.clone();
            let service = hyper::service::service_fn(move |request| {
                let app = service_app.clone();
                async move { Ok::<_, Infallible>(route(request, app).await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(%peer, %err, "connection ended with an error");
                    }
                }
                _ = app.shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }

    tracing::info!("shutting down: no new connections, draining replies");
    app.shutdown.cancel();
    app.sessions.close();
    if tokio::time::timeout(app.config.drain_timeout, app.sessions.wait())
        .await
        .is_err()
    {
        tracing::warn!("drain timeout reached; closing remaining connections");
    }
    Ok(())
}

async fn route(request: Request<hyper::body::Incoming>, app: Arc<App>) -> Response<Body> {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if !app.config.origins.allows(origin.as_deref()) {
        tracing::info!(origin = origin.as_deref().unwrap_or(""), "origin rejected");
        return response::plain(StatusCode::FORBIDDEN, "this origin may not use the proxy");
    }
    let mut response = if request.uri().path() == app.config.path {
        match *request.method() {
            Method::GET if ws::is_upgrade(request.headers()) => ws::upgrade(request, app),
            Method::GET => response::plain(
                StatusCode::UPGRADE_REQUIRED,
                "this is a Deep Chat endpoint: connect with websocket: true, or POST",
            ),
            Method::POST => http::handle(request, app).await,
            Method::OPTIONS => preflight(&request),
            _ => response::plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        }
    } else if request.uri().path() == "/" && request.method() == Method::GET {
        demo_page(&app)
    } else {
        response::plain(StatusCode::NOT_FOUND, "not found")
    };
    // The origin passed the policy above, so the browser may read the answer.
    if let Some(value) = origin.and_then(|o| HeaderValue::from_str(&o).ok()) {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

/// CORS preflight for the HTTP modes: POST with the headers the page asks for.
fn preflight(request: &Request<hyper::body::Incoming>) -> Response<Body> {
    let mut response = Response::new(response::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
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

fn demo_page(app: &App) -> Response<Body> {
    let ProviderConfig::Demo(demo) = &app.config.provider else {
        return response::plain(StatusCode::NOT_FOUND, "not found");
    };
    let html = page::demo_page(
        &demo.deep_chat_script,
        &app.config.path,
        &app.config.stop_key,
    );
    let mut response = Response::new(response::full(html));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}
