//! deepchat-bench: measures what deepchat-proxy adds between an OpenAI-style upstream and Deep
//! Chat clients. `run` drives everything (see `bench/run.sh`); `mock` is the upstream process it
//! starts.

mod arrivals;
mod cancel;
mod churn;
mod client;
mod clock;
mod coldstart;
mod deepchat_http;
mod drive;
mod driver;
mod floor_relay;
mod idle;
mod meter;
mod mock;
mod openloop;
mod overwrite;
mod processes;
mod procfs;
mod report;
mod results;
mod scenarios;
mod stalled;
mod stats;
mod token;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "deepchat-bench", about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the proxy and a mock upstream, run the clients, write the report.
    Run(driver::Args),
    /// The mock OpenAI Chat Completions upstream (started by `run`).
    Mock(mock::Args),
    /// A fixed, checked load against a proxy that is already running (`bench/profile.sh`).
    Drive(drive::Args),
    /// The floor of a per-token relay, for "÷ mock" comparisons (`bench/floor-relay`).
    FloorRelay(floor_relay::Args),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run(args) => driver::main(args),
        Command::Mock(args) => mock::main(args),
        Command::Drive(args) => drive::main(args),
        Command::FloorRelay(args) => floor_relay::main(args),
    }
}
