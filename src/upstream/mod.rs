//! Upstream I/O: one shared, pooled HTTP client; sending an adapter's request with timeouts
//! and retries, along a route's fallback chain (skipping upstreams whose breaker is open);
//! turning the response body into the adapter's normalized events. Dropping the returned
//! stream drops the response, which closes the upstream connection (cancellation).

pub mod breaker;
pub mod client;
pub mod demo;
mod events;
pub mod models;
pub mod pool;
pub mod redact;
pub mod settings;

use crate::ops::{otel, telemetry};
use crate::request_id::{self, RequestId};
use crate::upstream::pool::{Lease, UpstreamPool};
use deepchat_adapters::event::describe_http_error;
use deepchat_adapters::{framing, Conversation, Event, EventStream, UpstreamRequest};
use futures_util::stream::{self, StreamExt};
use settings::{HttpUpstream, ProviderConfig, UpstreamPolicy};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// Longest error body read from a failed upstream response.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Longest wait before a retry; a longer Retry-After means the upstream is not coming back soon.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(20);

/// One failed attempt, and whether trying again could help.
struct Failure {
    /// Metric label: the HTTP status, or `connect` / `timeout`.
    kind: String,
    message: String,
    retryable: bool,
    retry_after: Option<Duration>,
}

/// The adapter's request for `conversation`, with the key: the reply pipeline builds it before
/// starting a reply, so a conversation the provider cannot take is the client's error.
/// `model` replaces the upstream's `--model` (a model the client chose with `--allow-model`).
pub fn build(
    upstream: &HttpUpstream,
    conversation: &Conversation,
    model: Option<&str>,
) -> Result<UpstreamRequest, deepchat_adapters::AdapterError> {
    let key = upstream.api_key.as_ref().map(|k| k.expose());
    match model {
        Some(model) => {
            let mut generation = upstream.generation.clone();
            generation.model = model.to_owned();
            upstream
                .adapter
                .build_request(conversation, &generation, key)
        }
        None => upstream
            .adapter
            .build_request(conversation, &upstream.generation, key),
    }
}

/// Sends the reply's request id upstream as `X-Request-Id`, so the provider's logs (or the
/// next proxy's) can be matched with ours, unless the operator's `--header` sets one.
pub fn carry_request_id(request: &mut UpstreamRequest, request_id: &RequestId) {
    let header = request_id::HEADER_NAME;
    if !request
        .headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case(header))
    {
        request
            .headers
            .push((header.to_owned(), request_id.as_str().to_owned()));
    }
}

/// The provider's own id for one response, recorded in the reply's log span
/// (`upstream_request_id`): what its support asks for.
fn record_upstream_request_id(headers: &reqwest::header::HeaderMap) {
    // OpenAI, Azure, Cohere and most compatible servers; Anthropic; Azure's API gateway.
    let id = ["x-request-id", "request-id", "apim-request-id"]
        .iter()
        .find_map(|name| headers.get(*name))
        .and_then(|value| value.to_str().ok());
    if let Some(id) = id {
        let id: String = id.chars().take(128).collect();
        tracing::Span::current().record("upstream_request_id", id.as_str());
    }
}

/// Which upstream of a route's chain answered a reply (0 = the first), shared between the
/// reply's stream and its log line; unset while none has.
#[derive(Debug, Clone, Default)]
pub struct Answered(Arc<AtomicUsize>);

impl Answered {
    /// The position of the upstream that answered, if one did.
    pub fn get(&self) -> Option<usize> {
        self.0.load(Ordering::Relaxed).checked_sub(1)
    }

    fn set(&self, position: usize) {
        self.0.store(position + 1, Ordering::Relaxed);
    }
}

