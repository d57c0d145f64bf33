//! Deep Chat over plain HTTP on `POST {path}`: Server-Sent Events when the client accepts
//! `text/event-stream` (Deep Chat's `stream: true`), otherwise one JSON answer. Bodies are JSON
//! or, for file uploads, `multipart/form-data`. There is no socket to remember the dialogue, so
//! the frontend sends it (`requestBodyLimits: {maxMessages: 0}`).

use crate::access::ratelimit::ClientKey;
use crate::config::Limits;
use crate::deepchat::request::{self, RequestError};
use crate::deepchat::{multipart, sse};
use crate::error::ProxyError;
use crate::reply::budget::Budget;
use crate::reply::conversation::{self, Kept};
use crate::reply::frame::ReplyFrame;
use crate::reply::history::History;
use crate::reply::pipeline::{self, Prepared};
use crate::reply::relay::RelayLimits;
use crate::response::{self, Body};
use crate::store::id::ConversationId;
use crate::App;
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
    let (prepared, kept) = match admit(request, &app, &client).await {
        Ok(admitted) => admitted,
        Err(err) => {
            pipeline::refused(&err);
            return err.response();
        }
    };
    if wants_events {
        return sse::respond(app, prepared, kept);
    }

    // The reply is buffered whole, up to its cap; if the client disconnects, hyper drops this
    // future and with it the upstream stream.
    let max_bytes = app.config.limits.max_json_reply_bytes;
    let mut discard = futures_util::sink::drain();
    let limits = RelayLimits {
        keep_text: max_bytes,
        max_bytes,
    };
    let mut outcome = pipeline::run(
        &app,
        prepared,
        &mut discard,
        limits,
        std::future::pending(),
        "http-json",
    )
    .await;
    if let Some(kept) = kept {
        // Deep Chat shows the error alone: a failed reply is not remembered.
        let shown = match outcome.error {
            Some(_) => String::new(),
            None => outcome.text.clone(),
        };
        if let Some(ReplyFrame::Text(note)) = kept.finish(shown).await {
            outcome.text.push_str(&note);
        }
    }
    match outcome.error {
        // Deep Chat shows an error instead of text when both are present, so say it plainly.
        Some(error) => error.response(),
        None if outcome.files.is_empty() => {
            response::json(StatusCode::OK, &json!({ "text": outcome.text }))
        }
        None => response::json(
            StatusCode::OK,
            &json!({ "text": outcome.text, "files": outcome.files }),
        ),
    }
}

/// The pipeline's admission for one HTTP request: the rate limit, the body read and parsed,
/// the count and budget checks, then the conversation (read from the store when the request
/// names one) and the provider's request.
async fn admit(
    request: Request<hyper::body::Incoming>,
    app: &App,
    client: &ClientKey,
) -> Result<(Prepared, Option<Kept>), ProxyError> {
    pipeline::admit_client(app, client).await?;
    let url_id = ConversationId::from_query(request.uri().query())
        .map_err(|_| RequestError::ConversationId)?;
    let content_type = header(&request, CONTENT_TYPE);
    let limits = &app.config.limits;
    let (turns, body_id) = read_turns(request, &content_type, limits).await?;
    let turns = pipeline::admit_turns(app, turns)?;
    let id = conversation::pick_id(body_id, url_id.as_ref())?;
    // Without an id the client's list is the whole dialogue; the history limit still bounds it.
    let mut history = History::new(app.config.history_limit, Budget::of(limits));
    let lease = match &id {
        Some(id) => {
            let lease = conversation::open(app, client, id).await?;
            conversation::adopt(&mut history, &lease);
            Some(lease)
        }
        None => None,
    };
    let prepared = pipeline::prepare(app, history.begin(turns))?;
    Ok((prepared, lease.map(|lease| Kept::new(lease, history))))
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
) -> Result<(Vec<deepchat_adapters::Turn>, Option<String>), RequestError> {
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
        // Form fields other than messages and files are not read: name the conversation
        // in the URL.
        Ok((multipart::parse(body, content_type).await?, None))
    } else {
        request::parse_with_conversation(&body)
    }
}
