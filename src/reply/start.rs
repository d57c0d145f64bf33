//! The start of a reply: the conversation sent upstream (the route's system prompt and the
//! turns within its budget; the operator's generation settings stay with the upstream), the
//! model (the route's, or one the client chose among `--allow-model`), the request for each
//! upstream of the route's chain (where a conversation the primary cannot take is found), its
//! event stream, and what interrupts it (the reply timeout, the forced stop).

use crate::config::{HttpUpstream, ProviderConfig, Route};
use crate::error::{ProxyError, RequestError};
use crate::reply::budget::Budget;
use crate::request_id::RequestId;
use crate::upstream::{self, demo, Answered};
use crate::App;
use deepchat_adapters::{AdapterError, Conversation, EventStream, Turn, UpstreamRequest};
use futures_util::StreamExt;

/// The conversation to send upstream for these turns, within the route's conversation budget
/// (the newest turn was checked against it on arrival).
pub fn conversation(route: &Route, turns: Vec<Turn>) -> Conversation {
    Conversation {
        system: route.system_prompt.clone(),
        turns: Budget::of(&route.limits).fit(turns),
        tools: Vec::new(),
    }
}

/// The model sent to the primary: the client's choice when the route offers one (`None`
/// keeps the primary's `--model`); a name the route does not offer is the client's error.
pub fn model(route: &Route, requested: Option<&str>) -> Result<Option<String>, ProxyError> {
    let default = match route.primary() {
        ProviderConfig::Http(http) => http.generation.model.as_str(),
        ProviderConfig::Demo(_) => "demo",
    };
    route
        .models
        .choose(requested, default)
        .map_err(|refused| RequestError::Model(refused.to_string()).into())
}

/// The requests for `conversation` along the route's chain (`Demo` for the demo provider),
/// the primary's with `model`. A file the primary cannot take is the client's error, answered
/// before anything is sent; a fallback that cannot take it is left out of this reply's chain.
pub fn request(
    route: &Route,
    conversation: &Conversation,
    model: Option<&str>,
    request_id: &RequestId,
) -> Result<Source, ProxyError> {
    let mut chain = Vec::new();
    for (position, provider) in route.chain.iter().enumerate() {
        let http = match provider {
            ProviderConfig::Http(http) => http,
            ProviderConfig::Demo(demo) => return Ok(Source::Demo(demo.token_interval)),
        };
        let chosen = if position == 0 { model } else { None };
        match upstream::build(http, conversation, chosen) {
            Ok(mut request) => {
                upstream::carry_request_id(&mut request, request_id);
                chain.push((http.clone(), request));
            }
            Err(_) if position > 0 => {}
            Err(AdapterError::Unsupported(message)) => {
                return Err(ProxyError::Unsupported(message))
            }
            Err(AdapterError::Empty) => return Err(ProxyError::Request(RequestError::Empty)),
        }
    }
    Ok(Source::Upstream(chain))
}

/// Where a reply's events come from: the requests along the route's chain, built and
/// accepted by their adapters, or the offline demo at its pace.
pub enum Source {
    Upstream(Vec<(HttpUpstream, UpstreamRequest)>),
    Demo(std::time::Duration),
}

/// One reply from the route's upstreams; `answered` learns which one answered. Lazy: the
/// upstream is contacted when the relay first polls the stream, so the whole reply (connect
/// and headers included) is under the relay's deadline and cancellation.
pub fn events(
    app: &App,
    conversation: &Conversation,
    source: Source,
    answered: Answered,
) -> EventStream {
    match source {
        Source::Upstream(chain) if !chain.is_empty() => {
            upstream::open(&app.upstream, chain, &app.config.upstream, answered)
        }
        Source::Demo(interval) => demo::stream_reply(conversation, interval),
        // [`request`] always has the primary's request in an upstream source.
        Source::Upstream(_) => futures_util::stream::iter([deepchat_adapters::Event::Error(
            "internal error: no upstream is configured".into(),
        )])
        .boxed(),
    }
}

/// Resolves with the error that ends a reply early: its `--reply-timeout` passed, or the drain
/// timeout forced the remaining replies to stop. Starts counting when first polled.
pub async fn interruption(app: &App) -> ProxyError {
    let limit = app.config.upstream.reply_timeout;
    tokio::select! {
        _ = tokio::time::sleep(limit) => ProxyError::Timeout(limit.as_secs()),
        _ = app.force_stop.cancelled() => ProxyError::ShuttingDown,
    }
}
