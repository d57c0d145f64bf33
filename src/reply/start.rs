//! The start of a reply: the conversation sent upstream (system prompt and the turns within
//! the budget; the operator's generation settings stay with the upstream), the provider's
//! request built from it (where a conversation the provider cannot take is found), its event
//! stream, and what interrupts it (the reply timeout, the forced stop).

use crate::config::ProviderConfig;
use crate::error::{ProxyError, RequestError};
use crate::reply::budget::Budget;
use crate::request_id::RequestId;
use crate::upstream::{self, demo};
use crate::App;
use deepchat_adapters::{AdapterError, Conversation, EventStream, Turn, UpstreamRequest};
use futures_util::StreamExt;

/// The conversation to send upstream for these turns, within the conversation budget (the
/// newest turn was checked against it on arrival).
pub fn conversation(app: &App, turns: Vec<Turn>) -> Conversation {
    Conversation {
        system: app.config.system_prompt.clone(),
        turns: Budget::of(&app.config.limits).fit(turns),
    }
}

/// The provider's request for `conversation` (`None` for the demo provider). A file the
/// provider cannot take is the client's error, answered before anything is sent.
pub fn request(
    app: &App,
    conversation: &Conversation,
    request_id: &RequestId,
) -> Result<Source, ProxyError> {
    let http = match &app.config.provider {
        ProviderConfig::Http(http) => http,
        ProviderConfig::Demo(demo) => return Ok(Source::Demo(demo.token_interval)),
    };
    match upstream::build(http, conversation) {
        Ok(mut request) => {
            upstream::carry_request_id(&mut request, request_id);
            Ok(Source::Upstream(request))
        }
        Err(AdapterError::Unsupported(message)) => Err(ProxyError::Unsupported(message)),
        Err(AdapterError::Empty) => Err(ProxyError::Request(RequestError::Empty)),
    }
}

/// Where a reply's events come from: the provider's request, built and accepted by its
/// adapter, or the offline demo at its pace.
pub enum Source {
    Upstream(UpstreamRequest),
    Demo(std::time::Duration),
}

/// One reply from the configured provider. Lazy: the upstream is contacted when the relay
/// first polls the stream, so the whole reply (connect and headers included) is under the
/// relay's deadline and cancellation.
pub fn events(app: &App, conversation: &Conversation, source: Source) -> EventStream {
    match (source, &app.config.provider) {
        (Source::Upstream(request), ProviderConfig::Http(http)) => {
            upstream::open(&app.upstream, http, request, &app.config.upstream)
        }
        (Source::Demo(interval), _) => demo::stream_reply(conversation, interval),
        // [`request`] makes an upstream source only for an HTTP provider.
        (Source::Upstream(_), ProviderConfig::Demo(_)) => {
            futures_util::stream::iter([deepchat_adapters::Event::Error(
                "internal error: no upstream is configured".into(),
            )])
            .boxed()
        }
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
