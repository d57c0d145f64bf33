//! Request ids: one per reply, tying together what the user sees (the end of every error
//! text), the HTTP answer (`X-Request-Id`), the upstream request (the same header) and every
//! log line of the reply. A client's own `X-Request-Id` is kept when it is a sane token, so a
//! caller's trace continues through the proxy; anything else gets a fresh id.

use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The header the id travels in, both ways.
pub const HEADER_NAME: &str = "x-request-id";
pub const HEADER: HeaderName = HeaderName::from_static(HEADER_NAME);

/// Longest client id kept: a UUID or a trace id fits; longer is not worth logging.
const MAX_CLIENT_ID: usize = 64;

/// One reply's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// A fresh id: 16 hex digits, unique within the process and unlikely to repeat across
    /// restarts (the start time seeds the counter).
    pub fn new() -> RequestId {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        static BASE: OnceLock<u64> = OnceLock::new();
        let base = *BASE.get_or_init(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        });
        RequestId(format!(
            "{:016x}",
            base.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))
        ))
    }

    /// The client's `X-Request-Id` when it is 1–64 characters of `[A-Za-z0-9._:-]` (safe in
    /// logs, headers and an error text), else a fresh id.
    pub fn from_headers(headers: &HeaderMap) -> RequestId {
        headers
            .get(HEADER)
            .and_then(|value| value.to_str().ok())
            .filter(|id| is_sane(id))
            .map(|id| RequestId(id.to_owned()))
            .unwrap_or_default()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as a header value (its characters are always valid in one).
    pub fn header_value(&self) -> HeaderValue {
        HeaderValue::from_str(&self.0).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
    }

    /// The text a user is shown for `error`, ending with the id to quote in a support ticket.
    pub fn tag(&self, error: &impl fmt::Display) -> String {
        format!("{error} (request id {})", self.0)
    }
}

impl Default for RequestId {
    fn default() -> Self {
        RequestId::new()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_sane(id: &str) -> bool {
    (1..=MAX_CLIENT_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_header(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, HeaderValue::from_str(value).expect("header"));
        headers
    }

    #[test]
    fn a_sane_client_id_is_kept_and_anything_else_replaced() {
        let kept = RequestId::from_headers(&with_header("3f2a-91:trace.7"));
        assert_eq!(kept.as_str(), "3f2a-91:trace.7");
        for bad in ["has space", "quote\"", &"x".repeat(65), "<script>"] {
            let replaced = RequestId::from_headers(&with_header(bad));
            assert_ne!(replaced.as_str(), bad);
            assert_eq!(replaced.as_str().len(), 16, "{bad:?}");
        }
    }

    #[test]
    fn fresh_ids_differ_and_the_tag_ends_with_the_id() {
        let (a, b) = (RequestId::new(), RequestId::new());
        assert_ne!(a, b);
        assert_eq!(
            a.tag(&"upstream failed"),
            format!("upstream failed (request id {a})")
        );
    }
}
