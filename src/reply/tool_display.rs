//! What the chat shows around a tool's status (`--mcp`): the status replaces the reply's
//! message with the answer so far and the status line, the next text replaces it again with
//! the answer so far; and a reply's token counts summed over its tool rounds.

use crate::reply::frame::ReplyFrame;
use crate::store::record::ROUND_BREAK;
use deepchat_adapters::Usage;

/// The answer shown around tool statuses: a status replaces the reply's message with the
/// answer so far and the status line; the next text replaces it again with the answer so far
/// (each transport says "replace" its own way: Deep Chat `overwrite`).
pub struct ToolDisplay {
    /// The answer sent so far, while it fits `keep`.
    shown: String,
    keep: usize,
    /// `shown` holds all of it.
    complete: bool,
    /// A status is on screen: the next text restates the answer.
    restate: bool,
    /// A tool round ended: the next round's text starts after a blank line.
    pub round_break: bool,
}

impl ToolDisplay {
    pub fn new(keep: usize) -> ToolDisplay {
        ToolDisplay {
            shown: String::new(),
            keep,
            complete: keep > 0,
            restate: false,
            round_break: false,
        }
    }

    /// The frame for new answer text.
    pub fn text(&mut self, text: String) -> ReplyFrame {
        if self.complete {
            if self.shown.len() + text.len() <= self.keep {
                self.shown.push_str(&text);
            } else {
                self.complete = false;
                self.shown = String::new();
            }
        }
        if std::mem::take(&mut self.restate) && self.complete {
            return ReplyFrame::Text(self.shown.clone());
        }
        ReplyFrame::Text(text)
    }

    /// The status frame while tools run, if the answer so far can be restated around it.
    pub fn status(&mut self, line: &str) -> Option<ReplyFrame> {
        self.round_break = true;
        if !self.complete {
            return None;
        }
        self.restate = true;
        Some(ReplyFrame::Status(if self.shown.is_empty() {
            line.to_owned()
        } else {
            format!("{}{ROUND_BREAK}{line}", self.shown)
        }))
    }

    /// At the end, with a status still shown: the answer so far, replacing it.
    pub fn restore(&mut self) -> Option<ReplyFrame> {
        let restate = std::mem::take(&mut self.restate);
        (restate && !self.shown.is_empty()).then(|| ReplyFrame::Text(self.shown.clone()))
    }
}

/// Sums two rounds' token counts (a count either round lacks stays unknown only if both do).
pub fn add_usage(a: Usage, b: Usage) -> Usage {
    let sum = |x: Option<u64>, y: Option<u64>| match (x, y) {
        (None, None) => None,
        (x, y) => Some(x.unwrap_or(0) + y.unwrap_or(0)),
    };
    Usage {
        input_tokens: sum(a.input_tokens, b.input_tokens),
        output_tokens: sum(a.output_tokens, b.output_tokens),
        reasoning_tokens: sum(a.reasoning_tokens, b.reasoning_tokens),
    }
}
