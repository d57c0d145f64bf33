//! Cohere Chat API v2 (`POST {base}/v2/chat`, `stream: true`): SSE events whose JSON `type`
//! runs from `message-start` to `message-end`, text in `content-delta` events (a reasoning
//! model's thinking in the same events, as `thinking` content). A tool-calling step streams
//! its plan in `tool-plan-delta` events, then per call `tool-call-start` (id and name),
//! `tool-call-delta` (argument text) and `tool-call-end`, and ends with `TOOL_CALL`.

use crate::openai::{CallAssembler, CallPiece, MAX_ARGUMENTS_BYTES};
use crate::{
    Adapter, AdapterError, Conversation, Event, FinishReason, Framing, Generation, Message,
    StreamDecoder, ToolRound, UpstreamRequest, Usage,
};
use serde_json::{json, Value};

/// Where Cohere's API lives when the operator gives no base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.cohere.com";
/// The environment variable conventionally holding the key.
pub const API_KEY_ENV: &str = "COHERE_API_KEY";

/// Chat v2 against one base URL (the part before `/v2/chat`).
#[derive(Debug, Clone)]
pub struct Cohere {
    pub base_url: String,
}

impl Cohere {
    pub fn new(base_url: impl Into<String>) -> Self {
        Cohere {
            base_url: base_url.into(),
        }
    }
}

impl Default for Cohere {
    fn default() -> Self {
        Cohere::new(DEFAULT_BASE_URL)
    }
}

impl Adapter for Cohere {
    fn name(&self) -> &'static str {
        "cohere"
    }

    fn framing(&self) -> Framing {
        Framing::Sse
    }

    fn build_request(
        &self,
        conversation: &Conversation,
        generation: &Generation,
        api_key: Option<&str>,
    ) -> Result<UpstreamRequest, AdapterError> {
        if conversation.turns.is_empty() {
            return Err(AdapterError::Empty);
        }
        let headers = generation.request_headers(crate::generation::bearer(api_key), &[]);
        // v2's request is Chat Completions-shaped: same roles, string or part-list content,
        // `image_url` parts, `temperature` and `max_tokens`.
        let mut body = crate::openai::chat_body_with(conversation, generation, true, cohere_round);
        // Cohere takes a thinking budget, not OpenAI's effort words.
        if let Some(fields) = body.as_object_mut() {
            fields.remove("reasoning_effort");
        }
        if let Some(budget) = generation.reasoning.budget_tokens {
            body["thinking"] = serde_json::json!({"type": "enabled", "token_budget": budget});
        }
        Ok(UpstreamRequest {
            url: format!("{}/v2/chat", self.base_url.trim_end_matches('/')),
            headers,
            body,
        })
    }

    fn decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(ChatV2Decoder::default())
    }
}

/// One round as v2 takes it: the assistant message with its `tool_plan` (the one Cohere sent,
/// carried; else the round's text, which is what a plan is) and `tool_calls`, then one `tool`
/// message per result. The content goes as a plain string, which v2 accepts; it has no error
/// flag, the content already says what failed.
fn cohere_round(round: &ToolRound, messages: &mut Vec<Value>) {
    let carried_plan = round
        .carried_for("cohere")
        .find_map(|item| item.get("tool_plan").and_then(Value::as_str));
    let mut assistant = json!({"role": "assistant"});
    match carried_plan {
        Some(plan) => {
            assistant["tool_plan"] = json!(plan);
            if !round.text.is_empty() {
                assistant["content"] = json!(round.text);
            }
        }
        None if !round.text.is_empty() => assistant["tool_plan"] = json!(round.text),
        None => {}
    }
    if !round.calls.is_empty() {
        assistant["tool_calls"] = Value::Array(crate::openai::chat_tool_calls(&round.calls));
    }
    messages.push(assistant);
    for result in &round.results {
        messages.push(json!({
            "role": "tool",
            "tool_call_id": result.call_id,
            "content": result.content,
        }));
    }
}

/// Decodes the v2 event stream until `message-end`.
#[derive(Debug, Default)]
pub struct ChatV2Decoder {
    /// Set by `message-end` or an error: anything after is ignored, `end()` is satisfied.
    done: bool,
    /// The tool plan so far, carried back with the calls (v2 wants it in the assistant message).
    plan: String,
    /// Calls being assembled from their start and delta events.
    calls: CallAssembler,
}

/// Token counts: the documented `billed_units` are numbers that may be written as floats.
fn count(value: Option<&Value>) -> Option<u64> {
    let value = value?;
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f.round() as u64)
    })
}

/// Prefers the model's real token counts over the billed ones, which leave out the
/// prompt Cohere adds itself.
fn usage_of(usage: &Value) -> Usage {
    let pick = |field: &str| {
        count(usage.get("tokens").and_then(|t| t.get(field)))
            .or_else(|| count(usage.get("billed_units").and_then(|b| b.get(field))))
    };
    Usage {
        input_tokens: pick("input_tokens"),
        output_tokens: pick("output_tokens"),
        // Cohere reports no thinking count of its own.
        reasoning_tokens: None,
    }
}

