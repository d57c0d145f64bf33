//! The provider-neutral conversation every adapter translates from.

/// Who said a turn. Deep Chat's `ai` role is [`Role::Assistant`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

/// An image attached to a turn, already decoded from a data URL (or kept as a remote URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    /// Inline bytes, base64-encoded as they arrived, with their MIME type.
    Inline { mime: String, base64: String },
    /// A URL the provider fetches itself.
    Url(String),
}

impl Image {
    /// The image as a URL: data URL for inline bytes.
    pub fn to_url(&self) -> String {
        match self {
            Image::Inline { mime, base64 } => format!("data:{mime};base64,{base64}"),
            Image::Url(url) => url.clone(),
        }
    }
}

/// One message of the dialogue.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub role: Role,
    pub text: String,
    pub images: Vec<Image>,
    /// Assistant turns only: the tool rounds that came before `text`, oldest first. A turn
    /// still in progress (the tool loop's) has rounds and no text yet: adapters send its rounds
    /// and no empty message.
    pub tool_rounds: Vec<crate::tools::ToolRound>,
}

impl Turn {
    pub fn user(text: impl Into<String>) -> Self {
        Turn {
            role: Role::User,
            text: text.into(),
            images: Vec::new(),
            tool_rounds: Vec::new(),
        }
    }

    pub fn assistant(text: impl Into<String>) -> Self {
        Turn {
            role: Role::Assistant,
            text: text.into(),
            images: Vec::new(),
            tool_rounds: Vec::new(),
        }
    }
}

/// What one upstream request should answer: the prompt and the dialogue. The operator's
/// model and sampling settings travel separately, in [`crate::Generation`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conversation {
    /// Operator's system prompt, sent the way each provider expects.
    pub system: Option<String>,
    /// The dialogue, oldest first; the last turn is normally the user's.
    pub turns: Vec<Turn>,
    /// Tools the model may call (empty: the request offers none, exactly as before).
    pub tools: Vec<crate::tools::ToolSpec>,
}
