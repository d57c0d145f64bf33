mod support;

use deepchat_adapters::gemini::{Gemini, DEFAULT_BASE_URL};
use deepchat_adapters::{
    Adapter, AdapterError, Conversation, Event, FinishReason, Generation, Image, Turn, Usage,
};
use serde_json::json;
use support::{decode_chunks, decode_every_split, fixture, text_of};

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
