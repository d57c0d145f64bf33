//! OpenAI Chat Completions (`POST {base}/chat/completions`, `stream: true`), spoken by OpenAI and
//! by every OpenAI-compatible server (vLLM, llama.cpp, Groq, OpenRouter, Mistral, DeepSeek…).

use crate::{
    Adapter, AdapterError, Conversation, Event, FinishReason, Framing, Generation, Message, Role,
    StreamDecoder, ToolCall, ToolRound, ToolSpec, UpstreamRequest, Usage,
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

/// The `messages` array: system prompt first, images as `image_url` content parts, and (when
/// tools are offered) each assistant turn's tool rounds in OpenAI's shape.
pub fn chat_messages(conversation: &Conversation) -> Vec<Value> {
    chat_messages_with(conversation, openai_round)
}

/// Writes one tool round into `messages`: the provider's assistant message and its results.
pub type RoundWriter = fn(&ToolRound, &mut Vec<Value>);

/// [`chat_messages`] with a provider's own way of writing tool rounds (Cohere's differs).
/// Rounds are only sent when tools are offered: providers refuse tool history without tools.
pub fn chat_messages_with(conversation: &Conversation, write_round: RoundWriter) -> Vec<Value> {
    let mut messages = Vec::with_capacity(conversation.turns.len() + 1);
    if let Some(system) = &conversation.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    let with_tools = !conversation.tools.is_empty();
    for turn in &conversation.turns {
        let role = match turn.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        if with_tools && !turn.tool_rounds.is_empty() {
            for round in &turn.tool_rounds {
                write_round(round, &mut messages);
            }
            // The loop's turn in progress has no final text yet: no empty message for it.
            if turn.text.is_empty() && turn.images.is_empty() {
                continue;
            }
        }
        messages.push(json!({"role": role, "content": turn_content(turn)}));
    }
    messages
}

fn turn_content(turn: &crate::Turn) -> Value {
    if turn.images.is_empty() {
        return Value::String(turn.text.clone());
    }
    let mut parts = Vec::with_capacity(turn.images.len() + 1);
    if !turn.text.is_empty() {
        parts.push(json!({"type": "text", "text": turn.text}));
    }
    for image in &turn.images {
        parts.push(json!({"type": "image_url", "image_url": {"url": image.to_url()}}));
    }
    Value::Array(parts)
}

/// `tool_calls` entries of an assistant message: arguments go back as the text the model wrote.
pub fn chat_tool_calls(calls: &[ToolCall]) -> Vec<Value> {
    calls
        .iter()
        .map(|call| {
            json!({
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            })
        })
        .collect()
}

/// OpenAI's round: the assistant message with its calls (content `null` without text), then one
/// `tool` message per result. OpenAI has no error flag; the content already says what failed.
fn openai_round(round: &ToolRound, messages: &mut Vec<Value>) {
    let content = if round.text.is_empty() {
        Value::Null
    } else {
        Value::String(round.text.clone())
    };
    let mut assistant = json!({"role": "assistant", "content": content});
    if !round.calls.is_empty() {
        assistant["tool_calls"] = Value::Array(chat_tool_calls(&round.calls));
    }
    messages.push(assistant);
    for result in &round.results {
        messages.push(json!({
            "role": "tool",
            "tool_call_id": result.call_id,
            "content": result.content,
        }));
    }
}

/// The `tools` array in the function format OpenAI, Azure, Ollama and Cohere v2 all take.
pub fn function_tools(tools: &[ToolSpec]) -> Value {
    Value::Array(
        tools
            .iter()
            .map(|tool| {
                json!({
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": tool.parameters,
                    },
                })
            })
            .collect(),
    )
}

/// The streaming Chat Completions body shared by OpenAI-shaped providers.
pub fn chat_body(
    conversation: &Conversation,
    generation: &Generation,
    include_model: bool,
) -> Value {
    chat_body_with(conversation, generation, include_model, openai_round)
}

