//! Anthropic Messages API (`POST {base}/v1/messages`, `stream: true`): named SSE events from
//! `message_start` to `message_stop`, text in `content_block_delta` events of type `text_delta`,
//! thinking (when `thinking` is enabled) in `thinking` blocks of `thinking_delta` events.

use crate::{
    Adapter, AdapterError, Conversation, Event, FinishReason, Framing, Generation, Image, Message,
    Role, StreamDecoder, ToolCall, ToolRound, Turn, UpstreamRequest, Usage,
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

/// [`Adapter::name`], also the tag of the carried items this adapter sends back.
const ADAPTER_NAME: &str = "anthropic";

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
    /// The assistant side of a tool round: what the model said, carried and called.
    Calls(&'a ToolRound),
    /// The user side of a tool round: the results of its calls.
    Results(&'a ToolRound),
}

/// The dialogue reshaped for providers that demand strict user/assistant alternation starting
/// with the user (Anthropic, Gemini): empty turns are skipped, leading assistant turns (a chat
/// widget's greeting) are dropped, and consecutive same-role turns become one message whose
/// adjacent texts are joined by a blank line. Each turn's images come before its text, the
/// order both providers recommend. With `with_tools`, an assistant turn's tool rounds come
/// first, each as an assistant [`Piece::Calls`] then a user [`Piece::Results`]; without, they
/// are left out (providers reject tool history when no tools are defined).
pub fn alternating_messages(turns: &[Turn], with_tools: bool) -> Vec<(Role, Vec<Piece<'_>>)> {
    let mut messages: Vec<(Role, Vec<Piece<'_>>)> = Vec::new();
    for turn in turns {
        let rounds: &[ToolRound] = match turn.role {
            Role::Assistant if with_tools => &turn.tool_rounds,
            _ => &[],
        };
        // A round without calls has nothing to answer: the provider would refuse it.
        let rounds = rounds.iter().filter(|round| !round.calls.is_empty());
        let has_text = !turn.text.trim().is_empty();
        if !has_text && turn.images.is_empty() && rounds.clone().next().is_none() {
            continue;
        }
        if messages.is_empty() && turn.role == Role::Assistant {
            continue;
        }
        for round in rounds {
            push_piece(&mut messages, Role::Assistant, Piece::Calls(round));
            push_piece(&mut messages, Role::User, Piece::Results(round));
        }
        for image in &turn.images {
            push_piece(&mut messages, turn.role, Piece::Image(image));
        }
        if has_text {
            push_piece(&mut messages, turn.role, Piece::Text(turn.text.clone()));
        }
    }
    messages
}

/// Appends `piece` to the last message when it has `role`, else opens a new message; a text
/// following a text joins it after a blank line.
fn push_piece<'a>(messages: &mut Vec<(Role, Vec<Piece<'a>>)>, role: Role, piece: Piece<'a>) {
    match messages.last_mut() {
        Some((last, pieces)) if *last == role => match (pieces.last_mut(), piece) {
            (Some(Piece::Text(previous)), Piece::Text(text)) => {
                previous.push_str("\n\n");
                previous.push_str(&text);
            }
            (_, piece) => pieces.push(piece),
        },
        _ => messages.push((role, vec![piece])),
    }
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
/// Tool rounds are sent only when tools are offered.
pub fn messages(conversation: &Conversation) -> Result<Vec<Value>, AdapterError> {
    let with_tools = !conversation.tools.is_empty();
    let mut out = Vec::new();
    for (role, pieces) in alternating_messages(&conversation.turns, with_tools) {
        let role = match role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        let content = match pieces.as_slice() {
            [Piece::Text(text)] => Value::String(text.clone()),
            _ => {
                let mut blocks = Vec::new();
                for piece in &pieces {
                    match piece {
                        Piece::Text(text) => blocks.push(json!({"type": "text", "text": text})),
                        Piece::Image(image) => blocks.push(image_block(image)?),
                        Piece::Calls(round) => blocks.extend(call_blocks(round)),
                        Piece::Results(round) => blocks.extend(result_blocks(round)),
                    }
                }
                Value::Array(blocks)
            }
        };
        out.push(json!({"role": role, "content": content}));
    }
    Ok(out)
}

/// A round's assistant content: its signed thinking first (the API verifies it is unmodified
/// and in place), then its text, then one `tool_use` block per call.
fn call_blocks(round: &ToolRound) -> Vec<Value> {
    let mut blocks: Vec<Value> = round.carried_for(ADAPTER_NAME).cloned().collect();
    if !round.text.trim().is_empty() {
        blocks.push(json!({"type": "text", "text": round.text}));
    }
    blocks.extend(round.calls.iter().map(|call| {
        json!({
            "type": "tool_use",
            "id": call.id,
            "name": call.name,
            "input": crate::tools::arguments_object(&call.arguments),
        })
    }));
    blocks
}

/// A round's results, one `tool_result` per call in call order (they open the user message,
/// where the API wants them).
fn result_blocks(round: &ToolRound) -> Vec<Value> {
    round
        .results
        .iter()
        .map(|result| {
            let mut block = json!({
                "type": "tool_result",
                "tool_use_id": result.call_id,
                "content": result.content,
            });
            if result.is_error {
                block["is_error"] = json!(true);
            }
            block
        })
        .collect()
}

/// The `tools` array from the offered tools (MCP's input schema is already JSON Schema).
fn tool_definitions(conversation: &Conversation) -> Vec<Value> {
    conversation
        .tools
        .iter()
        .map(|tool| {
            json!({
                "name": tool.name,
                "description": tool.description,
                "input_schema": tool.parameters,
            })
        })
        .collect()
}

impl Adapter for Anthropic {
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
        if !conversation.tools.is_empty() {
            body["tools"] = Value::Array(tool_definitions(conversation));
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

/// Longest tool input assembled from `input_json_delta` pieces before the reply is refused.
const MAX_ARGUMENTS_BYTES: usize = 1024 * 1024;
/// Blocks assembled at once: the API streams them one after another, so this only bounds a
/// broken upstream.
const MAX_OPEN_BLOCKS: usize = 64;
/// Longest thinking block kept to send back: thinking is bounded by `max_tokens`, far below.
const MAX_CARRIED_BYTES: usize = 4 * 1024 * 1024;

/// Decodes the Messages event stream until `message_stop`.
#[derive(Debug, Default)]
pub struct MessagesDecoder {
    /// Set by `message_stop` or an `error` event: anything after is ignored, `end()` is satisfied.
    done: bool,
    /// Set by the first `stop_reason`, so the reply gets exactly one `Finish`.
    finished: bool,
    /// From `message_start`: the input side is only reported there.
    input_tokens: Option<u64>,
    /// Blocks being assembled, by their `index` (parallel calls are separate blocks).
    open: Vec<(u64, Block)>,
    /// Tool calls emitted so far: they name invented ids and make a plain stop a tool stop.
    calls: usize,
    /// Thinking blocks completed before any call: sent back only if the model calls a tool.
    pending_carried: Vec<Value>,
}

/// A content block whose pieces are still arriving.
#[derive(Debug)]
enum Block {
    ToolUse {
        id: Option<String>,
        name: String,
        input: String,
    },
    Thinking {
        thinking: String,
        signature: String,
    },
    Redacted {
        data: Value,
    },
}

impl Block {
    /// The block a `content_block_start` opens, when it is one to assemble.
    fn start(block: &Value) -> Option<Block> {
        let text = |name: &str| block.get(name).and_then(Value::as_str).unwrap_or_default();
        match block.get("type").and_then(Value::as_str)? {
            "tool_use" => Some(Block::ToolUse {
                id: block.get("id").and_then(Value::as_str).map(str::to_owned),
                name: text("name").to_owned(),
                // The start carries `input: {}`; the input itself arrives as JSON pieces.
                input: String::new(),
            }),
            "thinking" => Some(Block::Thinking {
                thinking: text("thinking").to_owned(),
                signature: text("signature").to_owned(),
            }),
            "redacted_thinking" => Some(Block::Redacted {
                data: block.get("data").cloned().unwrap_or(Value::Null),
            }),
            _ => None,
        }
    }

    /// Adds a delta's piece; `Err` names what outgrew its bound.
    fn extend(&mut self, delta: &Value) -> Result<(), &'static str> {
        let piece = |name: &str| delta.get(name).and_then(Value::as_str).unwrap_or_default();
        let (target, piece, limit, what) = match (self, delta.get("type").and_then(Value::as_str)) {
            (Block::ToolUse { input, .. }, Some("input_json_delta")) => (
                input,
                piece("partial_json"),
                MAX_ARGUMENTS_BYTES,
                "tool call arguments exceed 1 MiB",
            ),
            (Block::Thinking { thinking, .. }, Some("thinking_delta")) => (
                thinking,
                piece("thinking"),
                MAX_CARRIED_BYTES,
                "a thinking block exceeds 4 MiB",
            ),
            (Block::Thinking { signature, .. }, Some("signature_delta")) => (
                signature,
                piece("signature"),
                MAX_CARRIED_BYTES,
                "a thinking signature exceeds 4 MiB",
            ),
            _ => return Ok(()),
        };
        if target.len().saturating_add(piece.len()) > limit {
            return Err(what);
        }
        target.push_str(piece);
        Ok(())
    }
}

impl MessagesDecoder {
    fn block_start(&mut self, event: &Value) -> Vec<Event> {
        let block = event.get("content_block");
        let field = |name: &str| block.and_then(|b| b.get(name)).and_then(Value::as_str);
        if let (Some(index), Some(open)) = (
            event.get("index").and_then(Value::as_u64),
            block.and_then(Block::start),
        ) {
            self.open.retain(|(i, _)| *i != index);
            if self.open.len() >= MAX_OPEN_BLOCKS {
                self.done = true;
                return vec![Event::Error(
                    "upstream opened too many content blocks at once".into(),
                )];
            }
            self.open.push((index, open));
        }
        match field("type") {
            Some("text") => text_event(field("text")),
            Some("thinking") => thinking_event(field("thinking")),
            // `redacted_thinking` is encrypted: nothing a person can read.
            _ => Vec::new(),
        }
    }

    fn block_delta(&mut self, event: &Value) -> Vec<Event> {
        let delta = event.get("delta");
        if let (Some(index), Some(delta)) = (event.get("index").and_then(Value::as_u64), delta) {
            let block = self.open.iter_mut().find(|(i, _)| *i == index);
            if let Some((_, block)) = block {
                if let Err(what) = block.extend(delta) {
                    self.done = true;
                    return vec![Event::Error(what.to_owned())];
                }
            }
        }
        // Signature, tool-input and citation deltas are neither answer nor thinking.
        let field = |name: &str| delta.and_then(|d| d.get(name)).and_then(Value::as_str);
        match field("type") {
            Some("text_delta") => text_event(field("text")),
            Some("thinking_delta") => thinking_event(field("thinking")),
            _ => Vec::new(),
        }
    }

    /// A finished block: a call is complete now; thinking waits until a call shows it must go
    /// back (a reply without calls needs none of it).
    fn block_stop(&mut self, event: &Value) -> Vec<Event> {
        let Some(index) = event.get("index").and_then(Value::as_u64) else {
            return Vec::new();
        };
        let Some(position) = self.open.iter().position(|(i, _)| *i == index) else {
            return Vec::new();
        };
        let (_, block) = self.open.swap_remove(position);
        match block {
            Block::ToolUse { id, name, input } => {
                let mut events: Vec<Event> =
                    self.pending_carried.drain(..).map(Event::Carried).collect();
                let id = id
                    .filter(|id| !id.is_empty())
                    .unwrap_or_else(|| format!("call_{}", self.calls));
                self.calls += 1;
                let arguments = if input.trim().is_empty() {
                    "{}".to_owned()
                } else {
                    input
                };
                events.push(Event::ToolCall(ToolCall {
                    id,
                    name,
                    arguments,
                    signature: None,
                }));
                events
            }
            Block::Thinking {
                thinking,
                signature,
            } => self
                .carry(json!({"type": "thinking", "thinking": thinking, "signature": signature})),
            Block::Redacted { data } => {
                self.carry(json!({"type": "redacted_thinking", "data": data}))
            }
        }
    }

    /// Thinking after a call (interleaved thinking) goes out at once, earlier thinking waits.
    fn carry(&mut self, item: Value) -> Vec<Event> {
        if self.calls > 0 {
            vec![Event::Carried(item)]
        } else {
            self.pending_carried.push(item);
            Vec::new()
        }
    }

    fn finish_reason(&self, reason: &str) -> FinishReason {
        match reason {
            "tool_use" => FinishReason::ToolUse,
            "end_turn" | "stop_sequence" if self.calls > 0 => FinishReason::ToolUse,
            "end_turn" | "stop_sequence" => FinishReason::Stop,
            "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
            "refusal" => FinishReason::ContentFilter,
            other => FinishReason::Other(other.to_owned()),
        }
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
            "content_block_start" => self.block_start(&event),
            "content_block_delta" => self.block_delta(&event),
            "content_block_stop" => self.block_stop(&event),
            "message_delta" => {
                let mut events = Vec::new();
                if let Some(reason) = event.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    if !self.finished {
                        self.finished = true;
                        events.push(Event::Finish(self.finish_reason(reason)));
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
                    vec![Event::Finish(self.finish_reason("end_turn"))]
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
            // `ping` and event types added after this was written.
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
