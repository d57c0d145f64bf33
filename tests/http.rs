//! Deep Chat's HTTP modes (SSE and JSON), file uploads, CORS and origin checks, subprotocols
//! and images in both directions, through the real proxy and a scripted upstream.

mod support;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use support::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

fn chat_url(proxy: &Proxy) -> String {
    format!("http://{}/chat", proxy.addr)
}

/// Reads an SSE response to its end and returns each event's JSON.
async fn sse_events(response: reqwest::Response) -> Vec<Value> {
    let body = tokio::time::timeout(PATIENCE, response.text())
        .await
        .expect("SSE ends in time")
        .expect("body");
    body.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let data = e.strip_prefix("data: ").expect("data event");
            serde_json::from_str(data).expect("json")
        })
        .collect()
}

fn dialogue() -> Value {
    json!({"messages": [
        {"role": "user", "text": "one"}, {"role": "ai", "text": "first"}, {"role": "user", "text": "two"}
    ], "custom": "prop"})
}

#[tokio::test]
async fn sse_streams_events_ends_with_the_response_and_sends_the_whole_dialogue() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &[], &[]).await;
    upstream.push(Reply::openai_text(&["Hé", "llo 👋", " \"there\"\n"]));
    let response = reqwest::Client::new()
        .post(chat_url(&proxy))
        .header("accept", "text/event-stream")
        .header("content-type", "application/json")
        .body(dialogue().to_string())
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = sse_events(response).await;
    let text: String = events.iter().filter_map(|e| e["text"].as_str()).collect();
    assert_eq!(text, "Héllo 👋 \"there\"\n");
    assert!(
        events.iter().all(|e| e["text"] != "stop-key"),
        "no stop key over SSE"
    );
    assert_eq!(
        upstream.received()[0].body["messages"],
        json!([
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "first"},
            {"role": "user", "content": "two"}
        ])
    );
}

#[tokio::test]
async fn sse_upstream_errors_arrive_as_error_events() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &[], &[]).await;
    upstream.push(Reply::sse(vec![
        Step::Bytes(openai_chunk("part")),
        Step::Drop,
    ]));
    let response = reqwest::Client::new()
        .post(chat_url(&proxy))
        .header("accept", "text/event-stream")
        .body(dialogue().to_string())
        .send()
        .await
        .expect("response");
    let events = sse_events(response).await;
    assert_eq!(events[0], json!({"text": "part"}));
    assert!(
        events[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("broke off")),
        "{events:?}"
    );
    assert_eq!(events.len(), 2);
}

#[tokio::test]
async fn sse_client_leaving_aborts_the_upstream() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &[], &[]).await;
    upstream.push(Reply::sse(vec![
        Step::Bytes(openai_chunk("going")),
        Step::HoldUntilClosed,
    ]));
    let response = reqwest::Client::new()
        .post(chat_url(&proxy))
        .header("accept", "text/event-stream")
        .body(dialogue().to_string())
        .send()
        .await
        .expect("response");
    let mut body = response.bytes_stream();
    let first = tokio::time::timeout(PATIENCE, body.next())
        .await
        .expect("first event");
    assert!(first.is_some());
    drop(body);
    upstream.wait_closed(1).await;
}

#[tokio::test]
async fn json_mode_answers_whole_text_or_a_clear_error_with_status() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--max-request-bytes", "2000"], &[]).await;
    let client = reqwest::Client::new();
    let post = |body: String| {
        client
            .post(chat_url(&proxy))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    upstream.push(Reply::openai_text(&["whole ", "answer"]));
    let ok = post(dialogue().to_string()).await.expect("response");
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.expect("body"), r#"{"text":"whole answer"}"#);

    upstream.push(Reply::error(429, r#"{"error":{"message":"slow down"}}"#));
    let limited = post(dialogue().to_string()).await.expect("response");
    assert_eq!(limited.status(), 502);
    let body: Value = serde_json::from_str(&limited.text().await.expect("body")).expect("json");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("slow down")),
        "{body}"
    );

    let bad = post("{nope".into()).await.expect("response");
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.expect("body").contains("not valid JSON"));

    let huge = json!({"messages": [{"role": "user", "text": "x".repeat(5000)}]}).to_string();
    let too_large = post(huge).await.expect("response");
    assert_eq!(too_large.status(), 413);
    assert_eq!(
        upstream.received().len(),
        2,
        "rejected requests never reach the upstream"
    );
}

