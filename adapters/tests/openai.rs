mod support;

use deepchat_adapters::openai::OpenAiChat;
use deepchat_adapters::{
    Adapter, Conversation, Event, FinishReason, Generation, Image, Turn, Usage,
};
use serde_json::json;
use support::{call, decode_every_split, fixture, result_by_id, text_of};

fn adapter() -> OpenAiChat {
    OpenAiChat::new("http://127.0.0.1:9/v1/")
}

#[test]
fn normal_reply_with_usage() {
    let events = decode_every_split(&adapter(), &fixture("openai", "normal.sse"));
    assert_eq!(
        events,
        vec![
            Event::TextDelta("Héllo".into()),
            Event::TextDelta(", \"world\" 👋\n".into()),
            Event::Finish(FinishReason::Stop),
            Event::Usage(Usage {
                input_tokens: Some(9),
                output_tokens: Some(4),
                reasoning_tokens: None
            }),
        ]
    );
}

#[test]
fn error_midstream_after_text() {
    let events = decode_every_split(&adapter(), &fixture("openai", "error_midstream.sse"));
    assert_eq!(text_of(&events), "Partial");
    assert_eq!(
        events.last(),
        Some(&Event::Error(
            "upstream error: The server had an error while processing your request.".into()
        ))
    );
}

#[test]
fn length_finish_is_reported() {
    let events = decode_every_split(&adapter(), &fixture("openai", "length.sse"));
    assert_eq!(text_of(&events), "Once upon");
    assert!(events.contains(&Event::Finish(FinishReason::Length)));
}

#[test]
fn stream_without_done_is_an_error() {
    let events = decode_every_split(&adapter(), &fixture("openai", "truncated.sse"));
    assert_eq!(text_of(&events), "Cut");
    assert!(matches!(events.last(), Some(Event::Error(_))));
}

#[test]
fn refusal_is_shown_as_text() {
    let events = decode_every_split(&adapter(), &fixture("openai", "refusal.sse"));
    assert_eq!(text_of(&events), "I can't help with that.");
}

#[test]
fn garbage_data_is_an_error_not_a_panic() {
    let events = decode_every_split(&adapter(), b"data: {not json\n\n");
    assert!(matches!(events.as_slice(), [Event::Error(_)]));
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
        model: "gpt-4o-mini".into(),
        temperature: Some(0.5),
        max_tokens: Some(64),
        extra_headers: vec![("x-team".into(), "blue".into())],
        ..Default::default()
    };
    let request = adapter()
        .build_request(&conversation, &generation, Some("sk-test"))
        .expect("request");
    assert_eq!(request.url, "http://127.0.0.1:9/v1/chat/completions");
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
            "model": "gpt-4o-mini",
            "stream": true,
            "stream_options": {"include_usage": true},
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
fn keyless_servers_get_no_authorization_header() {
    let conversation = Conversation {
        turns: vec![Turn::user("hi")],
        ..Default::default()
    };
    let generation = Generation {
        model: "m".into(),
        ..Default::default()
    };
    let request = adapter()
        .build_request(&conversation, &generation, None)
        .expect("request");
    assert!(request.headers.is_empty());
}

#[test]
fn unusual_chunk_shapes_take_the_general_path_without_errors() {
    // Non-string content, null usage and a float token count are not what the typed fast path
    // expects; they must decode exactly as before (ignored, no error).
    let body = b"data: {\"choices\":[{\"delta\":{\"content\":5}}]}\n\n\
data: {\"choices\":[{\"delta\":{\"content\":\"ok \\u00e9\\n\"}}],\"usage\":null}\n\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1.5,\"completion_tokens\":2}}\n\n\
data: [DONE]\n\n";
    let events = decode_every_split(&adapter(), body);
    assert_eq!(text_of(&events), "ok é\n");
    assert!(
        !events.iter().any(|e| matches!(e, Event::Error(_))),
        "{events:?}"
    );
    assert!(events.contains(&Event::Usage(Usage {
        input_tokens: None,
        output_tokens: Some(2),
        reasoning_tokens: None
    })));
}

#[test]
fn usage_is_asked_for_except_from_hosts_that_refuse_unknown_fields() {
    let conversation = Conversation {
        tools: Vec::new(),
        system: None,
        turns: vec![Turn::user("hi")],
    };
    let generation = Generation {
        model: "m".into(),
        ..Default::default()
    };
    let body = |base: &str| {
        OpenAiChat::new(base)
            .build_request(&conversation, &generation, None)
            .expect("request")
            .body
    };
    // OpenAI, a compatible host and a server no preset knows are asked.
    for base in [
        "https://api.openai.com/v1",
        "https://api.groq.com/openai/v1",
        "http://10.0.0.5:8000/v1",
    ] {
        assert_eq!(
            body(base)["stream_options"]["include_usage"],
            true,
            "{base}"
        );
    }
    // Mistral sends usage unasked and answers 422 to fields it does not know.
    assert!(body("https://api.mistral.ai/v1")
        .get("stream_options")
        .is_none());
}