/// [`chat_body`] with a provider's own tool-round shape; the offered tools go in `tools`.
pub fn chat_body_with(
    conversation: &Conversation,
    generation: &Generation,
    include_model: bool,
    write_round: RoundWriter,
) -> Value {
    let mut body = json!({
        "messages": chat_messages_with(conversation, write_round),
        "stream": true,
    });
    if !conversation.tools.is_empty() {
        body["tools"] = function_tools(&conversation.tools);
    }
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
    /// Tool calls being assembled from their pieces, released at the finish.
    calls: CallAssembler,
}

/// Most bytes of one call's assembled arguments: a model looping on its arguments must not
/// grow the proxy's memory without end.
pub(crate) const MAX_ARGUMENTS_BYTES: usize = 1 << 20;
/// Most calls one reply may assemble, for the same reason.
pub(crate) const MAX_CALLS: usize = 256;
pub(crate) const ARGUMENTS_TOO_LONG: &str = "tool call arguments exceed 1 MiB";

/// One streamed piece of a call: OpenAI sends id and name in the first piece and argument text
/// in the next ones; compatible servers may repeat id and name, or send it all at once.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct CallPiece<'a> {
    pub index: Option<u64>,
    #[serde(borrow)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub function: Option<CallPieceFunction<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct CallPieceFunction<'a> {
    #[serde(borrow)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub arguments: Option<Cow<'a, str>>,
}

impl<'a> CallPiece<'a> {
    /// The piece from any JSON shape, for the general path: odd fields are dropped, and an
    /// arguments object (some servers) is taken as its JSON text.
    pub(crate) fn from_value(value: &'a Value) -> Self {
        let function = value.get("function");
        let text = |v: Option<&'a Value>| v.and_then(Value::as_str).map(Cow::Borrowed);
        let arguments = function
            .and_then(|f| f.get("arguments"))
            .and_then(|a| match a {
                Value::String(text) => Some(Cow::Borrowed(text.as_str())),
                Value::Object(_) => Some(Cow::Owned(a.to_string())),
                _ => None,
            });
        CallPiece {
            index: value.get("index").and_then(Value::as_u64),
            id: text(value.get("id")),
            function: Some(CallPieceFunction {
                name: text(function.and_then(|f| f.get("name"))),
                arguments,
            }),
        }
    }
}

#[derive(Debug)]
struct PendingCall {
    index: u64,
    id: Option<String>,
    name: String,
    arguments: String,
}

/// Assembles calls from pieces keyed by their index, within [`MAX_CALLS`] and
/// [`MAX_ARGUMENTS_BYTES`].
#[derive(Debug, Default)]
pub(crate) struct CallAssembler {
    calls: Vec<PendingCall>,
}

