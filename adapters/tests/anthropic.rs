mod support;

use deepchat_adapters::anthropic::{Anthropic, DEFAULT_BASE_URL};
use deepchat_adapters::{
    Adapter, AdapterError, Carried, Conversation, Event, FinishReason, Generation, Image, ToolCall,
    ToolRound, ToolSpec, Turn, Usage,
};
use serde_json::json;
use support::{decode_chunks, decode_every_split, fixture, result, text_of};

fn adapter() -> Anthropic {
    Anthropic::new("http://127.0.0.1:9/")
}

fn generation() -> Generation {
    Generation {
        model: "claude-sonnet-4-20250514".into(),
        ..Default::default()
    }
}

fn conversation(turns: Vec<Turn>) -> Conversation {
    Conversation {
        turns,
        ..Default::default()
    }
}

#[test]
fn normal_reply_with_usage() {
    let events = decode_every_split(&adapter(), &fixture("anthropic", "normal.sse"));
    assert_eq!(
        events,
        vec![
            Event::TextDelta("Grüße aus Zürich".into()),
            Event::TextDelta(" — 日本語も 👋🏽\n\"done\"".into()),
            Event::Finish(FinishReason::Stop),
            Event::Usage(Usage {
                input_tokens: Some(25),
                output_tokens: Some(15),
                reasoning_tokens: None
            }),
        ]
    );
}

#[test]
fn thinking_is_its_own_event_and_cached_prompt_tokens_count_as_input() {
    let events = decode_every_split(&adapter(), &fixture("anthropic", "thinking.sse"));
    assert_eq!(
        events,
        vec![
            Event::Reasoning("The user wants 27 * 453. That is 12231.".into()),
            Event::TextDelta("27 × 453 = 12,231".into()),
            Event::Finish(FinishReason::Stop),
            Event::Usage(Usage {
                input_tokens: Some(2140),
                output_tokens: Some(58),
                reasoning_tokens: None
            }),
        ]
    );
}

#[test]
fn error_event_midstream_is_one_clear_error() {
    let events = decode_every_split(&adapter(), &fixture("anthropic", "error_midstream.sse"));
    assert_eq!(
        events,
        vec![
            Event::TextDelta("Partial".into()),
            Event::Error("upstream error: Overloaded".into()),
        ]
    );
}

#[test]
fn refusal_is_a_content_filter_finish() {
    let events = decode_every_split(&adapter(), &fixture("anthropic", "refusal.sse"));
    assert_eq!(text_of(&events), "I can");
    assert_eq!(
        events[1..],
        [
            Event::Finish(FinishReason::ContentFilter),
            Event::Usage(Usage {
                input_tokens: Some(30),
                output_tokens: Some(2),
                reasoning_tokens: None
            }),
        ]
    );
}

#[test]
fn max_tokens_is_a_length_finish() {
    let events = decode_every_split(&adapter(), &fixture("anthropic", "length.sse"));
    assert_eq!(text_of(&events), "Once upon");
    assert!(events.contains(&Event::Finish(FinishReason::Length)));
    assert!(!events.iter().any(|e| matches!(e, Event::Error(_))));
}

#[test]
fn stream_without_message_stop_is_an_error() {
    let events = decode_every_split(&adapter(), &fixture("anthropic", "truncated.sse"));
    assert_eq!(
        events,
        vec![
            Event::TextDelta("Cut".into()),
            Event::Error("the upstream stream ended before the reply was complete".into()),
        ]
    );
}

#[test]
fn every_cut_before_message_stop_is_reported() {
    let body = fixture("anthropic", "normal.sse");
    for len in 0..body.len() {
        let events = decode_chunks(&adapter(), vec![body[..len].to_vec()]);
        assert!(
            matches!(events.last(), Some(Event::Error(_))),
            "cut at byte {len} was not reported: {events:?}"
        );
    }
    let whole = decode_chunks(&adapter(), vec![body]);
    assert!(!whole.iter().any(|e| matches!(e, Event::Error(_))));
}

#[test]
fn anything_after_message_stop_is_ignored() {
    let mut body = fixture("anthropic", "length.sse");
    body.extend_from_slice(
        b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"late\"}}\n\n",
    );
    let events = decode_every_split(&adapter(), &body);
    assert_eq!(text_of(&events), "Once upon");
}

#[test]
fn garbage_data_is_an_error_not_a_panic() {
    let events = decode_every_split(
        &adapter(),
        b"event: content_block_delta\ndata: {not json\n\n",
    );
    assert!(matches!(events.as_slice(), [Event::Error(_)]));
    let events = decode_every_split(
        &adapter(),
        b"data: {\"type\":\"content_block_delta\",\"delta\":[1,2]}\n\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":7},\"usage\":{\"output_tokens\":\"x\"}}\n\ndata: 42\n\n",
    );
    assert!(matches!(events.last(), Some(Event::Error(_))));
}

