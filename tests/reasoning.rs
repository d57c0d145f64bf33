//! Reasoning models end to end through the proxy: an OpenAI-compatible upstream streams
//! `delta.reasoning_content` before the answer (as DeepSeek, vLLM and llama.cpp do), and each
//! `--reasoning` mode shows it (or not) over WebSocket, SSE and JSON; the conversation memory
//! and the dialogue a page sends back never carry it upstream; the reasoning flags reach the
//! request, and impossible ones are refused before the proxy starts.

mod support;

use clap::Parser;
use serde_json::{json, Value};
use support::{connect, next_message, send_user, MockUpstream, Proxy, Reply, Step, Ws, PATIENCE};
use tokio_tungstenite::tungstenite::Message;

const STOP: &str = "stop-key";
const THINKING: [&str; 2] = ["The user asks 2+2. ", "That is 4."];
const ANSWER: [&str; 2] = ["2 + 2 = ", "4 ✅"];

/// One `data:` event with a reasoning delta, in DeepSeek's shape.
fn reasoning_chunk(text: &str) -> Vec<u8> {
    let chunk = json!({
        "id": "chatcmpl-r",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": null, "reasoning_content": text}, "finish_reason": null}]
    });
    format!("data: {chunk}\n\n").into_bytes()
}

/// Thinking, then the answer, then `[DONE]`.
fn thinking_reply() -> Reply {
    let mut steps: Vec<Step> = THINKING
        .iter()
        .map(|t| Step::Bytes(reasoning_chunk(t)))
        .collect();
    steps.extend(ANSWER.iter().map(|t| Step::Bytes(support::openai_chunk(t))));
    steps.push(Step::Bytes(b"data: [DONE]\n\n".to_vec()));
    Reply::sse(steps)
}

/// Every frame of one reply, up to and including the stop key that has no role.
async fn read_frames(ws: &mut Ws) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        if let Message::Text(text) = next_message(ws).await {
            let frame: Value = serde_json::from_str(text.as_str()).expect("JSON frame");
            let end = frame["text"] == STOP && frame.get("role").is_none();
            frames.push(frame);
            if end {
                return frames;
            }
        }
    }
}

/// The second request's body as text, after a thinking reply and one more question.
async fn second_request_after_thinking(proxy: &Proxy, upstream: &MockUpstream) -> String {
    let mut ws = connect(&proxy.ws_url()).await;
    upstream.push(thinking_reply());
    send_user(&mut ws, "2+2?").await;
    read_frames(&mut ws).await;
    upstream.push(Reply::openai_text(&["ok"]));
    send_user(&mut ws, "thanks").await;
    read_frames(&mut ws).await;
    let second = upstream.wait_requests(2).await[1].body.clone();
    assert_eq!(
        second["messages"],
        json!([
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": ANSWER.concat()},
            {"role": "user", "content": "thanks"}
        ])
    );
    second.to_string()
}

#[tokio::test]
async fn show_streams_the_thinking_first_under_its_role_then_the_answer_exact() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--reasoning", "show"], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    upstream.push(thinking_reply());
    send_user(&mut ws, "2+2?").await;
    let frames = read_frames(&mut ws).await;
    assert_eq!(
        frames,
        vec![
            json!({"text": THINKING[0], "role": "thinking"}),
            json!({"text": THINKING[1], "role": "thinking"}),
            json!({"text": STOP, "role": "thinking"}),
            json!({"text": ANSWER[0]}),
            json!({"text": ANSWER[1]}),
            json!({"text": STOP}),
        ]
    );
}

#[tokio::test]
async fn thinking_shows_while_the_answer_has_not_started() {
    for (mode, first) in [
        ("show", json!({"text": THINKING[0], "role": "thinking"})),
        ("status", json!({"text": "Thinking…"})),
    ] {
        let upstream = MockUpstream::start().await;
        let proxy = Proxy::openai(&upstream, &["--reasoning", mode], &[]).await;
        let mut ws = connect(&proxy.ws_url()).await;
        upstream.push(Reply::sse(vec![
            Step::Bytes(reasoning_chunk(THINKING[0])),
            Step::HoldUntilClosed,
        ]));
        send_user(&mut ws, "2+2?").await;
        let Message::Text(text) = next_message(&mut ws).await else {
            panic!("{mode}: a text frame first");
        };
        let frame: Value = serde_json::from_str(text.as_str()).expect("json");
        assert_eq!(frame, first, "{mode}");
    }
}

#[tokio::test]
async fn memory_keeps_only_the_answer_in_every_mode() {
    for mode in ["show", "hide", "status"] {
        let upstream = MockUpstream::start().await;
        let proxy = Proxy::openai(&upstream, &["--reasoning", mode], &[]).await;
        let body = second_request_after_thinking(&proxy, &upstream).await;
        for thought in THINKING {
            assert!(!body.contains(thought.trim()), "{mode}: {body}");
        }
    }
}

