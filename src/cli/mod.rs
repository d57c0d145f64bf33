//! Command-line flags. Every flag also reads an environment variable so the proxy can be
//! configured entirely from a container or unit file; secrets are named, never passed.
//! The proxy's own flags are global (clap derive): they may come before or after the provider
//! subcommand. The provider subcommands are built from the provider table, one per entry with
//! the entry's defaults, all sharing one set of options ([`ProviderArgs`]).

use clap::builder::BoolishValueParser;
use clap::{ArgAction, ArgMatches, Args, CommandFactory, FromArgMatches, Parser};
use deepchat_adapters::providers::{Provider, PROVIDERS};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

mod config_file;
mod provider;
mod routes;
mod sources;
mod tools;
pub use provider::{DemoArgs, GenerationArgs, ProviderArgs, ProviderCommand};
pub use routes::{RouteArgs, RouteOverrides};
pub use sources::name_variables;
use sources::{changed_settings, from_env, name_the_variable};
pub use tools::ToolArgs;

/// The parsed command line: the proxy's own flags and the provider subcommand. Assembled by
/// hand rather than derived so that the provider subcommands come from a provider table:
/// [`PROVIDERS`] by default, any other through [`command_for`] and [`parse_from_table`].
#[derive(Debug)]
pub struct Cli {
    /// Flags of the proxy itself, valid before or after the subcommand.
    pub proxy: ProxyArgs,
    /// The upstream to relay to, or a command that prints and exits.
    pub provider: ProviderCommand,
    /// The main section's `--fallback` upstreams, tried in order after `provider`.
    pub fallbacks: Vec<ProviderCommand>,
    /// Further `--route PATH` sections, each a route of its own.
    pub routes: Vec<RouteArgs>,
}

