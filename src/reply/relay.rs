//! One reply, transport-agnostic: adapter events in, typed [`ReplyFrame`]s out. Owns the
//! policy: re-chunking (merge only what is already queued), turning finish reasons and errors
//! into one clear error frame, always ending with [`ReplyFrame::End`], stopping at once when
//! the client leaves, and a reasoning model's thinking as `--reasoning` says
//! ([`ThinkingShaper`]: never in the answer text). How a frame looks on the wire (the stop key, SSE lines) is the sink's.

use crate::config::ReasoningDisplay;
use crate::error::ProxyError;
use crate::reply::frame::{file_kind, FileFrame, ReplyFrame};
use crate::reply::thinking::ThinkingShaper;
use crate::reply::tool_display::{add_usage, ToolDisplay};
use crate::request_id::RequestId;
use crate::store::record::ROUND_BREAK;
use deepchat_adapters::{Event, EventStream, FinishReason, ToolRound, Turn, Usage};
use futures_util::{FutureExt, Sink, SinkExt, StreamExt};
use std::future::Future;
use std::pin::pin;

/// Most text merged into one frame when the client is behind.
const MAX_MERGED_BYTES: usize = 16 * 1024;

/// How a reply ended.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The text the client was sent, in order, up to the relay's `keep_text` budget (for the
    /// conversation memory or a JSON answer); beyond it text is relayed but not kept, so a
    /// client that stops reading cannot grow the proxy's memory through its reply.
    pub text: String,
    /// Bytes of text the client was sent, kept or not.
    pub relayed_bytes: usize,
    /// The error shown to the user, if any.
    pub error: Option<ProxyError>,
    /// The client left (or its socket broke) before the reply ended.
    pub cancelled: bool,
    pub usage: Option<Usage>,
    /// Files the client was sent (images from the model).
    pub files: Vec<FileFrame>,
    /// Text frames sent (after merging).
    pub text_frames: usize,
    /// When the first text reached the client's socket buffer (time to first token): the
    /// answer's, never the thinking's.
    pub first_text_at: Option<std::time::Instant>,
    /// When the first thinking arrived from the upstream, shown or not.
    pub first_thinking_at: Option<std::time::Instant>,
    /// The tool rounds before the answer (for the conversation memory).
    pub tool_rounds: Vec<ToolRound>,
    /// Where the answer's own text starts in [`Outcome::text`] (after the rounds' text).
    pub answer_from: usize,
}

impl Outcome {
    /// The assistant turn to remember when the user saw `shown` (the reply's text, or none
    /// when it is forgotten): with tool rounds, the answer's own text and the rounds.
    pub fn reply_turn(&self, shown: String) -> Turn {
        if self.tool_rounds.is_empty() || shown.is_empty() {
            return Turn::assistant(shown);
        }
        let answer = shown.get(self.answer_from..).unwrap_or("").to_owned();
        let mut turn = Turn::assistant(answer);
        turn.tool_rounds = self.tool_rounds.clone();
        turn
    }
}

/// How much of a reply the relay keeps and lets through.
#[derive(Debug, Clone, Copy)]
pub struct RelayLimits {
    /// Bytes of text kept in [`Outcome::text`].
    pub keep_text: usize,
    /// Bytes of text and files after which the reply is stopped with
    /// [`ProxyError::ReplyTooLong`] (a buffered JSON answer); `usize::MAX` for none.
    pub max_bytes: usize,
    /// With tools: bytes of the answer shown so far kept to restate it around a tool's status
    /// (a status replaces the message; the answer then replaces the status). Beyond it no
    /// status is shown. 0 without tools.
    pub keep_shown: usize,
    /// `--show-tool-calls`: the status names the arguments too.
    pub show_tool_calls: bool,
}

impl RelayLimits {
    /// Keeps `keep_text` bytes, relays without a cap.
    pub fn keeping(keep_text: usize) -> RelayLimits {
        RelayLimits {
            keep_text,
            max_bytes: usize::MAX,
            keep_shown: 0,
            show_tool_calls: false,
        }
    }
}

