//! The subcommands: one per entry of the provider table, built with clap's builder API so the
//! table decides their names, defaults and options, all parsed into one [`ProviderArgs`]; then
//! the built-in `demo`, `completions` and `man`.

use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Args, FromArgMatches, Subcommand};
use deepchat_adapters::presets;
use deepchat_adapters::providers::{Provider, PROVIDERS};

/// The upstream to relay to: a provider of the table, or a command that is not a provider.
// Parsed once per process: the size of its largest variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ProviderCommand {
    /// An HTTP provider: one entry of the provider table and its options.
    Provider(ProviderArgs),
    /// The offline demo.
    Demo(DemoArgs),
    /// Shell completions for `shell`.
    Completions { shell: clap_complete::Shell },
    /// The man page.
    Man,
}

/// The subcommands that are not providers (derived as usual; they follow the table's).
#[derive(Debug, Subcommand)]
enum BuiltIn {
    /// No network, no key: streams an echo and a canned answer; the page at `/` is on.
    Demo(DemoArgs),
    /// Print shell completions for SHELL (bash, zsh, fish, elvish, powershell) and exit.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) and exit.
    Man,
}

impl From<BuiltIn> for ProviderCommand {
    fn from(command: BuiltIn) -> Self {
        match command {
            BuiltIn::Demo(args) => ProviderCommand::Demo(args),
            BuiltIn::Completions { shell } => ProviderCommand::Completions { shell },
            BuiltIn::Man => ProviderCommand::Man,
        }
    }
}

impl ProviderCommand {
    /// Adds one subcommand per entry of `table`, in its order, then `demo`, `completions`, `man`.
    pub fn augment_for(command: clap::Command, table: &'static [Provider]) -> clap::Command {
        let command = table.iter().fold(command, |command, provider| {
            command.subcommand(provider_command(provider))
        });
        BuiltIn::augment_subcommands(command)
    }

    /// The subcommand in `matches`, read against the table its command was built from.
    pub fn from_matches_in(
        table: &'static [Provider],
        matches: &ArgMatches,
    ) -> Result<Self, clap::Error> {
        if let Some((name, sub_matches)) = matches.subcommand() {
            if let Some(provider) = table.iter().find(|p| p.name == name) {
                return ProviderArgs::from_matches(provider, sub_matches).map(Self::Provider);
            }
        }
        BuiltIn::from_arg_matches(matches).map(Into::into)
    }
}

impl FromArgMatches for ProviderCommand {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Self::from_matches_in(PROVIDERS, matches)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Subcommand for ProviderCommand {
    fn augment_subcommands(command: clap::Command) -> clap::Command {
        Self::augment_for(command, PROVIDERS)
    }

    fn augment_subcommands_for_update(command: clap::Command) -> clap::Command {
        Self::augment_for(command, PROVIDERS)
    }

    fn has_subcommand(name: &str) -> bool {
        PROVIDERS.iter().any(|p| p.name == name) || BuiltIn::has_subcommand(name)
    }
}

/// `--reasoning-effort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReasoningEffort {
    Low,
    Medium,
    High,
}

impl From<ReasoningEffort> for deepchat_adapters::Effort {
    fn from(effort: ReasoningEffort) -> Self {
        match effort {
            ReasoningEffort::Low => deepchat_adapters::Effort::Low,
            ReasoningEffort::Medium => deepchat_adapters::Effort::Medium,
            ReasoningEffort::High => deepchat_adapters::Effort::High,
        }
    }
}

/// Options every HTTP provider shares.
#[derive(Debug, Args)]
pub struct GenerationArgs {
    /// Model name sent upstream.
    #[arg(long, env = "DEEPCHAT_PROXY_MODEL", value_name = "NAME")]
    pub model: String,

    /// Sampling temperature.
    #[arg(long, env = "DEEPCHAT_PROXY_TEMPERATURE")]
    pub temperature: Option<f32>,

    /// Most tokens per reply.
    #[arg(long, env = "DEEPCHAT_PROXY_MAX_TOKENS")]
    pub max_tokens: Option<u32>,

    /// How hard a reasoning model thinks (openai, openai-responses, azure, ollama).
    #[arg(
        long,
        env = "DEEPCHAT_PROXY_REASONING_EFFORT",
        value_enum,
        value_name = "LEVEL"
    )]
    pub reasoning_effort: Option<ReasoningEffort>,

    /// Most tokens a reasoning model may think (anthropic: turns thinking on, needs
    /// --max-tokens above it; gemini; cohere).
    #[arg(long, env = "DEEPCHAT_PROXY_THINKING_BUDGET", value_name = "TOKENS")]
    pub thinking_budget: Option<u32>,

    /// Extra upstream header, `Name: value` (repeatable; one per line in the env var).
    #[arg(
        long = "header",
        env = "DEEPCHAT_PROXY_HEADER",
        value_name = "NAME: VALUE",
        value_delimiter = '\n'
    )]
    pub headers: Vec<String>,

    /// File holding the API key (a mounted secret); wins over --api-key-env.
    #[arg(long, env = "DEEPCHAT_PROXY_API_KEY_FILE", value_name = "FILE")]
    pub api_key_file: Option<std::path::PathBuf>,
}

