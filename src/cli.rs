//! Command-line flags (clap derive). Every flag also reads an environment variable so the proxy
//! can be configured entirely from a container or unit file; secrets are named, never passed.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;

/// Puts an LLM behind a Deep Chat web component: Deep Chat clients in, provider streams out.
#[derive(Debug, Parser)]
#[command(name = "deepchat-proxy", version, about, long_about = None)]
pub struct Cli {
    /// Address to listen on.
    #[arg(long, env = "DEEPCHAT_PROXY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Route where Deep Chat connects (WebSocket upgrade).
    #[arg(long, env = "DEEPCHAT_PROXY_PATH", default_value = "/chat")]
    pub path: String,

    /// Text of the frame that ends each streamed reply; must match the frontend's
    /// `stream: {simulation: "…"}`.
    #[arg(long, env = "DEEPCHAT_PROXY_STOP_KEY", default_value = "stop-key")]
    pub stop_key: String,

    /// System prompt sent before every conversation.
    #[arg(long, env = "DEEPCHAT_PROXY_SYSTEM_PROMPT")]
    pub system_prompt: Option<String>,

    /// Most messages of a conversation remembered per socket and sent upstream (oldest dropped).
    #[arg(long, env = "DEEPCHAT_PROXY_HISTORY_LIMIT", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub history_limit: u32,

    /// Largest request (WebSocket message) accepted from a browser, in bytes.
    #[arg(long, env = "DEEPCHAT_PROXY_MAX_REQUEST_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_request_bytes: usize,

    /// Seconds to wait for the upstream's response headers before giving up.
    #[arg(long, env = "DEEPCHAT_PROXY_UPSTREAM_TIMEOUT", default_value_t = 60)]
    pub upstream_timeout: u64,

    /// Seconds of upstream silence in the middle of a reply before it is declared stalled.
    #[arg(long, env = "DEEPCHAT_PROXY_IDLE_TIMEOUT", default_value_t = 120)]
    pub idle_timeout: u64,

    /// Browser origin allowed to connect (repeatable, or comma-separated in the env var);
    /// `*` allows any. Default: loopback pages and clients that send no Origin.
    #[arg(
        long = "allow-origin",
        env = "DEEPCHAT_PROXY_ALLOW_ORIGIN",
        value_delimiter = ',',
        value_name = "ORIGIN"
    )]
    pub allow_origins: Vec<String>,

    /// Seconds running replies may take to finish after SIGTERM/SIGINT before sockets close.
    #[arg(long, env = "DEEPCHAT_PROXY_DRAIN_TIMEOUT", default_value_t = 30)]
    pub drain_timeout: u64,

    #[command(subcommand)]
    pub provider: ProviderCommand,
}

/// The upstream to relay to.
#[derive(Debug, Subcommand)]
pub enum ProviderCommand {
    /// OpenAI Chat Completions, or any OpenAI-compatible server (see --preset).
    Openai(OpenAiArgs),
    /// OpenAI Responses API (`POST {base-url}/responses`).
    OpenaiResponses(OpenAiResponsesArgs),
    /// Anthropic Messages API (`POST {base-url}/v1/messages`).
    Anthropic(AnthropicArgs),
    /// Google Gemini (`POST {base-url}/v1beta/models/{model}:streamGenerateContent`).
    Gemini(GeminiArgs),
    /// Ollama's native API (`POST {base-url}/api/chat`, newline-delimited JSON).
    Ollama(OllamaArgs),
    /// Cohere Chat v2 (`POST {base-url}/v2/chat`).
    Cohere(CohereArgs),
    /// Azure OpenAI (`POST {base-url}/openai/deployments/{model}/chat/completions`).
    Azure(AzureArgs),
    /// No network, no key: streams an echo and a canned answer, and serves a demo page at `/`.
    Demo(DemoArgs),
}

/// Options every HTTP provider shares.
#[derive(Debug, Args)]
pub struct GenerationArgs {
    /// Model name sent upstream (Azure: the deployment name).
    #[arg(long, env = "DEEPCHAT_PROXY_MODEL")]
    pub model: String,

    /// Sampling temperature.
    #[arg(long, env = "DEEPCHAT_PROXY_TEMPERATURE")]
    pub temperature: Option<f32>,

