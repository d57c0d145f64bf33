mod support;

use deepchat_adapters::ollama::{Ollama, DEFAULT_BASE_URL};
use deepchat_adapters::{
    Adapter, AdapterError, Conversation, Event, FinishReason, Framing, Generation, Image, Turn,
    Usage,
};
use serde_json::json;
use support::{call, decode_chunks, decode_every_split, fixture, result_by_id, text_of};

const PROVIDER: &str = "ollama";

fn adapter() -> Ollama {
    Ollama::new("http://127.0.0.1:9/")
}

#[test]
fn streams_ndjson() {
    assert_eq!(adapter().framing(), Framing::Ndjson);
}

#[test]
fn normal_reply_with_usage() {
    let events = decode_every_split(&adapter(), &fixture(PROVIDER, "normal.ndjson"));
    assert_eq!(
        text_of(&events),
        "Héllo! Ça va très bien, merci — 日本語も OK 👋\n"
    );
    assert_eq!(
        events[events.len() - 2..],
        [
            Event::Usage(Usage {
                input_tokens: Some(26),
                output_tokens: Some(13),
                reasoning_tokens: None
            }),
            Event::Finish(FinishReason::Stop),
        ]
    );
    // One delta per non-empty line: nothing merged, nothing duplicated.
    let deltas = events
        .iter()
        .filter(|e| matches!(e, Event::TextDelta(_)))
        .count();
    assert_eq!(deltas, 13);
}

#[test]
fn error_line_midstream_after_text() {
    let events = decode_every_split(&adapter(), &fixture(PROVIDER, "error_midstream.ndjson"));
    assert_eq!(
        events,
        vec![
            Event::TextDelta("Partial".into()),
            Event::TextDelta(" answer".into()),
            Event::Error(
                "upstream error: an error was encountered while running the model: unexpected EOF"
                    .into()
            ),
        ]
    );
}

#[test]
fn length_finish_is_reported() {
    let events = decode_every_split(&adapter(), &fixture(PROVIDER, "length.ndjson"));
    assert_eq!(text_of(&events), "Once upon a time");
    assert_eq!(events.last(), Some(&Event::Finish(FinishReason::Length)));
}

#[test]
fn refusal_is_plain_text() {
    // Ollama has no refusal channel or content filter: a refusal is ordinary model text.
    let events = decode_every_split(&adapter(), &fixture(PROVIDER, "refusal.ndjson"));
    assert_eq!(text_of(&events), "I can’t help with that.");
    assert_eq!(events.last(), Some(&Event::Finish(FinishReason::Stop)));
}

#[test]
fn stream_without_done_is_an_error() {
    let events = decode_every_split(&adapter(), &fixture(PROVIDER, "truncated.ndjson"));
    assert_eq!(text_of(&events), "Cut shørt 🚧");
    assert_eq!(
        events.last(),
        Some(&Event::Error(
            "the upstream stream ended before the reply was complete".into()
        ))
    );
}

#[test]
fn stream_cut_inside_a_line_is_an_error() {
    let body = fixture(PROVIDER, "normal.ndjson");
    let cut = body.len() - 40;
    let events = decode_chunks(&adapter(), vec![body[..cut].to_vec()]);
    assert!(matches!(events.last(), Some(Event::Error(_))));
    assert!(!events.iter().any(|e| matches!(e, Event::Finish(_))));
}

#[test]
fn done_without_reason_or_counts_is_a_plain_stop() {
    let events = decode_every_split(
        &adapter(),
        b"{\"message\":{\"role\":\"assistant\",\"content\":\"ok\"},\"done\":true}\n",
    );
    assert_eq!(
        events,
        vec![
            Event::TextDelta("ok".into()),
            Event::Finish(FinishReason::Stop)
        ]
    );
}

#[test]
fn nothing_after_done_counts() {
    let body = concat!(
        "{\"message\":{\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\"}\n",
        "{\"message\":{\"content\":\"late\"},\"done\":false}\n",
        "{\"error\":\"late\"}\n",
    );
    let events = decode_every_split(&adapter(), body.as_bytes());
    assert_eq!(events, vec![Event::Finish(FinishReason::Stop)]);
}

#[test]
fn odd_shapes_do_not_panic() {
    for body in [
        "{not json\n",
        "[]\n",
        "\"text\"\n",
        "{\"message\":null,\"done\":\"yes\"}\n",
        "{\"message\":{\"content\":7}}\n",
        "{\"error\":{\"message\":\"nested\"}}\n",
        "{\"done\":true,\"eval_count\":-1}\n",
    ] {
        decode_every_split(&adapter(), body.as_bytes());
    }
    let events = decode_every_split(&adapter(), b"{\"error\":{\"message\":\"nested\"}}\n");
    assert_eq!(events, vec![Event::Error("upstream error: nested".into())]);
}

