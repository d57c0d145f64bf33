//! Where a reasoning model's thinking goes in a reply (`--reasoning`): dropped (`hide`), sent
//! ahead of the answer as [`ReplyFrame::Thinking`] (`show`), or replaced by one short
//! [`ReplyFrame::Status`] (`status`); in the last two, [`ReplyFrame::ThinkingDone`] separates
//! it from the answer. The answer is never held back for it, and thinking that arrives once
//! the answer has started is dropped: the answer's message is already open.

use crate::config::ReasoningDisplay;
use crate::reply::frame::{ReplyFrame, STATUS_TEXT};

/// Where one reply stands with its thinking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Nothing shown yet.
    Before,
    /// Thinking (or the status) is on screen; the answer has not started.
    Shown,
    /// The answer (or the reply's end) has started: no more thinking goes out.
    Answering,
}

/// One reply's thinking policy.
#[derive(Debug)]
pub struct ThinkingShaper {
    /// The operator's choice.
    display: ReasoningDisplay,
    stage: Stage,
}

impl ThinkingShaper {
    pub fn new(display: ReasoningDisplay) -> ThinkingShaper {
        ThinkingShaper {
            display,
            stage: Stage::Before,
        }
    }

    /// The frame a piece of thinking becomes, if any.
    pub fn thinking(&mut self, text: String) -> Option<ReplyFrame> {
        if text.is_empty() || self.stage == Stage::Answering {
            return None;
        }
        match self.display {
            ReasoningDisplay::Hide => None,
            ReasoningDisplay::Show => {
                self.stage = Stage::Shown;
                Some(ReplyFrame::Thinking(text))
            }
            ReasoningDisplay::Status if self.stage == Stage::Before => {
                self.stage = Stage::Shown;
                Some(ReplyFrame::Status(STATUS_TEXT.to_owned()))
            }
            ReasoningDisplay::Status => None,
        }
    }

    /// Whether thinking in this stage still becomes a frame (so it is worth merging).
    pub fn shows_thinking(&self) -> bool {
        self.display == ReasoningDisplay::Show && self.stage != Stage::Answering
    }

    /// Called before any frame of the answer (text, a file, an error, the end): the
    /// [`ReplyFrame::ThinkingDone`] to send first, once, when thinking was shown.
    pub fn before_answer(&mut self) -> Option<ReplyFrame> {
        let shown = self.stage == Stage::Shown;
        self.stage = Stage::Answering;
        shown.then_some(ReplyFrame::ThinkingDone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(display: ReasoningDisplay, steps: &[Option<&str>]) -> Vec<ReplyFrame> {
        // `Some(text)` is thinking, `None` the start of the answer.
        let mut shaper = ThinkingShaper::new(display);
        let mut frames = Vec::new();
        for step in steps {
            match step {
                Some(text) => frames.extend(shaper.thinking((*text).to_owned())),
                None => {
                    frames.extend(shaper.before_answer());
                    frames.push(ReplyFrame::Text("answer".into()));
                }
            }
        }
        frames
    }

    #[test]
    fn hide_drops_every_piece() {
        assert_eq!(
            run(ReasoningDisplay::Hide, &[Some("a"), Some("b"), None]),
            vec![ReplyFrame::Text("answer".into())]
        );
    }

    #[test]
    fn show_sends_thinking_then_done_once_then_drops_late_thinking() {
        assert_eq!(
            run(
                ReasoningDisplay::Show,
                &[Some("a"), Some(""), Some("b"), None, Some("late"), None]
            ),
            vec![
                ReplyFrame::Thinking("a".into()),
                ReplyFrame::Thinking("b".into()),
                ReplyFrame::ThinkingDone,
                ReplyFrame::Text("answer".into()),
                ReplyFrame::Text("answer".into()),
            ]
        );
    }

    #[test]
    fn status_is_one_short_frame_and_a_reply_without_thinking_gets_none() {
        assert_eq!(
            run(ReasoningDisplay::Status, &[Some("a"), Some("b"), None]),
            vec![
                ReplyFrame::Status(STATUS_TEXT.into()),
                ReplyFrame::ThinkingDone,
                ReplyFrame::Text("answer".into()),
            ]
        );
        assert_eq!(
            run(ReasoningDisplay::Status, &[None]),
            vec![ReplyFrame::Text("answer".into())]
        );
    }
}