/// Relays `events` to `sink` until the upstream ends, fails, `interrupt` resolves (the reply
/// timeout, a forced stop: its error ends the reply) or `client_gone` resolves (nothing more is
/// sent). Thinking is shown as `reasoning` says. Dropping `events` on return closes the
/// upstream connection.
pub async fn relay<S, G, I>(
    mut events: EventStream,
    sink: &mut S,
    limits: RelayLimits,
    reasoning: ReasoningDisplay,
    client_gone: G,
    interrupt: I,
    request_id: &RequestId,
) -> Outcome
where
    S: Sink<ReplyFrame> + Unpin,
    G: Future<Output = ()>,
    I: Future<Output = ProxyError>,
{
    let mut client_gone = pin!(client_gone);
    let mut interrupt = pin!(interrupt);
    let mut outcome = Outcome::default();
    let mut finish = None;
    // An event read while merging text that belongs to the next iteration.
    let mut stashed: Option<Option<Event>> = None;
    // The client's socket did not take the last frame at once: it is behind.
    let mut behind = false;
    // Bytes of text, shown thinking and files the upstream produced, against `limits.max_bytes`.
    let mut produced = 0usize;
    let mut thinking = ThinkingShaper::new(reasoning);
    let mut tools = ToolDisplay::new(limits.keep_shown);

    loop {
        let event = match stashed.take() {
            Some(event) => event,
            None => tokio::select! {
                biased;
                _ = client_gone.as_mut() => {
                    outcome.cancelled = true;
                    return outcome;
                }
                error = interrupt.as_mut() => {
                    outcome.error = Some(error);
                    break;
                }
                event = events.next() => event,
            },
        };
        let Some(event) = event else { break };
        let frame = match event {
            Event::TextDelta(mut text) => {
                // When the client is behind, merge whatever the upstream already queued while
                // we waited: fewer, larger frames. When it keeps up, a frame per delta and no
                // extra poll of the upstream per token (which costs a lock on HTTP/2).
                while behind && text.len() < MAX_MERGED_BYTES {
                    match events.next().now_or_never() {
                        Some(Some(Event::TextDelta(more))) => text.push_str(&more),
                        Some(other) => {
                            stashed = Some(other);
                            break;
                        }
                        None => break,
                    }
                }
                if text.is_empty() {
                    continue;
                }
                produced = produced.saturating_add(text.len());
                if produced > limits.max_bytes {
                    outcome.error = Some(ProxyError::ReplyTooLong(limits.max_bytes));
                    break;
                }
                if let Some(done) = thinking.before_answer() {
                    if send(sink, done, client_gone.as_mut()).await.is_err() {
                        outcome.cancelled = true;
                        return outcome;
                    }
                }
                if tools.round_break {
                    tools.round_break = false;
                    let mut separator = 0;
                    if outcome.relayed_bytes > 0 {
                        text.insert_str(0, ROUND_BREAK);
                        separator = ROUND_BREAK.len();
                    }
                    outcome.answer_from = outcome.text.len() + separator;
                }
                let length = text.len();
                keep_prefix(&mut outcome.text, &text, limits.keep_text);
                outcome.answer_from = outcome.answer_from.min(outcome.text.len());
                let frame = tools.text(text);
                let Ok(waited) = send(sink, frame, client_gone.as_mut()).await else {
                    outcome.cancelled = true;
                    return outcome;
                };
                behind = waited;
                outcome.text_frames += 1;
                outcome
                    .first_text_at
                    .get_or_insert_with(std::time::Instant::now);
                outcome.relayed_bytes += length;
                continue;
            }
            Event::Reasoning(mut text) => {
                outcome
                    .first_thinking_at
                    .get_or_insert_with(std::time::Instant::now);
                // Merged like text when the client is behind, and only when it is shown.
                while behind && thinking.shows_thinking() && text.len() < MAX_MERGED_BYTES {
                    match events.next().now_or_never() {
                        Some(Some(Event::Reasoning(more))) => text.push_str(&more),
                        Some(other) => {
                            stashed = Some(other);
                            break;
                        }
                        None => break,
                    }
                }
                let Some(frame) = thinking.thinking(text) else {
                    continue;
                };
                if let ReplyFrame::Thinking(shown) = &frame {
                    produced = produced.saturating_add(shown.len());
                    if produced > limits.max_bytes {
                        outcome.error = Some(ProxyError::ReplyTooLong(limits.max_bytes));
                        break;
                    }
                }
                let Ok(waited) = send(sink, frame, client_gone.as_mut()).await else {
                    outcome.cancelled = true;
                    return outcome;
                };
                behind = waited;
                continue;
            }
            Event::File { mime, src } => {
                produced = produced.saturating_add(src.len());
                if produced > limits.max_bytes {
                    outcome.error = Some(ProxyError::ReplyTooLong(limits.max_bytes));
                    break;
                }
                if let Some(done) = thinking.before_answer() {
                    if send(sink, done, client_gone.as_mut()).await.is_err() {
                        outcome.cancelled = true;
                        return outcome;
                    }
                }
                let file = FileFrame {
                    src,
                    kind: file_kind(&mime),
                };
                outcome.files.push(file.clone());
                ReplyFrame::File(file)
            }
            Event::Usage(usage) => {
                // Each tool round is a request of its own: the reply costs their sum.
                outcome.usage = Some(match outcome.usage {
                    Some(before) => add_usage(before, usage),
                    None => usage,
                });
                continue;
            }
            Event::ToolRunning(calls) => {
                if let Some(done) = thinking.before_answer() {
                    if send(sink, done, client_gone.as_mut()).await.is_err() {
                        outcome.cancelled = true;
                        return outcome;
                    }
                }
                let line = crate::tools::status::line(&calls, limits.show_tool_calls);
                match tools.status(&line) {
                    Some(frame) => frame,
                    None => continue,
                }
            }
            Event::ToolRound(round) => {
                outcome.tool_rounds.push(round);
                continue;
            }
            Event::Finish(reason) => {
                finish = Some(reason);
                continue;
            }
            Event::Error(message) => {
                outcome.error = Some(ProxyError::Upstream(message));
                break;
            }
            // Only the tool loop reads these; without it they mean nothing to the client.
            Event::ToolCall(_) | Event::Carried(_) => continue,
        };
        if send(sink, frame, client_gone.as_mut()).await.is_err() {
            outcome.cancelled = true;
            return outcome;
        }
    }

    if outcome.error.is_none() {
        outcome.error = match finish {
            Some(FinishReason::Length) => Some(ProxyError::TokenLimit),
            Some(FinishReason::ContentFilter) => Some(ProxyError::ContentFilter),
            _ => None,
        };
    }
    // A status still shown gives way to the answer so far.
    if let Some(restated) = tools.restore() {
        if send(sink, restated, client_gone.as_mut()).await.is_err() {
            outcome.cancelled = true;
            return outcome;
        }
    }
    // The thinking shown is closed before the error or the end, as before an answer.
    if let Some(done) = thinking.before_answer() {
        if send(sink, done, client_gone.as_mut()).await.is_err() {
            outcome.cancelled = true;
            return outcome;
        }
    }
    if let Some(error) = &outcome.error {
        if send(
            sink,
            ReplyFrame::Error(request_id.tag(error)),
            client_gone.as_mut(),
        )
        .await
        .is_err()
        {
            outcome.cancelled = true;
            return outcome;
        }
    }
    // Deep Chat needs the end (the stop key on WebSocket) even after an error, or it glues the
    // next reply on.
    if send(sink, ReplyFrame::End, client_gone.as_mut())
        .await
        .is_err()
    {
        outcome.cancelled = true;
    }
    outcome
}

