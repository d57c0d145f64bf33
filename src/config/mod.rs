//! Validated runtime configuration, built once from the command line and the environment.
//! [`Config::validate`] is the one validation behind both a start and `--check`: it collects
//! every problem rather than stopping at the first, and says what the proxy will run.

use crate::access::auth::{Auth, JwtRules};
use crate::access::origins::{OriginError, OriginPolicy};
use crate::cli::{Cli, DemoArgs, ProviderArgs, ProviderCommand, ProxyArgs, RouteArgs};
pub use crate::cli::{ReasoningDisplay, WsReply};
use crate::upstream::breaker::Breaker;
pub use crate::upstream::models::AllowedModels;
use crate::upstream::redact::Secrets;
pub use crate::upstream::settings::{ApiKey, Demo, HttpUpstream, ProviderConfig, UpstreamPolicy};
use bytes::Bytes;
use deepchat_adapters::providers::{Provider, Settings};
use deepchat_adapters::{presets, Generation};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

mod chains;
mod secrets;

use chains::{
    build_chain, chain_description, route_description, route_section, take_missing_keys,
    BreakerSettings,
};
use secrets::{auth, read_key, read_secret_file};

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
    /// A reasoning flag the provider cannot take, or a budget that cannot work.
    #[error("{0}")]
    Reasoning(String),
    #[error("environment variable {0} is set but is not valid Unicode")]
    KeyEncoding(String),
    #[error("cannot read {0}: {1}")]
    File(String, String),
    #[error("{0} is empty or unset, but an auth flag names it")]
    MissingSecret(String),
    /// A `--mcp` server or tool flag that cannot work.
    #[error("{0}")]
    Tools(String),
    #[error("completions and man print text and exit; they run no proxy")]
    NotAProvider,
    #[error("--jwt-public-key {0}: not a PEM RSA or EC (P-256) public key")]
    PublicKey(String),
    #[error(transparent)]
    Origin(#[from] OriginError),
    #[error("--metrics-listen {0} is the --listen address too; give it another port, or leave it unset to serve /metrics on the main listener")]
    SameListener(std::net::SocketAddr),
    #[error(
        "--path {0:?} clashes with the page the proxy serves there (on for demo, or --playground): choose another path, e.g. /chat, or --playground=false"
    )]
    PathClash(String),
    #[error("--model is empty: name the model to send upstream")]
    EmptyModel,
    #[error("--base-url {url:?} already ends in {tail:?}, which the proxy appends itself; use --base-url {suggested}")]
    BaseUrlEndpoint {
        url: String,
        tail: &'static str,
        suggested: String,
    },
    #[error("{variable} is unset or empty, but {provider} needs an API key: set it, name another variable with --api-key-env, or use --api-key-file")]
    MissingKey {
        variable: String,
        provider: &'static str,
    },
    #[error("--store {0:?}: {1}")]
    Store(String, String),
    #[error("--deep-chat-script {0}: {1} (give an http(s):// URL, or the path of a local deepChat.bundle.js)")]
    Script(String, String),
    #[error("{0}")]
    AllowModel(String),
    #[error("--route {0} is served twice: give each route its own path")]
    DuplicateRoute(String),
    #[error("demo cannot be part of a fallback chain: it never fails, so use it alone")]
    DemoInChain,
    /// A problem inside one `--route` or `--fallback` section.
    #[error("in {section}: {error}")]
    InSection {
        section: String,
        error: Box<ConfigError>,
    },
}

/// A configuration that passed validation, with what a start should say about it.
pub struct Checked {
    pub config: Config,
    /// Problems that do not stop a start (an unset key a local server may not need).
    pub warnings: Vec<ConfigError>,
    /// One line: provider, model, upstream host, origins, auth, page; never a secret.
    pub summary: String,
}

/// Where the page at `/` loads Deep Chat from.
#[derive(Debug, Clone)]
pub enum PageScript {
    /// A URL the browser fetches itself (a CDN).
    Remote(String),
    /// A local file read at start, served at [`BUNDLE_PATH`] from the page's own origin.
    Bundled(Bytes),
}

