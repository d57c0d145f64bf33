//! Whose reply this is and how it is known, carried from the transport that took the request
//! through the pipeline into the logs, the error text and the upstream request.

use crate::error::ProxyError;
use crate::request_id::RequestId;

/// Whose reply this is: its request id (in every log line, the error text and the upstream
/// request) and the client's IP (or the `--client-ip-header` value), for the logs.
#[derive(Debug, Clone)]
pub struct ReplyScope {
    pub request_id: RequestId,
    pub client_ip: String,
    /// The caller's trace (a W3C `traceparent`), when tracing is on and the request had one.
    pub trace_parent: Option<opentelemetry::Context>,
}

impl ReplyScope {
    /// The text a user is shown for `error`: the message, then the request id.
    pub fn error_text(&self, error: &ProxyError) -> String {
        self.request_id.tag(error)
    }
}