#[test]
fn request_has_system_history_images_and_options() {
    let mut image_turn = Turn::user("what is this?");
    image_turn.images.push(Image::Inline {
        mime: "image/png".into(),
        base64: "iVBORw0KGgo=".into(),
    });
    image_turn.images.push(Image::Inline {
        mime: "image/jpeg".into(),
        base64: "/9j/4AAQ".into(),
    });
    let conversation = Conversation {
        tools: Vec::new(),
        system: Some("be brief".into()),
        turns: vec![Turn::user("hi"), Turn::assistant("héllo 👋"), image_turn],
    };
    let generation = Generation {
        model: "llava:7b".into(),
        temperature: Some(0.5),
        max_tokens: Some(64),
        extra_headers: vec![("x-team".into(), "blue".into())],
        ..Default::default()
    };
    let request = adapter()
        .build_request(&conversation, &generation, None)
        .expect("request");
    assert_eq!(request.url, "http://127.0.0.1:9/api/chat");
    assert_eq!(
        request.headers,
        vec![("x-team".to_owned(), "blue".to_owned())]
    );
    assert_eq!(
        request.body,
        json!({
            "model": "llava:7b",
            "stream": true,
            "options": {"temperature": 0.5, "num_predict": 64},
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "héllo 👋"},
                {"role": "user", "content": "what is this?", "images": ["iVBORw0KGgo=", "/9j/4AAQ"]}
            ]
        })
    );
}

#[test]
fn key_is_sent_as_bearer_only_when_given() {
    let conversation = Conversation {
        turns: vec![Turn::user("hi")],
        ..Default::default()
    };
    let generation = Generation {
        model: "m".into(),
        ..Default::default()
    };
    let request = Ollama::default()
        .build_request(&conversation, &generation, Some("secret"))
        .expect("request");
    assert_eq!(request.url, format!("{DEFAULT_BASE_URL}/api/chat"));
    assert_eq!(
        request.headers,
        vec![("authorization".to_owned(), "Bearer secret".to_owned())]
    );
    // No options at all when none are set, rather than an empty object.
    assert_eq!(
        request.body,
        json!({
            "model": "m",
            "stream": true,
            "messages": [{"role": "user", "content": "hi"}]
        })
    );
}

