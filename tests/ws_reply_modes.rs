//! The WebSocket reply modes end to end (`--ws-reply`, `?reply=`): real proxy, scripted OpenAI
//! upstream, a Deep Chat-like client reading exactly the frames each mode promises.

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::*;
use tokio_tungstenite::tungstenite::Message;

/// An SSE reply of `deltas`, a short pause after each so they arrive as separate events.
fn paced(deltas: &[&str]) -> Reply {
    let steps = deltas
        .iter()
        .flat_map(|d| {
            [
                Step::Bytes(openai_chunk(d)),
                Step::Wait(Duration::from_millis(5)),
            ]
        })
        .chain([Step::Bytes(b"data: [DONE]\n\n".to_vec())])
        .collect();
    Reply::sse(steps)
}

/// The next text message as JSON.
async fn next_json(ws: &mut Ws) -> Value {
    loop {
        if let Message::Text(text) = next_message(ws).await {
            return serde_json::from_str(text.as_str()).expect("JSON frame");
        }
    }
}

/// Overwrite frames up to the one carrying `full`: the first opens the message (no
/// `overwrite`, or Deep Chat would replace the previous reply), the rest carry `overwrite: true`;
/// each has the text so far (a prefix of the next).
async fn read_overwrites(ws: &mut Ws, full: &str) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let frame = next_json(ws).await;
        let opens = frames.is_empty();
        assert_eq!(frame.get("overwrite").is_none(), opens, "{frame}");
        if !opens {
            assert_eq!(frame["overwrite"], json!(true), "{frame}");
        }
        let text = frame["text"].as_str().expect("text so far").to_owned();
        assert!(
            full.starts_with(&text),
            "{text:?} is not a prefix of {full:?}"
        );
        if let Some(Value::String(before)) = frames.last().map(|f: &Value| f["text"].clone()) {
            assert!(text.starts_with(&before), "text so far shrank");
        }
        frames.push(frame);
        if text == full {
            return frames;
        }
    }
}

#[tokio::test]
async fn whole_sends_one_frame_per_reply_and_no_stop_key() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--ws-reply", "whole"], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    upstream.push(paced(&["Hel", "lo", " there", " stop-key"]));
    send_user(&mut ws, "hi").await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"text": "Hello there stop-key"})
    );
    // A stop-key frame (or a second part) would be read here instead of the next reply.
    upstream.push(paced(&["Sec", "ond"]));
    send_user(&mut ws, "again").await;
    assert_eq!(next_json(&mut ws).await, json!({"text": "Second"}));
    // The memory kept the first reply for the second request.
    let requests = upstream.wait_requests(2).await;
    assert!(
        requests[1]
            .body
            .to_string()
            .contains("Hello there stop-key"),
        "{}",
        requests[1].body
    );
}

#[tokio::test]
async fn whole_error_is_one_frame_even_after_text() {
    let upstream = MockUpstream::start().await;
    // The reply cap bounds what a gathered reply holds: 3 bytes pass, the rest stop it.
    let proxy = Proxy::openai(
        &upstream,
        &["--ws-reply", "whole", "--max-json-reply-bytes", "5"],
        &[],
    )
    .await;
    let mut ws = connect(&proxy.ws_url()).await;
    upstream.push(Reply::error(500, r#"{"error":{"message":"boom"}}"#));
    send_user(&mut ws, "hi").await;
    let only = next_json(&mut ws).await;
    assert!(
        only["error"].is_string() && only.get("text").is_none(),
        "{only}"
    );

    upstream.push(paced(&["Hel", "lo world"]));
    send_user(&mut ws, "again").await;
    let error = next_json(&mut ws).await;
    assert!(
        error["error"].is_string() && error.get("text").is_none(),
        "{error}"
    );

    upstream.push(paced(&["ok"]));
    send_user(&mut ws, "third").await;
    assert_eq!(next_json(&mut ws).await, json!({"text": "ok"}));
    // The dialogue remembers no half answer the user never saw.
    let requests = upstream.wait_requests(3).await;
    assert!(
        !requests[2].body.to_string().contains("Hel"),
        "{}",
        requests[2].body
    );
}

#[tokio::test]
async fn overwrite_sends_the_text_so_far_then_nothing_more() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &[], &[]).await;
    let url = format!("{}?reply=overwrite", proxy.ws_url());
    let mut ws = connect(&url).await;
    upstream.push(paced(&["Hel", "lo", " there"]));
    send_user(&mut ws, "hi").await;
    read_overwrites(&mut ws, "Hello there").await;
    upstream.push(paced(&["Sec", "ond"]));
    send_user(&mut ws, "again").await;
    // Had a stop key or a stray frame followed the first reply, it would not be a prefix here.
    read_overwrites(&mut ws, "Second").await;
}

