//! Parses a Deep Chat request body (`{"messages":[{"role","text","files"}…], …}`) into turns.

use deepchat_adapters::{Image, Role, Turn};
use serde::Deserialize;

pub use crate::error::RequestError;

#[derive(Deserialize)]
struct Body {
    messages: Option<Vec<IncomingMessage>>,
    /// Deep Chat `additionalBodyProps: {model}`: used only where `--allow-model` offers models.
    model: Option<serde_json::Value>,
    /// The page's conversation id (Deep Chat `additionalBodyProps: {conversationId}`).
    #[serde(rename = "conversationId")]
    conversation_id: Option<String>,
}

/// A parsed request: its turns, the model it asked for and the conversation it names.
#[derive(Debug, PartialEq)]
pub struct Parsed {
    pub turns: Vec<Turn>,
    /// `model` from the body; a non-string value is kept as its JSON text, so a route with
    /// `--allow-model` refuses it by name instead of silently using its default.
    pub model: Option<String>,
    /// `conversationId` from the body, validated by the caller.
    pub conversation_id: Option<String>,
}

/// One Deep Chat message as sent (`{"role","text","files"}`).
#[derive(Deserialize)]
pub struct IncomingMessage {
    role: Option<String>,
    text: Option<String>,
    #[serde(default)]
    files: Vec<IncomingFile>,
}

#[derive(Deserialize)]
struct IncomingFile {
    src: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
}

/// Parses one JSON request. Other top-level fields (`additionalBodyProps`) are ignored here.
pub fn parse(body: &[u8]) -> Result<Vec<Turn>, RequestError> {
    parse_with_model(body).map(|parsed| parsed.turns)
}

/// As [`parse`], with the `model` and the `conversationId` the request names.
pub fn parse_with_model(body: &[u8]) -> Result<Parsed, RequestError> {
    let body: Body = serde_json::from_slice(body).map_err(|e| RequestError::Json(e.to_string()))?;
    let conversation = body.conversation_id;
    let messages = body.messages.ok_or(RequestError::NoMessages)?;
    let mut turns = Vec::with_capacity(messages.len());
    for message in messages {
        turns.extend(to_turn(message)?);
    }
    let model = body.model.map(|value| match value {
        serde_json::Value::String(name) => name,
        other => other.to_string(),
    });
    Ok(Parsed {
        turns: require_user_turn(turns)?,
        model,
        conversation_id: conversation,
    })
}

/// The turn for one message; `None` for a message with neither text nor images, and for
/// thinking the proxy showed (providers reject or charge for replayed thinking).
pub fn to_turn(message: IncomingMessage) -> Result<Option<Turn>, RequestError> {
    let role = match message.role.as_deref() {
        Some(crate::reply::frame::THINKING_ROLE) => return Ok(None),
        Some("ai") | Some("assistant") => Role::Assistant,
        // Deep Chat lets pages invent roles; anything else speaks for the user.
        _ => Role::User,
    };
    let images = message
        .files
        .into_iter()
        .map(to_image)
        .collect::<Result<Vec<_>, _>>()?;
    let text = message.text.unwrap_or_default();
    if text.is_empty() && images.is_empty() {
        return Ok(None);
    }
    // A reply that failed before its answer leaves `--reasoning status`'s text as an AI
    // message in the page's dialogue (nothing replaced it): the proxy's words, not the model's.
    if role == Role::Assistant && images.is_empty() && text == crate::reply::frame::STATUS_TEXT {
        return Ok(None);
    }
    Ok(Some(Turn {
        role,
        text,
        images,
        tool_rounds: Vec::new(),
    }))
}

/// A request must contain something from the user to answer.
pub fn require_user_turn(turns: Vec<Turn>) -> Result<Vec<Turn>, RequestError> {
    if turns.iter().any(|t| t.role == Role::User) {
        Ok(turns)
    } else {
        Err(RequestError::Empty)
    }
}

