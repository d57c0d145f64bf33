//! `deepchat-bench drive`: a fixed load against a proxy that is already running (for example
//! under valgrind or strace, see `bench/profile.sh`): N streams × M tokens at a fixed rate,
//! every reply checked token by token, and the totals printed, so a profile of the proxy can be
//! divided by an exact token count.

use crate::client::{self, LIMITS};
use crate::token::Spec;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The proxy's WebSocket address.
    #[arg(long)]
    proxy: SocketAddr,
    /// Conversations, one socket each.
    #[arg(long, default_value_t = 20)]
    streams: u32,
    /// Content tokens per reply.
    #[arg(long, default_value_t = 200)]
    tokens: u32,
    /// Tokens per second per stream; 0 = unpaced.
    #[arg(long, default_value_t = 20)]
    rate: u64,
    /// Connects spread evenly over this many milliseconds.
    #[arg(long, default_value_t = 1000)]
    ramp_ms: u64,
    /// First stream id (ids must differ between runs against one mock).
    #[arg(long, default_value_t = 1)]
    first_id: u64,
}

pub fn main(args: Args) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("drive: no runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(drive(args))
}

async fn drive(args: Args) -> ExitCode {
    let interval_us = 1_000_000u64.checked_div(args.rate).unwrap_or(0);
    let step = Duration::from_millis(args.ramp_ms) / args.streams.max(1);
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for i in 0..args.streams {
        let spec = Spec {
            id: args.first_id + u64::from(i),
            tokens: args.tokens,
            interval_us,
        };
        let at = started + step * i;
        let proxy = args.proxy;
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            client::via_proxy(proxy, "/chat", spec, LIMITS).await
        }));
    }
    let (mut ok, mut tokens, mut frames, mut failed) = (0u32, 0u64, 0u64, 0u32);
    for task in tasks {
        match task.await {
            Ok(result) => {
                tokens += u64::from(result.tokens);
                frames += u64::from(result.frames);
                match result.verdict {
                    Ok(()) => ok += 1,
                    Err(why) => {
                        failed += 1;
                        eprintln!("drive: a reply failed: {why}");
                    }
                }
            }
            Err(err) => {
                failed += 1;
                eprintln!("drive: a client task failed: {err}");
            }
        }
    }
    println!(
        "streams_ok={ok} failed={failed} tokens={tokens} frames={frames} seconds={:.2}",
        started.elapsed().as_secs_f64()
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
