//! Operating it: health, readiness, metrics, logs, and the real binary's flags and signals.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_deepchat-proxy");

async fn get(url: String) -> (u16, String) {
    let response = reqwest::get(url).await.expect("response");
    (
        response.status().as_u16(),
        response.text().await.expect("body"),
    )
}

#[tokio::test]
async fn health_readiness_and_metrics_on_the_main_listener() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &[], &[]).await;
    let base = format!("http://{}", proxy.addr);
    assert_eq!(get(format!("{base}/healthz")).await, (200, "ok\n".into()));
    assert_eq!(get(format!("{base}/readyz")).await.0, 200);

    let mut ws = connect(&proxy.ws_url()).await;
    upstream.push(Reply::openai_text(&["counted"]));
    send_user(&mut ws, "hi").await;
    read_reply(&mut ws, "stop-key").await;
    let refused = reqwest::Client::new()
        .post(format!("{base}/chat"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("response");
    assert_eq!(refused.status(), 403);

    let (status, metrics) = get(format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    for needle in [
        r#"deepchat_proxy_requests_total{transport="websocket",outcome="ok",route="/chat",provider="openai",model="test-model"}"#,
        "deepchat_proxy_first_token_seconds_bucket",
        "deepchat_proxy_reply_duration_seconds_bucket",
        r#"deepchat_proxy_rejected_total{reason="origin"}"#,
        "deepchat_proxy_connections_active",
        "deepchat_proxy_relayed_bytes_total",
    ] {
        assert!(metrics.contains(needle), "missing {needle} in\n{metrics}");
    }
}

#[tokio::test]
async fn readiness_fails_when_the_upstream_is_unreachable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let base_url = format!("http://127.0.0.1:{port}/v1");
    let proxy = Proxy::start(&["openai", "--base-url", &base_url, "--model", "m"]).await;
    let (status, body) = get(format!("http://{}/readyz", proxy.addr)).await;
    assert_eq!(status, 503);
    assert!(body.contains("unreachable"), "{body}");
    assert_eq!(get(format!("http://{}/healthz", proxy.addr)).await.0, 200);
}

#[tokio::test]
async fn metrics_listen_moves_the_operational_endpoints() {
    use clap::Parser;
    let cli = deepchat_proxy::cli::Cli::try_parse_from(["deepchat-proxy", "demo"]).expect("flags");
    let config = deepchat_proxy::Config::from_cli(cli).expect("config");
    let main = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let ops = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (main_addr, ops_addr) = (
        main.local_addr().expect("addr"),
        ops.local_addr().expect("addr"),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(deepchat_proxy::run_with_ops(
        main,
        Some(ops),
        config,
        async move {
            let _ = stopped.await;
        },
    ));
    assert_eq!(get(format!("http://{ops_addr}/healthz")).await.0, 200);
    assert_eq!(get(format!("http://{ops_addr}/readyz")).await.0, 200);
    assert!(get(format!("http://{ops_addr}/metrics"))
        .await
        .1
        .contains("deepchat_proxy_"));
    assert_eq!(get(format!("http://{main_addr}/healthz")).await.0, 404);
    let _ = stop.send(());
    let _ = tokio::time::timeout(PATIENCE, server).await;
}

#[test]
fn check_validates_flags_and_environment() {
    let ok = Command::new(BIN)
        .args(["--check", "demo"])
        .output()
        .expect("run");
    assert!(ok.status.success(), "{ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).contains("configuration OK"));

    let bad_header = Command::new(BIN)
        .args(["--check", "openai", "--model", "m", "--header", "no colon"])
        .output()
        .expect("run");
    assert_eq!(bad_header.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_header.stderr).contains("--header"));

    let missing_secret = Command::new(BIN)
        .args([
            "--check",
            "--auth-token-env",
            "DEEPCHAT_PROXY_TEST_UNSET_TOKENS",
            "demo",
        ])
        .env_remove("DEEPCHAT_PROXY_TEST_UNSET_TOKENS")
        .output()
        .expect("run");
    assert_eq!(missing_secret.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing_secret.stderr)
        .contains("DEEPCHAT_PROXY_TEST_UNSET_TOKENS"));

    let missing_file = Command::new(BIN)
        .args([
            "--check",
            "openai",
            "--model",
            "m",
            "--api-key-file",
            "/nonexistent/key",
        ])
        .output()
        .expect("run");
    assert_eq!(missing_file.status.code(), Some(2));
}

#[test]
fn version_completions_and_man_page() {
    let version = Command::new(BIN).arg("--version").output().expect("run");
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("deepchat-proxy "));
    let bash = Command::new(BIN)
        .args(["completions", "bash"])
        .output()
        .expect("run");
    assert!(bash.status.success());
    assert!(String::from_utf8_lossy(&bash.stdout).contains("--allow-origin"));
    let man = Command::new(BIN).arg("man").output().expect("run");
    assert!(man.status.success());
    assert!(String::from_utf8_lossy(&man.stdout).contains(".TH deepchat-proxy"));
}

/// Starts the real binary on an ephemeral port with JSON logs; returns it, its address and
/// a reader of its log lines.
fn spawn_binary(
    extra: &[&str],
) -> (
    std::process::Child,
    String,
    std::sync::mpsc::Receiver<String>,
) {
    let mut args = vec!["--listen", "127.0.0.1:0", "--log-format", "json"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["demo", "--tokens-per-second", "1000"]);
    let mut child = Command::new(BIN)
        .args(&args)
        .env("RUST_LOG", "info")
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
    let first = lines.recv_timeout(PATIENCE).expect("listening line");
    let event: serde_json::Value = serde_json::from_str(&first).expect("json log line");
    let address = event["address"].as_str().expect("address field").to_owned();
    (child, address, lines)
}

fn wait_for_line(lines: &std::sync::mpsc::Receiver<String>, needle: &str) -> serde_json::Value {
    loop {
        let line = lines.recv_timeout(PATIENCE).expect("log line in time");
        if line.contains(needle) {
            return serde_json::from_str(&line).expect("json");
        }
    }
}

#[tokio::test]
async fn json_logs_one_line_per_reply_without_content_and_sigterm_stops_cleanly() {
    let (mut child, address, lines) = spawn_binary(&[]);
    let mut ws = connect(&format!("ws://{address}/chat")).await;
    send_user(&mut ws, "top secret question").await;
    read_reply(&mut ws, "stop-key").await;
    let line = wait_for_line(&lines, "reply finished");
    assert_eq!(line["status"], "ok");
    assert_eq!(line["provider"], "demo");
    assert!(
        line["request_id"].is_string()
            && line["total_ms"].is_u64()
            && line["first_token_ms"].is_u64()
    );
    assert!(
        !line.to_string().contains("top secret"),
        "content logged without --log-content: {line}"
    );
    drop(ws);

    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "exit after SIGTERM: {status:?}");
            break;
        }
        assert!(started.elapsed() < PATIENCE, "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn log_content_includes_the_dialogue_when_asked() {
    let (mut child, address, lines) = spawn_binary(&["--log-content"]);
    let mut ws = connect(&format!("ws://{address}/chat")).await;
    send_user(&mut ws, "loggable question").await;
    read_reply(&mut ws, "stop-key").await;
    let line = wait_for_line(&lines, "reply finished");
    assert_eq!(line["question"], "loggable question");
    assert!(line["answer"]
        .as_str()
        .is_some_and(|a| a.contains("loggable question")));
    let _ = child.kill();
    let _ = child.wait();
}