/// The proxy's own flags (all global).
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// The tool flags (`--mcp` and its policy).
    #[command(flatten)]
    pub tools: ToolArgs,

    /// Address to listen on: IP:PORT, localhost:PORT (= 127.0.0.1), or :PORT (every interface).
    #[arg(global = true, long, env = "DEEPCHAT_PROXY_LISTEN", default_value = "127.0.0.1:8080",
          value_name = "ADDR", value_parser = parse_listen_address)]
    pub listen: SocketAddr,

    /// Route where Deep Chat connects: WebSocket upgrade, or HTTP POST (JSON or SSE replies).
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_PATH",
        default_value = "/chat"
    )]
    pub path: String,

    /// Text of the frame that ends each streamed reply; must match the frontend's
    /// `stream: {simulation: "…"}`.
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_STOP_KEY",
        default_value = "stop-key"
    )]
    pub stop_key: String,

    /// How WebSocket replies are framed by default: `stop-key` (a stream ended by the stop
    /// key), `whole` (one frame per reply) or `overwrite` (the text so far, `overwrite: true`);
    /// a page may choose per connection with `?reply=…` in its connect URL.
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_WS_REPLY",
        value_enum,
        default_value_t = WsReply::StopKey,
        value_name = "MODE"
    )]
    pub ws_reply: WsReply,

    /// What a reasoning model's thinking shows: `hide` (nothing, the answer not delayed),
    /// `show` (its own bubble before the answer) or `status` (a short "thinking…" the answer
    /// replaces).
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_REASONING",
        value_enum,
        default_value_t = ReasoningDisplay::Hide,
        value_name = "MODE"
    )]
    pub reasoning: ReasoningDisplay,

    /// System prompt sent before every conversation.
    #[arg(global = true, long, env = "DEEPCHAT_PROXY_SYSTEM_PROMPT")]
    pub system_prompt: Option<String>,

    /// A model the request may choose with `model` in its body (Deep Chat
    /// `additionalBodyProps`), `NAME` or `ALIAS=NAME` (repeatable, or comma-separated in the env
    /// var); any other name is refused. Without it the body's `model` is ignored. Per route:
    /// not inherited by `--route` sections.
    #[arg(
        global = true,
        long = "allow-model",
        env = "DEEPCHAT_PROXY_ALLOW_MODEL",
        value_delimiter = ',',
        value_name = "[ALIAS=]NAME"
    )]
    pub allow_models: Vec<String>,

    /// Most messages of a conversation remembered per socket and sent upstream (oldest dropped).
    #[arg(global = true, long, env = "DEEPCHAT_PROXY_HISTORY_LIMIT", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub history_limit: u32,

    /// Browser origin allowed to connect, scheme://host[:port] (repeatable, or comma-separated
    /// in the env var); `https://*.example.com` allows its subdomains, `*` allows any.
    /// Default: loopback pages and clients that send no Origin.
    #[arg(
        global = true,
        long = "allow-origin",
        env = "DEEPCHAT_PROXY_ALLOW_ORIGIN",
        value_delimiter = ',',
        value_name = "ORIGIN",
        help_heading = "Access"
    )]
    pub allow_origins: Vec<String>,

    /// Environment variable holding the accepted client bearer token(s), comma-separated.
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_AUTH_TOKEN_ENV",
        value_name = "VAR",
        help_heading = "Access"
    )]
    pub auth_token_env: Option<String>,

    /// Environment variable holding an HS256 secret; clients present JWTs signed with it.
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_JWT_SECRET_ENV",
        value_name = "VAR",
        help_heading = "Access"
    )]
    pub jwt_secret_env: Option<String>,

    /// PEM public key (RSA or EC P-256) verifying clients' RS256/ES256 JWTs.
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_JWT_PUBLIC_KEY",
        value_name = "FILE",
        help_heading = "Access"
    )]
    pub jwt_public_key: Option<std::path::PathBuf>,

    /// The `aud` claim client JWTs must carry. Without it, a JWT that names any audience is
    /// refused (it was issued for another service).
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_JWT_AUDIENCE",
        value_name = "AUD",
        help_heading = "Access"
    )]
    pub jwt_audience: Option<String>,

    /// The `iss` claim client JWTs must carry; without it any issuer is accepted.
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_JWT_ISSUER",
        value_name = "ISS",
        help_heading = "Access"
    )]
    pub jwt_issuer: Option<String>,

    /// Seconds of clock skew allowed when checking a JWT's `exp` and `nbf`.
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_JWT_LEEWAY",
        value_name = "SECS",
        default_value_t = 60,
        help_heading = "Access"
    )]
    pub jwt_leeway: u64,

    /// Header carrying the browser's IP when the proxy sits behind a reverse proxy (e.g.
    /// X-Forwarded-For; its last entry is used). Only set it when every client comes through
    /// that proxy: clients can forge the header otherwise.
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_CLIENT_IP_HEADER",
        value_name = "NAME",
        help_heading = "Limits"
    )]
    pub client_ip_header: Option<String>,

    /// Largest request (WebSocket message or HTTP body) accepted from a browser, in bytes.
    #[arg(global = true, long, env = "DEEPCHAT_PROXY_MAX_REQUEST_BYTES", default_value_t = 8 * 1024 * 1024,
          help_heading = "Limits")]
    pub max_request_bytes: usize,

    /// Most messages in one request.
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_MAX_MESSAGES",
        default_value_t = 500,
        help_heading = "Limits"
    )]
    pub max_messages: usize,

    /// Most characters of conversation sent upstream; the oldest turns are dropped to fit, and
    /// a newest message longer than this is refused with an error.
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_MAX_CONVERSATION_CHARS",
        default_value_t = 400_000,
        help_heading = "Limits"
    )]
    pub max_conversation_chars: usize,

    /// Most images in a conversation sent upstream; older turns are dropped to fit, and a newest
    /// message with more is refused with an error.
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_MAX_IMAGES",
        default_value_t = 20,
        help_heading = "Limits"
    )]
    pub max_images: usize,

    /// Most bytes of images (decoded size of uploads, length of links) in a conversation sent
    /// upstream; older turns are dropped to fit, and a newest message with more is refused.
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_MAX_IMAGE_BYTES",
        default_value_t = 10 * 1024 * 1024,
        help_heading = "Limits"
    )]
    pub max_image_bytes: usize,

    /// Largest reply buffered for a plain-HTTP JSON answer or a WebSocket whole/overwrite reply
    /// (text and files, in bytes); past it the upstream is closed and the client gets an error.
    #[arg(global = true, long, env = "DEEPCHAT_PROXY_MAX_JSON_REPLY_BYTES", default_value_t = 8 * 1024 * 1024,
          help_heading = "Limits")]
    pub max_json_reply_bytes: usize,

    /// Most open client connections; more are answered 503.
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_MAX_CONNECTIONS",
        default_value_t = 20_000,
        help_heading = "Limits"
    )]
    pub max_connections: usize,

    /// Most open connections from one client IP (the TCP peer); more are answered 503, so one
    /// address cannot take every --max-connections slot (0 = no per-IP cap). Not applied with
    /// --client-ip-header, where every connection comes from the reverse proxy.
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_MAX_CONNECTIONS_PER_IP",
        default_value_t = 256,
        value_name = "N",
        help_heading = "Limits"
    )]
    pub max_connections_per_ip: usize,

    /// Seconds a client has to send a request: its first byte, its headers and its body
    /// (slower clients are disconnected, or answered 408 for a body).
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_REQUEST_TIMEOUT",
        default_value_t = 30,
        value_name = "SECS",
        help_heading = "Limits"
    )]
    pub request_timeout: u64,

    /// Seconds an HTTP connection (keep-alive, HTTP/2) may stay open with no request in flight.
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_HTTP_IDLE_TIMEOUT",
        default_value_t = 60,
        value_name = "SECS",
        help_heading = "Limits"
    )]
    pub http_idle_timeout: u64,

    /// Most requests in flight or queued per connection (WebSocket queue, HTTP/2 streams).
    #[arg(global = true, long, env = "DEEPCHAT_PROXY_MAX_STREAMS_PER_CONNECTION", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..), help_heading = "Limits")]
    pub max_streams_per_connection: u32,

    /// Requests per minute per client IP and per client token (0 = unlimited).
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_RATE_LIMIT",
        default_value_t = 120,
        help_heading = "Limits"
    )]
    pub rate_limit: u32,

    /// Seconds a client connection may sit idle (no request, no reply) before it is closed.
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_CLIENT_IDLE_TIMEOUT",
        default_value_t = 600,
        help_heading = "Limits"
    )]
    pub client_idle_timeout: u64,

    /// Seconds between WebSocket pings; a peer silent for two intervals is dropped, and during
    /// a reply a ping unanswered for one interval ends the reply (0 = off).
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_PING_INTERVAL",
        default_value_t = 30,
        help_heading = "Limits"
    )]
    pub ping_interval: u64,

    /// Seconds to establish the upstream connection.
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_CONNECT_TIMEOUT",
        default_value_t = 10,
        help_heading = "Upstream"
    )]
    pub connect_timeout: u64,

    /// Seconds until the upstream's first reply data (headers and first chunk).
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_FIRST_BYTE_TIMEOUT",
        default_value_t = 60,
        help_heading = "Upstream"
    )]
    pub first_byte_timeout: u64,

    /// Seconds of upstream silence in the middle of a reply before it is declared stalled.
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_CHUNK_TIMEOUT",
        default_value_t = 60,
        help_heading = "Upstream"
    )]
    pub chunk_timeout: u64,

    /// Seconds a whole reply may take.
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_REPLY_TIMEOUT",
        default_value_t = 600,
        help_heading = "Upstream"
    )]
    pub reply_timeout: u64,

    /// Retries of a failed upstream request (connect error, 429, 5xx, a stream that opens with
    /// an error or ends empty) before anything reached the browser, with jittered exponential
    /// backoff honouring Retry-After.
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_RETRIES",
        default_value_t = 2,
        help_heading = "Upstream"
    )]
    pub retries: u32,

    /// Consecutive failed replies after which an upstream of a fallback chain is skipped for
    /// --breaker-cooldown (0 = never skip).
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_BREAKER_FAILURES",
        default_value_t = 3,
        value_name = "N",
        help_heading = "Upstream"
    )]
    pub breaker_failures: u32,

    /// Seconds a tripped upstream is skipped; then one reply tries it again (half-open).
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_BREAKER_COOLDOWN",
        default_value_t = 30,
        value_name = "SECS",
        help_heading = "Upstream"
    )]
    pub breaker_cooldown: u64,

    /// Speak HTTP/2 to the upstream without negotiating it (h2c "prior knowledge" for an
    /// http:// upstream, e.g. a service-mesh sidecar): all replies share a few connections
    /// instead of one each. https:// upstreams that offer HTTP/2 get it without this flag.
    #[arg(global = true, long, env = "DEEPCHAT_PROXY_UPSTREAM_HTTP2", help_heading = "Upstream",
          action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub upstream_http2: bool,

    /// Most replies sharing one HTTP/2 upstream connection; more open another connection
    /// (servers may refuse over 100 concurrent streams, and a refused reply would wait).
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_UPSTREAM_STREAMS_PER_CONNECTION",
        default_value_t = 100,
        value_name = "N",
        help_heading = "Upstream"
    )]
    pub upstream_streams_per_connection: usize,

    /// Serve /healthz, /readyz and /metrics on this address instead of the main listener.
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_METRICS_LISTEN",
        value_name = "ADDR",
        value_parser = parse_listen_address,
        help_heading = "Operations"
    )]
    pub metrics_listen: Option<SocketAddr>,

    /// Send OpenTelemetry traces (one span per reply, GenAI attributes) to this OTLP/HTTP
    /// collector, e.g. http://127.0.0.1:4318 (/v1/traces is added). Off by default.
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_OTLP_ENDPOINT",
        value_name = "URL",
        value_parser = parse_otlp_endpoint,
        help_heading = "Operations"
    )]
    pub otlp_endpoint: Option<String>,

    /// Log format on stderr (level via RUST_LOG).
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_LOG_FORMAT",
        value_enum,
        default_value = "pretty",
        help_heading = "Operations"
    )]
    pub log_format: LogFormat,

    /// Include message content (the user's newest message and the reply) in reply logs.
    #[arg(global = true, long, env = "DEEPCHAT_PROXY_LOG_CONTENT", help_heading = "Operations",
          action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub log_content: bool,

    /// Validate every flag and the environment (keys, key files, the page's bundle) as a start
    /// would, print every problem (exit 2) or the effective configuration (exit 0), and exit.
    #[arg(global = true, long, env = "DEEPCHAT_PROXY_CHECK", help_heading = "Operations",
          action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub check: bool,

    /// Serve a Deep Chat page at `/` wired to this proxy, to try the provider in a browser
    /// [default: on for `demo`, off otherwise]. `--playground=false` turns it off.
    #[arg(global = true, long, env = "DEEPCHAT_PROXY_PLAYGROUND", value_name = "BOOL",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = BoolishValueParser::new(), help_heading = "Page")]
    pub playground: Option<bool>,

    /// Where the page at `/` loads Deep Chat from: a URL, or a local file (e.g.
    /// node_modules/deep-chat/dist/deepChat.bundle.js) that the proxy then serves itself at
    /// /deep-chat.js, so the page works with no network.
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_DEEP_CHAT_SCRIPT",
        value_name = "URL|FILE",
        default_value = DEFAULT_DEEP_CHAT_SCRIPT,
        help_heading = "Page"
    )]
    pub deep_chat_script: String,

    /// Where conversations named by `?conversation=ID` are kept: `memory` (this process,
    /// bounded), `sqlite:PATH` (a file that survives restarts) or `redis://HOST:PORT` (Redis or
    /// Valkey, shared by replicas, which then also share --rate-limit).
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_STORE",
        default_value = "memory",
        value_name = "STORE",
        help_heading = "Conversations"
    )]
    pub store: String,

    /// Seconds a conversation is kept after its last turn, in every store.
    #[arg(global = true, long, env = "DEEPCHAT_PROXY_HISTORY_TTL", default_value_t = 86_400,
          value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..),
          help_heading = "Conversations")]
    pub history_ttl: u64,

    /// Seconds running replies may take to finish after SIGTERM/SIGINT; then they end with an
    /// error frame and sockets close with code 1001.
    #[arg(
        global = true,
        long,
        env = "DEEPCHAT_PROXY_DRAIN_TIMEOUT",
        default_value_t = 30
    )]
    pub drain_timeout: u64,
}

