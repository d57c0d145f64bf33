//! Azure OpenAI Chat Completions
//! (`POST {base}/openai/deployments/{deployment}/chat/completions?api-version=…`, `stream: true`).
//!
//! The wire format is OpenAI's, decoded by [`ChatDecoder`], with Azure's additions: the model is
//! chosen by the deployment in the URL (not the body), the key goes in an `api-key` header, and
//! the stream carries content-filter annotations. Annotation-only chunks (the leading
//! `prompt_filter_results` one, and the offset annotations of the asynchronous filter) have empty
//! or delta-less choices and produce nothing. A `finish_reason` of `content_filter` means Azure
//! withheld the rest of the reply; it becomes an [`Event::Error`] naming the flagged categories so
//! the user knows the answer was cut on purpose.

use crate::openai::{chat_body, ChatDecoder};
use crate::{
    Adapter, AdapterError, Conversation, Event, Framing, Generation, Message, StreamDecoder,
    UpstreamRequest,
};
use serde_json::Value;

/// The GA API version used when none is configured.
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

/// The environment variable conventionally holding the key.
pub const API_KEY_ENV: &str = "AZURE_OPENAI_API_KEY";

/// Azure OpenAI against one resource endpoint, e.g. `https://my-resource.openai.azure.com`.
/// The conversation's `model` is the deployment name.
#[derive(Debug, Clone)]
pub struct AzureOpenAi {
    pub base_url: String,
    pub api_version: String,
}

impl AzureOpenAi {
    pub fn new(base_url: impl Into<String>) -> Self {
        AzureOpenAi {
            base_url: base_url.into(),
            api_version: DEFAULT_API_VERSION.to_owned(),
        }
    }

    pub fn with_api_version(mut self, api_version: impl Into<String>) -> Self {
        self.api_version = api_version.into();
        self
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so a deployment name or API
/// version can never change the URL's structure.
fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl Adapter for AzureOpenAi {
    fn name(&self) -> &'static str {
        "azure"
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
        // Without a deployment the URL would silently point at a 404.
        if generation.model.trim().is_empty() {
            return Err(AdapterError::Unsupported(
                "Azure OpenAI needs the deployment name as the model".into(),
            ));
        }
        let auth = api_key.map(|key| ("api-key", key.to_owned()));
        let headers = generation.request_headers(auth, &[]);
        // Azure, like OpenAI, streams usage only when asked (API versions since 2024-09-01).
        let mut body = chat_body(conversation, generation, false);
        crate::openai::ask_for_usage(&mut body);
        Ok(UpstreamRequest {
            url: format!(
                "{}/openai/deployments/{}/chat/completions?api-version={}",
                self.base_url.trim_end_matches('/'),
                encode_component(&generation.model),
                encode_component(&self.api_version),
            ),
            headers,
            body,
        })
    }

    fn decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(AzureDecoder::default())
    }
}

/// [`ChatDecoder`] plus Azure's content-filter verdicts.
#[derive(Debug, Default)]
pub struct AzureDecoder {
    inner: ChatDecoder,
    /// Set by `[DONE]` or a content-filter stop: nothing after it counts.
    closed: bool,
    /// Set by a content-filter stop, which is reported as an error of its own.
    filtered: bool,
}

/// The categories Azure flagged when a chunk ends a choice with `content_filter`, or `None` when
/// the chunk is not such a verdict.
fn content_filter_verdict(data: &str) -> Option<Vec<String>> {
    // Cheap test first: every Azure chunk mentions `content_filter_results`, few are verdicts.
    if !data.contains("\"content_filter\"") {
        return None;
    }
    let chunk: Value = serde_json::from_str(data).ok()?;
    let choice = chunk
        .get("choices")?
        .as_array()?
        .iter()
        .find(|c| c.get("finish_reason").and_then(Value::as_str) == Some("content_filter"))?;
    let mut flagged = Vec::new();
    if let Some(results) = choice
        .get("content_filter_results")
        .and_then(Value::as_object)
    {
        for (category, verdict) in results {
            if verdict.get("filtered").and_then(Value::as_bool) == Some(true) {
                match verdict.get("severity").and_then(Value::as_str) {
                    Some(severity) => flagged.push(format!("{category}: {severity}")),
                    None => flagged.push(category.clone()),
                }
            }
        }
    }
    Some(flagged)
}

fn content_filter_message(flagged: &[String]) -> String {
    if flagged.is_empty() {
        "Azure OpenAI's content filter withheld the rest of this reply".to_owned()
    } else {
        format!(
            "Azure OpenAI's content filter withheld the rest of this reply (flagged: {})",
            flagged.join(", ")
        )
    }
}

impl StreamDecoder for AzureDecoder {
    fn decode(&mut self, message: &Message) -> Vec<Event> {
        if self.closed {
            return Vec::new();
        }
        let mut events = self.inner.decode(message);
        // `[DONE]` and upstream errors end the reply; the inner decoder ignores the rest too.
        if message.data.trim() == "[DONE]" || events.iter().any(|e| matches!(e, Event::Error(_))) {
            self.closed = true;
        } else if let Some(flagged) = content_filter_verdict(&message.data) {
            // The asynchronous filter may rule after a normal `stop`, so this is checked even
            // once the inner decoder has finished; the user must learn the reply was cut.
            self.closed = true;
            self.filtered = true;
            events.retain(|e| !matches!(e, Event::Finish(_)));
            events.push(Event::Error(content_filter_message(&flagged)));
        }
        events
    }

    fn end(&mut self) -> Vec<Event> {
        // A content-filter stop already told the user why the reply ended.
        if self.filtered {
            Vec::new()
        } else {
            self.inner.end()
        }
    }
}
