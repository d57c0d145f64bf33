//! Pure translation between a provider-neutral conversation and each LLM provider's wire format.
//!
//! Nothing here opens a socket. An [`Adapter`] turns a [`Conversation`] and the operator's
//! [`Generation`] settings into an [`UpstreamRequest`] (URL, headers, JSON body) and creates a
//! [`StreamDecoder`] per reply that turns the upstream's framed messages (SSE events or NDJSON
//! lines, see [`framing`]) into normalized [`Event`]s. The binary owns all I/O; adding a
//! provider means one new file here and one entry in [`providers::PROVIDERS`].

#![forbid(unsafe_code)]

pub mod anthropic;
pub mod azure;
pub mod cohere;
pub mod conversation;
pub mod event;
pub mod framing;
pub mod gemini;
pub mod generation;
pub mod ollama;
pub mod openai;
pub mod openai_responses;
pub mod presets;
pub mod providers;
pub mod sse;
pub mod tools;

pub use conversation::{Conversation, Image, Role, Turn};
pub use event::{Event, EventStream, FinishReason, Usage};
pub use framing::{Framing, Message};
pub use generation::{Effort, Generation, ReasoningRequest};
pub use tools::{Carried, ToolCall, ToolResult, ToolRound, ToolSpec};

use thiserror::Error;

/// Everything the binary needs to send one upstream request.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamRequest {
    /// Absolute URL, including any query string the provider needs.
    pub url: String,
    /// Provider headers (auth, versions) plus operator extras; `content-type` is implied JSON.
    pub headers: Vec<(String, String)>,
    /// The JSON body, always POSTed.
    pub body: serde_json::Value,
}

/// Why a request could not be built from a conversation.
#[derive(Debug, Error, PartialEq)]
pub enum AdapterError {
    /// The conversation holds something this provider cannot take (e.g. a non-image file).
    #[error("{0}")]
    Unsupported(String),
    /// The conversation has no turn to answer.
    #[error("the conversation has no message to answer")]
    Empty,
}

/// One provider's wire protocol. Object-safe so the binary can hold `Box<dyn Adapter>`.
pub trait Adapter: Send + Sync {
    /// Short provider name for logs and error messages ("openai", "anthropic", …).
    fn name(&self) -> &'static str;

    /// How the upstream frames its streamed response body.
    fn framing(&self) -> Framing;

    /// Builds the streaming request for this conversation with the operator's generation
    /// settings. `api_key` is `None` for keyless servers.
    fn build_request(
        &self,
        conversation: &Conversation,
        generation: &Generation,
        api_key: Option<&str>,
    ) -> Result<UpstreamRequest, AdapterError>;

    /// A fresh decoder holding the per-reply state.
    fn decoder(&self) -> Box<dyn StreamDecoder>;

    /// Turns a non-2xx response (status and body text) into one clear, human message.
    fn error_message(&self, status: u16, body: &str) -> String {
        event::describe_http_error(&format!("{} upstream", self.name()), status, body)
    }
}

/// Per-reply decoder: framed upstream messages in, normalized events out.
pub trait StreamDecoder: Send {
    /// Decodes one framed message into zero or more events.
    fn decode(&mut self, message: &Message) -> Vec<Event>;

    /// Called when the upstream body ends. Reports a stream that stopped without its proper
    /// ending as an [`Event::Error`]; returns nothing when the stream had already finished.
    fn end(&mut self) -> Vec<Event>;
}
