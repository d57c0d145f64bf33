//! The socket's write half as a sink of typed reply frames, shaped by the socket's reply mode.

use crate::deepchat::frames;
use crate::deepchat::keepalive::Keepalive;
use crate::deepchat::ws_reply::Shaper;
use crate::reply::frame::ReplyFrame;
use bytes::BytesMut;
use futures_util::stream::SplitSink;
use futures_util::{Sink, SinkExt};
use hyper_util::rt::TokioIo;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

pub(super) type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Text frames up to this many bytes are written through the socket's reused frame buffer;
/// longer ones (text merged while the client was behind) get their own, so an idle socket
/// keeps at most a few KiB.
const REUSED_FRAME_TEXT_BYTES: usize = 1024;

/// The socket's write half as a sink of typed frames, shaped by the socket's reply mode
/// ([`Shaper`]); a keepalive ping goes out before a frame when one is due.
pub(super) struct FrameSink {
    /// The socket's write half.
    pub(super) inner: SplitSink<Socket, Message>,
    /// Turns frames into the mode's messages (stop key, whole reply, text so far).
    pub(super) shaper: Shaper,
    /// Messages shaped but not yet written (at most a frame's few), written before anything else.
    outbox: VecDeque<Message>,
    /// The shaper's output for one frame, reused: no queue allocated per frame.
    shaped: VecDeque<String>,
    /// Where plain text frames are serialized: tungstenite copies a message into its own
    /// output buffer when it is sent, so this allocation is reclaimed for the next frame.
    wire: BytesMut,
    /// During a reply: when the next keepalive ping is due and whether the last was answered.
    pub(super) keepalive: Option<Arc<Keepalive>>,
    /// A ping fell due and goes out before the next frame.
    pub(super) ping_owed: bool,
}

impl FrameSink {
    pub(super) fn new(inner: SplitSink<Socket, Message>, shaper: Shaper) -> Self {
        FrameSink {
            inner,
            shaper,
            outbox: VecDeque::new(),
            shaped: VecDeque::new(),
            wire: BytesMut::new(),
            keepalive: None,
            ping_owed: false,
        }
    }

    /// Writes the shaped messages that wait into the socket.
    fn poll_outbox(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        while !self.outbox.is_empty() {
            ready!(self.inner.poll_ready_unpin(cx))?;
            if let Some(message) = self.outbox.pop_front() {
                self.inner.start_send_unpin(message)?;
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Overwrite: queues the text so far when its turn has come. It never makes the relay wait
    /// for its turn: a relay held back per frame would fall behind the upstream by a frame time
    /// per token (the bench's overwrite-100 measured it) and merge nothing. Text that is not due
    /// yet stays in the shaper and goes with the next frame, or with the reply's end.
    fn queue_due_overwrite(&mut self) {
        if let Some(due) = self.shaper.overwrite_due() {
            if due <= Instant::now() {
                let mut shaped = VecDeque::new();
                self.shaper.flush_overwrite(&mut shaped);
                self.outbox.extend(shaped.into_iter().map(Message::text));
            }
        }
    }
}

pub(super) type WsError = tokio_tungstenite::tungstenite::Error;

/// A reply's sink that passes every frame but the end, noting that it came: the session sends
/// it after the turn is saved.
pub(super) struct HoldEnd<'a> {
    pub(super) inner: &'a mut FrameSink,
    pub(super) ended: bool,
}

impl Sink<ReplyFrame> for HoldEnd<'_> {
    type Error = WsError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready_unpin(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, frame: ReplyFrame) -> Result<(), Self::Error> {
        if frame == ReplyFrame::End {
            self.ended = true;
            return Ok(());
        }
        self.inner.start_send_unpin(frame)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_flush_unpin(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_close_unpin(cx)
    }
}

impl Sink<ReplyFrame> for FrameSink {
    type Error = WsError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = &mut *self;
        ready!(this.poll_outbox(cx))?;
        // Marked unanswered when due, before the write: a ping that cannot be written counts.
        this.ping_owed |= this.keepalive.as_ref().is_some_and(|k| k.ping_due());
        if this.ping_owed {
            ready!(this.inner.poll_ready_unpin(cx))?;
            this.inner
                .start_send_unpin(Message::Ping(Default::default()))?;
            this.ping_owed = false;
        }
        this.inner.poll_ready_unpin(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, frame: ReplyFrame) -> Result<(), Self::Error> {
        let this = &mut *self;
        match &frame {
            // The streamed token, the common case: no String, no queue, no allocation.
            ReplyFrame::Text(text)
                if text.len() <= REUSED_FRAME_TEXT_BYTES && this.shaper.is_plain_text(&frame) =>
            {
                frames::text_json_into(text, &mut this.wire);
                let json = this.wire.split().freeze();
                // serde_json writes UTF-8; should that ever fail, the shaper's String is used.
                match Utf8Bytes::try_from(json) {
                    Ok(json) => this.outbox.push_back(Message::Text(json)),
                    Err(_) => {
                        this.shaper.shape(frame, &mut this.shaped);
                        this.outbox.extend(this.shaped.drain(..).map(Message::text));
                    }
                }
            }
            _ => {
                this.shaper.shape(frame, &mut this.shaped);
                this.outbox.extend(this.shaped.drain(..).map(Message::text));
            }
        }
        // Written here when the socket has room (poll_ready said so), else by the next poll.
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.queue_due_overwrite();
        ready!(self.poll_outbox(cx))?;
        self.inner.poll_flush_unpin(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        ready!(self.poll_outbox(cx))?;
        self.inner.poll_close_unpin(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WsReply;

    #[test]
    fn a_plain_text_frame_written_into_the_buffer_is_what_the_shaper_sends() {
        let mut shaper = Shaper::new(WsReply::StopKey, "stop-key".into());
        let mut wire = BytesMut::new();
        for text in ["Hi", "a\"b\n😀", "stop-key!"] {
            let frame = ReplyFrame::Text(text.into());
            assert!(shaper.is_plain_text(&frame));
            frames::text_json_into(text, &mut wire);
            let mut shaped = VecDeque::new();
            shaper.shape(frame, &mut shaped);
            assert_eq!(
                Vec::from(shaped),
                vec![std::str::from_utf8(&wire.split()).expect("utf-8")]
            );
        }
        assert!(!shaper.is_plain_text(&ReplyFrame::Text("stop-key".into())));
        assert!(!shaper.is_plain_text(&ReplyFrame::End));
        shaper.shape(ReplyFrame::Status("Thinking…".into()), &mut VecDeque::new());
        assert!(
            !shaper.is_plain_text(&ReplyFrame::Text("4".into())),
            "the answer's first text overwrites the status"
        );
        for mode in [WsReply::Whole, WsReply::Overwrite] {
            let shaper = Shaper::new(mode, "stop-key".into());
            assert!(!shaper.is_plain_text(&ReplyFrame::Text("a".into())));
        }
    }
}
