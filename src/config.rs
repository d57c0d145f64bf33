//! Validated runtime configuration, built once from the command line and the environment.

use crate::access::OriginPolicy;
use crate::auth::{Auth, JwtRules};
use crate::budget::Budget;
use crate::cli::{Cli, DemoArgs, GenerationArgs, OpenAiArgs, ProviderCommand};
use crate::redact::Secrets;
use deepchat_adapters::anthropic::Anthropic;
use deepchat_adapters::azure::AzureOpenAi;
use deepchat_adapters::cohere::Cohere;
use deepchat_adapters::gemini::Gemini;
use deepchat_adapters::ollama::Ollama;
use deepchat_adapters::openai::OpenAiChat;
use deepchat_adapters::openai_responses::OpenAiResponses;
use deepchat_adapters::{presets, Adapter};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// A flag or environment value that cannot work; reported before the proxy listens.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("--path must start with '/', got {0:?}")]
    Path(String),
    #[error("--stop-key must be at least 2 characters so a reply can always be split around it")]
    StopKey,
    #[error("--header {0:?} is not 'Name: value'")]
    Header(String),
    #[error("--base-url {0:?} must start with http:// or https://")]
    BaseUrl(String),
    #[error("unknown --preset {0:?}; known: {1}")]
    Preset(String, String),
    #[error("--tokens-per-second must be between 0.1 and 10000")]
    TokensPerSecond,
    #[error("environment variable {0} is set but is not valid Unicode")]
    KeyEncoding(String),
    #[error("cannot read {0}: {1}")]
    File(String, String),
    #[error("{0} is empty or unset, but an auth flag names it")]
    MissingSecret(String),
    #[error("completions and man print text and exit; they run no proxy")]
    NotAProvider,
    #[error("--jwt-public-key {0}: not a PEM RSA or EC (P-256) public key")]
    PublicKey(String),
}

/// An API key that never prints itself.
#[derive(Clone)]
pub struct ApiKey(String);

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
    pub adapter: Arc<dyn Adapter>,
    pub api_key: Option<ApiKey>,
    /// Names the upstream in error messages: the adapter and the host it calls
    /// ("openai upstream at api.groq.com"), so a failure says which service failed.
    pub label: String,
    /// The key and every `--header` value, redacted from anything the upstream sends back.
    pub secrets: Secrets,
    pub model: String,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub extra_headers: Vec<(String, String)>,
}

/// The built-in offline provider.
#[derive(Debug, Clone)]
pub struct Demo {
    pub token_interval: Duration,
    pub deep_chat_script: String,
}

#[derive(Clone)]
pub enum ProviderConfig {
    Http(HttpUpstream),
    Demo(Demo),
}

/// What one client may ask for.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_request_bytes: usize,
    pub max_messages: usize,
    pub max_conversation_chars: usize,
    /// Images per conversation sent upstream (`--max-images`).
    pub max_images: usize,
    /// Bytes of images per conversation sent upstream (`--max-image-bytes`).
    pub max_image_bytes: usize,
    /// Largest reply buffered for one JSON answer (`--max-json-reply-bytes`).
    pub max_json_reply_bytes: usize,
    pub max_connections: usize,
    /// Most connections per TCP peer IP; `None` = uncapped.
    pub max_connections_per_ip: Option<usize>,
    /// Time a client has to send a request's first byte, headers and body.
    pub request_timeout: Duration,
    /// An HTTP connection with no request in flight this long is closed.
    pub http_idle_timeout: Duration,
    pub max_streams_per_connection: usize,
    /// Requests per minute per client IP and per token; 0 = unlimited.
    pub rate_limit: u32,
    /// Where the client IP comes from behind a reverse proxy; `None` = the TCP peer.
    pub client_ip_header: Option<hyper::header::HeaderName>,
    pub client_idle_timeout: Duration,
    /// `None` disables WebSocket keepalive pings.
    pub ping_interval: Option<Duration>,
}

