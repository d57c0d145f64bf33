//! The WebSocket relay end to end: real proxy, scripted OpenAI upstream, Deep Chat-like client.

mod support;

use futures_util::{SinkExt, StreamExt};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::*;
use tokio_tungstenite::tungstenite::Message;

const STOP: &str = "stop-key";

fn stop_frames(frames: &[Value], key: &str) -> usize {
    frames
        .iter()
        .filter(|f| f.get("text").and_then(Value::as_str) == Some(key))
        .count()
}

#[tokio::test]
async fn text_is_byte_exact_across_random_chunk_boundaries_and_split_utf8() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &[], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let alphabet = [
        "a", "é", "👋", "\"", "\\", "\n", " ", "日本", "🇫🇷", "stop-key", "<b>", "\u{0}",
    ];

    for round in 0..5 {
        let deltas: Vec<String> = (0..rng.random_range(5..40))
            .map(|_| {
                (0..rng.random_range(1..6))
                    .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                    .collect()
            })
            .collect();
        let expected: String = deltas.concat();
        // One SSE body, cut into random byte ranges (often inside a UTF-8 sequence).
        let mut body: Vec<u8> = deltas.iter().flat_map(|d| openai_chunk(d)).collect();
        body.extend_from_slice(b"data: [DONE]\n\n");
        let mut steps = Vec::new();
        let mut at = 0;
        while at < body.len() {
            let end = (at + rng.random_range(1..40)).min(body.len());
            steps.push(Step::Bytes(body[at..end].to_vec()));
            if rng.random_bool(0.3) {
                steps.push(Step::Wait(Duration::from_millis(1)));
            }
            at = end;
        }
        upstream.push(Reply::sse(steps));
        send_user(&mut ws, &format!("round {round}")).await;
        let frames = read_reply(&mut ws, STOP).await;
        assert_eq!(reply_text(&frames), expected, "round {round}");
        assert_eq!(stop_frames(&frames, STOP), 1, "exactly one stop key");
        assert!(errors(&frames).is_empty(), "{frames:?}");
    }
}

#[tokio::test]
async fn streams_in_several_frames_and_ends_with_one_stop_key() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--stop-key", "[END]"], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    let steps = ["Hel", "lo", " there"]
        .iter()
        .flat_map(|d| {
            [
                Step::Bytes(openai_chunk(d)),
                Step::Wait(Duration::from_millis(30)),
            ]
        })
        .chain([Step::Bytes(b"data: [DONE]\n\n".to_vec())])
        .collect();
    upstream.push(Reply::sse(steps));
    send_user(&mut ws, "hi").await;
    let frames = read_reply(&mut ws, "[END]").await;
    assert_eq!(
        frames,
        vec![
            json!({"text": "Hel"}),
            json!({"text": "lo"}),
            json!({"text": " there"}),
            json!({"text": "[END]"})
        ]
    );
    let request = &upstream.received()[0];
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(request.body["model"], "test-model");
    assert_eq!(request.body["stream"], true);
}

#[tokio::test]
async fn a_reply_equal_to_the_stop_key_cannot_end_the_message() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &[], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    upstream.push(Reply::openai_text(&[STOP]));
    send_user(&mut ws, "say the stop key").await;
    let frames = read_reply(&mut ws, STOP).await;
    assert_eq!(reply_text(&frames), STOP);
    assert_eq!(stop_frames(&frames, STOP), 1);
    assert_eq!(frames.len(), 3, "split into two content frames: {frames:?}");
}

#[tokio::test]
async fn remembers_the_dialogue_and_prepends_the_system_prompt() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(
        &upstream,
        &["--system-prompt", "Be brief."],
        &["--temperature", "0.2", "--max-tokens", "99"],
    )
    .await;
    let mut ws = connect(&proxy.ws_url()).await;
    for (question, answer) in [("one", "first"), ("two", "second"), ("three", "third")] {
        upstream.push(Reply::openai_text(&[answer]));
        send_user(&mut ws, question).await;
        read_reply(&mut ws, STOP).await;
    }
    let third = &upstream.received()[2].body;
    assert_eq!(
        third["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "first"},
            {"role": "user", "content": "two"},
            {"role": "assistant", "content": "second"},
            {"role": "user", "content": "three"}
        ])
    );
    let temperature = third["temperature"].as_f64().expect("temperature");
    assert!((temperature - 0.2).abs() < 1e-6);
    assert_eq!(third["max_tokens"], 99);
}

