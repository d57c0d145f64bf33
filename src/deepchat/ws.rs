//! Deep Chat over WebSocket: the upgrade handshake (hand-written on hyper, unit-tested) and
//! the per-socket session that answers each text frame with one streamed reply.

use crate::access::ratelimit::ClientKey;
use crate::config::{Route, WsReply};
use crate::deepchat::closing;
use crate::deepchat::frames;
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
use bytes::BytesMut;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{Sink, SinkExt, StreamExt};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Initial per-socket read buffer; it grows for larger messages.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// Text frames up to this many bytes are written through the socket's reused frame buffer;
/// longer ones (text merged while the client was behind) get their own, so an idle socket
/// keeps at most a few KiB.
const REUSED_FRAME_TEXT_BYTES: usize = 1024;

/// True when the request asks for a WebSocket upgrade.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    header_has_token(headers, hyper::header::CONNECTION, "upgrade")
        && header_has_token(headers, hyper::header::UPGRADE, "websocket")
}

fn header_has_token(headers: &HeaderMap, name: hyper::header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .map(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// The handshake answer: 101 for a valid upgrade request, else the 400 to send instead.
/// Browsers drop a socket whose reply names no subprotocol they offered, so the first offered
/// one is echoed.
pub fn accept(headers: &HeaderMap) -> Response<Body> {
    let version_ok = headers
        .get(hyper::header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    let key = headers.get(hyper::header::SEC_WEBSOCKET_KEY);
    let (Some(key), true) = (key, version_ok) else {
        let mut response = response::plain(
            StatusCode::BAD_REQUEST,
            "WebSocket upgrade needs Sec-WebSocket-Key and Sec-WebSocket-Version: 13",
        );
        response.headers_mut().insert(
            hyper::header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return response;
    };
    let mut response = Response::new(response::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let out = response.headers_mut();
    out.insert(
        hyper::header::CONNECTION,
        HeaderValue::from_static("upgrade"),
    );
    out.insert(
        hyper::header::UPGRADE,
        HeaderValue::from_static("websocket"),
    );
    let accept_key = derive_accept_key(key.as_bytes());
    if let Ok(value) = HeaderValue::from_str(&accept_key) {
        out.insert(hyper::header::SEC_WEBSOCKET_ACCEPT, value);
    }
    if let Some(protocol) = first_protocol(headers) {
        if let Ok(value) = HeaderValue::from_str(&protocol) {
            out.insert(hyper::header::SEC_WEBSOCKET_PROTOCOL, value);
        }
    }
    response
}

/// The protocol to answer with: the first offered one that is not a `bearer.` token carrier
/// (so the token is not echoed needlessly), else the first offered.
fn first_protocol(headers: &HeaderMap) -> Option<String> {
    let offered: Vec<&str> = headers
        .get_all(hyper::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    offered
        .iter()
        .find(|p| !p.starts_with(crate::access::auth::BEARER_PROTOCOL_PREFIX))
        .or(offered.first())
        .map(|p| (*p).to_owned())
}

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
            sink: FrameSink {
                inner: sink,
                shaper: Shaper::new(mode, route.stop_key.clone()),
                outbox: VecDeque::new(),
                shaped: VecDeque::new(),
                wire: BytesMut::new(),
                keepalive: None,
                ping_owed: false,
            },
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

/// The socket's write half as a sink of typed frames, shaped by the socket's reply mode
/// ([`Shaper`]); a keepalive ping goes out before a frame when one is due.
struct FrameSink {
    /// The socket's write half.
    inner: SplitSink<Socket, Message>,
    /// Turns frames into the mode's messages (stop key, whole reply, text so far).
    shaper: Shaper,
    /// Messages shaped but not yet written (at most a frame's few), written before anything else.
    outbox: VecDeque<Message>,
    /// The shaper's output for one frame, reused: no queue allocated per frame.
    shaped: VecDeque<String>,
    /// Where plain text frames are serialized: tungstenite copies a message into its own
    /// output buffer when it is sent, so this allocation is reclaimed for the next frame.
    wire: BytesMut,
    /// During a reply: when the next keepalive ping is due and whether the last was answered.
    keepalive: Option<Arc<Keepalive>>,
    /// A ping fell due and goes out before the next frame.
    ping_owed: bool,
}

impl FrameSink {
    /// Writes the shaped messages that wait into the socket.
    fn poll_outbox(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        while !self.outbox.is_empty() {
            ready!(self.inner.poll_ready_unpin(cx))?;
            if let Some(message) = self.outbox.pop_front() {
                self.inner.start_send_unpin(message)?;
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Overwrite: queues the text so far when its turn has come. It never makes the relay wait
    /// for its turn: a relay held back per frame would fall behind the upstream by a frame time
    /// per token (the bench's overwrite-100 measured it) and merge nothing. Text that is not due
    /// yet stays in the shaper and goes with the next frame, or with the reply's end.
    fn queue_due_overwrite(&mut self) {
        if let Some(due) = self.shaper.overwrite_due() {
            if due <= Instant::now() {
                let mut shaped = VecDeque::new();
                self.shaper.flush_overwrite(&mut shaped);
                self.outbox.extend(shaped.into_iter().map(Message::text));
            }
        }
    }
}

type WsError = tokio_tungstenite::tungstenite::Error;

/// A reply's sink that passes every frame but the end, noting that it came: the session sends
/// it after the turn is saved.
struct HoldEnd<'a> {
    inner: &'a mut FrameSink,
    ended: bool,
}

impl Sink<ReplyFrame> for HoldEnd<'_> {
    type Error = WsError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready_unpin(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, frame: ReplyFrame) -> Result<(), Self::Error> {
        if frame == ReplyFrame::End {
            self.ended = true;
            return Ok(());
        }
        self.inner.start_send_unpin(frame)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_flush_unpin(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_close_unpin(cx)
    }
}

impl Sink<ReplyFrame> for FrameSink {
    type Error = WsError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = &mut *self;
        ready!(this.poll_outbox(cx))?;
        // Marked unanswered when due, before the write: a ping that cannot be written counts.
        this.ping_owed |= this.keepalive.as_ref().is_some_and(|k| k.ping_due());
        if this.ping_owed {
            ready!(this.inner.poll_ready_unpin(cx))?;
            this.inner
                .start_send_unpin(Message::Ping(Default::default()))?;
            this.ping_owed = false;
        }
        this.inner.poll_ready_unpin(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, frame: ReplyFrame) -> Result<(), Self::Error> {
        let this = &mut *self;
        match &frame {
            // The streamed token, the common case: no String, no queue, no allocation.
            ReplyFrame::Text(text)
                if text.len() <= REUSED_FRAME_TEXT_BYTES && this.shaper.is_plain_text(&frame) =>
            {
                frames::text_json_into(text, &mut this.wire);
                let json = this.wire.split().freeze();
                // serde_json writes UTF-8; should that ever fail, the shaper's String is used.
                match Utf8Bytes::try_from(json) {
                    Ok(json) => this.outbox.push_back(Message::Text(json)),
                    Err(_) => {
                        this.shaper.shape(frame, &mut this.shaped);
                        this.outbox.extend(this.shaped.drain(..).map(Message::text));
                    }
                }
            }
            _ => {
                this.shaper.shape(frame, &mut this.shaped);
                this.outbox.extend(this.shaped.drain(..).map(Message::text));
            }
        }
        // Written here when the socket has room (poll_ready said so), else by the next poll.
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.queue_due_overwrite();
        ready!(self.poll_outbox(cx))?;
        self.inner.poll_flush_unpin(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        ready!(self.poll_outbox(cx))?;
        self.inner.poll_close_unpin(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn a_plain_text_frame_written_into_the_buffer_is_what_the_shaper_sends() {
        let mut shaper = Shaper::new(WsReply::StopKey, "stop-key".into());
        let mut wire = BytesMut::new();
        for text in ["Hi", "a\"b\n😀", "stop-key!"] {
            let frame = ReplyFrame::Text(text.into());
            assert!(shaper.is_plain_text(&frame));
            frames::text_json_into(text, &mut wire);
            let mut shaped = VecDeque::new();
            shaper.shape(frame, &mut shaped);
            assert_eq!(
                Vec::from(shaped),
                vec![std::str::from_utf8(&wire.split()).expect("utf-8")]
            );
        }
        assert!(!shaper.is_plain_text(&ReplyFrame::Text("stop-key".into())));
        assert!(!shaper.is_plain_text(&ReplyFrame::End));
        shaper.shape(ReplyFrame::Status("Thinking…".into()), &mut VecDeque::new());
        assert!(
            !shaper.is_plain_text(&ReplyFrame::Text("4".into())),
            "the answer's first text overwrites the status"
        );
        for mode in [WsReply::Whole, WsReply::Overwrite] {
            let shaper = Shaper::new(mode, "stop-key".into());
            assert!(!shaper.is_plain_text(&ReplyFrame::Text("a".into())));
        }
    }

    #[test]
    fn accept_key_follows_rfc6455_example() {
        let request = headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        assert!(is_upgrade(&request));
        let response = accept(&request);
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(
            response.headers()["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert!(response.headers().get("sec-websocket-protocol").is_none());
    }

    #[test]
    fn echoes_first_offered_subprotocol() {
        let request = headers(&[
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-protocol", "alpha, beta"),
        ]);
        let response = accept(&request);
        assert_eq!(response.headers()["sec-websocket-protocol"], "alpha");
    }

    #[test]
    fn rejects_missing_key_or_wrong_version() {
        let no_key = headers(&[("sec-websocket-version", "13")]);
        assert_eq!(accept(&no_key).status(), 400);
        let old = headers(&[
            ("sec-websocket-version", "8"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        assert_eq!(accept(&old).status(), 400);
        assert!(!is_upgrade(&headers(&[("connection", "close")])));
    }
}