/// The client is gone (socket closed or write failed).
struct Gone;

/// Sends one frame; `Ok(true)` when the socket did not take it at once (the client is behind).
async fn send<S, G>(
    sink: &mut S,
    frame: ReplyFrame,
    client_gone: std::pin::Pin<&mut G>,
) -> Result<bool, Gone>
where
    S: Sink<ReplyFrame> + Unpin,
    G: Future<Output = ()>,
{
    let mut sending = pin!(sink.send(frame));
    if let Some(sent) = sending.as_mut().now_or_never() {
        return sent.map(|()| false).map_err(|_| Gone);
    }
    tokio::select! {
        biased;
        _ = client_gone => Err(Gone),
        sent = sending => sent.map(|()| true).map_err(|_| Gone),
    }
}

/// Appends as much of `text` to `kept` as fits in `budget` bytes, cut on a char boundary.
fn keep_prefix(kept: &mut String, text: &str, budget: usize) {
    let room = budget.saturating_sub(kept.len());
    if text.len() <= room {
        kept.push_str(text);
        return;
    }
    let mut cut = room;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    kept.push_str(&text[..cut]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;

    fn text(t: &str) -> ReplyFrame {
        ReplyFrame::Text(t.to_owned())
    }

    async fn run(events: Vec<Event>) -> (Outcome, Vec<ReplyFrame>) {
        run_keeping(events, usize::MAX).await
    }

    async fn run_keeping(events: Vec<Event>, keep: usize) -> (Outcome, Vec<ReplyFrame>) {
        let mut sink: Vec<ReplyFrame> = Vec::new();
        let outcome = relay(
            stream::iter(events).boxed(),
            &mut sink,
            RelayLimits::keeping(keep),
            ReasoningDisplay::Hide,
            std::future::pending(),
            std::future::pending(),
            &RequestId::new(),
        )
        .await;
        (outcome, sink)
    }

    #[tokio::test]
    async fn a_client_that_keeps_up_gets_a_frame_per_delta_then_the_end() {
        let (outcome, frames) = run(vec![
            Event::TextDelta("a".into()),
            Event::TextDelta("b".into()),
            Event::Finish(FinishReason::Stop),
        ])
        .await;
        assert_eq!(frames, vec![text("a"), text("b"), ReplyFrame::End]);
        assert_eq!(outcome.text, "ab");
        assert!(outcome.error.is_none());
    }

    /// Collects frames; its socket is full once, for the first frame.
    #[derive(Default)]
    struct FullOnce {
        frames: Vec<ReplyFrame>,
        was_full: bool,
    }

    impl Sink<ReplyFrame> for FullOnce {
        type Error = std::convert::Infallible;

        fn poll_ready(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn start_send(
            mut self: std::pin::Pin<&mut Self>,
            item: ReplyFrame,
        ) -> Result<(), Self::Error> {
            self.frames.push(item);
            Ok(())
        }

        fn poll_flush(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            if !self.was_full {
                self.was_full = true;
                cx.waker().wake_by_ref();
                return std::task::Poll::Pending;
            }
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_close(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn merges_what_queued_while_the_client_was_behind() {
        let mut sink = FullOnce::default();
        let events = vec![
            Event::TextDelta("a".into()),
            Event::TextDelta("b".into()),
            Event::TextDelta("c".into()),
            Event::Finish(FinishReason::Stop),
        ];
        let outcome = relay(
            stream::iter(events).boxed(),
            &mut sink,
            RelayLimits::keeping(usize::MAX),
            ReasoningDisplay::Hide,
            std::future::pending(),
            std::future::pending(),
            &RequestId::new(),
        )
        .await;
        assert_eq!(sink.frames, vec![text("a"), text("bc"), ReplyFrame::End]);
        assert_eq!(outcome.text_frames, 2);
    }

    #[tokio::test]
    async fn error_then_end() {
        let (outcome, frames) = run(vec![
            Event::TextDelta("part".into()),
            Event::Error("boom".into()),
            Event::TextDelta("never".into()),
        ])
        .await;
        assert_eq!(frames.len(), 3, "{frames:?}");
        assert_eq!(frames[0], text("part"));
        assert!(
            matches!(&frames[1], ReplyFrame::Error(e) if e.starts_with("boom (request id ")),
            "{frames:?}"
        );
        assert_eq!(frames[2..], vec![ReplyFrame::End]);
        assert_eq!(outcome.error, Some(ProxyError::Upstream("boom".into())));
    }

    #[tokio::test]
    async fn length_finish_is_flagged() {
        let (outcome, frames) = run(vec![
            Event::TextDelta("cut".into()),
            Event::Finish(FinishReason::Length),
        ])
        .await;
        assert!(matches!(&frames[1], ReplyFrame::Error(e) if e.contains("token limit")));
        assert_eq!(outcome.error, Some(ProxyError::TokenLimit));
    }

    #[tokio::test]
    async fn keeps_only_the_text_budget_but_relays_everything() {
        let (outcome, _) = run_keeping(vec![Event::TextDelta("ab".into())], 3).await;
        assert_eq!(outcome.text, "ab");
        assert_eq!(outcome.relayed_bytes, 2);

        let (outcome, frames) = run_keeping(vec![Event::TextDelta("abcdef".into())], 4).await;
        assert_eq!(outcome.text, "abcd");
        assert_eq!(outcome.relayed_bytes, 6);
        assert_eq!(reassembled(&frames), "abcdef");

        let mut kept = String::from("ab");
        keep_prefix(&mut kept, "cé", 4);
        assert_eq!(kept, "abc", "cut on the char boundary before the budget");
        keep_prefix(&mut kept, "more", 4);
        assert_eq!(kept, "abcm", "fills the budget exactly");
        keep_prefix(&mut kept, "x", 4);
        assert_eq!(kept, "abcm");
    }

    fn reassembled(frames: &[ReplyFrame]) -> String {
        frames
            .iter()
            .filter_map(|f| match f {
                ReplyFrame::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_reply_past_its_cap_ends_with_an_error() {
        let mut sink: Vec<ReplyFrame> = Vec::new();
        let outcome = relay(
            stream::iter(vec![
                Event::TextDelta("abc".into()),
                Event::TextDelta("def".into()),
            ])
            .boxed(),
            &mut sink,
            RelayLimits {
                max_bytes: 4,
                ..RelayLimits::keeping(usize::MAX)
            },
            ReasoningDisplay::Hide,
            std::future::pending(),
            std::future::pending(),
            &RequestId::new(),
        )
        .await;
        assert_eq!(outcome.error, Some(ProxyError::ReplyTooLong(4)));
        assert_eq!(sink[0], text("abc"));
        assert!(matches!(&sink[1], ReplyFrame::Error(e) if e.contains("4-byte")));
        assert_eq!(sink[2], ReplyFrame::End);
    }

    #[tokio::test]
    async fn an_interrupt_ends_the_reply_with_its_error_and_the_end() {
        let mut sink: Vec<ReplyFrame> = Vec::new();
        let id = RequestId::new();
        let outcome = relay(
            stream::pending().boxed(),
            &mut sink,
            RelayLimits::keeping(usize::MAX),
            ReasoningDisplay::Hide,
            std::future::pending(),
            std::future::ready(ProxyError::Timeout(3)),
            &id,
        )
        .await;
        assert_eq!(outcome.error, Some(ProxyError::Timeout(3)));
        assert_eq!(
            sink,
            vec![
                ReplyFrame::Error(format!(
                    "the reply took longer than 3 s and was stopped (request id {id})"
                )),
                ReplyFrame::End
            ]
        );
    }

    #[tokio::test]
    async fn client_gone_stops_at_once() {
        let mut sink: Vec<ReplyFrame> = Vec::new();
        let outcome = relay(
            stream::pending().boxed(),
            &mut sink,
            RelayLimits::keeping(usize::MAX),
            ReasoningDisplay::Hide,
            std::future::ready(()),
            std::future::pending(),
            &RequestId::new(),
        )
        .await;
        assert!(outcome.cancelled);
        assert!(sink.is_empty());
    }

    async fn run_showing(
        events: Vec<Event>,
        reasoning: ReasoningDisplay,
    ) -> (Outcome, Vec<ReplyFrame>) {
        let mut sink: Vec<ReplyFrame> = Vec::new();
        let outcome = relay(
            stream::iter(events).boxed(),
            &mut sink,
            RelayLimits::keeping(usize::MAX),
            reasoning,
            std::future::pending(),
            std::future::pending(),
            &RequestId::new(),
        )
        .await;
        (outcome, sink)
    }

    fn thinking_then_answer() -> Vec<Event> {
        vec![
            Event::Reasoning("Let me ".into()),
            Event::Reasoning("think.".into()),
            Event::TextDelta("Answer".into()),
            Event::Finish(FinishReason::Stop),
        ]
    }

    #[tokio::test]
    async fn hidden_thinking_sends_nothing_and_is_never_the_answer() {
        let (outcome, frames) = run_showing(thinking_then_answer(), ReasoningDisplay::Hide).await;
        assert_eq!(frames, vec![text("Answer"), ReplyFrame::End]);
        assert_eq!(outcome.text, "Answer");
        assert!(outcome.first_thinking_at.is_some());
        assert!(outcome.first_thinking_at <= outcome.first_text_at);
    }

    #[tokio::test]
    async fn shown_thinking_comes_first_and_is_closed_before_the_answer() {
        let (outcome, frames) = run_showing(thinking_then_answer(), ReasoningDisplay::Show).await;
        assert_eq!(
            frames,
            vec![
                ReplyFrame::Thinking("Let me ".into()),
                ReplyFrame::Thinking("think.".into()),
                ReplyFrame::ThinkingDone,
                text("Answer"),
                ReplyFrame::End
            ]
        );
        assert_eq!(outcome.text, "Answer", "only the answer is remembered");
        assert_eq!(outcome.text_frames, 1);
    }

    #[tokio::test]
    async fn status_is_one_frame_and_thinking_that_fails_is_closed_before_the_error() {
        let (_, frames) = run_showing(thinking_then_answer(), ReasoningDisplay::Status).await;
        assert_eq!(
            frames,
            vec![
                ReplyFrame::Status(crate::reply::frame::STATUS_TEXT.into()),
                ReplyFrame::ThinkingDone,
                text("Answer"),
                ReplyFrame::End
            ]
        );
        let (outcome, frames) = run_showing(
            vec![Event::Reasoning("hm".into()), Event::Error("boom".into())],
            ReasoningDisplay::Show,
        )
        .await;
        assert_eq!(frames.len(), 4, "{frames:?}");
        assert_eq!(
            frames[..2],
            [ReplyFrame::Thinking("hm".into()), ReplyFrame::ThinkingDone]
        );
        assert!(
            matches!(&frames[2], ReplyFrame::Error(e) if e.starts_with("boom (request id ")),
            "{frames:?}"
        );
        assert_eq!(frames[3], ReplyFrame::End);
        assert!(outcome.text.is_empty());
        assert!(
            outcome.first_text_at.is_none(),
            "thinking is no first token"
        );
    }

    #[tokio::test]
    async fn shown_thinking_counts_against_the_reply_cap() {
        let mut sink: Vec<ReplyFrame> = Vec::new();
        let outcome = relay(
            stream::iter(vec![Event::Reasoning("abcdef".into())]).boxed(),
            &mut sink,
            RelayLimits {
                max_bytes: 4,
                ..RelayLimits::keeping(usize::MAX)
            },
            ReasoningDisplay::Show,
            std::future::pending(),
            std::future::pending(),
            &RequestId::new(),
        )
        .await;
        assert_eq!(outcome.error, Some(ProxyError::ReplyTooLong(4)));
    }
}