/// `--ws-reply` and `?reply=`: how a WebSocket reply reaches Deep Chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WsReply {
    /// Text frames as they come, then one frame equal to the stop key (`stream: {simulation: "stop-key"}`).
    StopKey,
    /// One frame with the complete reply, text and files (no `stream`, or `stream: {simulation: true}`).
    Whole,
    /// Frames with the text so far and `overwrite: true` (streaming before Deep Chat 1.4.11).
    Overwrite,
}

impl WsReply {
    /// The mode a `reply=` query value names, spelled as on the command line.
    pub fn named(value: &str) -> Option<WsReply> {
        clap::ValueEnum::from_str(value, false).ok()
    }
}

/// `--reasoning`: what the browser sees of a reasoning model's thinking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReasoningDisplay {
    /// Nothing: the thinking is dropped as it arrives.
    Hide,
    /// The thinking streams first, as its own message under the role `thinking`.
    Show,
    /// A short "thinking…" message while the model thinks, replaced by the answer.
    Status,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The whole command line for `table`: the proxy's flags, one subcommand per provider, then
/// `demo`, `completions` and `man`. [`Cli::command`] is this for [`PROVIDERS`].
pub fn command_for(table: &'static [Provider]) -> clap::Command {
    let command = clap::Command::new("deepchat-proxy")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(true)
        .arg_required_else_help(true);
    let command = ProviderCommand::augment_for(ProxyArgs::augment_args(command), table);
    command
        .about(env!("CARGO_PKG_DESCRIPTION"))
        .after_help(routes::ROUTES_HELP)
}

