//! Operational endpoints: `GET /healthz` (alive), `GET /readyz` (configuration valid and the
//! upstream reachable, checked at most every few seconds), `GET /metrics` (Prometheus). Served
//! on the main listener, or on `--metrics-listen` alone.

use crate::config::ProviderConfig;
use crate::deepchat::response::{self, Body};
use crate::App;
use deepchat_adapters::{Conversation, Turn};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// How long a readiness answer is reused, so probes cost the upstream almost nothing.
const READY_CACHE: Duration = Duration::from_secs(5);
const READY_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Cached upstream reachability.
pub struct Readiness {
    /// `host:port` of the upstream; `None` for the offline demo provider.
    target: Option<String>,
    last: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl Readiness {
    pub fn new(provider: &ProviderConfig) -> Readiness {
        Readiness {
            target: upstream_target(provider),
            last: Mutex::new(None),
        }
    }

    /// Whether the upstream accepts TCP connections (cached for a few seconds).
    pub async fn check(&self) -> Result<(), String> {
        let Some(target) = &self.target else {
            return Ok(());
        };
        if let Ok(guard) = self.last.lock() {
            if let Some((at, result)) = guard.as_ref() {
                if at.elapsed() < READY_CACHE {
                    return result.clone();
                }
            }
        }
        let result = match tokio::time::timeout(
            READY_CONNECT_TIMEOUT,
            tokio::net::TcpStream::connect(target),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(format!("upstream {target} unreachable: {err}")),
            Err(_) => Err(format!(
                "upstream {target} did not accept a connection in time"
            )),
        };
        if let Ok(mut guard) = self.last.lock() {
            *guard = Some((Instant::now(), result.clone()));
        }
        result
    }
}

/// The upstream's `host:port`, from the URL its adapter would call.
fn upstream_target(provider: &ProviderConfig) -> Option<String> {
    let ProviderConfig::Http(http) = provider else {
        return None;
    };
    let probe = Conversation {
        turns: vec![Turn::user("")],
        model: http.model.clone(),
        ..Default::default()
    };
    let request = http.adapter.build_request(&probe, None).ok()?;
    let url = reqwest::Url::parse(&request.url).ok()?;
    Some(format!(
        "{}:{}",
        url.host_str()?,
        url.port_or_known_default()?
    ))
}

/// Answers an operational request, or `None` if the path is not one of ours.
pub async fn route(request: &Request<hyper::body::Incoming>, app: &App) -> Option<Response<Body>> {
    if request.method() != Method::GET {
        return None;
    }
    Some(match request.uri().path() {
        "/healthz" => response::plain(StatusCode::OK, "ok"),
        "/readyz" => match app.readiness.check().await {
            Ok(()) => response::plain(StatusCode::OK, "ready"),
            Err(reason) => response::plain(StatusCode::SERVICE_UNAVAILABLE, &reason),
        },
        "/metrics" => {
            let mut response = Response::new(response::full(app.metrics.render()));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        _ => return None,
    })
}

/// Serves only the operational endpoints on their own listener until shutdown.
pub async fn serve(listener: TcpListener, app: Arc<App>) {
    loop {
        let accepted = tokio::select! {
            _ = app.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        let app = app.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let app = app.clone();
                async move {
                    let response = route(&request, &app)
                        .await
                        .unwrap_or_else(|| response::plain(StatusCode::NOT_FOUND, "not found"));
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
