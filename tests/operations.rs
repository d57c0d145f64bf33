//! Operating it: health, readiness, metrics, logs, and the real binary's flags and signals.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::binary::*;
use support::*;

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
        line["span"]["request_id"].is_string()
            && line["span"]["client_ip"] == "127.0.0.1"
            && line["total_ms"].is_u64()
            && line["first_token_ms"].is_u64()
    );
    assert!(
        !line.to_string().contains("top secret"),
        "content logged without --log-content: {line}"
    );
    drop(ws);

    // A refused origin is logged with the flag that would admit it.
    let refused = reqwest::Client::new()
        .post(format!("http://{address}/chat"))
        .header("origin", "https://shop.example")
        .send()
        .await
        .expect("response");
    assert_eq!(refused.status(), 403);
    let line = wait_for_line(&lines, "origin rejected");
    assert_eq!(line["level"], "WARN", "{line}");
    assert!(
        line["message"]
            .as_str()
            .is_some_and(|m| m.contains("--allow-origin https://shop.example")),
        "{line}"
    );

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

#[tokio::test]
async fn metrics_start_with_help_build_info_process_figures_and_zero_counters() {
    let (mut child, address, _lines) = spawn_binary(&[]);
    let (status, metrics) = get(format!("http://{address}/metrics")).await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200);
    for line in [
        "# HELP deepchat_proxy_requests_total ",
        "# HELP deepchat_proxy_errors_total ",
        "# HELP process_resident_memory_bytes ",
        &format!(
            "deepchat_proxy_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        ),
        "deepchat_proxy_requests_total{transport=\"websocket\",outcome=\"ok\",route=\"/chat\",provider=\"demo\",model=\"demo\"} 0",
        "deepchat_proxy_requests_total{transport=\"http-json\",outcome=\"error\",route=\"/chat\",provider=\"demo\",model=\"demo\"} 0",
        "deepchat_proxy_fallbacks_total{provider=\"demo\"} 0",
        "deepchat_proxy_errors_total{kind=\"upstream\",source=\"upstream\"} 0",
        "deepchat_proxy_rejected_total{reason=\"rate_limit\"} 0",
        "deepchat_proxy_client_cancellations_total{transport=\"http-sse\"} 0",
        "deepchat_proxy_output_tokens_total{provider=\"demo\",model=\"demo\"} 0",
        "deepchat_proxy_streams_active 0",
    ] {
        assert!(metrics.contains(line), "{line:?} missing from\n{metrics}");
    }
    for figure in ["process_resident_memory_bytes ", "process_open_fds "] {
        let value: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(figure))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{figure} missing from\n{metrics}"));
        assert!(value > 0.0, "{figure}{value}");
    }
}

