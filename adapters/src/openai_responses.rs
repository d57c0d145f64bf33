//! OpenAI Responses API (`POST {base}/responses`, `stream: true`): OpenAI's newer endpoint, also
//! served by some compatible hosts. Its stream is typed SSE events (`response.output_text.delta`,
//! …) that end with `response.completed`, `response.incomplete` or `response.failed`; there is no
//! `[DONE]` sentinel. A reasoning model's thinking arrives, when a summary is asked for, as
//! `response.reasoning_summary_text.delta` events (open-weight servers may stream the raw
//! `response.reasoning_text.delta` instead).

use crate::{
    Adapter, AdapterError, Conversation, Event, FinishReason, Framing, Generation, Message, Role,
    StreamDecoder, UpstreamRequest, Usage,
};
use serde_json::{json, Value};

/// OpenAI's own base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// The environment variable conventionally holding the key.
pub const API_KEY_ENV: &str = "OPENAI_API_KEY";

/// The Responses API against one base URL (the part before `/responses`).
#[derive(Debug, Clone)]
pub struct OpenAiResponses {
    pub base_url: String,
}

impl OpenAiResponses {
    pub fn new(base_url: impl Into<String>) -> Self {
        OpenAiResponses {
            base_url: base_url.into(),
        }
    }
}

impl Default for OpenAiResponses {
    fn default() -> Self {
        OpenAiResponses::new(DEFAULT_BASE_URL)
    }
}

/// The `input` array. User turns carry `input_text`/`input_image` parts; assistant turns replay
/// as `output_text`, the only content type the API accepts for that role.
pub fn responses_input(conversation: &Conversation) -> Vec<Value> {
    conversation
        .turns
        .iter()
        .map(|turn| match turn.role {
            Role::User => {
                let mut parts = Vec::with_capacity(turn.images.len() + 1);
                if !turn.text.is_empty() || turn.images.is_empty() {
                    parts.push(json!({"type": "input_text", "text": turn.text}));
                }
                for image in &turn.images {
                    parts.push(json!({"type": "input_image", "image_url": image.to_url()}));
                }
                json!({"role": "user", "content": parts})
            }
            // Images the assistant produced earlier cannot be replayed as assistant content
            // (no such part type exists); their text still gives the model its context.
            Role::Assistant => json!({
                "role": "assistant",
                "content": [{"type": "output_text", "text": turn.text}],
            }),
        })
        .collect()
}

/// The streaming Responses body.
pub fn responses_body(conversation: &Conversation, generation: &Generation) -> Value {
    let mut body = json!({
        "model": generation.model,
        "input": responses_input(conversation),
        "stream": true,
    });
    if let Some(system) = &conversation.system {
        body["instructions"] = json!(system);
    }
    if let Some(t) = generation.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(max) = generation.max_tokens {
        body["max_output_tokens"] = json!(max);
    }
    let wanted = generation.reasoning;
    if wanted.effort.is_some() || wanted.stream_thoughts {
        let mut reasoning = serde_json::Map::new();
        if let Some(effort) = wanted.effort {
            reasoning.insert("effort".into(), json!(effort.as_str()));
        }
        // OpenAI never streams the thinking itself, only a summary, and only when asked.
        if wanted.stream_thoughts {
            reasoning.insert("summary".into(), json!("auto"));
        }
        body["reasoning"] = Value::Object(reasoning);
    }
    body
}

impl Adapter for OpenAiResponses {
    fn name(&self) -> &'static str {
        "openai-responses"
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
        Ok(UpstreamRequest {
            url: format!("{}/responses", self.base_url.trim_end_matches('/')),
            headers,
            body: responses_body(conversation, generation),
        })
    }

    fn decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(ResponsesDecoder::default())
    }
}

/// Decodes Responses stream events until a terminal one.
#[derive(Debug, Default)]
pub struct ResponsesDecoder {
    /// Set by a terminal event or an error: later events are ignored and `end()` is satisfied.
    done: bool,
    /// The reasoning part (item id, summary index) the last thinking delta belonged to, so
    /// the next part starts on a new paragraph instead of running into the previous one.
    thinking_part: Option<(String, u64)>,
}

