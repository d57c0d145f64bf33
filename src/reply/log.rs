//! The record of a finished reply: its metrics and one log line (without message content
//! unless `--log-content`).

use crate::config::ProviderConfig;
use crate::ops::telemetry::{self, ReplyMetrics};
use crate::reply::relay::Outcome;
use crate::App;
use deepchat_adapters::{Conversation, Role};
use std::time::Instant;

/// Who served a reply, for its log line.
pub struct ReplyContext<'a> {
    pub transport: &'static str,
    pub provider: &'static str,
    pub model: &'a str,
    pub started: Instant,
    /// The user's newest message, logged only with `--log-content`.
    pub question: Option<&'a str>,
}

/// The context of a reply on `transport` that started at `started`.
pub fn context<'a>(
    app: &'a App,
    transport: &'static str,
    started: Instant,
    question: Option<&'a str>,
) -> ReplyContext<'a> {
    let (provider, model) = match &app.config.provider {
        ProviderConfig::Http(http) => (http.adapter.name(), http.generation.model.as_str()),
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
        provider: context.provider,
        status,
        total,
        first_token,
        first_thinking,
        relayed_bytes: outcome.relayed_bytes,
        text_frames: outcome.text_frames,
        output_tokens,
    });
    if let Some(error) = &outcome.error {
        telemetry::reply_failed(error);
    }
    let error = outcome.error.as_ref().map(ToString::to_string);
    let question = log_content.then_some(context.question).flatten();
    let answer = log_content.then_some(outcome.text.as_str());
    tracing::info!(
        request_id = %telemetry::request_id(),
        transport = context.transport,
        provider = context.provider,
        model = context.model,
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
    );
}
