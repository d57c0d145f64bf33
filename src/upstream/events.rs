//! A successful response body as reply events: framing, the adapter's decoder, and the
//! first-byte and between-chunk deadlines. Polled by hand rather than built from `unfold` and
//! `select!` (issue 21): a token then costs one poll of the body and no future rebuilt around
//! it, and the stall timer is pushed forward once per wait instead of once per message.

use crate::upstream::redact::Secrets;
use deepchat_adapters::{framing, Event, StreamDecoder};
use futures_util::stream::{BoxStream, Stream, StreamExt};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

pub struct UpstreamEvents {
    messages: BoxStream<'static, Result<framing::Message, framing::FramingError>>,
    decoder: Box<dyn StreamDecoder>,
    /// Decoded and not yet returned.
    pending: VecDeque<Event>,
    /// Redacted from error texts the upstream sends.
    secrets: Secrets,
    /// One timer per reply: at first the first-byte deadline, then the stall deadline.
    timer: Pin<Box<Sleep>>,
    chunk_timeout: Duration,
    /// No body data yet: the timer runs to the first-byte deadline.
    first: bool,
    /// A message came since the timer was last set: it is set again before waiting.
    progressed: bool,
    ended: bool,
}

impl UpstreamEvents {
    pub fn new(
        messages: BoxStream<'static, Result<framing::Message, framing::FramingError>>,
        decoder: Box<dyn StreamDecoder>,
        secrets: Secrets,
        first_deadline: Instant,
        chunk_timeout: Duration,
    ) -> UpstreamEvents {
        UpstreamEvents {
            messages,
            decoder,
            pending: VecDeque::new(),
            secrets,
            timer: Box::pin(tokio::time::sleep_until(first_deadline)),
            chunk_timeout,
            first: true,
            progressed: false,
            ended: false,
        }
    }

    fn stalled(&mut self) {
        self.ended = true;
        let message = if self.first {
            "the upstream stalled: no reply data before the first-byte timeout".to_owned()
        } else {
            format!(
                "the upstream stalled: nothing for {} s",
                self.chunk_timeout.as_secs()
            )
        };
        self.pending.push_back(Event::Error(message));
    }
}

impl Stream for UpstreamEvents {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let this = self.get_mut();
        loop {
            if let Some(event) = this.pending.pop_front() {
                return Poll::Ready(Some(match event {
                    Event::Error(message) => Event::Error(this.secrets.redact(&message)),
                    other => other,
                }));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            match this.messages.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(message))) => {
                    this.first = false;
                    this.progressed = true;
                    this.pending.extend(this.decoder.decode(&message));
                    continue;
                }
                Poll::Ready(Some(Err(err))) => {
                    this.ended = true;
                    this.pending.push_back(Event::Error(format!(
                        "the upstream stream broke off: {err}"
                    )));
                    continue;
                }
                Poll::Ready(None) => {
                    this.ended = true;
                    this.pending.extend(this.decoder.end());
                    continue;
                }
                Poll::Pending => {}
            }
            // Nothing more for now: the stall deadline counts from here, right after the last
            // message was handled.
            if std::mem::take(&mut this.progressed) {
                let deadline = Instant::now() + this.chunk_timeout;
                this.timer.as_mut().reset(deadline);
            }
            match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => this.stalled(),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
