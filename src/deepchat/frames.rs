//! Deep Chat's wire form of a reply's frames: `{"text"}`, `{"error"}`, `{"files":[…]}` JSON,
//! and on WebSocket the stop key that ends a reply (no text frame ever equals it). Thinking is
//! text under its own role (`{"text":…,"role":"thinking"}`), which Deep Chat shows as a
//! message of its own.

use crate::reply::frame::{FileFrame, ReplyFrame, THINKING_ROLE};
use serde::Serialize;

/// One Deep Chat response message, borrowed for serializing.
#[derive(Debug, Serialize)]
#[serde(rename_all = "lowercase")]
enum Frame<'a> {
    Text(&'a str),
    Error(&'a str),
    Files(&'a [FileFrame]),
}

impl Frame<'_> {
    /// The JSON text frame, e.g. `{"text":"Hi"}`.
    fn to_json(&self) -> String {
        // A struct of strings always serializes; the fallback keeps this panic-free regardless.
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"error":"internal error"}"#.to_owned())
    }
}

/// The JSON of a frame; `None` for [`ReplyFrame::End`], which HTTP says by ending the
/// response, and for [`ReplyFrame::ThinkingDone`], which each transport says in its own way.
pub fn to_json(frame: &ReplyFrame) -> Option<String> {
    match frame {
        ReplyFrame::Text(text) | ReplyFrame::Status(text) => Some(Frame::Text(text).to_json()),
        ReplyFrame::Thinking(text) => Some(thinking_json(text)),
        ReplyFrame::Error(error) => Some(Frame::Error(error).to_json()),
        ReplyFrame::File(file) => Some(Frame::Files(std::slice::from_ref(file)).to_json()),
        ReplyFrame::End | ReplyFrame::ThinkingDone => None,
    }
}

/// Appends `{"text": …}` to `out`: the same bytes as [`to_json`] of [`ReplyFrame::Text`], written
/// into a buffer the socket reuses, so a streamed token costs no allocation of its own.
pub fn text_json_into(text: &str, out: &mut bytes::BytesMut) {
    use bytes::BufMut;
    let start = out.len();
    out.reserve(text.len() + 11);
    out.extend_from_slice(br#"{"text":"#);
    // Only the string goes through serde_json (its escaping); the object around it is fixed.
    if serde_json::to_writer(out.writer(), text).is_err() {
        // Writing a string into memory cannot fail; the fallback keeps this panic-free anyway.
        out.truncate(start);
        out.extend_from_slice(br#"{"error":"internal error"}"#);
        return;
    }
    out.extend_from_slice(b"}");
}

/// A message with a role, or a text that replaces the message shown.
#[derive(Debug, Serialize)]
struct Marked<'a> {
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    overwrite: bool,
}

impl Marked<'_> {
    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"error":"internal error"}"#.to_owned())
    }
}

/// `{"text": …, "role": "thinking"}`: thinking, in its own message.
pub fn thinking_json(text: &str) -> String {
    Marked {
        text,
        role: Some(THINKING_ROLE),
        overwrite: false,
    }
    .to_json()
}

/// `{"text": …, "role": "ai"}`: the answer's first text after thinking over SSE, where one
/// response is one message unless a frame names a new role (Deep Chat 2.x).
pub fn answer_after_thinking_json(text: &str) -> String {
    Marked {
        text,
        role: Some("ai"),
        overwrite: false,
    }
    .to_json()
}

/// A reply in one message (`--ws-reply whole`) or its text so far (`overwrite`): Deep Chat's
/// response object with only the fields that say something.
#[derive(Debug, Serialize)]
struct Gathered<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "<[FileFrame]>::is_empty")]
    files: &'a [FileFrame],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    overwrite: bool,
}

impl Gathered<'_> {
    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"error":"internal error"}"#.to_owned())
    }
}

/// `{"text": …, "files": […]}`: a whole reply; the text is left out only when files say it all.
pub fn whole_json(text: &str, files: &[FileFrame]) -> String {
    let text = (!text.is_empty() || files.is_empty()).then_some(text);
    Gathered {
        text,
        files,
        overwrite: false,
    }
    .to_json()
}

/// `{"text": …, "overwrite": true}`: the reply so far, replacing the AI message shown.
pub fn overwrite_json(text: &str) -> String {
    Gathered {
        text: Some(text),
        files: &[],
        overwrite: true,
    }
    .to_json()
}

/// `{"error": …}` for a refusal.
pub fn error_json(error: &str) -> String {
    Frame::Error(error).to_json()
}

