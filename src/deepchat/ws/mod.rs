//! Deep Chat over WebSocket: the per-socket session that answers each text frame with one
//! streamed reply, after the upgrade handshake ([`handshake`]), writing through [`sink`].

mod handshake;
mod sink;

pub use handshake::accept;
pub use handshake::is_upgrade;
use sink::{FrameSink, HoldEnd, Socket};

use crate::access::ratelimit::ClientKey;
use crate::config::{Route, WsReply};
use crate::deepchat::closing;
use crate::deepchat::keepalive::Keepalive;
use crate::deepchat::queue::{Pending, Queue};
use crate::deepchat::request::{self, RequestError};
use crate::deepchat::ws_reply::{self, Shaper};
use crate::error::ProxyError;
use crate::reply::budget::Budget;
use crate::reply::conversation;
use crate::reply::frame::ReplyFrame;
use crate::reply::history::History;
use crate::reply::on_wake::OnWake;
use crate::reply::pipeline::{self, ReplyScope};
use crate::reply::relay::RelayLimits;
use crate::request_id::RequestId;
use crate::response::{self, Body};
use crate::store::id::ConversationId;
use crate::App;
use futures_util::stream::SplitStream;
use futures_util::{SinkExt, StreamExt};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Initial per-socket read buffer; it grows for larger messages.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// Answers the upgrade and spawns the session on `route` once hyper hands over the connection.
/// `connection_slot` is the connection's `--max-connections` permit, held while the socket lives.
pub fn upgrade(
    request: Request<hyper::body::Incoming>,
    app: Arc<App>,
    route: Arc<Route>,
    client: ClientKey,
    connection_slot: Arc<crate::access::connections::ConnectionSlot>,
) -> Response<Body> {
    // A bad mode is refused before the upgrade: the page's console shows the failed handshake
    // and the body says why, rather than a socket whose replies the page cannot show.
    let mode = match ws_reply::from_query(request.uri().query(), app.config.ws_reply) {
        Ok(mode) => mode,
        Err(why) => return response::plain(StatusCode::BAD_REQUEST, &why),
    };
    let conversation = match ConversationId::from_query(request.uri().query()) {
        Ok(id) => id,
        Err(why) => return response::plain(StatusCode::BAD_REQUEST, &why.to_string()),
    };
    let response = accept(request.headers());
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return response;
    }
    let sessions = app.sessions.clone();
    sessions.spawn(async move {
        match hyper::upgrade::on(request).await {
            Ok(upgraded) => {
                let max = route.limits.max_request_bytes;
                // tungstenite preallocates its read buffer (128 KiB by default) per socket;
                // chat requests are small, so a small buffer keeps idle sockets cheap.
                let config = WebSocketConfig::default()
                    .read_buffer_size(READ_BUFFER_BYTES)
                    .write_buffer_size(0)
                    .max_message_size(Some(max))
                    .max_frame_size(Some(max));
                let socket = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                Handler::new(socket, app, route, client, mode, conversation)
                    .run()
                    .await;
                drop(connection_slot);
            }
            Err(err) => tracing::debug!(%err, "websocket upgrade failed"),
        }
    });
    response
}

/// What the idle socket produced next.
enum Next {
    Request(String),
    Refuse(ProxyError),
    Close(CloseCode, &'static str),
    Gone,
}

/// One socket's state for as long as it lives (mini-redis's `Handler`): requests are answered
/// in order, one streamed reply each, with the dialogue remembered between them.
struct Handler {
    /// The upstream pool, the connection limits and the shutdown signals.
    app: Arc<App>,
    /// The route this socket connected to: its upstreams, stop key, prompt and limits.
    route: Arc<Route>,
    /// Whose rate limit each request spends.
    client: ClientKey,
    /// The write half: typed frames out as Deep Chat JSON, the stop key, keepalive pings.
    sink: FrameSink,
    /// The read half: requests, pongs, close frames.
    incoming: SplitStream<Socket>,
    /// The dialogue so far: Deep Chat sends only the newest message by default.
    history: History,
    /// Requests that arrived during a reply, answered in their turn.
    queued: Queue,
    /// The conversation the connect URL names (`?conversation=ID`): kept in the store, so it
    /// outlives this socket.
    conversation: Option<ConversationId>,
}

impl Handler {
    fn new(
        socket: Socket,
        app: Arc<App>,
        route: Arc<Route>,
        client: ClientKey,
        mode: WsReply,
        conversation: Option<ConversationId>,
    ) -> Handler {
        let (sink, incoming) = socket.split();
        let limits = &route.limits;
        Handler {
            sink: FrameSink::new(sink, Shaper::new(mode, route.stop_key.clone())),
            incoming,
            history: History::new(route.history_limit, Budget::of(limits)),
            queued: Queue::new(limits.max_streams_per_connection, limits.max_request_bytes),
            conversation,
            client,
            app,
            route,
        }
    }

