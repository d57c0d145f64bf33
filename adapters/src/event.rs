//! Normalized events every decoder emits, and shared error wording.

/// One reply's events, in order, ending after the last one: what the upstream I/O produces
/// and the reply pipeline relays.
pub type EventStream = futures_util::stream::BoxStream<'static, Event>;

/// Why the upstream stopped generating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    /// Natural end of the reply.
    Stop,
    /// Cut by the token limit: the reply is incomplete and the user should know.
    Length,
    /// Withheld by the provider's safety or content filter.
    ContentFilter,
    /// The model stopped to call tools (the [`Event::ToolCall`]s before this say which).
    ToolUse,
    /// Anything else the provider reports, verbatim.
    Other(String),
}

/// Token accounting, when the provider reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    /// Of the output, the tokens spent thinking, where the provider reports them apart.
    pub reasoning_tokens: Option<u64>,
}

/// One normalized piece of an upstream reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Text to append to the reply, exactly as the provider sent it.
    TextDelta(String),
    /// The model's thinking (reasoning content or a summary of it), exactly as the provider
    /// sent it: never part of the answer, shown or hidden by the operator's choice.
    Reasoning(String),
    /// A file (usually an image) produced by the model.
    File {
        mime: String,
        /// Data URL or remote URL, ready for Deep Chat's `src`.
        src: String,
    },
    Usage(Usage),
    /// A complete tool call (its streamed argument pieces assembled by the decoder), emitted
    /// once per call before the round's [`Event::Finish`].
    ToolCall(crate::ToolCall),
    /// Provider state of this assistant message to send back with its tool results
    /// ([`crate::Carried::item`]; the binary tags it with the adapter).
    Carried(serde_json::Value),
    /// The binary's tool loop, never a decoder: these tools are being called now (for a
    /// status).
    ToolRunning(Vec<crate::ToolCall>),
    /// The binary's tool loop, never a decoder: a round is complete, results included (for the
    /// conversation memory).
    ToolRound(crate::ToolRound),
    /// The provider says the reply is complete (or cut, per the reason).
    Finish(FinishReason),
    /// The provider reported an error, or its stream broke: one clear message for the user.
    Error(String),
}

/// A readable message for a non-2xx upstream response, using the provider's own error text
/// when its body carries one (`{"error":{"message":…}}`, `{"error":"…"}`, `{"message":…}`).
/// `upstream` names who answered ("openai upstream", or with its host).
pub fn describe_http_error(upstream: &str, status: u16, body: &str) -> String {
    let detail = extract_error_text(body).unwrap_or_else(|| {
        let trimmed = body.trim();
        let mut short: String = trimmed.chars().take(300).collect();
        if short.len() < trimmed.len() {
            short.push('…');
        }
        short
    });
    let what = match status {
        401 | 403 => "rejected the API key",
        404 => "does not know this model or endpoint",
        408 | 504 => "timed out",
        429 => "is rate limiting requests",
        500..=599 => "failed",
        _ => "refused the request",
    };
    if detail.is_empty() {
        format!("{upstream} {what} (HTTP {status})")
    } else {
        format!("{upstream} {what} (HTTP {status}): {detail}")
    }
}

/// The human part of a JSON error body, if there is one.
pub fn extract_error_text(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    extract_error_value(&value)
}

/// Same as [`extract_error_text`] for an already-parsed value.
pub fn extract_error_value(value: &serde_json::Value) -> Option<String> {
    // Some providers answer a list of errors (Gemini on some endpoints).
    let value = match value {
        serde_json::Value::Array(items) => items.first()?,
        other => other,
    };
    let error = value.get("error").unwrap_or(value);
    match error {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Object(map) => map
            .get("message")
            .or_else(|| map.get("detail"))
            .and_then(|m| m.as_str())
            .map(str::to_owned),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_provider_message_when_present() {
        let msg = describe_http_error(
            "openai upstream",
            401,
            r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}}"#,
        );
        assert_eq!(
            msg,
            "openai upstream rejected the API key (HTTP 401): Incorrect API key provided"
        );
    }

    #[test]
    fn falls_back_to_truncated_body() {
        let body = "x".repeat(1000);
        let msg = describe_http_error("openai upstream", 502, &body);
        assert!(msg.starts_with("openai upstream failed (HTTP 502): xxx"));
        assert!(msg.ends_with('…'));
        assert!(msg.len() < 400);
    }

    #[test]
    fn string_error_field() {
        assert_eq!(
            extract_error_text(r#"{"error":"model not found"}"#).as_deref(),
            Some("model not found")
        );
    }
}