#[tokio::test]
async fn a_client_history_replaces_memory_and_the_limit_applies() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--history-limit", "3"], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    upstream.push(Reply::openai_text(&["x"]));
    let full = json!({"messages": [
        {"role": "user", "text": "a"}, {"role": "ai", "text": "b"},
        {"role": "user", "text": "c"}, {"role": "ai", "text": "d"}, {"role": "user", "text": "e"}
    ]});
    ws.send(Message::text(full.to_string()))
        .await
        .expect("send");
    read_reply(&mut ws, STOP).await;
    assert_eq!(
        upstream.received()[0].body["messages"],
        json!([
            {"role": "user", "content": "c"},
            {"role": "assistant", "content": "d"},
            {"role": "user", "content": "e"}
        ])
    );
}

#[tokio::test]
async fn http_errors_show_the_provider_message_then_the_socket_still_works() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &[], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    let cases = [
        (
            401,
            r#"{"error":{"message":"Incorrect API key provided"}}"#,
            "Incorrect API key provided",
        ),
        (
            429,
            r#"{"error":{"message":"Rate limit reached"}}"#,
            "Rate limit reached",
        ),
        (500, "upstream exploded", "upstream exploded"),
    ];
    for (status, body, shown) in cases {
        upstream.push(Reply::error(status, body));
        send_user(&mut ws, "hi").await;
        let frames = read_reply(&mut ws, STOP).await;
        assert_eq!(frames.len(), 2, "{frames:?}");
        let error = &errors(&frames)[0];
        assert!(
            error.contains(shown) && error.contains(&status.to_string()),
            "{error}"
        );
    }
    upstream.push(Reply::openai_text(&["fine now"]));
    send_user(&mut ws, "again").await;
    assert_eq!(reply_text(&read_reply(&mut ws, STOP).await), "fine now");
}

#[tokio::test]
async fn in_stream_error_and_mid_stream_drop_end_the_message_cleanly() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &[], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;

    upstream.push(Reply::sse(vec![
        Step::Bytes(openai_chunk("partial ")),
        Step::Bytes(
            br#"data: {"error":{"message":"model overloaded"}}

"#
            .to_vec(),
        ),
    ]));
    send_user(&mut ws, "1").await;
    let frames = read_reply(&mut ws, STOP).await;
    assert_eq!(reply_text(&frames), "partial ");
    assert_eq!(
        errors(&frames),
        vec!["upstream error: model overloaded".to_owned()]
    );
    assert_eq!(frames.last(), Some(&json!({"text": STOP})));

    upstream.push(Reply::sse(vec![
        Step::Bytes(openai_chunk("half")),
        Step::Wait(Duration::from_millis(20)),
        Step::Drop,
    ]));
    send_user(&mut ws, "2").await;
    let frames = read_reply(&mut ws, STOP).await;
    assert_eq!(reply_text(&frames), "half");
    assert_eq!(errors(&frames).len(), 1, "{frames:?}");

    // A stream that just ends without [DONE] is also reported, not passed off as complete.
    upstream.push(Reply::sse(vec![Step::Bytes(openai_chunk("cut"))]));
    send_user(&mut ws, "3").await;
    let frames = read_reply(&mut ws, STOP).await;
    assert!(errors(&frames)[0].contains("ended before"), "{frames:?}");

    upstream.push(Reply::sse(vec![Step::Bytes(
        b"data: <html>oops\n\n".to_vec(),
    )]));
    send_user(&mut ws, "4").await;
    let frames = read_reply(&mut ws, STOP).await;
    assert!(errors(&frames)[0].contains("unreadable"), "{frames:?}");

    upstream.push(Reply::openai_text(&["recovered"]));
    send_user(&mut ws, "5").await;
    assert_eq!(reply_text(&read_reply(&mut ws, STOP).await), "recovered");
}

#[tokio::test]
async fn unreachable_upstream_is_a_clear_error() {
    // Bind then drop a listener to get a port nobody listens on.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let base = format!("http://127.0.0.1:{port}/v1");
    let proxy = Proxy::start(&["openai", "--base-url", &base, "--model", "m"]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    send_user(&mut ws, "hi").await;
    let frames = read_reply(&mut ws, STOP).await;
    assert!(errors(&frames)[0].contains("could not reach"), "{frames:?}");
}

#[tokio::test]
async fn closing_the_socket_mid_stream_aborts_the_upstream() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &[], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    upstream.push(Reply::sse(vec![
        Step::Bytes(openai_chunk("streaming…")),
        Step::HoldUntilClosed,
    ]));
    send_user(&mut ws, "long answer please").await;
    let first = tokio::time::timeout(PATIENCE, ws.next())
        .await
        .expect("first frame");
    assert!(first.is_some());
    let closed_by_client = Instant::now();
    drop(ws);
    let seen = upstream.wait_closed(1).await;
    let delay = seen.saturating_duration_since(closed_by_client);
    // The contract is 100 ms; the bound here only guards against "never".
    assert!(
        delay < Duration::from_secs(2),
        "upstream closed after {delay:?}"
    );
}

