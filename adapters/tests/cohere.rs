mod support;

use deepchat_adapters::cohere::{Cohere, DEFAULT_BASE_URL};
use deepchat_adapters::{
    Adapter, AdapterError, Conversation, Event, FinishReason, Generation, Image, Turn, Usage,
};
use serde_json::json;
use support::{call, decode_chunks, decode_every_split, fixture, result_by_id, text_of};

fn adapter() -> Cohere {
    Cohere::new("http://127.0.0.1:9/")
}

#[test]
fn normal_reply_with_real_token_counts() {
    let events = decode_every_split(&adapter(), &fixture("cohere", "normal.sse"));
    assert_eq!(
        events,
        vec![
            Event::TextDelta("Grüße aus Zürich".into()),
            Event::TextDelta(" — 日本語も 👋🏽\n\"done\"".into()),
            Event::Finish(FinishReason::Stop),
            Event::Usage(Usage {
                input_tokens: Some(186),
                output_tokens: Some(14),
                reasoning_tokens: None
            }),
        ]
    );
}

#[test]
fn thinking_is_its_own_event_billed_units_are_the_fallback_and_done_is_ignored() {
    let events = decode_every_split(&adapter(), &fixture("cohere", "thinking.sse"));
    assert_eq!(
        events,
        vec![
            Event::Reasoning("27 times 453 is 12231.".into()),
            Event::TextDelta("27 × 453 = 12,231".into()),
            Event::Finish(FinishReason::Stop),
            Event::Usage(Usage {
                input_tokens: Some(12),
                output_tokens: Some(30),
                reasoning_tokens: None
            }),
        ]
    );
}

#[test]
fn error_finish_midstream_is_one_clear_error() {
    let events = decode_every_split(&adapter(), &fixture("cohere", "error_midstream.sse"));
    assert_eq!(
        events,
        vec![
            Event::TextDelta("Partial".into()),
            Event::Error(
                "upstream error: internal server error, this has been reported to our developers"
                    .into()
            ),
        ]
    );
}

#[test]
fn toxic_finish_says_the_safety_filter_blocked_it() {
    let events = decode_every_split(&adapter(), &fixture("cohere", "toxic.sse"));
    assert_eq!(
        events,
        vec![
            Event::TextDelta("Sure,".into()),
            Event::Error("the reply was blocked by Cohere's safety filter (ERROR_TOXIC)".into()),
        ]
    );
}

#[test]
fn max_tokens_is_a_length_finish() {
    let events = decode_every_split(&adapter(), &fixture("cohere", "length.sse"));
    assert_eq!(text_of(&events), "Once upon");
    assert_eq!(
        events[1..],
        [
            Event::Finish(FinishReason::Length),
            Event::Usage(Usage {
                input_tokens: Some(71),
                output_tokens: Some(3),
                reasoning_tokens: None
            }),
        ]
    );
}

#[test]
fn stream_without_message_end_is_an_error() {
    let events = decode_every_split(&adapter(), &fixture("cohere", "truncated.sse"));
    assert_eq!(
        events,
        vec![
            Event::TextDelta("Cut".into()),
            Event::Error("the upstream stream ended before the reply was complete".into()),
        ]
    );
}

#[test]
fn done_marker_without_message_end_is_still_a_cut_stream() {
    let mut body = fixture("cohere", "truncated.sse");
    body.extend_from_slice(b"data: [DONE]\n\n");
    let events = decode_every_split(&adapter(), &body);
    assert_eq!(
        events.last(),
        Some(&Event::Error(
            "the upstream stream ended before the reply was complete".into()
        ))
    );
}