/// Starts one streamed reply from a route's chain of upstreams, each with the request built
/// for it by [`build`] (in order; the first is the primary). Never fails: every failure
/// becomes a final [`Event::Error`].
/// Failures before anything reached the client (connect errors, 429, 5xx, first-byte
/// timeout, a stream that opens with an error or ends empty) move on at once to the next
/// upstream of the chain; the last one is retried up to `--retries` times, as a route with a
/// single upstream is. An upstream whose breaker is open is skipped unless it is the last.
/// Nothing is sent until the stream is first polled, so every wait (connect, headers, error
/// body, retry sleeps) happens inside the reply's relay, under its deadlines and its
/// cancellation: dropping the stream at any point abandons the upstream request.
pub fn open(
    pool: &Arc<UpstreamPool>,
    chain: Vec<(HttpUpstream, UpstreamRequest)>,
    policy: &UpstreamPolicy,
    answered: Answered,
) -> EventStream {
    let attempts = Attempts {
        pool: pool.clone(),
        chain,
        policy: *policy,
        answered,
    };
    stream::once(attempts.run()).flatten().boxed()
}

/// Everything one reply's attempts need, owned so the stream can start lazily.
struct Attempts {
    pool: Arc<UpstreamPool>,
    chain: Vec<(HttpUpstream, UpstreamRequest)>,
    policy: UpstreamPolicy,
    answered: Answered,
}

/// How one upstream of the chain did.
enum Tried {
    /// It answered with content: the reply is committed to it.
    Answered(EventStream),
    /// It failed before anything reached the client; the stream is what the client gets if
    /// no other upstream is tried. `fall_back` says whether another upstream may help.
    Failed {
        fall_back: bool,
        events: EventStream,
    },
}

impl Attempts {
    async fn run(self) -> EventStream {
        let Attempts {
            pool,
            chain,
            policy,
            answered,
        } = self;
        // Held by the reply's stream: its connection counts it until the stream is dropped.
        let lease = pool.lease();
        let count = chain.len();
        // A lone upstream is always tried: there is nothing to fall back to.
        let chained = count > 1;
        let mut last_failure = single_error("internal error: no upstream is configured".into());
        for (position, (upstream, request)) in chain.into_iter().enumerate() {
            let last = position + 1 == count;
            if !last && !upstream.breaker.admit() {
                telemetry::breaker_skip(upstream.adapter.name());
                tracing::debug!(upstream = %upstream.label, "breaker open: skipping to the fallback");
                continue;
            }
            let retries = if last { policy.retries } else { 0 };
            match try_upstream(&pool, &lease, &upstream, &request, &policy, retries).await {
                Tried::Answered(events) => {
                    if chained {
                        upstream.breaker.succeeded();
                    }
                    answered.set(position);
                    return with_lease(events, lease);
                }
                Tried::Failed { fall_back, events } => {
                    if chained && fall_back && upstream.breaker.failed() {
                        telemetry::breaker_opened(upstream.adapter.name());
                        tracing::warn!(upstream = %upstream.label, "breaker opened after repeated failures");
                    }
                    if !fall_back || last {
                        return with_lease(events, lease);
                    }
                    telemetry::fallback(upstream.adapter.name());
                    tracing::warn!(upstream = %upstream.label, "upstream failed; trying the fallback");
                    last_failure = events;
                }
            }
        }
        // Reached only with an empty chain: the last upstream is never skipped.
        with_lease(last_failure, lease)
    }
}

