//! Deep Chat over plain HTTP on `POST {path}`: Server-Sent Events when the client accepts
//! `text/event-stream` (Deep Chat's `stream: true`), otherwise one JSON answer. Bodies are JSON
//! or, for file uploads, `multipart/form-data`. There is no socket to remember the dialogue, so
//! the frontend sends it (`requestBodyLimits: {maxMessages: 0}`). A JSON answer carries shown
//! thinking in a field of its own, `thinking`, which Deep Chat does not display (a page's
//! `responseInterceptor` may).

use crate::access::ratelimit::ClientKey;
use crate::config::{Limits, Route};
use crate::deepchat::request::{self, RequestError};
use crate::deepchat::{multipart, sse};
use crate::error::ProxyError;
use crate::reply::budget::Budget;
use crate::reply::conversation::{self, Kept};
use crate::reply::frame::ReplyFrame;
use crate::reply::history::History;
use crate::reply::pipeline::{self, Prepared, ReplyScope};
use crate::reply::relay::RelayLimits;
use crate::response::{self, Body};
use crate::store::id::ConversationId;
use crate::App;
use http_body_util::{BodyExt, Limited};
use hyper::header::{ACCEPT, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use std::sync::Arc;

/// Answers one Deep Chat HTTP request on `route`.
pub async fn handle(
    request: Request<hyper::body::Incoming>,
    app: Arc<App>,
    route: Arc<Route>,
    client: ClientKey,
    scope: ReplyScope,
) -> Response<Body> {
    let wants_events = header(&request, ACCEPT).contains("text/event-stream");
    let (prepared, kept) = match admit(request, &app, &route, &client, &scope).await {
        Ok(admitted) => admitted,
        Err(err) => {
            pipeline::refused(&err, &scope);
            return err.response(&scope.request_id);
        }
    };
    if wants_events {
        return sse::respond(app, &route, prepared, kept);
    }

    // The reply is buffered whole, up to its cap; if the client disconnects, hyper drops this
    // future and with it the upstream stream.
    let max_bytes = route.limits.max_json_reply_bytes;
    // Only thinking is gathered here (the relay keeps the text); the relay's byte cap counts
    // it, so it is bounded like the answer.
    let mut gather = ThinkingGatherer::default();
    let limits = RelayLimits {
        keep_text: max_bytes,
        max_bytes,
        ..RelayLimits::keeping(0)
    };
    let mut outcome = pipeline::run(
        &app,
        prepared,
        &mut gather,
        limits,
        std::future::pending(),
        "http-json",
    )
    .await;
    let thinking = gather.thinking;
    if let Some(kept) = kept {
        // Deep Chat shows the error alone: a failed reply is not remembered.
        let shown = match outcome.error {
            Some(_) => String::new(),
            None => outcome.text.clone(),
        };
        if let Some(ReplyFrame::Text(note)) = kept.finish(outcome.reply_turn(shown)).await {
            outcome.text.push_str(&note);
        }
    }
    if let Some(error) = outcome.error {
        // Deep Chat shows an error instead of text when both are present, so say it plainly.
        return error.response(&scope.request_id);
    }
    let mut answer = json!({ "text": outcome.text });
    if !outcome.files.is_empty() {
        answer["files"] = json!(outcome.files);
    }
    if !thinking.is_empty() {
        answer["thinking"] = json!(thinking);
    }
    response::json(StatusCode::OK, &answer)
}

/// The JSON answer's sink: keeps the shown thinking, drops the rest (the relay keeps the text).
#[derive(Default)]
struct ThinkingGatherer {
    thinking: String,
}

impl futures_util::Sink<ReplyFrame> for ThinkingGatherer {
    type Error = std::convert::Infallible;

    fn poll_ready(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn start_send(
        mut self: std::pin::Pin<&mut Self>,
        frame: ReplyFrame,
    ) -> Result<(), Self::Error> {
        if let ReplyFrame::Thinking(text) = frame {
            self.thinking.push_str(&text);
        }
        Ok(())
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_close(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// The pipeline's admission for one HTTP request: the rate limit, the body read and parsed,
/// the count and budget checks, then the conversation (read from the store when the request
/// names one) and the provider's request.
async fn admit(
    request: Request<hyper::body::Incoming>,
    app: &App,
    route: &Arc<Route>,
    client: &ClientKey,
    scope: &ReplyScope,
) -> Result<(Prepared, Option<Kept>), ProxyError> {
    pipeline::admit_client(app, client).await?;
    let url_id = ConversationId::from_query(request.uri().query())
        .map_err(|_| RequestError::ConversationId)?;
    let content_type = header(&request, CONTENT_TYPE);
    let limits = &route.limits;
    let parsed = read_turns(request, &content_type, limits).await?;
    let turns = pipeline::admit_turns(route, parsed.turns)?;
    let id = conversation::pick_id(parsed.conversation_id, url_id.as_ref())?;
    // Without an id the client's list is the whole dialogue; the history limit still bounds it.
    let mut history = History::new(route.history_limit, Budget::of(limits));
    let lease = match &id {
        Some(id) => {
            let lease = conversation::open(app, client, id).await?;
            conversation::adopt(&mut history, &lease);
            Some(lease)
        }
        None => None,
    };
    let prepared = pipeline::prepare(
        route,
        history.begin(turns),
        parsed.model.as_deref(),
        scope,
        &app.tools,
    )?;
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
) -> Result<request::Parsed, RequestError> {
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
        // Form fields other than messages, files and model are not read: name the
        // conversation in the URL.
        multipart::parse_with_model(body, content_type).await
    } else {
        request::parse_with_model(&body)
    }
}
