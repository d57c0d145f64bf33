//! Ollama's native chat API (`POST {base}/api/chat`, `stream: true`). The reply is
//! newline-delimited JSON: one `{"message":{…},"done":false}` object per chunk, then a final
//! `"done":true` object with `done_reason` and token counts. An error after the stream started
//! arrives as a `{"error":"…"}` line (the HTTP status is already 200). With `think` set, a
//! thinking model streams its thinking in `message.thinking`, apart from `message.content`.
//!
//! Ollama also serves Chat Completions at `{base}/v1`; use [`crate::openai::OpenAiChat`] for that.

use crate::openai::{ARGUMENTS_TOO_LONG, MAX_ARGUMENTS_BYTES, MAX_CALLS};
use crate::{
    Adapter, AdapterError, Conversation, Event, FinishReason, Framing, Generation, Image, Message,
    Role, StreamDecoder, ToolCall, ToolRound, UpstreamRequest, Usage,
};
use serde_json::{json, Value};

/// Where a local Ollama listens by default.
pub const DEFAULT_BASE_URL: &str = "http://localhost:11434";

/// Native Ollama against one server (the part before `/api/chat`).
#[derive(Debug, Clone)]
pub struct Ollama {
    pub base_url: String,
}

impl Ollama {
    pub fn new(base_url: impl Into<String>) -> Self {
        Ollama {
            base_url: base_url.into(),
        }
    }
}

impl Default for Ollama {
    fn default() -> Self {
        Ollama::new(DEFAULT_BASE_URL)
    }
}

/// The `messages` array: system prompt first, images as bare base64 strings.
pub fn ollama_messages(conversation: &Conversation) -> Result<Vec<Value>, AdapterError> {
    let mut messages = Vec::with_capacity(conversation.turns.len() + 1);
    if let Some(system) = &conversation.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    // Rounds only go with tools: without them the model has no use for tool history.
    let with_tools = !conversation.tools.is_empty();
    for turn in &conversation.turns {
        let role = match turn.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        if with_tools && !turn.tool_rounds.is_empty() {
            for round in &turn.tool_rounds {
                push_round(round, &mut messages);
            }
            // The loop's turn in progress has no final text yet: no empty message for it.
            if turn.text.is_empty() && turn.images.is_empty() {
                continue;
            }
        }
        let mut message = json!({"role": role, "content": turn.text});
        if !turn.images.is_empty() {
            let mut images = Vec::with_capacity(turn.images.len());
            for image in &turn.images {
                match image {
                    // Ollama infers the format from the bytes, so the MIME type is not sent.
                    Image::Inline { base64, .. } => images.push(Value::String(base64.clone())),
                    // The server never fetches URLs; sending one would fail as bad base64.
                    Image::Url(url) => {
                        return Err(AdapterError::Unsupported(format!(
                            "Ollama's native API only accepts uploaded images, not image links \
                             ({url}); attach the file instead"
                        )))
                    }
                }
            }
            message["images"] = Value::Array(images);
        }
        messages.push(message);
    }
    Ok(messages)
}

/// One round as Ollama takes it: the assistant message with its calls (arguments as objects,
/// and the thinking it carried), then one `tool` message per result, matched by tool name.
/// Ollama has no error flag; the content already says what failed.
fn push_round(round: &ToolRound, messages: &mut Vec<Value>) {
    let calls: Vec<Value> = round
        .calls
        .iter()
        .map(|call| {
            json!({"function": {
                "name": call.name,
                "arguments": crate::tools::arguments_object(&call.arguments),
            }})
        })
        .collect();
    let mut assistant = json!({"role": "assistant", "content": round.text});
    if !calls.is_empty() {
        assistant["tool_calls"] = Value::Array(calls);
    }
    for item in round.carried_for("ollama") {
        if let (Some(thinking), Some(fields)) = (item.get("thinking"), assistant.as_object_mut()) {
            fields.insert("thinking".into(), thinking.clone());
        }
    }
    messages.push(assistant);
    for result in &round.results {
        messages.push(json!({
            "role": "tool",
            "content": result.content,
            "tool_name": result.name,
        }));
    }
}

impl Adapter for Ollama {
    fn name(&self) -> &'static str {
        "ollama"
    }

    fn framing(&self) -> Framing {
        Framing::Ndjson
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
        // Local Ollama needs no key; one is only sent for servers behind an auth proxy or
        // ollama.com.
        let headers = generation.request_headers(crate::generation::bearer(api_key), &[]);
        let mut body = json!({
            "model": generation.model,
            "messages": ollama_messages(conversation)?,
            "stream": true,
        });
        if !conversation.tools.is_empty() {
            body["tools"] = crate::openai::function_tools(&conversation.tools);
        }
        let mut options = serde_json::Map::new();
        if let Some(t) = generation.temperature {
            options.insert("temperature".into(), json!(t));
        }
        if let Some(max) = generation.max_tokens {
            options.insert("num_predict".into(), json!(max));
        }
        if !options.is_empty() {
            body["options"] = Value::Object(options);
        }
        // A named effort is a level for models that take one (gpt-oss); others use their
        // default. Plain `true` asks any thinking model to stream its thinking apart.
        if let Some(effort) = generation.reasoning.effort {
            body["think"] = json!(effort.as_str());
        } else if generation.reasoning.stream_thoughts {
            body["think"] = json!(true);
        }
        Ok(UpstreamRequest {
            url: format!("{}/api/chat", self.base_url.trim_end_matches('/')),
            headers,
            body,
        })
    }

    fn decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(OllamaDecoder::default())
    }
}

