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

    /// Seconds running replies may take to finish after SIGTERM/SIGINT before sockets close.
    #[arg(long, env = "DEEPCHAT_PROXY_DRAIN_TIMEOUT", default_value_t = 30)]
    pub drain_timeout: u64,

    #[command(subcommand)]
    pub provider: ProviderCommand,
}

/// The upstream to relay to.
#[derive(Debug, Subcommand)]
pub enum ProviderCommand {
    /// OpenAI Chat Completions, or any OpenAI-compatible server.
    Openai(OpenAiArgs),
    /// No network, no key: streams an echo and a canned answer, and serves a demo page at `/`.
    Demo(DemoArgs),
}

/// Options every HTTP provider shares.
#[derive(Debug, Args)]
pub struct GenerationArgs {
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
    /// API root; requests go to `{base-url}/chat/completions`.
    #[arg(
        long,
        env = "DEEPCHAT_PROXY_BASE_URL",
        default_value = "https://api.openai.com/v1"
    )]
    pub base_url: String,

    /// Model name sent upstream.
    #[arg(long, env = "DEEPCHAT_PROXY_MODEL")]
    pub model: String,

    /// Environment variable holding the API key (unset is fine for keyless local servers).
    #[arg(
        long,
        env = "DEEPCHAT_PROXY_API_KEY_ENV",
        default_value = "OPENAI_API_KEY"
    )]
    pub api_key_env: String,

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
