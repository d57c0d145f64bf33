mod support;

use deepchat_adapters::openai_responses::{OpenAiResponses, DEFAULT_BASE_URL};
use deepchat_adapters::{
    Adapter, AdapterError, Carried, Conversation, Event, FinishReason, Generation, Image, ToolCall,
    ToolRound, ToolSpec, Turn, Usage,
};
use serde_json::json;
use support::{call, decode_chunks, decode_every_split, fixture, result, text_of};

const PROVIDER: &str = "openai-responses";

fn adapter() -> OpenAiResponses {
    OpenAiResponses::new("http://127.0.0.1:9/v1/")
}

#[test]
fn normal_reply_with_usage() {
    let events = decode_every_split(&adapter(), &fixture(PROVIDER, "normal.sse"));
    assert_eq!(
        events,
        vec![
            Event::TextDelta("Héllo".into()),
            Event::TextDelta("! Ça va très bien, ".into()),
            Event::TextDelta("merci — ".into()),
            Event::TextDelta("日本語もOK 👋".into()),
            Event::TextDelta("\n".into()),
            Event::Usage(Usage {
                input_tokens: Some(21),
                output_tokens: Some(14),
                reasoning_tokens: Some(0)
            }),
            Event::Finish(FinishReason::Stop),
        ]
    );
}

#[test]
fn error_event_midstream_after_text() {
    let events = decode_every_split(&adapter(), &fixture(PROVIDER, "error_midstream.sse"));
    assert_eq!(text_of(&events), "Partial answer");
    assert_eq!(
        events.last(),
        Some(&Event::Error(
            "upstream error: The server had an error while processing your request. Sorry about that!"
                .into()
        ))
    );
    assert!(!events.iter().any(|e| matches!(e, Event::Finish(_))));
}

#[test]
fn failed_response_reports_its_error() {
    let events = decode_every_split(&adapter(), &fixture(PROVIDER, "failed.sse"));
    assert_eq!(
        events,
        vec![
            Event::TextDelta("Thinking about ".into()),
            Event::Error(
                "upstream error: An error occurred while processing your request. You can retry your request."
                    .into()
            ),
        ]
    );
}

#[test]
fn refusal_is_shown_as_text() {
    let events = decode_every_split(&adapter(), &fixture(PROVIDER, "refusal.sse"));
    assert_eq!(text_of(&events), "I'm sorry, but I can't help with that.");
    assert_eq!(events.last(), Some(&Event::Finish(FinishReason::Stop)));
}

#[test]
fn max_output_tokens_is_a_length_finish() {
    let events = decode_every_split(&adapter(), &fixture(PROVIDER, "length.sse"));
    assert_eq!(text_of(&events), "Once upon a time");
    assert_eq!(
        events[events.len() - 2..],
        [
            Event::Usage(Usage {
                input_tokens: Some(12),
                output_tokens: Some(16),
                reasoning_tokens: Some(0)
            }),
            Event::Finish(FinishReason::Length),
        ]
    );
}

#[test]
fn content_filter_incomplete_is_reported() {
    let events = decode_every_split(&adapter(), &fixture(PROVIDER, "content_filter.sse"));
    assert_eq!(text_of(&events), "Here is how");
    assert_eq!(
        events.last(),
        Some(&Event::Finish(FinishReason::ContentFilter))
    );
}

#[test]
fn stream_without_terminal_event_is_an_error() {
    let events = decode_every_split(&adapter(), &fixture(PROVIDER, "truncated.sse"));
    assert_eq!(text_of(&events), "Cut shørt 🚧");
    assert_eq!(
        events.last(),
        Some(&Event::Error(
            "the upstream stream ended before the reply was complete".into()
        ))
    );
}

#[test]
fn garbage_data_is_an_error_not_a_panic() {
    let events = decode_every_split(
        &adapter(),
        b"event: response.output_text.delta\ndata: {not json\n\n",
    );
    assert!(matches!(events.as_slice(), [Event::Error(_)]));
}

#[test]
fn events_without_an_sse_name_are_recognized_by_type() {
    let body = concat!(
        "data: {\"type\":\"response.output_text.delta\",\"delta\":\"hi\"}\n\n",
        "data: {\"type\":\"response.completed\",\"response\":{\"status\":\"completed\"}}\n\n",
    );
    let events = decode_every_split(&adapter(), body.as_bytes());
    assert_eq!(
        events,
        vec![
            Event::TextDelta("hi".into()),
            Event::Finish(FinishReason::Stop)
        ]
    );
}

