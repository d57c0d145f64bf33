//! OpenAI Chat Completions (`POST {base}/chat/completions`, `stream: true`), spoken by OpenAI and
//! by every OpenAI-compatible server (vLLM, llama.cpp, Groq, OpenRouter, Mistral, DeepSeek…).

use crate::{
    Adapter, AdapterError, Conversation, Event, FinishReason, Framing, Generation, Message, Role,
    StreamDecoder, UpstreamRequest, Usage,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::borrow::Cow;

/// Chat Completions against one base URL (the part before `/chat/completions`).
#[derive(Debug, Clone)]
pub struct OpenAiChat {
    pub base_url: String,
    /// Ask for the usage chunk (`stream_options.include_usage`); see
    /// [`crate::presets::asks_for_usage`].
    pub asks_for_usage: bool,
}

impl OpenAiChat {
    pub fn new(base_url: impl Into<String>) -> Self {
        let base_url = base_url.into();
        OpenAiChat {
            asks_for_usage: crate::presets::asks_for_usage(&base_url),
            base_url,
        }
    }
}

/// Asks a Chat Completions stream for its final usage chunk: without it OpenAI (and most
/// compatible servers, Azure included) report no token counts when streaming.
pub fn ask_for_usage(body: &mut Value) {
    body["stream_options"] = json!({"include_usage": true});
}

/// The `messages` array: system prompt first, images as `image_url` content parts.
pub fn chat_messages(conversation: &Conversation) -> Vec<Value> {
    let mut messages = Vec::with_capacity(conversation.turns.len() + 1);
    if let Some(system) = &conversation.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    for turn in &conversation.turns {
        let role = match turn.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        let content = if turn.images.is_empty() {
            Value::String(turn.text.clone())
        } else {
            let mut parts = Vec::with_capacity(turn.images.len() + 1);
            if !turn.text.is_empty() {
                parts.push(json!({"type": "text", "text": turn.text}));
            }
            for image in &turn.images {
                parts.push(json!({"type": "image_url", "image_url": {"url": image.to_url()}}));
            }
            Value::Array(parts)
        };
        messages.push(json!({"role": role, "content": content}));
    }
    messages
}

/// The streaming Chat Completions body shared by OpenAI-shaped providers.
pub fn chat_body(
    conversation: &Conversation,
    generation: &Generation,
    include_model: bool,
) -> Value {
    let mut body = json!({
        "messages": chat_messages(conversation),
        "stream": true,
    });
    if include_model {
        body["model"] = json!(generation.model);
    }
    if let Some(t) = generation.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(max) = generation.max_tokens {
        body["max_tokens"] = json!(max);
    }
    if let Some(effort) = generation.reasoning.effort {
        body["reasoning_effort"] = json!(effort.as_str());
    }
    body
}

impl Adapter for OpenAiChat {
    fn name(&self) -> &'static str {
        "openai"
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
        let mut body = chat_body(conversation, generation, true);
        if self.asks_for_usage {
            ask_for_usage(&mut body);
        }
        Ok(UpstreamRequest {
            url: format!("{}/chat/completions", self.base_url.trim_end_matches('/')),
            headers,
            body,
        })
    }

    fn decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(ChatDecoder::default())
    }
}

/// Decodes `data: {chunk}` events until `data: [DONE]`.
#[derive(Debug, Default)]
pub struct ChatDecoder {
    /// Set by `[DONE]`: anything after it is ignored, and `end()` is satisfied.
    done: bool,
    /// Set by a `finish_reason`; lenient servers that omit `[DONE]` still end cleanly.
    finished: bool,
}

fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "stop" | "tool_calls" | "function_call" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "content_filter" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

impl ChatDecoder {
    fn typed_events(&mut self, chunk: TypedChunk<'_>) -> Vec<Event> {
        let mut events = Vec::new();
        if let Some(choice) = chunk.choices.as_deref().and_then(<[TypedChoice]>::first) {
            if let Some(delta) = &choice.delta {
                // Thinking comes first in a chunk's order of meaning; servers send one field.
                for thinking in [&delta.reasoning_content, &delta.reasoning]
                    .into_iter()
                    .flatten()
                {
                    if !thinking.is_empty() {
                        events.push(Event::Reasoning(thinking.clone().into_owned()));
                    }
                }
                for text in [&delta.content, &delta.refusal].into_iter().flatten() {
                    if !text.is_empty() {
                        events.push(Event::TextDelta(text.clone().into_owned()));
                    }
                }
            }
            if let Some(reason) = &choice.finish_reason {
                if !self.finished {
                    self.finished = true;
                    events.push(Event::Finish(finish_reason(reason)));
                }
            }
        }
        if let Some(usage) = chunk.usage {
            events.push(Event::Usage(Usage {
                input_tokens: usage.prompt_tokens,
                output_tokens: usage.completion_tokens,
                reasoning_tokens: usage
                    .completion_tokens_details
                    .and_then(|details| details.reasoning_tokens),
            }));
        }
        events
    }