impl CallAssembler {
    /// Adds one piece; the error message when it crosses a bound.
    pub(crate) fn add(&mut self, piece: &CallPiece<'_>) -> Result<(), &'static str> {
        let function = piece.function.as_ref();
        let name = function.and_then(|f| f.name.as_deref());
        let arguments = function.and_then(|f| f.arguments.as_deref()).unwrap_or("");
        let position = self.position(piece.index, piece.id.as_deref())?;
        let call = &mut self.calls[position];
        if call.id.is_none() {
            call.id = piece
                .id
                .as_deref()
                .filter(|id| !id.is_empty())
                .map(str::to_owned);
        }
        // Set once: servers that repeat the name in every piece must not get it doubled.
        if call.name.is_empty() {
            if let Some(name) = name {
                call.name.push_str(name);
            }
        }
        if call.arguments.len() + arguments.len() > MAX_ARGUMENTS_BYTES {
            return Err(ARGUMENTS_TOO_LONG);
        }
        call.arguments.push_str(arguments);
        Ok(())
    }

    /// Where a piece belongs. Without an index (some servers), a new id starts a new call and
    /// anything else continues the last one.
    fn position(&mut self, index: Option<u64>, id: Option<&str>) -> Result<usize, &'static str> {
        let index = match index {
            Some(index) => index,
            None => match self.calls.last() {
                Some(last) if id.is_none() || last.id.as_deref() == id => last.index,
                Some(_) => self.calls.iter().map(|c| c.index).max().unwrap_or(0) + 1,
                None => 0,
            },
        };
        if let Some(position) = self.calls.iter().position(|c| c.index == index) {
            return Ok(position);
        }
        if self.calls.len() >= MAX_CALLS {
            return Err("the model asked for too many tool calls at once");
        }
        self.calls.push(PendingCall {
            index,
            id: None,
            name: String::new(),
            arguments: String::new(),
        });
        Ok(self.calls.len() - 1)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The assembled calls as events, in index order, with ids invented where none came.
    pub(crate) fn take_events(&mut self) -> Vec<Event> {
        let mut calls = std::mem::take(&mut self.calls);
        calls.sort_by_key(|call| call.index);
        calls
            .into_iter()
            .enumerate()
            .map(|(n, call)| {
                Event::ToolCall(ToolCall {
                    id: call.id.unwrap_or_else(|| format!("call_{n}")),
                    name: call.name,
                    arguments: if call.arguments.is_empty() {
                        "{}".to_owned()
                    } else {
                        call.arguments
                    },
                    signature: None,
                })
            })
            .collect()
    }
}

fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "tool_calls" => FinishReason::ToolUse,
        // We never offer the legacy `functions`, so its reason is an ordinary end.
        "stop" | "function_call" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "content_filter" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

impl ChatDecoder {
    /// Ends the reply once: calls assembled by a normal end are released before the finish
    /// (a plain `stop` after calls means the model stopped for them); any other end drops them.
    fn finish(&mut self, reason: FinishReason, events: &mut Vec<Event>) {
        if self.finished {
            return;
        }
        self.finished = true;
        let reason = match reason {
            FinishReason::Stop | FinishReason::ToolUse if !self.calls.is_empty() => {
                events.extend(self.calls.take_events());
                FinishReason::ToolUse
            }
            other => {
                self.calls = CallAssembler::default();
                other
            }
        };
        events.push(Event::Finish(reason));
    }

    /// Adds call pieces; on a crossed bound the reply ends with that error.
    fn add_pieces<'a>(
        &mut self,
        pieces: impl IntoIterator<Item = CallPiece<'a>>,
        events: &mut Vec<Event>,
    ) {
        if self.finished {
            return;
        }
        for piece in pieces {
            if let Err(message) = self.calls.add(&piece) {
                self.done = true;
                self.calls = CallAssembler::default();
                events.push(Event::Error(message.to_owned()));
                return;
            }
        }
    }

    fn typed_events(&mut self, chunk: TypedChunk<'_>) -> Vec<Event> {
        let mut events = Vec::new();
        if let Some(mut choice) = chunk.choices.and_then(|choices| choices.into_iter().next()) {
            if let Some(delta) = &mut choice.delta {
                // Thinking comes first in a chunk's order of meaning; servers send one field.
                // Taken, not cloned: the text moves into its event (one copy less per token).
                for thinking in [delta.reasoning_content.take(), delta.reasoning.take()]
                    .into_iter()
                    .flatten()
                {
                    if !thinking.is_empty() {
                        events.push(Event::Reasoning(thinking.into_owned()));
                    }
                }
                for text in [delta.content.take(), delta.refusal.take()]
                    .into_iter()
                    .flatten()
                {
                    if !text.is_empty() {
                        events.push(Event::TextDelta(text.into_owned()));
                    }
                }
            }
            if let Some(pieces) = choice.delta.and_then(|delta| delta.tool_calls) {
                self.add_pieces(pieces, &mut events);
                if self.done {
                    return events;
                }
            }
            if let Some(reason) = &choice.finish_reason {
                self.finish(finish_reason(reason), &mut events);
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
            if let Some(pieces) = delta
                .and_then(|d| d.get("tool_calls"))
                .and_then(Value::as_array)
            {
                self.add_pieces(pieces.iter().map(CallPiece::from_value), &mut events);
                if self.done {
                    return events;
                }
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                self.finish(finish_reason(reason), &mut events);
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
    /// Pieces of tool calls; absent from text chunks, so the text path pays nothing for them.
    #[serde(borrow)]
    tool_calls: Option<Vec<CallPiece<'a>>>,
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
            let mut events = Vec::new();
            self.finish(FinishReason::Stop, &mut events);
            return events;
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
