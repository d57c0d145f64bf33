//! Several routes and fallback chains on one command line. The argument list is cut into
//! sections before clap sees it: everything before the first `--route PATH` is the main
//! section (exactly today's command line, serving `--path`); each `--route PATH` opens a
//! section of its own with a provider subcommand and per-route flags; `--fallback PROVIDER …`
//! inside any section adds the next upstream of that section's chain. Each section is parsed by
//! the same clap command, so its flags, defaults and errors are the ones `--help` shows.

use super::provider::ProviderCommand;
use clap::parser::ValueSource;
use clap::ArgMatches;
use deepchat_adapters::providers::Provider;
use std::ffi::OsString;

/// Explains the section syntax at the end of `--help`.
pub const ROUTES_HELP: &str = "\
Several routes and fallbacks:
  deepchat-proxy [FLAGS] PROVIDER [OPTIONS] [--fallback PROVIDER [OPTIONS]]...
      [--route PATH [ROUTE FLAGS] PROVIDER [OPTIONS] [--fallback PROVIDER [OPTIONS]]...]...
  The first section serves --path; each --route PATH serves another path with its own
  provider, model and key. ROUTE FLAGS are --allow-model, --system-prompt, --stop-key and
  the limits --history-limit, --max-messages, --max-conversation-chars, --max-images,
  plus --max-image-bytes and --max-json-reply-bytes; unset ones come from the first
  section, except --allow-model. A --fallback is tried when the upstream before it fails before any
  text was sent. Flags inside --route and --fallback sections come from the command line
  (or a --config FILE) only.