    /// Serves the socket until the client leaves, breaks the protocol, idles out or the
    /// server shuts down.
    async fn run(mut self) {
        tracing::debug!(ip = %self.client.ip, "websocket session opened");
        loop {
            let next = match self.queued.pop() {
                Some(Pending::Request(text)) => Next::Request(text),
                Some(Pending::Refused) => Next::Refuse(RequestError::Busy.into()),
                None => wait_for_request(&mut self.incoming, &mut self.sink, &self.app).await,
            };
            let step = match next {
                Next::Request(text) => self.answer(&text).await,
                Next::Refuse(err) => {
                    let scope = self.new_scope();
                    self.refuse(&err, &scope).await
                }
                Next::Close(code, reason) => Step::Close(code, reason),
                Next::Gone => Step::Gone,
            };
            match step {
                Step::Continue => {}
                Step::Close(code, reason) => {
                    closing::close(self.sink.inner, self.incoming, code, reason).await;
                    return;
                }
                Step::Gone => return,
            }
        }
    }

    /// The scope of the next reply: one request id per reply, since a socket carries many.
    fn new_scope(&self) -> ReplyScope {
        ReplyScope {
            request_id: RequestId::new(),
            client_ip: self.client.ip.clone(),
            trace_parent: None,
        }
    }

    /// Answers one request through the reply pipeline; a named conversation is read before
    /// and saved after it.
    async fn answer(&mut self, text: &str) -> Step {
        let app = self.app.clone();
        let app = &*app;
        let scope = self.new_scope();
        let route = self.route.clone();
        let admitted = pipeline::admit_client(app, &self.client)
            .await
            .and_then(|()| Ok(request::parse_with_model(text.as_bytes())?))
            .and_then(|parsed| {
                let id = conversation::pick_id(parsed.conversation_id, self.conversation.as_ref())?;
                Ok((
                    pipeline::admit_turns(&route, parsed.turns)?,
                    parsed.model,
                    id,
                ))
            });
        let (turns, model, id) = match admitted {
            Ok(admitted) => admitted,
            Err(err) => return self.refuse(&err, &scope).await,
        };
        let lease = match &id {
            Some(id) => match conversation::open(app, &self.client, id).await {
                Ok(lease) => {
                    conversation::adopt(&mut self.history, &lease);
                    Some(lease)
                }
                Err(err) => return self.refuse(&err, &scope).await,
            },
            None => None,
        };
        let prepared = match pipeline::prepare(
            &route,
            self.history.begin(turns),
            model.as_deref(),
            &scope,
            &self.app.tools,
        ) {
            Ok(prepared) => prepared,
            Err(err) => {
                // Nothing was answered: forget the question, as after a reply that failed.
                self.history.finish(String::new());
                return self.refuse(&err, &scope).await;
            }
        };
        let limits = &route.limits;
        let keepalive = limits
            .ping_interval
            .map(|every| Arc::new(Keepalive::new(every)));
        self.sink.keepalive = keepalive.clone();
        self.sink.ping_owed = false;
        // Polled only when the socket signals (or the keepalive check is due), not once per
        // upstream token.
        let mut close_with = None;
        let client_gone = OnWake::new(watch_client(
            &mut self.incoming,
            &mut self.queued,
            keepalive,
            &mut close_with,
        ));
        // A gathered reply is held whole until sent, as a JSON answer is.
        let max_bytes = if self.sink.shaper.gathers() {
            limits.max_json_reply_bytes
        } else {
            usize::MAX
        };
        // The end is held back until the turn is saved, so a "not saved" note joins the reply.
        let mut held = HoldEnd {
            inner: &mut self.sink,
            ended: false,
        };
        let outcome = pipeline::run(
            app,
            prepared,
            &mut held,
            RelayLimits {
                keep_text: limits.reply_memory_bytes(),
                max_bytes,
                ..RelayLimits::keeping(0)
            },
            client_gone,
            "websocket",
        )
        .await;
        let ended = held.ended;
        self.sink.keepalive = None;
        if outcome.cancelled {
            return match close_with {
                Some((code, reason)) => Step::Close(code, reason),
                None => Step::Gone,
            };
        }
        // A gathered reply that failed showed the error alone: remember no half answer the
        // user never saw (an empty answer forgets the question too, as after a refusal).
        let shown = if self.sink.shaper.drops_failed_text() && outcome.error.is_some() {
            String::new()
        } else {
            outcome.text.clone()
        };
        self.history.finish_turn(outcome.reply_turn(shown));
        let note = match lease {
            Some(lease) => conversation::keep(lease, &mut self.history).await,
            None => None,
        };
        for frame in note.into_iter().chain(ended.then_some(ReplyFrame::End)) {
            if self.sink.send(frame).await.is_err() {
                return Step::Gone;
            }
        }
        Step::Continue
    }

