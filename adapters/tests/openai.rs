mod support;

use deepchat_adapters::openai::OpenAiChat;
use deepchat_adapters::{
    Adapter, Conversation, Event, FinishReason, Generation, Image, Turn, Usage,
};
use serde_json::json;
use support::{decode_every_split, fixture, text_of};

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
