//! Property tests for every decoder: for arbitrary reply texts split into arbitrary deltas, the
//! provider's streamed body (built with serde_json, so escaping is the provider's) cut at
//! arbitrary byte boundaries decodes to exactly the original text, with no error, one finish,
//! and the same events as the uncut body.

mod support;

use deepchat_adapters::providers::{Provider, Settings, PROVIDERS};
use deepchat_adapters::{Adapter, Event, FinishReason};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Value};
use support::{decode_chunks, text_of};

/// Pieces that stress escaping and framing: multi-byte UTF-8, JSON and SSE syntax, line ends,
/// control characters, separators JavaScript treats as line ends, a BOM, the stop key.
const TRICKY: &[&str] = &[
    "é",
    "日本",
    "👋",
    "🇫🇷",
    "👩‍👩‍👧",
    "\"",
    "\\",
    "\\n",
    "\n",
    "\r",
    "\r\n",
    "\n\n",
    "\t",
    "\u{0}",
    "\u{1b}[0m",
    "\u{7f}",
    "\u{2028}",
    "\u{2029}",
    "\u{feff}",
    "\u{fffd}",
    "data: ",
    "data: [DONE]",
    "[DONE]",
    "event: error\n",
    ": comment",
    "{\"error\":\"x\"}",
    "}",
    " ",
    "stop-key",
];

/// One delta: a few pieces, each an arbitrary char (any plane, controls included) or a tricky
/// string. Empty deltas are allowed: providers send them and they must decode to nothing.
fn delta() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => any::<char>().prop_map(String::from),
        2 => prop::sample::select(TRICKY).prop_map(str::to_owned),
        1 => "[a-z ]{1,8}",
    ];
    prop::collection::vec(piece, 0..6).prop_map(|pieces| pieces.concat())
}

fn deltas() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(delta(), 1..16)
}

/// Arbitrary cut points into a body, as positions to resolve once the body's length is known.
fn cuts() -> impl Strategy<Value = Vec<Index>> {
    prop::collection::vec(any::<Index>(), 0..24)
}

/// Cuts `body` at the given positions (duplicates and ends allowed: empty chunks are legal).
fn cut(body: &[u8], cuts: &[Index]) -> Vec<Vec<u8>> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(body.len() + 1)).collect();
    at.sort_unstable();
    let mut chunks = Vec::with_capacity(at.len() + 1);
    let mut from = 0;
    for to in at {
        chunks.push(body[from..to].to_vec());
        from = to;
    }
    chunks.push(body[from..].to_vec());
    chunks
}

/// How the SSE writer ends lines and whether it interleaves keep-alive comments.
#[derive(Debug, Clone, Copy)]
struct SseStyle {
    crlf: bool,
    comments: bool,
}

fn sse_style() -> impl Strategy<Value = SseStyle> {
    (any::<bool>(), any::<bool>()).prop_map(|(crlf, comments)| SseStyle { crlf, comments })
}

/// An SSE body from (event name, JSON or raw data) pairs.
fn sse(style: SseStyle, events: &[(Option<&str>, String)]) -> Vec<u8> {
    let nl = if style.crlf { "\r\n" } else { "\n" };
    let mut body = String::new();
    for (name, data) in events {
        if style.comments {
            body.push_str(&format!(": keep-alive{nl}{nl}"));
        }
        if let Some(name) = name {
            body.push_str(&format!("event: {name}{nl}"));
        }
        body.push_str(&format!("data: {data}{nl}{nl}"));
    }
    body.into_bytes()
}

fn openai_chunk(choice: Value) -> String {
    json!({"id": "chatcmpl-p", "object": "chat.completion.chunk", "choices": [choice]}).to_string()
}

fn openai_body(style: SseStyle, deltas: &[String]) -> Vec<u8> {
    let mut events = vec![(
        None,
        openai_chunk(
            json!({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}),
        ),
    )];
    for d in deltas {
        events.push((
            None,
            openai_chunk(json!({"index": 0, "delta": {"content": d}, "finish_reason": null})),
        ));
    }
    events.push((
        None,
        openai_chunk(json!({"index": 0, "delta": {}, "finish_reason": "stop"})),
    ));
    events.push((None, "[DONE]".to_owned()));
    sse(style, &events)
}

