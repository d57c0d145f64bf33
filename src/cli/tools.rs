//! The tool flags (`--mcp` and its policy): which MCP servers the proxy runs tools from, which
//! of their tools the model is offered, and the bounds of the tool loop. No tool runs unless
//! `--mcp` names a server.

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};

#[derive(Debug, Args, Clone)]
pub struct ToolArgs {
    /// An MCP server whose tools the model may call: `NAME=COMMAND [ARGS…]` (stdio: the
    /// proxy starts the command, without a shell and with a cleared environment, and restarts
    /// it when it exits) or `NAME=https://…/mcp` (streamable HTTP). Repeatable; `;`-separated
    /// in the env var.
    #[arg(
        global = true,
        long = "mcp",
        env = "DEEPCHAT_PROXY_MCP",
        value_delimiter = ';',
        value_name = "NAME=COMMAND|URL",
        help_heading = "Tools"
    )]
    pub mcp: Vec<String>,

    /// An environment variable passed to stdio MCP servers, besides PATH, HOME, LANG and
    /// TMPDIR (repeatable): servers see nothing else of the proxy's environment, so never its
    /// API keys.
    #[arg(
        global = true,
        long = "mcp-env",
        env = "DEEPCHAT_PROXY_MCP_ENV",
        value_delimiter = ',',
        value_name = "VAR",
        help_heading = "Tools"
    )]
    pub mcp_env: Vec<String>,

    /// The bearer token for one streamable-HTTP server, read from an environment variable:
    /// `NAME=VAR` (repeatable). It is sent to that server only.
    #[arg(
        global = true,
        long = "mcp-token-env",
        env = "DEEPCHAT_PROXY_MCP_TOKEN_ENV",
        value_delimiter = ',',
        value_name = "NAME=VAR",
        help_heading = "Tools"
    )]
    pub mcp_token_env: Vec<String>,

    /// Offer only tools matching this pattern: `TOOL` or `SERVER/TOOL`, `*` matching any run
    /// of characters (repeatable). Default: every tool of every `--mcp` server.
    #[arg(
        global = true,
        long = "mcp-allow-tool",
        env = "DEEPCHAT_PROXY_MCP_ALLOW_TOOL",
        value_delimiter = ',',
        value_name = "PATTERN",
        help_heading = "Tools"
    )]
    pub mcp_allow_tools: Vec<String>,

    /// Never offer (or run) tools matching this pattern, as for `--mcp-allow-tool`; wins over
    /// it (repeatable).
    #[arg(
        global = true,
        long = "mcp-deny-tool",
        env = "DEEPCHAT_PROXY_MCP_DENY_TOOL",
        value_delimiter = ',',
        value_name = "PATTERN",
        help_heading = "Tools"
    )]
    pub mcp_deny_tools: Vec<String>,

    /// Most rounds of tool calls in one reply; a model that asks for more gets the reply
    /// ended with an error instead of looping.
    #[arg(global = true, long, env = "DEEPCHAT_PROXY_MAX_TOOL_ROUNDS", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=32), value_name = "N",
          help_heading = "Tools")]
    pub max_tool_rounds: u32,

    /// Seconds one tool call may take; then it is cancelled and the model is told it timed
    /// out.
    #[arg(global = true, long, env = "DEEPCHAT_PROXY_TOOL_TIMEOUT", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600), value_name = "SECS",
          help_heading = "Tools")]
    pub tool_timeout: u64,

    /// Most bytes of one tool result sent back to the model; the rest is cut with a note.
    #[arg(global = true, long, env = "DEEPCHAT_PROXY_MAX_TOOL_OUTPUT", default_value_t = 32 * 1024,
          value_parser = clap::value_parser!(u64).range(256..=16 * 1024 * 1024), value_name = "BYTES",
          help_heading = "Tools")]
    pub max_tool_output: u64,

    /// Show each tool call's arguments in the chat's status line (default: only the tool's
    /// name; arguments are the model's and may hold what the user should not see verbatim).
    #[arg(global = true, long, env = "DEEPCHAT_PROXY_SHOW_TOOL_CALLS", help_heading = "Tools",
          action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub show_tool_calls: bool,
}
