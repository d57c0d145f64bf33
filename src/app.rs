//! Shared state of a running proxy: validated config, the upstream client, session tracking,
//! and the shared limits (connection count, request rate).

use crate::config::{Config, ProviderConfig};
use crate::demo;
use crate::health::Readiness;
use crate::ip_slots::IpSlots;
use crate::ratelimit::RateLimiter;
use crate::relay;
use crate::telemetry::{self, ReplyContext};
use crate::upstream::{self, EventStream};
use crate::upstream_pool::UpstreamPool;
use deepchat_adapters::{Conversation, Turn};
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use std::time::Instant;
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
    /// Cached upstream reachability for `/readyz`.
    pub readiness: Readiness,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
}

impl App {
    pub fn new(config: Config) -> Self {
        App {
            upstream: Arc::new(UpstreamPool::new(config.upstream)),
            sessions: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            force_stop: CancellationToken::new(),
            connections: Arc::new(Semaphore::new(config.limits.max_connections)),
            ip_slots: IpSlots::new(config.limits.max_connections_per_ip),
            limiter: RateLimiter::new(config.limits.rate_limit),
            readiness: Readiness::new(&config.provider),
            metrics: telemetry::prometheus(),
            config,
        }
    }

    /// The conversation to send upstream for these turns, within the conversation budget
    /// (the newest turn was checked against it on arrival).
    pub fn conversation(&self, turns: Vec<Turn>) -> Conversation {
        let mut conversation = Conversation {
            system: self.config.system_prompt.clone(),
            turns: self.config.limits.budget().fit(turns),
            ..Default::default()
        };
        if let ProviderConfig::Http(http) = &self.config.provider {
            conversation.model = http.model.clone();
            conversation.temperature = http.temperature;
            conversation.max_tokens = http.max_tokens;
            conversation.extra_headers = http.extra_headers.clone();
        }
        conversation
    }

    /// Who serves replies, for logs and metrics.
    pub fn reply_context<'a>(
        &'a self,
        transport: &'static str,
        started: Instant,
        question: Option<&'a str>,
    ) -> ReplyContext<'a> {
        let (provider, model) = match &self.config.provider {
            ProviderConfig::Http(http) => (http.adapter.name(), http.model.as_str()),
            ProviderConfig::Demo(_) => ("demo", "demo"),
        };
        ReplyContext {
            transport,
            provider,
            model,
            started,
            question,
        }
    }

    /// One reply from the configured provider, bounded by the reply timeout and by a forced
    /// shutdown. Lazy: the upstream is contacted when the relay first polls the stream, so
    /// the whole reply (connect and headers included) is under its deadline and cancellation.
    pub fn start_reply(&self, conversation: &Conversation) -> EventStream {
        let events = match &self.config.provider {
            ProviderConfig::Http(http) => {
                upstream::open(&self.upstream, http, conversation, &self.config.upstream)
            }
            ProviderConfig::Demo(demo) => demo::stream_reply(conversation, demo.token_interval),
        };
        relay::interruptible(
            events,
            self.config.upstream.reply_timeout,
            self.force_stop.clone(),
        )
    }
}
