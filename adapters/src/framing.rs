//! Turns an upstream response body (a stream of byte chunks, split anywhere) into framed
//! messages: Server-Sent Events ([`crate::sse`]) or newline-delimited JSON lines. Pure stream
//! transformation.

use bytes::BytesMut;
use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use std::fmt::Display;
use std::pin::Pin;

/// How a provider frames its streamed body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `text/event-stream`: `event:` / `data:` fields, blank-line separated.
    Sse,
    /// One JSON document per line (Ollama's native API).
    Ndjson,
}

/// One framed upstream message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// The SSE `event:` name; empty for unnamed (`message`) events and NDJSON lines.
    pub event: String,
    /// The SSE data (multi-line data joined by `\n`) or one NDJSON line without its newline.
    pub data: String,
}

impl Message {
    pub fn data(data: impl Into<String>) -> Self {
        Message {
            event: String::new(),
            data: data.into(),
        }
    }
}

/// A body that could not be framed: transport failure, invalid UTF-8 or an oversized frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FramingError(pub String);

/// Longest line (SSE field or NDJSON document) accepted before the stream is declared broken.
/// Large enough for an inline image in one event.
pub const MAX_LINE_BYTES: usize = 8 * 1024 * 1024;

/// Longest SSE event (all its lines) accepted: an upstream that sends `data:` lines without
/// ever ending the event would otherwise grow the SSE parser's buffer until the reply times out.
pub const MAX_EVENT_BYTES: usize = 2 * MAX_LINE_BYTES;

/// Frames `body` according to `framing`. Transport errors end the stream with a [`FramingError`].
pub fn messages<S, E>(
    framing: Framing,
    body: S,
) -> BoxStream<'static, Result<Message, FramingError>>
where
    S: Stream<Item = Result<bytes::Bytes, E>> + Send + 'static,
    E: Display + Send + 'static,
{
    match framing {
        Framing::Sse => crate::sse::SseEvents::new(body).boxed(),
        Framing::Ndjson => complete_lines(body)
            .flat_map(|chunk| {
                let items: Vec<Result<Message, FramingError>> = match chunk {
                    Ok(text) => text
                        .split('\n')
                        .map(|line| line.strip_suffix('\r').unwrap_or(line))
                        .filter(|line| !line.trim().is_empty())
                        .map(|line| Ok(Message::data(line)))
                        .collect(),
                    Err(err) => vec![Err(FramingError(err.to_string()))],
                };
                stream::iter(items)
            })
            .boxed(),
    }
}

/// Re-chunks a body so every chunk holds whole lines of valid UTF-8 (the last one may lack its
/// newline). Each byte is scanned once and a line may not exceed [`MAX_LINE_BYTES`], so a
/// hostile upstream can cost neither quadratic time nor unbounded memory downstream (the SSE
/// parser re-parses an unfinished line on every chunk). Invalid UTF-8 is reported at once.
fn complete_lines<S, E>(body: S) -> impl Stream<Item = Result<String, FramingError>> + Send
where
    S: Stream<Item = Result<bytes::Bytes, E>> + Send + 'static,
    E: Display + Send + 'static,
{
    struct State<S> {
        body: Pin<Box<S>>,
        /// Bytes after the last newline handed on.
        pending: BytesMut,
        /// Invalid UTF-8 found after lines that were still handed on: reported next.
        broken: Option<FramingError>,
        done: bool,
    }
    let state = State {
        body: Box::pin(body),
        pending: BytesMut::new(),
        broken: None,
        done: false,
    };
    stream::unfold(state, |mut state| async move {
        loop {
            if let Some(err) = state.broken.take() {
                state.done = true;
                return Some((Err(err), state));
            }
            if state.done {
                return None;
            }
            let chunk = match state.body.next().await {
                Some(Ok(chunk)) => chunk,
                Some(Err(err)) => {
                    state.done = true;
                    return Some((Err(FramingError(err.to_string())), state));
                }
                None => {
                    state.done = true;
                    if state.pending.is_empty() {
                        return None;
                    }
                    let rest = state.pending.split();
                    let (text, broken) = to_text(&rest);
                    state.broken = broken;
                    return Some((Ok(text), state));
                }
            };
            // Only the new bytes are searched: everything before them had no newline.
            let split = chunk.iter().rposition(|&b| b == b'\n');
            let Some(split) = split else {
                state.pending.extend_from_slice(&chunk);
                if state.pending.len() > MAX_LINE_BYTES {
                    state.done = true;
                    let err = format!("upstream line longer than {MAX_LINE_BYTES} bytes");
                    return Some((Err(FramingError(err)), state));
                }
                continue;
            };
            state.pending.extend_from_slice(&chunk[..=split]);
            let lines = state.pending.split();
            state.pending.extend_from_slice(&chunk[split + 1..]);
            let (text, broken) = to_text(&lines);
            state.broken = broken;
            return Some((Ok(text), state));
        }
    })
}

/// The whole lines before any invalid UTF-8, and the error if there was some.
fn to_text(bytes: &[u8]) -> (String, Option<FramingError>) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_owned(), None),
        Err(err) => {
            let valid = &bytes[..err.valid_up_to()];
            let whole = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let text = String::from_utf8_lossy(&valid[..whole]).into_owned();
            (
                text,
                Some(FramingError("upstream sent invalid UTF-8".into())),
            )
        }
    }
}