#[tokio::test]
async fn bad_frames_get_an_error_and_the_socket_stays_usable() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &[], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    let bad = [
        Message::text("not json"),
        Message::text(r#"{"messages":[]}"#),
        Message::text(r#"{"text":"no messages field"}"#),
        Message::binary(vec![1u8, 2, 3]),
    ];
    for message in bad {
        ws.send(message).await.expect("send");
        let frames = read_reply(&mut ws, STOP).await;
        assert_eq!(frames.len(), 2, "{frames:?}");
        assert_eq!(errors(&frames).len(), 1);
    }
    assert!(upstream.received().is_empty(), "nothing bad went upstream");
    upstream.push(Reply::openai_text(&["ok"]));
    send_user(&mut ws, "good").await;
    assert_eq!(reply_text(&read_reply(&mut ws, STOP).await), "ok");
}

#[tokio::test]
async fn requests_on_a_busy_socket_are_answered_in_order() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &[], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    upstream.push(Reply::sse(vec![
        Step::Bytes(openai_chunk("first")),
        Step::Wait(Duration::from_millis(50)),
        Step::Bytes(b"data: [DONE]\n\n".to_vec()),
    ]));
    upstream.push(Reply::openai_text(&["second"]));
    send_user(&mut ws, "a").await;
    send_user(&mut ws, "b").await;
    assert_eq!(reply_text(&read_reply(&mut ws, STOP).await), "first");
    assert_eq!(reply_text(&read_reply(&mut ws, STOP).await), "second");
    let second = &upstream.received()[1].body["messages"];
    assert_eq!(second.as_array().map(Vec::len), Some(3), "{second}");
}

#[tokio::test]
async fn token_limit_is_flagged_to_the_user() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &[], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    upstream.push(Reply::sse(vec![
        Step::Bytes(openai_chunk("Once upon")),
        Step::Bytes(
            br#"data: {"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}

data: [DONE]

"#
            .to_vec(),
        ),
    ]));
    send_user(&mut ws, "story").await;
    let frames = read_reply(&mut ws, STOP).await;
    assert_eq!(reply_text(&frames), "Once upon");
    assert!(errors(&frames)[0].contains("token limit"));
}

#[tokio::test]
async fn api_key_and_headers_go_upstream_but_never_back_to_the_browser() {
    let upstream = MockUpstream::start().await;
    std::env::set_var("DEEPCHAT_PROXY_TEST_KEY_A", "sk-test-secret-123");
    let base = format!("http://{}/v1", upstream.addr);
    let proxy = Proxy::start(&[
        "openai",
        "--base-url",
        &base,
        "--model",
        "m",
        "--api-key-env",
        "DEEPCHAT_PROXY_TEST_KEY_A",
        "--header",
        "X-Team: blue",
    ])
    .await;
    let mut ws = connect(&proxy.ws_url()).await;
    upstream.push(Reply::error(
        401,
        r#"{"error":{"message":"Incorrect API key provided: sk-test-secret-123"}}"#,
    ));
    send_user(&mut ws, "hi").await;
    let frames = read_reply(&mut ws, STOP).await;
    let request = &upstream.received()[0];
    assert_eq!(
        request.header("authorization"),
        Some("Bearer sk-test-secret-123")
    );
    assert_eq!(request.header("x-team"), Some("blue"));
    let shown = serde_json::to_string(&frames).expect("json");
    assert!(!shown.contains("sk-test-secret-123"), "{shown}");
    assert!(shown.contains("[redacted]"), "{shown}");
}

#[tokio::test]
async fn shutdown_lets_a_running_reply_finish_then_closes_with_1001() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &[], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    upstream.push(Reply::sse(vec![
        Step::Bytes(openai_chunk("finishing")),
        Step::Wait(Duration::from_millis(100)),
        Step::Bytes(b"data: [DONE]\n\n".to_vec()),
    ]));
    send_user(&mut ws, "hi").await;
    upstream.wait_requests(1).await;
    let stopping = tokio::spawn(proxy.stop());
    let frames = read_reply(&mut ws, STOP).await;
    assert_eq!(reply_text(&frames), "finishing");
    let close = tokio::time::timeout(PATIENCE, ws.next())
        .await
        .expect("close frame");
    match close {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected close 1001, got {other:?}"),
    }
    stopping.await.expect("join").expect("clean stop");
}
