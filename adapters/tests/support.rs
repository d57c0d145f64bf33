//! Shared helpers for transcript tests: feed a recorded stream split at every byte boundary.

#![allow(dead_code)]

use deepchat_adapters::{framing, Adapter, Event, ToolCall, ToolResult};

/// Reads `tests/fixtures/<provider>/<name>` from the workspace root.
pub fn fixture(provider: &str, name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../tests/fixtures/{provider}/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// Frames and decodes `body` delivered as `chunks`, then calls `end()`.
pub fn decode_chunks(adapter: &dyn Adapter, chunks: Vec<Vec<u8>>) -> Vec<Event> {
    let mut decoder = adapter.decoder();
    let mut events = Vec::new();
    for message in framing::frame_chunks(adapter.framing(), chunks) {
        match message {
            Ok(message) => events.extend(decoder.decode(&message)),
            Err(err) => events.push(Event::Error(err.to_string())),
        }
    }
    events.extend(decoder.end());
    events
}

/// Decodes `body` whole, then split in two at every byte and one byte at a time, asserting all
/// splits give the same events; returns them.
pub fn decode_every_split(adapter: &dyn Adapter, body: &[u8]) -> Vec<Event> {
    let whole = decode_chunks(adapter, vec![body.to_vec()]);
    for i in 0..=body.len() {
        let split = decode_chunks(adapter, vec![body[..i].to_vec(), body[i..].to_vec()]);
        assert_eq!(split, whole, "split at byte {i} changed the events");
    }
    let bytewise = decode_chunks(adapter, body.iter().map(|b| vec![*b]).collect());
    assert_eq!(bytewise, whole, "byte-by-byte delivery changed the events");
    whole
}

/// Concatenated text deltas.
pub fn text_of(events: &[Event]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TextDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

/// A tool call as a decoder emits it (no Gemini signature).
pub fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
    ToolCall {
        id: id.into(),
        name: name.into(),
        arguments: arguments.into(),
        signature: None,
    }
}

/// The result answering `call`.
pub fn result(call: &ToolCall, content: &str, is_error: bool) -> ToolResult {
    result_by_id(&call.id, &call.name, content, is_error)
}

/// A result by call id and tool name.
pub fn result_by_id(call_id: &str, name: &str, content: &str, is_error: bool) -> ToolResult {
    ToolResult {
        call_id: call_id.into(),
        name: name.into(),
        content: content.into(),
        is_error,
    }
}