fn usage_of(response: Option<&Value>) -> Option<Event> {
    let usage = response?.get("usage").filter(|u| u.is_object())?;
    Some(Event::Usage(Usage {
        input_tokens: usage.get("input_tokens").and_then(Value::as_u64),
        output_tokens: usage.get("output_tokens").and_then(Value::as_u64),
        reasoning_tokens: usage
            .pointer("/output_tokens_details/reasoning_tokens")
            .and_then(Value::as_u64),
    }))
}

impl ResponsesDecoder {
    /// A thinking delta, after a paragraph break when it opens a new summary part.
    fn thinking(&mut self, payload: &Value) -> Vec<Event> {
        let Some(text) = payload
            .get("delta")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        else {
            return Vec::new();
        };
        let part = (
            payload
                .get("item_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            payload
                .get("summary_index")
                .or_else(|| payload.get("content_index"))
                .and_then(Value::as_u64)
                .unwrap_or(0),
        );
        let mut events = Vec::new();
        match &self.thinking_part {
            Some(previous) if *previous != part => {
                events.push(Event::Reasoning(format!("\n\n{text}")));
            }
            _ => events.push(Event::Reasoning(text.to_owned())),
        }
        self.thinking_part = Some(part);
        events
    }
}

fn incomplete_reason(response: Option<&Value>) -> FinishReason {
    let reason = response
        .and_then(|r| r.get("incomplete_details"))
        .and_then(|d| d.get("reason"))
        .and_then(Value::as_str);
    match reason {
        Some("max_output_tokens") => FinishReason::Length,
        Some("content_filter") => FinishReason::ContentFilter,
        Some(other) => FinishReason::Other(other.to_owned()),
        None => FinishReason::Other("incomplete".to_owned()),
    }
}

impl StreamDecoder for ResponsesDecoder {
    fn decode(&mut self, message: &Message) -> Vec<Event> {
        if self.done {
            return Vec::new();
        }
        let data = message.data.trim();
        // Some compatible servers append Chat-style `[DONE]`; it is not an ending here.
        if data.is_empty() || data == "[DONE]" {
            return Vec::new();
        }
        let payload: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(_) => {
                self.done = true;
                return vec![Event::Error(format!(
                    "upstream sent unreadable stream data: {}",
                    data.chars().take(200).collect::<String>()
                ))];
            }
        };
        // The SSE name and the payload's `type` agree; servers that omit `event:` lines still
        // carry `type`.
        let kind = if message.event.is_empty() {
            payload.get("type").and_then(Value::as_str).unwrap_or("")
        } else {
            message.event.as_str()
        };
        let response = payload.get("response");
        match kind {
            "response.output_text.delta" | "response.refusal.delta" => {
                match payload.get("delta").and_then(Value::as_str) {
                    Some(text) if !text.is_empty() => vec![Event::TextDelta(text.to_owned())],
                    _ => Vec::new(),
                }
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                self.thinking(&payload)
            }
            "response.completed" => {
                self.done = true;
                let mut events: Vec<Event> = usage_of(response).into_iter().collect();
                events.push(Event::Finish(FinishReason::Stop));
                events
            }
            "response.incomplete" => {
                self.done = true;
                let mut events: Vec<Event> = usage_of(response).into_iter().collect();
                events.push(Event::Finish(incomplete_reason(response)));
                events
            }
            "response.failed" => {
                self.done = true;
                let text = response
                    .and_then(|r| r.get("error"))
                    .and_then(crate::event::extract_error_value)
                    .unwrap_or_else(|| "the response failed without a reason".to_owned());
                vec![Event::Error(format!("upstream error: {text}"))]
            }
            "error" => {
                self.done = true;
                let text = crate::event::extract_error_value(&payload)
                    .unwrap_or_else(|| payload.to_string());
                vec![Event::Error(format!("upstream error: {text}"))]
            }
            // Lifecycle and bookkeeping events (created, in_progress, output_item.*, *.done…).
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
