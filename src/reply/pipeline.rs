//! The one reply pipeline every transport runs: admission (rate limit, message count, the
//! newest message against the budget), preparation (the conversation within the budget and the
//! provider's request, where a file the provider cannot take is refused), then
//! start → relay → log. A transport brings a parser, a sink of [`ReplyFrame`]s and a way to
//! tell that its client left; refusals come back as one [`ProxyError`] it serializes.

use crate::access::ratelimit::ClientKey;
use crate::error::{ProxyError, RequestError};
use crate::ops::{chunk_gaps, telemetry};
use crate::reply::budget::Budget;
use crate::reply::frame::ReplyFrame;
use crate::reply::relay::{self, Outcome, RelayLimits};
pub use crate::reply::scope::ReplyScope;
use crate::reply::{log, start};
use crate::App;
use deepchat_adapters::{Conversation, Turn};
use futures_util::Sink;
use std::future::Future;
use tracing::Instrument;

/// The first gate, before the request is even read: the client's rate limit.
pub fn admit_client(app: &App, client: &ClientKey) -> Result<(), ProxyError> {
    app.limiter
        .check(&client.keys())
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
    scope: ReplyScope,
}

/// The conversation for `turns` (the dialogue, newest last) and the provider's request for it.
pub fn prepare(app: &App, turns: Vec<Turn>, scope: &ReplyScope) -> Result<Prepared, ProxyError> {
    let conversation = start::conversation(app, turns);
    let source = start::request(app, &conversation, &scope.request_id)?;
    Ok(Prepared {
        conversation,
        source,
        scope: scope.clone(),
    })
}

/// Counts and logs a request refused before its reply started (the transport sends `error`
/// itself, with [`ReplyScope::error_text`]).
pub fn refused(error: &ProxyError, scope: &ReplyScope) {
    telemetry::rejected(error);
    log::refused(error, scope);
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
        scope,
    } = prepared;
    let (provider, model) = app.config.provider.name_and_model();
    let span = log::reply_span(&scope, transport, provider, model);
    async {
        let events = chunk_gaps::counted(start::events(app, &conversation, source), transport);
        let interrupt = start::interruption(app);
        // When the client's leaving was seen; the relay drops the upstream stream (closing
        // its connection) before it returns.
        let gone_at = std::sync::OnceLock::new();
        let client_gone = async {
            client_gone.await;
            let _ = gone_at.set(std::time::Instant::now());
        };
        let outcome = relay::relay(
            events,
            sink,
            limits,
            client_gone,
            interrupt,
            &scope.request_id,
        )
        .await;
        if let Some(gone_at) = gone_at.get() {
            telemetry::cancel_latency(transport, gone_at.elapsed());
        }
        let context = log::context(app, transport, started, log::newest_text(&conversation));
        log::finished(&context, &outcome, app.config.log_content);
        outcome
    }
    .instrument(span)
    .await
}