#[test]
fn request_merges_history_and_sends_system_images_and_options() {
    let mut image_turn = Turn::user("what is this?");
    image_turn.images.push(Image::Inline {
        mime: "image/jpg".into(),
        base64: "AAAA".into(),
    });
    image_turn
        .images
        .push(Image::Url("https://example.com/cat.webp".into()));
    let conversation = Conversation {
        tools: Vec::new(),
        system: Some("be brief".into()),
        turns: vec![
            // A widget greeting before the user spoke: Anthropic needs `user` first.
            Turn::assistant("Hi! Ask me anything."),
            Turn::user("hi"),
            Turn::user("are you there?"),
            Turn::assistant("hello"),
            // A failed reply left an empty turn: it must not split the user's turns.
            Turn::assistant(""),
            Turn::user("look"),
            image_turn,
        ],
    };
    let generation = Generation {
        model: "claude-sonnet-4-20250514".into(),
        temperature: Some(0.5),
        max_tokens: Some(64),
        extra_headers: vec![("x-team".into(), "blue".into())],
        ..Default::default()
    };
    let request = adapter()
        .build_request(&conversation, &generation, Some("sk-ant-test"))
        .expect("request");
    assert_eq!(request.url, "http://127.0.0.1:9/v1/messages");
    assert_eq!(
        request.headers,
        vec![
            ("x-api-key".to_owned(), "sk-ant-test".to_owned()),
            ("anthropic-version".to_owned(), "2023-06-01".to_owned()),
            ("x-team".to_owned(), "blue".to_owned()),
        ]
    );
    assert_eq!(
        request.body,
        json!({
            "model": "claude-sonnet-4-20250514",
            "max_tokens": 64,
            "stream": true,
            "system": "be brief",
            "temperature": 0.5,
            "messages": [
                {"role": "user", "content": "hi\n\nare you there?"},
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image", "source": {
                        "type": "base64", "media_type": "image/jpeg", "data": "AAAA"
                    }},
                    {"type": "image", "source": {
                        "type": "url", "url": "https://example.com/cat.webp"
                    }},
                    {"type": "text", "text": "what is this?"}
                ]}
            ]
        })
    );
}

#[test]
fn max_tokens_defaults_and_keyless_requests_only_carry_the_version() {
    let request = Anthropic::default()
        .build_request(&conversation(vec![Turn::user("hi")]), &generation(), None)
        .expect("request");
    assert_eq!(DEFAULT_BASE_URL, "https://api.anthropic.com");
    assert_eq!(request.url, "https://api.anthropic.com/v1/messages");
    assert_eq!(
        request.headers,
        vec![("anthropic-version".to_owned(), "2023-06-01".to_owned())]
    );
    assert_eq!(
        request.body,
        json!({
            "model": "claude-sonnet-4-20250514",
            "max_tokens": 4096,
            "stream": true,
            "messages": [{"role": "user", "content": "hi"}]
        })
    );
}

#[test]
fn conversation_with_nothing_for_the_user_to_have_said_is_empty() {
    let only_greeting = conversation(vec![Turn::assistant("Hi! Ask me anything.")]);
    assert_eq!(
        adapter().build_request(&only_greeting, &generation(), None),
        Err(AdapterError::Empty)
    );
    assert_eq!(
        adapter().build_request(&conversation(Vec::new()), &generation(), None),
        Err(AdapterError::Empty)
    );
}

#[test]
fn unsupported_image_formats_are_refused_before_sending() {
    let mut turn = Turn::user("see");
    turn.images.push(Image::Inline {
        mime: "image/bmp".into(),
        base64: "Qk0=".into(),
    });
    let err = adapter()
        .build_request(&conversation(vec![turn]), &generation(), None)
        .expect_err("bmp is not accepted");
    assert!(
        matches!(&err, AdapterError::Unsupported(m) if m.contains("image/bmp")),
        "{err:?}"
    );
}

#[test]
fn http_error_body_gives_anthropics_message() {
    let message = adapter().error_message(
        404,
        r#"{"type":"error","error":{"type":"not_found_error","message":"model: claude-nope"}}"#,
    );
    assert_eq!(
        message,
        "anthropic upstream does not know this model or endpoint (HTTP 404): model: claude-nope"
    );
}

// ---- Tool calling ----

fn echo_call(id: &str) -> ToolCall {
    ToolCall {
        id: id.into(),
        name: "echo".into(),
        arguments: r#"{"message":"ping"}"#.into(),
        signature: None,
    }
}