impl ChatV2Decoder {
    /// Calls finished by a normal end go out (plan first) and make it a tool-use finish; any
    /// other end drops them.
    fn release_calls(&mut self, finish: FinishReason, events: &mut Vec<Event>) -> FinishReason {
        let plan = std::mem::take(&mut self.plan);
        let normal = matches!(finish, FinishReason::Stop | FinishReason::ToolUse);
        if !normal || self.calls.is_empty() {
            self.calls = CallAssembler::default();
            return finish;
        }
        if !plan.is_empty() {
            events.push(Event::Carried(json!({ "tool_plan": plan })));
        }
        events.extend(self.calls.take_events());
        FinishReason::ToolUse
    }

    fn plan_delta(&mut self, event: &Value) {
        let piece = event
            .pointer("/delta/message/tool_plan")
            .and_then(Value::as_str)
            .unwrap_or_default();
        // A plan past the cap is not worth keeping whole; the calls still count.
        if self.plan.len() + piece.len() <= MAX_ARGUMENTS_BYTES {
            self.plan.push_str(piece);
        }
    }

    /// A `tool-call-start` or `tool-call-delta`: one call piece, at the event's index.
    fn call_piece(&mut self, event: &Value) -> Vec<Event> {
        let Some(call) = event.pointer("/delta/message/tool_calls") else {
            return Vec::new();
        };
        let mut piece = CallPiece::from_value(call);
        piece.index = event.get("index").and_then(Value::as_u64).or(piece.index);
        match self.calls.add(&piece) {
            Ok(()) => Vec::new(),
            Err(message) => {
                self.done = true;
                self.calls = CallAssembler::default();
                vec![Event::Error(message.to_owned())]
            }
        }
    }

    fn message_end(&mut self, event: &Value) -> Vec<Event> {
        self.done = true;
        let delta = event.get("delta");
        let reason = delta
            .and_then(|d| d.get("finish_reason"))
            .and_then(Value::as_str)
            .unwrap_or("COMPLETE");
        let detail = delta
            .and_then(|d| d.get("error"))
            .and_then(Value::as_str)
            .filter(|e| !e.is_empty());
        let finish = match reason {
            "TOOL_CALL" => FinishReason::ToolUse,
            "COMPLETE" | "STOP_SEQUENCE" => FinishReason::Stop,
            "MAX_TOKENS" => FinishReason::Length,
            "ERROR_TOXIC" => {
                return vec![Event::Error(
                    "the reply was blocked by Cohere's safety filter (ERROR_TOXIC)".into(),
                )]
            }
            "ERROR_LIMIT" => {
                return vec![Event::Error(format!(
                    "upstream error: the conversation is too long for the model{}",
                    detail.map(|d| format!(" ({d})")).unwrap_or_default()
                ))]
            }
            "ERROR" | "TIMEOUT" => {
                return vec![Event::Error(format!(
                    "upstream error: {}",
                    detail.unwrap_or("the model failed while generating the reply")
                ))]
            }
            other => FinishReason::Other(other.to_owned()),
        };
        let mut events = Vec::new();
        let finish = self.release_calls(finish, &mut events);
        events.push(Event::Finish(finish));
        if let Some(usage) = delta.and_then(|d| d.get("usage")).filter(|u| u.is_object()) {
            events.push(Event::Usage(usage_of(usage)));
        }
        events
    }
}

impl StreamDecoder for ChatV2Decoder {
    fn decode(&mut self, message: &Message) -> Vec<Event> {
        if self.done {
            return Vec::new();
        }
        let data = message.data.trim();
        // Some deployments close with an OpenAI-style `[DONE]`; `message-end` already ended it.
        if data.is_empty() || data == "[DONE]" {
            return Vec::new();
        }
        let event: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(_) => {
                self.done = true;
                return vec![Event::Error(format!(
                    "upstream sent unreadable stream data: {}",
                    data.chars().take(200).collect::<String>()
                ))];
            }
        };
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(message.event.as_str());
        match kind {
            // Thinking content carries `thinking` where the answer carries `text`.
            "content-start" | "content-delta" => {
                let content = event.pointer("/delta/message/content");
                let field = |name: &str| {
                    content
                        .and_then(|c| c.get(name))
                        .and_then(Value::as_str)
                        .filter(|text| !text.is_empty())
                };
                let mut events = Vec::new();
                if let Some(thinking) = field("thinking") {
                    events.push(Event::Reasoning(thinking.to_owned()));
                }
                if let Some(text) = field("text") {
                    events.push(Event::TextDelta(text.to_owned()));
                }
                events
            }
            "tool-plan-delta" => {
                self.plan_delta(&event);
                Vec::new()
            }
            "tool-call-start" | "tool-call-delta" => self.call_piece(&event),
            "message-end" => self.message_end(&event),
            // An untyped body in the stream is an error object (`{"message": …}`).
            "" | "error" => {
                self.done = true;
                let text = crate::event::extract_error_value(&event)
                    .unwrap_or_else(|| data.chars().take(200).collect());
                vec![Event::Error(format!("upstream error: {text}"))]
            }
            // message-start, content-end, tool-call-end, citations, debug.
            _ => Vec::new(),
        }
    }

    fn end(&mut self) -> Vec<Event> {
        if self.done {
            Vec::new()
        } else {
            self.done = true;
            vec![Event::Error(
                "the upstream stream ended before the reply was complete".into(),
            )]
        }
    }
}
