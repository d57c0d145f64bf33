mod support;

use deepchat_adapters::openai_responses::{OpenAiResponses, DEFAULT_BASE_URL};
use deepchat_adapters::{
    Adapter, AdapterError, Conversation, Event, FinishReason, Generation, Image, Turn, Usage,
};
use serde_json::json;
use support::{decode_every_split, fixture, text_of};

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
