//! Metrics (Prometheus, names prefixed `deepchat_proxy_`) and request ids.
//! Labels are low-cardinality kinds, never message text.

use crate::error::ProxyError;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once (several in-process servers share it) and returns
/// the handle that renders `/metrics`.
pub fn prometheus() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets(&buckets)
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Fails only if another recorder is installed, in which case ours stays empty.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
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

/// Counts an open thing (connection, stream) while it lives.
pub struct Active(&'static str);

impl Active {
    pub fn connection() -> Active {
        Active::new("deepchat_proxy_connections_active")
    }

    pub fn stream() -> Active {
        Active::new("deepchat_proxy_streams_active")
    }

    fn new(name: &'static str) -> Active {
        gauge!(name).increment(1.0);
        Active(name)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        gauge!(self.0).decrement(1.0);
    }
}

/// A short id tying a reply's log line to client reports.
pub fn request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static BASE: OnceLock<u64> = OnceLock::new();
    let base = *BASE.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    format!(
        "{:016x}",
        base.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))
    )
}

/// What one finished reply adds to the metrics.
pub struct ReplyMetrics {
    pub transport: &'static str,
    pub provider: &'static str,
    /// `ok`, `error` or `cancelled`.
    pub status: &'static str,
    pub total: std::time::Duration,
    pub first_token: Option<std::time::Duration>,
    pub relayed_bytes: usize,
    pub text_frames: usize,
    pub output_tokens: Option<u64>,
}

/// Records a finished reply.
pub fn record_reply(reply: &ReplyMetrics) {
    counter!("deepchat_proxy_requests_total", "transport" => reply.transport, "outcome" => reply.status)
        .increment(1);
    histogram!("deepchat_proxy_reply_duration_seconds", "transport" => reply.transport)
        .record(reply.total.as_secs_f64());
    if let Some(first) = reply.first_token {
        histogram!("deepchat_proxy_first_token_seconds", "transport" => reply.transport)
            .record(first.as_secs_f64());
    }
    counter!("deepchat_proxy_relayed_bytes_total").increment(reply.relayed_bytes as u64);
    counter!("deepchat_proxy_relayed_frames_total").increment(reply.text_frames as u64);
    if let Some(tokens) = reply.output_tokens {
        counter!("deepchat_proxy_output_tokens_total", "provider" => reply.provider)
            .increment(tokens);
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
