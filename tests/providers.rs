//! Every provider subcommand end to end: the real proxy against a mock upstream replaying that
//! provider's recorded stream, checking what the browser gets and what the upstream received.

mod support;

use deepchat_adapters::{framing, Adapter, Event};
use serde_json::Value;
use std::time::Duration;
use support::*;

const STOP: &str = "stop-key";

fn fixture(provider: &str, name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/{provider}/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The text the adapter itself extracts from a transcript: what the browser must receive.
fn adapter_text(adapter: &dyn Adapter, body: &[u8]) -> String {
    let mut decoder = adapter.decoder();
    let mut text = String::new();
    for message in framing::frame_chunks(adapter.framing(), vec![body.to_vec()]) {
        for event in decoder.decode(&message.expect("framed")) {
            if let Event::TextDelta(delta) = event {
                text.push_str(&delta);
            }
        }
    }
    text
}

/// Replays `body` in uneven pieces with small pauses, like a real network.
fn replay(body: &[u8], content_type: &'static str) -> Reply {
    let steps = body
        .chunks(37)
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

struct Case {
    provider: &'static str,
    args: Vec<String>,
    fixture: &'static str,
    content_type: &'static str,
    adapter: Box<dyn Adapter>,
    expected_path: String,
    key_header: (&'static str, &'static str),
}

fn cases(base: &str, key_env: &str) -> Vec<Case> {
    let args = |sub: &str, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            sub,
            "--base-url",
            base,
            "--model",
            "m-1",
            "--api-key-env",
            key_env,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    use deepchat_adapters::*;
    vec![
        Case {
            provider: "openai-responses",
            args: args("openai-responses", &[]),
            fixture: "normal.sse",
            content_type: "text/event-stream",
            adapter: Box::new(openai_responses::OpenAiResponses::new(base)),
            expected_path: "/responses".into(),
            key_header: ("authorization", "Bearer k-123456"),
        },
        Case {
            provider: "anthropic",
            args: args("anthropic", &[]),
            fixture: "normal.sse",
            content_type: "text/event-stream",
            adapter: Box::new(anthropic::Anthropic::new(base)),
            expected_path: "/v1/messages".into(),
            key_header: ("x-api-key", "k-123456"),
        },
        Case {
            provider: "gemini",
            args: args("gemini", &[]),
            fixture: "normal.sse",
            content_type: "text/event-stream",
            adapter: Box::new(gemini::Gemini::new(base)),
            expected_path: "/v1beta/models/m-1:streamGenerateContent?alt=sse".into(),
            key_header: ("x-goog-api-key", "k-123456"),
        },
        Case {
            provider: "ollama",
            args: args("ollama", &[]),
            fixture: "normal.ndjson",
            content_type: "application/x-ndjson",
            adapter: Box::new(ollama::Ollama::new(base)),
            expected_path: "/api/chat".into(),
            key_header: ("authorization", "Bearer k-123456"),
        },
        Case {
            provider: "cohere",
            args: args("cohere", &[]),
            fixture: "normal.sse",
            content_type: "text/event-stream",
            adapter: Box::new(cohere::Cohere::new(base)),
            expected_path: "/v2/chat".into(),
            key_header: ("authorization", "Bearer k-123456"),
        },
        Case {
            provider: "azure",
            args: args("azure", &["--api-version", "2025-01-01"]),
            fixture: "normal.sse",
            content_type: "text/event-stream",
            adapter: Box::new(azure::AzureOpenAi::new(base)),
            expected_path: "/openai/deployments/m-1/chat/completions?api-version=2025-01-01".into(),
            key_header: ("api-key", "k-123456"),
        },
    ]
}

#[tokio::test]
async fn every_provider_streams_its_recorded_reply_to_the_browser() {
    std::env::set_var("DEEPCHAT_PROXY_TEST_KEY_PROVIDERS", "k-123456");
    let upstream = MockUpstream::start().await;
    let base = format!("http://{}", upstream.addr);
    for (index, case) in cases(&base, "DEEPCHAT_PROXY_TEST_KEY_PROVIDERS")
        .into_iter()
        .enumerate()
    {
        let mut args: Vec<&str> = vec!["--system-prompt", "Be kind."];
        args.extend(case.args.iter().map(String::as_str));
        let proxy = Proxy::start(&args).await;
        let mut ws = connect(&proxy.ws_url()).await;
        let body = fixture(case.provider, case.fixture);
        let expected = adapter_text(case.adapter.as_ref(), &body);
        assert!(!expected.is_empty(), "{}: fixture has text", case.provider);
        upstream.push(replay(&body, case.content_type));
        send_user(&mut ws, "Hello?").await;
        let frames = read_reply(&mut ws, STOP).await;
        assert_eq!(reply_text(&frames), expected, "{}", case.provider);
        assert!(errors(&frames).is_empty(), "{}: {frames:?}", case.provider);

        let request = &upstream.wait_requests(index + 1).await[index];
        assert_eq!(request.method, "POST", "{}", case.provider);
        assert_eq!(request.path, case.expected_path, "{}", case.provider);
        assert_eq!(
            request.header(case.key_header.0),
            Some(case.key_header.1),
            "{}",
            case.provider
        );
        let sent = request.body.to_string();
        assert!(
            sent.contains("Hello?") && sent.contains("Be kind."),
            "{}: {sent}",
            case.provider
        );
    }
}

#[tokio::test]
async fn every_provider_error_midstream_reaches_the_browser_after_the_partial_text() {
    std::env::set_var("DEEPCHAT_PROXY_TEST_KEY_PROVIDERS_ERR", "k-123456");
    let upstream = MockUpstream::start().await;
    let base = format!("http://{}", upstream.addr);
    for case in cases(&base, "DEEPCHAT_PROXY_TEST_KEY_PROVIDERS_ERR") {
        let fixture_name = if case.provider == "ollama" {
            "error_midstream.ndjson"
        } else {
            "error_midstream.sse"
        };
        let proxy = Proxy::start(&case.args.iter().map(String::as_str).collect::<Vec<_>>()).await;
        let mut ws = connect(&proxy.ws_url()).await;
        let body = fixture(case.provider, fixture_name);
        upstream.push(replay(&body, case.content_type));
        send_user(&mut ws, "Hello?").await;
        let frames = read_reply(&mut ws, STOP).await;
        assert_eq!(
            reply_text(&frames),
            adapter_text(case.adapter.as_ref(), &body),
            "{}",
            case.provider
        );
        assert_eq!(errors(&frames).len(), 1, "{}: {frames:?}", case.provider);
        assert_eq!(frames.last(), Some(&serde_json::json!({"text": STOP})));
    }
}

#[tokio::test]
async fn gemini_output_images_become_deep_chat_files_before_the_stop_key() {
    let upstream = MockUpstream::start().await;
    let base = format!("http://{}", upstream.addr);
    let proxy = Proxy::start(&[
        "gemini",
        "--base-url",
        &base,
        "--model",
        "img",
        "--api-key-env",
        "NO_SUCH_KEY_VAR_X",
    ])
    .await;
    let mut ws = connect(&proxy.ws_url()).await;
    upstream.push(replay(
        &fixture("gemini", "thinking_and_image.sse"),
        "text/event-stream",
    ));
    send_user(&mut ws, "draw").await;
    let frames = read_reply(&mut ws, STOP).await;
    let files: Vec<&Value> = frames.iter().filter_map(|f| f.get("files")).collect();
    assert_eq!(files.len(), 1, "{frames:?}");
    assert_eq!(files[0][0]["type"], "image");
    assert!(files[0][0]["src"]
        .as_str()
        .is_some_and(|s| s.starts_with("data:image/")));
    assert_eq!(frames.last(), Some(&serde_json::json!({"text": STOP})));
}

#[tokio::test]
async fn openai_presets_pick_base_url_and_key_variable() {
    use clap::Parser;
    let parse = |args: &[&str]| {
        let mut argv = vec!["deepchat-proxy"];
        argv.extend_from_slice(args);
        deepchat_proxy::Config::from_cli(
            deepchat_proxy::cli::Cli::try_parse_from(argv).expect("flags"),
        )
    };
    std::env::set_var("GROQ_API_KEY", "gsk-test");
    let config = parse(&["openai", "--preset", "groq", "--model", "llama"]).expect("groq preset");
    let deepchat_proxy::config::ProviderConfig::Http(http) = &config.provider else {
        panic!("http provider")
    };
    let request = http
        .adapter
        .build_request(
            &deepchat_adapters::Conversation {
                turns: vec![deepchat_adapters::Turn::user("x")],
                ..Default::default()
            },
            &http.generation,
            http.api_key.as_ref().map(|k| k.expose()),
        )
        .expect("request");
    assert_eq!(
        request.url,
        "https://api.groq.com/openai/v1/chat/completions"
    );
    assert_eq!(request.headers[0].1, "Bearer gsk-test");
    let err = parse(&["openai", "--preset", "nope", "--model", "m"])
        .err()
        .expect("unknown preset");
    assert!(err.to_string().contains("groq"), "{err}");
}
