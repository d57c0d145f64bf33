//! One reply, transport-agnostic: adapter events in, Deep Chat frames out. Owns the policy:
//! re-chunking (merge only what is already queued), the stop-key guarantees, turning finish
//! reasons and errors into one clear error frame, and stopping at once when the client leaves.

use crate::deepchat::frames::{file_kind, FileFrame, Frame};
use deepchat_adapters::{Event, EventStream, FinishReason, Usage};
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
    pub error: Option<String>,
    /// The client left (or its socket broke) before the reply ended.
    pub cancelled: bool,
    pub usage: Option<Usage>,
    /// Files the client was sent (images from the model).
    pub files: Vec<FileFrame>,
    /// Text frames sent (after merging).
    pub text_frames: usize,
    /// When the first text reached the client's socket buffer (time to first token).
    pub first_text_at: Option<std::time::Instant>,
}

/// What ends a reply on this transport.
#[derive(Debug, Clone, Copy)]
pub enum Ending<'a> {
    /// WebSocket: a text frame exactly equal to the stop key.
    StopKey(&'a str),
    /// HTTP streaming: the response simply ends.
    Close,
}

/// Relays `events` to `sink` until the upstream ends, fails, or `client_gone` resolves.
/// Dropping `events` on return closes the upstream connection. At most `keep_text` bytes of the
/// reply are kept in [`Outcome::text`].
pub async fn relay<S, G>(
    mut events: EventStream,
    sink: &mut S,
    ending: Ending<'_>,
    keep_text: usize,
    client_gone: G,
) -> Outcome
where
    S: Sink<String> + Unpin,
    G: Future<Output = ()>,
{
    let mut client_gone = pin!(client_gone);
    let mut outcome = Outcome::default();
    let mut finish = None;
    // An event read while merging text that belongs to the next iteration.
    let mut stashed: Option<Option<Event>> = None;
    // The client's socket did not take the last frame at once: it is behind.
    let mut behind = false;

    loop {
        let event = match stashed.take() {
            Some(event) => event,
            None => tokio::select! {
                biased;
                _ = client_gone.as_mut() => {
                    outcome.cancelled = true;
                    return outcome;
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
                let Ok((frames, waited)) =
                    send_text(sink, &text, ending, client_gone.as_mut()).await
                else {
                    outcome.cancelled = true;
                    return outcome;
                };
                behind = waited;
                outcome.text_frames += frames;
                outcome
                    .first_text_at
                    .get_or_insert_with(std::time::Instant::now);
                outcome.relayed_bytes += text.len();
                keep_prefix(&mut outcome.text, &text, keep_text);
                continue;
            }
            Event::File { mime, src } => {
                let file = FileFrame {
                    src,
                    kind: file_kind(&mime),
                };
                let frame = Frame::Files(std::slice::from_ref(&file)).to_json();
                outcome.files.push(file);
                frame
            }
            Event::Usage(usage) => {
                outcome.usage = Some(usage);
                continue;
            }
            Event::Finish(reason) => {
                finish = Some(reason);
                continue;
            }
            Event::Error(message) => {
                outcome.error = Some(message);
                break;
            }
        };
        if send(sink, frame, client_gone.as_mut()).await.is_err() {
            outcome.cancelled = true;
            return outcome;
        }
    }

    if outcome.error.is_none() {
        outcome.error = match finish {
            Some(FinishReason::Length) => {
                Some("The reply was cut off because the model reached its token limit.".to_owned())
            }
            Some(FinishReason::ContentFilter) => {
                Some("The provider's content filter stopped this reply.".to_owned())
            }
            _ => None,
        };
    }
    if let Some(error) = &outcome.error {
        if send(sink, Frame::Error(error).to_json(), client_gone.as_mut())
            .await
            .is_err()
        {
            outcome.cancelled = true;
            return outcome;
        }
    }
    // Deep Chat needs the stop key even after an error, or it glues the next reply on.
    if let Ending::StopKey(key) = ending {
        if send(sink, Frame::Text(key).to_json(), client_gone.as_mut())
            .await
            .is_err()
        {
            outcome.cancelled = true;
        }
    }
    outcome
}

/// Ends `events` with an error when the reply takes longer than `limit` or the server is forced
/// to stop, so the client always gets a clear error and (on WebSocket) the stop key.
pub fn interruptible(
    events: EventStream,
    limit: std::time::Duration,
    force_stop: tokio_util::sync::CancellationToken,
) -> EventStream {
    let deadline = Box::pin(tokio::time::sleep(limit));
    futures_util::stream::unfold(
        (Some(events), deadline, force_stop),
        move |(events, mut deadline, force_stop)| async move {
            let mut events = events?;
            let interrupted = tokio::select! {
                event = events.next() => return event.map(|e| (e, (Some(events), deadline, force_stop))),
                _ = &mut deadline => format!("the reply took longer than {} s and was stopped", limit.as_secs()),
                _ = force_stop.cancelled() => "the server is shutting down; please send your message again".to_owned(),
            };
            Some((Event::Error(interrupted), (None, deadline, force_stop)))
        },
    )
    .boxed()
}

/// The client is gone (socket closed or write failed).
struct Gone;

/// Sends one frame; `Ok(true)` when the socket did not take it at once (the client is behind).
async fn send<S, G>(
    sink: &mut S,
    frame: String,
    client_gone: std::pin::Pin<&mut G>,
) -> Result<bool, Gone>
where
    S: Sink<String> + Unpin,
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

/// Sends text so that no frame equals the stop key: such a chunk goes out as two frames.
/// Returns the number of frames sent and whether the client was behind.
async fn send_text<S, G>(
    sink: &mut S,
    text: &str,
    ending: Ending<'_>,
    mut client_gone: std::pin::Pin<&mut G>,
) -> Result<(usize, bool), Gone>
where
    S: Sink<String> + Unpin,
    G: Future<Output = ()>,
{
    let parts = match ending {
        Ending::StopKey(key) if text == key => split_first_char(text),
        _ => (text, ""),
    };
    let waited = send(sink, Frame::Text(parts.0).to_json(), client_gone.as_mut()).await?;
    if parts.1.is_empty() {
        return Ok((1, waited));
    }
    let waited_again = send(sink, Frame::Text(parts.1).to_json(), client_gone).await?;
    Ok((2, waited || waited_again))
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

fn split_first_char(text: &str) -> (&str, &str) {
    let cut = text.chars().next().map_or(0, char::len_utf8);
    text.split_at(cut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;

    fn texts(frames: &[String]) -> Vec<serde_json::Value> {
        frames
            .iter()
            .map(|f| serde_json::from_str(f).expect("json frame"))
            .collect()
    }

    async fn run(events: Vec<Event>) -> (Outcome, Vec<serde_json::Value>) {
        run_keeping(events, usize::MAX).await
    }

    async fn run_keeping(events: Vec<Event>, keep: usize) -> (Outcome, Vec<serde_json::Value>) {
        let mut sink: Vec<String> = Vec::new();
        let outcome = relay(
            stream::iter(events).boxed(),
            &mut sink,
            Ending::StopKey("stop-key"),
            keep,
            std::future::pending(),
        )
        .await;
        (outcome, texts(&sink))
    }

    #[tokio::test]
    async fn a_client_that_keeps_up_gets_a_frame_per_delta_then_the_stop_key() {
        let (outcome, frames) = run(vec![
            Event::TextDelta("a".into()),
            Event::TextDelta("b".into()),
            Event::Finish(FinishReason::Stop),
        ])
        .await;
        assert_eq!(
            frames,
            vec![
                serde_json::json!({"text":"a"}),
                serde_json::json!({"text":"b"}),
                serde_json::json!({"text":"stop-key"})
            ]
        );
        assert_eq!(outcome.text, "ab");
        assert!(outcome.error.is_none());
    }

    /// Collects frames; its socket is full once, for the first frame.
    #[derive(Default)]
    struct FullOnce {
        frames: Vec<String>,
        was_full: bool,
    }

    impl Sink<String> for FullOnce {
        type Error = std::convert::Infallible;

        fn poll_ready(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn start_send(mut self: std::pin::Pin<&mut Self>, item: String) -> Result<(), Self::Error> {
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
            Ending::StopKey("stop-key"),
            usize::MAX,
            std::future::pending(),
        )
        .await;
        assert_eq!(
            texts(&sink.frames),
            vec![
                serde_json::json!({"text":"a"}),
                serde_json::json!({"text":"bc"}),
                serde_json::json!({"text":"stop-key"})
            ]
        );
        assert_eq!(outcome.text_frames, 2);
    }

    #[tokio::test]
    async fn stop_key_collision_is_split() {
        let (_, frames) = run(vec![Event::TextDelta("stop-key".into())]).await;
        assert_eq!(
            frames,
            vec![
                serde_json::json!({"text":"s"}),
                serde_json::json!({"text":"top-key"}),
                serde_json::json!({"text":"stop-key"})
            ]
        );
    }

    #[tokio::test]
    async fn error_then_stop_key() {
        let (outcome, frames) = run(vec![
            Event::TextDelta("part".into()),
            Event::Error("boom".into()),
            Event::TextDelta("never".into()),
        ])
        .await;
        assert_eq!(
            frames,
            vec![
                serde_json::json!({"text":"part"}),
                serde_json::json!({"error":"boom"}),
                serde_json::json!({"text":"stop-key"})
            ]
        );
        assert_eq!(outcome.error.as_deref(), Some("boom"));
    }

    #[tokio::test]
    async fn length_finish_is_flagged() {
        let (_, frames) = run(vec![
            Event::TextDelta("cut".into()),
            Event::Finish(FinishReason::Length),
        ])
        .await;
        assert!(frames[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("token limit")));
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

    fn reassembled(frames: &[serde_json::Value]) -> String {
        frames
            .iter()
            .filter_map(|f| f["text"].as_str())
            .filter(|t| *t != "stop-key")
            .collect()
    }

    #[tokio::test]
    async fn client_gone_stops_at_once() {
        let mut sink: Vec<String> = Vec::new();
        let outcome = relay(
            stream::pending().boxed(),
            &mut sink,
            Ending::StopKey("stop-key"),
            usize::MAX,
            std::future::ready(()),
        )
        .await;
        assert!(outcome.cancelled);
        assert!(sink.is_empty());
    }
}