#[test]
fn every_cut_before_message_end_is_reported() {
    let body = fixture("cohere", "normal.sse");
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
fn other_finish_reasons() {
    for (reason, expected) in [
        ("STOP_SEQUENCE", Event::Finish(FinishReason::Stop)),
        ("TOOL_CALL", Event::Finish(FinishReason::ToolUse)),
        (
            "USER_CANCEL",
            Event::Finish(FinishReason::Other("USER_CANCEL".into())),
        ),
    ] {
        let body = format!(
            "event: message-end\ndata: {{\"type\":\"message-end\",\"delta\":{{\"finish_reason\":\"{reason}\"}}}}\n\n"
        );
        assert_eq!(
            decode_every_split(&adapter(), body.as_bytes()),
            vec![expected]
        );
    }
    let events = decode_every_split(
        &adapter(),
        b"event: message-end\ndata: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"ERROR\"}}\n\n",
    );
    assert!(
        matches!(events.as_slice(), [Event::Error(m)] if m.starts_with("upstream error: ")),
        "{events:?}"
    );
}

#[test]
fn untyped_error_object_in_the_stream_is_an_error() {
    let events = decode_every_split(
        &adapter(),
        b"data: {\"id\":\"e1\",\"message\":\"too many tokens: max tokens must be less than or equal to 4000\"}\n\n",
    );
    assert_eq!(
        events,
        vec![Event::Error(
            "upstream error: too many tokens: max tokens must be less than or equal to 4000".into()
        )]
    );
}

#[test]
fn garbage_data_is_an_error_not_a_panic() {
    let events = decode_every_split(&adapter(), b"event: content-delta\ndata: {not json\n\n");
    assert!(matches!(events.as_slice(), [Event::Error(_)]));
    let events = decode_every_split(
        &adapter(),
        b"data: {\"type\":\"content-delta\",\"delta\":{\"message\":{\"content\":[\"x\"]}}}\n\ndata: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":5,\"usage\":{\"tokens\":{\"input_tokens\":-3,\"output_tokens\":\"x\"},\"billed_units\":{\"input_tokens\":4.0}}}}\n\n",
    );
    assert_eq!(
        events,
        vec![
            Event::Finish(FinishReason::Stop),
            Event::Usage(Usage {
                input_tokens: Some(4),
                output_tokens: None,
                reasoning_tokens: None
            })
        ]
    );
}

#[test]
fn request_has_system_history_images_and_options() {
    let mut image_turn = Turn::user("what is this?");
    image_turn.images.push(Image::Inline {
        mime: "image/png".into(),
        base64: "AAAA".into(),
    });
    let conversation = Conversation {
        tools: Vec::new(),
        system: Some("be brief".into()),
        turns: vec![Turn::user("hi"), Turn::assistant("hello"), image_turn],
    };
    let generation = Generation {
        model: "command-a-vision-07-2025".into(),
        temperature: Some(0.5),
        max_tokens: Some(64),
        extra_headers: vec![("x-client-name".into(), "deepchat-proxy".into())],
        ..Default::default()
    };
    let request = adapter()
        .build_request(&conversation, &generation, Some("co-test"))
        .expect("request");
    assert_eq!(request.url, "http://127.0.0.1:9/v2/chat");
    assert_eq!(
        request.headers,
        vec![
            ("authorization".to_owned(), "Bearer co-test".to_owned()),
            ("x-client-name".to_owned(), "deepchat-proxy".to_owned()),
        ]
    );
    assert_eq!(
        request.body,
        json!({
            "model": "command-a-vision-07-2025",
            "stream": true,
            "temperature": 0.5,
            "max_tokens": 64,
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
                ]}
            ]
        })
    );
}

#[test]
fn minimal_keyless_request() {
    let conversation = Conversation {
        turns: vec![Turn::user("hi")],
        ..Default::default()
    };
    let generation = Generation {
        model: "command-a-03-2025".into(),
        ..Default::default()
    };
    let request = Cohere::default()
        .build_request(&conversation, &generation, None)
        .expect("request");
    assert_eq!(DEFAULT_BASE_URL, "https://api.cohere.com");
    assert_eq!(request.url, "https://api.cohere.com/v2/chat");
    assert!(request.headers.is_empty());
    assert_eq!(
        request.body,
        json!({
            "model": "command-a-03-2025",
            "stream": true,
            "messages": [{"role": "user", "content": "hi"}]
        })
    );
    assert_eq!(
        Cohere::default().build_request(&Conversation::default(), &generation, None),
        Err(AdapterError::Empty)
    );
}

