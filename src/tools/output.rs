//! A tool's answer as the text the model is sent: MCP content blocks (read as the spec's JSON,
//! so a newer SDK's extra fields change nothing) flattened to text and capped in bytes, so a
//! tool that returns megabytes cannot blow the upstream request or its bill.

use serde_json::Value;

/// The text of `content` (MCP `CallToolResult.content`) and, when it has no text,
/// `structured` (its `structuredContent`), at most `max_bytes` long.
pub fn to_text(content: &Value, structured: Option<&Value>, max_bytes: usize) -> String {
    let mut text = String::new();
    if let Some(blocks) = content.as_array() {
        for block in blocks {
            if text.len() > max_bytes {
                break;
            }
            if !text.is_empty() {
                text.push('\n');
            }
            describe_block(block, &mut text);
        }
    }
    if text.is_empty() {
        if let Some(structured) = structured {
            text = structured.to_string();
        }
    }
    cap(text, max_bytes)
}

/// One content block: its text, or a short note for what a text model cannot read.
fn describe_block(block: &Value, out: &mut String) {
    let field = |name: &str| block.get(name).and_then(Value::as_str).unwrap_or("");
    match field("type") {
        "text" => out.push_str(field("text")),
        "resource" => {
            let resource = block.get("resource").unwrap_or(&Value::Null);
            match resource.get("text").and_then(Value::as_str) {
                Some(text) => out.push_str(text),
                None => out.push_str(&format!(
                    "[binary resource {}]",
                    resource.get("uri").and_then(Value::as_str).unwrap_or("")
                )),
            }
        }
        "resource_link" => out.push_str(&format!("[link {} {}]", field("name"), field("uri"))),
        kind @ ("image" | "audio") => out.push_str(&format!(
            "[{kind} {}, {} bytes base64]",
            field("mimeType"),
            field("data").len()
        )),
        other => out.push_str(&format!("[{other} content]")),
    }
}

/// `text` cut to `max_bytes` on a character boundary, saying that it was cut.
pub fn cap(mut text: String, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text;
    }
    let note = format!("\n[output cut: the tool returned more than {max_bytes} bytes]");
    let mut cut = max_bytes.saturating_sub(note.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text.push_str(&note);
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_blocks_are_joined_and_others_described() {
        let content = json!([
            {"type": "text", "text": "Echo: ping"},
            {"type": "image", "data": "AAAA", "mimeType": "image/png"},
            {"type": "resource", "resource": {"uri": "file:///a", "text": "inside"}},
        ]);
        assert_eq!(
            to_text(&content, None, 1000),
            "Echo: ping\n[image image/png, 4 bytes base64]\ninside"
        );
    }

    #[test]
    fn structured_content_stands_in_for_missing_text() {
        assert_eq!(
            to_text(&json!([]), Some(&json!({"sum": 5})), 100),
            r#"{"sum":5}"#
        );
    }

    #[test]
    fn output_is_capped_on_a_character_boundary_with_a_note() {
        let content = json!([{"type": "text", "text": "é".repeat(10_000)}]);
        let text = to_text(&content, None, 300);
        assert!(text.len() <= 300, "{} bytes", text.len());
        assert!(text.ends_with("more than 300 bytes]"));
        assert!(text.starts_with("éé"));
    }
}
