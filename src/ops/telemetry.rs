//! Metrics (Prometheus, names prefixed `deepchat_proxy_`).
//! Labels are low-cardinality kinds, never message text.

use crate::error::ProxyError;
use crate::ops::catalog;
use crate::ops::recent::Recent;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Histogram bucket bounds, in seconds, for every histogram: from a fast token to a slow reply.
pub const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Installs the process-wide recorder once (several in-process servers share it) and returns
/// the handle that renders `/metrics`.
pub fn prometheus() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&BUCKETS)
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Fails only if another recorder is installed, in which case ours stays empty.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Gives every metric its help text and its known series a zero value (see [`catalog`]).
pub fn start_at_zero(routes: &[catalog::RouteLabels]) {
    prometheus();
    recent();
    catalog::describe_and_zero(&catalog::ZeroLabels {
        routes,
        errors: ProxyError::LABELS,
        rejections: &rejection_reasons(),
    });
}

/// Every `deepchat_proxy_rejected_total` reason: a refusal is counted by its error's label,
/// and only the client and the proxy refuse before a reply starts.
fn rejection_reasons() -> Vec<&'static str> {
    ProxyError::LABELS
        .iter()
        .filter(|(_, source)| *source != "upstream")
        .map(|(label, _)| *label)
        .collect()
}

/// The collector of the process's own metrics, described once.
pub fn process_metrics() -> metrics_process::Collector {
    let collector = metrics_process::Collector::default();
    collector.describe();
    collector
}

/// Counts a request refused before any reply started: `deepchat_proxy_rejected_total` by
/// reason, and the error by kind and source.
pub fn rejected(error: &ProxyError) {
    counter!("deepchat_proxy_rejected_total", "reason" => error.label()).increment(1);
    count_error(error);
}

/// Counts a reply that ended with an error shown to the user, by kind and source.
pub fn reply_failed(error: &ProxyError) {
    count_error(error);
}

/// `deepchat_proxy_errors_total{kind, source}`: every failure a client saw, counted once.
fn count_error(error: &ProxyError) {
    counter!(
        "deepchat_proxy_errors_total",
        "kind" => error.label(),
        "source" => error.source().label()
    )
    .increment(1);
}

pub fn upstream_error(provider: &'static str, status: &str) {
    counter!("deepchat_proxy_upstream_errors_total", "provider" => provider, "status" => status.to_owned())
        .increment(1);
}

pub fn upstream_retry(provider: &'static str) {
    counter!("deepchat_proxy_upstream_retries_total", "provider" => provider).increment(1);
}

/// `deepchat_proxy_fallbacks_total{provider}`: replies moved on from this upstream to the next
/// of their chain.
pub fn fallback(provider: &'static str) {
    counter!("deepchat_proxy_fallbacks_total", "provider" => provider).increment(1);
}

/// `deepchat_proxy_breaker_opened_total{provider}`: an upstream tripped its breaker.
pub fn breaker_opened(provider: &'static str) {
    counter!("deepchat_proxy_breaker_opened_total", "provider" => provider).increment(1);
}

/// `deepchat_proxy_breaker_skips_total{provider}`: replies that skipped an open upstream.
pub fn breaker_skip(provider: &'static str) {
    counter!("deepchat_proxy_breaker_skips_total", "provider" => provider).increment(1);
}

/// Counts an open thing (connection, stream) while it lives: in its gauge, and in a plain
/// counter the `/status` page reads.
pub struct Active(&'static str, &'static AtomicUsize);

static CONNECTIONS: AtomicUsize = AtomicUsize::new(0);
static STREAMS: AtomicUsize = AtomicUsize::new(0);

impl Active {
    pub fn connection() -> Active {
        Active::new("deepchat_proxy_connections_active", &CONNECTIONS)
    }

    pub fn stream() -> Active {
        Active::new("deepchat_proxy_streams_active", &STREAMS)
    }

