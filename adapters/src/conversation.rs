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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub role: Role,
    pub text: String,
    pub images: Vec<Image>,
}

impl Turn {
    pub fn user(text: impl Into<String>) -> Self {
        Turn {
            role: Role::User,
            text: text.into(),
            images: Vec::new(),
        }
    }

    pub fn assistant(text: impl Into<String>) -> Self {
        Turn {
            role: Role::Assistant,
            text: text.into(),
            images: Vec::new(),
        }
    }
}

/// What one upstream request should answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conversation {
    /// Operator's system prompt, sent the way each provider expects.
    pub system: Option<String>,
    /// The dialogue, oldest first; the last turn is normally the user's.
    pub turns: Vec<Turn>,
    pub model: String,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    /// Operator's extra upstream headers (`--header`), appended after the provider's own.
    pub extra_headers: Vec<(String, String)>,
}

impl Conversation {
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

/// `Authorization: Bearer <key>`, for [`Conversation::request_headers`].
pub fn bearer(api_key: Option<&str>) -> Option<(&'static str, String)> {
    api_key.map(|key| ("authorization", format!("Bearer {key}")))
}
