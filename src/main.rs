//! Entry point: flags, logging, signals; everything else lives in the library.

use clap::CommandFactory;
use deepchat_proxy::cli::{name_variables, Cli, LogFormat, Parsed, ProviderCommand};
use deepchat_proxy::Config;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

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
    init_logging(log_format);
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
    tracing::info!(address = %bound, path = %config.path, "deepchat-proxy listening on http://{bound}; {summary}");
    match deepchat_proxy::run_with_ops(listener, ops_listener, config, shutdown_signal()).await {
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

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour_logs())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_span_list(false)
            .init(),
    }
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
