//! `deepchat-proxy man`: one self-contained man page. clap_mangen's own subcommand section
//! points at pages (`deepchat-proxy-openai(1)`) that are never installed, so the providers and
//! their options are written into this page instead, followed by every environment variable.

use crate::cli::Cli;
use clap::CommandFactory;
use std::io::Write;

/// Writes the page (roff) to `out`.
pub fn render(out: &mut dyn Write) -> std::io::Result<()> {
    let command = Cli::command();
    let man = clap_mangen::Man::new(command.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    // The --route / --fallback syntax (the command's after-help).
    man.render_extra_section(out)?;
    writeln!(out, ".SH PROVIDERS")?;
    writeln!(
        out,
        "The proxy's own options above may come before or after the provider."
    )?;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        writeln!(
            out,
            ".SS \"{} {}\"",
            command.get_name(),
            escape(sub.get_name())
        )?;
        if let Some(about) = sub.get_about() {
            writeln!(out, "{}", escape(&about.to_string()))?;
        }
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            let Some(long) = arg.get_long() else { continue };
            writeln!(out, ".TP")?;
            writeln!(out, "\\fB\\-\\-{}\\fR", escape(long))?;
            if let Some(help) = arg.get_help() {
                writeln!(out, "{}", escape(&help.to_string()))?;
            }
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            if !defaults.is_empty() {
                writeln!(out, ".br\n[default: {}]", escape(&defaults.join(",")))?;
            }
            if let Some(env) = arg.get_env() {
                writeln!(out, ".br\n[env: {}]", escape(&env.to_string_lossy()))?;
            }
        }
    }
    writeln!(out, ".SH ENVIRONMENT")?;
    writeln!(
        out,
        "Each variable sets the option named beside it; a command-line option wins over its variable. \
         Switches accept true/false, 1/0, yes/no, on/off. API keys are read from the variables \
         that \\fB\\-\\-api\\-key\\-env\\fR names (OPENAI_API_KEY and the like), never from an option."
    )?;
    for (variable, flags) in environment(&command) {
        writeln!(out, ".TP\n\\fB{}\\fR", escape(&variable))?;
        writeln!(out, "{}", escape(&flags.join(", ")))?;
    }
    writeln!(out, ".TP\n\\fBRUST_LOG\\fR\nlog level filter (default info), e.g. debug or deepchat_proxy=debug")?;
    man.render_version_section(out)?;
    Ok(())
}

/// Every variable with the options (and providers) it sets, in first-seen order.
fn environment(command: &clap::Command) -> Vec<(String, Vec<String>)> {
    let mut found: Vec<(String, Vec<String>)> = Vec::new();
    let top = command.get_arguments().map(|arg| (None, arg));
    let subs = command.get_subcommands().flat_map(|sub| {
        sub.get_arguments()
            .map(move |arg| (Some(sub.get_name()), arg))
    });
    for (provider, arg) in top.chain(subs) {
        let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) else {
            continue;
        };
        let variable = env.to_string_lossy().into_owned();
        let label = match provider {
            None => format!("--{long}"),
            Some(provider) => format!("--{long} ({provider})"),
        };
        match found.iter_mut().find(|(v, _)| *v == variable) {
            Some((_, labels)) => {
                if !labels.contains(&label) {
                    labels.push(label);
                }
            }
            None => found.push((variable, vec![label])),
        }
    }
    found
}

/// roff text: backslashes and hyphens escaped, no line starting with a control character.
fn escape(text: &str) -> String {
    text.lines()
        .map(|line| {
            let line = line.replace('\\', "\\e").replace('-', "\\-");
            if line.starts_with('.') || line.starts_with('\'') {
                format!("\\&{line}")
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_lists_the_environment_and_no_missing_pages() {
        let mut out = Vec::new();
        render(&mut out).expect("render");
        let page = String::from_utf8(out).expect("utf-8");
        assert!(!page.contains("deepchat\\-proxy\\-openai(1)"), "{page}");
        assert!(!page.contains("deepchat-proxy-openai(1)"), "{page}");
        assert!(page.contains(".SH ENVIRONMENT"));
        for variable in [
            "DEEPCHAT_PROXY_LISTEN",
            "DEEPCHAT_PROXY_MODEL",
            "DEEPCHAT_PROXY_PLAYGROUND",
        ] {
            assert!(page.contains(&format!("\\fB{variable}\\fR")), "{variable}");
        }
        assert!(page.contains("\\-\\-base\\-url (openai), \\-\\-base\\-url (openai\\-responses)"));
    }
}
