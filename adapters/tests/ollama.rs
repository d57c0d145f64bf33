mod support;

use deepchat_adapters::ollama::{Ollama, DEFAULT_BASE_URL};
use deepchat_adapters::{
    Adapter, AdapterError, Conversation, Event, FinishReason, Framing, Generation, Image, Turn,
    Usage,
};
use serde_json::json;
use support::{decode_chunks, decode_every_split, fixture, text_of};

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
