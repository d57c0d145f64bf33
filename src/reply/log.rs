//! The record of a reply: the span every log line of it carries (request id, client IP, the
//! provider's own request id), and when it ends its metrics and one line naming the route and
//! the upstream that answered (without message content unless `--log-content`), at the level
//! its outcome deserves: INFO when it went well or the client left, WARN when the client was
//! at fault, ERROR when the upstream or the proxy was.

use crate::error::{ProxyError, Source};
use crate::ops::otel;
use crate::ops::telemetry::{self, ReplyMetrics};
use crate::reply::relay::Outcome;
use crate::reply::scope::ReplyScope;
use deepchat_adapters::{Conversation, Role};
use std::time::Instant;

/// The span of one reply: every line logged while it runs (retries, upstream warnings, the
/// final line) carries its ids.
/// With `--otlp-endpoint` it is also the reply's trace span, named and attributed after the
/// OpenTelemetry GenAI conventions (usage and finish reason are recorded when it ends).
pub fn reply_span(scope: &ReplyScope, transport: &'static str, model: &str) -> tracing::Span {
    let span = tracing::info_span!(
        "reply",
        otel.name = %format_args!("chat {model}"),
        request_id = %scope.request_id,
        client_ip = %scope.client_ip,
        transport,
        upstream_request_id = tracing::field::Empty,
        gen_ai.operation.name = "chat",
        // Who answered is known at the end (a fallback may have).
        gen_ai.system = tracing::field::Empty,
        gen_ai.provider.name = tracing::field::Empty,
        gen_ai.request.model = model,
        gen_ai.response.model = tracing::field::Empty,
        gen_ai.usage.input_tokens = tracing::field::Empty,
        gen_ai.usage.output_tokens = tracing::field::Empty,
        gen_ai.response.finish_reasons = tracing::field::Empty,
    );
    if let Some(parent) = &scope.trace_parent {
        otel::adopt(&span, parent);
    }
    span
}

/// The GenAI finish reason of a reply: how the model stopped, or why the proxy stopped it.
fn finish_reason(outcome: &Outcome) -> &'static str {
    match &outcome.error {
        None if outcome.cancelled => "cancelled",
        None => "stop",
        Some(ProxyError::TokenLimit) => "length",
        Some(ProxyError::ContentFilter) => "content_filter",
        Some(_) => "error",
    }
}

/// Logs a request refused before its reply started.
pub fn refused(error: &ProxyError, scope: &ReplyScope) {
    let kind = error.label();
    let request_id = scope.request_id.as_str();
    let client_ip = scope.client_ip.as_str();
    match error.source() {
        Source::Client => {
            tracing::warn!(request_id, client_ip, kind, %error, "request refused")
        }
        Source::Upstream | Source::Proxy => {
            tracing::error!(request_id, client_ip, kind, %error, "request refused")
        }
    }
}

/// Who served a reply, for its log line.
pub struct ReplyContext<'a> {
    pub transport: &'static str,
    /// The route's path.
    pub route: &'a str,
    /// The upstream that answered (the primary when none did).
    pub provider: &'static str,
    pub model: &'a str,
    /// Which upstream that is, by adapter and host ("openai upstream at api.groq.com"): two
    /// upstreams of one provider differ here.
    pub upstream: &'a str,
    /// `Some(n)` when the n-th fallback of the route's chain answered.
    pub fallback: Option<usize>,
    pub started: Instant,
    /// The user's newest message, logged only with `--log-content`.
    pub question: Option<&'a str>,
}

/// The user's newest message, for `--log-content`.
pub fn newest_text(conversation: &Conversation) -> Option<&str> {
    conversation
        .turns
        .iter()
        .rev()
        .find(|t| t.role == Role::User)
        .map(|t| t.text.as_str())
}

/// Records a finished reply: metrics, and one log line without content (unless asked).
pub fn finished(context: &ReplyContext<'_>, outcome: &Outcome, log_content: bool) {
    let status = if outcome.cancelled {
        "cancelled"
    } else if outcome.error.is_some() {
        "error"
    } else {
        "ok"
    };
    let total = context.started.elapsed();
    let first_token = outcome
        .first_text_at
        .map(|t| t.duration_since(context.started));
    let first_thinking = outcome
        .first_thinking_at
        .map(|t| t.duration_since(context.started));
    let input_tokens = outcome.usage.and_then(|u| u.input_tokens);
    let output_tokens = outcome.usage.and_then(|u| u.output_tokens);
    let reasoning_tokens = outcome.usage.and_then(|u| u.reasoning_tokens);
    telemetry::record_reply(&ReplyMetrics {
        transport: context.transport,
        route: context.route.to_owned(),
        provider: context.provider,
        model: context.model.to_owned(),
        status,
        total,
        first_token,
        first_thinking,
        relayed_bytes: outcome.relayed_bytes,
        text_frames: outcome.text_frames,
        usage: outcome.usage.unwrap_or_default(),
    });
    if let Some(error) = &outcome.error {
        telemetry::reply_failed(error);
    }
    let span = tracing::Span::current();
    span.record("gen_ai.system", context.provider);
    span.record("gen_ai.provider.name", context.provider);
    span.record("gen_ai.response.model", context.model);
    // As i64: OpenTelemetry's integer type (a u64 would be exported as text).
    let as_int = |tokens: u64| i64::try_from(tokens).unwrap_or(i64::MAX);
    if let Some(tokens) = input_tokens {
        span.record("gen_ai.usage.input_tokens", as_int(tokens));
    }
    if let Some(tokens) = output_tokens {
        span.record("gen_ai.usage.output_tokens", as_int(tokens));
    }
    span.record("gen_ai.response.finish_reasons", finish_reason(outcome));
    let error = outcome.error.as_ref().map(ToString::to_string);
    let question = log_content.then_some(context.question).flatten();
    let answer = log_content.then_some(outcome.text.as_str());
    // One line, at the level the outcome deserves (a tracing level must be a constant).
    macro_rules! reply_line {
        ($level:expr) => {
            tracing::event!(
                $level,
                transport = context.transport,
                route = context.route,
                provider = context.provider,
                model = context.model,
                upstream = context.upstream,
                fallback = context.fallback,
                status,
                first_token_ms = first_token.map(|d| d.as_millis() as u64),
                first_thinking_ms = first_thinking.map(|d| d.as_millis() as u64),
                total_ms = total.as_millis() as u64,
                input_tokens,
                output_tokens,
                reasoning_tokens,
                bytes = outcome.relayed_bytes,
                frames = outcome.text_frames,
                error_kind = outcome.error.as_ref().map(|e| e.label()),
                error = error.as_deref(),
                question,
                answer,
                "reply finished"
            )
        };
    }
    match outcome.error.as_ref().map(ProxyError::source) {
        None => reply_line!(tracing::Level::INFO),
        // The client left while its reply failed: it saw nothing, so it is no failure to chase.
        Some(_) if outcome.cancelled => reply_line!(tracing::Level::INFO),
        Some(Source::Client) => reply_line!(tracing::Level::WARN),
        Some(Source::Upstream | Source::Proxy) => reply_line!(tracing::Level::ERROR),
    }
}