/// The route serving a local `--deep-chat-script` file.
pub const BUNDLE_PATH: &str = "/deep-chat.js";

/// Largest local bundle accepted (deep-chat 2.x is about 1.5 MB): a typo naming a huge file
/// must not be read into memory.
pub const MAX_BUNDLE_BYTES: u64 = 16 * 1024 * 1024;

/// The Deep Chat page at `/` (`--playground`, on for `demo`).
#[derive(Debug, Clone)]
pub struct Page {
    pub script: PageScript,
    /// Shown under the heading: which provider and model the page talks to.
    pub description: String,
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
}

/// One Deep Chat endpoint: its path and everything a reply there is made with. Transports
/// carry it (`Arc<Route>`), so the reply pipeline reads the route, never the whole config.
pub struct Route {
    /// Where Deep Chat connects (`--path`, or a `--route PATH`).
    pub path: String,
    pub stop_key: String,
    pub system_prompt: Option<String>,
    pub history_limit: usize,
    /// The limits of replies on this route (connection limits are the proxy's).
    pub limits: Limits,
    /// The upstreams in order: the primary, then its `--fallback`s.
    pub chain: Vec<ProviderConfig>,
    /// Models a request may choose (`--allow-model`); empty = the body's `model` is ignored.
    pub models: AllowedModels,
    /// One phrase for the start-up line and `--check`.
    pub description: String,
}

impl Route {
    /// The first upstream of the chain.
    pub fn primary(&self) -> &ProviderConfig {
        // Validation never builds a route without an upstream.
        &self.chain[0]
    }
}

/// Everything the server needs, validated.
#[derive(Clone)]
pub struct Config {
    /// The first section's path, stop key, prompt, history limit and limits: the page at `/`
    /// and connection-wide limits read them; a reply reads its [`Route`]'s own copy.
    pub path: String,
    pub stop_key: String,
    /// How WebSocket replies are framed unless the connect URL says (`--ws-reply`).
    pub ws_reply: WsReply,
    /// What the browser sees of a reasoning model's thinking (`--reasoning`).
    pub reasoning: ReasoningDisplay,
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
    /// Every Deep Chat endpoint; the first is the main section's (`--path`).
    pub routes: Vec<Arc<Route>>,
    /// The Deep Chat page at `/`; `None` when it is off.
    pub page: Option<Page>,
    /// `--store`: where conversations named by an id are kept.
    pub store: crate::store::StoreSpec,
    /// `--history-ttl`: how long a conversation is kept after its last turn.
    pub history_ttl: Duration,
    /// `--mcp` servers and the tool loop's policy (no servers: no tools).
    pub tools: crate::tools::ToolSettings,
}

impl Config {
    /// Validates the flags as a start does, returning the first problem; warnings are dropped.
    pub fn from_cli(cli: Cli) -> Result<Config, ConfigError> {
        Config::validate(cli, false)
            .map(|checked| checked.config)
            .map_err(|mut errors| errors.remove(0))
    }