fn azure_body(style: SseStyle, deltas: &[String]) -> Vec<u8> {
    let filter = json!({"hate": {"filtered": false, "severity": "safe"}});
    let mut events = vec![(
        None,
        json!({"choices": [], "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": filter}]})
            .to_string(),
    )];
    for d in deltas {
        events.push((
            None,
            openai_chunk(
                json!({"index": 0, "delta": {"content": d}, "finish_reason": null,
                "content_filter_results": filter}),
            ),
        ));
    }
    events.push((
        None,
        openai_chunk(json!({"index": 0, "delta": {}, "finish_reason": "stop"})),
    ));
    events.push((None, "[DONE]".to_owned()));
    sse(style, &events)
}

fn responses_body(style: SseStyle, deltas: &[String]) -> Vec<u8> {
    let mut events = vec![(
        Some("response.created"),
        json!({"type": "response.created", "response": {"id": "resp_p", "status": "in_progress"}})
            .to_string(),
    )];
    for d in deltas {
        events.push((
            Some("response.output_text.delta"),
            json!({"type": "response.output_text.delta", "item_id": "msg_p", "output_index": 0,
                "content_index": 0, "delta": d})
            .to_string(),
        ));
    }
    events.push((
        Some("response.completed"),
        json!({"type": "response.completed", "response": {"id": "resp_p", "status": "completed",
            "usage": {"input_tokens": 3, "output_tokens": 5}}})
        .to_string(),
    ));
    sse(style, &events)
}

fn anthropic_body(style: SseStyle, deltas: &[String]) -> Vec<u8> {
    let mut events = vec![
        (
            Some("message_start"),
            json!({"type": "message_start", "message": {"id": "msg_p", "role": "assistant",
                "content": [], "usage": {"input_tokens": 3, "output_tokens": 1}}})
            .to_string(),
        ),
        (
            Some("content_block_start"),
            json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}})
            .to_string(),
        ),
        (Some("ping"), json!({"type": "ping"}).to_string()),
    ];
    for d in deltas {
        events.push((
            Some("content_block_delta"),
            json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": d}})
            .to_string(),
        ));
    }
    events.extend([
        (
            Some("content_block_stop"),
            json!({"type": "content_block_stop", "index": 0}).to_string(),
        ),
        (
            Some("message_delta"),
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 9}})
            .to_string(),
        ),
        (
            Some("message_stop"),
            json!({"type": "message_stop"}).to_string(),
        ),
    ]);
    sse(style, &events)
}

fn gemini_body(style: SseStyle, deltas: &[String]) -> Vec<u8> {
    let last = deltas.len() - 1;
    let events: Vec<_> = deltas
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut candidate =
                json!({"content": {"parts": [{"text": d}], "role": "model"}, "index": 0});
            if i == last {
                candidate["finishReason"] = json!("STOP");
            }
            (
                None,
                json!({"candidates": [candidate],
                    "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": i}})
                .to_string(),
            )
        })
        .collect();
    sse(style, &events)
}

fn cohere_body(style: SseStyle, deltas: &[String]) -> Vec<u8> {
    let mut events = vec![
        (
            Some("message-start"),
            json!({"type": "message-start", "id": "c-p", "delta": {"message": {"role": "assistant"}}})
                .to_string(),
        ),
        (
            Some("content-start"),
            json!({"type": "content-start", "index": 0,
                "delta": {"message": {"content": {"type": "text", "text": ""}}}})
            .to_string(),
        ),
    ];
    for d in deltas {
        events.push((
            Some("content-delta"),
            json!({"type": "content-delta", "index": 0,
                "delta": {"message": {"content": {"text": d}}}})
            .to_string(),
        ));
    }
    events.extend([
        (
            Some("content-end"),
            json!({"type": "content-end", "index": 0}).to_string(),
        ),
        (
            Some("message-end"),
            json!({"type": "message-end", "delta": {"finish_reason": "COMPLETE",
                "usage": {"tokens": {"input_tokens": 3, "output_tokens": 5}}}})
            .to_string(),
        ),
    ]);
    sse(style, &events)
}

