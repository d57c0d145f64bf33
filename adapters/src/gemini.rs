//! Google Gemini API (`POST {base}/v1beta/models/{model}:streamGenerateContent?alt=sse`): every
//! SSE event is a whole `GenerateContentResponse`, and the stream ends with no marker of its own,
//! so a reply is complete only once a candidate reported its `finishReason`. Thought summaries
//! (asked for with `thinkingConfig.includeThoughts`) are parts marked `thought: true`.

use crate::anthropic::{alternating_messages, Piece};
use crate::{
    Adapter, AdapterError, Conversation, Event, FinishReason, Framing, Generation, Image, Message,
    Role, StreamDecoder, ToolCall, ToolRound, UpstreamRequest, Usage,
};
use serde_json::{json, Value};

/// Where the Gemini API lives when the operator gives no base URL.
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";
/// The environment variable conventionally holding the key.
pub const API_KEY_ENV: &str = "GEMINI_API_KEY";

/// `streamGenerateContent` against one base URL (the part before `/v1beta`).
#[derive(Debug, Clone)]
pub struct Gemini {
    pub base_url: String,
}

impl Gemini {
    pub fn new(base_url: impl Into<String>) -> Self {
        Gemini {
            base_url: base_url.into(),
        }
    }
}

impl Default for Gemini {
    fn default() -> Self {
        Gemini::new(DEFAULT_BASE_URL)
    }
}

/// The model as one URL path segment: Gemini's own `models/` prefix is accepted, and anything
/// outside the characters model names use is escaped so it cannot change the path or query.
fn model_segment(model: &str) -> String {
    let model = model.trim();
    let model = model.strip_prefix("models/").unwrap_or(model);
    let mut out = String::with_capacity(model.len());
    for byte in model.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A remote image's MIME type from its file extension: Gemini's `fileData` requires one.
fn mime_from_url(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let extension = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        _ => return None,
    })
}

fn image_part(image: &Image) -> Result<Value, AdapterError> {
    match image {
        Image::Inline { mime, base64 } => {
            Ok(json!({"inlineData": {"mimeType": mime, "data": base64}}))
        }
        Image::Url(url) => match mime_from_url(url) {
            Some(mime) => Ok(json!({"fileData": {"mimeType": mime, "fileUri": url}})),
            None => Err(AdapterError::Unsupported(format!(
                "gemini cannot tell the image type of {url} from its name; attach the image as a file instead"
            ))),
        },
    }
}

/// The `contents` array: strictly alternating `user`/`model` turns, starting with the user.
/// Tool rounds are sent only when tools are offered.
pub fn contents(conversation: &Conversation) -> Result<Vec<Value>, AdapterError> {
    let with_tools = !conversation.tools.is_empty();
    let mut out = Vec::new();
    for (role, pieces) in alternating_messages(&conversation.turns, with_tools) {
        let role = match role {
            Role::User => "user",
            Role::Assistant => "model",
        };
        let mut parts = Vec::new();
        for piece in &pieces {
            match piece {
                Piece::Text(text) => parts.push(json!({"text": text})),
                Piece::Image(image) => parts.push(image_part(image)?),
                Piece::Calls(round) => parts.extend(call_parts(round)),
                Piece::Results(round) => parts.extend(result_parts(round)),
            }
        }
        out.push(json!({"role": role, "parts": parts}));
    }
    Ok(out)
}

/// The id to echo: Gemini's own, never one this decoder invented (`call_<n>`), which the
/// API did not issue.
fn provider_id(id: &str) -> Option<&str> {
    let invented = id
        .strip_prefix("call_")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    (!id.is_empty() && !invented).then_some(id)
}

/// A round's model parts: its text, then each call with the signature it came with (Gemini 3
/// rejects a function call in history without it).
fn call_parts(round: &ToolRound) -> Vec<Value> {
    let mut parts = Vec::new();
    if !round.text.trim().is_empty() {
        parts.push(json!({"text": round.text}));
    }
    for call in &round.calls {
        let mut function_call = json!({
            "name": call.name,
            "args": crate::tools::arguments_object(&call.arguments),
        });
        if let Some(id) = provider_id(&call.id) {
            function_call["id"] = json!(id);
        }
        let mut part = json!({ "functionCall": function_call });
        if let Some(signature) = &call.signature {
            part["thoughtSignature"] = json!(signature);
        }
        parts.push(part);
    }
    parts
}

/// A round's results as `functionResponse` parts, matched by name (and id when Gemini gave one).
fn result_parts(round: &ToolRound) -> Vec<Value> {
    round
        .results
        .iter()
        .map(|result| {
            let key = if result.is_error { "error" } else { "result" };
            let mut response = json!({
                "name": result.name,
                "response": { key: result.content },
            });
            if let Some(id) = provider_id(&result.call_id) {
                response["id"] = json!(id);
            }
            json!({ "functionResponse": response })
        })
        .collect()
}