#[test]
fn nothing_after_the_terminal_event_counts() {
    let body = concat!(
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{}}\n\n",
        "event: response.output_text.delta\ndata: {\"delta\":\"late\"}\n\n",
        "event: error\ndata: {\"message\":\"late\"}\n\n",
    );
    let events = decode_every_split(&adapter(), body.as_bytes());
    assert_eq!(events, vec![Event::Finish(FinishReason::Stop)]);
}

#[test]
fn odd_shapes_do_not_panic() {
    for body in [
        "event: response.output_text.delta\ndata: {\"delta\":42}\n\n",
        "event: response.failed\ndata: {\"response\":null}\n\n",
        "event: response.incomplete\ndata: []\n\n",
        "event: error\ndata: \"boom\"\n\n",
        "event: response.completed\ndata: {\"response\":{\"usage\":[1]}}\n\n",
        "data: [DONE]\n\n",
    ] {
        decode_every_split(&adapter(), body.as_bytes());
    }
    let events = decode_every_split(
        &adapter(),
        b"event: response.incomplete\ndata: {\"response\":{\"incomplete_details\":null}}\n\n",
    );
    assert_eq!(
        events,
        vec![Event::Finish(FinishReason::Other("incomplete".into()))]
    );
}

#[test]
fn request_has_instructions_history_images_and_options() {
    let mut image_turn = Turn::user("what is this?");
    image_turn.images.push(Image::Inline {
        mime: "image/png".into(),
        base64: "AAAA".into(),
    });
    image_turn
        .images
        .push(Image::Url("https://example.com/cat.jpg".into()));
    let conversation = Conversation {
        tools: Vec::new(),
        system: Some("be brief".into()),
        turns: vec![Turn::user("hi"), Turn::assistant("héllo 👋"), image_turn],
    };
    let generation = Generation {
        model: "gpt-4.1-mini".into(),
        temperature: Some(0.5),
        max_tokens: Some(64),
        extra_headers: vec![("x-team".into(), "blue".into())],
        ..Default::default()
    };
    let request = adapter()
        .build_request(&conversation, &generation, Some("sk-test"))
        .expect("request");
    assert_eq!(request.url, "http://127.0.0.1:9/v1/responses");
    assert_eq!(
        request.headers,
        vec![
            ("authorization".to_owned(), "Bearer sk-test".to_owned()),
            ("x-team".to_owned(), "blue".to_owned())
        ]
    );
    assert_eq!(
        request.body,
        json!({
            "model": "gpt-4.1-mini",
            "stream": true,
            "instructions": "be brief",
            "temperature": 0.5,
            "max_output_tokens": 64,
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
                {"role": "assistant", "content": [{"type": "output_text", "text": "héllo 👋"}]},
                {"role": "user", "content": [
                    {"type": "input_text", "text": "what is this?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
                    {"type": "input_image", "image_url": "https://example.com/cat.jpg"}
                ]}
            ]
        })
    );
}