#[tokio::test]
async fn hide_is_the_default_and_sends_only_the_answer() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &[], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    upstream.push(thinking_reply());
    send_user(&mut ws, "2+2?").await;
    assert_eq!(
        read_frames(&mut ws).await,
        vec![
            json!({"text": ANSWER[0]}),
            json!({"text": ANSWER[1]}),
            json!({"text": STOP}),
        ]
    );
    // No flag asks nothing of the provider.
    let body = &upstream.received()[0].body;
    for key in ["reasoning_effort", "reasoning", "thinking"] {
        assert!(body.get(key).is_none(), "{body}");
    }
}

#[tokio::test]
async fn status_shows_a_short_status_the_answer_overwrites() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--reasoning", "status"], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    upstream.push(thinking_reply());
    send_user(&mut ws, "2+2?").await;
    assert_eq!(
        read_frames(&mut ws).await,
        vec![
            json!({"text": "Thinking…"}),
            json!({"text": ANSWER[0], "overwrite": true}),
            json!({"text": ANSWER[1]}),
            json!({"text": STOP}),
        ]
    );
    // A reply without thinking shows no status.
    upstream.push(Reply::openai_text(&["plain"]));
    send_user(&mut ws, "hi").await;
    assert_eq!(
        read_frames(&mut ws).await,
        vec![json!({"text": "plain"}), json!({"text": STOP})]
    );
}

#[tokio::test]
async fn whole_mode_sends_the_thinking_as_one_message_before_the_answer() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--reasoning", "show"], &[]).await;
    let mut ws = connect(&format!("{}?reply=whole", proxy.ws_url())).await;
    upstream.push(thinking_reply());
    send_user(&mut ws, "2+2?").await;
    let mut frames = Vec::new();
    for _ in 0..2 {
        if let Message::Text(text) = next_message(&mut ws).await {
            frames.push(serde_json::from_str::<Value>(text.as_str()).expect("json"));
        }
    }
    assert_eq!(
        frames,
        vec![
            json!({"text": THINKING.concat(), "role": "thinking"}),
            json!({"text": ANSWER.concat()}),
        ]
    );
}

fn post(proxy: &Proxy, events: bool, body: &Value) -> reqwest::RequestBuilder {
    let request = reqwest::Client::new()
        .post(format!("http://{}/chat", proxy.addr))
        .header("content-type", "application/json")
        .body(body.to_string());
    if events {
        request.header("accept", "text/event-stream")
    } else {
        request
    }
}

async fn body_of(request: reqwest::RequestBuilder) -> String {
    tokio::time::timeout(PATIENCE, async {
        request
            .send()
            .await
            .expect("response")
            .text()
            .await
            .expect("body")
    })
    .await
    .expect("answer in time")
}

#[tokio::test]
async fn sse_show_names_the_roles_so_deep_chat_starts_the_answer_apart() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--reasoning", "show"], &[]).await;
    upstream.push(thinking_reply());
    let question = json!({"messages": [{"role": "user", "text": "2+2?"}]});
    let body = body_of(post(&proxy, true, &question)).await;
    let events: Vec<Value> = body
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| serde_json::from_str(e.trim_start_matches("data: ")).expect("json"))
        .collect();
    assert_eq!(
        events,
        vec![
            json!({"text": THINKING[0], "role": "thinking"}),
            json!({"text": THINKING[1], "role": "thinking"}),
            json!({"text": ANSWER[0], "role": "ai"}),
            json!({"text": ANSWER[1]}),
        ]
    );

    // Status: the answer's first event overwrites it.
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--reasoning", "status"], &[]).await;
    upstream.push(thinking_reply());
    let body = body_of(post(&proxy, true, &question)).await;
    assert!(
        body.starts_with(
            "data: {\"text\":\"Thinking…\"}\n\ndata: {\"text\":\"2 + 2 = \",\"overwrite\":true}\n\n"
        ),
        "{body}"
    );
}

#[tokio::test]
async fn json_answer_carries_shown_thinking_apart_and_the_dialogue_sent_back_drops_it() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--reasoning", "show"], &[]).await;
    upstream.push(thinking_reply());
    let question = json!({"messages": [{"role": "user", "text": "2+2?"}]});
    let answer: Value =
        serde_json::from_str(&body_of(post(&proxy, false, &question)).await).expect("json");
    assert_eq!(
        answer,
        json!({"text": ANSWER.concat(), "thinking": THINKING.concat()})
    );

    // Deep Chat keeps the thinking message in its dialogue and sends it back over HTTP.
    upstream.push(Reply::openai_text(&["ok"]));
    let dialogue = json!({"messages": [
        {"role": "user", "text": "2+2?"},
        {"role": "thinking", "text": THINKING.concat()},
        {"role": "ai", "text": ANSWER.concat()},
        {"role": "user", "text": "thanks"}
    ]});
    body_of(post(&proxy, false, &dialogue)).await;
    assert_eq!(
        upstream.wait_requests(2).await[1].body["messages"],
        json!([
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": ANSWER.concat()},
            {"role": "user", "content": "thanks"}
        ])
    );

    // Hidden thinking leaves the JSON answer as it always was.
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &[], &[]).await;
    upstream.push(thinking_reply());
    let answer: Value =
        serde_json::from_str(&body_of(post(&proxy, false, &question)).await).expect("json");
    assert_eq!(answer, json!({"text": ANSWER.concat()}));
}

