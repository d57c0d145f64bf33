//! The routes' upstream chains, built from the validated flags: each provider with its preset,
//! key, base URL and reasoning settings, its fallbacks, and the circuit breaker per target.

use super::*;

/// `--breaker-failures` and `--breaker-cooldown`, and the breakers built from them: one per
/// upstream target (provider and base URL), shared by every route and chain that names it, so
/// a provider found dead by one route is skipped by the others too.
pub(super) struct BreakerSettings {
    pub(super) failures: u32,
    pub(super) cooldown: Duration,
    pub(super) built: std::cell::RefCell<Vec<(String, Arc<Breaker>)>>,
}

impl BreakerSettings {
    /// The breaker of the target `key`, made on first use.
    fn for_target(&self, key: String) -> Arc<Breaker> {
        let mut built = self.built.borrow_mut();
        if let Some((_, breaker)) = built.iter().find(|(known, _)| *known == key) {
            return breaker.clone();
        }
        let breaker = Arc::new(Breaker::new(self.failures, self.cooldown));
        built.push((key, breaker.clone()));
        breaker
    }
}

/// A section's chain: its provider, then its `--fallback`s, each validated (problems of a
/// fallback name it).
pub(super) fn build_chain(
    primary: &ProviderCommand,
    fallbacks: &[ProviderCommand],
    breaker: &BreakerSettings,
) -> Result<Vec<BuiltProvider>, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut chain = Vec::new();
    for (position, command) in std::iter::once(primary).chain(fallbacks).enumerate() {
        let built = match command {
            ProviderCommand::Provider(args) => http_upstream(args, breaker),
            ProviderCommand::Demo(_) if !fallbacks.is_empty() => {
                Err(vec![ConfigError::DemoInChain])
            }
            ProviderCommand::Demo(args) => demo(args),
            ProviderCommand::Completions { .. } | ProviderCommand::Man => {
                Err(vec![ConfigError::NotAProvider])
            }
        };
        match (built, position) {
            (Ok(built), _) => chain.push(built),
            (Err(problems), 0) => errors.extend(problems),
            (Err(problems), _) => {
                let section = match command {
                    ProviderCommand::Provider(args) => {
                        format!("--fallback {}", args.provider.name)
                    }
                    _ => "--fallback".to_owned(),
                };
                errors.extend(problems.into_iter().map(|error| ConfigError::InSection {
                    section: section.clone(),
                    error: Box::new(error),
                }));
            }
        }
    }
    if errors.is_empty() {
        Ok(chain)
    } else {
        Err(errors)
    }
}

/// Moves each upstream's unset-key problem out, for a warning (or a `--check` error).
pub(super) fn take_missing_keys(
    mut chain: Vec<BuiltProvider>,
) -> (Vec<BuiltProvider>, Vec<ConfigError>) {
    let missing = chain
        .iter_mut()
        .filter_map(|built| built.missing_key.take())
        .collect();
    (chain, missing)
}

/// `openai, model m, upstream h`, then `, falling back to …` for each fallback.
pub(super) fn chain_description(chain: &[BuiltProvider]) -> String {
    let shown: Vec<&str> = chain.iter().map(|b| b.description.as_str()).collect();
    shown.join(", falling back to ")
}

/// The chain's description, with the models a client may choose.
pub(super) fn route_description(chain: &[BuiltProvider], models: &AllowedModels) -> String {
    let mut description = chain_description(chain);
    if !models.is_empty() {
        description.push_str(&format!(" (client may choose: {})", models.describe()));
    }
    description
}

/// A `--route` section that passed validation; its unset per-route flags come from the main
/// section once that is known ([`PendingRoute::inherit`]).
pub(super) struct PendingRoute {
    pub(super) path: String,
    overrides: crate::cli::RouteOverrides,
    chain: Vec<ProviderConfig>,
    models: AllowedModels,
    pub(super) description: String,
}

