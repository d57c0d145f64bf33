//! Deep Chat response frames, serialized once per send.

use serde::Serialize;

/// A file in a response (`{"files":[{"src":…,"type":"image"}]}`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FileFrame {
    pub src: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// One Deep Chat response message.
#[derive(Debug, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Frame<'a> {
    Text(&'a str),
    Error(&'a str),
    Files(&'a [FileFrame]),
}

impl Frame<'_> {
    /// The JSON text frame, e.g. `{"text":"Hi"}`.
    pub fn to_json(&self) -> String {
        // A struct of strings always serializes; the fallback keeps this panic-free regardless.
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"error":"internal error"}"#.to_owned())
    }
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
    fn frames_serialize_as_deep_chat_expects() {
        assert_eq!(Frame::Text("a\"b\n😀").to_json(), r#"{"text":"a\"b\n😀"}"#);
        assert_eq!(Frame::Error("boom").to_json(), r#"{"error":"boom"}"#);
        let files = [FileFrame {
            src: "data:image/png;base64,AA".into(),
            kind: file_kind("image/png"),
        }];
        assert_eq!(
            Frame::Files(&files).to_json(),
            r#"{"files":[{"src":"data:image/png;base64,AA","type":"image"}]}"#
        );
    }
}
