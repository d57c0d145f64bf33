//! What a client can cost, through the real server: the conversation budget (characters and
//! images) caps the newest message with a clear error, memory keeps only what fits, a JSON
//! answer has a cap, and the WebSocket queue is bounded by bytes.

mod support;

use futures_util::SinkExt;
use serde_json::{json, Value};
use std::time::Duration;
use support::*;
use tokio_tungstenite::tungstenite::Message;

const STOP: &str = "stop-key";

fn chat_url(proxy: &Proxy) -> String {
    format!("http://{}/chat", proxy.addr)
}

/// A user message with `images` inline PNGs of `base64_len` base64 characters each.
fn message_with_images(text: &str, images: usize, base64_len: usize) -> Value {
    let src = format!("data:image/png;base64,{}", "A".repeat(base64_len));
    let files: Vec<Value> = (0..images)
        .map(|i| json!({"src": src, "type": "image", "name": format!("{i}.png")}))
        .collect();
    json!({"messages": [{"role": "user", "text": text, "files": files}]})
}

async fn post(proxy: &Proxy, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(chat_url(proxy))
        .body(body.to_string())
        .timeout(PATIENCE)
        .send()
        .await
        .expect("response within patience");
    let status = response.status().as_u16();
    let body = response.text().await.expect("body");
    (status, serde_json::from_str(&body).expect("JSON body"))
}

/// The user turns' texts of what the upstream received for request `index`.
fn user_texts(upstream: &MockUpstream, index: usize) -> Vec<String> {
    let received = upstream.received();
    received[index].body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| match &m["content"] {
            Value::String(text) => text.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<String>(),
            other => panic!("unexpected content {other}"),
        })
        .collect()
}

#[tokio::test]
async fn a_newest_message_over_the_character_budget_is_refused_on_both_transports() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--max-conversation-chars", "1000"], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    send_user(&mut ws, &"x".repeat(5000)).await;
    let frames = read_reply(&mut ws, STOP).await;
    assert_eq!(frames.len(), 2, "one error, then the stop key: {frames:?}");
    assert!(errors(&frames)[0].contains("5000 characters"), "{frames:?}");
    assert!(upstream.received().is_empty(), "nothing was cut and sent");

    upstream.push(Reply::openai_text(&["ok"]));
    send_user(&mut ws, "small").await;
    assert_eq!(reply_text(&read_reply(&mut ws, STOP).await), "ok");
    assert_eq!(
        user_texts(&upstream, 0),
        vec!["small"],
        "the refused message was not kept"
    );

    let too_long = json!({"messages": [{"role": "user", "text": "y".repeat(5000)}]});
    let (status, body) = post(&proxy, &too_long).await;
    assert_eq!(status, 413);
    assert!(body["error"]
        .as_str()
        .is_some_and(|e| e.contains("at most 1000")));
    assert_eq!(upstream.received().len(), 1);
}

#[tokio::test]
async fn images_count_against_limits_of_their_own() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(
        &upstream,
        &["--max-images", "2", "--max-image-bytes", "3000"],
        &[],
    )
    .await;
    let mut ws = connect(&proxy.ws_url()).await;
    for (message, expected) in [
        (message_with_images("three", 3, 8), "3 images"),
        // 4400 base64 characters are 3300 bytes of image.
        (message_with_images("big", 1, 4400), "3300 bytes"),
    ] {
        ws.send(Message::text(message.to_string()))
            .await
            .expect("send");
        let frames = read_reply(&mut ws, STOP).await;
        assert!(errors(&frames)[0].contains(expected), "{frames:?}");
    }
    assert!(upstream.received().is_empty());

    // Older turns' images are dropped to fit, like old text.
    upstream.push(Reply::openai_text(&["two seen"]));
    upstream.push(Reply::openai_text(&["one seen"]));
    for text in ["first", "second"] {
        let images = if text == "first" { 2 } else { 1 };
        let message = message_with_images(text, images, 8);
        ws.send(Message::text(message.to_string()))
            .await
            .expect("send");
        read_reply(&mut ws, STOP).await;
    }
    assert_eq!(user_texts(&upstream, 0), vec!["first"]);
    assert_eq!(
        user_texts(&upstream, 1),
        vec!["second"],
        "three images do not fit: the first turn went"
    );

    let (status, _) = post(&proxy, &message_with_images("http", 3, 8)).await;
    assert_eq!(status, 413);
    assert_eq!(upstream.received().len(), 2);
}

