//! Several routes and fallback chains through the real server: two routes on one process each
//! answered by its own provider, `--allow-model`, a fallback after a connect error, a 500 and
//! an error first chunk, no switch once text was sent, and the circuit breaker.

mod support;

use futures_util::SinkExt;
use serde_json::{json, Value};
use std::time::Duration;
use support::*;
use tokio_tungstenite::tungstenite::Message;

const STOP: &str = "stop-key";
const NO_KEY: &str = "DEEPCHAT_PROXY_TEST_NO_SUCH_KEY";

fn base(mock: &MockUpstream) -> String {
    format!("http://{}/v1", mock.addr)
}

fn anthropic_base(mock: &MockUpstream) -> String {
    format!("http://{}", mock.addr)
}

/// A port nothing listens on: bound, then closed.
async fn closed_port() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}/v1")
}

/// Starts a proxy with `args` after `--retries 0 --rate-limit 0` (unless given).
async fn start(args: &[&str]) -> Proxy {
    let mut all: Vec<&str> = Vec::new();
    for (flag, value) in [("--retries", "0"), ("--rate-limit", "0")] {
        if !args.contains(&flag) {
            all.extend_from_slice(&[flag, value]);
        }
    }
    all.extend_from_slice(args);
    Proxy::start(&all).await
}

async fn ask(proxy: &Proxy, path: &str, body: Value, stop_key: &str) -> Vec<Value> {
    let mut ws = connect(&format!("ws://{}{path}", proxy.addr)).await;
    ws.send(Message::text(body.to_string()))
        .await
        .expect("send");
    read_reply(&mut ws, stop_key).await
}

fn user(text: &str) -> Value {
    json!({"messages": [{"role": "user", "text": text}]})
}

async fn get(url: String) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(url)
        .timeout(PATIENCE)
        .send()
        .await
        .expect("response");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