#[tokio::test]
async fn overwrite_merges_a_burst_instead_of_a_frame_per_token() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--ws-reply", "overwrite"], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    let deltas: Vec<String> = (0..300).map(|i| format!("{} ", i % 10)).collect();
    let full = deltas.concat();
    // One write of the whole body: every token is there at once, as from a fast model.
    let mut body: Vec<u8> = deltas.iter().flat_map(|d| openai_chunk(d)).collect();
    body.extend_from_slice(b"data: [DONE]\n\n");
    upstream.push(Reply::sse(vec![Step::Bytes(body)]));
    send_user(&mut ws, "count").await;
    let frames = read_overwrites(&mut ws, &full).await;
    // The pacing makes the relay merge what queued meanwhile; generous, timing plays no part
    // as long as 300 tokens take less than ~5 s to parse.
    assert!(frames.len() < 150, "{} frames for 300 tokens", frames.len());
}

#[tokio::test]
async fn overwrite_error_after_text_keeps_the_text() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(
        &upstream,
        &["--ws-reply", "overwrite", "--max-json-reply-bytes", "5"],
        &[],
    )
    .await;
    let mut ws = connect(&proxy.ws_url()).await;
    upstream.push(paced(&["Hel", "lo world"]));
    send_user(&mut ws, "hi").await;
    read_overwrites(&mut ws, "Hel").await;
    let error = next_json(&mut ws).await;
    assert!(error["error"].is_string(), "{error}");
    upstream.push(paced(&["ok"]));
    send_user(&mut ws, "again").await;
    read_overwrites(&mut ws, "ok").await;
}

#[tokio::test]
async fn the_query_string_overrides_the_flag() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--ws-reply", "whole"], &[]).await;
    let url = format!("{}?lang=en&reply=stop-key", proxy.ws_url());
    let mut ws = connect(&url).await;
    upstream.push(paced(&["Hel", "lo"]));
    send_user(&mut ws, "hi").await;
    let frames = read_reply(&mut ws, "stop-key").await;
    assert_eq!(reply_text(&frames), "Hello");
}

#[tokio::test]
async fn an_unknown_mode_is_refused_before_the_upgrade() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &[], &[]).await;
    let url = format!("{}?reply=stream", proxy.ws_url());
    let refused = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .expect("answer in time");
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned();
            assert!(body.contains("reply=whole"), "{body}");
        }
        other => panic!("expected a 400, got {other:?}"),
    }
}

#[tokio::test]
async fn leaving_mid_reply_aborts_the_upstream_in_every_gathering_mode() {
    for mode in ["whole", "overwrite"] {
        let upstream = MockUpstream::start().await;
        let proxy = Proxy::openai(&upstream, &[], &[]).await;
        let mut ws = connect(&format!("{}?reply={mode}", proxy.ws_url())).await;
        upstream.push(Reply::sse(vec![
            Step::Bytes(openai_chunk("streaming…")),
            Step::HoldUntilClosed,
        ]));
        send_user(&mut ws, "long answer please").await;
        // Whole sends nothing until the end: wait for the upstream to have been asked.
        upstream.wait_requests(1).await;
        if mode == "overwrite" {
            assert_eq!(next_json(&mut ws).await, json!({"text": "streaming…"}));
        }
        drop(ws);
        // Resolves (within its own patience) only once the proxy closed the upstream stream.
        upstream.wait_closed(1).await;
    }
}

#[tokio::test]
async fn keepalive_pings_go_out_during_a_held_whole_reply() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--ping-interval", "1"], &[]).await;
    let mut ws = connect(&format!("{}?reply=whole", proxy.ws_url())).await;
    upstream.push(Reply::sse(vec![
        Step::Bytes(openai_chunk("slow ")),
        Step::Wait(Duration::from_millis(2500)),
        Step::Bytes(openai_chunk("answer")),
        Step::Bytes(b"data: [DONE]\n\n".to_vec()),
    ]));
    send_user(&mut ws, "hi").await;
    let mut pings = 0;
    let reply = loop {
        match next_message(&mut ws).await {
            Message::Ping(_) => pings += 1,
            Message::Text(text) => break text.as_str().to_owned(),
            _ => {}
        }
    };
    assert_eq!(reply, r#"{"text":"slow answer"}"#);
    assert!(pings >= 1, "no keepalive ping while the reply was held");
}
