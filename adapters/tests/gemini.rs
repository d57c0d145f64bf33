mod support;

use deepchat_adapters::gemini::{Gemini, DEFAULT_BASE_URL};
use deepchat_adapters::{
    Adapter, AdapterError, Carried, Conversation, Event, FinishReason, Generation, Image, ToolCall,
    ToolRound, ToolSpec, Turn, Usage,
};
use serde_json::json;
use support::{decode_chunks, decode_every_split, fixture, result, text_of};

fn adapter() -> Gemini {
    Gemini::new("http://127.0.0.1:9/")
}

fn generation() -> Generation {
    Generation {
        model: "gemini-2.5-flash".into(),
        ..Default::default()
    }
}

fn conversation(turns: Vec<Turn>) -> Conversation {
    Conversation {
        turns,
        ..Default::default()
    }
}

fn errors(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Error(m) => Some(m.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn fixtures_are_crlf_like_the_real_api() {
    let body = fixture("gemini", "normal.sse");
    let text = String::from_utf8(body).expect("utf-8");
    assert!(text.contains("}\r\n\r\ndata: "));
    assert!(!text.replace("\r\n", "").contains('\n'));
}

#[test]
fn normal_reply_with_usage_reported_once_after_the_finish() {
    let events = decode_every_split(&adapter(), &fixture("gemini", "normal.sse"));
    assert_eq!(
        events,
        vec![
            Event::TextDelta("Grüße aus Zürich".into()),
            Event::TextDelta(" — 日本語も 👋🏽\n\"done\"".into()),
            Event::Finish(FinishReason::Stop),
            Event::Usage(Usage {
                input_tokens: Some(8),
                output_tokens: Some(14),
                reasoning_tokens: None
            }),
        ]
    );
}

#[test]
fn usage_repeated_after_the_finish_is_not_reported_twice() {
    let mut body = fixture("gemini", "normal.sse");
    body.extend_from_slice(
        b"data: {\"usageMetadata\": {\"promptTokenCount\": 8,\"candidatesTokenCount\": 14,\"totalTokenCount\": 22}}\r\n\r\n",
    );
    let events = decode_every_split(&adapter(), &body);
    assert_eq!(events.len(), 4, "{events:?}");
    // A corrected count is passed on.
    body.extend_from_slice(
        b"data: {\"usageMetadata\": {\"promptTokenCount\": 8,\"candidatesTokenCount\": 15}}\r\n\r\n",
    );
    let events = decode_every_split(&adapter(), &body);
    assert_eq!(
        events[4..],
        [Event::Usage(Usage {
            input_tokens: Some(8),
            output_tokens: Some(15),
            reasoning_tokens: None
        })]
    );
}

#[test]
fn lf_line_ends_decode_the_same() {
    let crlf = fixture("gemini", "normal.sse");
    let lf = String::from_utf8(crlf.clone())
        .expect("utf-8")
        .replace("\r\n", "\n");
    assert_eq!(
        decode_every_split(&adapter(), lf.as_bytes()),
        decode_chunks(&adapter(), vec![crlf])
    );
}

#[test]
fn thoughts_are_their_own_events_and_images_become_files() {
    let events = decode_every_split(&adapter(), &fixture("gemini", "thinking_and_image.sse"));
    assert_eq!(
        events,
        vec![
            Event::Reasoning("**Sketching a cat**\n\nI'll draw a small cat.".into()),
            Event::TextDelta("Here is your cat 🐱:".into()),
            Event::File {
                mime: "image/png".into(),
                src: "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==".into(),
            },
            Event::Finish(FinishReason::Stop),
            Event::Usage(Usage {
                input_tokens: Some(11),
                output_tokens: Some(1296),
                reasoning_tokens: Some(70)
            }),
        ]
    );
}

#[test]
fn safety_stop_is_a_clear_error_naming_the_category() {
    let events = decode_every_split(&adapter(), &fixture("gemini", "safety.sse"));
    assert_eq!(
        events,
        vec![
            Event::TextDelta("Step one:".into()),
            Event::Error(
                "the reply was blocked by Gemini's safety filter \
                 (SAFETY: unsafe content, HARM_CATEGORY_DANGEROUS_CONTENT)"
                    .into()
            ),
        ]
    );
}

#[test]
fn blocked_prompt_is_a_clear_error() {
    let events = decode_every_split(&adapter(), &fixture("gemini", "prompt_blocked.sse"));
    assert_eq!(
        events,
        vec![Event::Error(
            "the prompt was blocked by Gemini's safety filter \
             (PROHIBITED_CONTENT: prohibited content)"
                .into()
        )]
    );
}

#[test]
fn other_blocking_reasons_are_errors_too() {
    for (reason, words) in [
        ("RECITATION", "recitation"),
        ("BLOCKLIST", "blocked term"),
        ("SPII", "personal information"),
        ("PROHIBITED_CONTENT", "prohibited"),
    ] {
        let body = format!(
            "data: {{\"candidates\": [{{\"finishReason\": \"{reason}\",\"index\": 0}}]}}\r\n\r\n"
        );
        let events = decode_every_split(&adapter(), body.as_bytes());
        assert_eq!(events.len(), 1, "{reason}: {events:?}");
        let message = errors(&events)[0];
        assert!(
            message.contains("blocked by Gemini's safety filter")
                && message.contains(reason)
                && message.contains(words),
            "{message}"
        );
    }
}

#[test]
fn error_midstream_after_text() {
    let events = decode_every_split(&adapter(), &fixture("gemini", "error_midstream.sse"));
    assert_eq!(
        events,
        vec![
            Event::TextDelta("Partial".into()),
            Event::Error("upstream error: The model is overloaded. Please try again later.".into()),
        ]
    );
}

#[test]
fn error_wrapped_in_a_list_is_read_too() {
    let body = b"data: [{\"error\": {\"code\": 500,\"message\": \"Internal error encountered.\",\"status\": \"INTERNAL\"}}]\r\n\r\n";
    let events = decode_every_split(&adapter(), body);
    assert_eq!(
        events,
        vec![Event::Error(
            "upstream error: Internal error encountered.".into()
        )]
    );
}

#[test]
fn max_tokens_is_a_length_finish() {
    let events = decode_every_split(&adapter(), &fixture("gemini", "length.sse"));
    assert_eq!(text_of(&events), "Once upon a");
    assert_eq!(
        events[2..],
        [
            Event::Finish(FinishReason::Length),
            Event::Usage(Usage {
                input_tokens: Some(6),
                output_tokens: Some(3),
                reasoning_tokens: None
            }),
        ]
    );
}

#[test]
fn stream_cut_before_any_finish_reason_is_an_error() {
    let events = decode_every_split(&adapter(), &fixture("gemini", "truncated.sse"));
    assert_eq!(
        events,
        vec![
            Event::TextDelta("Cut".into()),
            Event::Error("the upstream stream ended before the reply was complete".into()),
        ]
    );
}

#[test]
fn every_cut_before_the_finish_reason_is_reported() {
    let body = fixture("gemini", "normal.sse");
    // The last event carries the finish; it counts once its blank line is in (a lone CR at the
    // very end may or may not count, as the SSE spec allows CR as a line end).
    for len in 0..body.len() - 1 {
        let events = decode_chunks(&adapter(), vec![body[..len].to_vec()]);
        assert!(
            matches!(events.last(), Some(Event::Error(_))),
            "cut at byte {len} was not reported: {events:?}"
        );
    }
    assert!(errors(&decode_chunks(&adapter(), vec![body])).is_empty());
}

#[test]
fn empty_body_is_an_error() {
    assert_eq!(
        decode_every_split(&adapter(), b""),
        vec![Event::Error(
            "the upstream stream ended before the reply was complete".into()
        )]
    );
}

#[test]
fn garbage_data_is_an_error_not_a_panic() {
    let events = decode_every_split(&adapter(), b"data: {not json\r\n\r\n");
    assert!(matches!(events.as_slice(), [Event::Error(_)]));
    let events = decode_every_split(
        &adapter(),
        b"data: {\"candidates\": {\"content\": 1}}\r\n\r\ndata: {\"candidates\": [{\"content\": {\"parts\": [{\"inlineData\": {\"data\": 5}}, 7, {\"text\": 3}]},\"finishReason\": 9}],\"usageMetadata\": [1]}\r\n\r\ndata: \"x\"\r\n\r\ndata: [1, null]\r\n\r\n",
    );
    assert_eq!(
        errors(&events),
        ["the upstream stream ended before the reply was complete"]
    );
}

#[test]
fn request_has_system_instruction_alternating_contents_images_and_config() {
    let mut image_turn = Turn::user("what is this?");
    image_turn.images.push(Image::Inline {
        mime: "image/png".into(),
        base64: "AAAA".into(),
    });
    image_turn.images.push(Image::Url(
        "https://example.com/photos/cat.JPG?size=large".into(),
    ));
    let conversation = Conversation {
        tools: Vec::new(),
        system: Some("be brief".into()),
        turns: vec![
            Turn::assistant("Hi! Ask me anything."),
            Turn::user("hi"),
            Turn::assistant("hello"),
            Turn::assistant("anything else?"),
            Turn::user("look"),
            image_turn,
        ],
    };
    let generation = Generation {
        model: "models/gemini-2.5-flash".into(),
        temperature: Some(0.5),
        max_tokens: Some(64),
        extra_headers: vec![("x-team".into(), "blue".into())],
        ..Default::default()
    };
    let request = adapter()
        .build_request(&conversation, &generation, Some("AIza-test"))
        .expect("request");
    assert_eq!(
        request.url,
        "http://127.0.0.1:9/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(
        request.headers,
        vec![
            ("x-goog-api-key".to_owned(), "AIza-test".to_owned()),
            ("x-team".to_owned(), "blue".to_owned()),
        ]
    );
    assert_eq!(
        request.body,
        json!({
            "systemInstruction": {"parts": [{"text": "be brief"}]},
            "generationConfig": {"temperature": 0.5, "maxOutputTokens": 64},
            "contents": [
                {"role": "user", "parts": [{"text": "hi"}]},
                {"role": "model", "parts": [{"text": "hello\n\nanything else?"}]},
                {"role": "user", "parts": [
                    {"text": "look"},
                    {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
                    {"fileData": {
                        "mimeType": "image/jpeg",
                        "fileUri": "https://example.com/photos/cat.JPG?size=large"
                    }},
                    {"text": "what is this?"}
                ]}
            ]
        })
    );
}

#[test]
fn minimal_keyless_request_has_no_optional_fields() {
    let request = Gemini::default()
        .build_request(&conversation(vec![Turn::user("hi")]), &generation(), None)
        .expect("request");
    assert_eq!(
        DEFAULT_BASE_URL,
        "https://generativelanguage.googleapis.com"
    );
    assert_eq!(
        request.url,
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert!(request.headers.is_empty());
    assert_eq!(
        request.body,
        json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    );
}

#[test]
fn model_name_cannot_escape_its_path_segment() {
    let c = conversation(vec![Turn::user("hi")]);
    let mut g = generation();
    g.model = "gemini/../x?alt=json#".into();
    let request = adapter().build_request(&c, &g, None).expect("request");
    assert_eq!(
        request.url,
        "http://127.0.0.1:9/v1beta/models/gemini%2F..%2Fx%3Falt%3Djson%23:streamGenerateContent?alt=sse"
    );
    g.model = " ".into();
    assert!(matches!(
        adapter().build_request(&c, &g, None),
        Err(AdapterError::Unsupported(_))
    ));
}

#[test]
fn untyped_remote_image_is_refused_and_empty_conversation_is_empty() {
    let mut turn = Turn::user("see");
    turn.images
        .push(Image::Url("https://example.com/render?id=4".into()));
    assert!(matches!(
        adapter().build_request(&conversation(vec![turn]), &generation(), None),
        Err(AdapterError::Unsupported(_))
    ));
    assert_eq!(
        adapter().build_request(
            &conversation(vec![Turn::assistant("greeting")]),
            &generation(),
            None
        ),
        Err(AdapterError::Empty)
    );
}

#[test]
fn http_error_body_gives_googles_message_even_in_a_list() {
    let body = r#"[{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}]"#;
    assert_eq!(
        adapter().error_message(400, body),
        "gemini upstream refused the request (HTTP 400): API key not valid. Please pass a valid API key."
    );
}

// ---- Tool calling ----

const SIGNATURE: &str = "CiQB0e2Kb7xQ8n4m1VvF3zJ9Yq2Lk5Ww0sR6tU8aPcDeFgHiJk=";

fn fixture_calls() -> Vec<Event> {
    vec![
        Event::ToolCall(ToolCall {
            id: "call_0".into(),
            name: "echo".into(),
            arguments: r#"{"message":"ping"}"#.into(),
            signature: Some(SIGNATURE.into()),
        }),
        Event::ToolCall(ToolCall {
            id: "call_1".into(),
            name: "get-sum".into(),
            arguments: r#"{"a":2,"b":3}"#.into(),
            signature: None,
        }),
        // Gemini says STOP after calling functions.
        Event::Finish(FinishReason::ToolUse),
    ]
}

#[test]
fn parallel_function_calls_keep_their_signature_and_stop_for_tool_use() {
    let events = decode_every_split(&adapter(), &fixture("gemini", "tool_call.sse"));
    let mut expected = vec![Event::TextDelta("Let me check.".into())];
    expected.extend(fixture_calls());
    expected.push(Event::Usage(Usage {
        input_tokens: Some(61),
        output_tokens: Some(28),
        reasoning_tokens: None,
    }));
    assert_eq!(events, expected);
}

#[test]
fn thoughts_before_function_calls_stay_reasoning() {
    let events = decode_every_split(&adapter(), &fixture("gemini", "tool_call_thinking.sse"));
    let mut expected = vec![Event::Reasoning(
        "**Calling tools**\n\nEcho first, then the sum.".into(),
    )];
    expected.extend(fixture_calls());
    expected.push(Event::Usage(Usage {
        input_tokens: Some(61),
        output_tokens: Some(28),
        reasoning_tokens: Some(45),
    }));
    assert_eq!(events, expected);
}

#[test]
fn a_call_id_from_gemini_is_kept_and_missing_args_are_an_empty_object() {
    let body = concat!(
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"id\":\"8f2kq1xz\",\"name\":\"now\"}}],\"role\":\"model\"},",
        "\"finishReason\":\"STOP\",\"index\":0}]}\r\n\r\n",
    );
    let events = decode_every_split(&adapter(), body.as_bytes());
    assert_eq!(
        events,
        vec![
            Event::ToolCall(ToolCall {
                id: "8f2kq1xz".into(),
                name: "now".into(),
                arguments: "{}".into(),
                signature: None,
            }),
            Event::Finish(FinishReason::ToolUse),
        ]
    );
}

#[test]
fn a_stream_cut_inside_the_call_chunk_is_the_truncation_error_and_no_call() {
    let body = fixture("gemini", "tool_call.sse");
    let text = String::from_utf8(body.clone()).expect("utf-8");
    let start = text.find("functionCall").expect("a call");
    let end = text.rfind("\r\n\r\n").expect("the last event ends");
    for len in start..end {
        let events = decode_chunks(&adapter(), vec![body[..len].to_vec()]);
        assert!(
            !events.iter().any(|e| matches!(e, Event::ToolCall(_))),
            "cut at {len}: {events:?}"
        );
        assert_eq!(
            errors(&events),
            vec!["the upstream stream ended before the reply was complete"],
            "cut at {len}"
        );
    }
}

#[test]
fn arguments_past_one_mebibyte_are_refused_without_a_call() {
    let body = format!(
        "data: {{\"candidates\":[{{\"content\":{{\"parts\":[{{\"functionCall\":{{\"name\":\"echo\",\"args\":{{\"message\":\"{}\"}}}}}}],\"role\":\"model\"}},\"finishReason\":\"STOP\",\"index\":0}}]}}\r\n\r\n",
        "x".repeat(1024 * 1024)
    );
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
        parameters: json!({
            "type": "object",
            "properties": {"message": {"type": "string"}},
            "additionalProperties": false,
        }),
    }]
}

fn call(id: &str, name: &str, arguments: &str, signature: Option<&str>) -> ToolCall {
    ToolCall {
        id: id.into(),
        name: name.into(),
        arguments: arguments.into(),
        signature: signature.map(str::to_owned),
    }
}

/// Round 1: text and two parallel calls (ids invented by the decoder, a signature on the
/// first, one failed); round 2: a call with Gemini's own id and malformed arguments. The
/// carried item is another adapter's: Gemini carries nothing.
fn two_rounds() -> Vec<ToolRound> {
    let echo = call("call_0", "echo", r#"{"message":"ping"}"#, Some("sig-1"));
    let sum = call("call_1", "get-sum", r#"{"a":2,"b":3}"#, None);
    let broken = call("8f2kq1xz", "echo", "{\"message\":", Some("sig-2"));
    vec![
        ToolRound {
            text: "Let me check.".into(),
            carried: vec![Carried {
                adapter: "anthropic".into(),
                item: json!({"type": "thinking", "thinking": "hmm", "signature": "s"}),
            }],
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

fn expected_round_contents() -> Vec<serde_json::Value> {
    vec![
        json!({"role": "model", "parts": [
            {"text": "Let me check."},
            {"functionCall": {"name": "echo", "args": {"message": "ping"}}, "thoughtSignature": "sig-1"},
            {"functionCall": {"name": "get-sum", "args": {"a": 2, "b": 3}}},
        ]}),
        json!({"role": "user", "parts": [
            {"functionResponse": {"name": "echo", "response": {"result": "ping"}}},
            {"functionResponse": {"name": "get-sum", "response": {"error": "no such tool"}}},
        ]}),
        json!({"role": "model", "parts": [
            {"functionCall": {"name": "echo", "args": {}, "id": "8f2kq1xz"}, "thoughtSignature": "sig-2"},
        ]}),
        json!({"role": "user", "parts": [
            {"functionResponse": {"name": "echo", "response": {"error": "invalid arguments"}, "id": "8f2kq1xz"}},
        ]}),
    ]
}

#[test]
fn request_declares_tools_and_replays_rounds_before_the_final_text() {
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
    let mut contents = vec![json!({"role": "user", "parts": [{"text": "echo ping"}]})];
    contents.extend(expected_round_contents());
    contents.push(json!({"role": "model", "parts": [{"text": "Echoed: ping"}]}));
    contents.push(json!({"role": "user", "parts": [{"text": "thanks"}]}));
    assert_eq!(
        request.body,
        json!({
            "contents": contents,
            "tools": [{"functionDeclarations": [{
                "name": "echo",
                "description": "Echoes a message",
                "parametersJsonSchema": {
                    "type": "object",
                    "properties": {"message": {"type": "string"}},
                    "additionalProperties": false,
                },
            }]}],
        })
    );
}

#[test]
fn the_loops_turn_in_progress_ends_with_its_function_responses() {
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
    let mut contents = vec![json!({"role": "user", "parts": [{"text": "echo ping"}]})];
    contents.extend(expected_round_contents());
    assert_eq!(request.body["contents"], json!(contents));
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
