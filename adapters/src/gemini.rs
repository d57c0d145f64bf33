//! Google Gemini API (`POST {base}/v1beta/models/{model}:streamGenerateContent?alt=sse`): every
//! SSE event is a whole `GenerateContentResponse`, and the stream ends with no marker of its own,
//! so a reply is complete only once a candidate reported its `finishReason`. Thought summaries
//! (asked for with `thinkingConfig.includeThoughts`) are parts marked `thought: true`.

use crate::anthropic::{alternating_messages, Piece};
use crate::{
    Adapter, AdapterError, Conversation, Event, FinishReason, Framing, Generation, Image, Message,
    Role, StreamDecoder, UpstreamRequest, Usage,
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
pub fn contents(conversation: &Conversation) -> Result<Vec<Value>, AdapterError> {
    let mut out = Vec::new();
    for (role, pieces) in alternating_messages(&conversation.turns) {
        let role = match role {
            Role::User => "user",
            Role::Assistant => "model",
        };
        let parts = pieces
            .iter()
            .map(|piece| match piece {
                Piece::Text(text) => Ok(json!({"text": text})),
                Piece::Image(image) => image_part(image),
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.push(json!({"role": role, "parts": parts}));
    }
    Ok(out)
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
}

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
            events.extend(parts.iter().filter_map(part_event));
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
