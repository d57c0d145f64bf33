//! The provider table: every wire protocol the proxy speaks, as one entry each. The binary's
//! command line, its configuration, readiness probe, provider tests and the fuzz target all
//! read this table, so adding a provider is one adapter file, one entry here, and fixtures.
//! OpenAI-compatible hosts are not providers but presets of `openai` (see [`crate::presets`]).

use crate::anthropic::Anthropic;
use crate::azure::AzureOpenAi;
use crate::cohere::Cohere;
use crate::gemini::Gemini;
use crate::ollama::Ollama;
use crate::openai::OpenAiChat;
use crate::openai_responses::OpenAiResponses;
use crate::Adapter;
use std::sync::Arc;

/// One provider: how the operator names it, where it lives by default, and how to build it.
#[derive(Clone, Copy)]
pub struct Provider {
    /// Subcommand, metric label and [`Adapter::name`].
    pub name: &'static str,
    /// One line for `--help`.
    pub summary: &'static str,
    /// API root used without `--base-url`; `None` when each user has their own (Azure).
    pub default_base_url: Option<&'static str>,
    /// Variable conventionally holding the key; `None` for servers that usually need none.
    pub default_key_env: Option<&'static str>,
    /// The header that carries the key (`authorization` means `Bearer <key>`).
    pub key_header: &'static str,
    /// What the adapter appends to the base URL; a base URL that already ends in it is a
    /// configuration mistake worth catching.
    pub endpoint: &'static str,
    /// Tails a `--base-url` must not end with: the endpoint, or the part of it the proxy
    /// appends itself (`…/v1` for Anthropic's `/v1/messages`), which would be doubled.
    pub base_url_tails: &'static [&'static str],
    /// `--help` of `--model` when the provider reads it as something else (Azure's deployment).
    pub model_help: Option<&'static str>,
    /// Takes `--api-version`, with this default (Azure).
    pub api_version: Option<&'static str>,
    /// Takes `--preset NAME` (OpenAI-compatible hosts).
    pub presets: bool,
    /// Builds the adapter for these settings.
    pub build: fn(&Settings) -> Arc<dyn Adapter>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .finish()
    }
}

/// What an operator configured for one provider.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// API root without a trailing slash.
    pub base_url: String,
    /// `--api-version`, for providers that take one.
    pub api_version: Option<String>,
}

