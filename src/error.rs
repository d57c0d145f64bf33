//! Every failure a client can see, in one type with one mapping: the HTTP status, the text of
//! a Deep Chat `{"error"}` frame (WebSocket, SSE, JSON), and a low-cardinality metrics label.
//! Each error is tagged with its source (pingora's idea): the client's fault answers 4xx, the
//! upstream's 502/504, ours 5xx. It uses nothing of the proxy but the response builders, so every
//! layer may return it.

use crate::request_id::{self, RequestId};
use crate::response::{self, Body};
use hyper::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};
use thiserror::Error;

/// Whose fault a failure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The request (or the client's behaviour) cannot be served: 4xx.
    Client,
    /// The provider failed or misbehaved: 502/504.
    Upstream,
    /// The proxy itself (shutting down, at capacity, a bug): 5xx.
    Proxy,
}

impl Source {
    pub fn label(self) -> &'static str {
        match self {
            Source::Client => "client",
            Source::Upstream => "upstream",
            Source::Proxy => "proxy",
        }
    }
}

/// Why a browser's request cannot be answered; the text is shown to the user.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("the request is not valid JSON: {0}")]
    Json(String),
    #[error("the request has no \"messages\" list")]
    NoMessages,
    #[error("the request has no message with text or an image to answer")]
    Empty,
    #[error("file {0:?} cannot be sent to the model: only images are supported")]
    UnsupportedFile(String),
    #[error("the form upload is malformed: {0}")]
    Multipart(String),
    #[error("the request is larger than the {0}-byte limit")]
    TooLarge(usize),
    #[error("the request has more than {0} messages")]
    TooManyMessages(usize),
    /// The body's `model` is not one of the route's `--allow-model` names.
    #[error("{0}")]
    Model(String),
    #[error("rate limit reached: try again in {0} s")]
    RateLimited(u64),
    #[error("too many requests are waiting on this connection; wait for the replies")]
    Busy,
    #[error("the request body did not arrive within {0} s")]
    SlowBody(u64),
    #[error(transparent)]
    OverBudget(#[from] OverBudget),
    /// `conversation=` / `conversationId` is not a valid id (see `store::id`).
    #[error("the conversation id must be 16 to 128 characters of A-Z, a-z, 0-9, '_' and '-'")]
    ConversationId,
}

/// Why a newest message cannot be sent at all (the conversation budget); shown to the user.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum OverBudget {
    #[error("the message has {count} characters; at most {max} can be sent")]
    Chars { count: usize, max: usize },
    #[error("the message has {count} images; at most {max} can be sent")]
    Images { count: usize, max: usize },
    #[error("the message's images are {bytes} bytes; at most {max} bytes of images can be sent")]
    ImageBytes { bytes: usize, max: usize },
}

/// A failure the client sees, from any layer.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProxyError {
    /// The request itself is refused (malformed, too large, rate limited, …).
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The configured provider cannot take what the client sent (e.g. a file type): the
    /// client's content, so a 400, found before anything is sent upstream.
    #[error("{0}")]
    Unsupported(String),
    /// `--auth-token` / `--jwt-secret` refused the request.
    #[error("{0}")]
    Unauthorized(String),
    /// `--allow-origin` refused the page's origin.
    #[error("this origin may not use the proxy")]
    Origin,
    /// Over `--max-connections` (or, with `per_ip`, `--max-connections-per-ip`).
    #[error("the proxy is at its connection limit; try again shortly")]
    Overloaded { per_ip: bool },
    /// The provider failed: an error status, a broken stream, an error event. The text names
    /// the upstream and carries its message (secrets redacted).
    #[error("{0}")]
    Upstream(String),
    /// The reply ran past `--reply-timeout`.
    #[error("the reply took longer than {0} s and was stopped")]
    Timeout(u64),
    /// The model stopped at its token limit.
    #[error("The reply was cut off because the model reached its token limit.")]
    TokenLimit,
    /// The provider's content filter stopped the reply.
    #[error("The provider's content filter stopped this reply.")]
    ContentFilter,
    /// A buffered JSON answer passed `--max-json-reply-bytes`.
    #[error(
        "the reply is longer than the {0}-byte limit of a JSON answer and was stopped; use \
         streaming for long replies"
    )]
    ReplyTooLong(usize),
    /// The drain timeout passed during a shutdown.
    #[error("the server is shutting down; please send your message again")]
    ShuttingDown,
    /// Another turn of the same conversation held it for longer than a reply may take.
    #[error("this conversation is busy with another reply; try again when it is done")]
    ConversationBusy,
}

