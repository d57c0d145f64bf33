//! OpenAI Responses API (`POST {base}/responses`, `stream: true`): OpenAI's newer endpoint, also
//! served by some compatible hosts. Its stream is typed SSE events (`response.output_text.delta`,
//! …) that end with `response.completed`, `response.incomplete` or `response.failed`; there is no
//! `[DONE]` sentinel. A reasoning model's thinking arrives, when a summary is asked for, as
//! `response.reasoning_summary_text.delta` events (open-weight servers may stream the raw
//! `response.reasoning_text.delta` instead).

use crate::{
    Adapter, AdapterError, Conversation, Event, FinishReason, Framing, Generation, Message, Role,
    StreamDecoder, ToolCall, ToolRound, UpstreamRequest, Usage,
};
use serde_json::{json, Value};

/// OpenAI's own base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// The environment variable conventionally holding the key.
pub const API_KEY_ENV: &str = "OPENAI_API_KEY";

/// [`Adapter::name`], also the tag of the carried items this adapter sends back.
const ADAPTER_NAME: &str = "openai-responses";

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
/// as `output_text`, the only content type the API accepts for that role. When tools are
/// offered, an assistant turn's tool rounds come first as output items.
pub fn responses_input(conversation: &Conversation) -> Vec<Value> {
    let with_tools = !conversation.tools.is_empty();
    let mut input = Vec::new();
    for turn in &conversation.turns {
        match turn.role {
            Role::User => {
                let mut parts = Vec::with_capacity(turn.images.len() + 1);
                if !turn.text.is_empty() || turn.images.is_empty() {
                    parts.push(json!({"type": "input_text", "text": turn.text}));
                }
                for image in &turn.images {
                    parts.push(json!({"type": "input_image", "image_url": image.to_url()}));
                }
                input.push(json!({"role": "user", "content": parts}));
            }
            Role::Assistant if with_tools && !turn.tool_rounds.is_empty() => {
                for round in &turn.tool_rounds {
                    input.extend(round_items(round));
                }
                // The loop's turn in progress has no text yet: no empty message for it.
                if !turn.text.is_empty() {
                    input.push(assistant_message(&turn.text));
                }
            }
            // Images the assistant produced earlier cannot be replayed as assistant content
            // (no such part type exists); their text still gives the model its context.
            Role::Assistant => input.push(assistant_message(&turn.text)),
        }
    }
    input
}

fn assistant_message(text: &str) -> Value {
    json!({
        "role": "assistant",
        "content": [{"type": "output_text", "text": text}],
    })
}

/// One round as the output items the model produced and their outputs: reasoning items first
/// (verbatim: a reasoning item must precede the item it led to), the round's text, the calls,
/// then one `function_call_output` per call.
fn round_items(round: &ToolRound) -> Vec<Value> {
    let mut items: Vec<Value> = round.carried_for(ADAPTER_NAME).cloned().collect();
    if !round.text.is_empty() {
        items.push(assistant_message(&round.text));
    }
    items.extend(round.calls.iter().map(|call| {
        json!({
            "type": "function_call",
            "call_id": call.id,
            "name": call.name,
            "arguments": call.arguments,
        })
    }));
    // No error flag exists: the output text already says what went wrong.
    items.extend(round.results.iter().map(|result| {
        json!({
            "type": "function_call_output",
            "call_id": result.call_id,
            "output": result.content,
        })
    }));
    items
}