impl Limits {
    /// Most bytes of one reply worth remembering: the conversation sent upstream never holds
    /// more than `max_conversation_chars` characters of at most 4 bytes each.
    pub fn reply_memory_bytes(&self) -> usize {
        self.max_conversation_chars.saturating_mul(4)
    }

    /// What one conversation may send upstream (and so what its memory keeps).
    pub fn budget(&self) -> Budget {
        Budget {
            max_chars: self.max_conversation_chars,
            max_images: self.max_images,
            max_image_bytes: self.max_image_bytes,
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

/// Everything the server needs, validated.
#[derive(Clone)]
pub struct Config {
    pub path: String,
    pub stop_key: String,
    pub system_prompt: Option<String>,
    pub history_limit: usize,
    pub limits: Limits,
    pub upstream: UpstreamPolicy,
    pub drain_timeout: Duration,
    pub origins: OriginPolicy,
    /// Client authentication; `None` admits everyone the origin policy admits.
    pub auth: Option<Arc<Auth>>,
    /// `--log-content`: message text may appear in reply logs.
    pub log_content: bool,
    pub provider: ProviderConfig,
}

impl Config {
    /// Validates the flags and reads the API key from the environment variable they name.
    pub fn from_cli(cli: Cli) -> Result<Config, ConfigError> {
        if !cli.path.starts_with('/') {
            return Err(ConfigError::Path(cli.path));
        }
        if cli.stop_key.chars().count() < 2 {
            return Err(ConfigError::StopKey);
        }
        let auth = auth(&cli)?;
        let provider = match cli.provider {
            ProviderCommand::Openai(args) => openai(args)?,
            ProviderCommand::OpenaiResponses(args) => {
                let base = check_base_url(&args.base_url)?;
                let adapter = Arc::new(OpenAiResponses::new(base.clone()));
                http_upstream(adapter, &base, Some(&args.api_key_env), args.generation)?
            }
            ProviderCommand::Anthropic(args) => {
                let base = check_base_url(&args.base_url)?;
                let adapter = Arc::new(Anthropic::new(base.clone()));
                http_upstream(adapter, &base, Some(&args.api_key_env), args.generation)?
            }
            ProviderCommand::Gemini(args) => {
                let base = check_base_url(&args.base_url)?;
                let adapter = Arc::new(Gemini::new(base.clone()));
                http_upstream(adapter, &base, Some(&args.api_key_env), args.generation)?
            }
            ProviderCommand::Cohere(args) => {
                let base = check_base_url(&args.base_url)?;
                let adapter = Arc::new(Cohere::new(base.clone()));
                http_upstream(adapter, &base, Some(&args.api_key_env), args.generation)?
            }
            ProviderCommand::Ollama(args) => {
                let base = check_base_url(&args.base_url)?;
                let adapter = Arc::new(Ollama::new(base.clone()));
                http_upstream(adapter, &base, args.api_key_env.as_deref(), args.generation)?
            }
            ProviderCommand::Azure(args) => {
                let base = check_base_url(&args.base_url)?;
                let adapter =
                    Arc::new(AzureOpenAi::new(base.clone()).with_api_version(args.api_version));
                http_upstream(adapter, &base, Some(&args.api_key_env), args.generation)?
            }
            ProviderCommand::Demo(args) => demo(args)?,
            ProviderCommand::Completions { .. } | ProviderCommand::Man => {
                return Err(ConfigError::NotAProvider)
            }
        };
        let secs = Duration::from_secs;
        Ok(Config {
            path: cli.path,
            stop_key: cli.stop_key,
            system_prompt: cli.system_prompt.filter(|p| !p.is_empty()),
            history_limit: cli.history_limit as usize,
            limits: Limits {
                max_request_bytes: cli.max_request_bytes,
                max_messages: cli.max_messages.max(1),
                max_conversation_chars: cli.max_conversation_chars.max(1),
                max_images: cli.max_images,
                max_image_bytes: cli.max_image_bytes,
                max_json_reply_bytes: cli.max_json_reply_bytes.max(1),
                max_connections: cli.max_connections.max(1),
                // Behind a reverse proxy every connection has the proxy's address.
                max_connections_per_ip: (cli.max_connections_per_ip > 0
                    && cli.client_ip_header.is_none())
                .then_some(cli.max_connections_per_ip),
                request_timeout: secs(cli.request_timeout.max(1)),
                http_idle_timeout: secs(cli.http_idle_timeout.max(1)),
                max_streams_per_connection: cli.max_streams_per_connection as usize,
                rate_limit: cli.rate_limit,
                client_ip_header: match &cli.client_ip_header {
                    Some(name) => Some(
                        hyper::header::HeaderName::from_bytes(name.trim().as_bytes())
                            .map_err(|_| ConfigError::Header(name.clone()))?,
                    ),
                    None => None,
                },
                client_idle_timeout: secs(cli.client_idle_timeout.max(1)),
                ping_interval: (cli.ping_interval > 0).then(|| secs(cli.ping_interval)),
            },
            upstream: UpstreamPolicy {
                connect_timeout: secs(cli.connect_timeout.max(1)),
                first_byte_timeout: secs(cli.first_byte_timeout.max(1)),
                chunk_timeout: secs(cli.chunk_timeout.max(1)),
                reply_timeout: secs(cli.reply_timeout.max(1)),
                retries: cli.retries,
                http2_only: cli.upstream_http2,
                streams_per_connection: cli.upstream_streams_per_connection.max(1),
            },
            drain_timeout: secs(cli.drain_timeout),
            origins: OriginPolicy::from_flags(&cli.allow_origins),
            auth,
            log_content: cli.log_content,
            provider,
        })
    }
}

fn check_base_url(url: &str) -> Result<String, ConfigError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url.trim_end_matches('/').to_owned())
    } else {
        Err(ConfigError::BaseUrl(url.to_owned()))
    }
}