    fn value_events(&mut self, data: &str) -> Vec<Event> {
        let chunk: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(_) => {
                self.done = true;
                return vec![Event::Error(format!(
                    "upstream sent unreadable stream data: {}",
                    data.chars().take(200).collect::<String>()
                ))];
            }
        };
        if let Some(error) = chunk.get("error") {
            self.done = true;
            let text = crate::event::extract_error_value(&json!({ "error": error }))
                .unwrap_or_else(|| error.to_string());
            return vec![Event::Error(format!("upstream error: {text}"))];
        }
        let mut events = Vec::new();
        if let Some(choice) = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
        {
            let delta = choice.get("delta");
            for field in ["reasoning_content", "reasoning"] {
                if let Some(text) = delta.and_then(|d| d.get(field)).and_then(Value::as_str) {
                    if !text.is_empty() {
                        events.push(Event::Reasoning(text.to_owned()));
                    }
                }
            }
            for field in ["content", "refusal"] {
                if let Some(text) = delta.and_then(|d| d.get(field)).and_then(Value::as_str) {
                    if !text.is_empty() {
                        events.push(Event::TextDelta(text.to_owned()));
                    }
                }
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                if !self.finished {
                    self.finished = true;
                    events.push(Event::Finish(finish_reason(reason)));
                }
            }
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            events.push(Event::Usage(Usage {
                input_tokens: usage.get("prompt_tokens").and_then(Value::as_u64),
                output_tokens: usage.get("completion_tokens").and_then(Value::as_u64),
                reasoning_tokens: usage
                    .pointer("/completion_tokens_details/reasoning_tokens")
                    .and_then(Value::as_u64),
            }));
        }
        events
    }
}

/// The shape of an ordinary chunk, borrowing its strings from the event where it can.
#[derive(Deserialize)]
struct TypedChunk<'a> {
    #[serde(borrow)]
    choices: Option<Vec<TypedChoice<'a>>>,
    usage: Option<TypedUsage>,
    error: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct TypedChoice<'a> {
    #[serde(borrow)]
    delta: Option<TypedDelta<'a>>,
    #[serde(borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct TypedDelta<'a> {
    /// DeepSeek, vLLM, llama.cpp, LiteLLM: the thinking, streamed before the answer.
    #[serde(borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    /// OpenRouter (and newer vLLM) name the same thing `reasoning`.
    #[serde(borrow)]
    reasoning: Option<Cow<'a, str>>,
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    refusal: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct TypedUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    completion_tokens_details: Option<TypedTokenDetails>,
}

#[derive(Deserialize, Clone, Copy)]
struct TypedTokenDetails {
    /// Of `completion_tokens`, the ones spent thinking.
    reasoning_tokens: Option<u64>,
}

impl StreamDecoder for ChatDecoder {
    fn decode(&mut self, message: &Message) -> Vec<Event> {
        if self.done {
            return Vec::new();
        }
        let data = message.data.trim();
        if data.is_empty() {
            return Vec::new();
        }
        if data == "[DONE]" {
            self.done = true;
            if self.finished {
                return Vec::new();
            }
            self.finished = true;
            return vec![Event::Finish(FinishReason::Stop)];
        }
        // The common chunk parses into borrowed, typed fields; anything unusual (errors, odd
        // types) takes the general path below, which accepts exactly what it always did.
        if let Ok(chunk) = serde_json::from_str::<TypedChunk<'_>>(data) {
            if chunk.error.is_none() {
                return self.typed_events(chunk);
            }
        }
        self.value_events(data)
    }

    fn end(&mut self) -> Vec<Event> {
        if self.done || self.finished {
            Vec::new()
        } else {
            self.done = true;
            vec![Event::Error(
                "the upstream stream ended before the reply was complete".into(),
            )]
        }
    }
}
