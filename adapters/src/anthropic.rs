//! Anthropic Messages API (`POST {base}/v1/messages`, `stream: true`): named SSE events from
//! `message_start` to `message_stop`, text in `content_block_delta` events of type `text_delta`,
//! thinking (when `thinking` is enabled) in `thinking` blocks of `thinking_delta` events.

use crate::{
    Adapter, AdapterError, Conversation, Event, FinishReason, Framing, Generation, Image, Message,
    Role, StreamDecoder, Turn, UpstreamRequest, Usage,
};
use serde_json::{json, Value};

/// Where Anthropic's API lives when the operator gives no base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The environment variable conventionally holding the key.
pub const API_KEY_ENV: &str = "ANTHROPIC_API_KEY";
/// The API version this adapter speaks (`anthropic-version` header).
pub const DEFAULT_VERSION: &str = "2023-06-01";
/// Anthropic rejects requests without `max_tokens`; this fits every current model's output limit.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The Messages API against one base URL (the part before `/v1/messages`).
#[derive(Debug, Clone)]
pub struct Anthropic {
    pub base_url: String,
    /// Sent as `anthropic-version`.
    pub version: String,
}

impl Anthropic {
    pub fn new(base_url: impl Into<String>) -> Self {
        Anthropic {
            base_url: base_url.into(),
            version: DEFAULT_VERSION.to_owned(),
        }
    }
}

impl Default for Anthropic {
    fn default() -> Self {
        Anthropic::new(DEFAULT_BASE_URL)
    }
}

/// One piece of a provider message, in the order the model should read it.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece<'a> {
    Text(String),
    Image(&'a Image),
}