/// Every provider, in the order `--help` lists them.
pub const PROVIDERS: &[Provider] = &[
    Provider {
        name: "openai",
        summary: "OpenAI Chat Completions, or any OpenAI-compatible server (see --preset)",
        default_base_url: Some("https://api.openai.com/v1"),
        default_key_env: Some("OPENAI_API_KEY"),
        key_header: "authorization",
        endpoint: "/chat/completions",
        base_url_tails: &["/chat/completions", "/completions"],
        model_help: None,
        api_version: None,
        presets: true,
        build: |s| Arc::new(OpenAiChat::new(s.base_url.clone())),
    },
    Provider {
        name: "openai-responses",
        summary: "OpenAI Responses API (`POST {base-url}/responses`)",
        default_base_url: Some(crate::openai_responses::DEFAULT_BASE_URL),
        default_key_env: Some(crate::openai_responses::API_KEY_ENV),
        key_header: "authorization",
        endpoint: "/responses",
        base_url_tails: &["/responses"],
        model_help: None,
        api_version: None,
        presets: false,
        build: |s| Arc::new(OpenAiResponses::new(s.base_url.clone())),
    },
    Provider {
        name: "anthropic",
        summary: "Anthropic Messages API (`POST {base-url}/v1/messages`)",
        default_base_url: Some(crate::anthropic::DEFAULT_BASE_URL),
        default_key_env: Some(crate::anthropic::API_KEY_ENV),
        key_header: "x-api-key",
        endpoint: "/v1/messages",
        base_url_tails: &["/v1/messages", "/messages", "/v1"],
        model_help: None,
        api_version: None,
        presets: false,
        build: |s| Arc::new(Anthropic::new(s.base_url.clone())),
    },
    Provider {
        name: "gemini",
        summary: "Google Gemini (`POST {base-url}/v1beta/models/{model}:streamGenerateContent`)",
        default_base_url: Some(crate::gemini::DEFAULT_BASE_URL),
        default_key_env: Some(crate::gemini::API_KEY_ENV),
        key_header: "x-goog-api-key",
        endpoint: "/v1beta/models",
        base_url_tails: &["/models", "/v1beta", "/v1"],
        model_help: None,
        api_version: None,
        presets: false,
        build: |s| Arc::new(Gemini::new(s.base_url.clone())),
    },
    Provider {
        name: "ollama",
        summary: "Ollama's native API (`POST {base-url}/api/chat`, newline-delimited JSON)",
        default_base_url: Some(crate::ollama::DEFAULT_BASE_URL),
        default_key_env: None,
        key_header: "authorization",
        endpoint: "/api/chat",
        base_url_tails: &["/api/chat", "/api"],
        model_help: None,
        api_version: None,
        presets: false,
        build: |s| Arc::new(Ollama::new(s.base_url.clone())),
    },
    Provider {
        name: "cohere",
        summary: "Cohere Chat v2 (`POST {base-url}/v2/chat`)",
        default_base_url: Some(crate::cohere::DEFAULT_BASE_URL),
        default_key_env: Some(crate::cohere::API_KEY_ENV),
        key_header: "authorization",
        endpoint: "/v2/chat",
        base_url_tails: &["/v2/chat", "/chat", "/v2"],
        model_help: None,
        api_version: None,
        presets: false,
        build: |s| Arc::new(Cohere::new(s.base_url.clone())),
    },
    Provider {
        name: "azure",
        summary: "Azure OpenAI (`POST {base-url}/openai/deployments/{model}/chat/completions`)",
        default_base_url: None,
        default_key_env: Some(crate::azure::API_KEY_ENV),
        key_header: "api-key",
        endpoint: "/openai/deployments",
        base_url_tails: &["/chat/completions", "/deployments", "/openai"],
        model_help: Some("Deployment name (Azure routes by deployment, not model)"),
        api_version: Some(crate::azure::DEFAULT_API_VERSION),
        presets: false,
        build: |s| {
            let adapter = AzureOpenAi::new(s.base_url.clone());
            Arc::new(match &s.api_version {
                Some(version) => adapter.with_api_version(version.clone()),
                None => adapter,
            })
        },
    },
];

/// The provider of this name.
pub fn find(name: &str) -> Option<&'static Provider> {
    PROVIDERS.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Conversation, Generation, Turn};

    #[test]
    fn every_entry_builds_its_own_adapter_which_calls_its_endpoint_with_its_key_header() {
        for provider in PROVIDERS {
            let settings = Settings {
                base_url: "http://127.0.0.1:9".into(),
                api_version: provider.api_version.map(str::to_owned),
            };
            let adapter = (provider.build)(&settings);
            assert_eq!(adapter.name(), provider.name);
            let conversation = Conversation {
                turns: vec![Turn::user("hi")],
                ..Default::default()
            };
            let generation = Generation {
                model: "m".into(),
                ..Default::default()
            };
            let request = adapter
                .build_request(&conversation, &generation, Some("the-key"))
                .expect("request");
            assert!(
                request
                    .url
                    .starts_with(&format!("http://127.0.0.1:9{}", provider.endpoint)),
                "{}: {}",
                provider.name,
                request.url
            );
            let key_header = request
                .headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(provider.key_header))
                .map(|(_, value)| value.as_str());
            let expected = if provider.key_header == "authorization" {
                "Bearer the-key"
            } else {
                "the-key"
            };
            assert_eq!(key_header, Some(expected), "{}", provider.name);
        }
    }

    #[test]
    fn names_are_unique_and_found() {
        for (i, provider) in PROVIDERS.iter().enumerate() {
            assert!(PROVIDERS[..i].iter().all(|p| p.name != provider.name));
            assert_eq!(find(provider.name).map(|p| p.name), Some(provider.name));
        }
        assert!(find("nope").is_none());
    }
}
