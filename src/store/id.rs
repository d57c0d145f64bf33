//! Conversation ids: what a page names its conversation with (`?conversation=ID` on the connect
//! URL, or `conversationId` in the body). 16 to 128 characters of `[A-Za-z0-9_-]`: without auth
//! the id is the only secret, so it must be long enough to be unguessable, and a small alphabet
//! keeps it safe in URLs, keys and logs.

/// Fewest characters of an id (16 random base64url characters are 96 bits).
pub const MIN_LEN: usize = 16;
/// Most characters of an id.
pub const MAX_LEN: usize = 128;

/// A valid conversation id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConversationId(String);

/// Why an id was refused; shown to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the conversation id must be {MIN_LEN} to {MAX_LEN} characters of A-Z, a-z, 0-9, '_' and '-'"
)]
pub struct BadId;

impl ConversationId {
    pub fn parse(raw: &str) -> Result<ConversationId, BadId> {
        let valid = (MIN_LEN..=MAX_LEN).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if valid {
            Ok(ConversationId(raw.to_owned()))
        } else {
            Err(BadId)
        }
    }

    /// The id named by `conversation=` in a query string, if any.
    pub fn from_query(query: Option<&str>) -> Result<Option<ConversationId>, BadId> {
        match query_value(query, "conversation") {
            Some(raw) => ConversationId::parse(raw).map(Some),
            None => Ok(None),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The (first) value of `name` in a query string; ids and numbers need no percent-decoding.
pub fn query_value<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_long_and_url_safe() {
        assert!(ConversationId::parse("abcdefghij_-1234").is_ok());
        assert!(ConversationId::parse(&"a".repeat(128)).is_ok());
        for bad in [
            "short",
            "",
            "abcdefghij_-123!",
            "abcdefghij 12345",
            "ééééééééééééééééé",
        ] {
            assert_eq!(ConversationId::parse(bad), Err(BadId), "{bad}");
        }
        assert_eq!(ConversationId::parse(&"a".repeat(129)), Err(BadId));
        assert_eq!(
            ConversationId::from_query(Some("reply=whole&conversation=0123456789abcdef"))
                .expect("valid")
                .map(|id| id.0),
            Some("0123456789abcdef".into())
        );
        assert_eq!(ConversationId::from_query(Some("reply=whole")), Ok(None));
        assert_eq!(
            ConversationId::from_query(Some("conversation=x")),
            Err(BadId)
        );
    }
}
