//! The tool loop end to end with real MCP servers: the reference `server-everything` (stdio and
//! streamable HTTP) started by the test, a mock upstream replaying each provider's recorded
//! tool-call stream, and what the browser and the upstream see.

mod support;

use deepchat_adapters::providers::{Settings, PROVIDERS};
use deepchat_adapters::{framing, Adapter, Event};
use serde_json::Value;
use std::time::Duration;
use support::mcp::{
    everything_stdio, openai_tool_calls, openai_tool_results, shown, EverythingHttp,
};
use support::*;

const STOP: &str = "stop-key";

fn fixture(provider: &str, name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/{provider}/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The text and the tool calls the adapter itself decodes from a transcript.
fn decoded(adapter: &dyn Adapter, body: &[u8]) -> (String, Vec<String>) {
    let mut decoder = adapter.decoder();
    let (mut text, mut calls) = (String::new(), Vec::new());
    for message in framing::frame_chunks(adapter.framing(), vec![body.to_vec()]) {
        for event in decoder.decode(&message.expect("framed")) {
            match event {
                Event::TextDelta(delta) => text.push_str(&delta),
                Event::ToolCall(call) => calls.push(call.name),
                _ => {}
            }
        }
    }
    (text, calls)
}

fn replay(body: &[u8], content_type: &'static str) -> Reply {
    let steps = body
        .chunks(41)
        .flat_map(|c| {
            [
                Step::Bytes(c.to_vec()),
                Step::Wait(Duration::from_millis(1)),
            ]
        })
        .collect();
    Reply {
        status: 200,
        content_type,
        steps,
        headers: Vec::new(),
    }
}

#[tokio::test]
async fn every_provider_runs_server_everything_tools_and_answers_with_the_results() {
    let upstream = MockUpstream::start().await;
    let base = format!("http://{}", upstream.addr);
    let mcp = everything_stdio("everything");
    let mut seen = 0;
    for provider in PROVIDERS {
        let adapter = (provider.build)(&Settings {
            base_url: base.clone(),
            api_version: None,
        });
        let (content_type, extension) = match adapter.framing() {
            framing::Framing::Sse => ("text/event-stream", "sse"),
            framing::Framing::Ndjson => ("application/x-ndjson", "ndjson"),
        };
        let mut args = vec![
            "--mcp",
            mcp.as_str(),
            "--retries",
            "0",
            provider.name,
            "--base-url",
            &base,
            "--model",
            "m-1",
            "--api-key-env",
            "DEEPCHAT_PROXY_TEST_NO_SUCH_KEY",
        ];
        if provider.api_version.is_some() {
            args.extend(["--api-version", "2025-01-01"]);
        }
        let proxy = Proxy::start(&args).await;
        let call = fixture(provider.name, &format!("tool_call.{extension}"));
        let answer = fixture(provider.name, &format!("normal.{extension}"));
        let (before, calls) = decoded(adapter.as_ref(), &call);
        assert_eq!(
            calls,
            ["echo", "get-sum"],
            "{}: fixture calls",
            provider.name
        );
        let (after, _) = decoded(adapter.as_ref(), &answer);
        upstream.push(replay(&call, content_type));
        upstream.push(replay(&answer, content_type));

        let mut ws = connect(&proxy.ws_url()).await;
        send_user(&mut ws, "Echo ping and add 2 and 3").await;
        let frames = read_reply(&mut ws, STOP).await;
        assert!(errors(&frames).is_empty(), "{}: {frames:?}", provider.name);
        let expected = if before.is_empty() {
            after.clone()
        } else {
            format!("{before}\n\n{after}")
        };
        assert_eq!(
            shown(&frames),
            expected,
            "{}: what the chat shows at the end",
            provider.name
        );
        let statuses: Vec<&Value> = frames
            .iter()
            .filter(|f| {
                f["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("Running echo and get-sum…"))
            })
            .collect();
        assert_eq!(
            statuses.len(),
            1,
            "{}: one status while the tools ran: {frames:?}",
            provider.name
        );
        let raw = serde_json::to_string(&frames).expect("json");
        assert!(
            !raw.contains("ping\\\"") && !raw.contains("Echo: ping"),
            "{}: no arguments or results shown: {raw}",
            provider.name
        );

        let requests = upstream.wait_requests(seen + 2).await;
        let (first, second) = (&requests[seen], &requests[seen + 1]);
        seen += 2;
        let offered = first.body.to_string();
        assert!(
            offered.contains("\"echo\"") && offered.contains("Echoes back the input string"),
            "{}: tools offered: {offered}",
            provider.name
        );
        let results = second.body.to_string();
        assert!(
            results.contains("Echo: ping"),
            "{}: echo result sent back: {results}",
            provider.name
        );
        assert!(
            results.contains("The sum of 2 and 3 is 5."),
            "{}: get-sum result sent back: {results}",
            provider.name
        );
    }
}

/// One OpenAI proxy with `global` flags; the upstream scripted by the test.
async fn openai_proxy(upstream: &MockUpstream, global: &[&str]) -> Proxy {
    Proxy::openai(upstream, global, &[]).await
}

#[tokio::test]
async fn a_streamable_http_server_answers_like_a_stdio_one() {
    let server = EverythingHttp::start();
    let mcp = format!("web={}", server.url);
    let upstream = MockUpstream::start().await;
    let proxy = openai_proxy(&upstream, &["--mcp", &mcp]).await;
    upstream.push(openai_tool_calls(&[("get-sum", r#"{"a":40,"b":2}"#)]));
    upstream.push(Reply::openai_text(&["It is ", "42."]));
    let mut ws = connect(&proxy.ws_url()).await;
    send_user(&mut ws, "40 + 2?").await;
    let frames = read_reply(&mut ws, STOP).await;
    assert_eq!(shown(&frames), "It is 42.", "{frames:?}");
    let requests = upstream.wait_requests(2).await;
    assert_eq!(
        openai_tool_results(&requests[1].body),
        [(
            "call_t0".to_owned(),
            "The sum of 40 and 2 is 42.".to_owned()
        )]
    );
}

#[tokio::test]
async fn the_memory_sends_the_tool_round_back_with_the_next_question() {
    let upstream = MockUpstream::start().await;
    let mcp = everything_stdio("everything");
    let proxy = openai_proxy(&upstream, &["--mcp", &mcp]).await;
    upstream.push(openai_tool_calls(&[("echo", r#"{"message":"ping"}"#)]));
    upstream.push(Reply::openai_text(&["It said ping."]));
    upstream.push(Reply::openai_text(&["You are welcome."]));
    let mut ws = connect(&proxy.ws_url()).await;
    send_user(&mut ws, "Echo ping").await;
    read_reply(&mut ws, STOP).await;
    send_user(&mut ws, "Thanks").await;
    let frames = read_reply(&mut ws, STOP).await;
    assert_eq!(shown(&frames), "You are welcome.");
    let requests = upstream.wait_requests(3).await;
    let messages = requests[2].body["messages"]
        .as_array()
        .expect("messages")
        .clone();
    let roles: Vec<&str> = messages.iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(
        roles,
        ["user", "assistant", "tool", "assistant", "user"],
        "{messages:?}"
    );
    assert_eq!(messages[1]["tool_calls"][0]["function"]["name"], "echo");
    assert_eq!(messages[2]["content"], "Echo: ping");
    assert_eq!(messages[3]["content"], "It said ping.");
}

#[tokio::test]
async fn text_before_a_call_stays_and_the_status_is_replaced_over_sse_and_in_json() {
    let upstream = MockUpstream::start().await;
    let mcp = everything_stdio("everything");
    let proxy = openai_proxy(&upstream, &["--mcp", &mcp]).await;
    let url = format!("http://{}/chat", proxy.addr);
    let client = reqwest::Client::new();
    let body = serde_json::json!({"messages": [{"role": "user", "text": "echo"}]});

    // A JSON answer: the rounds' text and the answer, no status.
    let mut first = openai_tool_calls(&[("echo", r#"{"message":"x"}"#)]);
    first
        .steps
        .insert(0, Step::Bytes(openai_chunk("Checking.")));
    upstream.push(first.clone());
    upstream.push(Reply::openai_text(&["Done."]));
    let answer: Value = client
        .post(&url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("post")
        .text()
        .await
        .map(|text| serde_json::from_str(&text).expect("json answer"))
        .expect("body");
    assert_eq!(answer, serde_json::json!({"text": "Checking.\n\nDone."}));

    // SSE: the status replaces the message (overwrite), the answer replaces the status.
    upstream.push(first);
    upstream.push(Reply::openai_text(&["Done", "."]));
    let events = client
        .post(&url)
        .header("accept", "text/event-stream")
        .header("content-type", "application/json")
        .body(
            serde_json::json!({"messages": [{"role": "user", "text": "echo"}], "stream": true})
                .to_string(),
        )
        .send()
        .await
        .expect("post")
        .text()
        .await
        .expect("body");
    let frames: Vec<Value> = events
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).expect("json event"))
        .collect();
    assert_eq!(
        frames,
        [
            serde_json::json!({"text": "Checking."}),
            serde_json::json!({"text": "Checking.\n\nRunning echo…", "overwrite": true}),
            serde_json::json!({"text": "Checking.\n\nDone", "overwrite": true}),
            serde_json::json!({"text": "."}),
        ]
    );
}

#[tokio::test]
async fn show_tool_calls_puts_the_arguments_in_the_status() {
    let upstream = MockUpstream::start().await;
    let mcp = everything_stdio("everything");
    let proxy = openai_proxy(&upstream, &["--mcp", &mcp, "--show-tool-calls"]).await;
    upstream.push(openai_tool_calls(&[("echo", r#"{"message":"ping"}"#)]));
    upstream.push(Reply::openai_text(&["ok"]));
    let mut ws = connect(&proxy.ws_url()).await;
    send_user(&mut ws, "echo").await;
    let frames = read_reply(&mut ws, STOP).await;
    assert_eq!(
        frames[0],
        serde_json::json!({"text": r#"Running echo({"message":"ping"})…"#})
    );
    assert_eq!(
        frames[1],
        serde_json::json!({"text": "ok", "overwrite": true})
    );
}

#[tokio::test]
async fn usage_is_summed_over_the_rounds_in_the_reply_log() {
    let upstream = MockUpstream::start().await;
    let (mut child, address, lines) = support::binary::spawn_openai(
        &format!("http://{}/v1", upstream.addr),
        "m-1",
        &["--mcp", &everything_stdio("everything"), "--retries", "0"],
        &[],
    );
    let started = lines.recv_timeout(PATIENCE);
    drop(started);
    let mut first = openai_tool_calls(&[("echo", r#"{"message":"x"}"#)]);
    first.steps.insert(
        first.steps.len() - 1,
        Step::IfUsageAsked(br#"data: {"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}

"#.to_vec()),
    );
    upstream.push(first);
    upstream.push(Reply::openai_text_with_usage(&["ok"], 30, 2));
    let mut ws = connect(&format!("ws://{address}/chat")).await;
    send_user(&mut ws, "echo").await;
    read_reply(&mut ws, STOP).await;
    let line = support::binary::wait_for_line(&lines, "reply finished");
    assert_eq!(line["input_tokens"], 40, "{line}");
    assert_eq!(line["output_tokens"], 7, "{line}");
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn a_stored_conversation_keeps_its_tool_rounds_and_history_shows_only_text() {
    const ID: &str = "tools-conversation-0001";
    let dir = std::env::temp_dir().join(format!("dcp-tools-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("tools.db");
    let _ = std::fs::remove_file(&file);
    let store = format!("sqlite:{}", file.display());
    let mcp = everything_stdio("everything");
    let upstream = MockUpstream::start().await;
    let first = openai_proxy(&upstream, &["--mcp", &mcp, "--store", &store]).await;
    let mut call = openai_tool_calls(&[("echo", r#"{"message":"kept"}"#)]);
    call.steps.insert(0, Step::Bytes(openai_chunk("Asking.")));
    upstream.push(call);
    upstream.push(Reply::openai_text(&["It echoed."]));
    let mut ws = connect(&format!("{}?conversation={ID}", first.ws_url())).await;
    send_user(&mut ws, "echo kept").await;
    read_reply(&mut ws, STOP).await;
    drop(ws);
    first.stop().await.expect("stopped");

    let second = openai_proxy(&upstream, &["--mcp", &mcp, "--store", &store]).await;
    let history: Value = reqwest::get(format!(
        "http://{}/chat/history?conversation={ID}",
        second.addr
    ))
    .await
    .expect("history")
    .text()
    .await
    .map(|text| serde_json::from_str(&text).expect("json"))
    .expect("body");
    assert_eq!(
        history,
        serde_json::json!([
            {"role": "user", "text": "echo kept"},
            {"role": "ai", "text": "Asking.\n\nIt echoed."},
            false
        ])
    );
    upstream.push(Reply::openai_text(&["Yes."]));
    let mut ws = connect(&format!("{}?conversation={ID}", second.ws_url())).await;
    send_user(&mut ws, "Did it?").await;
    read_reply(&mut ws, STOP).await;
    let requests = upstream.wait_requests(3).await;
    let messages = requests[2].body["messages"]
        .as_array()
        .expect("messages")
        .clone();
    let shape: Vec<(String, String)> = messages
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap_or("").to_owned(),
                m["content"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            ("user".to_owned(), "echo kept".to_owned()),
            ("assistant".to_owned(), "Asking.".to_owned()),
            ("tool".to_owned(), "Echo: kept".to_owned()),
            ("assistant".to_owned(), "It echoed.".to_owned()),
            ("user".to_owned(), "Did it?".to_owned()),
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Provider state of the model's tool-calling turn (Anthropic's signed thinking, Gemini's
/// thought signatures, a Responses reasoning item) goes back upstream with the results.
#[tokio::test]
async fn what_a_provider_must_see_again_goes_back_with_the_results() {
    let upstream = MockUpstream::start().await;
    let base = format!("http://{}", upstream.addr);
    let mcp = everything_stdio("everything");
    let cases = [
        (
            "anthropic",
            "tool_call_thinking.sse",
            "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds",
        ),
        (
            "gemini",
            "tool_call.sse",
            "CiQB0e2Kb7xQ8n4m1VvF3zJ9Yq2Lk5Ww0sR6tU8aPcDeFgHiJk=",
        ),
        (
            "openai-responses",
            "tool_call_thinking.sse",
            "rs_68c1f0a2f5061728394a5b6c7d8e9f00",
        ),
    ];
    for (index, (provider, call, carried)) in cases.into_iter().enumerate() {
        let proxy = Proxy::start(&[
            "--mcp",
            &mcp,
            "--retries",
            "0",
            provider,
            "--base-url",
            &base,
            "--model",
            "m-1",
            "--api-key-env",
            "DEEPCHAT_PROXY_TEST_NO_SUCH_KEY",
        ])
        .await;
        upstream.push(replay(&fixture(provider, call), "text/event-stream"));
        upstream.push(replay(
            &fixture(provider, "normal.sse"),
            "text/event-stream",
        ));
        let mut ws = connect(&proxy.ws_url()).await;
        send_user(&mut ws, "echo and add").await;
        let frames = read_reply(&mut ws, STOP).await;
        assert!(errors(&frames).is_empty(), "{provider}: {frames:?}");
        let requests = upstream.wait_requests(2 * index + 2).await;
        let first = requests[2 * index].body.to_string();
        let second = requests[2 * index + 1].body.to_string();
        assert!(!first.contains(carried), "{provider}: not in the question");
        assert!(
            second.contains(carried),
            "{provider}: carried back: {second}"
        );
        assert!(second.contains("Echo: ping"), "{provider}: {second}");
    }
}