/// Ollama's NDJSON, optionally with blank keep-alive lines and CRLF line ends.
fn ollama_body(style: SseStyle, deltas: &[String]) -> Vec<u8> {
    let nl = if style.crlf { "\r\n" } else { "\n" };
    let mut body = String::new();
    for d in deltas {
        if style.comments {
            body.push_str(nl);
        }
        let line = json!({"model": "m", "created_at": "2025-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": d}, "done": false});
        body.push_str(&format!("{line}{nl}"));
    }
    let last = json!({"model": "m", "created_at": "2025-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": ""}, "done": true, "done_reason": "stop",
        "prompt_eval_count": 3, "eval_count": 5});
    body.push_str(&last.to_string());
    // The final line may or may not end with a newline.
    if style.comments {
        body.push_str(nl);
    }
    body.into_bytes()
}

/// The shared property: cut anywhere, the events are those of the whole body, the text is the
/// original exactly, nothing is an error, and the reply finishes once, normally.
fn check(
    adapter: &dyn Adapter,
    deltas: &[String],
    body: &[u8],
    cuts: &[Index],
) -> Result<(), TestCaseError> {
    let expected: String = deltas.concat();
    let whole = decode_chunks(adapter, vec![body.to_vec()]);
    let events = decode_chunks(adapter, cut(body, cuts));
    prop_assert_eq!(&events, &whole, "cutting the body changed the events");
    let errors: Vec<&Event> = events
        .iter()
        .filter(|e| matches!(e, Event::Error(_)))
        .collect();
    prop_assert!(errors.is_empty(), "errors: {:?}", errors);
    prop_assert_eq!(text_of(&events), expected);
    let finishes: Vec<&Event> = events
        .iter()
        .filter(|e| matches!(e, Event::Finish(_)))
        .collect();
    prop_assert_eq!(finishes, vec![&Event::Finish(FinishReason::Stop)]);
    Ok(())
}

const BASE: &str = "http://127.0.0.1:9";

/// The body `provider` streams for these deltas: recorded per wire protocol, like the
/// fixtures. A provider added to the table without one fails every property here.
fn body_for(provider: &str, style: SseStyle, deltas: &[String]) -> Vec<u8> {
    match provider {
        "openai" => openai_body(style, deltas),
        "openai-responses" => responses_body(style, deltas),
        "anthropic" => anthropic_body(style, deltas),
        "gemini" => gemini_body(style, deltas),
        "ollama" => ollama_body(style, deltas),
        "cohere" => cohere_body(style, deltas),
        "azure" => azure_body(style, deltas),
        other => panic!("{other}: write its streamed body for these properties"),
    }
}

/// The adapter the table builds for `provider`.
fn adapter_of(provider: &Provider) -> std::sync::Arc<dyn Adapter> {
    (provider.build)(&Settings {
        base_url: BASE.to_owned(),
        api_version: provider.api_version.map(str::to_owned),
    })
}

/// A failed property, with the provider it failed for.
fn for_provider(provider: &Provider, err: TestCaseError) -> TestCaseError {
    TestCaseError::fail(format!("{}: {err}", provider.name))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every provider of the table, on the same deltas and the same cuts.
    #[test]
    fn every_provider_text_survives_any_cut(deltas in deltas(), style in sse_style(), cuts in cuts()) {
        for provider in PROVIDERS {
            let body = body_for(provider.name, style, &deltas);
            check(adapter_of(provider).as_ref(), &deltas, &body, &cuts)
                .map_err(|err| for_provider(provider, err))?;
        }
    }

    /// Byte-at-a-time delivery, the extreme cut, for every provider of the table.
    #[test]
    fn byte_by_byte_delivery_keeps_the_text(deltas in deltas(), style in sse_style()) {
        for provider in PROVIDERS {
            let body = body_for(provider.name, style, &deltas);
            let events = decode_chunks(
                adapter_of(provider).as_ref(),
                body.iter().map(|b| vec![*b]).collect(),
            );
            prop_assert_eq!(text_of(&events), deltas.concat(), "{}", provider.name);
            prop_assert!(
                !events.iter().any(|e| matches!(e, Event::Error(_))),
                "{}: {:?}",
                provider.name,
                events
            );
        }
    }
}
