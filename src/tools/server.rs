//! One MCP server, kept connected: a supervisor task connects (starting the command, or over
//! streamable HTTP), reads its tool list, re-reads it when the server says it changed, and
//! reconnects with a growing pause when the process exits or the connection breaks. While it
//! is down its tools are simply not offered, and `/readyz` and the start line say why.

use crate::tools::settings::{ServerSpec, ToolSettings, Transport, BASE_ENV};
use rmcp::model::Tool;
use rmcp::service::{NotificationContext, RoleClient};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, Peer};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Longest a connection (start, handshake, first tool list) may take before it counts as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest pause between two attempts to reach a server that is down.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Longest stderr line of a stdio server that is logged (the rest of the line is dropped).
const MAX_STDERR_LINE: usize = 2048;

/// Whether a server's tools can be offered now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// The first connection is under way.
    Starting,
    /// Connected, with this many tools (before the filters).
    Up(usize),
    /// Not reachable; why.
    Down(String),
}

/// A connected server's peer and its tools.
#[derive(Default)]
struct Connected {
    peer: Option<Peer<RoleClient>>,
    tools: Vec<Tool>,
}

/// One `--mcp` server and what is known of it now.
pub struct Server {
    pub spec: ServerSpec,
    health: Mutex<Health>,
    connected: Mutex<Connected>,
    /// Signalled by the server's `notifications/tools/list_changed`.
    list_changed: Arc<Notify>,
}

/// Told whenever a server's tools or health change (the registry rebuilds its catalog).
pub type OnChange = Arc<dyn Fn() + Send + Sync>;

impl Server {
    pub fn new(spec: ServerSpec) -> Arc<Server> {
        Arc::new(Server {
            spec,
            health: Mutex::new(Health::Starting),
            connected: Mutex::new(Connected::default()),
            list_changed: Arc::new(Notify::new()),
        })
    }

    pub fn health(&self) -> Health {
        self.health
            .lock()
            .map(|health| health.clone())
            .unwrap_or(Health::Down("internal error".into()))
    }

    /// The peer to call tools on and its tools, when connected.
    pub fn snapshot(&self) -> Option<(Peer<RoleClient>, Vec<Tool>)> {
        let connected = self.connected.lock().ok()?;
        Some((connected.peer.clone()?, connected.tools.clone()))
    }

    fn set(&self, health: Health, connected: Connected, on_change: &OnChange) {
        if let Ok(mut slot) = self.health.lock() {
            *slot = health;
        }
        if let Ok(mut slot) = self.connected.lock() {
            *slot = connected;
        }
        on_change();
    }

