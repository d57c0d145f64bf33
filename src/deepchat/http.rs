//! Deep Chat over plain HTTP on `POST {path}`: Server-Sent Events when the client accepts
//! `text/event-stream` (Deep Chat's `stream: true`), otherwise one JSON answer. Bodies are JSON
//! or, for file uploads, `multipart/form-data`. There is no socket to remember the dialogue, so
//! the frontend sends it (`requestBodyLimits: {maxMessages: 0}`).

use crate::access::ratelimit::ClientKey;
use crate::config::Limits;
use crate::deepchat::request::{self, RequestError};
use crate::deepchat::{multipart, sse};
use crate::ops::telemetry;
use crate::reply;
use crate::reply::budget::Budget;
use crate::reply::history::History;
use crate::reply::relay::{self, Ending};
use crate::response::{self, Body};
use crate::App;
use deepchat_adapters::Event;
use deepchat_adapters::EventStream;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Limited};
use hyper::header::{ACCEPT, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use std::sync::Arc;

/// Answers one Deep Chat HTTP request.
pub async fn handle(
    request: Request<hyper::body::Incoming>,
    app: Arc<App>,
    client: ClientKey,
) -> Response<Body> {
    let wants_events = header(&request, ACCEPT).contains("text/event-stream");
    let content_type = header(&request, CONTENT_TYPE);
    let limits = &app.config.limits;
    let admitted = app
        .limiter
        .check(&client.keys())
        .map_err(|wait| RequestError::RateLimited(wait.as_secs().max(1)));
    let turns = match admitted {
        Ok(()) => read_turns(request, &content_type, limits)
            .await
            .and_then(|turns| request::check_count(turns, limits.max_messages))
            .and_then(|turns| Ok(Budget::of(limits).check_newest(turns)?)),
        Err(err) => Err(err),
    };
    let turns = match turns {
        Ok(turns) => turns,
        Err(err) => {
            telemetry::rejected(err.rejection());
            let status = match err {
                RequestError::TooLarge(_) | RequestError::OverBudget(_) => {
                    StatusCode::PAYLOAD_TOO_LARGE
                }
                RequestError::SlowBody(_) => StatusCode::REQUEST_TIMEOUT,
                RequestError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::BAD_REQUEST,
            };
            let mut response = response::json_error(status, &err.to_string());
            if let RequestError::RateLimited(seconds) = err {
                response
                    .headers_mut()
                    .insert(hyper::header::RETRY_AFTER, seconds.into());
            }
            return response;
        }
    };
    // The client's list is the whole dialogue; the history limit still bounds it.
    let started = std::time::Instant::now();
    let conversation = reply::start::conversation(
        &app,
        History::new(app.config.history_limit, Budget::of(limits)).begin(turns),
    );
    let streaming = telemetry::Active::stream();
    let events = reply::start::events(&app, &conversation);
    if wants_events {
        let question = reply::log::newest_text(&conversation).map(str::to_owned);
        return sse::respond(events, app, started, question, streaming);
    }

    // The reply is buffered whole, up to its cap; if the client disconnects, hyper drops this
    // future and with it the upstream stream.
    let max_bytes = limits.max_json_reply_bytes;
    let mut discard = futures_util::sink::drain();
    let outcome = relay::relay(
        capped(events, max_bytes),
        &mut discard,
        Ending::Close,
        max_bytes,
        std::future::pending(),
    )
    .await;
    drop(streaming);
    let context = reply::log::context(
        &app,
        "http-json",
        started,
        reply::log::newest_text(&conversation),
    );
    reply::log::finished(&context, &outcome, app.config.log_content);
    match outcome.error {
        // Deep Chat shows an error instead of text when both are present, so say it plainly.
        Some(error) => response::json_error(StatusCode::BAD_GATEWAY, &error),
        None if outcome.files.is_empty() => {
            response::json(StatusCode::OK, &json!({ "text": outcome.text }))
        }
        None => response::json(
            StatusCode::OK,
            &json!({ "text": outcome.text, "files": outcome.files }),
        ),
    }
}

/// Ends `events` with an error once its text and files pass `max_bytes`, dropping the upstream
/// at once: a buffered answer must not grow with a reply that runs away.
fn capped(events: EventStream, max_bytes: usize) -> EventStream {
    futures_util::stream::unfold((Some(events), 0usize), move |(events, seen)| async move {
        let mut events = events?;
        let event = events.next().await?;
        let seen = seen.saturating_add(match &event {
            Event::TextDelta(text) => text.len(),
            Event::File { src, .. } => src.len(),
            _ => 0,
        });
        if seen > max_bytes {
            let error = format!(
                "the reply is longer than the {max_bytes}-byte limit of a JSON answer and was \
                 stopped; use streaming for long replies"
            );
            return Some((Event::Error(error), (None, seen)));
        }
        Some((event, (Some(events), seen)))
    })
    .boxed()
}

fn header(request: &Request<hyper::body::Incoming>, name: hyper::header::HeaderName) -> String {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Reads the body within the byte limit and the request timeout (a body that trickles in
/// would otherwise hold the connection forever), then parses it by content type.
async fn read_turns(
    request: Request<hyper::body::Incoming>,
    content_type: &str,
    limits: &Limits,
) -> Result<Vec<deepchat_adapters::Turn>, RequestError> {
    let limit = limits.max_request_bytes;
    let collected = Limited::new(request.into_body(), limit).collect();
    let Ok(collected) = tokio::time::timeout(limits.request_timeout, collected).await else {
        return Err(RequestError::SlowBody(limits.request_timeout.as_secs()));
    };
    let body = match collected {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            return Err(RequestError::TooLarge(limit))
        }
        Err(err) => {
            return Err(RequestError::Multipart(format!(
                "the upload broke off: {err}"
            )))
        }
    };
    if content_type
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        multipart::parse(body, content_type).await
    } else {
        request::parse(&body)
    }
}
