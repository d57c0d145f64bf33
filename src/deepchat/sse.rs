//! Deep Chat's `stream: true` over HTTP: one `data: {json}` Server-Sent Event per frame; the
//! reply ends when the response ends. Frames flow through a small bounded channel, so a slow
//! reader slows the upstream read instead of growing memory, and a closed connection (tab
//! closed, stop button) drops the receiver, which cancels the relay and the upstream request.

use crate::ops::telemetry;
use crate::reply;
use crate::reply::relay::{self, Ending};
use crate::response::Body;
use crate::App;
use bytes::Bytes;
use deepchat_adapters::EventStream;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::Response;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// Frames buffered between the relay and the socket.
const CHANNEL_FRAMES: usize = 8;

/// Starts relaying `events` and returns the streaming response. `streaming` keeps the reply
/// counted as active until the relay ends.
pub fn respond(
    events: EventStream,
    app: Arc<App>,
    started: Instant,
    question: Option<String>,
    streaming: telemetry::Active,
) -> Response<Body> {
    let (sender, receiver) = mpsc::channel::<Bytes>(CHANNEL_FRAMES);
    let watcher = sender.clone();
    let sessions = app.sessions.clone();
    sessions.spawn(async move {
        let sink = futures_util::sink::unfold(sender, |sender, frame: String| async move {
            sender.send(event(&frame)).await.map(|_| sender)
        });
        let mut sink = std::pin::pin!(sink);
        // HTTP has no conversation memory: the text is kept only to be logged.
        let keep_text = if app.config.log_content {
            app.config.limits.reply_memory_bytes()
        } else {
            0
        };
        let outcome = relay::relay(events, &mut sink, Ending::Close, keep_text, async move {
            watcher.closed().await
        })
        .await;
        drop(streaming);
        let context = reply::log::context(&app, "http-sse", started, question.as_deref());
        reply::log::finished(&context, &outcome, app.config.log_content);
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

/// One SSE event carrying a JSON frame (JSON never contains a raw newline).
fn event(frame: &str) -> Bytes {
    let mut bytes = Vec::with_capacity(frame.len() + 8);
    bytes.extend_from_slice(b"data: ");
    bytes.extend_from_slice(frame.as_bytes());
    bytes.extend_from_slice(b"\n\n");
    Bytes::from(bytes)
}
