//! deepchat-proxy: Deep Chat clients in, LLM provider streams out.
//!
//! `main` parses flags and signals; [`run`] serves a bound listener until shutdown, so tests
//! start the real server in-process on `127.0.0.1:0`.

#![forbid(unsafe_code)]

pub mod access;
pub mod app;
pub mod auth;
pub mod budget;
pub mod cli;
pub mod config;
pub mod deepchat;
pub mod demo;
pub mod health;
pub mod history;
pub mod idle;
pub mod ip_slots;
pub mod manual;
pub mod on_wake;
pub mod ratelimit;
pub mod redact;
pub mod relay;
pub mod server;
pub mod telemetry;
pub mod upstream;
pub mod upstream_pool;

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
    server::serve(listener, ops_listener, Arc::new(App::new(config)), shutdown).await
}
