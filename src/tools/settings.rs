//! The validated tool configuration: each `--mcp` server (a command to start or a URL), the
//! tool filters and the loop's bounds. Built by [`ToolSettings::from_args`], which says
//! precisely what is wrong with a flag so `--check` can report it.

use crate::cli::ToolArgs;
use std::time::Duration;

/// How the proxy reaches one MCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A child process speaking MCP on stdin/stdout: the program and its arguments.
    Stdio { program: String, args: Vec<String> },
    /// Streamable HTTP at this URL, with the bearer token `--mcp-token-env` names for it.
    Http { url: String, token: Option<Token> },
}

/// A secret sent to one MCP server; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(pub String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

/// One `--mcp NAME=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// The operator's name for it (logs, `/readyz`, `SERVER/TOOL` patterns).
    pub name: String,
    pub transport: Transport,
}

/// Everything the tool loop and the MCP connections need.
#[derive(Debug, Clone, Default)]
pub struct ToolSettings {
    pub servers: Vec<ServerSpec>,
    /// Environment variables stdio servers inherit besides [`BASE_ENV`].
    pub pass_env: Vec<String>,
    pub allow: Vec<String>,
    pub deny: Vec<String>,
    pub max_rounds: usize,
    pub timeout: Duration,
    pub max_output: usize,
    pub show_calls: bool,
}

/// What every stdio server gets of the proxy's environment: enough to find and run a
/// program (node, python) and nothing secret.
pub const BASE_ENV: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TMPDIR"];

impl ToolSettings {
    /// The settings these flags ask for, or every problem with them.
    pub fn from_args(args: &ToolArgs) -> Result<ToolSettings, Vec<String>> {
        let mut errors = Vec::new();
        let mut servers: Vec<ServerSpec> = Vec::new();
        for value in &args.mcp {
            match parse_server(value) {
                Ok(spec) if servers.iter().any(|s| s.name == spec.name) => errors.push(format!(
                    "--mcp {:?}: the name {:?} is given twice; give each server its own",
                    value, spec.name
                )),
                Ok(spec) => servers.push(spec),
                Err(why) => errors.push(format!("--mcp {value:?}: {why}")),
            }
        }
        for name in &args.mcp_env {
            if name.is_empty() || name.contains('=') {
                errors.push(format!(
                    "--mcp-env {name:?}: give the variable's name only, e.g. --mcp-env GITHUB_TOKEN"
                ));
            }
        }
        for value in &args.mcp_token_env {
            if let Err(why) = attach_token(&mut servers, value) {
                errors.push(format!("--mcp-token-env {value:?}: {why}"));
            }
        }
        let unused = servers.is_empty()
            && (!args.mcp_allow_tools.is_empty() || !args.mcp_deny_tools.is_empty());
        if unused {
            errors.push(
                "--mcp-allow-tool/--mcp-deny-tool filter tools, but no --mcp server gives any"
                    .into(),
            );
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(ToolSettings {
            servers,
            pass_env: args.mcp_env.clone(),
            allow: args.mcp_allow_tools.clone(),
            deny: args.mcp_deny_tools.clone(),
            max_rounds: args.max_tool_rounds as usize,
            timeout: Duration::from_secs(args.tool_timeout),
            max_output: usize::try_from(args.max_tool_output).unwrap_or(usize::MAX),
            show_calls: args.show_tool_calls,
        })
    }

    /// Whether the model is offered tool `tool` of server `server` under the filters.
    pub fn offers(&self, server: &str, tool: &str) -> bool {
        let matches = |pattern: &String| match pattern.split_once('/') {
            Some((server_pattern, tool_pattern)) => {
                glob(server_pattern, server) && glob(tool_pattern, tool)
            }
            None => glob(pattern, tool),
        };
        (self.allow.is_empty() || self.allow.iter().any(matches)) && !self.deny.iter().any(matches)
    }

    /// For `--check` and the start line: the servers and the loop's bounds.
    pub fn describe(&self) -> String {
        let names: Vec<&str> = self.servers.iter().map(|s| s.name.as_str()).collect();
        format!(
            "MCP servers {} (at most {} tool rounds, {} s per call)",
            names.join(", "),
            self.max_rounds,
            self.timeout.as_secs()
        )
    }
}

fn parse_server(value: &str) -> Result<ServerSpec, String> {
    let Some((name, target)) = value.split_once('=') else {
        return Err(
            "expected NAME=COMMAND or NAME=https://…, e.g. --mcp 'files=npx -y @modelcontextprotocol/server-filesystem /srv/docs'"
                .into(),
        );
    };
    let name = name.trim();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "the server name {name:?} must be letters, digits, '-' or '_'"
        ));
    }
    let target = target.trim();
    let transport = if target.starts_with("https://") || target.starts_with("http://") {
        if target.parse::<hyper::Uri>().is_err() {
            return Err(format!("{target:?} is not a URL"));
        }
        Transport::Http {
            url: target.into(),
            token: None,
        }
    } else {
        let words =
            shell_words::split(target).map_err(|err| format!("cannot split the command: {err}"))?;
        let mut words = words.into_iter();
        let Some(program) = words.next() else {
            return Err("the command is empty".into());
        };
        Transport::Stdio {
            program,
            args: words.collect(),
        }
    };
    Ok(ServerSpec {
        name: name.into(),
        transport,
    })
}