    fn new(name: &'static str, count: &'static AtomicUsize) -> Active {
        gauge!(name).increment(1.0);
        count.fetch_add(1, Ordering::Relaxed);
        Active(name, count)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        gauge!(self.0).decrement(1.0);
        self.1.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Connections and streams open now, for `/status`.
pub fn active_now() -> (usize, usize) {
    (
        CONNECTIONS.load(Ordering::Relaxed),
        STREAMS.load(Ordering::Relaxed),
    )
}

/// The last minutes of replies, for `/status` (the process's, like the metrics).
pub fn recent() -> &'static Recent {
    static RECENT: OnceLock<Recent> = OnceLock::new();
    RECENT.get_or_init(Recent::new)
}

/// `deepchat_proxy_cancel_seconds`: from seeing the client leave to the upstream stream
/// dropped (its connection closed or its HTTP/2 stream reset).
pub fn cancel_latency(transport: &'static str, latency: std::time::Duration) {
    histogram!("deepchat_proxy_cancel_seconds", "transport" => transport)
        .record(latency.as_secs_f64());
}

/// What one finished reply adds to the metrics.
pub struct ReplyMetrics {
    pub transport: &'static str,
    /// The route's path: one of the configured ones.
    pub route: String,
    /// The upstream that answered (the primary when none did).
    pub provider: &'static str,
    /// Its model: a configured `--model` or `--allow-model`, so the label stays bounded.
    pub model: String,
    /// `ok`, `error` or `cancelled`.
    pub status: &'static str,
    pub total: std::time::Duration,
    /// Until the first answer text reached the client (never the thinking).
    pub first_token: Option<std::time::Duration>,
    /// Until a reasoning model's first thinking arrived, shown or not.
    pub first_thinking: Option<std::time::Duration>,
    pub relayed_bytes: usize,
    pub text_frames: usize,
    pub usage: deepchat_adapters::Usage,
}

/// Records a finished reply.
pub fn record_reply(reply: &ReplyMetrics) {
    recent().record(reply.status, reply.first_token);
    counter!(
        "deepchat_proxy_requests_total",
        "transport" => reply.transport,
        "outcome" => reply.status,
        "route" => reply.route.clone(),
        "provider" => reply.provider,
        "model" => reply.model.clone()
    )
    .increment(1);
    // Latency by who answered too: one slow model must not hide in the others' figures.
    let by_upstream = |name: &'static str| {
        histogram!(
            name,
            "transport" => reply.transport,
            "provider" => reply.provider,
            "model" => reply.model.clone()
        )
    };
    by_upstream("deepchat_proxy_reply_duration_seconds").record(reply.total.as_secs_f64());
    if let Some(first) = reply.first_token {
        by_upstream("deepchat_proxy_first_token_seconds").record(first.as_secs_f64());
    }
    if let Some(first) = reply.first_thinking {
        by_upstream("deepchat_proxy_first_thinking_seconds").record(first.as_secs_f64());
    }
    counter!("deepchat_proxy_relayed_bytes_total").increment(reply.relayed_bytes as u64);
    counter!("deepchat_proxy_relayed_frames_total").increment(reply.text_frames as u64);
    let usage = reply.usage;
    for (name, tokens) in [
        ("deepchat_proxy_input_tokens_total", usage.input_tokens),
        ("deepchat_proxy_output_tokens_total", usage.output_tokens),
        (
            "deepchat_proxy_reasoning_tokens_total",
            usage.reasoning_tokens,
        ),
    ] {
        if let Some(tokens) = tokens {
            counter!(name, "provider" => reply.provider, "model" => reply.model.clone())
                .increment(tokens);
        }
    }
    if reply.status == "cancelled" {
        counter!("deepchat_proxy_client_cancellations_total", "transport" => reply.transport)
            .increment(1);
    }
}

/// One conversation-store call: `deepchat_proxy_store_seconds{store, op}` and, when it failed
/// (an error or past its deadline), `deepchat_proxy_store_errors_total{store, op}`.
pub fn store_call(store: &'static str, op: &'static str, took: std::time::Duration, ok: bool) {
    histogram!("deepchat_proxy_store_seconds", "store" => store, "op" => op)
        .record(took.as_secs_f64());
    if !ok {
        counter!("deepchat_proxy_store_errors_total", "store" => store, "op" => op).increment(1);
    }
}

/// One tool call the loop ran: `tool` is an offered tool's name (or "unknown", so a model
/// cannot grow the label set), `failed` whether the model was told it failed.
pub fn tool_call(tool: &str, failed: bool, took: std::time::Duration) {
    let outcome = if failed { "error" } else { "ok" };
    counter!("deepchat_proxy_tool_calls_total", "tool" => tool.to_owned(), "outcome" => outcome)
        .increment(1);
    histogram!("deepchat_proxy_tool_seconds", "tool" => tool.to_owned()).record(took.as_secs_f64());
}
