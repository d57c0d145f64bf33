//! Shared state of a running proxy: validated config, the upstream client, session tracking,
//! and the shared limits (connection count, request rate).

use crate::access::ip_slots::IpSlots;
use crate::access::ratelimit::RateLimiter;
use crate::config::Config;
use crate::ops::catalog::RouteLabels;
use crate::ops::health::{Ops, Readiness};
use crate::ops::telemetry;
use crate::store::conversations::Conversations;
use crate::store::{self, Store, StoreError};
use crate::tools::Tools;
use crate::upstream;
use crate::upstream::pool::UpstreamPool;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub struct App {
    pub config: Config,
    /// One pooled client for every reply, so connections to the upstream are reused.
    pub upstream: Arc<UpstreamPool>,
    /// Upgraded sockets and SSE relays leave hyper's tracking; shutdown waits for these.
    pub sessions: TaskTracker,
    /// Cancelled on SIGTERM/SIGINT: idle sessions close, busy ones finish their reply first.
    pub shutdown: CancellationToken,
    /// Cancelled when the drain timeout passes: running replies end with an error frame.
    pub force_stop: CancellationToken,
    /// One permit per open client connection (`--max-connections`).
    pub connections: Arc<Semaphore>,
    /// Open connections per client IP (`--max-connections-per-ip`).
    pub ip_slots: IpSlots,
    /// Requests per minute per client IP and token (`--rate-limit`).
    pub limiter: RateLimiter,
    /// Readiness and metrics, for `/readyz` and `/metrics` (also on their own listener).
    pub ops: Arc<Ops>,
    /// Conversations named by an id (`--store`), kept across sockets and replicas.
    pub conversations: Conversations,
    /// Tools from the `--mcp` servers (none without the flag).
    pub tools: Arc<Tools>,
}

impl App {
    /// The state for `config`, opening its `--store` (a SQLite file may fail to open).
    pub fn open(config: Config) -> Result<Self, StoreError> {
        let store = store::open(&config.store)?;
        Ok(App::with_store(config, store))
    }

    /// The state for `config` with conversations in `store`.
    pub fn with_store(config: Config, store: Arc<dyn Store>) -> Self {
        telemetry::start_at_zero(&route_labels(&config));
        App {
            conversations: Conversations::new(
                store,
                config.history_ttl,
                config.upstream.reply_timeout,
            ),
            upstream: Arc::new(UpstreamPool::new(config.upstream)),
            sessions: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            force_stop: CancellationToken::new(),
            connections: Arc::new(Semaphore::new(config.limits.max_connections)),
            ip_slots: IpSlots::new(config.limits.max_connections_per_ip),
            limiter: RateLimiter::new(config.limits.rate_limit),
            ops: Arc::new(Ops {
                readiness: Readiness::new(
                    config
                        .routes
                        .iter()
                        .map(|route| {
                            let targets = route.chain.iter().filter_map(upstream::probe_target);
                            (route.path.clone(), targets.collect())
                        })
                        .collect(),
                ),
                metrics: telemetry::prometheus(),
                process: telemetry::process_metrics(),
                tools: Tools::none(),
            }),
            tools: Tools::none(),
            config,
        }
    }

    /// The same state with the tools of the started `--mcp` servers (before it is shared).
    pub fn with_tools(mut self, tools: Arc<Tools>) -> Self {
        if let Some(ops) = Arc::get_mut(&mut self.ops) {
            ops.tools = tools.clone();
        }
        self.tools = tools;
        self
    }
}

/// Every route's path with the provider and model of each upstream (and each model a client
/// may choose), for the metrics that start at zero.
fn route_labels(config: &Config) -> Vec<RouteLabels> {
    config
        .routes
        .iter()
        .map(|route| {
            let mut upstreams: Vec<(&'static str, String)> = route
                .chain
                .iter()
                .map(|upstream| {
                    let (provider, model) = upstream.name_and_model();
                    (provider, model.to_owned())
                })
                .collect();
            let primary = route.primary().name_and_model().0;
            upstreams.extend(
                route
                    .models
                    .upstream_models()
                    .map(|model| (primary, model.to_owned())),
            );
            upstreams.dedup();
            RouteLabels {
                route: route.path.clone(),
                upstreams,
            }
        })
        .collect()
}