#[test]
fn image_links_are_refused_clearly() {
    let mut turn = Turn::user("look");
    turn.images
        .push(Image::Url("https://example.com/cat.jpg".into()));
    let conversation = Conversation {
        turns: vec![turn],
        ..Default::default()
    };
    let generation = Generation {
        model: "llava".into(),
        ..Default::default()
    };
    match adapter().build_request(&conversation, &generation, None) {
        Err(AdapterError::Unsupported(message)) => {
            assert!(message.contains("https://example.com/cat.jpg"), "{message}");
            assert!(message.contains("Ollama"), "{message}");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[test]
fn empty_conversation_is_rejected() {
    let conversation = Conversation {
        ..Default::default()
    };
    let generation = Generation {
        model: "m".into(),
        ..Default::default()
    };
    assert_eq!(
        adapter().build_request(&conversation, &generation, None),
        Err(AdapterError::Empty)
    );
}

// ---- Tool calling -------------------------------------------------------------------------

use deepchat_adapters::{Carried, ToolRound, ToolSpec};

/// A finished turn with two rounds (the first carrying Ollama's thinking and another adapter's
/// item), a user turn, and the loop's turn in progress.
fn tool_conversation() -> Conversation {
    let mut done = Turn::assistant("ping, and 5");
    done.tool_rounds = vec![
        ToolRound {
            text: "Let me check.".into(),
            carried: vec![
                Carried {
                    adapter: "ollama".into(),
                    item: json!({"thinking": "echo first"}),
                },
                Carried {
                    adapter: "anthropic".into(),
                    item: json!({"type": "thinking", "thinking": "not for ollama"}),
                },
            ],
            calls: vec![call("call_0", "echo", r#"{"message":"ping"}"#)],
            results: vec![result_by_id("call_0", "echo", "ping", false)],
        },
        ToolRound {
            text: String::new(),
            carried: Vec::new(),
            // Invalid arguments from the model still go back as an object.
            calls: vec![call("call_0", "get-sum", r#"{"a":2,"b":"#)],
            results: vec![result_by_id("call_0", "get-sum", "invalid arguments", true)],
        },
    ];
    let mut in_progress = Turn::assistant("");
    in_progress.tool_rounds = vec![ToolRound {
        text: String::new(),
        carried: Vec::new(),
        calls: vec![
            call("call_0", "echo", r#"{"message":"again"}"#),
            call("call_1", "get-sum", r#"{"a":1,"b":1}"#),
        ],
        results: vec![
            result_by_id("call_0", "echo", "again", false),
            result_by_id("call_1", "get-sum", "2", false),
        ],
    }];
    Conversation {
        system: None,
        turns: vec![
            Turn::user("echo ping, add 2 and 3"),
            done,
            Turn::user("again"),
            in_progress,
        ],
        tools: vec![ToolSpec {
            name: "echo".into(),
            description: "Echoes the message".into(),
            parameters: json!({"type": "object", "properties": {"message": {"type": "string"}}}),
        }],
    }
}

fn tool_generation() -> Generation {
    Generation {
        model: "llama3.1:8b".into(),
        ..Default::default()
    }
}

#[test]
fn tool_call_fixture_gives_both_calls_with_invented_ids() {
    let events = decode_every_split(&adapter(), &fixture(PROVIDER, "tool_call.ndjson"));
    assert_eq!(
        events,
        vec![
            Event::TextDelta("Let me check.".into()),
            Event::ToolCall(call("call_0", "echo", r#"{"message":"ping"}"#)),
            Event::ToolCall(call("call_1", "get-sum", r#"{"a":2,"b":3}"#)),
            Event::Usage(Usage {
                input_tokens: Some(214),
                output_tokens: Some(38),
                reasoning_tokens: None
            }),
            Event::Finish(FinishReason::ToolUse),
        ]
    );
}

#[test]
fn thinking_before_calls_is_carried_and_given_ids_are_kept() {
    let events = decode_every_split(&adapter(), &fixture(PROVIDER, "tool_call_thinking.ndjson"));
    assert_eq!(
        events,
        vec![
            Event::Reasoning("The user wants an echo".into()),
            Event::Reasoning(" and a sum; call both tools.".into()),
            Event::Carried(
                json!({"thinking": "The user wants an echo and a sum; call both tools."})
            ),
            Event::ToolCall(call("call_n4k2x8qe", "echo", r#"{"message":"ping"}"#)),
            Event::ToolCall(call("call_7pw1m3ud", "get-sum", r#"{"a":2,"b":3}"#)),
            Event::Usage(Usage {
                input_tokens: Some(236),
                output_tokens: Some(57),
                reasoning_tokens: None
            }),
            Event::Finish(FinishReason::ToolUse),
        ]
    );
}

#[test]
fn tool_stream_cut_before_done_is_an_error_without_a_call() {
    let body = fixture(PROVIDER, "tool_call.ndjson");
    let text = String::from_utf8(body).expect("utf-8");
    // Cut inside the second call's line, and cut after both calls but before `done`.
    for cut in [
        text.find("\"b\":3").expect("second call"),
        text.rfind("{\"model\"").expect("last line"),
    ] {
        let events = decode_chunks(&adapter(), vec![text.as_bytes()[..cut].to_vec()]);
        assert!(
            !events.iter().any(|e| matches!(e, Event::ToolCall(_))),
            "{events:?}"
        );
        assert!(matches!(events.last(), Some(Event::Error(_))), "{events:?}");
    }
}

#[test]
fn arguments_over_one_mib_are_an_error() {
    let big = "x".repeat((1 << 20) + 1);
    let body = format!(
        "{{\"message\":{{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{{\"function\":{{\"name\":\"echo\",\"arguments\":{{\"message\":\"{big}\"}}}}}}]}},\"done\":false}}\n{{\"message\":{{\"role\":\"assistant\",\"content\":\"\"}},\"done\":true,\"done_reason\":\"stop\"}}\n"
    );
    assert_eq!(
        decode_chunks(&adapter(), vec![body.into_bytes()]),
        vec![Event::Error("tool call arguments exceed 1 MiB".into())]
    );
}

#[test]
fn tools_and_rounds_are_rendered_for_ollama() {
    let request = adapter()
        .build_request(&tool_conversation(), &tool_generation(), None)
        .expect("request");
    assert_eq!(
        request.body,
        json!({
            "model": "llama3.1:8b",
            "stream": true,
            "tools": [{"type": "function", "function": {
                "name": "echo",
                "description": "Echoes the message",
                "parameters": {"type": "object", "properties": {"message": {"type": "string"}}}
            }}],
            "messages": [
                {"role": "user", "content": "echo ping, add 2 and 3"},
                {"role": "assistant", "content": "Let me check.", "thinking": "echo first", "tool_calls": [
                    {"function": {"name": "echo", "arguments": {"message": "ping"}}}
                ]},
                {"role": "tool", "content": "ping", "tool_name": "echo"},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"function": {"name": "get-sum", "arguments": {}}}
                ]},
                {"role": "tool", "content": "invalid arguments", "tool_name": "get-sum"},
                {"role": "assistant", "content": "ping, and 5"},
                {"role": "user", "content": "again"},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"function": {"name": "echo", "arguments": {"message": "again"}}},
                    {"function": {"name": "get-sum", "arguments": {"a": 1, "b": 1}}}
                ]},
                {"role": "tool", "content": "again", "tool_name": "echo"},
                {"role": "tool", "content": "2", "tool_name": "get-sum"}
            ]
        })
    );
}

#[test]
fn without_tools_ollama_gets_no_rounds() {
    let mut conversation = tool_conversation();
    conversation.tools.clear();
    let request = adapter()
        .build_request(&conversation, &tool_generation(), None)
        .expect("request");
    assert_eq!(
        request.body,
        json!({
            "model": "llama3.1:8b",
            "stream": true,
            "messages": [
                {"role": "user", "content": "echo ping, add 2 and 3"},
                {"role": "assistant", "content": "ping, and 5"},
                {"role": "user", "content": "again"},
                {"role": "assistant", "content": ""}
            ]
        })
    );
}
