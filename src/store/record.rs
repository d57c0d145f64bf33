//! What a store keeps for one conversation: its owner and its dialogue as Deep Chat messages
//! (`{"role": "user"|"ai", "text", "files"}`), so `GET …/history` answers them as they are.
//! The dialogue is the one the socket memory keeps (bounded by `--history-limit` and the
//! conversation budget), so a record is as bounded as what goes upstream.

use deepchat_adapters::{Image, Role, ToolRound, Turn};
use serde::{Deserialize, Serialize};

/// One stored conversation (JSON).
#[derive(Debug, Serialize, Deserialize)]
pub struct Record {
    /// A hash of the principal that owns it (never a raw token).
    pub owner: String,
    /// The dialogue, oldest first.
    pub messages: Vec<Message>,
}

/// One Deep Chat message as stored and as `loadHistory` answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    #[serde(default)]
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<File>,
    /// An answer's tool rounds, sent back upstream with the dialogue (never to the browser:
    /// [`page`] leaves them out). `text` is what the user saw: the rounds' text, then the
    /// answer's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_rounds: Vec<ToolRound>,
}

/// An image kept with its turn, as Deep Chat shows files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct File {
    pub src: String,
    #[serde(rename = "type")]
    pub kind: String,
}

impl Message {
    pub fn of(turn: &Turn) -> Message {
        Message {
            role: match turn.role {
                Role::User => "user",
                Role::Assistant => "ai",
            }
            .into(),
            text: shown_text(turn),
            tool_rounds: turn.tool_rounds.clone(),
            files: turn
                .images
                .iter()
                .map(|image| File {
                    src: image.to_url(),
                    kind: "image".into(),
                })
                .collect(),
        }
    }

    pub fn to_turn(&self) -> Turn {
        Turn {
            role: if self.role == "ai" {
                Role::Assistant
            } else {
                Role::User
            },
            text: answer_text(&self.text, &self.tool_rounds).to_owned(),
            images: self.files.iter().map(|file| image(&file.src)).collect(),
            tool_rounds: self.tool_rounds.clone(),
        }
    }
}

/// What separates the text of two tool rounds in the answer the user sees (and the store
/// keeps).
pub const ROUND_BREAK: &str = "\n\n";

/// The text the user saw of an answer with tool rounds: each round's text, then the answer's,
/// apart by a blank line (as the relay sent them).
fn shown_text(turn: &Turn) -> String {
    let parts: Vec<&str> = turn
        .tool_rounds
        .iter()
        .map(|round| round.text.as_str())
        .chain([turn.text.as_str()])
        .filter(|text| !text.is_empty())
        .collect();
    parts.join(ROUND_BREAK)
}

/// The answer's own text in what the user saw (the inverse of [`shown_text`]).
fn answer_text<'a>(shown: &'a str, rounds: &[ToolRound]) -> &'a str {
    let before: Vec<&str> = rounds
        .iter()
        .map(|round| round.text.as_str())
        .filter(|text| !text.is_empty())
        .collect();
    if before.is_empty() {
        return shown;
    }
    let prefix = before.join(ROUND_BREAK);
    match shown.strip_prefix(prefix.as_str()) {
        Some(rest) => rest.strip_prefix(ROUND_BREAK).unwrap_or(rest),
        None => shown,
    }
}

fn image(src: &str) -> Image {
    if let Some((mime, base64)) = src
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(";base64,"))
    {
        return Image::Inline {
            mime: mime.to_owned(),
            base64: base64.to_owned(),
        };
    }
    Image::Url(src.to_owned())
}

impl Record {
    pub fn new(owner: &str, turns: &[Turn]) -> Record {
        Record {
            owner: owner.to_owned(),
            messages: turns.iter().map(Message::of).collect(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// `None` for bytes that are not a record (a foreign or damaged value counts as none).
    pub fn from_bytes(bytes: &[u8]) -> Option<Record> {
        serde_json::from_slice(bytes).ok()
    }

    pub fn turns(&self) -> Vec<Turn> {
        self.messages.iter().map(Message::to_turn).collect()
    }
}

/// Page `index` of `messages` for Deep Chat's `loadHistory(index)`: index 0 is the newest
/// `size` messages, 1 the `size` before them, and so on; each page oldest first, as Deep Chat
/// prepends it whole. The page that reaches the first message ends with `false`, which tells
/// Deep Chat there is nothing older to load.
pub fn page(messages: &[Message], index: usize, size: usize) -> Vec<serde_json::Value> {
    let size = size.max(1);
    let end = messages.len().saturating_sub(index.saturating_mul(size));
    let start = end.saturating_sub(size);
    let mut out: Vec<serde_json::Value> = messages[start..end]
        .iter()
        .map(|m| {
            let mut value = serde_json::to_value(m).unwrap_or_default();
            if let Some(fields) = value.as_object_mut() {
                fields.remove("tool_rounds");
            }
            value
        })
        .collect();
    if start == 0 {
        out.push(serde_json::Value::Bool(false));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_round_trip_as_deep_chat_messages() {
        let mut asked = Turn::user("look");
        asked.images = vec![
            Image::Inline {
                mime: "image/png".into(),
                base64: "iVBO".into(),
            },
            Image::Url("https://example.test/a.png".into()),
        ];
        let turns = vec![asked, Turn::assistant("a cat")];
        let record = Record::new("owner", &turns);
        let json: serde_json::Value = serde_json::from_slice(&record.to_bytes()).expect("json");
        assert_eq!(
            json["messages"][1],
            serde_json::json!({"role": "ai", "text": "a cat"})
        );
        assert_eq!(
            json["messages"][0]["files"][0]["src"],
            "data:image/png;base64,iVBO"
        );
        let back = Record::from_bytes(&record.to_bytes()).expect("record");
        assert_eq!(back.turns(), turns);
        assert!(Record::from_bytes(b"nonsense").is_none());
    }

    #[test]
    fn pages_count_back_from_the_newest_and_end_with_false() {
        let messages: Vec<Message> = (0..5)
            .map(|i| Message::of(&Turn::user(i.to_string())))
            .collect();
        let texts = |page: Vec<serde_json::Value>| -> Vec<serde_json::Value> {
            page.into_iter()
                .map(|m| m.get("text").cloned().unwrap_or(m))
                .collect()
        };
        use serde_json::json;
        assert_eq!(texts(page(&messages, 0, 2)), vec![json!("3"), json!("4")]);
        assert_eq!(texts(page(&messages, 1, 2)), vec![json!("1"), json!("2")]);
        assert_eq!(texts(page(&messages, 2, 2)), vec![json!("0"), json!(false)]);
        assert_eq!(texts(page(&messages, 3, 2)), vec![json!(false)]);
        assert_eq!(page(&messages, 0, 10).len(), 6);
        assert_eq!(page(&[], 0, 10), vec![json!(false)]);
    }
}
