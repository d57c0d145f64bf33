//! Deep Chat's file uploads over HTTP: `multipart/form-data` with the files in `files` fields
//! and the messages as JSON in `message1`, `message2`… (the newest last). The body has already
//! been read within `--max-request-bytes`.

use crate::deepchat::request::{self, IncomingMessage, RequestError};
use base64::Engine;
use bytes::Bytes;
use deepchat_adapters::{Image, Role, Turn};

/// Parses a form upload into turns; uploaded images join the newest user turn.
pub async fn parse(body: Bytes, content_type: &str) -> Result<Vec<Turn>, RequestError> {
    parse_with_model(body, content_type)
        .await
        .map(|parsed| parsed.turns)
}

/// As [`parse`], with the `model` field (Deep Chat sends `additionalBodyProps` as fields).
pub async fn parse_with_model(
    body: Bytes,
    content_type: &str,
) -> Result<request::Parsed, RequestError> {
    let boundary =
        multer::parse_boundary(content_type).map_err(|e| RequestError::Multipart(e.to_string()))?;
    let stream = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut form = multer::Multipart::new(stream, boundary);
    let mut messages: Vec<(u32, IncomingMessage)> = Vec::new();
    let mut images = Vec::new();
    let mut model = None;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| RequestError::Multipart(e.to_string()))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "files" {
            let label = field.file_name().unwrap_or("attachment").to_owned();
            let mime = field
                .content_type()
                .map(|m| m.essence_str().to_owned())
                .unwrap_or_default();
            if !mime.starts_with("image/") {
                return Err(RequestError::UnsupportedFile(label));
            }
            let bytes = field
                .bytes()
                .await
                .map_err(|e| RequestError::Multipart(e.to_string()))?;
            images.push(Image::Inline {
                mime,
                base64: base64::engine::general_purpose::STANDARD.encode(&bytes),
            });
        } else if let Some(index) = name.strip_prefix("message").and_then(|n| n.parse().ok()) {
            let text = field
                .text()
                .await
                .map_err(|e| RequestError::Multipart(e.to_string()))?;
            let message: IncomingMessage = serde_json::from_str(&text)
                .map_err(|e| RequestError::Json(format!("{name}: {e}")))?;
            messages.push((index, message));
        } else if name == "model" {
            let text = field
                .text()
                .await
                .map_err(|e| RequestError::Multipart(e.to_string()))?;
            model = Some(text);
        }
        // Other fields are the page's additionalBodyProps: not for the model.
    }
    messages.sort_by_key(|(index, _)| *index);
    let mut turns = Vec::with_capacity(messages.len() + 1);
    for (_, message) in messages {
        turns.extend(request::to_turn(message)?);
    }
    if !images.is_empty() {
        // Deep Chat leaves a files-only message out of the message fields.
        match turns.last_mut() {
            Some(last) if last.role == Role::User => last.images.extend(images),
            _ => turns.push(Turn {
                role: Role::User,
                text: String::new(),
                images,
                tool_rounds: Vec::new(),
            }),
        }
    }
    Ok(request::Parsed {
        turns: request::require_user_turn(turns)?,
        model,
        // A form names its conversation in the URL.
        conversation_id: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A form field: name, optional (file name, MIME type), content.
    type Part<'a> = (&'a str, Option<(&'a str, &'a str)>, &'a [u8]);

    fn form(parts: &[Part]) -> (Bytes, String) {
        let mut body = Vec::new();
        for (name, file, data) in parts {
            body.extend_from_slice(b"--XyZ\r\n");
            match file {
                Some((filename, mime)) => body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: {mime}\r\n\r\n").as_bytes(),
                ),
                None => body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                ),
            }
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--XyZ--\r\n");
        (
            Bytes::from(body),
            "multipart/form-data; boundary=XyZ".to_owned(),
        )
    }

    #[tokio::test]
    async fn images_join_the_newest_user_message() {
        let (body, ct) = form(&[
            ("files", Some(("cat.png", "image/png")), &[1, 2, 3]),
            ("model", None, b"ignored"),
            (
                "message2",
                None,
                br#"{"role":"user","text":"what is this?"}"#,
            ),
            ("message1", None, br#"{"role":"ai","text":"hi"}"#),
        ]);
        let turns = parse(body, &ct).await.expect("parsed");
        assert_eq!(turns.len(), 2);
        assert_eq!(turns[0], Turn::assistant("hi"));
        assert_eq!(turns[1].text, "what is this?");
        assert_eq!(
            turns[1].images,
            vec![Image::Inline {
                mime: "image/png".into(),
                base64: "AQID".into()
            }]
        );
    }

    #[tokio::test]
    async fn files_only_upload_is_a_user_turn() {
        let (body, ct) = form(&[("files", Some(("a.jpg", "image/jpeg")), b"x")]);
        let turns = parse(body, &ct).await.expect("parsed");
        assert_eq!(turns.len(), 1);
        assert_eq!(turns[0].role, Role::User);
        assert_eq!(turns[0].images.len(), 1);
    }

    #[tokio::test]
    async fn rejects_non_images_and_garbage() {
        let (body, ct) = form(&[("files", Some(("r.pdf", "application/pdf")), b"%PDF")]);
        assert_eq!(
            parse(body, &ct).await,
            Err(RequestError::UnsupportedFile("r.pdf".into()))
        );
        let garbage = parse(
            Bytes::from_static(b"--XyZ\r\nbroken"),
            "multipart/form-data; boundary=XyZ",
        )
        .await;
        assert!(
            matches!(garbage, Err(RequestError::Multipart(_))),
            "{garbage:?}"
        );
        let no_boundary = parse(Bytes::new(), "multipart/form-data").await;
        assert!(matches!(no_boundary, Err(RequestError::Multipart(_))));
    }
}
