//! The three ways a WebSocket reply reaches Deep Chat (`--ws-reply`, `?reply=`): which text
//! messages each typed frame becomes. Stop-key streams as it comes; whole gathers the reply into
//! one message; overwrite resends the text so far, at a bounded rate. A reasoning model's
//! thinking streams live as its own message in stop-key mode; whole and overwrite send it as
//! one message when it is complete. A status is replaced by the answer where Deep Chat's
//! `overwrite` can do it (stop-key, overwrite); whole mode shows none.

use crate::config::WsReply;
use crate::deepchat::frames;
use crate::reply::frame::{FileFrame, ReplyFrame};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// Least time between two overwrite frames: each resends the whole text so far, so a frame per
/// upstream token would cost bandwidth quadratic in the reply; ~33 frames a second still looks
/// live to a reader.
pub const OVERWRITE_EVERY: Duration = Duration::from_millis(30);

/// The mode a connect URL's query string asks for (`reply=…`), else `default`; `Err` names a
/// value that is no mode.
pub fn from_query(query: Option<&str>, default: WsReply) -> Result<WsReply, String> {
    let chosen = query
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.strip_prefix("reply="))
        .next();
    match chosen {
        None => Ok(default),
        Some(value) => WsReply::named(value).ok_or_else(|| {
            format!("unknown reply mode {value:?} in the connect URL: use reply=stop-key, reply=whole or reply=overwrite")
        }),
    }
}

/// One socket's reply framing: the mode and what it gathered of the reply in progress.
pub struct Shaper {
    /// The socket's mode, fixed at the upgrade.
    mode: WsReply,
    /// Ends every stop-key reply (`--stop-key`).
    stop_key: String,
    /// Whole and overwrite: the reply's text so far (bounded by the relay's `max_bytes`).
    text: String,
    /// Whole: the reply's files, sent with its text.
    files: Vec<FileFrame>,
    /// Whole: a message of this reply went out already (an error), so the end adds none.
    said: bool,
    /// Overwrite: text arrived that no frame has carried yet.
    unsent: bool,
    /// Overwrite: when the next text-so-far frame may go.
    next_overwrite_at: Option<Instant>,
    /// Overwrite: this reply's first text frame went out. It goes without `overwrite`: Deep Chat
    /// (1.4.11 and 2.4.2, seen in Chromium) overwrites the last AI message even when the user's
    /// question follows it, so a reply that starts with `overwrite: true` replaces the previous.
    opened: bool,
    /// Whole and overwrite: the thinking so far, sent as one message when it is done.
    thinking: String,
    /// Stop-key: a status is shown, so the answer's first text replaces it.
    replace_status: bool,
    /// Stop-key: this reply's AI message is open (text or a status went out), so a status
    /// replaces it rather than opening one.
    ai_open: bool,
}

impl Shaper {
    pub fn new(mode: WsReply, stop_key: String) -> Shaper {
        Shaper {
            mode,
            stop_key,
            text: String::new(),
            files: Vec::new(),
            said: false,
            unsent: false,
            next_overwrite_at: None,
            opened: false,
            thinking: String::new(),
            replace_status: false,
            ai_open: false,
        }
    }

    /// Whole and overwrite: the thinking gathered, as one message of its role, now.
    fn flush_thinking(&mut self, out: &mut VecDeque<String>) {
        if !self.thinking.is_empty() {
            out.push_back(frames::thinking_json(&self.thinking));
            self.thinking = String::new();
        }
    }

    /// Whether replies are gathered (and so need the relay's byte cap).
    pub fn gathers(&self) -> bool {
        self.mode != WsReply::StopKey
    }

    /// Whether a failed reply's text is dropped (whole mode shows only the error).
    pub fn drops_failed_text(&self) -> bool {
        self.mode == WsReply::Whole
    }

    /// Whether `frame` becomes exactly one plain `{"text"}` message (stop-key text that replaces
    /// no status and is not the stop key), which the socket writes straight into its frame
    /// buffer instead of through [`Shaper::shape`].
    pub fn is_plain_text(&self, frame: &ReplyFrame) -> bool {
        self.mode == WsReply::StopKey
            && !self.replace_status
            && matches!(frame, ReplyFrame::Text(text) if *text != self.stop_key)
    }