impl PendingRoute {
    pub(super) fn inherit(self, main: &Config) -> Route {
        let o = self.overrides;
        let mut limits = main.limits.clone();
        limits.max_messages = o.max_messages.map_or(limits.max_messages, |n| n.max(1));
        limits.max_conversation_chars = o
            .max_conversation_chars
            .map_or(limits.max_conversation_chars, |n| n.max(1));
        limits.max_images = o.max_images.unwrap_or(limits.max_images);
        limits.max_image_bytes = o.max_image_bytes.unwrap_or(limits.max_image_bytes);
        limits.max_json_reply_bytes = o
            .max_json_reply_bytes
            .map_or(limits.max_json_reply_bytes, |n| n.max(1));
        Route {
            path: self.path,
            stop_key: o.stop_key.unwrap_or_else(|| main.stop_key.clone()),
            system_prompt: match o.system_prompt {
                Some(prompt) => Some(prompt).filter(|p| !p.is_empty()),
                None => main.system_prompt.clone(),
            },
            history_limit: o.history_limit.map_or(main.history_limit, |n| n as usize),
            limits,
            chain: self.chain,
            models: self.models,
            description: self.description,
        }
    }
}

/// Validates one `--route` section: its path, stop key, models and chain. Returns the route
/// and its warnings (unset keys).
pub(super) fn route_section(
    section: RouteArgs,
    breaker: &BreakerSettings,
    page_paths: &[&str],
) -> Result<(PendingRoute, Vec<ConfigError>), Vec<ConfigError>> {
    let mut errors = Vec::new();
    if !section.path.starts_with('/') {
        errors.push(ConfigError::Path(section.path.clone()));
    }
    if page_paths.contains(&section.path.as_str()) {
        errors.push(ConfigError::PathClash(section.path.clone()));
    }
    if section
        .overrides
        .stop_key
        .as_ref()
        .is_some_and(|key| key.chars().count() < 2)
    {
        errors.push(ConfigError::StopKey);
    }
    let models = keep(
        AllowedModels::parse(&section.overrides.allow_models).map_err(ConfigError::AllowModel),
        &mut errors,
    );
    let chain = build_chain(&section.provider, &section.fallbacks, breaker)
        .map_err(|problems| errors.extend(problems))
        .ok();
    let (Some(models), Some(chain), true) = (models, chain, errors.is_empty()) else {
        return Err(errors);
    };
    let (chain, warnings) = take_missing_keys(chain);
    let description = route_description(&chain, &models);
    Ok((
        PendingRoute {
            path: section.path,
            overrides: section.overrides,
            chain: chain.into_iter().map(|built| built.config).collect(),
            models,
            description,
        },
        warnings,
    ))
}

/// A provider that passed validation, with its one-phrase description for the start line.
pub(super) struct BuiltProvider {
    pub(super) config: ProviderConfig,
    /// e.g. `openai, model gpt-4o-mini, upstream api.openai.com`.
    description: String,
    /// The key variable is unset although this upstream needs a key.
    missing_key: Option<ConfigError>,
}

/// The variable an API key is read from, and whether the operator named it.
pub(super) struct KeyVariable<'a> {
    name: Option<&'a str>,
    /// Named by a flag or its variable: an unset variable is then a mistake even for a local
    /// server. A default one is missing only for an https upstream off loopback: hosted APIs
    /// are all https, while a plain-http or local upstream is a self-hosted server that often
    /// needs no key.
    explicit: bool,
}

