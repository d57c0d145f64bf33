//! Operational endpoints: `GET /healthz` (alive), `GET /readyz` (configuration valid and the
//! upstream reachable, checked at most every few seconds), `GET /metrics` (Prometheus),
//! `GET /status` (a page for people). Served
//! on the main listener, or on `--metrics-listen` alone.

use crate::ops::status;
use crate::response::{self, Body};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::PrometheusHandle;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

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
    /// `target` is the upstream's `host:port`; `None` when there is none to probe.
    pub fn new(target: Option<String>) -> Readiness {
        Readiness {
            target,
            last: Mutex::new(None),
        }
    }

    /// The upstream's `host:port`, if there is one.
    pub fn target(&self) -> Option<&str> {
        self.target.as_deref()
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

/// What the operational endpoints serve.
pub struct Ops {
    /// Cached upstream reachability for `/readyz`.
    pub readiness: Readiness,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Reads the process's CPU, memory and open files when `/metrics` is scraped.
    pub process: metrics_process::Collector,
}

/// Answers an operational request, or `None` if the path is not one of ours.
pub async fn route(request: &Request<hyper::body::Incoming>, ops: &Ops) -> Option<Response<Body>> {
    if request.method() != Method::GET {
        return None;
    }
    Some(match request.uri().path() {
        "/healthz" => response::plain(StatusCode::OK, "ok"),
        "/readyz" => match ops.readiness.check().await {
            Ok(()) => response::plain(StatusCode::OK, "ready"),
            Err(reason) => response::plain(StatusCode::SERVICE_UNAVAILABLE, &reason),
        },
        "/status" => {
            let upstream = ops.readiness.check().await;
            let page = status::page(ops.readiness.target(), upstream);
            let mut response = Response::new(response::full(page));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response
        }
        "/metrics" => {
            ops.process.collect();
            let mut response = Response::new(response::full(ops.metrics.render()));
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
pub async fn serve(listener: TcpListener, ops: Arc<Ops>, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        let ops = ops.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let ops = ops.clone();
                async move {
                    let response = route(&request, &ops)
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