Long setups: --config FILE stands for the flags written in FILE (the same names, in the same
  order; quotes group words, # comments), placed where --config FILE is.";

/// Flags a `--route` section may set for itself (clap ids).
const ROUTE_FLAGS: &[&str] = &[
    "allow_models",
    "system_prompt",
    "stop_key",
    "history_limit",
    "max_messages",
    "max_conversation_chars",
    "max_images",
    "max_image_bytes",
    "max_json_reply_bytes",
];

/// One `--route PATH` section, parsed.
#[derive(Debug)]
pub struct RouteArgs {
    /// Where this route's Deep Chat connects.
    pub path: String,
    /// The per-route flags given in the section; unset ones come from the main section.
    pub overrides: RouteOverrides,
    /// The route's first upstream.
    pub provider: ProviderCommand,
    /// `--fallback` sections, in order.
    pub fallbacks: Vec<ProviderCommand>,
}

/// The per-route flags of a `--route` section, `None` where the section left them out.
#[derive(Debug, Default)]
pub struct RouteOverrides {
    pub allow_models: Vec<String>,
    pub system_prompt: Option<String>,
    pub stop_key: Option<String>,
    pub history_limit: Option<u32>,
    pub max_messages: Option<usize>,
    pub max_conversation_chars: Option<usize>,
    pub max_images: Option<usize>,
    pub max_image_bytes: Option<usize>,
    pub max_json_reply_bytes: Option<usize>,
}

/// The argument list cut at `--route` and `--fallback`.
#[derive(Debug, Default)]
pub(super) struct Sections {
    /// The program name and the main section: parsed as a whole command line.
    pub main: Vec<OsString>,
    /// The main section's `--fallback` sections (each starting with its provider).
    pub main_fallbacks: Vec<Vec<OsString>>,
    pub routes: Vec<RouteSection>,
}

#[derive(Debug)]
pub(super) struct RouteSection {
    pub path: String,
    pub args: Vec<OsString>,
    pub fallbacks: Vec<Vec<OsString>>,
}

/// Cuts `args` (program name first) into sections. A `--route` without a path is an error.
pub(super) fn split(args: &[OsString]) -> Result<Sections, String> {
    let mut sections = Sections::default();
    let mut tokens = args.iter();
    if let Some(program) = tokens.next() {
        sections.main.push(program.clone());
    }
    // Where the next plain token goes: the main section or the newest route, and whether a
    // `--fallback` opened a fallback section there.
    let mut in_fallback = false;
    while let Some(token) = tokens.next() {
        let text = token.to_string_lossy();
        let route_path = if text == "--route" {
            match tokens.next() {
                Some(path) => Some(path.to_string_lossy().into_owned()),
                None => return Err("--route needs a PATH, e.g. --route /claude".into()),
            }
        } else {
            text.strip_prefix("--route=").map(str::to_owned)
        };
        if let Some(path) = route_path {
            sections.routes.push(RouteSection {
                path,
                args: Vec::new(),
                fallbacks: Vec::new(),
            });
            in_fallback = false;
            continue;
        }
        if text == "--fallback" {
            match sections.routes.last_mut() {
                Some(route) => route.fallbacks.push(Vec::new()),
                None => sections.main_fallbacks.push(Vec::new()),
            }
            in_fallback = true;
            continue;
        }
        let target = match (sections.routes.last_mut(), in_fallback) {
            (None, false) => &mut sections.main,
            (None, true) => sections
                .main_fallbacks
                .last_mut()
                .unwrap_or(&mut sections.main),
            (Some(route), false) => &mut route.args,
            (Some(route), true) => match route.fallbacks.last_mut() {
                Some(fallback) => fallback,
                None => &mut route.args,
            },
        };
        target.push(token.clone());
    }
    Ok(sections)
}

/// The command a section is parsed with: the whole command line's, without environment
/// variables (they configure the main section only; a second route reading
/// `DEEPCHAT_PROXY_MODEL` would silently share the first one's model).
pub(super) fn section_command(table: &'static [Provider]) -> clap::Command {
    super::command_for(table)
        .mut_args(|arg| arg.env(None))
        .mut_subcommands(|sub| sub.mut_args(|arg| arg.env(None)))
}

/// Parses one `--route` section.
pub(super) fn parse_route(
    table: &'static [Provider],
    section: &RouteSection,
) -> Result<RouteArgs, clap::Error> {
    let name = format!("--route {}", section.path);
    if section.args.is_empty() {
        return Err(section_error(
            &name,
            "a route needs a provider and its options, e.g. --route /support anthropic --model claude-sonnet-4-5",
        ));
    }
    let matches = parse_section(table, &name, &section.args)?;
    let outside: Vec<String> = proxy_flags_given(table, &matches)
        .into_iter()
        .filter(|(id, _)| !ROUTE_FLAGS.contains(&id.as_str()))
        .map(|(_, long)| long)
        .collect();
    if !outside.is_empty() {
        return Err(section_error(
            &name,
            &format!(
                "{} applies to the whole proxy, not one route: put it before the first --route",
                outside.join(", ")
            ),
        ));
    }
    let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    let one = |id: &str| {
        given(id)
            .then(|| matches.get_one::<String>(id).cloned())
            .flatten()
    };
    let count = |id: &str| {
        given(id)
            .then(|| matches.get_one::<usize>(id).copied())
            .flatten()
    };
    let overrides = RouteOverrides {
        allow_models: matches
            .get_many::<String>("allow_models")
            .map(|values| values.cloned().collect())
            .unwrap_or_default(),
        system_prompt: one("system_prompt"),
        stop_key: one("stop_key"),
        history_limit: given("history_limit")
            .then(|| matches.get_one::<u32>("history_limit").copied())
            .flatten(),
        max_messages: count("max_messages"),
        max_conversation_chars: count("max_conversation_chars"),
        max_images: count("max_images"),
        max_image_bytes: count("max_image_bytes"),
        max_json_reply_bytes: count("max_json_reply_bytes"),
    };
    let provider = ProviderCommand::from_matches_in(table, &matches)
        .map_err(|err| section_error(&name, &message_of(&err)))?;
    let fallbacks = section
        .fallbacks
        .iter()
        .map(|args| parse_fallback(table, &name, args))
        .collect::<Result<_, _>>()?;
    Ok(RouteArgs {
        path: section.path.clone(),
        overrides,
        provider,
        fallbacks,
    })
}

/// Parses one `--fallback` section of the section called `owner`: a provider and its options.
pub(super) fn parse_fallback(
    table: &'static [Provider],
    owner: &str,
    args: &[OsString],
) -> Result<ProviderCommand, clap::Error> {
    let first = args
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match first.as_str() {
        "" => format!("--fallback (in {owner})"),
        provider => format!("--fallback {provider} (in {owner})"),
    };
    // `demo` is let through so that validation can say why it cannot be a fallback.
    if first != "demo" && !table.iter().any(|p| p.name == first) {
        let known: Vec<&str> = table.iter().map(|p| p.name).collect();
        return Err(section_error(
            &name,
            &format!(
                "--fallback must be followed by a provider ({})",
                known.join(", ")
            ),
        ));
    }
    let matches = parse_section(table, &name, args)?;
    let given: Vec<String> = proxy_flags_given(table, &matches)
        .into_iter()
        .map(|(_, long)| long)
        .collect();
    if !given.is_empty() {
        return Err(section_error(
            &name,
            &format!(
                "{} is not a provider option: put it before the first --fallback",
                given.join(", ")
            ),
        ));
    }
    ProviderCommand::from_matches_in(table, &matches)
        .map_err(|err| section_error(&name, &message_of(&err)))
}

/// clap's matches for one section's arguments.
fn parse_section(
    table: &'static [Provider],
    name: &str,
    args: &[OsString],
) -> Result<ArgMatches, clap::Error> {
    let argv = std::iter::once(OsString::from("deepchat-proxy")).chain(args.iter().cloned());
    section_command(table)
        .try_get_matches_from(argv)
        .map_err(|err| match err.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => err,
            _ => section_error(name, &message_of(&err)),
        })
}

