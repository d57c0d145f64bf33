//! The one reply pipeline every transport runs: admission (rate limit, message count, the
//! newest message against the budget), preparation (the conversation within the budget and the
//! provider's request, where a file the provider cannot take is refused), then
//! start → relay → log. A transport brings a parser, a sink of [`ReplyFrame`]s and a way to
//! tell that its client left; refusals come back as one [`ProxyError`] it serializes.

use crate::access::ratelimit::ClientKey;
use crate::error::{ProxyError, RequestError};
use crate::ops::telemetry;
use crate::reply::budget::Budget;
use crate::reply::frame::ReplyFrame;
use crate::reply::relay::{self, Outcome, RelayLimits};
use crate::reply::{log, start};
use crate::App;
use deepchat_adapters::{Conversation, Turn};
use futures_util::Sink;
use std::future::Future;

/// The first gate, before the request is even read: the client's rate limit. With a store
/// replicas share, it counts there, so replicas together allow `--rate-limit`; if that store
/// fails, each replica limits on its own (fail-open to the local limit, never to none).
pub async fn admit_client(app: &App, client: &ClientKey) -> Result<(), ProxyError> {
    let keys = client.keys();
    let per_minute = app.config.limits.rate_limit;
    let shared = match per_minute {
        0 => None,
        _ => app.conversations.count_request(&keys, per_minute).await,
    };
    shared
        .unwrap_or_else(|| app.limiter.check(&keys))
        .map_err(|wait| RequestError::RateLimited(wait.as_secs().max(1)).into())
}

/// The parsed request's gate: at most `--max-messages`, and a newest message that fits the
/// conversation budget on its own.
pub fn admit_turns(app: &App, turns: Vec<Turn>) -> Result<Vec<Turn>, ProxyError> {
    let limits = &app.config.limits;
    if turns.len() > limits.max_messages {
        return Err(RequestError::TooManyMessages(limits.max_messages).into());
    }
    Ok(Budget::of(limits)
        .check_newest(turns)
        .map_err(RequestError::from)?)
}

/// A reply ready to start: what goes upstream, built and accepted by the provider's adapter.
pub struct Prepared {
    /// The dialogue, system prompt and generation settings (also logged from).
    pub conversation: Conversation,
    /// Where its events come from.
    source: start::Source,
}

/// The conversation for `turns` (the dialogue, newest last) and the provider's request for it.
pub fn prepare(app: &App, turns: Vec<Turn>) -> Result<Prepared, ProxyError> {
    let conversation = start::conversation(app, turns);
    let source = start::request(app, &conversation)?;
    Ok(Prepared {
        conversation,
        source,
    })
}

/// Counts a request refused before its reply started (the transport sends `error` itself).
pub fn refused(error: &ProxyError) {
    telemetry::rejected(error);
}

/// Runs one prepared reply on `transport`: counts it as active, relays the provider's events
/// to `sink` within `limits` until the reply ends or `client_gone` resolves, and logs it.
pub async fn run<S, G>(
    app: &App,
    prepared: Prepared,
    sink: &mut S,
    limits: RelayLimits,
    client_gone: G,
    transport: &'static str,
) -> Outcome
where
    S: Sink<ReplyFrame> + Unpin,
    G: Future<Output = ()>,
{
    let started = std::time::Instant::now();
    let _streaming = telemetry::Active::stream();
    let Prepared {
        conversation,
        source,
    } = prepared;
    let events = start::events(app, &conversation, source);
    let outcome = relay::relay(events, sink, limits, client_gone, start::interruption(app)).await;
    let context = log::context(app, transport, started, log::newest_text(&conversation));
    log::finished(&context, &outcome, app.config.log_content);
    outcome
}
