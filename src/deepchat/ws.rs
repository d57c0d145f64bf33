//! Deep Chat over WebSocket: the upgrade handshake (hand-written on hyper, unit-tested) and
//! the per-socket session that answers each text frame with one streamed reply.

use crate::deepchat::frames::Frame;
use crate::deepchat::request;
use crate::deepchat::response::{self, Body};
use crate::history::History;
use crate::relay::{self, Ending};
use crate::App;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{Sink, SinkExt, StreamExt};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Requests that may wait behind a running reply before the socket is told to slow down.
const MAX_QUEUED_REQUESTS: usize = 16;

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

fn first_protocol(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(hyper::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find(|p| !p.is_empty())
        .map(str::to_owned)
}

/// Answers the upgrade and spawns the session once hyper hands over the connection.
pub fn upgrade(request: Request<hyper::body::Incoming>, app: Arc<App>) -> Response<Body> {
    let response = accept(request.headers());
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return response;
    }
    let sessions = app.sessions.clone();
    sessions.spawn(async move {
        match hyper::upgrade::on(request).await {
            Ok(upgraded) => {
                let config = WebSocketConfig::default()
                    .max_message_size(Some(app.config.max_request_bytes))
                    .max_frame_size(Some(app.config.max_request_bytes));
                let socket = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                session(socket, app).await;
            }
            Err(err) => tracing::debug!(%err, "websocket upgrade failed"),
        }
    });
    response
}

/// Serves one socket: requests in order, one streamed reply each, memory of the dialogue.
async fn session(socket: Socket, app: Arc<App>) {
    let (sink, mut incoming) = socket.split();
    let mut sink = TextSink(sink);
    let mut history = History::new(app.config.history_limit);
    let mut queued: VecDeque<String> = VecDeque::new();
    let shutdown = app.shutdown.clone();
    tracing::debug!("websocket session opened");

    loop {
        let text = match queued.pop_front() {
            Some(text) => text,
            None => {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    next = incoming.next() => next,
                };
                match next {
                    Some(Ok(Message::Text(text))) => text.as_str().to_owned(),
                    Some(Ok(Message::Binary(_))) => {
                        let error = "binary frames are not supported: send Deep Chat JSON text";
                        if reject(&mut sink, error, &app.config.stop_key)
                            .await
                            .is_err()
                        {
                            return;
                        }
                        continue;
                    }
                    Some(Ok(Message::Close(_))) | None => return,
                    Some(Ok(_)) => continue, // ping/pong are answered by tungstenite
                    Some(Err(err)) => {
                        tracing::debug!(%err, "websocket read failed");
                        return;
                    }
                }
            }
        };

        let turns = match request::parse(text.as_bytes()) {
            Ok(turns) => turns,
            Err(err) => {
                if reject(&mut sink, &err.to_string(), &app.config.stop_key)
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
        };
        let conversation = app.conversation(history.begin(turns));
        let events = app.start_reply(&conversation).await;
        let client_gone = watch_client(&mut incoming, &mut queued);
        let outcome = relay::relay(
            events,
            &mut sink,
            Ending::StopKey(&app.config.stop_key),
            client_gone,
        )
        .await;
        tracing::info!(
            transport = "websocket",
            chars = outcome.text.chars().count(),
            frames = outcome.text_frames,
            error = outcome.error.as_deref().unwrap_or(""),
            cancelled = outcome.cancelled,
            "reply finished"
        );
        if outcome.cancelled {
            return;
        }
        history.finish(outcome.text);
    }
    // Shutting down: tell the browser the server is going away (1001).
    let _ = sink
        .0
        .send(Message::Close(Some(CloseFrame {
            code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Away,
            reason: "server shutting down".into(),
        })))
        .await;
}

/// Resolves when the client leaves; meanwhile queues requests that arrive during a reply.
async fn watch_client(incoming: &mut SplitStream<Socket>, queued: &mut VecDeque<String>) {
    loop {
        match incoming.next().await {
            Some(Ok(Message::Text(text))) => {
                if queued.len() >= MAX_QUEUED_REQUESTS {
                    tracing::warn!("client queued too many requests; closing");
                    return;
                }
                queued.push_back(text.as_str().to_owned());
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
            Some(Ok(_)) => {}
        }
    }
}

/// Answers a request that cannot be served: an error, then the stop key so the next reply
/// starts a fresh message.
async fn reject<S>(sink: &mut S, error: &str, stop_key: &str) -> Result<(), S::Error>
where
    S: Sink<String> + Unpin,
{
    sink.send(Frame::Error(error).to_json()).await?;
    sink.send(Frame::Text(stop_key).to_json()).await
}

/// Adapts the socket's sink to the relay's `Sink<String>` of JSON frames.
struct TextSink(SplitSink<Socket, Message>);

impl Sink<String> for TextSink {
    type Error = tokio_tungstenite::tungstenite::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready_unpin(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: String) -> Result<(), Self::Error> {
        self.0.start_send_unpin(Message::text(item))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_flush_unpin(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_close_unpin(cx)
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