#[tokio::test]
async fn uploaded_images_reach_the_upstream_as_image_parts() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &[], &[]).await;
    upstream.push(Reply::openai_text(&["a cat"]));
    let form = reqwest::multipart::Form::new()
        .part(
            "files",
            reqwest::multipart::Part::bytes(vec![0x89, b'P', b'N', b'G'])
                .file_name("cat.png")
                .mime_str("image/png")
                .expect("mime"),
        )
        .text("message1", r#"{"role":"user","text":"what is it?"}"#);
    let response = reqwest::Client::new()
        .post(chat_url(&proxy))
        .multipart(form)
        .send()
        .await
        .expect("response");
    assert_eq!(response.text().await.expect("body"), r#"{"text":"a cat"}"#);
    assert_eq!(
        upstream.received()[0].body["messages"][0]["content"],
        json!([
            {"type": "text", "text": "what is it?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw=="}}
        ])
    );

    let pdf = reqwest::multipart::Form::new().part(
        "files",
        reqwest::multipart::Part::bytes(b"%PDF".to_vec())
            .file_name("r.pdf")
            .mime_str("application/pdf")
            .expect("mime"),
    );
    let rejected = reqwest::Client::new()
        .post(chat_url(&proxy))
        .multipart(pdf)
        .send()
        .await
        .expect("response");
    assert_eq!(rejected.status(), 400);
    assert!(rejected.text().await.expect("body").contains("only images"));
}

#[tokio::test]
async fn websocket_images_in_and_subprotocol_echo() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &[], &[]).await;
    let mut request = proxy.ws_url().into_client_request().expect("request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "chat-v1, other".parse().expect("header"),
    );
    let (mut ws, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connect");
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat-v1");
    upstream.push(Reply::openai_text(&["red"]));
    let message = json!({"messages": [{"role": "user", "text": "colour?", "files": [
        {"src": "data:image/jpeg;base64,/9j/AA==", "type": "image", "name": "x.jpg"}]}]});
    ws.send(Message::text(message.to_string()))
        .await
        .expect("send");
    assert_eq!(reply_text(&read_reply(&mut ws, "stop-key").await), "red");
    assert_eq!(
        upstream.received()[0].body["messages"][0]["content"][1],
        json!({"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/AA=="}})
    );
}

#[tokio::test]
async fn origins_are_checked_before_any_work_and_cors_follows_the_policy() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--allow-origin", "https://app.example"], &[]).await;
    let client = reqwest::Client::new();

    let preflight = client
        .request(reqwest::Method::OPTIONS, chat_url(&proxy))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .expect("preflight");
    assert_eq!(preflight.status(), 204);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(
        preflight.headers()["access-control-allow-headers"],
        "content-type"
    );

    let foreign = client
        .post(chat_url(&proxy))
        .header("origin", "https://evil.example")
        .body(dialogue().to_string())
        .send()
        .await
        .expect("response");
    assert_eq!(foreign.status(), 403);
    assert!(foreign
        .headers()
        .get("access-control-allow-origin")
        .is_none());

    let mut request = proxy.ws_url().into_client_request().expect("request");
    request
        .headers_mut()
        .insert("origin", "https://evil.example".parse().expect("header"));
    let refused = tokio_tungstenite::connect_async(request).await;
    assert!(
        matches!(refused, Err(tokio_tungstenite::tungstenite::Error::Http(ref r)) if r.status() == 403),
        "{refused:?}"
    );
    assert!(upstream.received().is_empty());

    upstream.push(Reply::openai_text(&["hi"]));
    let allowed = client
        .post(chat_url(&proxy))
        .header("origin", "https://app.example")
        .body(dialogue().to_string())
        .send()
        .await
        .expect("response");
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(allowed.text().await.expect("body"), r#"{"text":"hi"}"#);
}

#[tokio::test]
async fn default_policy_refuses_foreign_pages_but_admits_loopback() {
    let proxy = Proxy::start(&["demo", "--tokens-per-second", "1000"]).await;
    let mut foreign = proxy.ws_url().into_client_request().expect("request");
    foreign
        .headers_mut()
        .insert("origin", "https://evil.example".parse().expect("header"));
    assert!(tokio_tungstenite::connect_async(foreign).await.is_err());
    let mut local = proxy.ws_url().into_client_request().expect("request");
    local.headers_mut().insert(
        "origin",
        format!("http://{}", proxy.addr).parse().expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(local)
        .await
        .expect("loopback page admitted");
    send_user(&mut ws, "hi").await;
    let frames = tokio::time::timeout(Duration::from_secs(10), read_reply(&mut ws, "stop-key"))
        .await
        .expect("reply");
    assert!(reply_text(&frames).contains("hi"));
}

#[tokio::test]
async fn json_client_leaving_aborts_the_upstream() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &[], &[]).await;
    upstream.push(Reply::sse(vec![
        Step::Bytes(openai_chunk("slow")),
        Step::HoldUntilClosed,
    ]));
    let request = reqwest::Client::new()
        .post(chat_url(&proxy))
        .body(dialogue().to_string())
        .send();
    // The client gives up while the proxy is still buffering the whole reply.
    let gave_up = tokio::time::timeout(Duration::from_millis(300), request).await;
    assert!(gave_up.is_err(), "the reply cannot be complete yet");
    upstream.wait_closed(1).await;
}
