//! Deep Chat's `loadHistory` over HTTP: `GET {path}/history?conversation=ID&index=N` answers
//! page N of the stored dialogue as Deep Chat messages, oldest first, ending with `false` once
//! the oldest message is in it (Deep Chat then stops asking); `DELETE` forgets the
//! conversation. Only its owner sees it: another principal's id is "not found", as a missing
//! one is, so nobody learns which ids exist.

use crate::access::ratelimit::ClientKey;
use crate::reply::pipeline::{self, ReplyScope};
use crate::response::{self, Body};
use crate::store::conversations::Conversations;
use crate::store::id::{query_value, ConversationId};
use crate::store::record::{self, Message};
use crate::App;
use hyper::header::{HeaderValue, CACHE_CONTROL};
use hyper::{Method, Request, Response, StatusCode};

/// Messages per page unless `size=` says.
pub const DEFAULT_PAGE: usize = 20;
/// Most messages per page.
pub const MAX_PAGE: usize = 100;

/// Answers `GET` or `DELETE` on the history route.
pub async fn handle(
    request: &Request<hyper::body::Incoming>,
    app: &App,
    client: &ClientKey,
    scope: &ReplyScope,
) -> Response<Body> {
    if let Err(err) = pipeline::admit_client(app, client).await {
        pipeline::refused(&err, scope);
        return err.response(&scope.request_id);
    }
    let query = request.uri().query();
    let id = match ConversationId::from_query(query) {
        Ok(Some(id)) => id,
        Ok(None) => return bad("name the conversation: ?conversation=ID"),
        Err(why) => return bad(&why.to_string()),
    };
    let number = |name: &str, default: usize| match query_value(query, name) {
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| format!("{name}= must be a whole number")),
        None => Ok(default),
    };
    let key = Conversations::key(client.identity.as_deref(), &id);
    let mut response = match *request.method() {
        Method::GET => {
            let (index, size) = match (number("index", 0), number("size", DEFAULT_PAGE)) {
                (Ok(index), Ok(size)) => (index, size.clamp(1, MAX_PAGE)),
                (Err(why), _) | (_, Err(why)) => return bad(&why),
            };
            match app.conversations.read(&key).await {
                Ok(Some(turns)) => {
                    let messages: Vec<Message> = turns.iter().map(Message::of).collect();
                    let page = serde_json::Value::Array(record::page(&messages, index, size));
                    response::json(StatusCode::OK, &page)
                }
                Ok(None) => not_found(),
                Err(_) => unavailable(),
            }
        }
        Method::DELETE => match app.conversations.forget(key).await {
            Ok(true) => {
                let mut response = Response::new(response::empty());
                *response.status_mut() = StatusCode::NO_CONTENT;
                response
            }
            Ok(false) => not_found(),
            Err(_) => unavailable(),
        },
        _ => response::plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
    };
    // A dialogue is private: no cache may keep it.
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn bad(why: &str) -> Response<Body> {
    response::json_error(StatusCode::BAD_REQUEST, why)
}

fn not_found() -> Response<Body> {
    response::json_error(StatusCode::NOT_FOUND, "conversation not found")
}

fn unavailable() -> Response<Body> {
    response::json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the conversation store is unavailable; try again shortly",
    )
}