/// One provider subcommand, parsed: the same options for every entry of the table.
#[derive(Debug)]
pub struct ProviderArgs {
    /// The table entry the subcommand names.
    pub provider: &'static Provider,
    /// `--base-url`; `None` only where the provider takes presets (a preset or the table's
    /// default then decides).
    pub base_url: Option<String>,
    /// `--api-key-env`, or the provider's conventional variable where no preset can change it.
    pub api_key_env: Option<String>,
    /// `--api-key-env` came from the command line or its variable rather than a default: an
    /// unset variable the operator named is a mistake even for a local server.
    pub api_key_env_named: bool,
    /// `--preset`, for a provider that takes presets.
    pub preset: Option<String>,
    /// `--api-version`, for a provider that takes one (its default from the table).
    pub api_version: Option<String>,
    /// Model, sampling, token limit, headers and key file: the options every provider shares.
    pub generation: GenerationArgs,
}

impl ProviderArgs {
    fn from_matches(
        provider: &'static Provider,
        matches: &ArgMatches,
    ) -> Result<ProviderArgs, clap::Error> {
        // An option this provider does not take is absent, not an error.
        let text = |id: &str| matches.try_get_one::<String>(id).ok().flatten().cloned();
        let api_key_env_named = matches!(
            matches.value_source("api_key_env"),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        Ok(ProviderArgs {
            provider,
            base_url: text("base_url"),
            api_key_env: text("api_key_env"),
            api_key_env_named,
            preset: text("preset"),
            api_version: text("api_version"),
            generation: GenerationArgs::from_arg_matches(matches)?,
        })
    }
}

/// The subcommand of one provider: its defaults and help from its table entry, then the
/// options every provider shares.
fn provider_command(provider: &'static Provider) -> clap::Command {
    let mut command = clap::Command::new(provider.name);
    if provider.presets {
        let known: Vec<&str> = presets::PRESETS.iter().map(|p| p.name).collect();
        command = command.arg(
            Arg::new("preset")
                .long("preset")
                .env("DEEPCHAT_PROXY_PRESET")
                .value_name("PRESET")
                .help(format!(
                    "An OpenAI-compatible host by name: sets the base URL and key variable \
                     ({}). Explicit --base-url / --api-key-env win",
                    known.join(", ")
                )),
        );
    }
    let appended = format!("`{{base-url}}{}`", provider.endpoint);
    let base_url = Arg::new("base_url")
        .long("base-url")
        .env("DEEPCHAT_PROXY_BASE_URL")
        .value_name("BASE_URL");
    // With presets the default depends on the preset, so clap cannot show or apply it.
    let base_url = match (provider.default_base_url, provider.presets) {
        (Some(default), true) => base_url.help(format!(
            "API root; requests go to {appended} [default: {default}, or the preset's]"
        )),
        (Some(default), false) => base_url
            .help(format!(
                "API root of the provider; requests go to {appended}…"
            ))
            .default_value(default),
        (None, _) => base_url.required(true).help(format!(
            "API root of your own resource (no default: each account has its own); requests \
             go to {appended}…"
        )),
    };
    let sent_as = match provider.key_header {
        "authorization" => "`Authorization: Bearer`".to_owned(),
        header => format!("`{header}`"),
    };
    let key_env = Arg::new("api_key_env")
        .long("api-key-env")
        .env("DEEPCHAT_PROXY_API_KEY_ENV")
        .value_name("API_KEY_ENV");
    let key_env = match (provider.default_key_env, provider.presets) {
        (Some(default), true) => key_env.help(format!(
            "Environment variable holding the API key, sent as {sent_as} (unset is fine for \
             keyless local servers) [default: {default}, or the preset's]"
        )),
        (Some(default), false) => key_env
            .help(format!(
                "Environment variable holding the API key, sent as {sent_as}"
            ))
            .default_value(default),
        (None, _) => key_env.help(format!(
            "Environment variable holding a key, sent as {sent_as}, for a server behind an \
             authenticating proxy (none by default)"
        )),
    };
    command = command.arg(base_url).arg(key_env);
    if let Some(default) = provider.api_version {
        command = command.arg(
            Arg::new("api_version")
                .long("api-version")
                .env("DEEPCHAT_PROXY_API_VERSION")
                .value_name("API_VERSION")
                .default_value(default)
                .help("The `api-version` query parameter"),
        );
    }
    command = GenerationArgs::augment_args(command);
    if let Some(help) = provider.model_help {
        command = command.mut_arg("model", |arg| arg.help(help));
    }
    // Last, so no derived part can override the entry's own summary.
    command.about(provider.summary)
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Pace of the canned reply.
    #[arg(long, env = "DEEPCHAT_PROXY_TOKENS_PER_SECOND", default_value_t = 30.0)]
    pub tokens_per_second: f64,
}