/// Any provider of the table. Explicit flags win over a preset, a preset over the provider's
/// own defaults.
fn http_upstream(
    args: &ProviderArgs,
    breaker: &BreakerSettings,
) -> Result<BuiltProvider, Vec<ConfigError>> {
    let provider = args.provider;
    let generation = &args.generation;
    let preset = match &args.preset {
        Some(name) => Some(presets::preset(name).ok_or_else(|| {
            let known: Vec<&str> = presets::PRESETS.iter().map(|p| p.name).collect();
            vec![ConfigError::Preset(name.clone(), known.join(", "))]
        })?),
        None => None,
    };
    let base_url = args
        .base_url
        .clone()
        .or_else(|| preset.map(|p| p.base_url.to_owned()))
        .or_else(|| provider.default_base_url.map(str::to_owned))
        .unwrap_or_default();
    let key = match (&args.api_key_env, preset) {
        (Some(variable), _) => KeyVariable {
            name: Some(variable),
            explicit: args.api_key_env_named,
        },
        (None, Some(preset)) => KeyVariable {
            name: preset.api_key_env,
            explicit: false,
        },
        (None, None) => KeyVariable {
            name: provider.default_key_env,
            explicit: false,
        },
    };
    let mut errors = Vec::new();
    let base = keep(check_base_url(&base_url, provider), &mut errors);
    if generation.model.trim().is_empty() {
        errors.push(ConfigError::EmptyModel);
    }
    let extra_headers = keep(parse_headers(&generation.headers), &mut errors);
    let reasoning = keep(reasoning_request(provider, generation), &mut errors);
    let api_key = match (&generation.api_key_file, key.name) {
        (Some(path), _) => keep(read_secret_file(path).map(ApiKey), &mut errors),
        (None, Some(variable)) => keep(read_key(variable), &mut errors).flatten(),
        (None, None) => None,
    };
    let (Some((url, host)), Some(extra_headers), Some(reasoning), true) =
        (base, extra_headers, reasoning, errors.is_empty())
    else {
        return Err(errors);
    };
    let missing_key = match key.name {
        Some(variable)
            if api_key.is_none()
                && generation.api_key_file.is_none()
                && !carries_credentials(provider, &extra_headers)
                && (key.explicit || (url.starts_with("https://") && !is_loopback_host(&host))) =>
        {
            Some(ConfigError::MissingKey {
                variable: variable.to_owned(),
                provider: provider.name,
            })
        }
        _ => None,
    };
    let shown_name = match preset {
        Some(preset) => format!("{} (preset {})", provider.name, preset.name),
        None => provider.name.to_owned(),
    };
    let description = format!("{shown_name}, model {}, upstream {host}", generation.model);
    let secrets = Secrets::new(
        api_key
            .iter()
            .map(ApiKey::expose)
            .chain(extra_headers.iter().map(|(_, value)| value.as_str())),
    );
    let adapter = (provider.build)(&Settings {
        base_url: url.clone(),
        api_version: args.api_version.clone(),
    });
    let label = format!("{} upstream at {host}", adapter.name());
    let breaker = breaker.for_target(format!("{} {url}", provider.name));
    Ok(BuiltProvider {
        config: ProviderConfig::Http(HttpUpstream {
            provider,
            base_url: url,
            adapter,
            api_key,
            label,
            secrets,
            generation: Generation {
                model: generation.model.clone(),
                temperature: generation.temperature,
                max_tokens: generation.max_tokens,
                extra_headers,
                reasoning,
            },
            breaker,
        }),
        description,
        missing_key,
    })
}

/// Providers that take `--reasoning-effort` and `--thinking-budget`, by table name.
const TAKE_EFFORT: &[&str] = &["openai", "openai-responses", "azure", "ollama"];
const TAKE_BUDGET: &[&str] = &["anthropic", "gemini", "cohere"];
/// Anthropic's smallest thinking budget.
const ANTHROPIC_MIN_BUDGET: u32 = 1024;