#[tokio::test]
async fn the_effort_reaches_the_request() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &[], &["--reasoning-effort", "high"]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    upstream.push(Reply::openai_text(&["ok"]));
    send_user(&mut ws, "hi").await;
    read_frames(&mut ws).await;
    assert_eq!(upstream.received()[0].body["reasoning_effort"], "high");
    ws.close(None).await.ok();
}

fn config_error(args: &[&str]) -> String {
    let mut argv = vec!["deepchat-proxy"];
    argv.extend_from_slice(args);
    let cli = deepchat_proxy::cli::Cli::try_parse_from(argv).expect("flags parse");
    match deepchat_proxy::Config::from_cli(cli) {
        Ok(_) => panic!("{args:?} was accepted"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn impossible_reasoning_flags_are_clear_config_errors() {
    let anthropic = [
        "anthropic",
        "--base-url",
        "http://127.0.0.1:9",
        "--model",
        "claude-sonnet-4-5",
    ];
    let with = |extra: &[&'static str]| {
        let mut args = anthropic.to_vec();
        args.extend_from_slice(extra);
        args
    };
    let err = config_error(&with(&["--thinking-budget", "8000"]));
    assert!(
        err.contains("--max-tokens (4096)") && err.contains("--max-tokens 12096"),
        "{err}"
    );
    let err = config_error(&with(&[
        "--thinking-budget",
        "4000",
        "--max-tokens",
        "4000",
    ]));
    assert!(err.contains("leaves no room for the answer"), "{err}");
    let err = config_error(&with(&["--thinking-budget", "500", "--max-tokens", "4000"]));
    assert!(err.contains("minimum of 1024"), "{err}");
    let err = config_error(&with(&["--reasoning-effort", "low"]));
    assert!(
        err.contains("anthropic takes no --reasoning-effort"),
        "{err}"
    );
    let err = config_error(&[
        "openai",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--model",
        "o4-mini",
        "--thinking-budget",
        "2048",
    ]);
    assert!(err.contains("openai takes no --thinking-budget"), "{err}");
}

/// A Gemini event with one part.
fn gemini_event(part: Value, finish: bool) -> Step {
    let mut candidate = json!({"content": {"parts": [part], "role": "model"}, "index": 0});
    if finish {
        candidate["finishReason"] = json!("STOP");
    }
    Step::Bytes(format!("data: {}\r\n\r\n", json!({"candidates": [candidate]})).into_bytes())
}

#[tokio::test]
async fn gemini_is_asked_for_its_thoughts_only_when_they_are_shown() {
    for (mode, asked) in [("show", true), ("status", true), ("hide", false)] {
        let upstream = MockUpstream::start().await;
        let base = format!("http://{}", upstream.addr);
        let proxy = Proxy::start(&[
            "--reasoning",
            mode,
            "--retries",
            "0",
            "gemini",
            "--base-url",
            &base,
            "--model",
            "gemini-2.5-flash",
            "--api-key-env",
            "DEEPCHAT_PROXY_TEST_NO_SUCH_KEY",
        ])
        .await;
        let mut ws = connect(&proxy.ws_url()).await;
        upstream.push(Reply::sse(vec![
            gemini_event(json!({"text": "Adding.", "thought": true}), false),
            gemini_event(json!({"text": "4"}), true),
        ]));
        send_user(&mut ws, "2+2?").await;
        let frames = read_frames(&mut ws).await;
        let body = &upstream.received()[0].body;
        let include = body.pointer("/generationConfig/thinkingConfig/includeThoughts");
        assert_eq!(include, asked.then_some(&json!(true)), "{mode}: {body}");
        let expected_first = match mode {
            "show" => json!({"text": "Adding.", "role": "thinking"}),
            "status" => json!({"text": "Thinking…"}),
            _ => json!({"text": "4"}),
        };
        assert_eq!(frames[0], expected_first, "{mode}: {frames:?}");
    }
}

#[tokio::test]
async fn the_first_thinking_has_its_own_histogram() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &[], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    upstream.push(thinking_reply());
    send_user(&mut ws, "2+2?").await;
    read_frames(&mut ws).await;
    let metrics =
        body_of(reqwest::Client::new().get(format!("http://{}/metrics", proxy.addr))).await;
    for needle in [
        r#"deepchat_proxy_first_thinking_seconds_bucket{transport="websocket""#,
        r#"deepchat_proxy_first_token_seconds_bucket{transport="websocket""#,
    ] {
        assert!(metrics.contains(needle), "missing {needle} in\n{metrics}");
    }
}