/// Reads `NAME=VAR` and gives server `NAME` the token in `VAR`.
fn attach_token(servers: &mut [ServerSpec], value: &str) -> Result<(), String> {
    let Some((name, variable)) = value.split_once('=') else {
        return Err("expected NAME=VAR, e.g. --mcp-token-env search=SEARCH_MCP_TOKEN".into());
    };
    let Some(server) = servers.iter_mut().find(|server| server.name == name) else {
        return Err(format!("no --mcp server is named {name:?}"));
    };
    let Transport::Http { token, .. } = &mut server.transport else {
        return Err(format!(
            "{name:?} is a command; give a stdio server its secrets with --mcp-env"
        ));
    };
    match std::env::var(variable) {
        Ok(secret) if !secret.trim().is_empty() => {
            *token = Some(Token(secret.trim().to_owned()));
            Ok(())
        }
        _ => Err(format!("{variable} is empty or unset")),
    }
}

/// `pattern` with `*` for any run of characters matches all of `text`.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_names() {
        assert!(glob("echo", "echo"));
        assert!(!glob("echo", "echoes"));
        assert!(glob("get-*", "get-sum"));
        assert!(glob("*sum", "get-sum"));
        assert!(glob("*", "anything"));
        assert!(glob("g*t*m", "get-sum"));
        assert!(!glob("g*x*m", "get-sum"));
        assert!(!glob("ab*ba", "aba"));
    }

    #[test]
    fn servers_are_commands_split_like_a_shell_or_urls() {
        assert_eq!(
            parse_server("files=npx -y 'my server' /srv").map(|s| s.transport),
            Ok(Transport::Stdio {
                program: "npx".into(),
                args: vec!["-y".into(), "my server".into(), "/srv".into()]
            })
        );
        assert_eq!(
            parse_server("web=https://mcp.example.com/mcp").map(|s| s.transport),
            Ok(Transport::Http {
                url: "https://mcp.example.com/mcp".into(),
                token: None
            })
        );
        assert!(parse_server("no-command").is_err());
        assert!(parse_server("bad name=cmd").is_err());
        assert!(parse_server("x=").is_err());
        assert!(parse_server("x='unclosed").is_err());
    }

    #[test]
    fn deny_wins_over_allow_and_patterns_may_name_the_server() {
        let settings = ToolSettings {
            allow: vec!["get-*".into(), "files/read".into()],
            deny: vec!["get-env".into()],
            ..ToolSettings::default()
        };
        assert!(settings.offers("everything", "get-sum"));
        assert!(!settings.offers("everything", "get-env"));
        assert!(!settings.offers("everything", "echo"));
        assert!(settings.offers("files", "read"));
        assert!(!settings.offers("other", "read"));
    }
}
