//! Upstream I/O: one shared, pooled HTTP client; sending an adapter's request; turning the
//! response body into the adapter's normalized events, with timeouts. Dropping the returned
//! stream drops the response, which closes the upstream connection (cancellation).

use crate::config::HttpUpstream;
use deepchat_adapters::{framing, Conversation, Event, UpstreamRequest};
use futures_util::stream::{self, BoxStream, StreamExt};
use std::collections::VecDeque;
use std::time::Duration;

/// A reply's events, in order; ends after the last one.
pub type EventStream = BoxStream<'static, Event>;

/// Longest error body read from a failed upstream response.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Builds the process-wide client: connection pooling and HTTP/2 where the upstream offers it.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .user_agent(concat!("deepchat-proxy/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Timeouts applied to one upstream reply.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Until the response headers arrive.
    pub response: Duration,
    /// Between two body chunks.
    pub idle: Duration,
}

/// Starts one streamed reply. Never fails: every failure becomes a final [`Event::Error`].
pub async fn open(
    client: &reqwest::Client,
    upstream: &HttpUpstream,
    conversation: &Conversation,
    timeouts: Timeouts,
) -> EventStream {
    let adapter = upstream.adapter.clone();
    let key = upstream.api_key.as_ref().map(|k| k.expose());
    let request = match adapter.build_request(conversation, key) {
        Ok(request) => request,
        Err(err) => return single_error(err.to_string()),
    };
    let response = match tokio::time::timeout(timeouts.response, send(client, &request)).await {
        Err(_) => {
            return single_error(format!(
                "the {} upstream did not answer within {} s",
                adapter.name(),
                timeouts.response.as_secs()
            ))
        }
        Ok(Err(err)) => {
            return single_error(format!(
                "could not reach the {} upstream: {}",
                adapter.name(),
                describe_reqwest_error(&err)
            ))
        }
        Ok(Ok(response)) => response,
    };
    let status = response.status();
    if !status.is_success() {
        let body = read_limited(response, MAX_ERROR_BODY).await;
        let message = adapter.error_message(status.as_u16(), &body);
        return single_error(scrub(message, key));
    }

    let messages = framing::messages(adapter.framing(), response.bytes_stream());
    let decoder = adapter.decoder();
    let idle = timeouts.idle;
    let state = (messages, decoder, VecDeque::<Event>::new(), false);
    stream::unfold(
        state,
        move |(mut messages, mut decoder, mut pending, mut ended)| async move {
            loop {
                if let Some(event) = pending.pop_front() {
                    return Some((event, (messages, decoder, pending, ended)));
                }
                if ended {
                    return None;
                }
                match tokio::time::timeout(idle, messages.next()).await {
                    Ok(Some(Ok(message))) => pending.extend(decoder.decode(&message)),
                    Ok(Some(Err(err))) => {
                        ended = true;
                        pending.push_back(Event::Error(format!(
                            "the upstream stream broke off: {err}"
                        )));
                    }
                    Ok(None) => {
                        ended = true;
                        pending.extend(decoder.end());
                    }
                    Err(_) => {
                        ended = true;
                        pending.push_back(Event::Error(format!(
                            "the upstream stalled: nothing for {} s",
                            idle.as_secs()
                        )));
                    }
                }
            }
        },
    )
    .boxed()
}

async fn send(
    client: &reqwest::Client,
    request: &UpstreamRequest,
) -> reqwest::Result<reqwest::Response> {
    let mut builder = client
        .post(&request.url)
        .header("content-type", "application/json")
        .header(
            "accept",
            "text/event-stream, application/x-ndjson, application/json",
        );
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let body = serde_json::to_vec(&request.body).unwrap_or_default();
    builder.body(body).send().await
}

/// Reads at most `limit` bytes of a body as text (error bodies only).
async fn read_limited(response: reqwest::Response, limit: usize) -> String {
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(Ok(chunk)) = chunks.next().await {
        let room = limit.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// Removes the API key from text that came from the upstream (some echo it back).
pub fn scrub(text: String, key: Option<&str>) -> String {
    match key {
        Some(key) if key.len() >= 4 && text.contains(key) => text.replace(key, "[redacted]"),
        _ => text,
    }
}

/// A short cause without URLs (which may carry credentials in query strings).
fn describe_reqwest_error(err: &reqwest::Error) -> String {
    let kind = if err.is_connect() {
        "connection failed"
    } else if err.is_timeout() {
        "timed out"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    if cause.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind} ({cause})")
    }
}

fn single_error(message: String) -> EventStream {
    stream::iter([Event::Error(message)]).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_keys() {
        assert_eq!(
            scrub("bad key sk-abcdef given".into(), Some("sk-abcdef")),
            "bad key [redacted] given"
        );
        assert_eq!(scrub("fine".into(), None), "fine");
    }
}
