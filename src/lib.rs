//! deepchat-proxy: Deep Chat clients in, LLM provider streams out.
//!
//! `main` parses flags and signals; [`run`] serves a bound listener until shutdown, so tests
//! start the real server in-process on `127.0.0.1:0`.

#![forbid(unsafe_code)]

pub mod access;
pub mod app;
pub mod cli;
pub mod config;
pub mod deepchat;
pub mod error;
pub mod manual;
pub mod ops;
pub mod reply;
pub mod request_id;
pub mod response;
pub mod server;
pub mod store;
pub mod tools;
pub mod upstream;

pub use app::App;
pub use config::Config;

use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Serves Deep Chat on `listener` until `shutdown` resolves, then drains running replies.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    run_with_ops(listener, None, config, shutdown).await
}

/// As [`run`], with `/healthz`, `/readyz` and `/metrics` on their own listener when given.
pub async fn run_with_ops(
    listener: TcpListener,
    ops_listener: Option<TcpListener>,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let tools_stop = tokio_util::sync::CancellationToken::new();
    let tools =
        tools::Tools::start(config.tools.clone(), tools_stop.clone(), tools::START_WAIT).await;
    let served = run_with_tools(listener, ops_listener, config, tools, shutdown).await;
    tools_stop.cancel();
    served
}

/// [`run_with_ops`] with the `--mcp` servers already started (`main` starts them first, so
/// the start line can say how they are); they are stopped by whoever started them.
pub async fn run_with_tools(
    listener: TcpListener,
    ops_listener: Option<TcpListener>,
    config: Config,
    tools: Arc<tools::Tools>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let app = App::open(config)
        .map_err(|err| std::io::Error::other(format!("cannot open --store: {err}")))?
        .with_tools(tools);
    server::serve(listener, ops_listener, Arc::new(app), shutdown).await
}