    /// Answers a request that cannot be served: an error, then the stop key so the next reply
    /// starts a fresh message.
    async fn refuse(&mut self, err: &ProxyError, scope: &ReplyScope) -> Step {
        pipeline::refused(err, scope);
        let sent = async {
            self.sink
                .send(ReplyFrame::Error(scope.error_text(err)))
                .await?;
            self.sink.send(ReplyFrame::End).await
        };
        match sent.await {
            Ok(()) => Step::Continue,
            Err(_) => Step::Gone,
        }
    }
}

/// What the session does after one request.
enum Step {
    Continue,
    Close(CloseCode, &'static str),
    Gone,
}

/// Waits for the next request on an idle socket, pinging to detect dead peers, closing idle
/// sockets and, on shutdown, closing with 1001.
async fn wait_for_request(
    incoming: &mut SplitStream<Socket>,
    sink: &mut FrameSink,
    app: &App,
) -> Next {
    let limits = &app.config.limits;
    let idle_deadline = tokio::time::sleep(limits.client_idle_timeout);
    tokio::pin!(idle_deadline);
    let ping_every = limits.ping_interval.unwrap_or(Duration::from_secs(86_400));
    let mut pings = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let mut last_heard = tokio::time::Instant::now();
    loop {
        let next = tokio::select! {
            _ = app.shutdown.cancelled() => return Next::Close(CloseCode::Away, "server shutting down"),
            _ = &mut idle_deadline => return Next::Close(CloseCode::Normal, "idle timeout"),
            _ = pings.tick(), if limits.ping_interval.is_some() => {
                if last_heard.elapsed() > ping_every * 2 {
                    tracing::debug!("websocket peer stopped answering pings");
                    return Next::Gone;
                }
                if sink.inner.send(Message::Ping(Default::default())).await.is_err() {
                    return Next::Gone;
                }
                continue;
            }
            next = incoming.next() => next,
        };
        last_heard = tokio::time::Instant::now();
        match next {
            Some(Ok(Message::Text(text))) => return Next::Request(text.as_str().to_owned()),
            Some(Ok(Message::Binary(_))) => {
                return Next::Refuse(
                    RequestError::Json(
                        "binary frames are not supported: send Deep Chat JSON text".into(),
                    )
                    .into(),
                )
            }
            Some(Ok(Message::Close(_))) | None => return Next::Gone,
            Some(Ok(_)) => continue, // pings are answered by tungstenite; pongs just prove life
            Some(Err(err)) => {
                return match closing::code_for(&err) {
                    Some((code, reason)) => {
                        tracing::info!(%err, "closing a websocket that broke the protocol or a limit");
                        Next::Close(code, reason)
                    }
                    None => {
                        tracing::debug!(%err, "websocket read failed");
                        Next::Gone
                    }
                };
            }
        }
    }
}

/// Resolves when the client leaves, or stops answering the pings sent during the reply;
/// meanwhile queues requests that arrive during a reply. A read that breaks a limit or the
/// protocol also ends the reply, leaving in `close_with` the close frame the socket earned.
async fn watch_client(
    incoming: &mut SplitStream<Socket>,
    queued: &mut Queue,
    keepalive: Option<Arc<Keepalive>>,
    close_with: &mut Option<(CloseCode, &'static str)>,
) {
    let check_every = keepalive
        .as_ref()
        .map_or(Duration::from_secs(86_400), |k| k.interval / 2);
    let mut checks = tokio::time::interval_at(Instant::now() + check_every, check_every);
    loop {
        let next = tokio::select! {
            next = incoming.next() => next,
            _ = checks.tick(), if keepalive.is_some() => {
                if keepalive.as_ref().is_some_and(|k| k.overdue()) {
                    tracing::info!("websocket client stopped answering pings during a reply; ending it");
                    return;
                }
                continue;
            }
        };
        if let Some(keepalive) = &keepalive {
            keepalive.answered();
        }
        match next {
            Some(Ok(Message::Text(text))) => queued.push(text.as_str().to_owned()),
            Some(Ok(Message::Close(_))) | None => return,
            Some(Err(err)) => {
                *close_with = closing::code_for(&err);
                return;
            }
            Some(Ok(_)) => {}
        }
    }
}
