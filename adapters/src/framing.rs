//! Turns an upstream response body (a stream of byte chunks, split anywhere) into framed
//! messages: Server-Sent Events or newline-delimited JSON lines. Pure stream transformation.

use bytes::{Buf, BytesMut};
use eventsource_stream::Eventsource;
use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use std::fmt::Display;

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

/// Longest NDJSON line accepted before the stream is declared broken.
pub const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

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
        Framing::Sse => body
            .eventsource()
            .map(|item| match item {
                // The SSE default name "message" means unnamed: decoders only match real names.
                Ok(event) => Ok(Message {
                    event: if event.event == "message" {
                        String::new()
                    } else {
                        event.event
                    },
                    data: event.data,
                }),
                Err(err) => Err(FramingError(err.to_string())),
            })
            .boxed(),
        Framing::Ndjson => ndjson_lines(body).boxed(),
    }
}

/// Splits a byte stream into non-empty lines; a final line without newline still counts.
fn ndjson_lines<S, E>(body: S) -> impl Stream<Item = Result<Message, FramingError>> + Send
where
    S: Stream<Item = Result<bytes::Bytes, E>> + Send + 'static,
    E: Display + Send + 'static,
{
    struct State<S> {
        body: S,
        buffer: BytesMut,
        done: bool,
    }
    let state = State {
        body: Box::pin(body),
        buffer: BytesMut::new(),
        done: false,
    };
    stream::unfold(state, |mut state| async move {
        loop {
            if let Some(pos) = state.buffer.iter().position(|&b| b == b'\n') {
                let line = state.buffer.split_to(pos);
                state.buffer.advance(1);
                match line_to_message(&line) {
                    Some(item) => return Some((item, state)),
                    None => continue,
                }
            }
            if state.done {
                if state.buffer.is_empty() {
                    return None;
                }
                let line = state.buffer.split();
                match line_to_message(&line) {
                    Some(item) => return Some((item, state)),
                    None => return None,
                }
            }
            if state.buffer.len() > MAX_LINE_BYTES {
                state.done = true;
                state.buffer.clear();
                let err = FramingError(format!("upstream line longer than {MAX_LINE_BYTES} bytes"));
                return Some((Err(err), state));
            }
            match state.body.next().await {
                Some(Ok(chunk)) => state.buffer.extend_from_slice(&chunk),
                Some(Err(err)) => {
                    state.done = true;
                    state.buffer.clear();
                    return Some((Err(FramingError(err.to_string())), state));
                }
                None => state.done = true,
            }
        }
    })
}

/// `None` for blank lines, which NDJSON streams may use as keep-alives.
fn line_to_message(line: &[u8]) -> Option<Result<Message, FramingError>> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    Some(match std::str::from_utf8(line) {
        Ok(text) => Ok(Message::data(text)),
        Err(_) => Err(FramingError("upstream sent invalid UTF-8".into())),
    })
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
}