/// The id a user quotes from an error reaches the HTTP header, the upstream request and the
/// log line, which also names the provider's own request id and the client's IP, at ERROR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_id_ties_the_error_text_the_header_the_upstream_and_the_log() {
    let upstream = MockUpstream::start().await;
    let base = format!("http://{}/v1", upstream.addr);
    let (mut child, address, lines) = spawn_openai(&base, "m", &["--retries", "0"], &[]);
    let lines = std::sync::Arc::new(std::sync::Mutex::new(lines));
    let next_reply_line = || {
        let lines = lines.clone();
        tokio::task::spawn_blocking(move || {
            let lines = lines.lock().expect("lines");
            wait_for_line(&lines, "reply finished")
        })
    };

    // HTTP: the client's own id is kept.
    upstream.push(
        Reply::error(500, r#"{"error":{"message":"overloaded"}}"#)
            .with_header("x-request-id", "req_provider_42"),
    );
    let response = reqwest::Client::new()
        .post(format!("http://{address}/chat"))
        .header("x-request-id", "client-trace-7")
        .header("content-type", "application/json")
        .body(r#"{"messages": [{"role": "user", "text": "hi"}]}"#)
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 502);
    assert_eq!(response.headers()["x-request-id"], "client-trace-7");
    let body: serde_json::Value =
        serde_json::from_str(&response.text().await.expect("body")).expect("json");
    let text = body["error"].as_str().expect("error text");
    assert_eq!(request_id_of(text), "client-trace-7", "{text}");
    assert_eq!(
        upstream.received()[0].header("x-request-id"),
        Some("client-trace-7")
    );
    let line = next_reply_line().await.expect("log line");
    assert_eq!(line["level"], "ERROR", "{line}");
    assert_eq!(line["span"]["request_id"], "client-trace-7", "{line}");
    assert_eq!(line["span"]["upstream_request_id"], "req_provider_42");
    assert_eq!(line["span"]["client_ip"], "127.0.0.1");

    // WebSocket: a fresh id per reply, the same in the frame, upstream and the log.
    upstream.push(Reply::error(503, r#"{"error":{"message":"busy"}}"#));
    let mut ws = connect(&format!("ws://{address}/chat")).await;
    send_user(&mut ws, "hello").await;
    let frames = read_reply(&mut ws, "stop-key").await;
    let error = frames
        .iter()
        .find_map(|f| f["error"].as_str())
        .expect("error frame");
    let id = request_id_of(error).to_owned();
    assert_eq!(id.len(), 16, "{error}");
    assert_eq!(upstream.received()[1].header("x-request-id"), Some(&*id));
    let line = next_reply_line().await.expect("log line");
    assert_eq!(line["span"]["request_id"], id.as_str(), "{line}");

    // A refusal (the client's fault) is logged at WARN with its id.
    send_user(&mut ws, "").await;
    let frames = read_reply(&mut ws, "stop-key").await;
    let refused = frames
        .iter()
        .find_map(|f| f["error"].as_str())
        .expect("error frame");
    let refused_id = request_id_of(refused).to_owned();
    let line = {
        let lines = lines.clone();
        tokio::task::spawn_blocking(move || {
            wait_for_line(&lines.lock().expect("lines"), "request refused")
        })
        .await
        .expect("log line")
    };
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(line["request_id"], refused_id.as_str());
    let _ = child.kill();
    let _ = child.wait();
}

/// Pretty logs carry no colour codes when stderr is no terminal (a file, a collector).
#[tokio::test]
async fn pretty_logs_to_a_pipe_have_no_colour_codes() {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "demo"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let mut first = String::new();
    BufReader::new(stderr).read_line(&mut first).expect("line");
    let _ = child.kill();
    let _ = child.wait();
    assert!(first.contains("listening"), "{first}");
    assert!(!first.contains('\u{1b}'), "ANSI escape in {first:?}");
}

/// The value of one series in Prometheus text (0 when absent).
fn series(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Chunk gaps are counted per text chunk after the first; a client leaving mid-reply records
/// how long the proxy took to close the upstream request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_gaps_and_cancel_latency_are_measured() {
    let upstream = MockUpstream::start().await;
    let base = format!("http://{}/v1", upstream.addr);
    let (mut child, address, _lines) = spawn_openai(&base, "m", &[], &[]);
    let gap_count = r#"deepchat_proxy_chunk_gap_seconds_count{transport="websocket"}"#;
    let cancel_count = r#"deepchat_proxy_cancel_seconds_count{transport="websocket"}"#;

    upstream.push(Reply::sse(vec![
        Step::Bytes(openai_chunk("one ")),
        Step::Wait(Duration::from_millis(30)),
        Step::Bytes(openai_chunk("two ")),
        Step::Bytes(openai_chunk("three")),
        Step::Bytes(b"data: [DONE]\n\n".to_vec()),
    ]));
    let mut ws = connect(&format!("ws://{address}/chat")).await;
    send_user(&mut ws, "count").await;
    assert_eq!(
        reply_text(&read_reply(&mut ws, "stop-key").await),
        "one two three"
    );
    let (_, metrics) = get(format!("http://{address}/metrics")).await;
    assert_eq!(series(&metrics, gap_count), 2.0, "{metrics}");
    assert_eq!(series(&metrics, cancel_count), 0.0);

    upstream.push(Reply::sse(vec![
        Step::Bytes(openai_chunk("started")),
        Step::HoldUntilClosed,
    ]));
    send_user(&mut ws, "leave").await;
    let first = next_message(&mut ws).await;
    assert!(first.to_text().unwrap_or_default().contains("started"));
    drop(ws);
    upstream.wait_closed(1).await;
    let deadline = std::time::Instant::now() + PATIENCE;
    let metrics = loop {
        let (_, metrics) = get(format!("http://{address}/metrics")).await;
        if series(&metrics, cancel_count) > 0.0 || std::time::Instant::now() > deadline {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(series(&metrics, cancel_count), 1.0, "{metrics}");
}

/// `/status` is a plain page for people: this process's replies, what is open, the upstream.
#[tokio::test]
async fn the_status_page_shows_recent_replies_and_the_upstream() {
    let (mut child, address, _lines) = spawn_binary(&[]);
    let mut ws = connect(&format!("ws://{address}/chat")).await;
    for question in ["one", "two"] {
        send_user(&mut ws, question).await;
        read_reply(&mut ws, "stop-key").await;
    }
    let response = reqwest::get(format!("http://{address}/status"))
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    let page = response.text().await.expect("page");
    let _ = child.kill();
    let _ = child.wait();
    for shown in [
        "<tr><th>Replies ok</th><td>2</td></tr>",
        "<tr><th>Replies failed</th><td>0</td></tr>",
        // The socket is still open while the page is read.
        "<tr><th>Open connections</th><td>2</td></tr>",
        "First token p50 / p90 / p99</th><td>",
        "demo (no upstream)",
    ] {
        assert!(page.contains(shown), "{shown:?} missing from\n{page}");
    }
    assert!(
        !page.contains("<script") && !page.contains("src="),
        "{page}"
    );

    // An upstream that refuses connections is shown as down.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let base = format!("http://127.0.0.1:{port}/v1");
    let (mut child, address, _lines) = spawn_openai(&base, "m", &[], &[]);
    let (_, page) = get(format!("http://{address}/status")).await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        page.contains(&format!("<th>127.0.0.1:{port}</th><td class=\"down\">")),
        "{page}"
    );
}

/// OpenAI streams token usage only when asked: the proxy asks (`stream_options.include_usage`),
/// and the counters move by what the usage chunk reports, per provider and model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_asked_for_and_counted_per_provider_and_model() {
    let upstream = MockUpstream::start().await;
    let base = format!("http://{}/v1", upstream.addr);
    let (mut child, address, _lines) = spawn_openai(&base, "gpt-counted", &[], &[]);
    let input = r#"deepchat_proxy_input_tokens_total{provider="openai",model="gpt-counted"}"#;
    let output = r#"deepchat_proxy_output_tokens_total{provider="openai",model="gpt-counted"}"#;
    let (_, before) = get(format!("http://{address}/metrics")).await;
    assert!(before.contains(&format!("{output} 0")), "{before}");

    upstream.push(Reply::openai_text_with_usage(&["counted ", "reply"], 12, 5));
    let mut ws = connect(&format!("ws://{address}/chat")).await;
    send_user(&mut ws, "count me").await;
    assert_eq!(
        reply_text(&read_reply(&mut ws, "stop-key").await),
        "counted reply"
    );
    let asked = &upstream.received()[0].body["stream_options"];
    assert_eq!(asked["include_usage"], true, "asked for usage: {asked}");
    let (_, after) = get(format!("http://{address}/metrics")).await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(series(&after, input), 12.0, "{after}");
    assert_eq!(series(&after, output), 5.0, "{after}");
}