    /// Validates every flag and reads the secrets they name, collecting every problem.
    /// `strict` (`--check`) turns warnings into errors: an unset key a start would only warn
    /// about fails the check, since the first message would fail with the provider's 401.
    pub fn validate(cli: Cli, strict: bool) -> Result<Checked, Vec<ConfigError>> {
        let Cli {
            proxy: cli,
            provider: command,
            fallbacks,
            routes: route_sections,
        } = cli;
        let breaker = &BreakerSettings {
            failures: cli.breaker_failures,
            cooldown: Duration::from_secs(cli.breaker_cooldown.max(1)),
            built: Default::default(),
        };
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        if !cli.path.starts_with('/') {
            errors.push(ConfigError::Path(cli.path.clone()));
        }
        if cli.stop_key.chars().count() < 2 {
            errors.push(ConfigError::StopKey);
        }
        if let Some(metrics) = cli.metrics_listen {
            if same_socket(metrics, cli.listen) {
                errors.push(ConfigError::SameListener(metrics));
            }
        }
        let origins = OriginPolicy::parse(&cli.allow_origins)
            .map_err(|bad| errors.extend(bad.into_iter().map(ConfigError::from)))
            .ok();
        let auth = keep(auth(&cli), &mut errors).flatten();
        let client_ip_header = match &cli.client_ip_header {
            Some(name) => keep(
                hyper::header::HeaderName::from_bytes(name.trim().as_bytes())
                    .map_err(|_| ConfigError::Header(name.clone())),
                &mut errors,
            ),
            None => None,
        };
        let store = keep(
            crate::store::StoreSpec::parse(&cli.store).map_err(|why| {
                // A Redis URL may carry a password: never echo one.
                let shown = if cli.store.contains('@') {
                    "redis://…@…".to_owned()
                } else {
                    cli.store.clone()
                };
                ConfigError::Store(shown, why)
            }),
            &mut errors,
        );
        let is_demo = matches!(command, ProviderCommand::Demo(_));
        let chain = build_chain(&command, &fallbacks, breaker)
            .map_err(|problems| errors.extend(problems))
            .ok();
        let provider = chain.map(|chain| {
            let (built, problems) = take_missing_keys(chain);
            if strict {
                errors.extend(problems);
            } else {
                warnings.extend(problems);
            }
            built
        });
        let main_models = keep(
            AllowedModels::parse(&cli.allow_models).map_err(ConfigError::AllowModel),
            &mut errors,
        );
        let page = if cli.playground.unwrap_or(is_demo) {
            let description = provider
                .as_ref()
                .map(|chain| chain_description(chain))
                .unwrap_or_default();
            let page = keep(page_script(&cli.deep_chat_script), &mut errors).map(|script| Page {
                script,
                description,
            });
            let bundled = matches!(
                &page,
                Some(Page {
                    script: PageScript::Bundled(_),
                    ..
                })
            );
            if cli.path == "/" || (bundled && cli.path == BUNDLE_PATH) {
                errors.push(ConfigError::PathClash(cli.path.clone()));
            }
            page
        } else {
            None
        };
        let page_paths: &[&str] = match &page {
            None => &[],
            Some(Page {
                script: PageScript::Bundled(_),
                ..
            }) => &["/", BUNDLE_PATH],
            Some(_) => &["/"],
        };
        let mut paths = vec![cli.path.clone()];
        let mut extra_routes = Vec::new();
        for section in route_sections {
            let name = format!("--route {}", section.path);
            let in_section = |error| ConfigError::InSection {
                section: name.clone(),
                error: Box::new(error),
            };
            if paths.contains(&section.path) {
                errors.push(ConfigError::DuplicateRoute(section.path.clone()));
            }
            paths.push(section.path.clone());
            match route_section(section, breaker, page_paths) {
                Ok((route, problems)) => {
                    let problems = problems.into_iter().map(in_section);
                    if strict {
                        errors.extend(problems);
                    } else {
                        warnings.extend(problems);
                    }
                    extra_routes.push(route);
                }
                Err(problems) => errors.extend(problems.into_iter().map(in_section)),
            }
        }
        let tools = crate::tools::ToolSettings::from_args(&cli.tools).unwrap_or_else(|problems| {
            errors.extend(problems.into_iter().map(ConfigError::Tools));
            Default::default()
        });
        let (Some(origins), Some(provider), Some(main_models), Some(store), true) =
            (origins, provider, main_models, store, errors.is_empty())
        else {
            return Err(errors);
        };
        let main_description = route_description(&provider, &main_models);
        let mut routes_line = String::new();
        for route in &extra_routes {
            routes_line.push_str(&format!(
                "; route {}: provider {}",
                route.path, route.description
            ));
        }
        let mut summary = summary(&cli, &main_description, &origins, page.as_ref()) + &routes_line;
        if !tools.servers.is_empty() {
            summary.push_str("; ");
            summary.push_str(&tools.describe());
        }
        let secs = Duration::from_secs;
        let config = Config {
            path: cli.path,
            stop_key: cli.stop_key,
            ws_reply: cli.ws_reply,
            reasoning: cli.reasoning,
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
                client_ip_header,
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
            origins,
            auth,
            log_content: cli.log_content,
            routes: Vec::new(),
            page,
            store,
            history_ttl: secs(cli.history_ttl.max(1)),
            tools,
        };
        let main = Route {
            path: config.path.clone(),
            stop_key: config.stop_key.clone(),
            system_prompt: config.system_prompt.clone(),
            history_limit: config.history_limit,
            limits: config.limits.clone(),
            chain: provider.into_iter().map(|built| built.config).collect(),
            models: main_models,
            description: main_description,
        };
        let mut config = config;
        let mut routes: Vec<Route> = std::iter::once(main)
            .chain(extra_routes.into_iter().map(|route| route.inherit(&config)))
            .collect();
        // Providers that stream thinking only on request are asked when it is shown.
        for upstream in routes.iter_mut().flat_map(|route| route.chain.iter_mut()) {
            if let ProviderConfig::Http(http) = upstream {
                http.generation.reasoning.stream_thoughts = cli.reasoning != ReasoningDisplay::Hide;
            }
        }
        config.routes = routes.into_iter().map(Arc::new).collect();
        Ok(Checked {
            config,
            warnings,
            summary,
        })
    }
}