impl Cli {
    /// The flags in `matches`, read against the table its command was built from.
    pub fn from_matches_in(
        table: &'static [Provider],
        matches: &ArgMatches,
    ) -> Result<Cli, clap::Error> {
        Ok(Cli {
            proxy: ProxyArgs::from_arg_matches(matches)?,
            provider: ProviderCommand::from_matches_in(table, matches)?,
            fallbacks: Vec::new(),
            routes: Vec::new(),
        })
    }
}

impl CommandFactory for Cli {
    fn command() -> clap::Command {
        command_for(PROVIDERS)
    }

    fn command_for_update() -> clap::Command {
        command_for(PROVIDERS)
    }
}

impl FromArgMatches for Cli {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Cli::from_matches_in(PROVIDERS, matches)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Cli::from_arg_matches(matches)?;
        Ok(())
    }
}

/// `Cli::parse`, `Cli::try_parse_from` and the rest, for the default table.
impl Parser for Cli {}

/// The published Deep Chat bundle the page loads unless told otherwise.
pub const DEFAULT_DEEP_CHAT_SCRIPT: &str =
    "https://unpkg.com/deep-chat@2.4.2/dist/deepChat.bundle.js";

/// `--listen` / `--metrics-listen`: an IP and port, `localhost:PORT` (IPv4 loopback, as the
/// default is) or `:PORT` (every IPv4 interface, as Go and most servers read it). Other host
/// names are refused: resolving them at start would bind whatever DNS says that day.
/// An OTLP/HTTP collector URL: `http://` or `https://` with a host.
pub fn parse_otlp_endpoint(text: &str) -> Result<String, String> {
    let uri: hyper::Uri = text
        .trim()
        .parse()
        .map_err(|err| format!("not a URL: {err}"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(host)) if !host.is_empty() => Ok(text.trim().to_owned()),
        _ => Err("expected http://HOST:PORT or https://HOST, e.g. http://127.0.0.1:4318".into()),
    }
}

