//! The operator's generation settings for one upstream: the model, sampling temperature, token
//! limit, extra headers and what to ask of a reasoning model. They are fixed for the whole process, so the binary holds them once
//! beside the adapter and hands them to [`crate::Adapter::build_request`], instead of copying
//! them into every [`crate::Conversation`].

/// What every request to one upstream carries besides the conversation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Generation {
    /// Model (Azure: deployment) name sent upstream.
    pub model: String,
    /// Sampling temperature; `None` leaves the provider's default.
    pub temperature: Option<f32>,
    /// Most tokens per reply; `None` leaves the provider's default.
    pub max_tokens: Option<u32>,
    /// Operator's extra upstream headers (`--header`), appended after the provider's own.
    pub extra_headers: Vec<(String, String)>,
    /// What to ask of a reasoning model; the default asks nothing, so requests stay as they were.
    pub reasoning: ReasoningRequest,
}

/// How hard a reasoning model should think (`--reasoning-effort`), in OpenAI's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    Low,
    Medium,
    High,
}

impl Effort {
    /// The word every provider that takes an effort uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
        }
    }
}

/// The reasoning options a request carries; each adapter sends the ones its provider takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReasoningRequest {
    /// OpenAI Chat `reasoning_effort`, Responses `reasoning.effort`.
    pub effort: Option<Effort>,
    /// Anthropic `thinking.budget_tokens`, Gemini `thinkingConfig.thinkingBudget`, Cohere
    /// `thinking.token_budget`.
    pub budget_tokens: Option<u32>,
    /// The thinking will be shown (or its status): ask providers that stream it only on
    /// request for it (Gemini `includeThoughts`, a Responses summary, Ollama `think`).
    pub stream_thoughts: bool,
}

impl Generation {
    /// The provider's auth header (when there is a key), the provider's fixed headers, then the
    /// operator's extras: the header list every adapter sends.
    pub fn request_headers(
        &self,
        auth: Option<(&str, String)>,
        fixed: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let mut headers = Vec::with_capacity(1 + fixed.len() + self.extra_headers.len());
        if let Some((name, value)) = auth {
            headers.push((name.to_owned(), value));
        }
        headers.extend(
            fixed
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
        );
        headers.extend(self.extra_headers.iter().cloned());
        headers
    }
}

/// `Authorization: Bearer <key>`, for [`Generation::request_headers`].
pub fn bearer(api_key: Option<&str>) -> Option<(&'static str, String)> {
    api_key.map(|key| ("authorization", format!("Bearer {key}")))
}