/// Moves an error into `errors`, keeping the value if there was one.
fn keep<T>(result: Result<T, ConfigError>, errors: &mut Vec<ConfigError>) -> Option<T> {
    result.map_err(|err| errors.push(err)).ok()
}

/// Whether two listeners would fight over one port: the same port (not 0, which picks a free
/// one) on the same address, or on any address when either is the unspecified one.
fn same_socket(a: std::net::SocketAddr, b: std::net::SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// `--deep-chat-script`: a URL is handed to the browser; anything else is a local file, read
/// now so that a wrong path fails the start (and `--check`) instead of the page.
fn page_script(value: &str) -> Result<PageScript, ConfigError> {
    let value = value.trim();
    let lower = value.to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        return Ok(PageScript::Remote(value.to_owned()));
    }
    let fail = |reason: String| ConfigError::Script(value.to_owned(), reason);
    let file = std::fs::File::open(value).map_err(|e| fail(e.to_string()))?;
    let size = file.metadata().map_err(|e| fail(e.to_string()))?.len();
    if size > MAX_BUNDLE_BYTES {
        return Err(fail(format!(
            "{size} bytes is more than the {MAX_BUNDLE_BYTES} a Deep Chat bundle needs"
        )));
    }
    let mut bytes = Vec::new();
    // The bound holds even if the file grows between the size check and the read.
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, MAX_BUNDLE_BYTES + 1),
        &mut bytes,
    )
    .map_err(|e| fail(e.to_string()))?;
    if bytes.is_empty() || bytes.len() as u64 > MAX_BUNDLE_BYTES {
        return Err(fail("empty, or changed while being read".into()));
    }
    Ok(PageScript::Bundled(Bytes::from(bytes)))
}