pub fn parse_listen_address(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    let hint = "write IP:PORT (127.0.0.1:8080 for this machine only, 0.0.0.0:8080 for every \
                interface), localhost:PORT or :PORT";
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("{text:?} has no port; {hint}"));
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{port:?} is not a port number (0-65535); {hint}"))?;
    let ip = match host {
        "" | "*" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        h if h.eq_ignore_ascii_case("localhost") => IpAddr::V4(Ipv4Addr::LOCALHOST),
        h => {
            return Err(format!(
            "{h:?} is not an IP address; {hint} (a bracketed IPv6 address works too: [::1]:8080)"
        ))
        }
    };
    Ok(SocketAddr::new(ip, port))
}

/// The parsed flags, and where their values came from.
pub struct Parsed {
    pub cli: Cli,
    /// Each limit or upstream setting that differs from its default (`--rate-limit=60`), for
    /// the start-up line.
    pub changed: Vec<String>,
    /// `(flag, variable)` for every value read from the environment, so that a configuration
    /// error about `--allow-origin` can say it came from `DEEPCHAT_PROXY_ALLOW_ORIGIN`.
    pub from_env: Vec<(String, String)>,
}

/// Parses the command line (and the environment behind it). A bad value that came from an
/// environment variable names that variable in the error.
pub fn parse_from<I, T>(args: I) -> Result<Parsed, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    parse_from_table(PROVIDERS, args)
}

