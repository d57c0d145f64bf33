//! Every metric the proxy exports, in one list: its help text becomes the `# HELP` line, and
//! its known label sets are registered at zero when the server starts, because dashboards and
//! alerts (`rate(…)`, `absent(…)`) need a series before its first event. The README's
//! Operations section lists the same names (a test keeps the two in step).

use metrics::{describe_counter, describe_gauge, describe_histogram};

/// What kind of series a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One exported metric.
#[derive(Debug)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

const fn metric(name: &'static str, kind: Kind, help: &'static str) -> Metric {
    Metric { name, kind, help }
}

/// The transports a reply runs on, as labelled.
pub const TRANSPORTS: [&str; 3] = ["websocket", "http-sse", "http-json"];
/// How a reply ended, as labelled.
pub const OUTCOMES: [&str; 3] = ["ok", "error", "cancelled"];

/// Every metric, with the name it is exported under.
pub const METRICS: &[Metric] = &[
    metric(
        "deepchat_proxy_build_info",
        Kind::Gauge,
        "Always 1; the labels say which version of the proxy is running.",
    ),
    metric(
        "deepchat_proxy_connections_active",
        Kind::Gauge,
        "Client connections open now (HTTP and WebSocket).",
    ),
    metric(
        "deepchat_proxy_streams_active",
        Kind::Gauge,
        "Replies being relayed now.",
    ),
    metric(
        "deepchat_proxy_requests_total",
        Kind::Counter,
        "Replies finished, by transport, outcome (ok, error, cancelled), route, and the provider and model that answered.",
    ),
    metric(
        "deepchat_proxy_reply_duration_seconds",
        Kind::Histogram,
        "Time from a reply's start to its end, by transport.",
    ),
    metric(
        "deepchat_proxy_first_token_seconds",
        Kind::Histogram,
        "Time from a reply's start to its first text reaching the client's socket, by transport.",
    ),
    metric(
        "deepchat_proxy_first_thinking_seconds",
        Kind::Histogram,
        "Time from a reply's start to a reasoning model's first thinking, shown or not, by transport.",
    ),
    metric(
        "deepchat_proxy_chunk_gap_seconds",
        Kind::Histogram,
        "Time between a reply's consecutive text chunks from the upstream, by transport.",
    ),
    metric(
        "deepchat_proxy_cancel_seconds",
        Kind::Histogram,
        "Time from seeing a client leave to its upstream request closed, by transport.",
    ),
    metric(
        "deepchat_proxy_relayed_bytes_total",
        Kind::Counter,
        "Bytes of reply text sent to clients.",
    ),
    metric(
        "deepchat_proxy_relayed_frames_total",
        Kind::Counter,
        "Text frames sent to clients (after merging what was queued).",
    ),
    metric(
        "deepchat_proxy_input_tokens_total",
        Kind::Counter,
        "Input (prompt) tokens the provider reported, by provider and model.",
    ),
    metric(
        "deepchat_proxy_reasoning_tokens_total",
        Kind::Counter,
        "Reasoning (thinking) tokens the provider reported, by provider and model.",
    ),
    metric(
        "deepchat_proxy_output_tokens_total",
        Kind::Counter,
        "Output tokens the provider reported, by provider and model.",
    ),
    metric(
        "deepchat_proxy_client_cancellations_total",
        Kind::Counter,
        "Replies stopped because the client left, by transport.",
    ),
    metric(
        "deepchat_proxy_rejected_total",
        Kind::Counter,
        "Requests refused before a reply started, by reason.",
    ),
    metric(
        "deepchat_proxy_errors_total",
        Kind::Counter,
        "Errors a client was shown, by kind and whose fault it was (client, upstream, proxy).",
    ),
    metric(
        "deepchat_proxy_upstream_errors_total",
        Kind::Counter,
        "Failed upstream attempts, by provider and status (HTTP status or failure kind).",
    ),
    metric(
        "deepchat_proxy_upstream_retries_total",
        Kind::Counter,
        "Upstream attempts retried, by provider.",
    ),
    metric(
        "deepchat_proxy_fallbacks_total",
        Kind::Counter,
        "Replies moved on from this upstream to the next of their route's chain, by provider.",
    ),
    metric(
        "deepchat_proxy_breaker_opened_total",
        Kind::Counter,
        "Times an upstream's circuit breaker opened after repeated failures, by provider.",
    ),
    metric(
        "deepchat_proxy_breaker_skips_total",
        Kind::Counter,
        "Replies that skipped an upstream whose breaker was open, by provider.",
    ),
    metric(
        "deepchat_proxy_store_seconds",
        Kind::Histogram,
        "Conversation-store call latency, by store and operation.",
    ),
    metric(
        "deepchat_proxy_store_errors_total",
        Kind::Counter,
        "Conversation-store calls that failed or passed their deadline, by store and operation.",
    ),
    metric(
        "deepchat_proxy_tool_calls_total",
        Kind::Counter,
        "Tool calls the model made, by tool (\"unknown\" for a name it was not offered) and outcome (ok, error).",
    ),
    metric(
        "deepchat_proxy_tool_seconds",
        Kind::Histogram,
        "Time one tool call took, by tool.",
    ),
    metric(
        "process_cpu_seconds_total",
        Kind::Counter,
        "CPU time the proxy process used, user and system.",
    ),
    metric(
        "process_resident_memory_bytes",
        Kind::Gauge,
        "Resident memory of the proxy process.",
    ),
    metric(
        "process_open_fds",
        Kind::Gauge,
        "File descriptors the proxy process has open (sockets included).",
    ),
];

