//! Where each value came from: the environment variable behind a flag (named in errors, so
//! an operator need not search for it) and the settings a start-up line reports as changed.

use clap::parser::ValueSource;

/// `message` with the variable named when a flag it is about was set through one
/// (`from_env` as in [`Parsed::from_env`]).
pub fn name_variables(from_env: &[(String, String)], message: &str) -> String {
    let sources: Vec<&str> = from_env
        .iter()
        .filter(|(flag, _)| mentions_flag(message, flag))
        .map(|(_, variable)| variable.as_str())
        .collect();
    if sources.is_empty() {
        message.to_owned()
    } else {
        format!("{message} (set by {})", sources.join(", "))
    }
}

/// `--path` in "--path \"/\" clashes", but not in "--path-prefix".
fn mentions_flag(message: &str, flag: &str) -> bool {
    message.match_indices(flag).any(|(at, _)| {
        !message[at + flag.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-')
    })
}

pub(super) fn from_env(
    command: &clap::Command,
    matches: &clap::ArgMatches,
) -> Vec<(String, String)> {
    let mut levels = vec![(command, matches)];
    if let Some((name, sub_matches)) = matches.subcommand() {
        if let Some(sub) = command.find_subcommand(name) {
            levels.push((sub, sub_matches));
        }
    }
    let mut found = Vec::new();
    for (command, matches) in levels {
        for arg in command.get_arguments() {
            let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) else {
                continue;
            };
            let source = matches.value_source(arg.get_id().as_str());
            let entry = (format!("--{long}"), env.to_string_lossy().into_owned());
            if source == Some(clap::parser::ValueSource::EnvVariable) && !found.contains(&entry) {
                found.push(entry);
            }
        }
    }
    found
}

/// Settings summarized by the start-up line when they differ from their defaults: numbers
/// and switches only, never a name of a secret or a file.
const SUMMARIZED_HEADINGS: &[&str] = &["Limits", "Upstream"];
const SUMMARIZED_OTHERS: &[&str] = &["history_limit", "drain_timeout"];

pub(super) fn changed_settings(command: &clap::Command, matches: &clap::ArgMatches) -> Vec<String> {
    command
        .get_arguments()
        .filter(|arg| {
            arg.get_help_heading()
                .is_some_and(|h| SUMMARIZED_HEADINGS.contains(&h))
                || SUMMARIZED_OTHERS.contains(&arg.get_id().as_str())
        })
        .filter(|arg| arg.get_id() != "client_ip_header")
        .filter(|arg| {
            matches!(
                matches.value_source(arg.get_id().as_str()),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        })
        .filter_map(|arg| {
            let id = arg.get_id().as_str();
            let long = arg.get_long()?;
            let values: Vec<String> = matches
                .get_raw(id)?
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            Some(format!("--{long}={}", values.join(",")))
        })
        .collect()
}

/// clap names the flag of a bad value even when the value came from the flag's environment
/// variable, leaving the operator to search for it; name the variable instead when it is set
/// and the flag is not on the command line.
pub(super) fn name_the_variable(
    mut err: clap::Error,
    command: &clap::Command,
    args: &[std::ffi::OsString],
) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        err.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return err;
    }
    let Some(ContextValue::String(shown)) = err.get(ContextKind::InvalidArg) else {
        return err;
    };
    let Some(long) = shown
        .strip_prefix("--")
        .and_then(|rest| rest.split([' ', '=']).next())
    else {
        return err;
    };
    let flag = format!("--{long}");
    let on_command_line = args.iter().any(|a| {
        let a = a.to_string_lossy();
        a == flag || a.starts_with(&format!("{flag}="))
    });
    let all_args = command.get_arguments().chain(
        command
            .get_subcommands()
            .flat_map(|sub| sub.get_arguments()),
    );
    let variable = all_args
        .filter(|arg| arg.get_long() == Some(long))
        .find_map(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned());
    if let (Some(variable), false) = (variable, on_command_line) {
        if std::env::var_os(&variable).is_some() {
            err.insert(
                ContextKind::InvalidArg,
                ContextValue::String(format!("{variable} (the environment variable for {flag})")),
            );
        }
    }
    err
}
