//! Tools for the model from MCP servers (`--mcp`): the servers kept connected
//! ([`server`]), the catalog of tools offered under the filters, calling one with a deadline
//! and a capped answer ([`Tools::call`]); the reply pipeline runs a reply's tool rounds with
//! them (`reply::tool_loop`). The browser never sees tool definitions, arguments or results: only a
//! short status while a tool runs.

pub mod output;
pub mod server;
pub mod settings;
pub mod status;
pub mod tls;

use deepchat_adapters::{ToolCall, ToolResult, ToolSpec};
use rmcp::model::CallToolRequestParams;
use server::{Health, Server};
pub use settings::ToolSettings;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tokio_util::sync::CancellationToken;

/// How long a start waits for the `--mcp` servers to connect before it listens anyway (they
/// go on connecting; their tools are offered once they are up).
pub const START_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// The tools offered now: their specs for the request and which server owns each.
#[derive(Default)]
struct Catalog {
    specs: Arc<Vec<ToolSpec>>,
    owners: HashMap<String, usize>,
}

/// Every `--mcp` server and the tools they offer together.
pub struct Tools {
    settings: Arc<ToolSettings>,
    servers: Vec<Arc<Server>>,
    catalog: RwLock<Catalog>,
}

impl Tools {
    /// No servers: no tool is ever offered.
    pub fn none() -> Arc<Tools> {
        Tools::new(ToolSettings::default())
    }

    fn new(settings: ToolSettings) -> Arc<Tools> {
        let servers = settings.servers.iter().cloned().map(Server::new).collect();
        Arc::new(Tools {
            settings: Arc::new(settings),
            servers,
            catalog: RwLock::new(Catalog::default()),
        })
    }

