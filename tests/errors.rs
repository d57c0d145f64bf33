//! Errors through the real server: one mapping from a failure to its HTTP status, its Deep
//! Chat error frame (and the stop key on WebSocket) and its metrics label. A client's own
//! file the provider cannot take is a 400 found before anything is sent upstream.

mod support;

use serde_json::{json, Value};
use support::*;

const STOP: &str = "stop-key";

/// A proxy for Ollama's native API (which takes only uploaded images, not image links)
/// pointed at `upstream`, without retries or a rate limit.
async fn ollama(upstream: &MockUpstream) -> Proxy {
    let base = format!("http://{}", upstream.addr);
    Proxy::start(&[
        "--retries",
        "0",
        "--rate-limit",
        "0",
        "ollama",
        "--base-url",
        &base,
        "--model",
        "m-1",
    ])
    .await
}

/// A message with an image link, which Ollama's adapter refuses.
fn image_link(text: &str) -> Value {
    json!({"role": "user", "text": text, "files": [
        {"src": "https://example.com/cat.png", "type": "image", "name": "cat.png"}
    ]})
}

/// An Ollama NDJSON reply of one chunk of text.
fn ollama_text(text: &str) -> Reply {
    let lines = [
        json!({"message": {"role": "assistant", "content": text}, "done": false}),
        json!({"message": {"role": "assistant", "content": ""}, "done": true, "done_reason": "stop"}),
    ];
    let body: String = lines.iter().map(|line| format!("{line}\n")).collect();
    Reply {
        status: 200,
        content_type: "application/x-ndjson",
        steps: vec![Step::Bytes(body.into_bytes())],
        headers: Vec::new(),
    }
}

async fn metrics(proxy: &Proxy) -> String {
    reqwest::get(format!("http://{}/metrics", proxy.addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body")
}

/// The value of one counter line in a Prometheus text page (0 when absent).
fn counter(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

const UNSUPPORTED: &str = r#"deepchat_proxy_errors_total{kind="unsupported",source="client"}"#;

/// Both transports in one test: only this test sends unsupported files, so the counter's
/// steps are its own.
#[tokio::test]
async fn an_unsupported_file_is_refused_before_the_upstream_on_every_transport() {
    let upstream = MockUpstream::start().await;
    let proxy = ollama(&upstream).await;

    // HTTP JSON: a 400 with the adapter's reason.
    let response = reqwest::Client::new()
        .post(format!("http://{}/chat", proxy.addr))
        .header("content-type", "application/json")
        .body(json!({"messages": [image_link("what is this?")]}).to_string())
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 400);
    let body: Value = serde_json::from_str(&response.text().await.expect("body")).expect("json");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("only accepts uploaded images")),
        "{body}"
    );
    assert!(upstream.received().is_empty(), "nothing was sent upstream");
    let after_http = metrics(&proxy).await;
    assert_eq!(counter(&after_http, UNSUPPORTED), 1.0, "{after_http}");
    assert!(
        after_http.contains(r#"deepchat_proxy_rejected_total{reason="unsupported"}"#),
        "{after_http}"
    );

    // WebSocket: an error frame, then the stop key, and the socket still serves.
    let mut ws = connect(&proxy.ws_url()).await;
    let request = json!({"messages": [image_link("what is this?")]}).to_string();
    futures_util::SinkExt::send(
        &mut ws,
        tokio_tungstenite::tungstenite::Message::text(request),
    )
    .await
    .expect("send");
    let frames = read_reply(&mut ws, STOP).await;
    let errors = errors(&frames);
    assert_eq!(errors.len(), 1, "{frames:?}");
    assert!(
        errors[0].contains("only accepts uploaded images"),
        "{errors:?}"
    );
    assert!(upstream.received().is_empty(), "nothing was sent upstream");
    let after_ws = metrics(&proxy).await;
    assert_eq!(
        counter(&after_ws, UNSUPPORTED),
        2.0,
        "refused as the client's error, not failed as a reply: {after_ws}"
    );

    // The refused question is not remembered.
    upstream.push(ollama_text("fine"));
    send_user(&mut ws, "and now?").await;
    let frames = read_reply(&mut ws, STOP).await;
    assert_eq!(reply_text(&frames), "fine");
    let sent = upstream.wait_requests(1).await;
    let messages = sent[0].body["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let users: Vec<&str> = messages
        .iter()
        .filter(|m| m["role"] == "user")
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(users, vec!["and now?"], "{messages:?}");
}

#[tokio::test]
async fn every_outcome_is_counted_by_kind_and_source() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &[], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    upstream.push(Reply::error(500, r#"{"error":{"message":"melted"}}"#));
    send_user(&mut ws, "hi").await;
    let frames = read_reply(&mut ws, STOP).await;
    assert!(errors(&frames)[0].contains("melted"), "{frames:?}");
    futures_util::SinkExt::send(
        &mut ws,
        tokio_tungstenite::tungstenite::Message::text("{not json"),
    )
    .await
    .expect("send");
    let frames = read_reply(&mut ws, STOP).await;
    assert!(errors(&frames)[0].contains("not valid JSON"), "{frames:?}");

    let metrics = metrics(&proxy).await;
    for line in [
        r#"deepchat_proxy_errors_total{kind="upstream",source="upstream"}"#,
        r#"deepchat_proxy_errors_total{kind="bad_request",source="client"}"#,
        r#"deepchat_proxy_requests_total{transport="websocket",outcome="error",route="/chat",provider="openai",model="test-model"}"#,
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
}

#[tokio::test]
async fn a_reply_past_its_timeout_is_a_504_over_http_json() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--reply-timeout", "1"], &[]).await;
    upstream.push(Reply::sse(vec![
        Step::Bytes(openai_chunk("slow")),
        Step::HoldUntilClosed,
    ]));
    let response = reqwest::Client::new()
        .post(format!("http://{}/chat", proxy.addr))
        .header("content-type", "application/json")
        .body(json!({"messages": [{"role": "user", "text": "hi"}]}).to_string())
        .timeout(std::time::Duration::from_secs(30))
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 504, "the upstream's delay, not ours");
    let body = response.text().await.expect("body");
    assert!(body.contains("longer than 1 s"), "{body}");
    upstream.wait_closed(1).await;
}