    /// Appends to `out` the messages `frame` becomes now (overwrite text waits for
    /// [`Shaper::overwrite_due`]).
    pub fn shape(&mut self, frame: ReplyFrame, out: &mut VecDeque<String>) {
        match self.mode {
            WsReply::StopKey => {
                // A status replaces what this reply's message shows (a tool's status after
                // text), and the text after a status replaces it.
                let overwrite = match frame {
                    ReplyFrame::Text(_) => self.replace_status,
                    ReplyFrame::Status(_) => self.ai_open,
                    _ => false,
                };
                match frame {
                    ReplyFrame::Status(_) => {
                        self.replace_status = true;
                        self.ai_open = true;
                    }
                    // After a status, the close is the next text's `overwrite`, not a frame.
                    ReplyFrame::ThinkingDone if self.replace_status => return,
                    ReplyFrame::Text(_) => {
                        self.replace_status = false;
                        self.ai_open = true;
                    }
                    ReplyFrame::End => {
                        self.replace_status = false;
                        self.ai_open = false;
                    }
                    _ => {}
                }
                let (first, second) = frames::websocket_texts(&frame, &self.stop_key, overwrite);
                out.push_back(first);
                out.extend(second);
            }
            WsReply::Whole => match frame {
                ReplyFrame::Text(text) => self.text.push_str(&text),
                ReplyFrame::Thinking(text) => self.thinking.push_str(&text),
                ReplyFrame::ThinkingDone => self.flush_thinking(out),
                // One message per reply leaves nothing for an answer to replace a status with;
                // the text after a status restates the answer, so what was gathered goes.
                ReplyFrame::Status(_) => self.text.clear(),
                ReplyFrame::File(file) => self.files.push(file),
                ReplyFrame::Error(error) => {
                    // The error alone, the partial text dropped: Deep Chat 2.4.2 with
                    // `stream: {simulation: true}` drops an error that arrives while it types
                    // out a text (seen in Chromium), and a half answer is no answer here.
                    out.push_back(frames::error_json(&error));
                    self.text.clear();
                    self.files.clear();
                    self.said = true;
                }
                ReplyFrame::End => {
                    // An empty reply still gets its one message, so the page stops waiting.
                    if !self.said || !self.text.is_empty() || !self.files.is_empty() {
                        out.push_back(frames::whole_json(&self.text, &self.files));
                    }
                    self.text = String::new();
                    self.files = Vec::new();
                    self.said = false;
                }
            },
            WsReply::Overwrite => match frame {
                ReplyFrame::Text(text) => {
                    self.text.push_str(&text);
                    self.unsent = true;
                }
                ReplyFrame::Thinking(text) => self.thinking.push_str(&text),
                ReplyFrame::ThinkingDone => self.flush_thinking(out),
                ReplyFrame::Status(status) => {
                    // It replaces the message (or opens it); the text after it restates the
                    // answer so far, so the gathered text starts again.
                    out.push_back(if self.opened {
                        frames::overwrite_json(&status)
                    } else {
                        frames::whole_json(&status, &[])
                    });
                    self.text.clear();
                    self.unsent = false;
                    self.opened = true;
                }
                other => {
                    // Anything but text goes at once, after the text it follows.
                    self.flush_overwrite(out);
                    if let Some(json) = frames::to_json(&other) {
                        out.push_back(json);
                    }
                    if other == ReplyFrame::End {
                        self.text = String::new();
                        self.next_overwrite_at = None;
                        self.opened = false;
                    }
                }
            },
        }
    }

    /// Overwrite: when the waiting text may go (`None`: nothing waits).
    pub fn overwrite_due(&self) -> Option<Instant> {
        self.unsent.then(|| {
            self.next_overwrite_at
                .unwrap_or_else(|| Instant::now() - Duration::from_millis(1))
        })
    }

