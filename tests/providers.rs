//! Every provider subcommand end to end: the real proxy against a mock upstream replaying that
//! provider's recorded stream, checking what the browser gets and what the upstream received.

mod support;

use deepchat_adapters::providers::{Settings, PROVIDERS};
use deepchat_adapters::{framing, Adapter, Event};
use serde_json::Value;
use std::sync::Arc;
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
    content_type: &'static str,
    /// The fixture's file extension: how the provider frames its stream.
    extension: &'static str,
    adapter: Arc<dyn Adapter>,
    expected_path: String,
    key_header: (&'static str, String),
}

/// Where each provider's request goes for model `m-1` (Azure with `--api-version 2025-01-01`):
/// data recorded per provider, like its fixtures. A provider added to the table without an
/// entry here fails every test that iterates the table.
fn expected_path(provider: &str) -> &'static str {
    match provider {
        "openai" => "/chat/completions",
        "openai-responses" => "/responses",
        "anthropic" => "/v1/messages",
        "gemini" => "/v1beta/models/m-1:streamGenerateContent?alt=sse",
        "ollama" => "/api/chat",
        "cohere" => "/v2/chat",
        "azure" => "/openai/deployments/m-1/chat/completions?api-version=2025-01-01",
        other => panic!(
            "{other}: record its expected path here and its fixtures in tests/fixtures/{other}/"
        ),
    }
}

