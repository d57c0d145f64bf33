//! Holding up under abuse: auth, limits, timeouts, retries, forced shutdown, key handling.
//! Each test asserts what the browser (or HTTP client) receives.

mod support;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::time::Duration;
use support::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const STOP: &str = "stop-key";

fn chat_url(proxy: &Proxy) -> String {
    format!("http://{}/chat", proxy.addr)
}

fn one_message(text: &str) -> String {
    json!({"messages": [{"role": "user", "text": text}]}).to_string()
}

#[tokio::test]
async fn shared_tokens_over_http_header_and_websocket_subprotocol() {
    std::env::set_var("DEEPCHAT_PROXY_TEST_CLIENT_TOKENS", "tok-a, tok-b");
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(
        &upstream,
        &["--auth-token-env", "DEEPCHAT_PROXY_TEST_CLIENT_TOKENS"],
        &[],
    )
    .await;
    let client = reqwest::Client::new();

    let missing = client
        .post(chat_url(&proxy))
        .body(one_message("hi"))
        .send()
        .await
        .expect("response");
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    let wrong = client
        .post(chat_url(&proxy))
        .bearer_auth("tok-c")
        .body(one_message("hi"))
        .send()
        .await
        .expect("response");
    assert_eq!(wrong.status(), 401);
    upstream.push(Reply::openai_text(&["ok"]));
    let good = client
        .post(chat_url(&proxy))
        .bearer_auth("tok-b")
        .body(one_message("hi"))
        .send()
        .await
        .expect("response");
    assert_eq!(good.text().await.expect("body"), r#"{"text":"ok"}"#);

    let refused = tokio_tungstenite::connect_async(proxy.ws_url()).await;
    assert!(
        matches!(refused, Err(tokio_tungstenite::tungstenite::Error::Http(ref r)) if r.status() == 401),
        "{refused:?}"
    );
    let mut request = proxy.ws_url().into_client_request().expect("request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "bearer.tok-a".parse().expect("header"),
    );
    let (mut ws, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("token admitted");
    assert_eq!(response.headers()["sec-websocket-protocol"], "bearer.tok-a");
    upstream.push(Reply::openai_text(&["socket ok"]));
    send_user(&mut ws, "hi").await;
    assert_eq!(reply_text(&read_reply(&mut ws, STOP).await), "socket ok");
    assert_eq!(
        upstream.received().len(),
        2,
        "rejected clients never reached the upstream"
    );
}

#[tokio::test]
async fn hs256_jwts_are_verified_with_expiry() {
    std::env::set_var("DEEPCHAT_PROXY_TEST_JWT_SECRET", "s3cret");
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(
        &upstream,
        &["--jwt-secret-env", "DEEPCHAT_PROXY_TEST_JWT_SECRET"],
        &[],
    )
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let sign = |exp: u64| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &json!({"sub": "user-1", "exp": exp}),
            &jsonwebtoken::EncodingKey::from_secret(b"s3cret"),
        )
        .expect("jwt")
    };
    let client = reqwest::Client::new();
    let expired = client
        .post(chat_url(&proxy))
        .bearer_auth(sign(now - 120))
        .body(one_message("x"))
        .send()
        .await
        .expect("response");
    assert_eq!(expired.status(), 401);
    upstream.push(Reply::openai_text(&["welcome"]));
    let valid = client
        .post(chat_url(&proxy))
        .bearer_auth(sign(now + 120))
        .body(one_message("x"))
        .send()
        .await
        .expect("response");
    assert_eq!(valid.text().await.expect("body"), r#"{"text":"welcome"}"#);
}

#[tokio::test]
async fn rate_limit_refuses_with_a_clear_error_on_both_transports() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--rate-limit", "2"], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    for text in ["a", "b"] {
        upstream.push(Reply::openai_text(&[text]));
        send_user(&mut ws, text).await;
        assert_eq!(reply_text(&read_reply(&mut ws, STOP).await), text);
    }
    send_user(&mut ws, "c").await;
    let frames = read_reply(&mut ws, STOP).await;
    assert!(errors(&frames)[0].contains("rate limit"), "{frames:?}");
    let http = reqwest::Client::new()
        .post(chat_url(&proxy))
        .body(one_message("d"))
        .send()
        .await
        .expect("response");
    assert_eq!(http.status(), 429);
    assert!(http.headers().contains_key("retry-after"));
    assert_eq!(upstream.received().len(), 2);
}