// ---- Tool calling -------------------------------------------------------------------------

use deepchat_adapters::{Carried, ToolRound, ToolSpec};

fn tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "echo".into(),
            description: "Echoes the message".into(),
            parameters: json!({"type": "object", "properties": {"message": {"type": "string"}}}),
        },
        ToolSpec {
            name: "get-sum".into(),
            description: "Adds a and b".into(),
            parameters: json!({"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}),
        },
    ]
}

/// A finished turn with two rounds (the first carrying another adapter's item, which OpenAI must
/// not receive), then a user turn and the loop's turn in progress.
fn tool_conversation() -> Conversation {
    let mut done = Turn::assistant("ping, and 5");
    done.tool_rounds = vec![
        ToolRound {
            text: "Let me check.".into(),
            carried: vec![Carried {
                adapter: "anthropic".into(),
                item: json!({"type": "thinking", "thinking": "hm", "signature": "sig"}),
            }],
            calls: vec![call("call_1", "echo", r#"{"message":"ping"}"#)],
            results: vec![result_by_id("call_1", "echo", "ping", false)],
        },
        ToolRound {
            text: String::new(),
            carried: Vec::new(),
            calls: vec![call("call_2", "get-sum", r#"{"a":2,"b":"#)],
            results: vec![result_by_id("call_2", "get-sum", "invalid arguments", true)],
        },
    ];
    let mut in_progress = Turn::assistant("");
    in_progress.tool_rounds = vec![ToolRound {
        text: String::new(),
        carried: Vec::new(),
        calls: vec![
            call("call_3", "echo", r#"{"message":"again"}"#),
            call("call_4", "get-sum", r#"{"a":1,"b":1}"#),
        ],
        results: vec![
            result_by_id("call_3", "echo", "again", false),
            result_by_id("call_4", "get-sum", "2", false),
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
        tools: tools(),
    }
}

fn generation() -> Generation {
    Generation {
        model: "gpt-4o-mini".into(),
        ..Default::default()
    }
}

#[test]
fn tool_call_fixture_gives_both_calls_before_the_tool_use_finish() {
    let events = decode_every_split(&adapter(), &fixture("openai", "tool_call.sse"));
    assert_eq!(
        events,
        vec![
            Event::TextDelta("Let me check.".into()),
            Event::ToolCall(call(
                "call_Qm3vV1xk9PZb2TLa7fWcR0sd",
                "echo",
                r#"{"message":"ping"}"#
            )),
            Event::ToolCall(call(
                "call_7HnYc2EwLr5uJd8KsB4oTf1g",
                "get-sum",
                r#"{"a":2,"b":3}"#
            )),
            Event::Finish(FinishReason::ToolUse),
            Event::Usage(Usage {
                input_tokens: Some(112),
                output_tokens: Some(41),
                reasoning_tokens: Some(0)
            }),
        ]
    );
}

#[test]
fn interleaved_repeated_and_whole_calls_from_compatible_servers() {
    // Interleaved by index, id and name repeated in every piece (vLLM), a whole call in one
    // chunk with no id (llama.cpp-style), and a plain `stop` after calls.
    let body = br#"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","type":"function","function":{"name":"echo","arguments":"{\"message\""}},{"index":1,"id":"b","type":"function","function":{"name":"get-sum","arguments":"{\"a\":2,"}}]}}]}

data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"b","type":"function","function":{"name":"get-sum","arguments":"\"b\":3}"}},{"index":0,"id":"a","type":"function","function":{"name":"echo","arguments":":\"ping\"}"}}]}}]}

data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":2,"function":{"name":"echo","arguments":""}}]},"finish_reason":"stop"}]}

data: [DONE]

"#;
    let events = decode_every_split(&adapter(), body);
    assert_eq!(
        events,
        vec![
            Event::ToolCall(call("a", "echo", r#"{"message":"ping"}"#)),
            Event::ToolCall(call("b", "get-sum", r#"{"a":2,"b":3}"#)),
            Event::ToolCall(call("call_2", "echo", "{}")),
            Event::Finish(FinishReason::ToolUse),
        ]
    );
}

#[test]
fn unusual_call_shapes_take_the_general_path() {
    // Arguments sent as an object and pieces without an index: the typed path refuses them.
    let body = br#"data: {"choices":[{"delta":{"content":7,"tool_calls":[{"id":"x","function":{"name":"echo","arguments":{"message":"ping"}}}]}}]}

data: {"choices":[{"delta":{"tool_calls":[{"id":"y","function":{"name":"get-sum","arguments":"{\"a\":2,"}}]}}]}

data: {"choices":[{"delta":{"content":7,"tool_calls":[{"function":{"arguments":"\"b\":3}"}}]},"finish_reason":"tool_calls"}]}

data: [DONE]

"#;
    let events = decode_every_split(&adapter(), body);
    assert_eq!(
        events,
        vec![
            Event::ToolCall(call("x", "echo", r#"{"message":"ping"}"#)),
            Event::ToolCall(call("y", "get-sum", r#"{"a":2,"b":3}"#)),
            Event::Finish(FinishReason::ToolUse),
        ]
    );
}

#[test]
fn stream_cut_mid_call_is_an_error_without_a_call() {
    let body = fixture("openai", "tool_call.sse");
    let text = String::from_utf8(body).expect("utf-8");
    let cut = text.find("\"b\\\":3}").expect("second call's last piece");
    let events = decode_every_split(&adapter(), &text.as_bytes()[..cut]);
    assert_eq!(
        events,
        vec![
            Event::TextDelta("Let me check.".into()),
            Event::Error("the upstream stream ended before the reply was complete".into()),
        ]
    );
}

#[test]
fn length_finish_drops_half_made_calls() {
    let body = br#"data: {"choices":[{"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"echo","arguments":"{\"mess"}}]}}]}

data: {"choices":[{"delta":{},"finish_reason":"length"}]}

data: [DONE]

"#;
    assert_eq!(
        decode_every_split(&adapter(), body),
        vec![Event::Finish(FinishReason::Length)]
    );
}

#[test]
fn arguments_over_one_mib_are_an_error_and_stop_the_reply() {
    let piece = "x".repeat(300 * 1024);
    let mut body = String::from(
        "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"a\",\"function\":{\"name\":\"echo\",\"arguments\":\"\"}}]}}]}\n\n",
    );
    for _ in 0..4 {
        body.push_str(&format!(
            "data: {{\"choices\":[{{\"delta\":{{\"tool_calls\":[{{\"index\":0,\"function\":{{\"arguments\":\"{piece}\"}}}}]}}}}]}}\n\n"
        ));
    }
    body.push_str(
        "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n",
    );
    let events = support::decode_chunks(&adapter(), vec![body.into_bytes()]);
    assert_eq!(
        events,
        vec![Event::Error("tool call arguments exceed 1 MiB".into())]
    );
}

#[test]
fn tools_and_rounds_are_rendered_as_openai_documents() {
    let request = adapter()
        .build_request(&tool_conversation(), &generation(), None)
        .expect("request");
    assert_eq!(
        request.body,
        json!({
            "model": "gpt-4o-mini",
            "stream": true,
            "stream_options": {"include_usage": true},
            "tools": [
                {"type": "function", "function": {
                    "name": "echo",
                    "description": "Echoes the message",
                    "parameters": {"type": "object", "properties": {"message": {"type": "string"}}}
                }},
                {"type": "function", "function": {
                    "name": "get-sum",
                    "description": "Adds a and b",
                    "parameters": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}
                }}
            ],
            "messages": [
                {"role": "user", "content": "echo ping, add 2 and 3"},
                {"role": "assistant", "content": "Let me check.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "echo", "arguments": "{\"message\":\"ping\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "ping"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_2", "type": "function", "function": {"name": "get-sum", "arguments": "{\"a\":2,\"b\":"}}
                ]},
                {"role": "tool", "tool_call_id": "call_2", "content": "invalid arguments"},
                {"role": "assistant", "content": "ping, and 5"},
                {"role": "user", "content": "again"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_3", "type": "function", "function": {"name": "echo", "arguments": "{\"message\":\"again\"}"}},
                    {"id": "call_4", "type": "function", "function": {"name": "get-sum", "arguments": "{\"a\":1,\"b\":1}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_3", "content": "again"},
                {"role": "tool", "tool_call_id": "call_4", "content": "2"}
            ]
        })
    );
}

#[test]
fn without_tools_the_rounds_are_not_sent() {
    let mut conversation = tool_conversation();
    conversation.tools.clear();
    let request = adapter()
        .build_request(&conversation, &generation(), None)
        .expect("request");
    assert_eq!(
        request.body,
        json!({
            "model": "gpt-4o-mini",
            "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [
                {"role": "user", "content": "echo ping, add 2 and 3"},
                {"role": "assistant", "content": "ping, and 5"},
                {"role": "user", "content": "again"},
                {"role": "assistant", "content": ""}
            ]
        })
    );
}