/// One `functionDeclarations` tool holding every offered tool. `parametersJsonSchema` takes
/// JSON Schema as MCP gives it; `parameters` would take only an OpenAPI subset.
fn tool_definitions(conversation: &Conversation) -> Value {
    let declarations: Vec<Value> = conversation
        .tools
        .iter()
        .map(|tool| {
            json!({
                "name": tool.name,
                "description": tool.description,
                "parametersJsonSchema": tool.parameters,
            })
        })
        .collect();
    json!([{ "functionDeclarations": declarations }])
}

impl Adapter for Gemini {
    fn name(&self) -> &'static str {
        "gemini"
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
        let model = model_segment(&generation.model);
        if model.is_empty() {
            return Err(AdapterError::Unsupported(
                "gemini needs a model name (e.g. gemini-2.5-flash)".into(),
            ));
        }
        let contents = contents(conversation)?;
        if contents.is_empty() {
            return Err(AdapterError::Empty);
        }
        let mut body = json!({ "contents": contents });
        if !conversation.tools.is_empty() {
            body["tools"] = tool_definitions(conversation);
        }
        if let Some(system) = conversation.system.as_deref() {
            // Gemini rejects empty text parts.
            if !system.trim().is_empty() {
                body["systemInstruction"] = json!({"parts": [{"text": system}]});
            }
        }
        let mut config = serde_json::Map::new();
        if let Some(t) = generation.temperature {
            config.insert("temperature".into(), json!(t));
        }
        if let Some(max) = generation.max_tokens {
            config.insert("maxOutputTokens".into(), json!(max));
        }
        let mut thinking = serde_json::Map::new();
        if generation.reasoning.stream_thoughts {
            thinking.insert("includeThoughts".into(), json!(true));
        }
        if let Some(budget) = generation.reasoning.budget_tokens {
            thinking.insert("thinkingBudget".into(), json!(budget));
        }
        if !thinking.is_empty() {
            config.insert("thinkingConfig".into(), Value::Object(thinking));
        }
        if !config.is_empty() {
            body["generationConfig"] = Value::Object(config);
        }
        let auth = api_key.map(|key| ("x-goog-api-key", key.to_owned()));
        let headers = generation.request_headers(auth, &[]);
        Ok(UpstreamRequest {
            url: format!(
                "{}/v1beta/models/{model}:streamGenerateContent?alt=sse",
                self.base_url.trim_end_matches('/')
            ),
            headers,
            body,
        })
    }

    fn decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(GenerateDecoder::default())
    }
}

/// Decodes `data: {GenerateContentResponse}` events; the stream simply stops when done.
#[derive(Debug, Default)]
pub struct GenerateDecoder {
    /// Set by an error or a block: anything after is ignored, `end()` is satisfied.
    done: bool,
    /// Set by the first `finishReason`: the reply is complete.
    finished: bool,
    /// The latest `usageMetadata`; Gemini repeats it, growing, on every chunk.
    usage: Option<Usage>,
    /// What was last reported, so the final count is sent once, after the finish.
    reported: Option<Usage>,
    /// Function calls seen so far: they number invented ids and make a stop a tool stop.
    calls: usize,
}

/// Largest function call arguments accepted (serialized), like the other adapters' cap.
const MAX_ARGUMENTS_BYTES: usize = 1024 * 1024;

/// What a blocking finish or block reason means, for the user.
fn block_description(reason: &str) -> Option<&'static str> {
    Some(match reason {
        "SAFETY" => "unsafe content",
        "RECITATION" => "recitation of existing material",
        "BLOCKLIST" => "a blocked term",
        "PROHIBITED_CONTENT" => "prohibited content",
        "SPII" => "sensitive personal information",
        "IMAGE_SAFETY" => "an unsafe image",
        _ => return None,
    })
}

/// `SAFETY: unsafe content, HARM_CATEGORY_…` with the categories the provider flagged.
fn block_explanation(reason: &str, description: &str, holder: Option<&Value>) -> String {
    let ratings: &[Value] = holder
        .and_then(|h| h.get("safetyRatings"))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let category = |r: &Value| r.get("category").and_then(Value::as_str).map(str::to_owned);
    let mut flagged: Vec<String> = ratings
        .iter()
        .filter(|r| r.get("blocked").and_then(Value::as_bool) == Some(true))
        .filter_map(category)
        .collect();
    if flagged.is_empty() {
        flagged = ratings
            .iter()
            .filter(|r| r.get("probability").and_then(Value::as_str) == Some("HIGH"))
            .filter_map(category)
            .collect();
    }
    let mut why = format!("{reason}: {description}");
    for category in flagged {
        why.push_str(", ");
        why.push_str(&category);
    }
    why
}

fn usage_of(metadata: &Value) -> Usage {
    Usage {
        input_tokens: metadata.get("promptTokenCount").and_then(Value::as_u64),
        output_tokens: metadata.get("candidatesTokenCount").and_then(Value::as_u64),
        // Counted apart from `candidatesTokenCount`.
        reasoning_tokens: metadata.get("thoughtsTokenCount").and_then(Value::as_u64),
    }
}