#[tokio::test]
async fn message_count_and_size_limits() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(
        &upstream,
        &["--max-messages", "2", "--max-request-bytes", "1000"],
        &[],
    )
    .await;
    let mut ws = connect(&proxy.ws_url()).await;
    let three = json!({"messages": [{"text": "1"}, {"text": "2"}, {"text": "3"}]});
    ws.send(Message::text(three.to_string()))
        .await
        .expect("send");
    let frames = read_reply(&mut ws, STOP).await;
    assert!(
        errors(&frames)[0].contains("more than 2 messages"),
        "{frames:?}"
    );

    ws.send(Message::text(one_message(&"x".repeat(2000))))
        .await
        .expect("send");
    let closed = tokio::time::timeout(PATIENCE, ws.next())
        .await
        .expect("answer in time");
    match closed {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1009),
        other => panic!("expected close 1009, got {other:?}"),
    }
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn connection_limit_answers_503() {
    let proxy = Proxy::start(&["--max-connections", "1", "demo"]).await;
    let _held = connect(&proxy.ws_url()).await;
    let second = reqwest::Client::new()
        .get(format!("http://{}/", proxy.addr))
        .send()
        .await
        .expect("response");
    assert_eq!(second.status(), 503);
}

#[tokio::test]
async fn requests_beyond_the_per_connection_limit_get_an_error_in_order() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--max-streams-per-connection", "2"], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    upstream.push(Reply::sse(vec![
        Step::Bytes(openai_chunk("slow")),
        Step::Wait(Duration::from_millis(200)),
        Step::Bytes(b"data: [DONE]\n\n".to_vec()),
    ]));
    upstream.push(Reply::openai_text(&["queued"]));
    for text in ["1", "2", "3"] {
        send_user(&mut ws, text).await;
    }
    assert_eq!(reply_text(&read_reply(&mut ws, STOP).await), "slow");
    assert_eq!(reply_text(&read_reply(&mut ws, STOP).await), "queued");
    let third = read_reply(&mut ws, STOP).await;
    assert!(errors(&third)[0].contains("too many requests"), "{third:?}");
}

#[tokio::test]
async fn idle_sockets_are_closed_and_pings_are_sent() {
    let proxy = Proxy::start(&["--client-idle-timeout", "2", "--ping-interval", "1", "demo"]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    let mut saw_ping = false;
    loop {
        match tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("something within patience")
        {
            Some(Ok(Message::Ping(_))) => saw_ping = true,
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), 1000);
                assert_eq!(frame.reason.as_str(), "idle timeout");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(saw_ping, "keepalive pings arrive before the idle close");
}

/// A reply of `chunks` deltas, one every 50 ms.
fn slow_reply(chunks: usize) -> Reply {
    let mut steps = Vec::new();
    for i in 0..chunks {
        steps.push(Step::Bytes(openai_chunk(&format!("t{i} "))));
        steps.push(Step::Wait(Duration::from_millis(50)));
    }
    steps.push(Step::Bytes(b"data: [DONE]\n\n".to_vec()));
    Reply::sse(steps)
}

#[tokio::test]
async fn a_client_that_stops_reading_mid_reply_is_dropped_by_the_keepalive() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--ping-interval", "1"], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    // 8 s of tokens: without the keepalive the whole reply fits the socket buffers and the
    // upstream would run to its end.
    upstream.push(slow_reply(160));
    send_user(&mut ws, "then I stop reading").await;
    let first = tokio::time::timeout(PATIENCE, ws.next())
        .await
        .expect("first frame");
    assert!(matches!(first, Some(Ok(Message::Text(_)))), "{first:?}");
    let stopped_reading = std::time::Instant::now();
    // Not polled from here on, so the proxy's pings go unanswered.
    let closed = upstream.wait_closed(1).await;
    let after = closed.duration_since(stopped_reading);
    assert!(
        after < Duration::from_millis(3500),
        "upstream closed {after:?} after the client stopped reading"
    );
    drop(ws);
}

