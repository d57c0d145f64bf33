//! What the upstream side is configured with: the provider to reply from, its key, and the
//! timeouts and retries of its requests. Built and validated by `crate::config`.

use crate::upstream::breaker::Breaker;
use crate::upstream::redact::Secrets;
use deepchat_adapters::providers::Provider;
use deepchat_adapters::{Adapter, Generation};
use std::sync::Arc;
use std::time::Duration;

/// An API key that never prints itself.
#[derive(Clone)]
pub struct ApiKey(pub(crate) String);

impl ApiKey {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// An HTTP upstream: the adapter speaking its wire format plus what every request carries.
#[derive(Clone)]
pub struct HttpUpstream {
    /// The table entry it was built from.
    pub provider: &'static Provider,
    /// API root without a trailing slash: where readiness probes.
    pub base_url: String,
    pub adapter: Arc<dyn Adapter>,
    pub api_key: Option<ApiKey>,
    /// Names the upstream in error messages: the adapter and the host it calls
    /// ("openai upstream at api.groq.com"), so a failure says which service failed.
    pub label: String,
    /// The key and every `--header` value, redacted from anything the upstream sends back.
    pub secrets: Secrets,
    /// Model, sampling, token limit and `--header`s: the same for every reply, so held here
    /// once and handed to the adapter with each conversation.
    pub generation: Generation,
    /// Skips this upstream in a fallback chain after repeated failures (shared by clones).
    pub breaker: Arc<Breaker>,
}

/// The built-in offline provider.
#[derive(Debug, Clone)]
pub struct Demo {
    pub token_interval: Duration,
}

#[derive(Clone)]
pub enum ProviderConfig {
    Http(HttpUpstream),
    Demo(Demo),
}

impl ProviderConfig {
    /// The provider's name and model, as logs and metric labels give them.
    pub fn name_and_model(&self) -> (&'static str, &str) {
        match self {
            ProviderConfig::Http(http) => (http.adapter.name(), http.generation.model.as_str()),
            ProviderConfig::Demo(_) => ("demo", "demo"),
        }
    }
}

/// Timeouts and retries for upstream requests.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamPolicy {
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub chunk_timeout: Duration,
    pub reply_timeout: Duration,
    pub retries: u32,
    /// HTTP/2 without negotiation (`--upstream-http2`).
    pub http2_only: bool,
    /// Most replies sharing one HTTP/2 connection.
    pub streams_per_connection: usize,
}
