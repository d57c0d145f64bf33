//! The real binary as a child process: on an ephemeral port, JSON logs read line by line.

use super::PATIENCE;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_deepchat-proxy");

pub type Spawned = (
    std::process::Child,
    String,
    std::sync::mpsc::Receiver<String>,
);

/// Starts the real binary (the fast demo provider) on an ephemeral port with JSON logs;
/// returns it, its address and a reader of its log lines.
pub fn spawn_binary(extra: &[&str]) -> Spawned {
    let mut args = extra.to_vec();
    args.extend_from_slice(&["demo", "--tokens-per-second", "1000"]);
    spawn_with(&args)
}

/// Starts the real binary with `args` (global flags, then the provider) and JSON logs.
pub fn spawn_with(args: &[&str]) -> Spawned {
    spawn_with_env(args, &[])
}

/// The real binary as an `openai` proxy of the server at `base` (`http://HOST:PORT/v1`) with
/// `model`, no key, `global` flags before the provider and `env` set.
pub fn spawn_openai(base: &str, model: &str, global: &[&str], env: &[(&str, &str)]) -> Spawned {
    let mut args = global.to_vec();
    args.extend_from_slice(&[
        "openai",
        "--base-url",
        base,
        "--model",
        model,
        "--api-key-env",
        "DEEPCHAT_PROXY_TEST_NO_SUCH_KEY",
    ]);
    spawn_with_env(&args, env)
}

/// [`spawn_with`], with extra environment variables.
pub fn spawn_with_env(args: &[&str], env: &[(&str, &str)]) -> Spawned {
    spawn_reporting(args, env).0
}

/// [`spawn_with_env`], also returning the start line (the `listening` log event).
pub fn spawn_reporting(args: &[&str], env: &[(&str, &str)]) -> (Spawned, serde_json::Value) {
    let mut all = vec!["--listen", "127.0.0.1:0", "--log-format", "json"];
    all.extend_from_slice(args);
    let args = all;
    let mut child = Command::new(BIN)
        .args(&args)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    // Warnings (a missing key, say) may come first.
    let event = wait_for_line(&lines, "listening");
    let address = event["address"].as_str().expect("address field").to_owned();
    ((child, address, lines), event)
}

pub fn wait_for_line(lines: &std::sync::mpsc::Receiver<String>, needle: &str) -> serde_json::Value {
    loop {
        let line = lines.recv_timeout(PATIENCE).expect("log line in time");
        if line.contains(needle) {
            return serde_json::from_str(&line).expect("json");
        }
    }
}