    /// Keeps the server connected until `shutdown`.
    pub async fn supervise(
        self: Arc<Self>,
        settings: Arc<ToolSettings>,
        on_change: OnChange,
        shutdown: CancellationToken,
    ) {
        let mut backoff = Duration::from_secs(1);
        loop {
            let attempt = tokio::time::timeout(CONNECT_TIMEOUT, self.connect(&settings));
            let running = tokio::select! {
                _ = shutdown.cancelled() => return,
                attempt = attempt => attempt,
            };
            match running {
                Ok(Ok((running, tools))) => {
                    backoff = Duration::from_secs(1);
                    tracing::info!(server = %self.spec.name, tools = tools.len(), "MCP server connected");
                    let peer = running.peer().clone();
                    self.set(
                        Health::Up(tools.len()),
                        Connected {
                            peer: Some(peer.clone()),
                            tools,
                        },
                        &on_change,
                    );
                    let why = self.serve(running, &peer, &on_change, &shutdown).await;
                    let Some(why) = why else { return };
                    tracing::warn!(server = %self.spec.name, "MCP server down: {why}; reconnecting");
                    self.set(Health::Down(why), Connected::default(), &on_change);
                }
                Ok(Err(why)) => {
                    tracing::warn!(server = %self.spec.name, "MCP server unreachable: {why}");
                    self.set(Health::Down(why), Connected::default(), &on_change);
                }
                Err(_) => {
                    let why = format!(
                        "did not complete the MCP handshake within {} s",
                        CONNECT_TIMEOUT.as_secs()
                    );
                    tracing::warn!(server = %self.spec.name, "MCP server unreachable: {why}");
                    self.set(Health::Down(why), Connected::default(), &on_change);
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Serves a connected server: re-reads its tools when they change. `None` at shutdown,
    /// else why the connection ended.
    async fn serve(
        &self,
        running: rmcp::service::RunningService<RoleClient, ListWatcher>,
        peer: &Peer<RoleClient>,
        on_change: &OnChange,
        shutdown: &CancellationToken,
    ) -> Option<String> {
        let ended = running.waiting();
        tokio::pin!(ended);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                quit = &mut ended => return Some(match quit {
                    Ok(reason) => format!("the connection ended ({reason:?})"),
                    Err(err) => format!("the connection task failed: {err}"),
                }),
                _ = self.list_changed.notified() => {
                    match tokio::time::timeout(CONNECT_TIMEOUT, peer.list_all_tools()).await {
                        Ok(Ok(tools)) => {
                            tracing::info!(server = %self.spec.name, tools = tools.len(), "MCP tool list changed");
                            self.set(Health::Up(tools.len()), Connected { peer: Some(peer.clone()), tools }, on_change);
                        }
                        Ok(Err(err)) => tracing::warn!(server = %self.spec.name, "cannot re-read the tool list: {err}"),
                        Err(_) => tracing::warn!(server = %self.spec.name, "the tool list did not come in time"),
                    }
                }
            }
        }
    }

    /// One connection and its first tool list.
    async fn connect(
        &self,
        settings: &ToolSettings,
    ) -> Result<
        (
            rmcp::service::RunningService<RoleClient, ListWatcher>,
            Vec<Tool>,
        ),
        String,
    > {
        let watcher = ListWatcher {
            list_changed: self.list_changed.clone(),
        };
        let running = match &self.spec.transport {
            Transport::Stdio { program, args } => {
                let mut command = tokio::process::Command::new(program);
                command.args(args).env_clear().kill_on_drop(true);
                for name in BASE_ENV
                    .iter()
                    .copied()
                    .chain(settings.pass_env.iter().map(String::as_str))
                {
                    if let Some(value) = std::env::var_os(name) {
                        command.env(name, value);
                    }
                }
                let (transport, stderr) = TokioChildProcess::builder(command)
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .map_err(|err| format!("cannot start {program:?}: {err}"))?;
                if let Some(stderr) = stderr {
                    tokio::spawn(log_stderr(self.spec.name.clone(), stderr));
                }
                rmcp::serve_client(watcher, transport)
                    .await
                    .map_err(|err| format!("the MCP handshake failed: {err}"))?
            }
            Transport::Http { url, token } => {
                let client = http_client()?;
                let mut config = StreamableHttpClientTransportConfig::with_uri(url.as_str());
                if let Some(token) = token {
                    config = config.auth_header(token.0.clone());
                }
                let transport = StreamableHttpClientTransport::with_client(client, config);
                rmcp::serve_client(watcher, transport)
                    .await
                    .map_err(|err| format!("the MCP handshake with {url} failed: {err}"))?
            }
        };
        let tools = running
            .peer()
            .list_all_tools()
            .await
            .map_err(|err| format!("cannot list its tools: {err}"))?;
        Ok((running, tools))
    }
}

/// The client side of one connection: only listens for tool list changes (the proxy offers
/// no sampling, roots or elicitation to servers).
pub struct ListWatcher {
    list_changed: Arc<Notify>,
}

impl ClientHandler for ListWatcher {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.list_changed.notify_one();
    }
}

/// The HTTP client for streamable-HTTP servers: no redirects (a server cannot send the
/// session elsewhere), a connect deadline; each call has its own deadline in the loop.
fn http_client() -> Result<reqwest_mcp::Client, String> {
    crate::tools::tls::install_default_provider();
    reqwest_mcp::Client::builder()
        .redirect(reqwest_mcp::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|err| format!("cannot build the HTTP client: {err}"))
}

/// Logs a stdio server's stderr, a bounded line at a time, under its name.
async fn log_stderr(server: String, stderr: tokio::process::ChildStderr) {
    let mut reader = tokio::io::BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        let mut limited = (&mut reader).take(MAX_STDERR_LINE as u64 * 4);
        match limited.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line[..line.len().min(MAX_STDERR_LINE)]);
                tracing::debug!(server = %server, "MCP server stderr: {}", text.trim_end());
            }
        }
    }
}