/// `openai`: explicit flags win over the preset, the preset over OpenAI's own defaults.
fn openai(args: OpenAiArgs) -> Result<ProviderConfig, ConfigError> {
    let preset = match &args.preset {
        Some(name) => Some(presets::preset(name).ok_or_else(|| {
            let known: Vec<&str> = presets::PRESETS.iter().map(|p| p.name).collect();
            ConfigError::Preset(name.clone(), known.join(", "))
        })?),
        None => None,
    };
    let base_url = args
        .base_url
        .or_else(|| preset.map(|p| p.base_url.to_owned()))
        .unwrap_or_else(|| "https://api.openai.com/v1".to_owned());
    let key_env = match (&args.api_key_env, preset) {
        (Some(env), _) => Some(env.clone()),
        (None, Some(preset)) => preset.api_key_env.map(str::to_owned),
        (None, None) => Some("OPENAI_API_KEY".to_owned()),
    };
    let base = check_base_url(&base_url)?;
    let adapter = Arc::new(OpenAiChat::new(base.clone()));
    http_upstream(adapter, &base, key_env.as_deref(), args.generation)
}

fn http_upstream(
    adapter: Arc<dyn Adapter>,
    base_url: &str,
    api_key_env: Option<&str>,
    generation: GenerationArgs,
) -> Result<ProviderConfig, ConfigError> {
    let api_key = match (&generation.api_key_file, api_key_env) {
        (Some(path), _) => Some(ApiKey(read_secret_file(path)?)),
        (None, Some(variable)) => read_key(variable)?,
        (None, None) => None,
    };
    let extra_headers = parse_headers(&generation.headers)?;
    let secrets = Secrets::new(
        api_key
            .iter()
            .map(ApiKey::expose)
            .chain(extra_headers.iter().map(|(_, value)| value.as_str())),
    );
    let label = match upstream_host(base_url) {
        Some(host) => format!("{} upstream at {host}", adapter.name()),
        None => format!("{} upstream", adapter.name()),
    };
    Ok(ProviderConfig::Http(HttpUpstream {
        adapter,
        api_key,
        label,
        secrets,
        model: generation.model,
        temperature: generation.temperature,
        max_tokens: generation.max_tokens,
        extra_headers,
    }))
}