/// The dialogue reshaped for providers that demand strict user/assistant alternation starting
/// with the user (Anthropic, Gemini): empty turns are skipped, leading assistant turns (a chat
/// widget's greeting) are dropped, and consecutive same-role turns become one message whose
/// adjacent texts are joined by a blank line. Each turn's images come before its text, the
/// order both providers recommend.
pub fn alternating_messages(turns: &[Turn]) -> Vec<(Role, Vec<Piece<'_>>)> {
    let mut messages: Vec<(Role, Vec<Piece<'_>>)> = Vec::new();
    for turn in turns {
        let has_text = !turn.text.trim().is_empty();
        if !has_text && turn.images.is_empty() {
            continue;
        }
        if messages.is_empty() && turn.role == Role::Assistant {
            continue;
        }
        if messages.last().map(|(role, _)| *role) != Some(turn.role) {
            messages.push((turn.role, Vec::new()));
        }
        let Some((_, pieces)) = messages.last_mut() else {
            continue;
        };
        pieces.extend(turn.images.iter().map(Piece::Image));
        if has_text {
            match pieces.last_mut() {
                Some(Piece::Text(previous)) => {
                    previous.push_str("\n\n");
                    previous.push_str(&turn.text);
                }
                _ => pieces.push(Piece::Text(turn.text.clone())),
            }
        }
    }
    messages
}

/// Anthropic's image source for one image; it only takes these four formats.
fn image_block(image: &Image) -> Result<Value, AdapterError> {
    match image {
        Image::Inline { mime, base64 } => {
            let media_type = match mime.to_ascii_lowercase().as_str() {
                "image/jpeg" | "image/jpg" => "image/jpeg",
                "image/png" => "image/png",
                "image/gif" => "image/gif",
                "image/webp" => "image/webp",
                _ => {
                    return Err(AdapterError::Unsupported(format!(
                        "anthropic accepts JPEG, PNG, GIF and WebP images, not {mime}"
                    )))
                }
            };
            Ok(json!({
                "type": "image",
                "source": {"type": "base64", "media_type": media_type, "data": base64},
            }))
        }
        Image::Url(url) => Ok(json!({
            "type": "image",
            "source": {"type": "url", "url": url},
        })),
    }
}

/// The `messages` array: plain string content when a message is only text, blocks otherwise.
pub fn messages(conversation: &Conversation) -> Result<Vec<Value>, AdapterError> {
    let mut out = Vec::new();
    for (role, pieces) in alternating_messages(&conversation.turns) {
        let role = match role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        let content = match pieces.as_slice() {
            [Piece::Text(text)] => Value::String(text.clone()),
            _ => Value::Array(
                pieces
                    .iter()
                    .map(|piece| match piece {
                        Piece::Text(text) => Ok(json!({"type": "text", "text": text})),
                        Piece::Image(image) => image_block(image),
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        out.push(json!({"role": role, "content": content}));
    }
    Ok(out)
}

impl Adapter for Anthropic {
    fn name(&self) -> &'static str {
        "anthropic"
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
        let messages = messages(conversation)?;
        // Nothing left to answer once empty turns and a leading greeting are gone.
        if messages.is_empty() {
            return Err(AdapterError::Empty);
        }
        let mut body = json!({
            "model": generation.model,
            "max_tokens": generation.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            "stream": true,
            "messages": messages,
        });
        if let Some(system) = conversation.system.as_deref() {
            // An empty system prompt is an API error, and means nothing anyway.
            if !system.trim().is_empty() {
                body["system"] = json!(system);
            }
        }
        if let Some(t) = generation.temperature {
            body["temperature"] = json!(t);
        }
        // The budget counts within `max_tokens`; the config checks it is below.
        if let Some(budget) = generation.reasoning.budget_tokens {
            body["thinking"] = json!({"type": "enabled", "budget_tokens": budget});
        }
        let auth = api_key.map(|key| ("x-api-key", key.to_owned()));
        let headers =
            generation.request_headers(auth, &[("anthropic-version", self.version.as_str())]);
        Ok(UpstreamRequest {
            url: format!("{}/v1/messages", self.base_url.trim_end_matches('/')),
            headers,
            body,
        })
    }

    fn decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(MessagesDecoder::default())
    }
}

/// Decodes the Messages event stream until `message_stop`.
#[derive(Debug, Default)]
pub struct MessagesDecoder {
    /// Set by `message_stop` or an `error` event: anything after is ignored, `end()` is satisfied.
    done: bool,
    /// Set by the first `stop_reason`, so the reply gets exactly one `Finish`.
    finished: bool,
    /// From `message_start`: the input side is only reported there.
    input_tokens: Option<u64>,
}

fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        // No tools are offered, so `tool_use` can only mean the turn is over.
        "end_turn" | "stop_sequence" | "tool_use" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "refusal" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

/// All prompt tokens: Anthropic counts cache reads and writes apart from `input_tokens`.
fn input_tokens(usage: &Value) -> Option<u64> {
    let base = usage.get("input_tokens").and_then(Value::as_u64)?;
    let cached: u64 = ["cache_creation_input_tokens", "cache_read_input_tokens"]
        .iter()
        .filter_map(|field| usage.get(field).and_then(Value::as_u64))
        .sum();
    Some(base.saturating_add(cached))
}

fn text_event(text: Option<&str>) -> Vec<Event> {
    match text {
        Some(text) if !text.is_empty() => vec![Event::TextDelta(text.to_owned())],
        _ => Vec::new(),
    }
}

fn thinking_event(text: Option<&str>) -> Vec<Event> {
    match text {
        Some(text) if !text.is_empty() => vec![Event::Reasoning(text.to_owned())],
        _ => Vec::new(),
    }
}

impl StreamDecoder for MessagesDecoder {
    fn decode(&mut self, message: &Message) -> Vec<Event> {
        if self.done {
            return Vec::new();
        }
        let data = message.data.trim();
        if data.is_empty() {
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
        // The data repeats the SSE event name as `type`; either will do.
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(message.event.as_str());
        match kind {
            "message_start" => {
                self.input_tokens = event
                    .pointer("/message/usage")
                    .and_then(input_tokens)
                    .or(self.input_tokens);
                Vec::new()
            }
            "content_block_start" => {
                let block = event.get("content_block");
                let field = |name: &str| block.and_then(|b| b.get(name)).and_then(Value::as_str);
                match field("type") {
                    Some("text") => text_event(field("text")),
                    Some("thinking") => thinking_event(field("thinking")),
                    // `redacted_thinking` is encrypted: nothing a person can read.
                    _ => Vec::new(),
                }
            }
            "content_block_delta" => {
                // Signature, tool-input and citation deltas are neither answer nor thinking;
                // the signature only matters when thinking is sent back, which it never is.
                let delta = event.get("delta");
                let field = |name: &str| delta.and_then(|d| d.get(name)).and_then(Value::as_str);
                match field("type") {
                    Some("text_delta") => text_event(field("text")),
                    Some("thinking_delta") => thinking_event(field("thinking")),
                    _ => Vec::new(),
                }
            }
            "message_delta" => {
                let mut events = Vec::new();
                if let Some(reason) = event.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    if !self.finished {
                        self.finished = true;
                        events.push(Event::Finish(finish_reason(reason)));
                    }
                }
                if let Some(usage) = event.get("usage").filter(|u| u.is_object()) {
                    events.push(Event::Usage(Usage {
                        input_tokens: input_tokens(usage).or(self.input_tokens),
                        output_tokens: usage.get("output_tokens").and_then(Value::as_u64),
                        // Anthropic counts thinking within `output_tokens`, not apart.
                        reasoning_tokens: None,
                    }));
                }
                events
            }
            "message_stop" => {
                self.done = true;
                if self.finished {
                    Vec::new()
                } else {
                    self.finished = true;
                    vec![Event::Finish(FinishReason::Stop)]
                }
            }
            "error" => {
                self.done = true;
                let text = crate::event::extract_error_value(&event)
                    .filter(|t| !t.is_empty())
                    .or_else(|| {
                        event
                            .pointer("/error/type")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    })
                    .unwrap_or_else(|| data.chars().take(200).collect());
                vec![Event::Error(format!("upstream error: {text}"))]
            }
            // `ping`, `content_block_stop`, and event types added after this was written.
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