/// One upstream's attempts: the first and up to `retries` more, while nothing reached the
/// client.
async fn try_upstream(
    pool: &UpstreamPool,
    lease: &Lease,
    upstream: &HttpUpstream,
    request: &UpstreamRequest,
    policy: &UpstreamPolicy,
    retries: u32,
) -> Tried {
    let name = upstream.adapter.name();
    let mut attempt = 0;
    loop {
        let deadline = tokio::time::Instant::now() + policy.first_byte_timeout;
        let attempt_span = tracing::info_span!(
            "upstream attempt",
            otel.kind = "client",
            attempt,
            gen_ai.system = name,
            upstream = %upstream.label,
            http.response.status_code = tracing::field::Empty,
        );
        let sent = tokio::time::timeout_at(deadline, send(lease.client(), request))
            .instrument(attempt_span.clone())
            .await;
        if let Ok(Ok(response)) = &sent {
            attempt_span.record(
                "http.response.status_code",
                i64::from(response.status().as_u16()),
            );
        }
        let failure = match sent {
            Err(_) => Failure {
                kind: "timeout".into(),
                message: format!(
                    "the {} did not answer within {} s",
                    upstream.label,
                    policy.first_byte_timeout.as_secs()
                ),
                retryable: true,
                retry_after: None,
            },
            Ok(Err(err)) => Failure {
                kind: if err.is_timeout() {
                    "timeout"
                } else {
                    "connect"
                }
                .into(),
                message: format!(
                    "could not reach the {}: {}",
                    upstream.label,
                    describe_reqwest_error(&err)
                ),
                retryable: err.is_connect() || err.is_timeout(),
                retry_after: None,
            },
            Ok(Ok(response)) if response.status().is_success() => {
                record_upstream_request_id(response.headers());
                pool.saw_version(response.version());
                let stream = events(response, upstream, deadline, policy.chunk_timeout);
                match first_content(stream).await {
                    Opened::Content(stream) => return Tried::Answered(stream),
                    Opened::Failed(failure, stream) => {
                        if attempt >= retries {
                            return Tried::Failed {
                                fall_back: true,
                                events: stream,
                            };
                        }
                        failure
                    }
                }
            }
            Ok(Ok(response)) if response.status().is_redirection() => {
                redirect_failure(&response, &upstream.label)
            }
            Ok(Ok(response)) => {
                record_upstream_request_id(response.headers());
                let status = response.status().as_u16();
                let retry_after = retry_after(response.headers());
                let body = read_limited(response, MAX_ERROR_BODY, deadline).await;
                let body = upstream.secrets.redact(&body);
                let message = describe_http_error(&upstream.label, status, &body);
                Failure {
                    kind: status.to_string(),
                    message: upstream.secrets.redact(&message),
                    retryable: status == 429 || (500..=599).contains(&status) && status != 501,
                    retry_after,
                }
            }
        };
        telemetry::upstream_error(name, &failure.kind);
        let wait = backoff(attempt, failure.retry_after);
        if !failure.retryable || attempt >= retries || wait > MAX_RETRY_WAIT {
            return Tried::Failed {
                fall_back: failure.retryable,
                events: single_error(failure.message),
            };
        }
        attempt += 1;
        telemetry::upstream_retry(name);
        tracing::warn!(
            provider = name,
            attempt,
            wait_ms = wait.as_millis() as u64,
            error = %failure.message,
            "retrying upstream request"
        );
        tokio::time::sleep(wait).await;
    }
}

/// How a 2xx stream began.
enum Opened {
    /// Text, thinking or a file came before any error: the reply is committed to this attempt.
    Content(EventStream),
    /// It opened with an error, or ended with no content. Nothing has reached the client, so
    /// another attempt is still invisible to the user; the stream replays what came, for when
    /// no retry is left.
    Failed(Failure, EventStream),
}

/// Reads a fresh stream up to its first content (text, thinking or a file), the last moment a
/// retry is invisible to the user. Events before it (usage, finish) are replayed in order.
/// Thinking counts: shown, it must not wait for the answer, and hidden, holding it back here
/// would buffer a long thinking whole.
async fn first_content(mut stream: EventStream) -> Opened {
    let mut seen = Vec::new();
    loop {
        match stream.next().await {
            Some(event @ (Event::TextDelta(_) | Event::Reasoning(_) | Event::File { .. })) => {
                seen.push(event);
                return Opened::Content(stream::iter(seen).chain(stream).boxed());
            }
            Some(Event::Error(message)) => {
                let failure = Failure {
                    kind: "stream_error".into(),
                    message: message.clone(),
                    retryable: true,
                    retry_after: None,
                };
                seen.push(Event::Error(message));
                return Opened::Failed(failure, stream::iter(seen).boxed());
            }
            Some(other) => seen.push(other),
            None => {
                let failure = Failure {
                    kind: "empty".into(),
                    message: "the upstream ended its reply without any content".into(),
                    retryable: true,
                    retry_after: None,
                };
                return Opened::Failed(failure, stream::iter(seen).boxed());
            }
        }
    }
}

/// Keeps the reply's share of its upstream client until the stream is dropped.
fn with_lease(events: EventStream, lease: Lease) -> EventStream {
    events
        .map(move |event| {
            let _held = &lease;
            event
        })
        .boxed()
}