fn sum_call(id: &str) -> ToolCall {
    ToolCall {
        id: id.into(),
        name: "get-sum".into(),
        arguments: r#"{"a":2,"b":3}"#.into(),
        signature: None,
    }
}

fn tool_stream_events() -> Vec<Event> {
    vec![
        Event::ToolCall(echo_call("toolu_01T1x1fJ34qAmk2tNTrN7Up6")),
        Event::ToolCall(sum_call("toolu_01CqKVgVHrnRr4bTwcLkQ8Ps")),
    ]
}

#[test]
fn tool_calls_are_assembled_from_their_json_pieces_before_a_tool_stop() {
    let events = decode_every_split(&adapter(), &fixture("anthropic", "tool_call.sse"));
    let mut expected = vec![
        Event::TextDelta("Let me ".into()),
        Event::TextDelta("check.".into()),
    ];
    expected.extend(tool_stream_events());
    expected.extend([
        Event::Finish(FinishReason::ToolUse),
        Event::Usage(Usage {
            input_tokens: Some(472),
            output_tokens: Some(89),
            reasoning_tokens: None,
        }),
    ]);
    assert_eq!(events, expected);
}

#[test]
fn thinking_before_calls_is_carried_verbatim_signature_and_redacted_blocks_included() {
    let events = decode_every_split(&adapter(), &fixture("anthropic", "tool_call_thinking.sse"));
    let mut expected = vec![
        Event::Reasoning("The user wants an echo ".into()),
        Event::Reasoning("and a sum: call both tools.".into()),
        Event::Carried(json!({
            "type": "thinking",
            "thinking": "The user wants an echo and a sum: call both tools.",
            "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds",
        })),
        Event::Carried(json!({
            "type": "redacted_thinking",
            "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP",
        })),
    ];
    expected.extend(tool_stream_events());
    expected.extend([
        Event::Finish(FinishReason::ToolUse),
        Event::Usage(Usage {
            input_tokens: Some(510),
            output_tokens: Some(141),
            reasoning_tokens: None,
        }),
    ]);
    assert_eq!(events, expected);
}

#[test]
fn a_call_without_id_or_input_gets_an_invented_id_and_empty_object() {
    let body = concat!(
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"name\":\"now\",\"input\":{}}}\n\n",
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"}}\n\n",
        "data: {\"type\":\"message_stop\"}\n\n",
    );
    let events = decode_every_split(&adapter(), body.as_bytes());
    assert_eq!(
        events,
        vec![
            Event::ToolCall(ToolCall {
                id: "call_0".into(),
                name: "now".into(),
                arguments: "{}".into(),
                signature: None,
            }),
            // A plain stop after a call is still a stop to call tools.
            Event::Finish(FinishReason::ToolUse),
        ]
    );
}

#[test]
fn a_stream_cut_inside_a_call_is_the_truncation_error_and_no_call() {
    let body = fixture("anthropic", "tool_call.sse");
    let text = String::from_utf8(body.clone()).expect("utf-8");
    let first_stop = text
        .find("data: {\"type\":\"content_block_stop\",\"index\":1}")
        .expect("the echo block ends");
    for len in text.find("toolu_01T1").expect("echo starts")..first_stop {
        let events = decode_chunks(&adapter(), vec![body[..len].to_vec()]);
        assert!(
            !events.iter().any(|e| matches!(e, Event::ToolCall(_))),
            "cut at {len}: {events:?}"
        );
        assert_eq!(
            events.last(),
            Some(&Event::Error(
                "the upstream stream ended before the reply was complete".into()
            )),
            "cut at {len}"
        );
    }
}

#[test]
fn arguments_past_one_mebibyte_are_refused_without_a_call() {
    let piece = "x".repeat(64 * 1024);
    let mut body = String::from("data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_big\",\"name\":\"echo\",\"input\":{}}}\n\n");
    for _ in 0..17 {
        body.push_str(&format!("data: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"input_json_delta\",\"partial_json\":\"{piece}\"}}}}\n\n"));
    }
    body.push_str("data: {\"type\":\"content_block_stop\",\"index\":0}\n\ndata: {\"type\":\"message_stop\"}\n\n");
    let events = decode_chunks(&adapter(), vec![body.into_bytes()]);
    assert_eq!(
        events,
        vec![Event::Error("tool call arguments exceed 1 MiB".into())]
    );
}

fn tools() -> Vec<ToolSpec> {
    vec![ToolSpec {
        name: "echo".into(),
        description: "Echoes a message".into(),
        parameters: json!({"type": "object", "properties": {"message": {"type": "string"}}}),
    }]
}

fn carried(item: serde_json::Value) -> Carried {
    Carried {
        adapter: "anthropic".into(),
        item,
    }
}