#[tokio::test]
async fn two_routes_are_each_answered_by_their_own_provider() {
    let openai = MockUpstream::start().await;
    let anthropic = MockUpstream::start().await;
    let (openai_url, anthropic_url) = (base(&openai), anthropic_base(&anthropic));
    let proxy = start(&[
        "--system-prompt",
        "Main prompt.",
        "openai",
        "--base-url",
        &openai_url,
        "--model",
        "gpt-test",
        "--api-key-env",
        NO_KEY,
        "--route",
        "/claude",
        "--system-prompt",
        "Be brief.",
        "--stop-key",
        "[END]",
        "anthropic",
        "--base-url",
        &anthropic_url,
        "--model",
        "claude-test",
        "--api-key-env",
        NO_KEY,
    ])
    .await;
    openai.push(Reply::openai_text(&["from ", "openai"]));
    anthropic.push(Reply::anthropic_text(&["from ", "claude"]));

    let frames = ask(&proxy, "/chat", user("hi"), STOP).await;
    assert_eq!(reply_text(&frames), "from openai", "{frames:?}");
    let frames = ask(&proxy, "/claude", user("hello"), "[END]").await;
    assert_eq!(reply_text(&frames), "from claude", "{frames:?}");

    let to_openai = openai.wait_requests(1).await;
    assert_eq!(to_openai[0].path, "/v1/chat/completions");
    assert_eq!(to_openai[0].body["model"], "gpt-test");
    assert_eq!(to_openai[0].body["messages"][0]["content"], "Main prompt.");
    let to_anthropic = anthropic.wait_requests(1).await;
    assert_eq!(to_anthropic[0].path, "/v1/messages");
    assert_eq!(to_anthropic[0].body["model"], "claude-test");
    assert_eq!(to_anthropic[0].body["system"], "Be brief.");
    assert_eq!(openai.received().len(), 1, "one request each");

    let (status, ready) = get(format!("http://{}/readyz", proxy.addr)).await;
    assert_eq!(status, 200, "{ready}");
    assert!(
        ready.contains("/chat: ready") && ready.contains("/claude: ready"),
        "{ready}"
    );
    let (_, metrics) = get(format!("http://{}/metrics", proxy.addr)).await;
    assert!(
        metrics.contains(r#"route="/claude",provider="anthropic",model="claude-test""#),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_allowed_model_reaches_the_upstream_and_another_is_refused() {
    let upstream = MockUpstream::start().await;
    let url = base(&upstream);
    let proxy = start(&[
        "--allow-model",
        "fast=gpt-fast-internal",
        "--allow-model",
        "gpt-big",
        "openai",
        "--base-url",
        &url,
        "--model",
        "gpt-default",
        "--api-key-env",
        NO_KEY,
        "--route",
        "/open",
        "openai",
        "--base-url",
        &url,
        "--model",
        "gpt-fixed",
        "--api-key-env",
        NO_KEY,
    ])
    .await;
    let with_model =
        |model: &str| json!({"messages": [{"role": "user", "text": "hi"}], "model": model});
    let cases = [
        ("fast", "gpt-fast-internal"),
        ("gpt-big", "gpt-big"),
        ("gpt-default", "gpt-default"),
    ];
    for (done, (asked, sent)) in cases.into_iter().enumerate() {
        upstream.push(Reply::openai_text(&["ok"]));
        let frames = ask(&proxy, "/chat", with_model(asked), STOP).await;
        assert_eq!(reply_text(&frames), "ok", "{frames:?}");
        let received = upstream.wait_requests(done + 1).await;
        assert_eq!(received[done].body["model"], sent, "{asked}");
    }

    // Refused: an error frame and the stop key, nothing sent, nothing secret listed.
    let frames = ask(&proxy, "/chat", with_model("gpt-4-expensive"), STOP).await;
    let errors = errors(&frames);
    assert_eq!(errors.len(), 1, "{frames:?}");
    assert!(errors[0].contains("not available"), "{errors:?}");
    assert!(errors[0].contains("fast"), "{errors:?}");
    assert!(!errors[0].contains("gpt-fast-internal"), "{errors:?}");
    assert_eq!(
        frames.last().and_then(|f| f["text"].as_str()),
        Some(STOP),
        "{frames:?}"
    );
    // Over HTTP: a 400.
    let response = reqwest::Client::new()
        .post(format!("http://{}/chat", proxy.addr))
        .header("content-type", "application/json")
        .body(with_model("nope").to_string())
        .timeout(PATIENCE)
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 400);
    assert_eq!(upstream.received().len(), 3, "nothing more went upstream");

    // A route without --allow-model ignores the body's model, as before.
    upstream.push(Reply::openai_text(&["fixed"]));
    let frames = ask(&proxy, "/open", with_model("gpt-big"), STOP).await;
    assert_eq!(reply_text(&frames), "fixed", "{frames:?}");
    assert_eq!(
        upstream.wait_requests(4).await[3].body["model"],
        "gpt-fixed"
    );
}

#[tokio::test]
async fn a_primary_on_a_closed_port_falls_back_without_retrying_it() {
    let fallback = MockUpstream::start().await;
    let (dead, url) = (closed_port().await, base(&fallback));
    // With eight retries of the primary (backoff from 250 ms, doubling) the reply would take
    // over a minute: past every wait of this test. The fallback must be tried at once.
    let proxy = start(&[
        "--retries",
        "8",
        "openai",
        "--base-url",
        &dead,
        "--model",
        "gpt-primary",
        "--api-key-env",
        NO_KEY,
        "--fallback",
        "openai",
        "--base-url",
        &url,
        "--model",
        "gpt-fallback",
        "--api-key-env",
        NO_KEY,
    ])
    .await;
    fallback.push(Reply::openai_text(&["rescued"]));
    let frames = ask(&proxy, "/chat", user("hi"), STOP).await;
    assert_eq!(reply_text(&frames), "rescued", "{frames:?}");
    assert!(errors(&frames).is_empty(), "{frames:?}");
    let received = fallback.wait_requests(1).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body["model"], "gpt-fallback");
    let (_, metrics) = get(format!("http://{}/metrics", proxy.addr)).await;
    assert!(
        metrics.contains(r#"provider="openai",model="gpt-fallback""#),
        "the metrics name the upstream that answered:\n{metrics}"
    );
}

#[tokio::test]
async fn a_primary_that_answers_500_or_an_error_chunk_falls_back() {
    let primary = MockUpstream::start().await;
    let fallback = MockUpstream::start().await;
    let (primary_url, fallback_url) = (base(&primary), anthropic_base(&fallback));
    let proxy = start(&[
        "openai",
        "--base-url",
        &primary_url,
        "--model",
        "gpt-primary",
        "--api-key-env",
        NO_KEY,
        "--fallback",
        "anthropic",
        "--base-url",
        &fallback_url,
        "--model",
        "claude-fallback",
        "--api-key-env",
        NO_KEY,
    ])
    .await;
    primary.push(Reply::error(500, r#"{"error":{"message":"melted"}}"#));
    fallback.push(Reply::anthropic_text(&["second ", "opinion"]));
    let frames = ask(&proxy, "/chat", user("hi"), STOP).await;
    assert_eq!(reply_text(&frames), "second opinion", "{frames:?}");
    assert!(errors(&frames).is_empty(), "{frames:?}");

    let error_first = br#"data: {"error":{"message":"overloaded"}}

"#;
    primary.push(Reply::sse(vec![Step::Bytes(error_first.to_vec())]));
    fallback.push(Reply::anthropic_text(&["again"]));
    let frames = ask(&proxy, "/chat", user("hi"), STOP).await;
    assert_eq!(reply_text(&frames), "again", "{frames:?}");

    primary.push(
        Reply::error(429, r#"{"error":{"message":"slow down"}}"#).with_header("retry-after", "1"),
    );
    fallback.push(Reply::anthropic_text(&["no waiting"]));
    let frames = ask(&proxy, "/chat", user("hi"), STOP).await;
    assert_eq!(reply_text(&frames), "no waiting", "{frames:?}");
    assert_eq!(primary.wait_requests(3).await.len(), 3);
    assert_eq!(fallback.wait_requests(3).await.len(), 3);
}

#[tokio::test]
async fn a_primary_that_sends_nothing_before_the_first_byte_timeout_falls_back() {
    let primary = MockUpstream::start().await;
    let fallback = MockUpstream::start().await;
    let (primary_url, fallback_url) = (base(&primary), base(&fallback));
    let proxy = start(&[
        "--first-byte-timeout",
        "1",
        "openai",
        "--base-url",
        &primary_url,
        "--model",
        "gpt-primary",
        "--api-key-env",
        NO_KEY,
        "--fallback",
        "openai",
        "--base-url",
        &fallback_url,
        "--model",
        "gpt-fallback",
        "--api-key-env",
        NO_KEY,
    ])
    .await;
    primary.push(Reply::sse(vec![Step::HoldUntilClosed]));
    fallback.push(Reply::openai_text(&["in time"]));
    let frames = ask(&proxy, "/chat", user("hi"), STOP).await;
    assert_eq!(reply_text(&frames), "in time", "{frames:?}");
    assert!(errors(&frames).is_empty(), "{frames:?}");
    primary.wait_closed(1).await;
}

#[tokio::test]
async fn after_text_an_upstream_drop_is_an_error_not_a_switch() {
    let primary = MockUpstream::start().await;
    let fallback = MockUpstream::start().await;
    let (primary_url, fallback_url) = (base(&primary), base(&fallback));
    let proxy = start(&[
        "openai",
        "--base-url",
        &primary_url,
        "--model",
        "gpt-primary",
        "--api-key-env",
        NO_KEY,
        "--fallback",
        "openai",
        "--base-url",
        &fallback_url,
        "--model",
        "gpt-fallback",
        "--api-key-env",
        NO_KEY,
    ])
    .await;
    primary.push(Reply::sse(vec![
        Step::Bytes(openai_chunk("half an ")),
        Step::Drop,
    ]));
    fallback.push(Reply::openai_text(&["a whole other answer"]));
    let frames = ask(&proxy, "/chat", user("hi"), STOP).await;
    assert_eq!(reply_text(&frames), "half an ", "{frames:?}");
    assert_eq!(errors(&frames).len(), 1, "{frames:?}");
    assert!(
        fallback.received().is_empty(),
        "no switch once text reached the client"
    );
}

#[tokio::test]
async fn the_breaker_skips_a_failing_primary_then_tries_it_again() {
    let primary = MockUpstream::start().await;
    let fallback = MockUpstream::start().await;
    let (primary_url, fallback_url) = (base(&primary), base(&fallback));
    let proxy = start(&[
        "--breaker-failures",
        "2",
        "--breaker-cooldown",
        "1",
        "openai",
        "--base-url",
        &primary_url,
        "--model",
        "gpt-primary",
        "--api-key-env",
        NO_KEY,
        "--fallback",
        "openai",
        "--base-url",
        &fallback_url,
        "--model",
        "gpt-fallback",
        "--api-key-env",
        NO_KEY,
    ])
    .await;
    // The primary has nothing queued: it answers 500 every time.
    for round in 1..=3 {
        fallback.push(Reply::openai_text(&["fallback"]));
        let frames = ask(&proxy, "/chat", user("hi"), STOP).await;
        assert_eq!(reply_text(&frames), "fallback", "round {round}: {frames:?}");
    }
    assert_eq!(
        primary.received().len(),
        2,
        "open after two failures: the third reply skipped the primary"
    );
    assert_eq!(fallback.received().len(), 3);

    // Past the cool-down one reply tries the primary again; its success closes the breaker.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    primary.push(Reply::openai_text(&["primary is back"]));
    let frames = ask(&proxy, "/chat", user("hi"), STOP).await;
    assert_eq!(reply_text(&frames), "primary is back", "{frames:?}");
    primary.push(Reply::openai_text(&["and stays"]));
    let frames = ask(&proxy, "/chat", user("hi"), STOP).await;
    assert_eq!(reply_text(&frames), "and stays", "{frames:?}");
    assert_eq!(primary.received().len(), 4);
    assert_eq!(fallback.received().len(), 3, "closed: no more fallbacks");
}

#[tokio::test]
async fn routes_that_name_the_same_upstream_share_its_breaker() {
    let primary = MockUpstream::start().await;
    let fallback = MockUpstream::start().await;
    let (primary_url, fallback_url) = (base(&primary), base(&fallback));
    let chain = |model: &'static str| {
        vec![
            "openai".to_owned(),
            "--base-url".to_owned(),
            primary_url.clone(),
            "--model".to_owned(),
            model.to_owned(),
            "--api-key-env".to_owned(),
            NO_KEY.to_owned(),
            "--fallback".to_owned(),
            "openai".to_owned(),
            "--base-url".to_owned(),
            fallback_url.clone(),
            "--model".to_owned(),
            "gpt-fallback".to_owned(),
            "--api-key-env".to_owned(),
            NO_KEY.to_owned(),
        ]
    };
    let mut args = vec![
        "--breaker-failures".to_owned(),
        "2".to_owned(),
        "--breaker-cooldown".to_owned(),
        "600".to_owned(),
    ];
    args.extend(chain("gpt-a"));
    args.extend(["--route".to_owned(), "/other".to_owned()]);
    args.extend(chain("gpt-b"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let proxy = start(&args).await;
    // Two failures of the shared primary on /chat open its breaker...
    for _ in 0..2 {
        fallback.push(Reply::openai_text(&["fallback"]));
        let frames = ask(&proxy, "/chat", user("hi"), STOP).await;
        assert_eq!(reply_text(&frames), "fallback", "{frames:?}");
    }
    // ...so /other skips it at once.
    fallback.push(Reply::openai_text(&["fallback"]));
    let frames = ask(&proxy, "/other", user("hi"), STOP).await;
    assert_eq!(reply_text(&frames), "fallback", "{frames:?}");
    assert_eq!(
        primary.received().len(),
        2,
        "the other route skipped the dead primary"
    );
    assert_eq!(fallback.received().len(), 3);
}