/// A 3xx: never followed, since a redirect would carry the credentials (`x-api-key`,
/// `api-key`, `--header` values) and the conversation to whatever host it names. The message
/// names the status and the target host, never the URL's path or query (which may hold a key).
fn redirect_failure(response: &reqwest::Response, label: &str) -> Failure {
    let status = response.status().as_u16();
    let target = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|location| response.url().join(location).ok())
        .and_then(|url| {
            let host = url.host_str()?.to_owned();
            Some(match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            })
        });
    let target = match target {
        Some(host) => format!(" to {host}"),
        None => String::new(),
    };
    Failure {
        kind: status.to_string(),
        message: format!(
            "the {label} answered with a redirect (HTTP {status}){target}; the proxy does not \
             follow redirects, which would send the API key elsewhere: check --base-url"
        ),
        retryable: false,
        retry_after: None,
    }
}

/// The upstream's `host:port`, from its configured base URL (for `/readyz`): every provider of
/// the table sends its requests below its base URL, so that host is the one to reach.
pub fn probe_target(provider: &ProviderConfig) -> Option<String> {
    let ProviderConfig::Http(http) = provider else {
        return None;
    };
    probe_http(http)
}

/// [`probe_target`] of an HTTP upstream.
pub fn probe_http(http: &HttpUpstream) -> Option<String> {
    let url = reqwest::Url::parse(&http.base_url).ok()?;
    Some(format!(
        "{}:{}",
        url.host_str()?,
        url.port_or_known_default()?
    ))
}

/// Exponential backoff from 250 ms with ±50 % jitter, or the upstream's Retry-After.
pub fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(wait) = retry_after {
        return wait;
    }
    let base = Duration::from_millis(250) * 2u32.saturating_pow(attempt.min(10));
    // Jitter from the clock's nanoseconds: spreads retries of many clients, needs no RNG.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let factor = 0.5 + f64::from(nanos % 1000) / 1000.0;
    base.mul_f64(factor)
}

/// `Retry-After` in seconds (the HTTP-date form is rare for APIs and treated as absent).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// Decodes a successful response body into events, with first-chunk and between-chunk timeouts.
fn events(
    response: reqwest::Response,
    upstream: &HttpUpstream,
    first_deadline: tokio::time::Instant,
    chunk_timeout: Duration,
) -> EventStream {
    let adapter = &upstream.adapter;
    events::UpstreamEvents::new(
        framing::messages(adapter.framing(), response.bytes_stream()),
        adapter.decoder(),
        upstream.secrets.clone(),
        first_deadline,
        chunk_timeout,
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
    for (name, value) in request.headers.iter().chain(&otel::upstream_headers()) {
        builder = builder.header(name, value);
    }
    let body = serde_json::to_vec(&request.body).unwrap_or_default();
    builder.body(body).send().await
}

/// Reads at most `limit` bytes of an error body as text, until `deadline`: an upstream that
/// sends error headers and then stalls must not hold the reply. What arrived in time is used.
async fn read_limited(
    response: reqwest::Response,
    limit: usize,
    deadline: tokio::time::Instant,
) -> String {
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    loop {
        let chunk = match tokio::time::timeout_at(deadline, chunks.next()).await {
            Ok(Some(Ok(chunk))) => chunk,
            Ok(_) => break,
            Err(_) => {
                tracing::debug!("upstream error body not complete by the first-byte deadline");
                break;
            }
        };
        let room = limit.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    String::from_utf8_lossy(&body).into_owned()
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
    fn backoff_grows_with_jitter_and_honours_retry_after() {
        for attempt in 0..4 {
            let base = 250.0 * f64::from(2u32.pow(attempt));
            let wait = backoff(attempt, None).as_secs_f64() * 1000.0;
            assert!(
                wait >= base * 0.5 && wait <= base * 1.5,
                "{attempt}: {wait}"
            );
        }
        assert_eq!(
            backoff(0, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn retry_after_seconds_parse() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("retry-after", "2".parse().expect("value"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("value"),
        );
        assert_eq!(retry_after(&headers), None);
    }
}