/// `(id, --long)` of every proxy flag (not a provider option) the section's command line set.
fn proxy_flags_given(table: &'static [Provider], matches: &ArgMatches) -> Vec<(String, String)> {
    let command = super::command_for(table);
    command
        .get_arguments()
        .filter(|arg| matches.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine))
        .filter_map(|arg| Some((arg.get_id().to_string(), format!("--{}", arg.get_long()?))))
        .collect()
}

/// clap's message on one line, without its `error: ` prefix and the usage after it.
fn message_of(err: &clap::Error) -> String {
    let rendered = err.render().to_string();
    let message: Vec<&str> = rendered
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect();
    let message = message.join(" ");
    message
        .strip_prefix("error: ")
        .unwrap_or(&message)
        .to_owned()
}

/// An error that names the section it is about.
fn section_error(name: &str, message: &str) -> clap::Error {
    clap::Error::raw(
        clap::error::ErrorKind::ValueValidation,
        format!("in {name}: {message}\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<OsString> {
        text.split(' ').map(OsString::from).collect()
    }

    #[test]
    fn splits_at_routes_and_fallbacks() {
        let sections = split(&args(
            "p --listen :1 openai --model a --fallback anthropic --model b \
             --route /x --stop-key zz gemini --model c --fallback openai --model d --route=/y demo",
        ))
        .expect("split");
        assert_eq!(sections.main, args("p --listen :1 openai --model a"));
        assert_eq!(sections.main_fallbacks, vec![args("anthropic --model b")]);
        assert_eq!(sections.routes.len(), 2);
        assert_eq!(sections.routes[0].path, "/x");
        assert_eq!(
            sections.routes[0].args,
            args("--stop-key zz gemini --model c")
        );
        assert_eq!(sections.routes[0].fallbacks, vec![args("openai --model d")]);
        assert_eq!(sections.routes[1].path, "/y");
        assert_eq!(sections.routes[1].args, args("demo"));
        assert!(split(&args("p demo --route")).is_err());
    }
}
