//! Deep Chat's `stream: true` over HTTP: one `data: {json}` Server-Sent Event per frame; the
//! reply ends when the response ends. Frames flow through a small bounded channel, so a slow
//! reader slows the upstream read instead of growing memory, and a closed connection (tab
//! closed, stop button) drops the receiver, which cancels the relay and the upstream request.
//! Shown thinking is text under its own role; the answer's first text then names its role
//! (`ai`) or, after a status, overwrites it.

use crate::config::Route;
use crate::deepchat::frames;
use crate::reply::conversation::Kept;
use crate::reply::frame::ReplyFrame;
use crate::reply::pipeline::{self, Prepared};
use crate::reply::relay::RelayLimits;
use crate::response::Body;
use crate::App;
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::Response;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Frames buffered between the relay and the socket.
const CHANNEL_FRAMES: usize = 8;

/// Starts the prepared reply on `route` and returns its streaming response; a named
/// conversation's turn (`kept`) is saved before the response ends.
pub fn respond(
    app: Arc<App>,
    route: &Route,
    prepared: Prepared,
    kept: Option<Kept>,
) -> Response<Body> {
    let memory_bytes = route.limits.reply_memory_bytes();
    let (sender, receiver) = mpsc::channel::<Bytes>(CHANNEL_FRAMES);
    let watcher = sender.clone();
    let after = sender.clone();
    let sessions = app.sessions.clone();
    sessions.spawn(async move {
        // The opening of the next text, and whether this reply's AI message is open (a
        // status then replaces it: a tool's status after text).
        let state = (sender, Opening::Plain, false);
        let sink = futures_util::sink::unfold(
            state,
            |(sender, opening, open), frame: ReplyFrame| async move {
                let (json, opening) = match (&frame, opening) {
                    (ReplyFrame::Status(text), _) if open => {
                        (Some(frames::overwrite_json(text)), Opening::Overwrite)
                    }
                    (ReplyFrame::Status(_), _) => (frames::to_json(&frame), Opening::Overwrite),
                    (ReplyFrame::Text(text), Opening::NewRole) => (
                        Some(frames::answer_after_thinking_json(text)),
                        Opening::Plain,
                    ),
                    (ReplyFrame::Text(text), Opening::Overwrite) => {
                        (Some(frames::overwrite_json(text)), Opening::Plain)
                    }
                    (ReplyFrame::Thinking(_), _) => (frames::to_json(&frame), Opening::NewRole),
                    // The end and `ThinkingDone` (`None`): the response ends when the relay drops
                    // the sender; the thinking's end is said by the answer's first text.
                    (_, opening) => (frames::to_json(&frame), opening),
                };
                let open = open || matches!(frame, ReplyFrame::Text(_) | ReplyFrame::Status(_));
                match json {
                    Some(json) => sender
                        .send(event(&json))
                        .await
                        .map(|_| (sender, opening, open)),
                    None => Ok((sender, opening, open)),
                }
            },
        );
        let mut sink = std::pin::pin!(sink);
        // Without a named conversation the text is kept only to be logged.
        let keep_text = if app.config.log_content || kept.is_some() {
            memory_bytes
        } else {
            0
        };
        let outcome = pipeline::run(
            &app,
            prepared,
            &mut sink,
            RelayLimits::keeping(keep_text),
            async move { watcher.closed().await },
            "http-sse",
        )
        .await;
        if let (Some(kept), false) = (kept, outcome.cancelled) {
            if let Some(note) = kept
                .finish(outcome.reply_turn(outcome.text.clone()))
                .await
                .as_ref()
                .and_then(frames::to_json)
            {
                let _ = after.send(event(&note)).await;
            }
        }
    });
    let frames = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|bytes| (Ok(Frame::data(bytes)), receiver))
    });
    let mut response = Response::new(StreamBody::new(frames).boxed());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Tells nginx not to buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// What the answer's first text must carry after thinking, over SSE, where one response is
/// one Deep Chat message unless a frame says otherwise (seen in Chromium).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opening {
    /// Nothing: no thinking was shown.
    Plain,
    /// `role: "ai"`: Deep Chat 2.x then starts the answer's own message after the thinking
    /// one (1.4.11 keeps one message).
    NewRole,
    /// `overwrite: true`: the answer replaces the status.
    Overwrite,
}

/// One SSE event carrying a JSON frame (JSON never contains a raw newline).
fn event(frame: &str) -> Bytes {
    let mut bytes = Vec::with_capacity(frame.len() + 8);
    bytes.extend_from_slice(b"data: ");
    bytes.extend_from_slice(frame.as_bytes());
    bytes.extend_from_slice(b"\n\n");
    Bytes::from(bytes)
}
