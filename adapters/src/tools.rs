//! Function calling, provider-neutral: the tools offered to the model, the calls it makes and
//! the results sent back. The binary runs the loop (it calls MCP servers); each adapter only
//! renders these in its provider's format and decodes streamed calls into [`ToolCall`]s.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// The name the model calls it by (unique in one request).
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object (MCP's `inputSchema`).
    pub parameters: Value,
}

/// One call the model asked for, assembled from however many stream pieces it arrived in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's call id, echoed with the result (adapters invent one where the provider
    /// has none, e.g. Ollama).
    pub id: String,
    pub name: String,
    /// The arguments as JSON text, exactly as the model produced them (may be invalid JSON:
    /// the model's output is untrusted). Providers that send an object have it serialized.
    pub arguments: String,
    /// Provider state that must come back with this call (Gemini's `thoughtSignature`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// What a tool answered, sent back to the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolResult {
    /// The [`ToolCall::id`] it answers.
    pub call_id: String,
    /// The tool's name (Gemini and Ollama match results by name).
    pub name: String,
    /// The result as text (already capped by the binary).
    pub content: String,
    /// The tool failed: `content` says why, for the model to see.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_error: bool,
}

/// Provider-private content of an assistant message that must be sent back verbatim for the
/// dialogue to continue (Anthropic's signed `thinking` blocks, a Responses `reasoning` item).
/// Tagged with the adapter that produced it: another provider never receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Carried {
    /// [`crate::Adapter::name`] of the adapter that decoded it.
    pub adapter: String,
    pub item: Value,
}

/// One step of tool use inside an assistant turn: what the model said and carried, the calls
/// it made, and their results, in the order they happened.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolRound {
    /// Text the model sent before (or with) its calls.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub carried: Vec<Carried>,
    pub calls: Vec<ToolCall>,
    /// One result per call, in the same order.
    pub results: Vec<ToolResult>,
}

impl ToolRound {
    /// The carried items this adapter produced (the others are dropped when a fallback of
    /// another provider continues the dialogue).
    pub fn carried_for<'a>(&'a self, adapter: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.carried
            .iter()
            .filter(move |carried| carried.adapter == adapter)
            .map(|carried| &carried.item)
    }
}

/// The arguments as a JSON object for providers that take an object (Anthropic `input`,
/// Gemini `args`, Ollama `arguments`): invalid or non-object text becomes `{}`.
pub fn arguments_object(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(value @ Value::Object(_)) => value,
        _ => Value::Object(Default::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_that_are_not_an_object_become_an_empty_one() {
        assert_eq!(arguments_object(r#"{"a":1}"#), serde_json::json!({"a": 1}));
        assert_eq!(arguments_object("[1]"), serde_json::json!({}));
        assert_eq!(arguments_object("{\"a\":"), serde_json::json!({}));
        assert_eq!(arguments_object(""), serde_json::json!({}));
    }

    #[test]
    fn carried_items_stay_with_their_adapter() {
        let round = ToolRound {
            carried: vec![
                Carried {
                    adapter: "anthropic".into(),
                    item: serde_json::json!({"type": "thinking"}),
                },
                Carried {
                    adapter: "gemini".into(),
                    item: serde_json::json!({"x": 1}),
                },
            ],
            ..ToolRound::default()
        };
        assert_eq!(round.carried_for("anthropic").count(), 1);
        assert_eq!(round.carried_for("openai").count(), 0);
    }
}