#[tokio::test]
async fn memory_forgets_what_can_never_be_sent_again() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--max-conversation-chars", "100"], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    upstream.push(Reply::openai_text(&["r"]));
    send_user(&mut ws, &"a".repeat(60)).await;
    read_reply(&mut ws, STOP).await;
    // 60 + 1 + 60 characters do not fit: the first question goes, for good.
    upstream.push(Reply::error(500, r#"{"error":{"message":"down"}}"#));
    send_user(&mut ws, &"b".repeat(60)).await;
    read_reply(&mut ws, STOP).await;
    // The failed question is forgotten; the one dropped before it must not come back.
    upstream.push(Reply::openai_text(&["ok"]));
    send_user(&mut ws, "c").await;
    read_reply(&mut ws, STOP).await;
    assert_eq!(user_texts(&upstream, 2), vec!["c"]);
}

#[tokio::test]
async fn a_runaway_json_answer_is_stopped_at_its_cap() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--max-json-reply-bytes", "1000"], &[]).await;
    let mut steps: Vec<Step> = (0..30)
        .map(|_| Step::Bytes(openai_chunk(&"z".repeat(100))))
        .collect();
    steps.push(Step::HoldUntilClosed);
    upstream.push(Reply::sse(steps));
    let question = json!({"messages": [{"role": "user", "text": "talk forever"}]});
    let (status, body) = post(&proxy, &question).await;
    assert_eq!(status, 502);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("1000-byte")),
        "{body}"
    );
    upstream.wait_closed(1).await;
}

#[tokio::test]
async fn requests_queued_behind_a_reply_are_bounded_by_bytes() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--max-request-bytes", "2000"], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    upstream.push(Reply::sse(vec![
        Step::Bytes(openai_chunk("slow")),
        Step::Wait(Duration::from_secs(1)),
        Step::Bytes(b"data: [DONE]\n\n".to_vec()),
    ]));
    upstream.push(Reply::openai_text(&["queued"]));
    send_user(&mut ws, "start").await;
    // Each is under the request limit; together they are over it.
    send_user(&mut ws, &"q".repeat(1200)).await;
    send_user(&mut ws, &"r".repeat(1200)).await;
    assert_eq!(reply_text(&read_reply(&mut ws, STOP).await), "slow");
    assert_eq!(reply_text(&read_reply(&mut ws, STOP).await), "queued");
    let refused = read_reply(&mut ws, STOP).await;
    assert!(
        errors(&refused)[0].contains("too many requests"),
        "{refused:?}"
    );
    assert_eq!(upstream.received().len(), 2);
}

#[tokio::test]
async fn a_flood_behind_a_reply_is_refused_one_by_one_in_order() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--max-streams-per-connection", "2"], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    upstream.push(Reply::sse(vec![
        Step::Bytes(openai_chunk("slow")),
        Step::Wait(Duration::from_secs(1)),
        Step::Bytes(b"data: [DONE]\n\n".to_vec()),
    ]));
    upstream.push(Reply::openai_text(&["queued"]));
    send_user(&mut ws, "start").await;
    send_user(&mut ws, "kept").await;
    for i in 0..300 {
        send_user(&mut ws, &format!("flood {i}")).await;
    }
    assert_eq!(reply_text(&read_reply(&mut ws, STOP).await), "slow");
    assert_eq!(reply_text(&read_reply(&mut ws, STOP).await), "queued");
    for _ in 0..300 {
        let refused = read_reply(&mut ws, STOP).await;
        assert!(errors(&refused)[0].contains("too many requests"));
    }
    assert_eq!(upstream.received().len(), 2);
}