/// [`parse_from`] with the provider subcommands of `table` instead of [`PROVIDERS`].
pub fn parse_from_table<I, T>(table: &'static [Provider], args: I) -> Result<Parsed, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let args = config_file::expand(args).map_err(|message| {
        clap::Error::raw(clap::error::ErrorKind::InvalidValue, message + "\n")
    })?;
    let sections = routes::split(&args).map_err(|message| {
        clap::Error::raw(clap::error::ErrorKind::InvalidValue, message + "\n")
    })?;
    let mut command = command_for(table);
    let parsed = command
        .try_get_matches_from_mut(sections.main.iter().cloned())
        .and_then(|matches| Ok((Cli::from_matches_in(table, &matches)?, matches)));
    let (mut cli, matches) =
        parsed.map_err(|err| name_the_variable(err, &command, &sections.main))?;
    cli.fallbacks = sections
        .main_fallbacks
        .iter()
        .map(|section| routes::parse_fallback(table, "the first section", section))
        .collect::<Result<_, _>>()?;
    cli.routes = sections
        .routes
        .iter()
        .map(|section| routes::parse_route(table, section))
        .collect::<Result<_, _>>()?;
    Ok(Parsed {
        cli,
        changed: changed_settings(&command, &matches),
        from_env: from_env(&command, &matches),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flag added later without `global = true` would again fail after the subcommand.
    #[test]
    fn every_proxy_flag_is_global_and_every_flag_has_a_variable() {
        let command = Cli::command();
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            assert!(arg.is_global_set(), "--{id} is not global");
            assert!(
                arg.get_env().is_some(),
                "--{id} has no environment variable"
            );
        }
        for sub in command.get_subcommands() {
            for arg in sub.get_arguments().filter(|a| a.get_long().is_some()) {
                let id = arg.get_id().as_str();
                if arg.is_global_set() || matches!(id, "help" | "version") {
                    continue;
                }
                assert!(arg.get_env().is_some(), "{} --{id}", sub.get_name());
            }
        }
    }

    #[test]
    fn errors_name_the_variables_behind_their_flags() {
        let from_env = [("--path".to_owned(), "DEEPCHAT_PROXY_PATH".to_owned())];
        assert_eq!(
            name_variables(&from_env, "--path \"/\" clashes"),
            "--path \"/\" clashes (set by DEEPCHAT_PROXY_PATH)"
        );
        assert_eq!(
            name_variables(&from_env, "--path-prefix x"),
            "--path-prefix x"
        );
        assert_eq!(
            name_variables(&from_env, "--model is empty"),
            "--model is empty"
        );
    }

    #[test]
    fn listen_addresses() {
        let parse = |text| parse_listen_address(text).map(|a| a.to_string());
        assert_eq!(parse("127.0.0.1:80").as_deref(), Ok("127.0.0.1:80"));
        assert_eq!(parse("LocalHost:80").as_deref(), Ok("127.0.0.1:80"));
        assert_eq!(parse(":80").as_deref(), Ok("0.0.0.0:80"));
        assert_eq!(parse("*:80").as_deref(), Ok("0.0.0.0:80"));
        assert_eq!(parse("[::]:80").as_deref(), Ok("[::]:80"));
        for bad in ["80", "host:80", ":99999", "localhost:", ""] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