    /// Most tokens per reply.
    #[arg(long, env = "DEEPCHAT_PROXY_MAX_TOKENS")]
    pub max_tokens: Option<u32>,

    /// Extra upstream header, `Name: value` (repeatable).
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct OpenAiArgs {
    /// An OpenAI-compatible host by name: sets the base URL and key variable
    /// (openai, openrouter, groq, mistral, deepseek, together, fireworks, vllm, llamacpp,
    /// lmstudio, ollama). Explicit --base-url / --api-key-env win.
    #[arg(long, env = "DEEPCHAT_PROXY_PRESET")]
    pub preset: Option<String>,

    /// API root; requests go to `{base-url}/chat/completions` [default: https://api.openai.com/v1]
    #[arg(long, env = "DEEPCHAT_PROXY_BASE_URL")]
    pub base_url: Option<String>,

    /// Environment variable holding the API key (unset is fine for keyless local servers)
    /// [default: OPENAI_API_KEY, or the preset's]
    #[arg(long, env = "DEEPCHAT_PROXY_API_KEY_ENV")]
    pub api_key_env: Option<String>,

    #[command(flatten)]
    pub generation: GenerationArgs,
}

/// Declares a provider's argument struct: its own base URL and key variable defaults, plus
/// the shared generation options. One line per provider keeps the defaults visible in --help.
macro_rules! provider_args {
    ($(#[$meta:meta])* $name:ident, $base:expr, $key:expr) => {
        $(#[$meta])*
        #[derive(Debug, Args)]
        pub struct $name {
            /// API root of the provider.
            #[arg(long, env = "DEEPCHAT_PROXY_BASE_URL", default_value = $base)]
            pub base_url: String,

            /// Environment variable holding the API key.
            #[arg(long, env = "DEEPCHAT_PROXY_API_KEY_ENV", default_value = $key)]
            pub api_key_env: String,

            #[command(flatten)]
            pub generation: GenerationArgs,
        }
    };
}

provider_args!(
    OpenAiResponsesArgs,
    "https://api.openai.com/v1",
    "OPENAI_API_KEY"
);
provider_args!(
    AnthropicArgs,
    "https://api.anthropic.com",
    "ANTHROPIC_API_KEY"
);
provider_args!(
    GeminiArgs,
    "https://generativelanguage.googleapis.com",
    "GEMINI_API_KEY"
);
provider_args!(CohereArgs, "https://api.cohere.com", "COHERE_API_KEY");

#[derive(Debug, Args)]
pub struct OllamaArgs {
    /// API root of the Ollama server.
    #[arg(
        long,
        env = "DEEPCHAT_PROXY_BASE_URL",
        default_value = "http://localhost:11434"
    )]
    pub base_url: String,

    /// Environment variable holding a bearer token, for an Ollama behind an authenticating proxy.
    #[arg(long, env = "DEEPCHAT_PROXY_API_KEY_ENV")]
    pub api_key_env: Option<String>,

    #[command(flatten)]
    pub generation: GenerationArgs,
}

#[derive(Debug, Args)]
pub struct AzureArgs {
    /// The resource endpoint, e.g. https://my-resource.openai.azure.com
    #[arg(long, env = "DEEPCHAT_PROXY_BASE_URL")]
    pub base_url: String,

    /// Environment variable holding the API key (sent as `api-key`).
    #[arg(
        long,
        env = "DEEPCHAT_PROXY_API_KEY_ENV",
        default_value = "AZURE_OPENAI_API_KEY"
    )]
    pub api_key_env: String,

    /// The `api-version` query parameter.
    #[arg(long, env = "DEEPCHAT_PROXY_API_VERSION", default_value = "2024-10-21")]
    pub api_version: String,

    #[command(flatten)]
    pub generation: GenerationArgs,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Pace of the canned reply.
    #[arg(long, env = "DEEPCHAT_PROXY_TOKENS_PER_SECOND", default_value_t = 30.0)]
    pub tokens_per_second: f64,

    /// Where the demo page loads Deep Chat from.
    #[arg(
        long,
        env = "DEEPCHAT_PROXY_DEEP_CHAT_SCRIPT",
        default_value = "https://unpkg.com/deep-chat@2.4.2/dist/deepChat.bundle.js"
    )]
    pub deep_chat_script: String,
}
