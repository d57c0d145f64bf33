//! One conversation, two ways: as a Deep Chat WebSocket client through the proxy, and as an SSE
//! client reading the mock upstream directly (the floor). Both record the same things with the
//! same clocks, and neither panics on anything the network sends.

use crate::token::{unix_nanos, Checker, Spec, STOP_KEY};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A benchmark client's socket to the proxy.
pub type ClientSocket = WebSocketStream<TcpStream>;

/// Bounds on every wait of one conversation.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// TCP connect plus handshake (a burst may wait out SYN retransmissions).
    pub connect: Duration,
    /// Between two frames of a reply.
    pub read: Duration,
}

/// What one conversation saw.
#[derive(Debug)]
pub struct StreamResult {
    pub verdict: Result<(), String>,
    /// From starting the TCP connect to a usable socket (WebSocket handshake included).
    pub connect: Duration,
    /// From sending the message to the first complete token.
    pub ttft: Option<Duration>,
    /// Per token: receipt minus the upstream's stamp, in nanoseconds.
    pub delays_ns: Vec<i64>,
    /// Frames (WebSocket) or SSE events carrying text.
    pub frames: u32,
    pub tokens: u32,
    /// Overwrite mode only: WebSocket bytes received for the reply (frame headers included).
    pub wire_bytes: u64,
    /// Overwrite mode only: bytes of the reply's final text.
    pub text_bytes: u64,
    pub started: Instant,
    pub finished: Instant,
}

impl StreamResult {
    /// A conversation abandoned by the driver (deadline), counted as incomplete.
    pub fn gave_up(started: Instant, why: String) -> StreamResult {
        StreamResult::failed(started, started.elapsed(), why)
    }

    pub(crate) fn failed(started: Instant, connect: Duration, why: String) -> StreamResult {
        StreamResult {
            verdict: Err(why),
            connect,
            ttft: None,
            delays_ns: Vec::new(),
            frames: 0,
            tokens: 0,
            wire_bytes: 0,
            text_bytes: 0,
            started,
            finished: Instant::now(),
        }
    }

    pub(crate) fn from_checker(
        started: Instant,
        connect: Duration,
        sent_at: Instant,
        checker: Checker,
        frames: u32,
        error: Option<String>,
    ) -> StreamResult {
        let verdict = match error {
            Some(error) => Err(error),
            None => checker.verdict(),
        };
        StreamResult {
            verdict,
            connect,
            ttft: checker.first_token_at.map(|t| t.duration_since(sent_at)),
            tokens: checker.tokens(),
            delays_ns: checker.delays_ns,
            frames,
            wire_bytes: 0,
            text_bytes: 0,
            started,
            finished: Instant::now(),
        }
    }
}

pub(crate) async fn connect_tcp(addr: SocketAddr, limit: Duration) -> Result<TcpStream, String> {
    match timeout(limit, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
        Ok(Err(err)) => Err(format!("connect: {err}")),
        Err(_) => Err(format!("connect: no answer within {limit:?}")),
    }
}

/// The load generator's WebSocket settings. tungstenite zero-fills its whole read buffer
/// (128 KiB by default) on every read attempt; a small one keeps the clients' own CPU, which
/// shares the machine with the proxy, out of the proxy's numbers.
pub fn client_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4 * 1024)
}

/// A Deep Chat response frame.
#[derive(Deserialize)]
struct DeepChatFrame<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(default)]
    error: Option<String>,
}

/// A socket to the proxy at `url`, with Deep Chat's request for `spec` sent on it: the socket,
/// the time to connect, and when the request went out; or the failed result.
pub async fn open_and_ask(
    addr: SocketAddr,
    url: &str,
    spec: &Spec,
    limits: Limits,
    started: Instant,
) -> Result<(ClientSocket, Duration, Instant), Box<StreamResult>> {
    let failed = |connect, why| Box::new(StreamResult::failed(started, connect, why));
    let tcp = connect_tcp(addr, limits.connect)
        .await
        .map_err(|why| failed(started.elapsed(), why))?;
    let handshake = tokio_tungstenite::client_async_with_config(url, tcp, Some(client_config()));
    let mut ws = match timeout(limits.connect, handshake).await {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(err)) => return Err(failed(started.elapsed(), format!("handshake: {err}"))),
        Err(_) => return Err(failed(started.elapsed(), "handshake timed out".into())),
    };
    let connect = started.elapsed();
    let request = serde_json::json!({"messages": [{"role": "user", "text": spec.prompt()}]});
    let sent_at = Instant::now();
    if let Err(err) = ws.send(Message::text(request.to_string())).await {
        return Err(failed(connect, format!("send: {err}")));
    }
    Ok((ws, connect, sent_at))
}

