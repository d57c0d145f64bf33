//! Cohere Chat API v2 (`POST {base}/v2/chat`, `stream: true`): SSE events whose JSON `type`
//! runs from `message-start` to `message-end`, text in `content-delta` events (a reasoning
//! model's thinking in the same events, as `thinking` content).

use crate::{
    Adapter, AdapterError, Conversation, Event, FinishReason, Framing, Generation, Message,
    StreamDecoder, UpstreamRequest, Usage,
};
use serde_json::Value;

/// Where Cohere's API lives when the operator gives no base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.cohere.com";
/// The environment variable conventionally holding the key.
pub const API_KEY_ENV: &str = "COHERE_API_KEY";

/// Chat v2 against one base URL (the part before `/v2/chat`).
#[derive(Debug, Clone)]
pub struct Cohere {
    pub base_url: String,
}

impl Cohere {
    pub fn new(base_url: impl Into<String>) -> Self {
        Cohere {
            base_url: base_url.into(),
        }
    }
}

impl Default for Cohere {
    fn default() -> Self {
        Cohere::new(DEFAULT_BASE_URL)
    }
}

impl Adapter for Cohere {
    fn name(&self) -> &'static str {
        "cohere"
    }

    fn framing(&self) -> Framing {
        Framing::Sse
    }

    fn build_request(
        &self,
        conversation: &Conversation,
        generation: &Generation,
        api_key: Option<&str>,
    ) -> Result<UpstreamRequest, AdapterError> {
        if conversation.turns.is_empty() {
            return Err(AdapterError::Empty);
        }
        let headers = generation.request_headers(crate::generation::bearer(api_key), &[]);
        // v2's request is Chat Completions-shaped: same roles, string or part-list content,
        // `image_url` parts, `temperature` and `max_tokens`.
        let mut body = crate::openai::chat_body(conversation, generation, true);
        // Cohere takes a thinking budget, not OpenAI's effort words.
        if let Some(fields) = body.as_object_mut() {
            fields.remove("reasoning_effort");
        }
        if let Some(budget) = generation.reasoning.budget_tokens {
            body["thinking"] = serde_json::json!({"type": "enabled", "token_budget": budget});
        }
        Ok(UpstreamRequest {
            url: format!("{}/v2/chat", self.base_url.trim_end_matches('/')),
            headers,
            body,
        })
    }

    fn decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(ChatV2Decoder::default())
    }
}

/// Decodes the v2 event stream until `message-end`.
#[derive(Debug, Default)]
pub struct ChatV2Decoder {
    /// Set by `message-end` or an error: anything after is ignored, `end()` is satisfied.
    done: bool,
}

/// Token counts: the documented `billed_units` are numbers that may be written as floats.
fn count(value: Option<&Value>) -> Option<u64> {
    let value = value?;
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f.round() as u64)
    })
}

/// Prefers the model's real token counts over the billed ones, which leave out the
/// prompt Cohere adds itself.
fn usage_of(usage: &Value) -> Usage {
    let pick = |field: &str| {
        count(usage.get("tokens").and_then(|t| t.get(field)))
            .or_else(|| count(usage.get("billed_units").and_then(|b| b.get(field))))
    };
    Usage {
        input_tokens: pick("input_tokens"),
        output_tokens: pick("output_tokens"),
        // Cohere reports no thinking count of its own.
        reasoning_tokens: None,
    }
}

impl ChatV2Decoder {
    fn message_end(&mut self, event: &Value) -> Vec<Event> {
        self.done = true;
        let delta = event.get("delta");
        let reason = delta
            .and_then(|d| d.get("finish_reason"))
            .and_then(Value::as_str)
            .unwrap_or("COMPLETE");
        let detail = delta
            .and_then(|d| d.get("error"))
            .and_then(Value::as_str)
            .filter(|e| !e.is_empty());
        let finish = match reason {
            "COMPLETE" | "STOP_SEQUENCE" | "TOOL_CALL" => FinishReason::Stop,
            "MAX_TOKENS" => FinishReason::Length,
            "ERROR_TOXIC" => {
                return vec![Event::Error(
                    "the reply was blocked by Cohere's safety filter (ERROR_TOXIC)".into(),
                )]
            }
            "ERROR_LIMIT" => {
                return vec![Event::Error(format!(
                    "upstream error: the conversation is too long for the model{}",
                    detail.map(|d| format!(" ({d})")).unwrap_or_default()
                ))]
            }
            "ERROR" | "TIMEOUT" => {
                return vec![Event::Error(format!(
                    "upstream error: {}",
                    detail.unwrap_or("the model failed while generating the reply")
                ))]
            }
            other => FinishReason::Other(other.to_owned()),
        };
        let mut events = vec![Event::Finish(finish)];
        if let Some(usage) = delta.and_then(|d| d.get("usage")).filter(|u| u.is_object()) {
            events.push(Event::Usage(usage_of(usage)));
        }
        events
    }
}

impl StreamDecoder for ChatV2Decoder {
    fn decode(&mut self, message: &Message) -> Vec<Event> {
        if self.done {
            return Vec::new();
        }
        let data = message.data.trim();
        // Some deployments close with an OpenAI-style `[DONE]`; `message-end` already ended it.
        if data.is_empty() || data == "[DONE]" {
            return Vec::new();
        }
        let event: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(_) => {
                self.done = true;
                return vec![Event::Error(format!(
                    "upstream sent unreadable stream data: {}",
                    data.chars().take(200).collect::<String>()
                ))];
            }
        };
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(message.event.as_str());
        match kind {
            // Thinking content carries `thinking` where the answer carries `text`.
            "content-start" | "content-delta" => {
                let content = event.pointer("/delta/message/content");
                let field = |name: &str| {
                    content
                        .and_then(|c| c.get(name))
                        .and_then(Value::as_str)
                        .filter(|text| !text.is_empty())
                };
                let mut events = Vec::new();
                if let Some(thinking) = field("thinking") {
                    events.push(Event::Reasoning(thinking.to_owned()));
                }
                if let Some(text) = field("text") {
                    events.push(Event::TextDelta(text.to_owned()));
                }
                events
            }
            "message-end" => self.message_end(&event),
            // An untyped body in the stream is an error object (`{"message": …}`).
            "" | "error" => {
                self.done = true;
                let text = crate::event::extract_error_value(&event)
                    .unwrap_or_else(|| data.chars().take(200).collect());
                vec![Event::Error(format!("upstream error: {text}"))]
            }
            // message-start, content-end, tool plans, tool calls, citations, debug.
            _ => Vec::new(),
        }
    }

    fn end(&mut self) -> Vec<Event> {
        if self.done {
            Vec::new()
        } else {
            self.done = true;
            vec![Event::Error(
                "the upstream stream ended before the reply was complete".into(),
            )]
        }
    }
}
