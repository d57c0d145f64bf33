mod support;

use deepchat_adapters::anthropic::{Anthropic, DEFAULT_BASE_URL};
use deepchat_adapters::{
    Adapter, AdapterError, Conversation, Event, FinishReason, Generation, Image, Turn, Usage,
};
use serde_json::json;
use support::{decode_chunks, decode_every_split, fixture, text_of};

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