    /// Starts a supervisor per server (until `shutdown`) and waits, at most `wait`, until
    /// each has connected or failed once, so the start line can say how they are.
    pub async fn start(
        settings: ToolSettings,
        shutdown: CancellationToken,
        wait: std::time::Duration,
    ) -> Arc<Tools> {
        let tools = Tools::new(settings);
        for server in &tools.servers {
            let weak = Arc::downgrade(&tools);
            let on_change: server::OnChange = Arc::new(move || {
                if let Some(tools) = weak.upgrade() {
                    tools.rebuild();
                }
            });
            tokio::spawn(server.clone().supervise(
                tools.settings.clone(),
                on_change,
                shutdown.clone(),
            ));
        }
        let settled = async {
            while tools
                .servers
                .iter()
                .any(|server| server.health() == Health::Starting)
            {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        };
        let _ = tokio::time::timeout(wait, settled).await;
        tools
    }

    pub fn settings(&self) -> &ToolSettings {
        &self.settings
    }

    /// Whether any server is configured (a reply then offers whatever is up).
    pub fn configured(&self) -> bool {
        !self.servers.is_empty()
    }

    /// The tools to offer in a request now.
    pub fn specs(&self) -> Arc<Vec<ToolSpec>> {
        self.catalog
            .read()
            .map(|catalog| catalog.specs.clone())
            .unwrap_or_default()
    }

    /// Each server's name and health, for `/readyz`, `/status` and the start line.
    pub fn health(&self) -> Vec<(String, Health)> {
        self.servers
            .iter()
            .map(|server| (server.spec.name.clone(), server.health()))
            .collect()
    }

    /// For the start line: each server and how many of its tools are offered, or why not.
    pub fn describe(&self) -> String {
        let offered = self.specs();
        let parts: Vec<String> = self
            .servers
            .iter()
            .enumerate()
            .map(|(index, server)| {
                let name = &server.spec.name;
                match server.health() {
                    Health::Up(_) => {
                        let count = self
                            .catalog
                            .read()
                            .map(|c| c.owners.values().filter(|&&o| o == index).count())
                            .unwrap_or(0);
                        format!("{name} ({count} tools)")
                    }
                    Health::Starting => format!("{name} (still connecting)"),
                    Health::Down(why) => format!("{name} (down: {why})"),
                }
            })
            .collect();
        format!(
            "tools: {} offered from MCP {}",
            offered.len(),
            parts.join(", ")
        )
    }

    /// Rebuilds the catalog from the servers' current tools. A name two servers share, or
    /// that providers would refuse, is left out (and logged) rather than failing requests.
    fn rebuild(&self) {
        let mut catalog = Catalog::default();
        let mut specs = Vec::new();
        for (index, server) in self.servers.iter().enumerate() {
            let Some((_, tools)) = server.snapshot() else {
                continue;
            };
            for tool in tools {
                let name = tool.name.to_string();
                if !self.settings.offers(&server.spec.name, &name) {
                    continue;
                }
                if !usable_name(&name) {
                    tracing::warn!(server = %server.spec.name, tool = %name, "tool left out: providers take names of 1-64 letters, digits, '_' or '-'");
                    continue;
                }
                if catalog.owners.contains_key(&name) {
                    tracing::warn!(server = %server.spec.name, tool = %name, "tool left out: another --mcp server offers a tool of that name");
                    continue;
                }
                catalog.owners.insert(name.clone(), index);
                specs.push(ToolSpec {
                    name,
                    description: tool.description.map(|d| d.to_string()).unwrap_or_default(),
                    parameters: serde_json::Value::Object((*tool.input_schema).clone()),
                });
            }
        }
        catalog.specs = Arc::new(specs);
        if let Ok(mut slot) = self.catalog.write() {
            *slot = catalog;
        }
    }

    /// Runs one call the model asked for, within `--tool-timeout`, and returns what the model
    /// is told: the capped output, or why the call failed (never an error of the reply).
    /// Dropping the future cancels the call on the server (MCP `notifications/cancelled`).
    pub async fn call(&self, call: &ToolCall) -> ToolResult {
        let answer = self.try_call(call).await;
        let (content, is_error) = match answer {
            Ok(text) => (text, false),
            Err(why) => (why, true),
        };
        ToolResult {
            call_id: call.id.clone(),
            name: call.name.clone(),
            content,
            is_error,
        }
    }

    async fn try_call(&self, call: &ToolCall) -> Result<String, String> {
        let owner = self
            .catalog
            .read()
            .ok()
            .and_then(|catalog| catalog.owners.get(&call.name).copied());
        // Only a tool that is offered now runs: a model naming another gets told so.
        let Some(server) = owner.and_then(|index| self.servers.get(index)) else {
            return Err(format!("there is no tool named {:?}", call.name));
        };
        let Some((peer, _)) = server.snapshot() else {
            return Err(format!(
                "the tool {:?} is unavailable right now (its server is down)",
                call.name
            ));
        };
        let arguments = match call.arguments.trim() {
            "" => serde_json::Map::new(),
            text => match serde_json::from_str::<serde_json::Value>(text) {
                Ok(serde_json::Value::Object(map)) => map,
                _ => return Err("the arguments are not a JSON object; call the tool again with a JSON object matching its schema".into()),
            },
        };
        let mut params = CallToolRequestParams::new(call.name.clone());
        params.arguments = Some(arguments);
        let timeout = self.settings.timeout;
        let max = self.settings.max_output;
        match tokio::time::timeout(timeout, peer.call_tool(params)).await {
            Err(_) => Err(format!(
                "the tool did not answer within {} s and was cancelled",
                timeout.as_secs()
            )),
            Ok(Err(err)) => Err(output::cap(format!("the tool call failed: {err}"), max)),
            Ok(Ok(result)) => {
                let content = serde_json::to_value(&result.content).unwrap_or_default();
                let text = output::to_text(&content, result.structured_content.as_ref(), max);
                if result.is_error == Some(true) {
                    Err(text)
                } else {
                    Ok(text)
                }
            }
        }
    }
}

/// A tool name every supported provider accepts (OpenAI's rule is the strictest).
fn usable_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