#[test]
fn http_error_body_gives_coheres_message() {
    assert_eq!(
        adapter().error_message(401, r#"{"id":"b1c2","message":"invalid api token"}"#),
        "cohere upstream rejected the API key (HTTP 401): invalid api token"
    );
}

// ---- Tool calling -------------------------------------------------------------------------

use deepchat_adapters::{Carried, ToolRound, ToolSpec};

/// A finished turn with two rounds (the first carrying Cohere's plan and another adapter's
/// item, the second from a fallback that wrote text instead), a user turn, and the loop's turn
/// in progress.
fn tool_conversation() -> Conversation {
    let mut done = Turn::assistant("ping, and 5");
    done.tool_rounds = vec![
        ToolRound {
            text: String::new(),
            carried: vec![
                Carried {
                    adapter: "cohere".into(),
                    item: json!({"tool_plan": "I will echo the message."}),
                },
                Carried {
                    adapter: "anthropic".into(),
                    item: json!({"type": "thinking", "thinking": "not for cohere"}),
                },
            ],
            calls: vec![call("echo_1", "echo", r#"{"message":"ping"}"#)],
            results: vec![result_by_id("echo_1", "echo", "ping", false)],
        },
        ToolRound {
            text: "Now the sum.".into(),
            carried: Vec::new(),
            calls: vec![call("get-sum_2", "get-sum", r#"{"a":2,"b":"#)],
            results: vec![result_by_id(
                "get-sum_2",
                "get-sum",
                "invalid arguments",
                true,
            )],
        },
    ];
    let mut in_progress = Turn::assistant("");
    in_progress.tool_rounds = vec![ToolRound {
        text: String::new(),
        carried: Vec::new(),
        calls: vec![call("echo_3", "echo", r#"{"message":"again"}"#)],
        results: vec![result_by_id("echo_3", "echo", "again", false)],
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
        model: "command-a-03-2025".into(),
        ..Default::default()
    }
}

#[test]
fn tool_call_fixture_carries_the_plan_and_gives_both_calls() {
    let events = decode_every_split(&adapter(), &fixture("cohere", "tool_call.sse"));
    assert_eq!(
        events,
        vec![
            Event::Carried(json!({"tool_plan": "I will echo the message and add the numbers."})),
            Event::ToolCall(call("echo_k3fd9q2n1x7a", "echo", r#"{"message":"ping"}"#)),
            Event::ToolCall(call("get-sum_8wz2c5r0p6tb", "get-sum", r#"{"a":2,"b":3}"#)),
            Event::Finish(FinishReason::ToolUse),
            Event::Usage(Usage {
                input_tokens: Some(1021),
                output_tokens: Some(74),
                reasoning_tokens: None
            }),
        ]
    );
}

#[test]
fn tool_stream_cut_mid_call_is_an_error_without_a_call() {
    let text = String::from_utf8(fixture("cohere", "tool_call.sse")).expect("utf-8");
    let cut = text.find("\"b\\\":3}").expect("second call's last piece");
    let events = decode_every_split(&adapter(), &text.as_bytes()[..cut]);
    assert_eq!(
        events,
        vec![Event::Error(
            "the upstream stream ended before the reply was complete".into()
        )]
    );
}

#[test]
fn cohere_arguments_over_one_mib_are_an_error() {
    let piece = "x".repeat(600 * 1024);
    let mut body = String::from(
        "event: tool-call-start\ndata: {\"type\":\"tool-call-start\",\"index\":0,\"delta\":{\"message\":{\"tool_calls\":{\"id\":\"e\",\"type\":\"function\",\"function\":{\"name\":\"echo\",\"arguments\":\"\"}}}}}\n\n",
    );
    for _ in 0..2 {
        body.push_str(&format!(
            "event: tool-call-delta\ndata: {{\"type\":\"tool-call-delta\",\"index\":0,\"delta\":{{\"message\":{{\"tool_calls\":{{\"function\":{{\"arguments\":\"{piece}\"}}}}}}}}}}\n\n"
        ));
    }
    body.push_str("event: message-end\ndata: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"TOOL_CALL\"}}\n\n");
    assert_eq!(
        decode_chunks(&adapter(), vec![body.into_bytes()]),
        vec![Event::Error("tool call arguments exceed 1 MiB".into())]
    );
}

#[test]
fn tools_and_rounds_are_rendered_for_cohere_v2() {
    let request = adapter()
        .build_request(&tool_conversation(), &tool_generation(), None)
        .expect("request");
    assert_eq!(
        request.body,
        json!({
            "model": "command-a-03-2025",
            "stream": true,
            "tools": [{"type": "function", "function": {
                "name": "echo",
                "description": "Echoes the message",
                "parameters": {"type": "object", "properties": {"message": {"type": "string"}}}
            }}],
            "messages": [
                {"role": "user", "content": "echo ping, add 2 and 3"},
                {"role": "assistant", "tool_plan": "I will echo the message.", "tool_calls": [
                    {"id": "echo_1", "type": "function", "function": {"name": "echo", "arguments": "{\"message\":\"ping\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "echo_1", "content": "ping"},
                {"role": "assistant", "tool_plan": "Now the sum.", "tool_calls": [
                    {"id": "get-sum_2", "type": "function", "function": {"name": "get-sum", "arguments": "{\"a\":2,\"b\":"}}
                ]},
                {"role": "tool", "tool_call_id": "get-sum_2", "content": "invalid arguments"},
                {"role": "assistant", "content": "ping, and 5"},
                {"role": "user", "content": "again"},
                {"role": "assistant", "tool_calls": [
                    {"id": "echo_3", "type": "function", "function": {"name": "echo", "arguments": "{\"message\":\"again\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "echo_3", "content": "again"}
            ]
        })
    );
}

#[test]
fn without_tools_cohere_gets_no_rounds() {
    let mut conversation = tool_conversation();
    conversation.tools.clear();
    let request = adapter()
        .build_request(&conversation, &tool_generation(), None)
        .expect("request");
    assert_eq!(
        request.body,
        json!({
            "model": "command-a-03-2025",
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