/// Decodes NDJSON chat chunks until the `done: true` one.
#[derive(Debug)]
pub struct OllamaDecoder {
    /// Set by the final chunk or an error: later lines are ignored and `end()` is satisfied.
    done: bool,
    /// Complete calls seen so far, released before the finish.
    calls: Vec<ToolCall>,
    /// The reply's thinking, carried back with its calls so the model keeps its train of
    /// thought (Ollama takes it as the assistant message's `thinking`); `None` once too long.
    thinking: Option<String>,
}

impl Default for OllamaDecoder {
    fn default() -> Self {
        OllamaDecoder {
            done: false,
            calls: Vec::new(),
            thinking: Some(String::new()),
        }
    }
}

fn finish_reason(reason: Option<&str>) -> FinishReason {
    match reason {
        // Older servers send no `done_reason` at all; `done: true` alone is a normal end.
        Some("stop") | None => FinishReason::Stop,
        Some("length") => FinishReason::Length,
        Some(other) => FinishReason::Other(other.to_owned()),
    }
}

impl OllamaDecoder {
    /// Takes the chunk's calls, each already whole; the error message when a bound is crossed.
    fn add_calls(&mut self, calls: &[Value]) -> Result<(), &'static str> {
        for call in calls {
            if self.calls.len() >= MAX_CALLS {
                return Err("the model asked for too many tool calls at once");
            }
            let function = call.get("function");
            let arguments = match function.and_then(|f| f.get("arguments")) {
                Some(Value::String(text)) if !text.is_empty() => text.clone(),
                Some(value @ Value::Object(map)) if !map.is_empty() => value.to_string(),
                _ => "{}".to_owned(),
            };
            if arguments.len() > MAX_ARGUMENTS_BYTES {
                return Err(ARGUMENTS_TOO_LONG);
            }
            // Ollama gives no id (newer versions may): the loop needs one to match results.
            let id = call
                .get("id")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .map_or_else(|| format!("call_{}", self.calls.len()), str::to_owned);
            let name = function
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            self.calls.push(ToolCall {
                id,
                name: name.to_owned(),
                arguments,
                signature: None,
            });
        }
        Ok(())
    }

    fn keep_thinking(&mut self, piece: &str) {
        if let Some(thinking) = &mut self.thinking {
            if thinking.len() + piece.len() > MAX_ARGUMENTS_BYTES {
                self.thinking = None;
            } else {
                thinking.push_str(piece);
            }
        }
    }

    /// The round's end: calls (and their thinking) before a plain stop make it a tool-use
    /// finish; any other end drops them, as they belong to a cut reply.
    fn finish(&mut self, reason: FinishReason, events: &mut Vec<Event>) -> FinishReason {
        let calls = std::mem::take(&mut self.calls);
        if calls.is_empty() || reason != FinishReason::Stop {
            return reason;
        }
        if let Some(thinking) = self.thinking.take().filter(|t| !t.is_empty()) {
            events.push(Event::Carried(json!({ "thinking": thinking })));
        }
        events.extend(calls.into_iter().map(Event::ToolCall));
        FinishReason::ToolUse
    }
}

impl StreamDecoder for OllamaDecoder {
    fn decode(&mut self, message: &Message) -> Vec<Event> {
        if self.done {
            return Vec::new();
        }
        let data = message.data.trim();
        if data.is_empty() {
            return Vec::new();
        }
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
        if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
            self.done = true;
            let text =
                crate::event::extract_error_value(&chunk).unwrap_or_else(|| error.to_string());
            return vec![Event::Error(format!("upstream error: {text}"))];
        }
        let mut events = Vec::new();
        let field = |name: &str| {
            chunk
                .get("message")
                .and_then(|m| m.get(name))
                .and_then(Value::as_str)
                .filter(|text| !text.is_empty())
        };
        if let Some(thinking) = field("thinking") {
            self.keep_thinking(thinking);
            events.push(Event::Reasoning(thinking.to_owned()));
        }
        if let Some(text) = field("content") {
            events.push(Event::TextDelta(text.to_owned()));
        }
        if let Some(calls) = chunk
            .get("message")
            .and_then(|m| m.get("tool_calls"))
            .and_then(Value::as_array)
        {
            if let Err(message) = self.add_calls(calls) {
                self.done = true;
                self.calls.clear();
                events.push(Event::Error(message.to_owned()));
                return events;
            }
        }
        if chunk.get("done").and_then(Value::as_bool) == Some(true) {
            self.done = true;
            let reason = chunk.get("done_reason").and_then(Value::as_str);
            let reason = self.finish(finish_reason(reason), &mut events);
            let input = chunk.get("prompt_eval_count").and_then(Value::as_u64);
            let output = chunk.get("eval_count").and_then(Value::as_u64);
            if input.is_some() || output.is_some() {
                events.push(Event::Usage(Usage {
                    input_tokens: input,
                    output_tokens: output,
                    // `eval_count` includes the thinking; Ollama reports no split.
                    reasoning_tokens: None,
                }));
            }
            events.push(Event::Finish(reason));
        }
        events
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
