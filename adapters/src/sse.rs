//! Server-Sent Events framing at the byte level, one pass per byte (issue 21): lines are cut
//! out of one reused buffer and validated as UTF-8 once, and an event's `data` is built in
//! place, so a token costs one allocation (its data) instead of a string per line and per
//! event. Follows the WHATWG event-stream rules the providers rely on: `\n`, `\r\n` or `\r`
//! line ends, a leading BOM, comments, `data` lines joined by `\n`, a blank line dispatching the
//! event, an event left unfinished at the end of the body dropped. Bounded: a line may not
//! exceed [`MAX_LINE_BYTES`] nor an event [`MAX_EVENT_BYTES`].

use crate::framing::{FramingError, Message, MAX_EVENT_BYTES, MAX_LINE_BYTES};
use bytes::{Buf, BytesMut};
use futures_util::Stream;
use std::fmt::Display;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The SSE events of a body.
pub struct SseEvents<S> {
    body: Pin<Box<S>>,
    /// Bytes received and not yet cut into lines.
    buffer: BytesMut,
    /// Bytes at the start of `buffer` already searched for a line end (none was there).
    searched: usize,
    event: EventSoFar,
    /// The body has ended.
    ended: bool,
    /// An error was returned: nothing follows.
    failed: bool,
}

/// The event being read, from the lines read so far.
#[derive(Default)]
struct EventSoFar {
    /// Its name and its data so far, and whether a `data` field came.
    name: String,
    data: String,
    has_data: bool,
    /// Its bytes, against [`MAX_EVENT_BYTES`].
    bytes: usize,
    /// The first line was read (a BOM may only lead the first).
    started: bool,
}

impl<S> SseEvents<S> {
    pub fn new(body: S) -> SseEvents<S> {
        SseEvents {
            body: Box::pin(body),
            buffer: BytesMut::new(),
            searched: 0,
            event: EventSoFar::default(),
            ended: false,
            failed: false,
        }
    }

    fn fail(&mut self, why: String) -> Poll<Option<Result<Message, FramingError>>> {
        self.failed = true;
        Poll::Ready(Some(Err(FramingError(why))))
    }

    /// Where the next line ends in the buffer: (the line's length, its terminator's), or
    /// `None` when more bytes are needed to tell.
    fn next_line_end(&mut self) -> Option<(usize, usize)> {
        let found = memchr::memchr2(b'\n', b'\r', &self.buffer[self.searched..]);
        let Some(offset) = found else {
            self.searched = self.buffer.len();
            return None;
        };
        let at = self.searched + offset;
        if self.buffer[at] == b'\n' {
            return Some((at, 1));
        }
        // A `\r`: the line ends here, with a `\n` after it or not; at the buffer's end only the
        // next byte (or the body's end) can tell.
        match self.buffer.get(at + 1) {
            Some(b'\n') => Some((at, 2)),
            Some(_) => Some((at, 1)),
            None if self.ended => Some((at, 1)),
            None => {
                self.searched = at;
                None
            }
        }
    }

    /// Reads one line into the event and drops it from the buffer; the event when the line
    /// dispatches it. The line is read where it lies: no copy or handle of it is made.
    fn take_line(&mut self, length: usize, terminator: usize) -> Result<Option<Message>, String> {
        let read = self.event.line(&self.buffer[..length], length + terminator);
        self.buffer.advance(length + terminator);
        self.searched = 0;
        read
    }
}

impl EventSoFar {
    /// Reads one line (`wire_bytes` with its terminator); the event when the line dispatches it.
    fn line(&mut self, mut line: &[u8], wire_bytes: usize) -> Result<Option<Message>, String> {
        if !self.started {
            self.started = true;
            line = line.strip_prefix("\u{feff}".as_bytes()).unwrap_or(line);
        }
        if line.is_empty() {
            self.bytes = 0;
            if !std::mem::take(&mut self.has_data) {
                self.name.clear();
                return Ok(None);
            }
            let mut event = std::mem::take(&mut self.name);
            // The SSE default name "message" means unnamed: decoders only match real names.
            if event == "message" {
                event.clear();
            }
            let data = std::mem::take(&mut self.data);
            return Ok(Some(Message { event, data }));
        }
        self.bytes += wire_bytes;
        if self.bytes > MAX_EVENT_BYTES {
            return Err(format!(
                "upstream event longer than {MAX_EVENT_BYTES} bytes"
            ));
        }
        let Ok(line) = std::str::from_utf8(line) else {
            return Err("upstream sent invalid UTF-8".into());
        };
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => {
                self.name.clear();
                self.name.push_str(value);
            }
            // `id` and `retry` serve reconnection, which a reply never does.
            _ => {}
        }
        Ok(None)
    }
}

impl<S, E> Stream for SseEvents<S>
where
    S: Stream<Item = Result<bytes::Bytes, E>>,
    E: Display,
{
    type Item = Result<Message, FramingError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.failed {
                return Poll::Ready(None);
            }
            while let Some((length, terminator)) = this.next_line_end() {
                if length > MAX_LINE_BYTES {
                    return this.fail(format!("upstream line longer than {MAX_LINE_BYTES} bytes"));
                }
                match this.take_line(length, terminator) {
                    Ok(Some(message)) => return Poll::Ready(Some(Ok(message))),
                    Ok(None) => {}
                    Err(why) => return this.fail(why),
                }
            }
            if this.buffer.len() > MAX_LINE_BYTES {
                return this.fail(format!("upstream line longer than {MAX_LINE_BYTES} bytes"));
            }
            if this.ended {
                // An unfinished line or event at the end is dropped, as the SSE rules say.
                return Poll::Ready(None);
            }
            match this.body.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => this.buffer.extend_from_slice(&chunk),
                Poll::Ready(Some(Err(err))) => return this.fail(err.to_string()),
                Poll::Ready(None) => this.ended = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