/// `--reasoning-effort` and `--thinking-budget` for `provider`: a flag it has no field for is
/// an error (it would be silently dropped, or rejected by the provider on every message), as
/// is an Anthropic budget that leaves no room for the answer.
fn reasoning_request(
    provider: &Provider,
    generation: &crate::cli::GenerationArgs,
) -> Result<deepchat_adapters::ReasoningRequest, ConfigError> {
    let name = provider.name;
    if generation.reasoning_effort.is_some() && !TAKE_EFFORT.contains(&name) {
        return Err(ConfigError::Reasoning(format!(
            "{name} takes no --reasoning-effort; use --thinking-budget TOKENS instead"
        )));
    }
    if let Some(budget) = generation.thinking_budget {
        if !TAKE_BUDGET.contains(&name) {
            return Err(ConfigError::Reasoning(format!(
                "{name} takes no --thinking-budget; use --reasoning-effort low|medium|high instead"
            )));
        }
        if name == "anthropic" {
            let max_tokens = generation
                .max_tokens
                .unwrap_or(deepchat_adapters::anthropic::DEFAULT_MAX_TOKENS);
            if budget < ANTHROPIC_MIN_BUDGET {
                return Err(ConfigError::Reasoning(format!(
                    "--thinking-budget {budget} is below Anthropic's minimum of {ANTHROPIC_MIN_BUDGET} tokens"
                )));
            }
            if max_tokens <= budget {
                return Err(ConfigError::Reasoning(format!(
                    "--thinking-budget {budget} leaves no room for the answer: anthropic counts the thinking within --max-tokens ({max_tokens}), so set --max-tokens above it, e.g. --max-tokens {}",
                    budget.saturating_add(deepchat_adapters::anthropic::DEFAULT_MAX_TOKENS)
                )));
            }
            if generation.temperature.is_some() {
                return Err(ConfigError::Reasoning(
                    "anthropic does not take --temperature while thinking (--thinking-budget): drop one of them".into(),
                ));
            }
        }
    }
    Ok(deepchat_adapters::ReasoningRequest {
        effort: generation.reasoning_effort.map(Into::into),
        budget_tokens: generation.thinking_budget,
        stream_thoughts: false,
    })
}

/// The base URL without a trailing slash, and its host (with port) for messages. A base URL
/// that already ends in what the proxy appends would double it (`…/chat/completions/chat/completions`).
fn check_base_url(url: &str, provider: &Provider) -> Result<(String, String), ConfigError> {
    let trimmed = url.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(trimmed)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .filter(|u| u.host_str().is_some_and(|h| !h.is_empty()))
        .ok_or_else(|| ConfigError::BaseUrl(url.to_owned()))?;
    let lower = trimmed.to_ascii_lowercase();
    if let Some(tail) = provider
        .base_url_tails
        .iter()
        .find(|tail| lower.ends_with(*tail))
    {
        let suggested = &trimmed[..trimmed.len() - tail.len()];
        return Err(ConfigError::BaseUrlEndpoint {
            url: url.to_owned(),
            tail,
            suggested: suggested.to_owned(),
        });
    }
    let host = match (parsed.host_str(), parsed.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => String::new(),
    };
    Ok((trimmed.to_owned(), host))
}

/// `localhost`, `127.x.x.x` or `[::1]`, with or without a port: a local server, which often
/// needs no key.
fn is_loopback_host(host_and_port: &str) -> bool {
    let host = match host_and_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_and_port.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An `--header` that already authenticates the request: the provider's own key header, or
/// one of the usual ones (a gateway's own scheme).
fn carries_credentials(provider: &Provider, headers: &[(String, String)]) -> bool {
    headers.iter().any(|(name, _)| {
        name.eq_ignore_ascii_case(provider.key_header)
            || matches!(name.as_str(), "authorization" | "x-api-key" | "api-key")
    })
}

fn demo(args: &DemoArgs) -> Result<BuiltProvider, Vec<ConfigError>> {
    if !(0.1..=10_000.0).contains(&args.tokens_per_second) {
        return Err(vec![ConfigError::TokensPerSecond]);
    }
    Ok(BuiltProvider {
        config: ProviderConfig::Demo(Demo {
            token_interval: Duration::from_secs_f64(1.0 / args.tokens_per_second),
        }),
        description: "demo (offline, no key)".into(),
        missing_key: None,
    })
}