/// The start-up line: what will run, with variable and file names but never their contents.
fn summary(cli: &ProxyArgs, provider: &str, origins: &OriginPolicy, page: Option<&Page>) -> String {
    let auth = match (
        &cli.auth_token_env,
        &cli.jwt_secret_env,
        &cli.jwt_public_key,
    ) {
        (None, None, None) => "none".to_owned(),
        (tokens, secret, public) => {
            let mut modes = Vec::new();
            if let Some(variable) = tokens {
                modes.push(format!("bearer tokens from ${variable}"));
            }
            if let Some(variable) = secret {
                modes.push(format!("HS256 JWTs keyed by ${variable}"));
            } else if let Some(path) = public {
                modes.push(format!("JWTs verified with {}", path.display()));
            }
            modes.join(" + ")
        }
    };
    let metrics = match cli.metrics_listen {
        Some(address) => address.to_string(),
        None => "on the main listener".to_owned(),
    };
    let page = match page.map(|p| &p.script) {
        None => "off".to_owned(),
        Some(PageScript::Remote(url)) => format!("/ (Deep Chat from {url})"),
        Some(PageScript::Bundled(bytes)) => format!(
            "/ (Deep Chat from {}, {} bytes, served at {BUNDLE_PATH})",
            cli.deep_chat_script.trim(),
            bytes.len()
        ),
    };
    format!(
        "provider {provider}; path {}; origins: {}; auth: {auth}; metrics: {metrics}; page: {page}; store: {}",
        cli.path,
        origins.describe(),
        crate::store::StoreSpec::parse(&cli.store)
            .map(|spec| spec.describe())
            .unwrap_or_default()
    )
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

    /// Readiness probes the host every request goes to, for every provider of the table.
    #[test]
    fn readiness_probes_the_base_url_host_of_every_provider() {
        use clap::Parser;
        for provider in deepchat_adapters::providers::PROVIDERS {
            let parse = |base: Option<&str>| {
                let mut argv = vec!["deepchat-proxy", provider.name, "--model", "m"];
                argv.extend(base.map(|base| ["--base-url", base]).into_iter().flatten());
                let cli = Cli::try_parse_from(argv).expect("flags");
                let config = Config::from_cli(cli).expect("config");
                crate::upstream::probe_target(config.routes[0].primary())
            };
            assert_eq!(
                parse(Some("http://127.0.0.1:4321/")).as_deref(),
                Some("127.0.0.1:4321"),
                "{}",
                provider.name
            );
            if let Some(default) = provider.default_base_url {
                let host = reqwest::Url::parse(default).expect("default URL");
                let expected = format!(
                    "{}:{}",
                    host.host_str().unwrap_or_default(),
                    host.port_or_known_default().unwrap_or_default()
                );
                assert_eq!(parse(None), Some(expected), "{}", provider.name);
            }
        }
    }

    /// A `--route` section keeps what it sets and takes the rest from the first section,
    /// except `--allow-model`, which is per route.
    #[test]
    fn routes_inherit_the_first_sections_settings_unless_they_set_their_own() {
        let argv = [
            "deepchat-proxy",
            "--stop-key",
            "[DONE]",
            "--system-prompt",
            "Main.",
            "--max-messages",
            "7",
            "--allow-model",
            "a=b",
            "demo",
            "--route",
            "/own",
            "--stop-key",
            "[OWN]",
            "--system-prompt",
            "",
            "--max-messages",
            "3",
            "demo",
            "--route",
            "/inherits",
            "demo",
        ];
        let parsed = crate::cli::parse_from(argv).expect("flags");
        let config = Config::from_cli(parsed.cli).expect("config");
        let paths: Vec<&str> = config.routes.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["/chat", "/own", "/inherits"]);
        let (main, own, inherits) = (&config.routes[0], &config.routes[1], &config.routes[2]);
        assert_eq!(main.models.describe(), "a=b");
        assert_eq!(
            (own.stop_key.as_str(), own.system_prompt.as_deref()),
            ("[OWN]", None)
        );
        assert_eq!(own.limits.max_messages, 3);
        assert_eq!(
            (
                inherits.stop_key.as_str(),
                inherits.system_prompt.as_deref()
            ),
            ("[DONE]", Some("Main."))
        );
        assert_eq!(inherits.limits.max_messages, 7);
        assert!(own.models.is_empty() && inherits.models.is_empty());
    }

    #[test]
    fn api_key_debug_is_redacted() {
        assert_eq!(
            format!("{:?}", ApiKey("sk-secret".into())),
            "ApiKey(<redacted>)"
        );
    }
}