#[test]
fn minimal_request_omits_unset_options_and_auth() {
    let mut image_only = Turn::user("");
    image_only
        .images
        .push(Image::Url("https://example.com/a.png".into()));
    let conversation = Conversation {
        turns: vec![image_only],
        ..Default::default()
    };
    let generation = Generation {
        model: "m".into(),
        ..Default::default()
    };
    let request = OpenAiResponses::default()
        .build_request(&conversation, &generation, None)
        .expect("request");
    assert_eq!(request.url, format!("{DEFAULT_BASE_URL}/responses"));
    assert!(request.headers.is_empty());
    assert_eq!(
        request.body,
        json!({
            "model": "m",
            "stream": true,
            "input": [
                {"role": "user", "content": [
                    {"type": "input_image", "image_url": "https://example.com/a.png"}
                ]}
            ]
        })
    );
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

// ---- Tool calling ----

fn generation() -> Generation {
    Generation {
        model: "gpt-4.1-mini".into(),
        ..Default::default()
    }
}

fn fixture_calls() -> Vec<Event> {
    vec![
        Event::ToolCall(ToolCall {
            id: "call_Xk2pQ9wLm4nR7sT1vY3zA5bC".into(),
            name: "echo".into(),
            arguments: r#"{"message":"ping"}"#.into(),
            signature: None,
        }),
        Event::ToolCall(ToolCall {
            id: "call_Hj8dF3gK6lP0qW2eR4tY7uI9".into(),
            name: "get-sum".into(),
            arguments: r#"{"a":2,"b":3}"#.into(),
            signature: None,
        }),
    ]
}

#[test]
fn function_calls_are_assembled_and_the_completed_response_stops_for_tool_use() {
    let events = decode_every_split(&adapter(), &fixture(PROVIDER, "tool_call.sse"));
    let mut expected = vec![
        Event::TextDelta("Let me ".into()),
        Event::TextDelta("check.".into()),
    ];
    expected.extend(fixture_calls());
    expected.extend([
        Event::Usage(Usage {
            input_tokens: Some(86),
            output_tokens: Some(58),
            reasoning_tokens: Some(0),
        }),
        Event::Finish(FinishReason::ToolUse),
    ]);
    assert_eq!(events, expected);
}

#[test]
fn a_reasoning_item_before_calls_is_carried_verbatim() {
    let events = decode_every_split(&adapter(), &fixture(PROVIDER, "tool_call_thinking.sse"));
    let mut expected = vec![
        Event::Reasoning("**Calling both tools**\n\n".into()),
        Event::Reasoning("Echo first, then the sum.".into()),
        Event::Carried(json!({
            "id": "rs_68c1f0a2f5061728394a5b6c7d8e9f00",
            "type": "reasoning",
            "encrypted_content": "gAAAAABowPCi3kP9xQ2vZ7mL1nR8tY4uW6eA0sD5fG3hJ7kL9zX2cV4bN6mQ8wE1rT5yU3iO7pA9sD2fG4hJ6kL8zX0cV",
            "summary": [{"type": "summary_text", "text": "**Calling both tools**\n\nEcho first, then the sum."}],
        })),
    ];
    expected.extend(fixture_calls());
    expected.extend([
        Event::Usage(Usage {
            input_tokens: Some(95),
            output_tokens: Some(210),
            reasoning_tokens: Some(128),
        }),
        Event::Finish(FinishReason::ToolUse),
    ]);
    assert_eq!(events, expected);
}

#[test]
fn a_call_only_listed_in_the_completed_output_is_still_emitted_once() {
    let body = concat!(
        "event: response.output_item.added\n",
        "data: {\"type\":\"response.output_item.added\",\"output_index\":0,\"item\":{\"id\":\"fc_1\",\"type\":\"function_call\",\"call_id\":\"call_a\",\"name\":\"now\",\"arguments\":\"\"}}\n\n",
        "event: response.completed\n",
        "data: {\"type\":\"response.completed\",\"response\":{\"status\":\"completed\",\"output\":[",
        "{\"id\":\"fc_1\",\"type\":\"function_call\",\"call_id\":\"call_a\",\"name\":\"now\",\"arguments\":\"\"},",
        "{\"id\":\"fc_2\",\"type\":\"function_call\",\"name\":\"later\",\"arguments\":\"{\\\"x\\\":1}\"}]}}\n\n",
    );
    let events = decode_every_split(&adapter(), body.as_bytes());
    assert_eq!(
        events,
        vec![
            Event::ToolCall(ToolCall {
                id: "call_a".into(),
                name: "now".into(),
                arguments: "{}".into(),
                signature: None,
            }),
            Event::ToolCall(ToolCall {
                id: "call_1".into(),
                name: "later".into(),
                arguments: r#"{"x":1}"#.into(),
                signature: None,
            }),
            Event::Finish(FinishReason::ToolUse),
        ]
    );
}

#[test]
fn a_stream_cut_inside_a_call_is_the_truncation_error_and_no_call() {
    let body = fixture(PROVIDER, "tool_call.sse");
    let text = String::from_utf8(body.clone()).expect("utf-8");
    let start = text.find("\"type\":\"function_call\"").expect("a call");
    let first_done = text
        .find("event: response.output_item.done\ndata: {\"type\":\"response.output_item.done\",\"sequence_number\":13,")
        .expect("the echo call ends");
    for len in start..first_done {
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
    let mut body = String::from("data: {\"type\":\"response.output_item.added\",\"output_index\":0,\"item\":{\"id\":\"fc_big\",\"type\":\"function_call\",\"call_id\":\"call_big\",\"name\":\"echo\",\"arguments\":\"\"}}\n\n");
    for _ in 0..17 {
        body.push_str(&format!("data: {{\"type\":\"response.function_call_arguments.delta\",\"item_id\":\"fc_big\",\"output_index\":0,\"delta\":\"{piece}\"}}\n\n"));
    }
    body.push_str("data: {\"type\":\"response.output_item.done\",\"output_index\":0,\"item\":{\"id\":\"fc_big\",\"type\":\"function_call\",\"call_id\":\"call_big\",\"name\":\"echo\"}}\n\n");
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

fn reasoning_item() -> serde_json::Value {
    json!({"id": "rs_1", "type": "reasoning", "summary": [], "encrypted_content": "gAAA"})
}

/// Round 1: a reasoning item (and another adapter's item, never sent here), text, two calls,
/// one failed; round 2: a call whose malformed arguments go back as the model wrote them.
fn two_rounds() -> Vec<ToolRound> {
    let echo = call("call_1", "echo", r#"{"message":"ping"}"#);
    let sum = call("call_2", "get-sum", r#"{"a":2,"b":3}"#);
    let broken = call("call_3", "echo", "{\"message\":");
    vec![
        ToolRound {
            text: "Let me check.".into(),
            carried: vec![
                Carried {
                    adapter: "openai-responses".into(),
                    item: reasoning_item(),
                },
                Carried {
                    adapter: "anthropic".into(),
                    item: json!({"type": "thinking", "thinking": "hmm", "signature": "s"}),
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

fn expected_round_items() -> Vec<serde_json::Value> {
    vec![
        reasoning_item(),
        json!({"role": "assistant", "content": [{"type": "output_text", "text": "Let me check."}]}),
        json!({"type": "function_call", "call_id": "call_1", "name": "echo", "arguments": "{\"message\":\"ping\"}"}),
        json!({"type": "function_call", "call_id": "call_2", "name": "get-sum", "arguments": "{\"a\":2,\"b\":3}"}),
        json!({"type": "function_call_output", "call_id": "call_1", "output": "ping"}),
        json!({"type": "function_call_output", "call_id": "call_2", "output": "no such tool"}),
        json!({"type": "function_call", "call_id": "call_3", "name": "echo", "arguments": "{\"message\":"}),
        json!({"type": "function_call_output", "call_id": "call_3", "output": "invalid arguments"}),
    ]
}

fn user(text: &str) -> serde_json::Value {
    json!({"role": "user", "content": [{"type": "input_text", "text": text}]})
}

#[test]
fn request_offers_tools_and_replays_rounds_as_items_before_the_final_text() {
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
    let mut input = vec![user("echo ping")];
    input.extend(expected_round_items());
    input.push(
        json!({"role": "assistant", "content": [{"type": "output_text", "text": "Echoed: ping"}]}),
    );
    input.push(user("thanks"));
    assert_eq!(
        request.body,
        json!({
            "model": "gpt-4.1-mini",
            "stream": true,
            "input": input,
            "tools": [{
                "type": "function",
                "name": "echo",
                "description": "Echoes a message",
                "parameters": {"type": "object", "properties": {"message": {"type": "string"}}},
                "strict": false,
            }],
        })
    );
}

#[test]
fn the_loops_turn_in_progress_ends_with_its_outputs_and_no_empty_message() {
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
    let mut input = vec![user("echo ping")];
    input.extend(expected_round_items());
    assert_eq!(request.body["input"], json!(input));
}

#[test]
fn without_tools_rounds_are_left_out_and_the_request_is_unchanged() {
    let mut answered = Turn::assistant("Echoed: ping");
    answered.tool_rounds = two_rounds();
    let with_rounds = Conversation {
        turns: vec![Turn::user("echo ping"), answered, Turn::user("again")],
        ..Default::default()
    };
    let plain = Conversation {
        turns: vec![
            Turn::user("echo ping"),
            Turn::assistant("Echoed: ping"),
            Turn::user("again"),
        ],
        ..Default::default()
    };
    let request = |c: &Conversation| {
        adapter()
            .build_request(c, &generation(), None)
            .expect("request")
    };
    assert_eq!(request(&with_rounds), request(&plain));
    assert!(request(&plain).body.get("tools").is_none());
}

#[test]
fn a_broken_upstream_cannot_open_calls_without_end() {
    let body: String = (0..100)
        .map(|i| format!("data: {{\"type\":\"response.output_item.added\",\"output_index\":{i},\"item\":{{\"id\":\"fc_{i}\",\"type\":\"function_call\",\"call_id\":\"c{i}\",\"name\":\"echo\",\"arguments\":\"\"}}}}\n\n"))
        .collect();
    let events = decode_chunks(&adapter(), vec![body.into_bytes()]);
    assert_eq!(
        events,
        vec![Event::Error(
            "upstream opened too many function calls at once".into()
        )]
    );
}
