//! Deep Chat over plain HTTP, as the benchmark's clients speak it: the one-JSON-answer mode
//! (`POST /chat` → `{"text"}`) and its floor (a non-streamed `chat.completion` straight from the
//! mock), and the SSE mode (`Accept: text/event-stream` → `data: {"text"}` events until the
//! response ends). Connections here are driven by the caller's own task ([`Conn`]), so dropping
//! one closes its socket at that instant: the cancel scenarios time from it.

use crate::client::{connect_tcp, truncate, Limits, StreamResult};
use crate::token::{unix_nanos, Checker, Spec};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use std::borrow::Cow;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Instant;
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Largest JSON answer read.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// The Deep Chat request body for `spec`.
fn deepchat_body(spec: &Spec) -> String {
    serde_json::json!({"messages": [{"role": "user", "text": spec.prompt()}]}).to_string()
}

/// `POST /chat` to the proxy asking for one JSON answer.
pub fn proxy_json_request(addr: SocketAddr, spec: &Spec) -> Request<Full<Bytes>> {
    post(addr, "/chat", "application/json", deepchat_body(spec))
}

/// `POST /chat` to the proxy asking for a streamed (SSE) reply.
pub fn proxy_sse_request(addr: SocketAddr, spec: &Spec) -> Request<Full<Bytes>> {
    post(addr, "/chat", "text/event-stream", deepchat_body(spec))
}

/// A non-streamed Chat Completions request straight to the mock (the JSON-mode floor).
pub fn mock_json_request(addr: SocketAddr, spec: &Spec) -> Request<Full<Bytes>> {
    let body = serde_json::json!({
        "model": "bench",
        "messages": [{"role": "user", "content": spec.prompt()}],
    });
    post(
        addr,
        "/v1/chat/completions",
        "application/json",
        body.to_string(),
    )
}

/// A streamed Chat Completions request straight to the mock (the SSE floor).
pub fn mock_sse_request(addr: SocketAddr, spec: &Spec) -> Request<Full<Bytes>> {
    let body = serde_json::json!({
        "model": "bench",
        "stream": true,
        "messages": [{"role": "user", "content": spec.prompt()}],
    });
    post(
        addr,
        "/v1/chat/completions",
        "text/event-stream",
        body.to_string(),
    )
}

fn post(addr: SocketAddr, path: &str, accept: &'static str, body: String) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(Bytes::from(body)));
    *request.method_mut() = hyper::Method::POST;
    *request.uri_mut() = hyper::Uri::try_from(path).unwrap_or_default();
    let headers = request.headers_mut();
    if let Ok(host) = hyper::header::HeaderValue::try_from(addr.to_string()) {
        headers.insert(hyper::header::HOST, host);
    }
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        hyper::header::ACCEPT,
        hyper::header::HeaderValue::from_static(accept),
    );
    request
}

/// Which JSON answer a response carries.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// The proxy's Deep Chat answer, `{"text": …}`.
    DeepChat,
    /// The mock's `chat.completion`, `choices[0].message.content`.
    Completion,
}

#[derive(Deserialize)]
struct DeepChatAnswer<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Completion<'a> {
    #[serde(borrow, default)]
    choices: Vec<CompletionChoice<'a>>,
}

#[derive(Deserialize)]
struct CompletionChoice<'a> {
    #[serde(borrow)]
    message: CompletionMessage<'a>,
}

#[derive(Deserialize)]
struct CompletionMessage<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
}

/// Reads a whole JSON answer and checks it carries exactly `spec`'s tokens.
pub async fn check_answer(
    response: Response<Incoming>,
    answer: Answer,
    spec: Spec,
) -> Result<(), String> {
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!(
            "HTTP {status}: {}",
            truncate(&String::from_utf8_lossy(&body))
        ));
    }
    let text = match answer {
        Answer::DeepChat => {
            let parsed: DeepChatAnswer = serde_json::from_slice(&body)
                .map_err(|_| format!("not JSON: {}", truncate(&String::from_utf8_lossy(&body))))?;
            if let Some(error) = parsed.error {
                return Err(format!("error answer: {error}"));
            }
            parsed.text.ok_or("answer without text")?.into_owned()
        }
        Answer::Completion => {
            let parsed: Completion =
                serde_json::from_slice(&body).map_err(|_| "not a chat.completion".to_owned())?;
            parsed
                .choices
                .into_iter()
                .next()
                .and_then(|c| c.message.content)
                .ok_or("completion without content")?
                .into_owned()
        }
    };
    let mut checker = Checker::new(spec);
    checker.feed(&text, unix_nanos(), Instant::now());
    checker.verdict()
}

type Driver = Pin<Box<http1::Connection<TokioIo<TcpStream>, Full<Bytes>>>>;

/// One HTTP/1.1 connection driven by the task that owns it: dropping it closes the socket now.
pub struct Conn {
    pub sender: http1::SendRequest<Full<Bytes>>,
    driver: Driver,
}

impl Conn {
    pub async fn open(addr: SocketAddr, limits: Limits) -> Result<Conn, String> {
        let tcp = connect_tcp(addr, limits.connect).await?;
        match timeout(limits.connect, http1::handshake(TokioIo::new(tcp))).await {
            Ok(Ok((sender, connection))) => Ok(Conn {
                sender,
                driver: Box::pin(connection),
            }),
            Ok(Err(err)) => Err(format!("http: {err}")),
            Err(_) => Err("http handshake timed out".into()),
        }
    }