    /// Overwrite: the text so far as a frame, now; the next may go [`OVERWRITE_EVERY`] later.
    pub fn flush_overwrite(&mut self, out: &mut VecDeque<String>) {
        if self.unsent {
            out.push_back(if self.opened {
                frames::overwrite_json(&self.text)
            } else {
                frames::whole_json(&self.text, &[])
            });
            self.opened = true;
            self.unsent = false;
            self.next_overwrite_at = Some(Instant::now() + OVERWRITE_EVERY);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shaped(mode: WsReply, input: Vec<ReplyFrame>) -> Vec<String> {
        let mut shaper = Shaper::new(mode, "stop-key".into());
        let mut out = VecDeque::new();
        for frame in input {
            shaper.shape(frame, &mut out);
        }
        out.into_iter().collect()
    }

    fn text(t: &str) -> ReplyFrame {
        ReplyFrame::Text(t.into())
    }

    /// A tool's status after text, then the answer restated (the relay's frames with tools).
    fn tool_reply() -> Vec<ReplyFrame> {
        vec![
            ReplyFrame::Text("A".into()),
            ReplyFrame::Status("A\n\nRunning x…".into()),
            ReplyFrame::Text("A\n\nB".into()),
            ReplyFrame::Text("C".into()),
            ReplyFrame::End,
        ]
    }

    #[test]
    fn a_tool_status_replaces_the_message_and_the_answer_replaces_the_status() {
        assert_eq!(
            shaped(WsReply::StopKey, tool_reply()),
            [
                r#"{"text":"A"}"#,
                r#"{"text":"A\n\nRunning x…","overwrite":true}"#,
                r#"{"text":"A\n\nB","overwrite":true}"#,
                r#"{"text":"C"}"#,
                r#"{"text":"stop-key"}"#,
            ]
        );
        // Whole: one message, the restated answer counted once.
        assert_eq!(
            shaped(WsReply::Whole, tool_reply()),
            [r#"{"text":"A\n\nBC"}"#]
        );
        // Overwrite: the status replaces the first text; the answer so far replaces it.
        let overwrite = shaped(WsReply::Overwrite, tool_reply());
        assert_eq!(
            overwrite[0], r#"{"text":"A\n\nRunning x…"}"#,
            "{overwrite:?}"
        );
        assert_eq!(
            overwrite.last().map(String::as_str),
            Some(r#"{"text":"A\n\nBC","overwrite":true}"#),
            "{overwrite:?}"
        );
    }

    #[test]
    fn query_picks_the_mode_or_names_the_bad_value() {
        assert_eq!(from_query(None, WsReply::StopKey), Ok(WsReply::StopKey));
        assert_eq!(
            from_query(Some("token=x&reply=whole"), WsReply::StopKey),
            Ok(WsReply::Whole)
        );
        assert_eq!(
            from_query(Some("reply=overwrite"), WsReply::Whole),
            Ok(WsReply::Overwrite)
        );
        assert_eq!(
            from_query(Some("reply=stop-key"), WsReply::Whole),
            Ok(WsReply::StopKey)
        );
        assert!(from_query(Some("reply=all"), WsReply::StopKey)
            .unwrap_err()
            .contains("\"all\""));
        assert!(from_query(Some("reply="), WsReply::StopKey).is_err());
        assert_eq!(
            from_query(Some("replyx=1"), WsReply::Whole),
            Ok(WsReply::Whole)
        );
    }

    #[test]
    fn whole_sends_one_message_per_reply() {
        assert_eq!(
            shaped(
                WsReply::Whole,
                vec![
                    text("He"),
                    text("llo"),
                    ReplyFrame::End,
                    text("b"),
                    ReplyFrame::End
                ]
            ),
            vec![r#"{"text":"Hello"}"#, r#"{"text":"b"}"#]
        );
        assert_eq!(
            shaped(WsReply::Whole, vec![ReplyFrame::End]),
            vec![r#"{"text":""}"#]
        );
    }

    #[test]
    fn whole_error_is_the_error_alone() {
        assert_eq!(
            shaped(
                WsReply::Whole,
                vec![ReplyFrame::Error("boom".into()), ReplyFrame::End]
            ),
            vec![r#"{"error":"boom"}"#]
        );
        assert_eq!(
            shaped(
                WsReply::Whole,
                vec![
                    text("Hi"),
                    ReplyFrame::Error("boom".into()),
                    ReplyFrame::End
                ]
            ),
            vec![r#"{"error":"boom"}"#]
        );
    }

    #[test]
    fn overwrite_waits_for_its_turn_and_flushes_at_the_end() {
        let mut shaper = Shaper::new(WsReply::Overwrite, "stop-key".into());
        let mut out = VecDeque::new();
        assert_eq!(shaper.overwrite_due(), None);
        shaper.shape(text("a"), &mut out);
        assert!(out.is_empty(), "text waits for the flush");
        assert!(shaper
            .overwrite_due()
            .is_some_and(|at| at <= Instant::now()));
        shaper.flush_overwrite(&mut out);
        shaper.shape(text("b"), &mut out);
        assert!(shaper.overwrite_due().is_some_and(|at| at > Instant::now()));
        shaper.shape(ReplyFrame::Error("boom".into()), &mut out);
        shaper.shape(ReplyFrame::End, &mut out);
        assert_eq!(
            Vec::from(out),
            vec![
                r#"{"text":"a"}"#,
                r#"{"text":"ab","overwrite":true}"#,
                r#"{"error":"boom"}"#,
            ]
        );
        assert_eq!(shaper.overwrite_due(), None);
    }

    fn thinking_reply() -> Vec<ReplyFrame> {
        vec![
            ReplyFrame::Thinking("Hm, ".into()),
            ReplyFrame::Thinking("2+2.".into()),
            ReplyFrame::ThinkingDone,
            text("4"),
            ReplyFrame::End,
        ]
    }

    fn status_reply() -> Vec<ReplyFrame> {
        vec![
            ReplyFrame::Status("Thinking…".into()),
            ReplyFrame::ThinkingDone,
            text("4"),
            text("!"),
            ReplyFrame::End,
        ]
    }

    #[test]
    fn stop_key_streams_thinking_under_its_role_and_closes_it_first() {
        assert_eq!(
            shaped(WsReply::StopKey, thinking_reply()),
            vec![
                r#"{"text":"Hm, ","role":"thinking"}"#,
                r#"{"text":"2+2.","role":"thinking"}"#,
                r#"{"text":"stop-key","role":"thinking"}"#,
                r#"{"text":"4"}"#,
                r#"{"text":"stop-key"}"#,
            ]
        );
    }

    #[test]
    fn stop_key_answer_overwrites_the_status_once() {
        let mut frames = status_reply();
        frames.extend([text("next"), ReplyFrame::End]);
        assert_eq!(
            shaped(WsReply::StopKey, frames),
            vec![
                r#"{"text":"Thinking…"}"#,
                r#"{"text":"4","overwrite":true}"#,
                r#"{"text":"!"}"#,
                r#"{"text":"stop-key"}"#,
                r#"{"text":"next"}"#,
                r#"{"text":"stop-key"}"#,
            ]
        );
    }

    #[test]
    fn whole_sends_the_thinking_as_one_message_and_no_status() {
        assert_eq!(
            shaped(WsReply::Whole, thinking_reply()),
            vec![
                r#"{"text":"Hm, 2+2.","role":"thinking"}"#,
                r#"{"text":"4"}"#
            ]
        );
        assert_eq!(
            shaped(WsReply::Whole, status_reply()),
            vec![r#"{"text":"4!"}"#]
        );
    }

    #[test]
    fn overwrite_sends_the_thinking_whole_and_overwrites_the_status() {
        assert_eq!(
            shaped(WsReply::Overwrite, thinking_reply()),
            vec![
                r#"{"text":"Hm, 2+2.","role":"thinking"}"#,
                r#"{"text":"4"}"#
            ]
        );
        assert_eq!(
            shaped(WsReply::Overwrite, status_reply()),
            vec![
                r#"{"text":"Thinking…"}"#,
                r#"{"text":"4!","overwrite":true}"#
            ]
        );
    }
}