#[tokio::test]
async fn a_client_that_reads_keeps_a_reply_longer_than_the_ping_interval() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--ping-interval", "1"], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    upstream.push(slow_reply(60));
    send_user(&mut ws, "a long answer please").await;
    let mut text = String::new();
    let mut pings = 0;
    loop {
        match next_message(&mut ws).await {
            // tokio-tungstenite answers with a pong as it reads, as browsers do.
            Message::Ping(_) => pings += 1,
            Message::Text(frame) => {
                let frame: serde_json::Value = serde_json::from_str(frame.as_str()).expect("json");
                assert!(frame.get("error").is_none(), "{frame}");
                match frame["text"].as_str() {
                    Some(STOP) => break,
                    Some(part) => text.push_str(part),
                    None => panic!("unexpected frame {frame}"),
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let expected: String = (0..60).map(|i| format!("t{i} ")).collect();
    assert_eq!(text, expected);
    assert!(pings >= 2, "pings ride along with a 3 s reply: {pings}");
}

#[tokio::test]
async fn first_byte_chunk_and_reply_timeouts_end_with_an_error_and_the_stop_key() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(
        &upstream,
        &[
            "--first-byte-timeout",
            "1",
            "--chunk-timeout",
            "1",
            "--reply-timeout",
            "2",
        ],
        &[],
    )
    .await;
    let mut ws = connect(&proxy.ws_url()).await;

    upstream.push(Reply::sse(vec![
        Step::Wait(Duration::from_secs(3)),
        Step::Bytes(openai_chunk("late")),
    ]));
    send_user(&mut ws, "first byte").await;
    let frames = read_reply(&mut ws, STOP).await;
    assert!(errors(&frames)[0].contains("stalled"), "{frames:?}");
    assert_eq!(reply_text(&frames), "");

    upstream.push(Reply::sse(vec![
        Step::Bytes(openai_chunk("begun")),
        Step::Wait(Duration::from_secs(3)),
    ]));
    send_user(&mut ws, "gap").await;
    let frames = read_reply(&mut ws, STOP).await;
    assert_eq!(reply_text(&frames), "begun");
    assert!(errors(&frames)[0].contains("stalled"), "{frames:?}");

    let trickle: Vec<Step> = (0..40)
        .flat_map(|i| {
            [
                Step::Bytes(openai_chunk(&format!("{i} "))),
                Step::Wait(Duration::from_millis(100)),
            ]
        })
        .collect();
    upstream.push(Reply::sse(trickle));
    send_user(&mut ws, "long").await;
    let frames = read_reply(&mut ws, STOP).await;
    assert!(!reply_text(&frames).is_empty());
    assert!(
        errors(&frames)[0].contains("took longer than 2 s"),
        "{frames:?}"
    );
}

#[tokio::test]
async fn retries_429_and_5xx_honouring_retry_after_but_never_after_text_was_sent() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--retries", "2"], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    upstream.push(
        Reply::error(503, r#"{"error":{"message":"overloaded"}}"#).with_header("retry-after", "0"),
    );
    upstream.push(
        Reply::error(429, r#"{"error":{"message":"slow down"}}"#).with_header("retry-after", "0.1"),
    );
    upstream.push(Reply::openai_text(&["third time lucky"]));
    send_user(&mut ws, "hi").await;
    let frames = read_reply(&mut ws, STOP).await;
    assert_eq!(reply_text(&frames), "third time lucky");
    assert!(errors(&frames).is_empty(), "{frames:?}");
    assert_eq!(upstream.received().len(), 3);

    // A 400 is the client's fault: no retry.
    upstream.push(Reply::error(400, r#"{"error":{"message":"bad model"}}"#));
    send_user(&mut ws, "again").await;
    assert!(errors(&read_reply(&mut ws, STOP).await)[0].contains("bad model"));
    assert_eq!(upstream.received().len(), 4);

    // Text already reached the browser: a broken stream is reported, not retried.
    upstream.push(Reply::sse(vec![
        Step::Bytes(openai_chunk("partial")),
        Step::Drop,
    ]));
    send_user(&mut ws, "third").await;
    let frames = read_reply(&mut ws, STOP).await;
    assert_eq!(reply_text(&frames), "partial");
    assert_eq!(errors(&frames).len(), 1);
    assert_eq!(upstream.received().len(), 5);

    // Retries give up after --retries.
    for _ in 0..3 {
        upstream.push(
            Reply::error(500, r#"{"error":{"message":"still down"}}"#)
                .with_header("retry-after", "0"),
        );
    }
    send_user(&mut ws, "fourth").await;
    assert!(errors(&read_reply(&mut ws, STOP).await)[0].contains("still down"));
    assert_eq!(upstream.received().len(), 8);
}

#[tokio::test]
async fn forced_shutdown_ends_running_replies_with_an_error_then_1001() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--drain-timeout", "1"], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    upstream.push(Reply::sse(vec![
        Step::Bytes(openai_chunk("never ending")),
        Step::HoldUntilClosed,
    ]));
    send_user(&mut ws, "hi").await;
    let first = tokio::time::timeout(PATIENCE, ws.next())
        .await
        .expect("first frame");
    assert!(matches!(first, Some(Ok(Message::Text(_)))));
    let stopping = tokio::spawn(proxy.stop());
    let frames = read_reply(&mut ws, STOP).await;
    assert!(errors(&frames)[0].contains("shutting down"), "{frames:?}");
    match tokio::time::timeout(PATIENCE, ws.next())
        .await
        .expect("close")
    {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected close 1001, got {other:?}"),
    }
    stopping.await.expect("join").expect("stopped");
    upstream.wait_closed(1).await;
}

#[tokio::test]
async fn api_key_file_is_used_and_keys_are_scrubbed_from_stream_errors() {
    let upstream = MockUpstream::start().await;
    let dir = std::env::temp_dir().join(format!("deepchat-proxy-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let key_file = dir.join("key");
    std::fs::write(&key_file, "sk-from-file-999\n").expect("write key");
    let base = format!("http://{}/v1", upstream.addr);
    let key_path = key_file.to_string_lossy().to_string();
    let proxy = Proxy::start(&[
        "--retries",
        "0",
        "openai",
        "--base-url",
        &base,
        "--model",
        "m",
        "--api-key-file",
        &key_path,
    ])
    .await;
    let mut ws = connect(&proxy.ws_url()).await;
    upstream.push(Reply::sse(vec![Step::Bytes(
        b"data: {\"error\":{\"message\":\"key sk-from-file-999 is disabled\"}}\n\n".to_vec(),
    )]));
    send_user(&mut ws, "hi").await;
    let frames = read_reply(&mut ws, STOP).await;
    assert_eq!(
        upstream.received()[0].header("authorization"),
        Some("Bearer sk-from-file-999")
    );
    let shown = serde_json::to_string(&frames).expect("json");
    assert!(
        !shown.contains("sk-from-file-999") && shown.contains("[redacted]"),
        "{shown}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn behind_a_reverse_proxy_rate_limits_follow_the_forwarded_client_ip() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(
        &upstream,
        &["--rate-limit", "1", "--client-ip-header", "X-Forwarded-For"],
        &[],
    )
    .await;
    let client = reqwest::Client::new();
    let post = |forwarded: &'static str| {
        client
            .post(chat_url(&proxy))
            .header("x-forwarded-for", forwarded)
            .body(one_message("hi"))
            .send()
    };
    upstream.push(Reply::openai_text(&["a"]));
    upstream.push(Reply::openai_text(&["b"]));
    // Two browsers behind the same reverse proxy each get their own budget...
    assert_eq!(
        post("198.51.100.7, 10.0.0.1")
            .await
            .expect("response")
            .status(),
        200
    );
    assert_eq!(post("203.0.113.9").await.expect("response").status(), 200);
    // ...and the same browser again is over its limit (the last entry is the one that counts).
    assert_eq!(
        post("192.0.2.1, 10.0.0.1")
            .await
            .expect("response")
            .status(),
        429
    );
}