/// The `tools` array. `strict: false` because MCP schemas rarely meet strict mode's rules
/// (every property required, no additional properties).
fn tool_definitions(conversation: &Conversation) -> Vec<Value> {
    conversation
        .tools
        .iter()
        .map(|tool| {
            json!({
                "type": "function",
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters,
                "strict": false,
            })
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
    if !conversation.tools.is_empty() {
        body["tools"] = Value::Array(tool_definitions(conversation));
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
        ADAPTER_NAME
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
    /// Function calls whose arguments are still arriving.
    open: Vec<OpenCall>,
    /// `call_id`s of the calls emitted, so `response.completed` adds only missed ones.
    emitted: Vec<String>,
    /// Reasoning items completed before any call: sent back only if the model calls a tool.
    pending_carried: Vec<Value>,
}

/// Longest function call arguments assembled before the reply is refused.
const MAX_ARGUMENTS_BYTES: usize = 1024 * 1024;
/// Calls assembled at once: items stream one after another, so this only bounds a broken
/// upstream.
const MAX_OPEN_CALLS: usize = 64;
const TOO_LONG: &str = "tool call arguments exceed 1 MiB";

/// A `function_call` output item between `output_item.added` and `output_item.done`.
#[derive(Debug)]
struct OpenCall {
    item_id: String,
    output_index: Option<u64>,
    arguments: String,
}

fn text_field<'a>(value: &'a Value, name: &str) -> &'a str {
    value.get(name).and_then(Value::as_str).unwrap_or_default()
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
    fn item_added(&mut self, payload: &Value) -> Vec<Event> {
        let Some(item) = payload.get("item") else {
            return Vec::new();
        };
        if text_field(item, "type") != "function_call" {
            return Vec::new();
        }
        if self.open.len() >= MAX_OPEN_CALLS {
            self.done = true;
            return vec![Event::Error(
                "upstream opened too many function calls at once".into(),
            )];
        }
        self.open.push(OpenCall {
            item_id: text_field(item, "id").to_owned(),
            output_index: payload.get("output_index").and_then(Value::as_u64),
            arguments: String::new(),
        });
        Vec::new()
    }

    /// The open call an arguments event is about: by item id, else by output index.
    fn open_call(&mut self, payload: &Value) -> Option<&mut OpenCall> {
        let item_id = text_field(payload, "item_id");
        let output_index = payload.get("output_index").and_then(Value::as_u64);
        self.open.iter_mut().find(|call| {
            (!item_id.is_empty() && call.item_id == item_id)
                || (item_id.is_empty()
                    && output_index.is_some()
                    && call.output_index == output_index)
        })
    }

    /// `.delta` appends a piece; `.done` gives the whole text, which wins.
    fn arguments(&mut self, payload: &Value, whole: bool) -> Vec<Event> {
        let Some(call) = self.open_call(payload) else {
            return Vec::new();
        };
        let (kept, piece) = if whole {
            match payload.get("arguments").and_then(Value::as_str) {
                Some(text) => (0, text),
                None => return Vec::new(),
            }
        } else {
            (call.arguments.len(), text_field(payload, "delta"))
        };
        if kept.saturating_add(piece.len()) > MAX_ARGUMENTS_BYTES {
            self.done = true;
            return vec![Event::Error(TOO_LONG.into())];
        }
        call.arguments.truncate(kept);
        call.arguments.push_str(piece);
        Vec::new()
    }

    /// A finished output item: a call is complete now; a reasoning item waits until a call
    /// shows it must go back (a reply without calls needs none of it).
    fn item_done(&mut self, payload: &Value) -> Vec<Event> {
        let Some(item) = payload.get("item") else {
            return Vec::new();
        };
        match text_field(item, "type") {
            "function_call" => {
                let item_id = text_field(item, "id");
                let assembled = self
                    .open
                    .iter()
                    .position(|call| call.item_id == item_id)
                    .map(|i| self.open.swap_remove(i).arguments)
                    .unwrap_or_default();
                self.call(item, assembled)
            }
            "reasoning" if self.emitted.is_empty() => {
                self.pending_carried.push(item.clone());
                Vec::new()
            }
            "reasoning" => vec![Event::Carried(item.clone())],
            _ => Vec::new(),
        }
    }

    /// Emits one complete call (after the reasoning that led to it), once per `call_id`.
    fn call(&mut self, item: &Value, assembled: String) -> Vec<Event> {
        let mut arguments = match item.get("arguments").and_then(Value::as_str) {
            Some(text) if !text.is_empty() => text.to_owned(),
            _ => assembled,
        };
        if arguments.len() > MAX_ARGUMENTS_BYTES {
            self.done = true;
            return vec![Event::Error(TOO_LONG.into())];
        }
        if arguments.trim().is_empty() {
            arguments = "{}".to_owned();
        }
        let id = match text_field(item, "call_id") {
            "" => format!("call_{}", self.emitted.len()),
            id => id.to_owned(),
        };
        if self.emitted.contains(&id) {
            return Vec::new();
        }
        let mut events: Vec<Event> = self.pending_carried.drain(..).map(Event::Carried).collect();
        self.emitted.push(id.clone());
        events.push(Event::ToolCall(ToolCall {
            id,
            name: text_field(item, "name").to_owned(),
            arguments,
            signature: None,
        }));
        events
    }

    /// `response.completed`: calls only listed in the final output (a server that skipped
    /// `output_item.done`), the usage, and a tool stop when the model called any.
    fn completed(&mut self, response: Option<&Value>) -> Vec<Event> {
        let mut events = Vec::new();
        let output = response
            .and_then(|r| r.get("output"))
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        for item in output {
            if text_field(item, "type") == "function_call" && !self.done {
                events.extend(self.call(item, String::new()));
            }
        }
        if self.done {
            return events;
        }
        self.done = true;
        events.extend(usage_of(response));
        let reason = if self.emitted.is_empty() {
            FinishReason::Stop
        } else {
            FinishReason::ToolUse
        };
        events.push(Event::Finish(reason));
        events
    }

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
            "response.output_item.added" => self.item_added(&payload),
            "response.function_call_arguments.delta" => self.arguments(&payload, false),
            "response.function_call_arguments.done" => self.arguments(&payload, true),
            "response.output_item.done" => self.item_done(&payload),
            "response.completed" => self.completed(response),
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
            // Lifecycle and bookkeeping events (created, in_progress, *.done…).
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