/// Round 1: thinking (plus an item of another adapter, never sent here), text and two calls,
/// one of which failed; round 2: one call with malformed arguments.
fn two_rounds() -> Vec<ToolRound> {
    let echo = echo_call("toolu_1");
    let sum = sum_call("toolu_2");
    let broken = ToolCall {
        arguments: "{\"message\":".into(),
        ..echo_call("toolu_3")
    };
    vec![
        ToolRound {
            text: "Let me check.".into(),
            carried: vec![
                carried(json!({"type": "thinking", "thinking": "hmm", "signature": "sig"})),
                Carried {
                    adapter: "openai-responses".into(),
                    item: json!({"type": "reasoning", "id": "rs_1"}),
                },
            ],
            results: vec![
                result(&echo, "ping", false),
                result(&sum, "no such tool", true),
            ],
            calls: vec![echo, sum],
        },
        ToolRound {
            text: String::new(),
            carried: Vec::new(),
            results: vec![result(&broken, "invalid arguments", true)],
            calls: vec![broken],
        },
    ]
}

fn expected_round_messages() -> Vec<serde_json::Value> {
    vec![
        json!({"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_1", "name": "echo", "input": {"message": "ping"}},
            {"type": "tool_use", "id": "toolu_2", "name": "get-sum", "input": {"a": 2, "b": 3}},
        ]}),
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ping"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "no such tool", "is_error": true},
        ]}),
        json!({"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_3", "name": "echo", "input": {}},
        ]}),
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_3", "content": "invalid arguments", "is_error": true},
        ]}),
    ]
}

#[test]
fn request_offers_tools_and_replays_rounds_before_the_final_text() {
    let mut answered = Turn::assistant("Echoed: ping");
    answered.tool_rounds = two_rounds();
    let conversation = Conversation {
        tools: tools(),
        system: None,
        turns: vec![Turn::user("echo ping"), answered, Turn::user("thanks")],
    };
    let request = adapter()
        .build_request(&conversation, &generation(), None)
        .expect("request");
    let mut messages = vec![json!({"role": "user", "content": "echo ping"})];
    messages.extend(expected_round_messages());
    messages.push(json!({"role": "assistant", "content": "Echoed: ping"}));
    messages.push(json!({"role": "user", "content": "thanks"}));
    assert_eq!(
        request.body,
        json!({
            "model": "claude-sonnet-4-20250514",
            "max_tokens": 4096,
            "stream": true,
            "messages": messages,
            "tools": [{
                "name": "echo",
                "description": "Echoes a message",
                "input_schema": {"type": "object", "properties": {"message": {"type": "string"}}},
            }],
        })
    );
}

#[test]
fn the_loops_turn_in_progress_ends_with_its_results_and_no_empty_message() {
    let mut in_progress = Turn::assistant("");
    in_progress.tool_rounds = two_rounds();
    let conversation = Conversation {
        tools: tools(),
        system: None,
        turns: vec![Turn::user("echo ping"), in_progress],
    };
    let request = adapter()
        .build_request(&conversation, &generation(), None)
        .expect("request");
    let mut messages = vec![json!({"role": "user", "content": "echo ping"})];
    messages.extend(expected_round_messages());
    assert_eq!(request.body["messages"], json!(messages));
}

#[test]
fn without_tools_rounds_are_left_out_and_the_request_is_unchanged() {
    let mut answered = Turn::assistant("Echoed: ping");
    answered.tool_rounds = two_rounds();
    let mut in_progress = Turn::assistant("");
    in_progress.tool_rounds = two_rounds();
    let with_rounds = conversation(vec![
        Turn::user("echo ping"),
        answered,
        Turn::user("again"),
        in_progress,
    ]);
    let plain = conversation(vec![
        Turn::user("echo ping"),
        Turn::assistant("Echoed: ping"),
        Turn::user("again"),
    ]);
    let request = |c: &Conversation| {
        adapter()
            .build_request(c, &generation(), None)
            .expect("request")
    };
    assert_eq!(request(&with_rounds), request(&plain));
    assert!(request(&plain).body.get("tools").is_none());
}

#[test]
fn a_broken_upstream_cannot_open_blocks_without_end() {
    let body: String = (0..100)
        .map(|i| format!("data: {{\"type\":\"content_block_start\",\"index\":{i},\"content_block\":{{\"type\":\"tool_use\",\"id\":\"t{i}\",\"name\":\"echo\",\"input\":{{}}}}}}\n\n"))
        .collect();
    let events = decode_chunks(&adapter(), vec![body.into_bytes()]);
    assert_eq!(
        events,
        vec![Event::Error(
            "upstream opened too many content blocks at once".into()
        )]
    );
}