fn to_image(file: IncomingFile) -> Result<Image, RequestError> {
    let label = || file.name.clone().unwrap_or_else(|| "attachment".into());
    let src = file.src.as_deref().unwrap_or_default();
    if let Some(rest) = src.strip_prefix("data:") {
        if let Some((mime, base64)) = rest.split_once(";base64,") {
            if mime.starts_with("image/") {
                return Ok(Image::Inline {
                    mime: mime.to_owned(),
                    base64: base64.to_owned(),
                });
            }
        }
        return Err(RequestError::UnsupportedFile(label()));
    }
    let is_image = file.kind.as_deref() == Some("image");
    if is_image && (src.starts_with("https://") || src.starts_with("http://")) {
        return Ok(Image::Url(src.to_owned()));
    }
    Err(RequestError::UnsupportedFile(label()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinking_and_a_status_left_by_a_failed_reply_are_dropped() {
        let turns = parse(
            r#"{"messages":[{"role":"user","text":"hi"},{"role":"thinking","text":"hm"},
                {"role":"ai","text":"hello"},{"role":"user","text":"again"},
                {"role":"ai","text":"Thinking…"},{"role":"user","text":"third"}]}"#
                .as_bytes(),
        )
        .expect("parse");
        assert_eq!(
            turns,
            vec![
                Turn::user("hi"),
                Turn::assistant("hello"),
                Turn::user("again"),
                Turn::user("third")
            ]
        );
    }

    #[test]
    fn maps_roles_and_skips_empty_messages() {
        let turns = parse(
            br#"{"messages":[{"role":"user","text":"hi"},{"role":"ai","text":"hello"},
                {"role":"user","text":""},{"role":"user","text":"again"}],"extra":1}"#,
        )
        .expect("parsed");
        assert_eq!(
            turns,
            vec![
                Turn::user("hi"),
                Turn::assistant("hello"),
                Turn::user("again")
            ]
        );
    }

    #[test]
    fn the_model_a_request_names() {
        let parsed = parse_with_model(br#"{"messages":[{"text":"hi"}],"model":"fast"}"#);
        assert_eq!(parsed.map(|p| p.model), Ok(Some("fast".into())));
        let parsed = parse_with_model(br#"{"messages":[{"text":"hi"}],"model":7}"#);
        assert_eq!(parsed.map(|p| p.model), Ok(Some("7".into())));
        let parsed = parse_with_model(br#"{"messages":[{"text":"hi"}]}"#);
        assert_eq!(parsed.map(|p| p.model), Ok(None));
    }

    #[test]
    fn images_from_data_urls_and_links() {
        let turns = parse(
            br#"{"messages":[{"role":"user","text":"look","files":[
                {"src":"data:image/png;base64,iVBO","type":"image","name":"a.png"},
                {"src":"https://example.test/b.jpg","type":"image"}]}]}"#,
        )
        .expect("parsed");
        assert_eq!(
            turns[0].images,
            vec![
                Image::Inline {
                    mime: "image/png".into(),
                    base64: "iVBO".into()
                },
                Image::Url("https://example.test/b.jpg".into())
            ]
        );
    }

    #[test]
    fn rejects_bad_input_with_reasons() {
        assert!(matches!(parse(b"{nope"), Err(RequestError::Json(_))));
        assert_eq!(parse(br#"{"text":"x"}"#), Err(RequestError::NoMessages));
        assert_eq!(parse(br#"{"messages":[]}"#), Err(RequestError::Empty));
        assert_eq!(
            parse(br#"{"messages":[{"role":"ai","text":"only ai"}]}"#),
            Err(RequestError::Empty)
        );
        assert_eq!(
            parse(br#"{"messages":[{"text":"x","files":[{"src":"data:application/pdf;base64,AA","name":"r.pdf"}]}]}"#),
            Err(RequestError::UnsupportedFile("r.pdf".into()))
        );
        assert!(matches!(
            parse(br#"{"messages":"not a list"}"#),
            Err(RequestError::Json(_))
        ));
    }
}