/// The WebSocket text messages for a frame: the end is a text frame exactly equal to the stop
/// key, so a text chunk equal to it goes out as two frames (the first character, the rest).
/// Thinking is marked with its role, and so is the stop key that closes it
/// ([`ReplyFrame::ThinkingDone`]): Deep Chat 1.4.11 and 2.4.2 (seen in Chromium) close the
/// thinking message only on a stop key of its own role. `overwrite` marks the first text
/// after a status, so the answer replaces it.
pub fn websocket_texts(
    frame: &ReplyFrame,
    stop_key: &str,
    overwrite: bool,
) -> (String, Option<String>) {
    let (text, role) = match frame {
        ReplyFrame::End => return (Frame::Text(stop_key).to_json(), None),
        ReplyFrame::ThinkingDone => {
            let close = Marked {
                text: stop_key,
                role: Some(THINKING_ROLE),
                overwrite: false,
            };
            return (close.to_json(), None);
        }
        ReplyFrame::Text(text) | ReplyFrame::Status(text) => (text.as_str(), None),
        ReplyFrame::Thinking(text) => (text.as_str(), Some(THINKING_ROLE)),
        // `to_json` is `None` only for the two handled above.
        other => return (to_json(other).unwrap_or_default(), None),
    };
    let marked = |text| Marked {
        text,
        role,
        overwrite,
    };
    if text == stop_key {
        let cut = text.chars().next().map_or(0, char::len_utf8);
        let (first, rest) = text.split_at(cut);
        let rest = (!rest.is_empty()).then(|| {
            Marked {
                text: rest,
                role,
                overwrite: false,
            }
            .to_json()
        });
        return (marked(first).to_json(), rest);
    }
    (marked(text).to_json(), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::frame::file_kind;

    #[test]
    fn frames_serialize_as_deep_chat_expects() {
        assert_eq!(
            to_json(&ReplyFrame::Text("a\"b\n😀".into())).as_deref(),
            Some(r#"{"text":"a\"b\n😀"}"#)
        );
        assert_eq!(
            to_json(&ReplyFrame::Error("boom".into())).as_deref(),
            Some(r#"{"error":"boom"}"#)
        );
        let file = FileFrame {
            src: "data:image/png;base64,AA".into(),
            kind: file_kind("image/png"),
        };
        assert_eq!(
            to_json(&ReplyFrame::File(file)).as_deref(),
            Some(r#"{"files":[{"src":"data:image/png;base64,AA","type":"image"}]}"#)
        );
        assert_eq!(to_json(&ReplyFrame::End), None);
    }

    fn ws(frame: ReplyFrame) -> Vec<serde_json::Value> {
        let (first, second) = websocket_texts(&frame, "stop-key", false);
        std::iter::once(first)
            .chain(second)
            .map(|f| serde_json::from_str(&f).expect("json frame"))
            .collect()
    }

    #[test]
    fn gathered_replies_carry_only_what_they_have() {
        let file = FileFrame {
            src: "data:image/png;base64,AA".into(),
            kind: file_kind("image/png"),
        };
        assert_eq!(whole_json("Hi", &[]), r#"{"text":"Hi"}"#);
        assert_eq!(whole_json("", &[]), r#"{"text":""}"#);
        assert_eq!(
            whole_json("", std::slice::from_ref(&file)),
            r#"{"files":[{"src":"data:image/png;base64,AA","type":"image"}]}"#
        );
        assert_eq!(
            whole_json("a", std::slice::from_ref(&file)),
            r#"{"text":"a","files":[{"src":"data:image/png;base64,AA","type":"image"}]}"#
        );
        assert_eq!(overwrite_json("He"), r#"{"text":"He","overwrite":true}"#);
    }

    #[test]
    fn thinking_has_its_role_and_is_closed_by_a_stop_key_of_its_role() {
        assert_eq!(
            ws(ReplyFrame::Thinking("hm \"x\"".into())),
            vec![serde_json::json!({"text":"hm \"x\"","role":"thinking"})]
        );
        assert_eq!(
            ws(ReplyFrame::Thinking("stop-key".into())),
            vec![
                serde_json::json!({"text":"s","role":"thinking"}),
                serde_json::json!({"text":"top-key","role":"thinking"}),
            ]
        );
        assert_eq!(
            ws(ReplyFrame::ThinkingDone),
            vec![serde_json::json!({"text":"stop-key","role":"thinking"})]
        );
        assert_eq!(
            websocket_texts(&ReplyFrame::Text("stop-key".into()), "stop-key", true),
            (
                r#"{"text":"s","overwrite":true}"#.to_owned(),
                Some(r#"{"text":"top-key"}"#.to_owned())
            )
        );
        assert_eq!(
            to_json(&ReplyFrame::Status("Thinking…".into())).as_deref(),
            Some(r#"{"text":"Thinking…"}"#)
        );
        assert_eq!(to_json(&ReplyFrame::ThinkingDone), None);
        assert_eq!(
            answer_after_thinking_json("a"),
            r#"{"text":"a","role":"ai"}"#
        );
    }

    #[test]
    fn text_written_into_a_buffer_is_the_text_frame() {
        let mut out = bytes::BytesMut::new();
        for text in ["", "Hi", "a\"b\n😀\u{1}", "</script>", "\\"] {
            text_json_into(text, &mut out);
            let written = out.split();
            assert_eq!(
                Some(std::str::from_utf8(&written).expect("utf-8")),
                to_json(&ReplyFrame::Text(text.into())).as_deref()
            );
        }
    }

    #[test]
    fn stop_key_collision_is_split() {
        assert_eq!(
            ws(ReplyFrame::Text("stop-key".into())),
            vec![
                serde_json::json!({"text":"s"}),
                serde_json::json!({"text":"top-key"}),
            ]
        );
        assert_eq!(
            ws(ReplyFrame::End),
            vec![serde_json::json!({"text":"stop-key"})]
        );
        assert_eq!(
            ws(ReplyFrame::Text("stop-key!".into())),
            vec![serde_json::json!({"text":"stop-key!"})]
        );
    }
}