/// Test helper: frames `body` delivered in the given chunks and collects everything.
/// Used by every adapter's transcript tests to split input at arbitrary byte boundaries.
pub fn frame_chunks(framing: Framing, chunks: Vec<Vec<u8>>) -> Vec<Result<Message, FramingError>> {
    let body = stream::iter(
        chunks
            .into_iter()
            .map(|c| Ok::<_, std::convert::Infallible>(bytes::Bytes::from(c))),
    );
    futures_util::FutureExt::now_or_never(messages(framing, body).collect::<Vec<_>>())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_everywhere(text: &str) -> Vec<Vec<Vec<u8>>> {
        let bytes = text.as_bytes();
        (0..=bytes.len())
            .map(|i| vec![bytes[..i].to_vec(), bytes[i..].to_vec()])
            .chain(std::iter::once(bytes.iter().map(|b| vec![*b]).collect()))
            .collect()
    }

    #[test]
    fn sse_survives_any_split_including_inside_utf8() {
        let body = "data: {\"t\":\"héllo 👋\"}\n\nevent: ping\ndata: a\ndata: b\n\n";
        for chunks in split_everywhere(body) {
            let out: Vec<_> = frame_chunks(Framing::Sse, chunks)
                .into_iter()
                .map(|m| m.expect("framed"))
                .collect();
            assert_eq!(
                out,
                vec![
                    Message::data("{\"t\":\"héllo 👋\"}"),
                    Message {
                        event: "ping".into(),
                        data: "a\nb".into()
                    }
                ]
            );
        }
    }

    #[test]
    fn sse_accepts_crlf_line_ends() {
        let out = frame_chunks(
            Framing::Sse,
            vec![b"data: x\r\n\r\ndata: y\r\n\r\n".to_vec()],
        );
        assert_eq!(out, vec![Ok(Message::data("x")), Ok(Message::data("y"))]);
    }

    #[test]
    fn ndjson_splits_lines_and_keeps_last_unterminated_line() {
        let body = "{\"a\":\"é\"}\n\n{\"b\":2}\r\n{\"c\":3}";
        for chunks in split_everywhere(body) {
            let out = frame_chunks(Framing::Ndjson, chunks);
            assert_eq!(
                out,
                vec![
                    Ok(Message::data("{\"a\":\"é\"}")),
                    Ok(Message::data("{\"b\":2}")),
                    Ok(Message::data("{\"c\":3}")),
                ]
            );
        }
    }

    #[test]
    fn ndjson_reports_invalid_utf8() {
        let out = frame_chunks(Framing::Ndjson, vec![vec![0xff, b'\n']]);
        assert!(matches!(out.as_slice(), [Err(_)]));
    }

    #[test]
    fn an_endless_line_is_refused_at_the_limit_for_both_framings() {
        for framing in [Framing::Sse, Framing::Ndjson] {
            let mut chunks = vec![b"data: ".to_vec()];
            chunks.extend(std::iter::repeat_n(
                vec![b'x'; 64 * 1024],
                MAX_LINE_BYTES / (64 * 1024) + 2,
            ));
            let out = frame_chunks(framing, chunks);
            assert_eq!(out.len(), 1, "{framing:?}");
            assert!(
                matches!(&out[0], Err(e) if e.0.contains("longer than")),
                "{framing:?}: {out:?}"
            );
        }
    }

    #[test]
    fn an_sse_event_that_never_ends_is_refused_at_the_limit() {
        let line = format!("data: {}\n", "x".repeat(64 * 1024));
        let mut chunks = vec![b"data: first\n\n".to_vec()];
        chunks.extend(std::iter::repeat_n(
            line.as_bytes().to_vec(),
            MAX_EVENT_BYTES / line.len() + 2,
        ));
        let out = frame_chunks(Framing::Sse, chunks);
        assert_eq!(out.first(), Some(&Ok(Message::data("first"))), "{out:?}");
        assert_eq!(out.len(), 2);
        assert!(
            matches!(&out[1], Err(e) if e.0.contains("event longer than")),
            "{out:?}"
        );
    }

    #[test]
    fn many_events_adding_up_past_the_event_limit_are_fine() {
        // Blank lines at the start of a chunk, inside it, and with CRLF all end events.
        let event = format!("data: {}\n", "y".repeat(64 * 1024));
        let chunks: Vec<Vec<u8>> = (0..(MAX_EVENT_BYTES / event.len()) * 3)
            .map(|i| match i % 3 {
                0 => format!("{event}\n"),
                1 => event.clone(),
                _ => format!("\r\n{event}\r\n"),
            })
            .map(String::into_bytes)
            .collect();
        let out = frame_chunks(Framing::Sse, chunks);
        assert!(out.iter().all(Result::is_ok), "no error");
        assert!(
            out.len() >= MAX_EVENT_BYTES / event.len() * 2,
            "{}",
            out.len()
        );
    }

    #[test]
    fn invalid_utf8_is_reported_where_it_occurs() {
        let mut body = b"data: ok\n\ndata: \xff\n\n".to_vec();
        body.extend(b"data: later\n\n".repeat(100));
        let out = frame_chunks(Framing::Sse, vec![body]);
        assert_eq!(out.first(), Some(&Ok(Message::data("ok"))), "{out:?}");
        assert!(
            matches!(out.get(1), Some(Err(e)) if e.0.contains("UTF-8")),
            "{out:?}"
        );
        assert_eq!(out.len(), 2, "nothing is framed after the broken line");
    }

    #[test]
    fn a_long_line_delivered_byte_by_byte_frames_once() {
        // Each byte is scanned once: a quarter-megabyte line in single bytes stays cheap.
        let line = format!("{{\"t\":\"{}\"}}\n", "y".repeat(256 * 1024));
        let chunks = line.bytes().map(|b| vec![b]).collect();
        let out = frame_chunks(Framing::Ndjson, chunks);
        assert_eq!(out, vec![Ok(Message::data(line.trim_end()))]);
    }
}