/// One case per entry of the provider table, all pointed at `base` with the key in `key_env`.
fn cases(base: &str, key_env: &str) -> Vec<Case> {
    PROVIDERS
        .iter()
        .map(|provider| {
            let mut args: Vec<String> = [
                provider.name,
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
            if provider.api_version.is_some() {
                args.extend(["--api-version".to_owned(), "2025-01-01".to_owned()]);
            }
            let adapter = (provider.build)(&Settings {
                base_url: base.to_owned(),
                api_version: None,
            });
            let (content_type, extension) = match adapter.framing() {
                framing::Framing::Sse => ("text/event-stream", "sse"),
                framing::Framing::Ndjson => ("application/x-ndjson", "ndjson"),
            };
            let key = "k-123456";
            let key_value = if provider.key_header == "authorization" {
                format!("Bearer {key}")
            } else {
                key.to_owned()
            };
            Case {
                provider: provider.name,
                args,
                content_type,
                extension,
                adapter,
                expected_path: expected_path(provider.name).to_owned(),
                key_header: (provider.key_header, key_value),
            }
        })
        .collect()
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
        let body = fixture(case.provider, &format!("normal.{}", case.extension));
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
            Some(case.key_header.1.as_str()),
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
        let fixture_name = format!("error_midstream.{}", case.extension);
        let proxy = Proxy::start(&case.args.iter().map(String::as_str).collect::<Vec<_>>()).await;
        let mut ws = connect(&proxy.ws_url()).await;
        let body = fixture(case.provider, &fixture_name);
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
    let deepchat_proxy::config::ProviderConfig::Http(http) = config.routes[0].primary() else {
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

/// A provider the proxy has never heard of, added as the README says a provider is added: one
/// adapter and one table entry. Its wire protocol is made up (NDJSON lines of `{"word": …}`,
/// then `{"end": true}`); the mock upstream below speaks it.
mod parrot {
    use deepchat_adapters::providers::Provider;
    use deepchat_adapters::{
        Adapter, AdapterError, Conversation, Event, FinishReason, Framing, Generation, Message,
        StreamDecoder, UpstreamRequest,
    };
    use serde_json::{json, Value};
    use std::sync::Arc;

    pub struct Parrot {
        base_url: String,
    }

    impl Adapter for Parrot {
        fn name(&self) -> &'static str {
            "parrot"
        }

        fn framing(&self) -> Framing {
            Framing::Ndjson
        }

        fn build_request(
            &self,
            conversation: &Conversation,
            generation: &Generation,
            api_key: Option<&str>,
        ) -> Result<UpstreamRequest, AdapterError> {
            let last = conversation.turns.last().ok_or(AdapterError::Empty)?;
            let auth = api_key.map(|key| ("x-parrot-key", key.to_owned()));
            Ok(UpstreamRequest {
                url: format!("{}/parrot/say", self.base_url),
                headers: generation.request_headers(auth, &[]),
                body: json!({"model": generation.model, "say": last.text}),
            })
        }

        fn decoder(&self) -> Box<dyn StreamDecoder> {
            Box::new(ParrotDecoder { ended: false })
        }
    }

    struct ParrotDecoder {
        ended: bool,
    }

    impl StreamDecoder for ParrotDecoder {
        fn decode(&mut self, message: &Message) -> Vec<Event> {
            let Ok(line) = serde_json::from_str::<Value>(&message.data) else {
                return Vec::new();
            };
            if line["end"] == true {
                self.ended = true;
                return vec![Event::Finish(FinishReason::Stop)];
            }
            match line["word"].as_str() {
                Some(word) => vec![Event::TextDelta(word.to_owned())],
                None => Vec::new(),
            }
        }

        fn end(&mut self) -> Vec<Event> {
            if self.ended {
                Vec::new()
            } else {
                vec![Event::Error("the parrot stopped mid-sentence".into())]
            }
        }
    }

    /// The one table entry.
    pub const PARROT: Provider = Provider {
        name: "parrot",
        summary: "A made-up provider that repeats words (`POST {base-url}/parrot/say`)",
        default_base_url: Some("https://parrot.invalid"),
        default_key_env: Some("PARROT_API_KEY"),
        key_header: "x-parrot-key",
        endpoint: "/parrot/say",
        base_url_tails: &["/parrot/say", "/parrot"],
        model_help: None,
        api_version: None,
        presets: false,
        build: |settings| {
            Arc::new(Parrot {
                base_url: settings.base_url.clone(),
            })
        },
    };

    pub static TABLE: &[Provider] = &[PARROT];
}

#[tokio::test]
async fn a_provider_added_as_one_table_entry_serves_the_browser() {
    std::env::set_var("DEEPCHAT_PROXY_TEST_KEY_PARROT", "k-parrot");
    let upstream = MockUpstream::start().await;
    let base = format!("http://{}", upstream.addr);
    let proxy = Proxy::start_with_table(
        parrot::TABLE,
        &[
            "--retries",
            "0",
            "parrot",
            "--base-url",
            &base,
            "--model",
            "polly",
            "--api-key-env",
            "DEEPCHAT_PROXY_TEST_KEY_PARROT",
            "--header",
            "X-Perch: left",
        ],
    )
    .await;
    let body =
        b"{\"word\":\"Polly \"}\n{\"word\":\"wants a \"}\n{\"word\":\"cracker\"}\n{\"end\":true}\n";
    upstream.push(replay(body, "application/x-ndjson"));
    let mut ws = connect(&proxy.ws_url()).await;
    send_user(&mut ws, "Hello?").await;
    let frames = read_reply(&mut ws, STOP).await;
    assert_eq!(reply_text(&frames), "Polly wants a cracker", "{frames:?}");
    assert!(errors(&frames).is_empty(), "{frames:?}");

    let request = &upstream.wait_requests(1).await[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/parrot/say");
    assert_eq!(request.header("x-parrot-key"), Some("k-parrot"));
    assert_eq!(request.header("x-perch"), Some("left"));
    assert_eq!(
        request.body,
        serde_json::json!({"model": "polly", "say": "Hello?"})
    );
}

#[test]
fn a_provider_table_decides_the_subcommands_defaults_and_checks() {
    let parse = |args: &[&str]| {
        let mut argv = vec!["deepchat-proxy"];
        argv.extend_from_slice(args);
        deepchat_proxy::cli::parse_from_table(parrot::TABLE, argv).map(|parsed| parsed.cli)
    };
    // Only the table's providers (and the built-in commands) exist.
    assert!(parse(&["openai", "--model", "m"]).is_err());
    assert!(parse(&["demo"]).is_ok());
    let help = deepchat_proxy::cli::command_for(parrot::TABLE)
        .render_help()
        .to_string();
    assert!(
        help.contains("A made-up provider that repeats words"),
        "{help}"
    );
    // The entry's defaults and base URL check apply.
    let cli = parse(&["parrot", "--model", "m"]).expect("flags");
    let config = deepchat_proxy::Config::validate(cli, false).expect("config");
    assert!(
        config
            .summary
            .contains("parrot, model m, upstream parrot.invalid"),
        "{}",
        config.summary
    );
    let missing_key = config
        .warnings
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(missing_key.contains("PARROT_API_KEY"), "{missing_key}");
    let cli = parse(&[
        "parrot",
        "--model",
        "m",
        "--base-url",
        "http://h/parrot/say",
    ])
    .expect("flags");
    let err = deepchat_proxy::Config::from_cli(cli)
        .err()
        .expect("doubled endpoint");
    assert!(err.to_string().contains("--base-url http://h"), "{err}");
}