    /// Waits for `work` while keeping the connection going.
    pub async fn drive<F: Future>(&mut self, work: F) -> Result<F::Output, String> {
        tokio::select! {
            output = work => Ok(output),
            ended = self.driver.as_mut() => Err(match ended {
                Ok(()) => "connection closed".to_owned(),
                Err(err) => format!("connection: {err}"),
            }),
        }
    }
}

/// Splits an SSE byte stream into the payloads of its `data:` lines.
#[derive(Default)]
pub struct SseSplitter {
    buffer: Vec<u8>,
}

impl SseSplitter {
    /// Adds bytes; returns the `data:` payloads of every event completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        self.buffer.extend_from_slice(bytes);
        let mut payloads = Vec::new();
        let mut consumed = 0;
        while let Some(end) = find(&self.buffer[consumed..], b"\n\n") {
            let event = &self.buffer[consumed..consumed + end];
            consumed += end + 2;
            for line in event.split(|&b| b == b'\n') {
                if let Some(payload) = line.strip_prefix(b"data:") {
                    payloads.push(payload.strip_prefix(b" ").unwrap_or(payload).to_vec());
                }
            }
        }
        self.buffer.drain(..consumed);
        payloads
    }

    /// Bytes of an event not yet complete.
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads Deep Chat SSE events (`{"text"}` or `{"error"}`) into `checker` until the response
/// ends, or until `stop_after` tokens have arrived. Returns the frames read, or the failure.
pub async fn read_deepchat_sse(
    conn: &mut Conn,
    body: &mut Incoming,
    checker: &mut Checker,
    limits: Limits,
    stop_after: Option<u32>,
) -> Result<u32, String> {
    let mut splitter = SseSplitter::default();
    let mut frames = 0u32;
    loop {
        let frame = match conn.drive(timeout(limits.read, body.frame())).await? {
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(err))) => return Err(format!("read: {err}")),
            Ok(None) if splitter.pending() == 0 => return Ok(frames),
            Ok(None) => return Err("response ended inside an event".into()),
            Err(_) => return Err(format!("no data within {:?}", limits.read)),
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let received_ns = unix_nanos();
        let received_at = Instant::now();
        for payload in splitter.push(&data) {
            let parsed: DeepChatAnswer = serde_json::from_slice(&payload).map_err(|_| {
                format!(
                    "not a Deep Chat event: {}",
                    truncate(&String::from_utf8_lossy(&payload))
                )
            })?;
            if let Some(error) = parsed.error {
                return Err(format!("error event: {error}"));
            }
            let text = parsed.text.ok_or("event without text")?;
            frames += 1;
            checker.feed(&text, received_ns, received_at);
            if checker.has_failed() {
                return Err(checker.verdict().err().unwrap_or_default());
            }
        }
        if stop_after.is_some_and(|n| checker.tokens() >= n) {
            return Ok(frames);
        }
    }
}

/// One conversation with the proxy over SSE on a new connection: connect, POST, read every
/// event until the response ends, check the reply.
pub async fn sse_via_proxy(addr: SocketAddr, spec: Spec, limits: Limits) -> StreamResult {
    let started = Instant::now();
    let mut conn = match Conn::open(addr, limits).await {
        Ok(conn) => conn,
        Err(why) => return StreamResult::failed(started, started.elapsed(), why),
    };
    let connect = started.elapsed();
    let sent_at = Instant::now();
    let request = proxy_sse_request(addr, &spec);
    let sending = timeout(limits.read, conn.sender.send_request(request));
    let mut body = match conn.drive(sending).await {
        Ok(Ok(Ok(response))) if response.status().is_success() => response.into_body(),
        Ok(Ok(Ok(response))) => {
            return StreamResult::failed(started, connect, format!("HTTP {}", response.status()))
        }
        Ok(Ok(Err(err))) => return StreamResult::failed(started, connect, format!("send: {err}")),
        Ok(Err(_)) => return StreamResult::failed(started, connect, "no response headers".into()),
        Err(why) => return StreamResult::failed(started, connect, why),
    };
    let mut checker = Checker::new(spec);
    let outcome = read_deepchat_sse(&mut conn, &mut body, &mut checker, limits, None).await;
    let (frames, error) = match outcome {
        Ok(frames) => (frames, None),
        Err(why) => (0, Some(why)),
    };
    StreamResult::from_checker(started, connect, sent_at, checker, frames, error)
}

#[cfg(test)]
mod tests {
    use super::SseSplitter;

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let stream = b"data: {\"text\":\"a\"}\n\ndata: {\"text\":\"b\"}\n\n";
        for cut in 0..stream.len() {
            let mut splitter = SseSplitter::default();
            let mut payloads = splitter.push(&stream[..cut]);
            payloads.extend(splitter.push(&stream[cut..]));
            assert_eq!(
                payloads,
                vec![b"{\"text\":\"a\"}".to_vec(), b"{\"text\":\"b\"}".to_vec()]
            );
            assert_eq!(splitter.pending(), 0);
        }
    }
}