/// One configured route's labels: its path and each upstream's provider and model.
pub struct RouteLabels {
    pub route: String,
    pub upstreams: Vec<(&'static str, String)>,
}

/// Which labels a metric's zero series get.
pub struct ZeroLabels<'a> {
    /// The configured routes (labels are bounded to what is configured).
    pub routes: &'a [RouteLabels],
    /// Every `deepchat_proxy_errors_total` kind with its source.
    pub errors: &'a [(&'static str, &'static str)],
    /// Every rejection reason.
    pub rejections: &'a [&'static str],
}

/// Gives every metric its help text and registers its series at zero.
pub fn describe_and_zero(labels: &ZeroLabels<'_>) {
    for metric in METRICS {
        match metric.kind {
            Kind::Counter => describe_counter!(metric.name, metric.help),
            Kind::Gauge => describe_gauge!(metric.name, metric.help),
            Kind::Histogram => describe_histogram!(metric.name, metric.help),
        }
    }
    metrics::gauge!("deepchat_proxy_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    metrics::gauge!("deepchat_proxy_connections_active").increment(0.0);
    metrics::gauge!("deepchat_proxy_streams_active").increment(0.0);
    for transport in TRANSPORTS {
        for route in labels.routes {
            for (provider, model) in &route.upstreams {
                for name in [
                    "deepchat_proxy_input_tokens_total",
                    "deepchat_proxy_output_tokens_total",
                    "deepchat_proxy_reasoning_tokens_total",
                ] {
                    metrics::counter!(name, "provider" => *provider, "model" => model.clone())
                        .increment(0);
                }
                for outcome in OUTCOMES {
                    metrics::counter!(
                        "deepchat_proxy_requests_total",
                        "transport" => transport,
                        "outcome" => outcome,
                        "route" => route.route.clone(),
                        "provider" => *provider,
                        "model" => model.clone()
                    )
                    .increment(0);
                }
            }
        }
        metrics::counter!("deepchat_proxy_client_cancellations_total", "transport" => transport)
            .increment(0);
    }
    metrics::counter!("deepchat_proxy_relayed_bytes_total").increment(0);
    metrics::counter!("deepchat_proxy_relayed_frames_total").increment(0);
    let providers = labels
        .routes
        .iter()
        .flat_map(|route| route.upstreams.iter().map(|(provider, _)| *provider));
    for provider in providers {
        metrics::counter!("deepchat_proxy_upstream_errors_total", "provider" => provider, "status" => "connect")
            .increment(0);
        metrics::counter!("deepchat_proxy_upstream_retries_total", "provider" => provider)
            .increment(0);
        metrics::counter!("deepchat_proxy_fallbacks_total", "provider" => provider).increment(0);
        metrics::counter!("deepchat_proxy_breaker_opened_total", "provider" => provider)
            .increment(0);
        metrics::counter!("deepchat_proxy_breaker_skips_total", "provider" => provider)
            .increment(0);
    }
    for (kind, source) in labels.errors {
        metrics::counter!("deepchat_proxy_errors_total", "kind" => *kind, "source" => *source)
            .increment(0);
    }
    for reason in labels.rejections {
        metrics::counter!("deepchat_proxy_rejected_total", "reason" => *reason).increment(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_lists_every_metric() {
        let readme = include_str!("../../README.md");
        let operations = readme
            .split("\n## Operations\n")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("README has an Operations section");
        for metric in METRICS {
            assert!(
                operations.contains(&format!("| `{}` |", metric.name)),
                "README's Operations table lacks {}",
                metric.name
            );
        }
    }
}
