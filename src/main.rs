//! Entry point: flags, logging, signals; everything else lives in the library.

use clap::CommandFactory;
use deepchat_proxy::cli::{name_variables, Cli, LogFormat, Parsed, ProviderCommand};
use deepchat_proxy::ops::otel::{self, Traces};
use deepchat_proxy::tools::{self, Tools};
use deepchat_proxy::Config;
use std::process::ExitCode;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

#[tokio::main]
async fn main() -> ExitCode {
    let parsed = match deepchat_proxy::cli::parse_from(std::env::args_os()) {
        Ok(parsed) => parsed,
        // clap prints `error: …` and exits 2 (0 for --help and --version).
        Err(err) => err.exit(),
    };
    let Parsed {
        cli,
        changed,
        from_env,
    } = parsed;
    match &cli.provider {
        ProviderCommand::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "deepchat-proxy",
                &mut std::io::stdout(),
            );
            return ExitCode::SUCCESS;
        }
        ProviderCommand::Man => {
            return match deepchat_proxy::manual::render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("error: {err}");
                    ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }
    let (listen, metrics_listen, check) =
        (cli.proxy.listen, cli.proxy.metrics_listen, cli.proxy.check);
    let log_format = cli.proxy.log_format;
    let otlp_endpoint = cli.proxy.otlp_endpoint.clone();
    let checked = match Config::validate(cli, check) {
        Ok(checked) => checked,
        Err(errors) => {
            // One line per problem, so one run shows everything to fix.
            for err in errors {
                eprintln!("error: {}", name_variables(&from_env, &err.to_string()));
            }
            return ExitCode::from(2);
        }
    };
    let mut summary = checked.summary;
    if !changed.is_empty() {
        // Only what differs from the defaults, so the line stays short.
        summary.push_str("; limits: ");
        summary.push_str(&changed.join(" "));
    }
    if check {
        for warning in &checked.warnings {
            eprintln!(
                "warning: {}",
                name_variables(&from_env, &warning.to_string())
            );
        }
        println!("configuration OK: listen {listen}; {summary}");
        return ExitCode::SUCCESS;
    }
    let traces = match init_logging(log_format, otlp_endpoint.as_deref()) {
        Ok(traces) => traces,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    for warning in &checked.warnings {
        tracing::warn!("{}", name_variables(&from_env, &warning.to_string()));
    }
    let config = checked.config;
    let listener = match bind(listen) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("error: cannot listen on {listen} (--listen): {err}");
            return ExitCode::FAILURE;
        }
    };
    let ops_listener = match metrics_listen {
        None => None,
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => Some(listener),
            Err(err) => {
                eprintln!("error: cannot listen on {addr} (--metrics-listen): {err}");
                return ExitCode::FAILURE;
            }
        },
    };
    let bound = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    // The MCP servers start before the start line, so it can say which are up.
    let tools_stop = tokio_util::sync::CancellationToken::new();
    let tools = Tools::start(config.tools.clone(), tools_stop.clone(), tools::START_WAIT).await;
    if tools.configured() {
        summary.push_str("; ");
        summary.push_str(&tools.describe());
    }
    tracing::info!(address = %bound, path = %config.path, "deepchat-proxy listening on http://{bound}; {summary}");
    let served =
        deepchat_proxy::run_with_tools(listener, ops_listener, config, tools, shutdown_signal())
            .await;
    tools_stop.cancel();
    if let Some(traces) = traces {
        // The exporter's shutdown blocks until the last spans are sent (or its timeout).
        let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
    }
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Listens with a deep accept queue: the default backlog (128) overflows when many browsers
/// connect at once, and the kernel then drops connects that retry only after a second.
fn bind(address: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    const BACKLOG: u32 = 4096;
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(BACKLOG)
}

/// Logs to stderr in `format`, and traces to an OTLP collector when `otlp_endpoint` is set
/// (returned, to be flushed at exit).
fn init_logging(format: LogFormat, otlp_endpoint: Option<&str>) -> Result<Option<Traces>, String> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (pretty, json) = match format {
        LogFormat::Pretty => (
            Some(
                tracing_subscriber::fmt::layer()
                    .with_ansi(colour_logs())
                    .with_writer(std::io::stderr),
            ),
            None,
        ),
        LogFormat::Json => (
            None,
            Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            ),
        ),
    };
    let (otel, traces) = match otlp_endpoint {
        Some(endpoint) => {
            let (layer, traces) = otel::start(endpoint)?;
            (Some(layer), Some(traces))
        }
        None => (None, None),
    };
    // Each filtered layer looks the span up on every enter and exit, and the reply's span is
    // entered on every poll of the reply (once per token): only the layers in use are added,
    // not filtered `None`s.
    tracing_subscriber::registry()
        .with(pretty.map(|layer| layer.with_filter(filter.clone())))
        .with(json.map(|layer| layer.with_filter(filter)))
        // Only the proxy's own spans become traces, not every library's internals.
        .with(otel.map(|layer| {
            layer.with_filter(Targets::new().with_target("deepchat_proxy", Level::INFO))
        }))
        .init();
    Ok(traces)
}

/// Colour only for a person at a terminal: escape codes in a log file or a collector are noise.
/// `NO_COLOR` (any non-empty value, <https://no-color.org>) turns it off there too.
fn colour_logs() -> bool {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stderr().is_terminal()
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