/// `host` or `host:port` (when not the scheme's default) of a base URL.
fn upstream_host(base_url: &str) -> Option<String> {
    let url = reqwest::Url::parse(base_url).ok()?;
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

/// A missing or empty variable means "no key" (keyless local servers).
fn read_key(variable: &str) -> Result<Option<ApiKey>, ConfigError> {
    match std::env::var(variable) {
        Ok(key) if !key.trim().is_empty() => Ok(Some(ApiKey(key.trim().to_owned()))),
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::KeyEncoding(variable.into())),
    }
}

/// A mounted secret, trimmed; an empty file is an error rather than "no key".
fn read_secret_file(path: &std::path::Path) -> Result<String, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::File(shown.clone(), e.to_string()))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(ConfigError::MissingSecret(shown));
    }
    Ok(secret.to_owned())
}

/// A secret that an auth flag requires: missing is a configuration error, not "open".
fn required_env(variable: &str) -> Result<String, ConfigError> {
    match read_key(variable)? {
        Some(key) => Ok(key.0),
        None => Err(ConfigError::MissingSecret(variable.to_owned())),
    }
}

fn auth(cli: &Cli) -> Result<Option<Arc<Auth>>, ConfigError> {
    let tokens = match &cli.auth_token_env {
        Some(variable) => required_env(variable)?
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        None => Vec::new(),
    };
    let jwt = match (&cli.jwt_secret_env, &cli.jwt_public_key) {
        (Some(variable), _) => Some(Auth::hs256(required_env(variable)?.as_bytes())),
        (None, Some(path)) => {
            let shown = path.display().to_string();
            let pem =
                std::fs::read(path).map_err(|e| ConfigError::File(shown.clone(), e.to_string()))?;
            Some(Auth::public_key(&pem).ok_or(ConfigError::PublicKey(shown))?)
        }
        (None, None) => None,
    };
    let rules = JwtRules {
        audience: cli.jwt_audience.clone().filter(|a| !a.is_empty()),
        issuer: cli.jwt_issuer.clone().filter(|i| !i.is_empty()),
        leeway_secs: cli.jwt_leeway,
    };
    let jwt = jwt.map(|(key, mut validation)| {
        rules.apply(&mut validation);
        (key, validation)
    });
    if tokens.is_empty() && jwt.is_none() {
        return Ok(None);
    }
    Ok(Some(Arc::new(Auth::new(tokens, jwt))))
}

/// Parses `Name: value` pairs, checking names and values are valid HTTP.
pub fn parse_headers(raw: &[String]) -> Result<Vec<(String, String)>, ConfigError> {
    raw.iter()
        .map(|line| {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| ConfigError::Header(line.clone()))?;
            let (name, value) = (name.trim(), value.trim());
            let valid = hyper::header::HeaderName::from_bytes(name.as_bytes()).is_ok()
                && hyper::header::HeaderValue::from_str(value).is_ok();
            if valid {
                Ok((name.to_ascii_lowercase(), value.to_owned()))
            } else {
                Err(ConfigError::Header(line.clone()))
            }
        })
        .collect()
}

fn demo(args: DemoArgs) -> Result<ProviderConfig, ConfigError> {
    if !(0.1..=10_000.0).contains(&args.tokens_per_second) {
        return Err(ConfigError::TokensPerSecond);
    }
    Ok(ProviderConfig::Demo(Demo {
        token_interval: Duration::from_secs_f64(1.0 / args.tokens_per_second),
        deep_chat_script: args.deep_chat_script,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_and_reject_garbage() {
        let ok = parse_headers(&["X-Team: blue".into(), "a:b:c".into()]).expect("valid");
        assert_eq!(
            ok,
            vec![("x-team".into(), "blue".into()), ("a".into(), "b:c".into())]
        );
        assert!(parse_headers(&["no colon".into()]).is_err());
        assert!(parse_headers(&["bad name: x".into()]).is_err());
    }

    #[test]
    fn api_key_debug_is_redacted() {
        assert_eq!(
            format!("{:?}", ApiKey("sk-secret".into())),
            "ApiKey(<redacted>)"
        );
    }
}
