//! What a reply says to the client, before any transport serializes it: text, a file, an
//! error, and the end; with a reasoning model, its thinking (or a status) before the answer. Each transport's sink turns these into its own wire form (WebSocket JSON
//! plus the stop key, SSE `data:` lines, one JSON answer).

use serde::Serialize;

/// One step of a reply, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyFrame {
    /// Text to append to the answer (never empty).
    Text(String),
    /// Thinking to append to the thinking message shown before the answer (`--reasoning
    /// show`; never empty).
    Thinking(String),
    /// A short status shown while the model thinks, which the answer replaces (`--reasoning
    /// status`).
    Status(String),
    /// The thinking (or status) is over: what follows is the answer. Sent once, and only
    /// after a `Thinking` or `Status`.
    ThinkingDone,
    /// A file from the model (an image).
    File(FileFrame),
    /// The reply failed; the text is shown to the user. An `End` follows.
    Error(String),
    /// The reply is over (also after an error); nothing follows.
    End,
}

/// The Deep Chat role thinking is shown under: its own message, styled apart with
/// `messageStyles: {thinking: …}`, and dropped when a page sends its dialogue back.
pub const THINKING_ROLE: &str = "thinking";

/// What `--reasoning status` shows while the model thinks.
pub const STATUS_TEXT: &str = "Thinking…";

/// A file in a response (`{"src":…,"type":"image"}` in Deep Chat's `files` list).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FileFrame {
    pub src: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// Deep Chat's `type` for a MIME type.
pub fn file_kind(mime: &str) -> &'static str {
    if mime.starts_with("image/") {
        "image"
    } else if mime.starts_with("audio/") {
        "audio"
    } else {
        "any"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_typed_by_their_mime_family() {
        assert_eq!(file_kind("image/png"), "image");
        assert_eq!(file_kind("audio/wav"), "audio");
        assert_eq!(file_kind("application/pdf"), "any");
    }
}