/// An output part: text, a thought summary (never reply text) or an inline file.
fn part_event(part: &Value) -> Option<Event> {
    if let Some(text) = part.get("text").and_then(Value::as_str) {
        if text.is_empty() {
            return None;
        }
        if part.get("thought").and_then(Value::as_bool) == Some(true) {
            return Some(Event::Reasoning(text.to_owned()));
        }
        return Some(Event::TextDelta(text.to_owned()));
    }
    // The REST API answers camelCase; snake_case is accepted in case a proxy rewrites it.
    let inline = part.get("inlineData").or_else(|| part.get("inline_data"))?;
    let mime = inline
        .get("mimeType")
        .or_else(|| inline.get("mime_type"))
        .and_then(Value::as_str)?;
    let data = inline.get("data").and_then(Value::as_str)?;
    Some(Event::File {
        mime: mime.to_owned(),
        src: format!("data:{mime};base64,{data}"),
    })
}

impl GenerateDecoder {
    /// A `functionCall` part: Gemini sends each call whole, in one part.
    fn call(&mut self, call: &Value, part: &Value) -> Result<ToolCall, &'static str> {
        let arguments = match call.get("args") {
            Some(args @ Value::Object(map)) if !map.is_empty() => args.to_string(),
            _ => "{}".to_owned(),
        };
        if arguments.len() > MAX_ARGUMENTS_BYTES {
            return Err("tool call arguments exceed 1 MiB");
        }
        let id = call
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map_or_else(|| format!("call_{}", self.calls), str::to_owned);
        self.calls += 1;
        Ok(ToolCall {
            id,
            name: call
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            arguments,
            signature: part
                .get("thoughtSignature")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }

    fn chunk(&mut self, chunk: &Value, events: &mut Vec<Event>) {
        if self.done {
            return;
        }
        if let Some(error) = chunk.get("error") {
            self.done = true;
            let text = crate::event::extract_error_value(&json!({ "error": error }))
                .unwrap_or_else(|| error.to_string());
            events.push(Event::Error(format!("upstream error: {text}")));
            return;
        }
        if let Some(metadata) = chunk.get("usageMetadata").filter(|m| m.is_object()) {
            self.usage = Some(usage_of(metadata));
        }
        let feedback = chunk.get("promptFeedback");
        if let Some(reason) = feedback
            .and_then(|f| f.get("blockReason"))
            .and_then(Value::as_str)
        {
            self.done = true;
            let description = block_description(reason).unwrap_or("a content policy");
            events.push(Event::Error(format!(
                "the prompt was blocked by Gemini's safety filter ({})",
                block_explanation(reason, description, feedback)
            )));
            return;
        }
        // Only one candidate is ever requested.
        let candidate = chunk
            .get("candidates")
            .and_then(Value::as_array)
            .and_then(|c| c.first());
        if let Some(parts) = candidate
            .and_then(|c| c.pointer("/content/parts"))
            .and_then(Value::as_array)
        {
            for part in parts {
                if let Some(call) = part.get("functionCall") {
                    match self.call(call, part) {
                        Ok(call) => events.push(Event::ToolCall(call)),
                        Err(error) => {
                            self.done = true;
                            events.push(Event::Error(error.into()));
                            return;
                        }
                    }
                } else {
                    events.extend(part_event(part));
                }
            }
        }
        if let Some(reason) = candidate
            .and_then(|c| c.get("finishReason"))
            .and_then(Value::as_str)
        {
            if !self.finished {
                self.finished = true;
                if let Some(description) = block_description(reason) {
                    self.done = true;
                    events.push(Event::Error(format!(
                        "the reply was blocked by Gemini's safety filter ({})",
                        block_explanation(reason, description, candidate)
                    )));
                    return;
                }
                events.push(Event::Finish(match reason {
                    // Gemini reports a plain stop after calling functions.
                    "STOP" if self.calls > 0 => FinishReason::ToolUse,
                    "STOP" => FinishReason::Stop,
                    "MAX_TOKENS" => FinishReason::Length,
                    other => FinishReason::Other(other.to_owned()),
                }));
            }
        }
        if self.finished && self.usage.is_some() && self.usage != self.reported {
            self.reported = self.usage;
            events.extend(self.usage.map(Event::Usage));
        }
    }
}

impl StreamDecoder for GenerateDecoder {
    fn decode(&mut self, message: &Message) -> Vec<Event> {
        if self.done {
            return Vec::new();
        }
        let data = message.data.trim();
        if data.is_empty() {
            return Vec::new();
        }
        let value: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(_) => {
                self.done = true;
                return vec![Event::Error(format!(
                    "upstream sent unreadable stream data: {}",
                    data.chars().take(200).collect::<String>()
                ))];
            }
        };
        let mut events = Vec::new();
        // Errors sometimes arrive wrapped in a list.
        match &value {
            Value::Array(items) => {
                for item in items {
                    self.chunk(item, &mut events);
                }
            }
            other => self.chunk(other, &mut events),
        }
        events
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
