//! Operational endpoints: `GET /healthz` (alive), `GET /readyz` (configuration valid and each
//! route's upstream reachable, checked at most every few seconds), `GET /metrics` (Prometheus),
//! `GET /status` (a page for people). Served on the main listener, or on `--metrics-listen`
//! alone.

use crate::ops::status::{self, UpstreamHealth};
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

/// One upstream's cached reachability.
struct Probe {
    /// `host:port` of the upstream.
    target: String,
    last: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl Probe {
    /// Whether the upstream accepts TCP connections (cached for a few seconds).
    async fn check(&self) -> Result<(), String> {
        if let Ok(guard) = self.last.lock() {
            if let Some((at, result)) = guard.as_ref() {
                if at.elapsed() < READY_CACHE {
                    return result.clone();
                }
            }
        }
        let target = &self.target;
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

/// One route's upstreams: ready when any of them is reachable (a fallback can answer).
struct RouteProbes {
    path: String,
    probes: Vec<Probe>,
}

impl RouteProbes {
    async fn check(&self) -> Result<(), String> {
        if self.probes.is_empty() {
            return Ok(());
        }
        let results = futures_util::future::join_all(self.probes.iter().map(Probe::check)).await;
        if results.iter().any(Result::is_ok) {
            return Ok(());
        }
        let reasons: Vec<String> = results.into_iter().filter_map(Result::err).collect();
        Err(reasons.join("; "))
    }
}

/// Cached upstream reachability, per route.
pub struct Readiness {
    routes: Vec<RouteProbes>,
}

impl Readiness {
    /// Each route's path and its upstreams' `host:port` (none for the offline demo).
    pub fn new(routes: Vec<(String, Vec<String>)>) -> Readiness {
        let routes = routes
            .into_iter()
            .map(|(path, targets)| RouteProbes {
                path,
                probes: targets
                    .into_iter()
                    .map(|target| Probe {
                        target,
                        last: Mutex::new(None),
                    })
                    .collect(),
            })
            .collect();
        Readiness { routes }
    }

    /// `Ok` with the body of a ready answer, `Err` with the reasons otherwise. One route with
    /// one upstream answers as it always did (`ready`, or the reason); more say it per route.
    pub async fn check(&self) -> Result<String, String> {
        let results =
            futures_util::future::join_all(self.routes.iter().map(RouteProbes::check)).await;
        let ready = results.iter().all(Result::is_ok);
        if let [route] = self.routes.as_slice() {
            if route.probes.len() <= 1 {
                return match results.into_iter().next() {
                    Some(Err(reason)) => Err(reason),
                    _ => Ok("ready".into()),
                };
            }
        }
        let mut body = String::from(if ready { "ready" } else { "not ready" });
        for (route, result) in self.routes.iter().zip(results) {
            match result {
                Ok(()) => body.push_str(&format!("\n{}: ready", route.path)),
                Err(reason) => body.push_str(&format!("\n{}: {reason}", route.path)),
            }
        }
        if ready {
            Ok(body)
        } else {
            Err(body)
        }
    }
}

impl Readiness {
    /// Every upstream of every route with its (cached) reachability, for `/status`.
    pub async fn upstreams(&self) -> Vec<UpstreamHealth> {
        let mut rows = Vec::new();
        for route in &self.routes {
            if route.probes.is_empty() {
                rows.push(UpstreamHealth {
                    route: route.path.clone(),
                    target: "demo (no upstream)".into(),
                    result: Ok(()),
                });
            }
            for probe in &route.probes {
                rows.push(UpstreamHealth {
                    route: route.path.clone(),
                    target: probe.target.clone(),
                    result: probe.check().await,
                });
            }
        }
        rows
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
    /// The `--mcp` servers: a server that is down is reported, but leaves the proxy ready
    /// (replies go on without its tools).
    pub tools: Arc<crate::tools::Tools>,
}

impl Ops {
    /// `/readyz`: the upstreams' readiness, then a line per MCP server.
    async fn readiness(&self) -> Result<String, String> {
        let mut result = self.readiness.check().await;
        let lines = mcp_lines(&self.tools);
        if !lines.is_empty() {
            let body = match &mut result {
                Ok(body) | Err(body) => body,
            };
            body.push_str(&lines);
        }
        result
    }
}

/// `\nmcp NAME: up (N tools)` / `down: why` per server.
fn mcp_lines(tools: &crate::tools::Tools) -> String {
    use crate::tools::server::Health;
    let mut lines = String::new();
    for (name, health) in tools.health() {
        let state = match health {
            Health::Up(count) => format!("up ({count} tools)"),
            Health::Starting => "connecting".to_owned(),
            Health::Down(why) => format!("down: {why}"),
        };
        lines.push_str(&format!("\nmcp {name}: {state}"));
    }
    lines
}

/// Answers an operational request, or `None` if the path is not one of ours.
pub async fn route(request: &Request<hyper::body::Incoming>, ops: &Ops) -> Option<Response<Body>> {
    if request.method() != Method::GET {
        return None;
    }
    Some(match request.uri().path() {
        "/healthz" => response::plain(StatusCode::OK, "ok"),
        "/readyz" => match ops.readiness().await {
            Ok(body) => response::plain(StatusCode::OK, &body),
            Err(reason) => response::plain(StatusCode::SERVICE_UNAVAILABLE, &reason),
        },
        "/status" => {
            let page = status::page(&ops.readiness.upstreams().await);
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