/// One conversation through the proxy: connect, send the spec as Deep Chat does, read `{"text"}`
/// frames until the stop key.
pub async fn via_proxy(addr: SocketAddr, path: &str, spec: Spec, limits: Limits) -> StreamResult {
    let started = Instant::now();
    let (mut ws, connect, sent_at) =
        match open_and_ask(addr, &format!("ws://{addr}{path}"), &spec, limits, started).await {
            Ok(opened) => opened,
            Err(failed) => return *failed,
        };
    let mut checker = Checker::new(spec);
    let mut frames = 0u32;
    let mut error = None;
    loop {
        let message = match timeout(limits.read, ws.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(err))) => {
                error = Some(format!("read: {err}"));
                break;
            }
            Ok(None) => {
                error = Some("socket closed before the stop key".into());
                break;
            }
            Err(_) => {
                error = Some(format!("no frame within {:?}", limits.read));
                break;
            }
        };
        let Message::Text(text) = message else {
            continue;
        };
        let received_ns = unix_nanos();
        let received_at = Instant::now();
        let frame: DeepChatFrame = match serde_json::from_str(text.as_str()) {
            Ok(frame) => frame,
            Err(_) => {
                error = Some(format!(
                    "not a Deep Chat frame: {}",
                    truncate(text.as_str())
                ));
                break;
            }
        };
        if let Some(message) = frame.error {
            error = Some(format!("error frame: {message}"));
            break;
        }
        match frame.text {
            Some(text) if text == STOP_KEY => break,
            Some(text) => {
                frames += 1;
                checker.feed(&text, received_ns, received_at);
            }
            None => {
                error = Some(format!("frame without text: {}", truncate(text.as_str())));
                break;
            }
        }
    }
    let _ = timeout(Duration::from_secs(1), ws.close(None)).await;
    StreamResult::from_checker(started, connect, sent_at, checker, frames, error)
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    choices: Vec<Choice<'a>>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
}

/// One conversation straight to the mock upstream, over plain HTTP/1.1 SSE: the floor.
pub async fn direct(addr: SocketAddr, spec: Spec, limits: Limits) -> StreamResult {
    let started = Instant::now();
    let tcp = match connect_tcp(addr, limits.connect).await {
        Ok(tcp) => tcp,
        Err(why) => return StreamResult::failed(started, started.elapsed(), why),
    };
    let (mut sender, connection) = match timeout(
        limits.connect,
        hyper::client::conn::http1::handshake(TokioIo::new(tcp)),
    )
    .await
    {
        Ok(Ok(pair)) => pair,
        Ok(Err(err)) => {
            return StreamResult::failed(started, started.elapsed(), format!("http: {err}"))
        }
        Err(_) => return StreamResult::failed(started, started.elapsed(), "http timed out".into()),
    };
    let connection = tokio::spawn(connection);
    let connect = started.elapsed();
    let result = read_sse(&mut sender, addr, spec, limits, started, connect).await;
    drop(sender);
    connection.abort();
    result
}

async fn read_sse(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    addr: SocketAddr,
    spec: Spec,
    limits: Limits,
    started: Instant,
    connect: Duration,
) -> StreamResult {
    let body = serde_json::json!({
        "model": "bench",
        "stream": true,
        "messages": [{"role": "user", "content": spec.prompt()}],
    });
    let request = Request::post("/v1/chat/completions")
        .header(hyper::header::HOST, addr.to_string())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::ACCEPT, "text/event-stream")
        .body(Full::new(Bytes::from(body.to_string())));
    let request = match request {
        Ok(request) => request,
        Err(err) => return StreamResult::failed(started, connect, format!("request: {err}")),
    };
    let sent_at = Instant::now();
    let response = match timeout(limits.read, sender.send_request(request)).await {
        Ok(Ok(response)) => response,
        Ok(Err(err)) => return StreamResult::failed(started, connect, format!("request: {err}")),
        Err(_) => return StreamResult::failed(started, connect, "no response headers".into()),
    };
    if !response.status().is_success() {
        return StreamResult::failed(started, connect, format!("HTTP {}", response.status()));
    }
    let mut body = response.into_body();
    let mut checker = Checker::new(spec);
    let mut frames = 0u32;
    let mut buffer: Vec<u8> = Vec::new();
    let mut error = None;
    'read: loop {
        let frame = match timeout(limits.read, body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(err))) => {
                error = Some(format!("read: {err}"));
                break;
            }
            Ok(None) => {
                error = Some("body ended before [DONE]".into());
                break;
            }
            Err(_) => {
                error = Some(format!("no data within {:?}", limits.read));
                break;
            }
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let received_ns = unix_nanos();
        let received_at = Instant::now();
        buffer.extend_from_slice(&data);
        let mut consumed = 0;
        while let Some(end) = find(&buffer[consumed..], b"\n\n") {
            let event = &buffer[consumed..consumed + end];
            consumed += end + 2;
            for line in event.split(|&b| b == b'\n') {
                let Some(payload) = line.strip_prefix(b"data:") else {
                    continue;
                };
                let payload = payload.strip_prefix(b" ").unwrap_or(payload);
                if payload == b"[DONE]" {
                    break 'read;
                }
                let chunk: Chunk = match serde_json::from_slice(payload) {
                    Ok(chunk) => chunk,
                    Err(_) => {
                        error = Some("unreadable SSE chunk".into());
                        break 'read;
                    }
                };
                let content = chunk
                    .choices
                    .into_iter()
                    .next()
                    .and_then(|c| c.delta)
                    .and_then(|d| d.content);
                if let Some(text) = content.filter(|t| !t.is_empty()) {
                    frames += 1;
                    checker.feed(&text, received_ns, received_at);
                }
            }
        }
        buffer.drain(..consumed);
    }
    StreamResult::from_checker(started, connect, sent_at, checker, frames, error)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub(crate) fn truncate(text: &str) -> String {
    text.chars().take(120).collect()
}

/// Connect and read deadlines of every benchmark client.
pub const LIMITS: Limits = Limits {
    connect: Duration::from_secs(30),
    read: Duration::from_secs(30),
};