impl ProxyError {
    /// Every `(label, source)` pair an error can have, for metrics that start at zero.
    pub const LABELS: &'static [(&'static str, &'static str)] = &[
        ("bad_request", "client"),
        ("too_large", "client"),
        ("too_many_messages", "client"),
        ("rate_limit", "client"),
        ("busy", "client"),
        ("slow_request", "client"),
        ("unsupported", "client"),
        ("auth", "client"),
        ("origin", "client"),
        ("connections", "proxy"),
        ("connections_per_ip", "proxy"),
        ("shutting_down", "proxy"),
        ("upstream", "upstream"),
        ("timeout", "upstream"),
        ("token_limit", "upstream"),
        ("content_filter", "upstream"),
        ("reply_too_long", "upstream"),
    ];

    /// Whose fault this is.
    pub fn source(&self) -> Source {
        match self {
            ProxyError::Request(_)
            | ProxyError::Unsupported(_)
            | ProxyError::Unauthorized(_)
            | ProxyError::Origin
            | ProxyError::ConversationBusy => Source::Client,
            ProxyError::Upstream(_)
            | ProxyError::Timeout(_)
            | ProxyError::TokenLimit
            | ProxyError::ContentFilter
            | ProxyError::ReplyTooLong(_) => Source::Upstream,
            ProxyError::Overloaded { .. } | ProxyError::ShuttingDown => Source::Proxy,
        }
    }

    /// The HTTP status of this failure.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Request(request) => match request {
                RequestError::TooLarge(_) | RequestError::OverBudget(_) => {
                    StatusCode::PAYLOAD_TOO_LARGE
                }
                RequestError::SlowBody(_) => StatusCode::REQUEST_TIMEOUT,
                RequestError::RateLimited(_) | RequestError::Busy => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::BAD_REQUEST,
            },
            ProxyError::Unsupported(_) => StatusCode::BAD_REQUEST,
            ProxyError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ProxyError::Origin => StatusCode::FORBIDDEN,
            ProxyError::ConversationBusy => StatusCode::CONFLICT,
            ProxyError::Overloaded { .. } | ProxyError::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Upstream(_)
            | ProxyError::TokenLimit
            | ProxyError::ContentFilter
            | ProxyError::ReplyTooLong(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// The metrics label: a kind, never message text.
    pub fn label(&self) -> &'static str {
        match self {
            ProxyError::Request(request) => match request {
                RequestError::TooLarge(_) | RequestError::OverBudget(_) => "too_large",
                RequestError::TooManyMessages(_) => "too_many_messages",
                RequestError::Model(_) => "model_not_allowed",
                RequestError::RateLimited(_) => "rate_limit",
                RequestError::Busy => "busy",
                RequestError::SlowBody(_) => "slow_request",
                RequestError::Json(_)
                | RequestError::NoMessages
                | RequestError::Empty
                | RequestError::UnsupportedFile(_)
                | RequestError::Multipart(_)
                | RequestError::ConversationId => "bad_request",
            },
            ProxyError::Unsupported(_) => "unsupported",
            ProxyError::Unauthorized(_) => "auth",
            ProxyError::Origin => "origin",
            ProxyError::Overloaded { per_ip: false } => "connections",
            ProxyError::Overloaded { per_ip: true } => "connections_per_ip",
            ProxyError::Upstream(_) => "upstream",
            ProxyError::Timeout(_) => "timeout",
            ProxyError::TokenLimit => "token_limit",
            ProxyError::ContentFilter => "content_filter",
            ProxyError::ReplyTooLong(_) => "reply_too_long",
            ProxyError::ShuttingDown => "shutting_down",
            ProxyError::ConversationBusy => "conversation_busy",
        }
    }

    /// The HTTP answer: Deep Chat's `{"error": text}` with the status (plain text for a
    /// refused origin, which is no Deep Chat page), plus `Retry-After` or `WWW-Authenticate`
    /// where they apply.
    /// The text ends with the request id, which the `X-Request-Id` header also carries.
    pub fn response(&self, request_id: &RequestId) -> Response<Body> {
        let text = request_id.tag(self);
        let mut response = match self {
            ProxyError::Origin => response::plain(self.status(), &text),
            _ => response::json_error(self.status(), &text),
        };
        let headers = response.headers_mut();
        headers.insert(request_id::HEADER, request_id.header_value());
        match self {
            ProxyError::Request(RequestError::RateLimited(seconds)) => {
                headers.insert(RETRY_AFTER, (*seconds).into());
            }
            ProxyError::Overloaded { .. } => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ProxyError::Unauthorized(_) => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_decides_the_status_class() {
        let cases = [
            ProxyError::Request(RequestError::Json("x".into())),
            ProxyError::Request(RequestError::RateLimited(3)),
            ProxyError::Unsupported("pdf".into()),
            ProxyError::Unauthorized("no".into()),
            ProxyError::Origin,
            ProxyError::Overloaded { per_ip: true },
            ProxyError::Upstream("down".into()),
            ProxyError::Timeout(5),
            ProxyError::TokenLimit,
            ProxyError::ContentFilter,
            ProxyError::ReplyTooLong(10),
            ProxyError::ShuttingDown,
            ProxyError::ConversationBusy,
            ProxyError::Request(RequestError::ConversationId),
        ];
        for error in cases {
            let status = error.status();
            match error.source() {
                Source::Client => assert!(status.is_client_error(), "{error:?}"),
                Source::Upstream => assert!(
                    status == StatusCode::BAD_GATEWAY || status == StatusCode::GATEWAY_TIMEOUT,
                    "{error:?}"
                ),
                Source::Proxy => assert!(status.is_server_error(), "{error:?}"),
            }
            assert!(!error.label().contains(' '), "labels are kinds");
        }
    }

    #[test]
    fn labels_lists_exactly_the_pairs_errors_have() {
        let every_kind = [
            ProxyError::Request(RequestError::Json("x".into())),
            ProxyError::Request(RequestError::TooLarge(1)),
            ProxyError::Request(RequestError::TooManyMessages(1)),
            ProxyError::Request(RequestError::RateLimited(1)),
            ProxyError::Request(RequestError::Busy),
            ProxyError::Request(RequestError::SlowBody(1)),
            ProxyError::Unsupported("pdf".into()),
            ProxyError::Unauthorized("no".into()),
            ProxyError::Origin,
            ProxyError::Overloaded { per_ip: false },
            ProxyError::Overloaded { per_ip: true },
            ProxyError::ShuttingDown,
            ProxyError::Upstream("down".into()),
            ProxyError::Timeout(5),
            ProxyError::TokenLimit,
            ProxyError::ContentFilter,
            ProxyError::ReplyTooLong(10),
        ];
        let seen: Vec<_> = every_kind
            .iter()
            .map(|e| (e.label(), e.source().label()))
            .collect();
        for pair in &seen {
            assert!(ProxyError::LABELS.contains(pair), "{pair:?} missing");
        }
        for pair in ProxyError::LABELS {
            assert!(seen.contains(pair), "{pair:?} is no error's");
        }
    }

    #[test]
    fn an_unsupported_file_is_the_clients_400() {
        let error = ProxyError::Unsupported("only images".into());
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert_eq!(error.label(), "unsupported");
        assert_eq!(error.to_string(), "only images");
    }

    #[test]
    fn rate_limits_say_when_to_come_back() {
        let response =
            ProxyError::Request(RequestError::RateLimited(7)).response(&RequestId::new());
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[RETRY_AFTER], "7");
    }
}
