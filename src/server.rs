//! The accept loop and routing: WebSocket upgrades on `--path`, the demo page on `/`.
//! On shutdown: stop accepting, let sessions finish within the drain timeout.

use crate::config::ProviderConfig;
use crate::deepchat::{page, ws};
use crate::App;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::HeaderValue;
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
                async move { Ok::<_, Infallible>(route(request, app)) }
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

fn route(request: Request<hyper::body::Incoming>, app: Arc<App>) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if path == app.config.path {
        return match *request.method() {
            Method::GET if ws::is_upgrade(request.headers()) => ws::upgrade(request, app),
            Method::GET => ws::plain(
                StatusCode::UPGRADE_REQUIRED,
                "this is a Deep Chat WebSocket endpoint: connect with websocket: true",
            ),
            _ => ws::plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        };
    }
    if path == "/" && request.method() == Method::GET {
        if let ProviderConfig::Demo(demo) = &app.config.provider {
            let html = page::demo_page(
                &demo.deep_chat_script,
                &app.config.path,
                &app.config.stop_key,
            );
            let mut response = Response::new(Full::new(Bytes::from(html)));
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            return response;
        }
    }
    ws::plain(StatusCode::NOT_FOUND, "not found")
}
