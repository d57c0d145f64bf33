//! The one reply pipeline every transport runs: admission (rate limit, message count, the
//! newest message against the budget), preparation (the conversation within the budget and the
//! provider's request, where a file the provider cannot take is refused), then
//! start → relay → log. A transport brings a parser, a sink of [`ReplyFrame`]s and a way to
//! tell that its client left; refusals come back as one [`ProxyError`] it serializes.

use crate::access::ratelimit::ClientKey;
use crate::config::{ProviderConfig, Route};
use crate::error::{ProxyError, RequestError};
use crate::ops::{chunk_gaps, telemetry};
use crate::reply::budget::Budget;
use crate::reply::frame::ReplyFrame;
use crate::reply::on_wake::OnWake;
use crate::reply::relay::{self, Outcome, RelayLimits};
pub use crate::reply::scope::ReplyScope;
use crate::reply::tool_loop;
use crate::reply::{log, start};
use crate::tools::Tools;
use crate::upstream::Answered;
use crate::App;
use deepchat_adapters::{Conversation, Turn};
use futures_util::Sink;
use std::future::Future;
use std::sync::Arc;
use tracing::Instrument;

/// With tools: most of the answer so far restated around a tool's status (beyond it, tools
/// run without a status).
const SHOWN_FOR_TOOL_STATUS: usize = 64 * 1024;

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

/// The parsed request's gate: at most the route's `--max-messages`, and a newest message that
/// fits its conversation budget on its own.
pub fn admit_turns(route: &Route, turns: Vec<Turn>) -> Result<Vec<Turn>, ProxyError> {
    let limits = &route.limits;
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
    /// The route it runs on: its upstreams, for the log line and the metrics.
    route: Arc<Route>,
    /// The model the client chose (`--allow-model`); `None` = the primary's `--model`.
    model: Option<String>,
    scope: ReplyScope,
}

/// The conversation for `turns` (the dialogue, newest last) on `route` and the requests for
/// it, the primary's with the model the request chose (`model` in its body), if allowed.
pub fn prepare(
    route: &Arc<Route>,
    turns: Vec<Turn>,
    requested_model: Option<&str>,
    scope: &ReplyScope,
    tools: &Tools,
) -> Result<Prepared, ProxyError> {
    let model = start::model(route, requested_model)?;
    let mut conversation = start::conversation(route, turns);
    // The demo cannot call tools; every provider adapter can.
    if matches!(route.primary(), ProviderConfig::Http(_)) {
        conversation.tools = tools.specs().as_ref().clone();
    }
    let source = start::request(route, &conversation, model.as_deref(), &scope.request_id)?;
    Ok(Prepared {
        conversation,
        source,
        route: route.clone(),
        model,
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
    let mut limits = limits;
    if !prepared.conversation.tools.is_empty() {
        limits.keep_shown = SHOWN_FOR_TOOL_STATUS;
        limits.show_tool_calls = app.tools.settings().show_calls;
    }
    let Prepared {
        conversation,
        source,
        route,
        model,
        scope,
    } = prepared;
    let requested_model = match (&model, route.primary()) {
        (Some(chosen), _) => chosen.as_str(),
        (None, ProviderConfig::Http(http)) => http.generation.model.as_str(),
        (None, ProviderConfig::Demo(_)) => "demo",
    };
    let span = log::reply_span(&scope, transport, requested_model);
    let answered = Answered::default();
    let outcome = async {
        let mut events = start::events(app, &conversation, source, answered.clone());
        if !conversation.tools.is_empty() {
            let upstream = tool_loop::Upstream {
                pool: app.upstream.clone(),
                policy: app.config.upstream,
                route: route.clone(),
                model: model.clone(),
                request_id: scope.request_id.clone(),
            };
            events = tool_loop::run(
                events,
                conversation.clone(),
                upstream,
                app.tools.clone(),
                answered.clone(),
            );
        }
        let events = chunk_gaps::counted(events, transport);
        // When the client's leaving was seen; the relay drops the upstream stream (closing
        // its connection) before it returns.
        let gone_at = std::sync::OnceLock::new();
        let client_gone = async {
            client_gone.await;
            let _ = gone_at.set(std::time::Instant::now());
        };
        // The relay's select polls this twice per token; its timer and the stop token wake
        // it when they fire, so it is polled only then.
        let interrupt = OnWake::new(start::interruption(app));
        let outcome = relay::relay(
            events,
            sink,
            limits,
            app.config.reasoning,
            client_gone,
            interrupt,
            &scope.request_id,
        )
        .await;
        if let Some(gone_at) = gone_at.get() {
            telemetry::cancel_latency(transport, gone_at.elapsed());
        }
        outcome
    }
    .instrument(span.clone())
    .await;
    // Who answered: the upstream that did, else the primary (whose failure the client saw).
    let position = answered.get();
    let (provider, upstream_model, upstream) = match route.chain.get(position.unwrap_or(0)) {
        Some(ProviderConfig::Http(http)) => {
            let model = match (position.unwrap_or(0), &model) {
                (0, Some(chosen)) => chosen.as_str(),
                _ => http.generation.model.as_str(),
            };
            (http.adapter.name(), model, http.label.as_str())
        }
        Some(ProviderConfig::Demo(_)) | None => ("demo", "demo", "demo"),
    };
    let context = log::ReplyContext {
        transport,
        route: &route.path,
        provider,
        model: upstream_model,
        upstream,
        fallback: position.filter(|&p| p > 0),
        started,
        question: log::newest_text(&conversation),
    };
    span.in_scope(|| log::finished(&context, &outcome, app.config.log_content));
    outcome
}
