//! The mock upstream: OpenAI Chat Completions SSE on `POST /v1/chat/completions`, as fast as
//! hyper goes. Each request's last user message is a [`Spec`]; the reply is a role chunk, the
//! spec's tokens (each stamped with its send time, paced on an absolute schedule so timer jitter
//! never accumulates), a `finish_reason: "stop"` chunk and `data: [DONE]`. A request without
//! `"stream": true` gets what OpenAI sends then: one `chat.completion` JSON object with the
//! whole text (unpaced), the floor of the JSON-mode scenarios.
//!
//! It runs as its own process so its CPU is measured apart from the load generator's, and it
//! stops by itself: when its standard input closes (the driver is gone) or after `--max-seconds`.
//!
//! It also counts, per stream id, the bytes the kernel accepted from it on that stream's
//! connection, the tokens it produced, and whether the reply finished or its connection closed
//! first, and when (CLOCK_MONOTONIC, see `clock`) that connection closed.
//! `GET /stats?first=ID&count=N` returns those counters for a range of ids ([`StatsReply`]):
//! the backpressure scenarios read them to see the upstream stall and close, the cancel
//! scenarios to time how long a client's close takes to reach the upstream.

use crate::clock::monotonic_nanos;
use crate::token::{push_token, unix_nanos, Spec};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpSocket;
use tokio::time::{Instant, Sleep};

/// Streams one HTTP/2 connection may carry at once: more than any scenario opens.
const MAX_H2_STREAMS: u32 = 100_000;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on; port 0 picks a free one. The bound address is printed on stdout.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Stop after this long whatever happens.
    #[arg(long, default_value_t = 1800)]
    max_seconds: u64,
    /// Announce this TCP maximum segment size to connecting peers (TCP_MAXSEG on the
    /// listener), e.g. 1460 as on Ethernet instead of loopback's 64 KiB: Linux sizes socket
    /// send buffers per segment, so on loopback every stalled stream would hold megabytes in
    /// the kernel.
    #[arg(long)]
    mss: Option<u32>,
    /// Fixed send buffer of accepted connections (SO_SNDBUF on the listener; the kernel doubles
    /// it and stops auto-tuning it). Without it a stalled stream's buffer grows to megabytes.
    #[arg(long)]
    send_buffer: Option<u32>,
}

const CHUNK_HEAD: &str = r#"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"bench","choices":[{"index":0,"delta":{"content":""#;
const CHUNK_TAIL: &str = "\"},\"finish_reason\":null}]}\n\n";
const ROLE_CHUNK: &[u8] = b"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n";
const FINISH_CHUNK: &[u8] = b"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";

/// The end when the request asked for usage (`stream_options.include_usage`): as OpenAI does,
/// a usage chunk with empty `choices` comes between the finish chunk and `[DONE]`.
const FINISH_WITH_USAGE: &[u8] = b"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench\",\"choices\":[],\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":1,\"total_tokens\":9}}\n\ndata: [DONE]\n\n";

/// Bytes of one content event without its token text (SSE framing and JSON around it).
pub const TOKEN_EVENT_OVERHEAD: usize = CHUNK_HEAD.len() + CHUNK_TAIL.len();

/// Largest request body read.
const MAX_REQUEST_BYTES: usize = 1 << 20;

pub fn main(args: Args) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("mock: no runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mock: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> std::io::Result<()> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    if let Some(mss) = args.mss {
        socket2::SockRef::from(&socket).set_tcp_mss(mss)?;
    }
    if let Some(bytes) = args.send_buffer {
        socket.set_send_buffer_size(bytes)?;
    }
    socket.bind(args.listen)?;
    // A deep accept queue: a burst of thousands of connects must not be dropped by the mock.
    let listener = socket.listen(8192)?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening {}", listener.local_addr()?)?;
    stdout.flush()?;

    let parent_gone = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    let deadline = tokio::time::sleep(Duration::from_secs(args.max_seconds));
    let mut parent_gone = std::pin::pin!(parent_gone);
    let mut deadline = std::pin::pin!(deadline);
    let registry = Arc::new(Registry::default());
    loop {
        let stream = tokio::select! {
            _ = parent_gone.as_mut() => return Ok(()),
            _ = deadline.as_mut() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let registry = registry.clone();
        tokio::spawn(async move {
            let connection = Arc::new(Connection::default());
            let io = Counting {
                inner: stream,
                connection: connection.clone(),
                stream: None,
                seen: 0,
            };
            let on_request = connection.clone();
            let service = hyper::service::service_fn(move |request| {
                respond(request, registry.clone(), on_request.clone())
            });
            // HTTP/1.1, or HTTP/2 when the client opens with its preface (the proxy with
            // `--upstream-http2`): then one connection carries many streams.
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http2().max_concurrent_streams(MAX_H2_STREAMS);
            let _ = builder.serve_connection(TokioIo::new(io), service).await;
            // The connection is gone (done, or closed by the peer): a reply still running on it
            // was cut off.
            if let Some(stream) = connection.current() {
                stream
                    .closed_at_ns
                    .store(monotonic_nanos(), Ordering::Relaxed);
                stream.closed.store(true, Ordering::Relaxed);
            }
        });
    }
}

/// What the mock knows about one stream (one request), by the stream's id.
#[derive(Debug, Default)]
struct StreamStats {
    /// Bytes the kernel accepted on the stream's connection while it carried this stream
    /// (response head, chunked framing and SSE events).
    written: AtomicU64,
    /// Content tokens produced so far (handed to hyper, which queues at most a few chunks
    /// beyond what the socket took).
    tokens: AtomicU32,
    /// The last event (`[DONE]`) was produced.
    finished: AtomicBool,
    /// The connection closed while this stream was its current one.
    closed: AtomicBool,
    /// When hyper finished with that connection (CLOCK_MONOTONIC ns; 0 while open).
    closed_at_ns: AtomicU64,
}

/// Every stream the mock has served, by id (ids are unique within a run).
#[derive(Debug, Default)]
struct Registry {
    streams: Mutex<HashMap<u64, Arc<StreamStats>>>,
}

impl Registry {
    fn register(&self, id: u64) -> Arc<StreamStats> {
        let stats = Arc::new(StreamStats::default());
        if let Ok(mut streams) = self.streams.lock() {
            streams.insert(id, stats.clone());
        }
        stats
    }

    fn reply(&self, first: u64, count: u64) -> StatsReply {
        let mut reply = StatsReply::default();
        let Ok(streams) = self.streams.lock() else {
            return reply;
        };
        for id in first..first.saturating_add(count) {
            let Some(stream) = streams.get(&id) else {
                continue;
            };
            reply.found += 1;
            let finished = stream.finished.load(Ordering::Relaxed);
            let closed = stream.closed.load(Ordering::Relaxed);
            match (finished, closed) {
                (true, _) => reply.finished += 1,
                (false, true) => reply.cut += 1,
                (false, false) => reply.streaming += 1,
            }
            reply.ids.push(id);
            reply.written.push(stream.written.load(Ordering::Relaxed));
            reply.tokens.push(stream.tokens.load(Ordering::Relaxed));
            reply
                .closed_at_ns
                .push(stream.closed_at_ns.load(Ordering::Relaxed));
        }
        reply
    }
}

/// `GET /stats?first=ID&count=N`: the mock's counters for streams `ID..ID+N`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StatsReply {
    /// Streams of the range the mock has seen a request for.
    pub found: usize,
    /// Still being written: reply not finished and connection open.
    pub streaming: usize,
    /// Reply produced to the end.
    pub finished: usize,
    /// Connection closed before the reply ended.
    pub cut: usize,
    /// Per stream seen (in id order): bytes the kernel accepted from the mock.
    pub written: Vec<u64>,
    /// Per stream seen (in id order): content tokens produced.
    pub tokens: Vec<u32>,
    /// The ids of the streams seen, in order (the key of the other lists).
    #[serde(default)]
    pub ids: Vec<u64>,
    /// Per stream seen (in id order): when its connection closed, CLOCK_MONOTONIC ns; 0 = open.
    #[serde(default)]
    pub closed_at_ns: Vec<u64>,
}

/// One accepted connection: which stream it is currently carrying.
#[derive(Debug, Default)]
struct Connection {
    current: Mutex<Option<Arc<StreamStats>>>,
    /// Bumped whenever `current` changes, so writers re-read it only then.
    generation: AtomicU64,
}

impl Connection {
    fn current(&self) -> Option<Arc<StreamStats>> {
        self.current.lock().ok().and_then(|c| c.clone())
    }

    fn carry(&self, stream: Arc<StreamStats>) {
        if let Ok(mut current) = self.current.lock() {
            *current = Some(stream);
            self.generation.fetch_add(1, Ordering::Release);
        }
    }
}

/// The accepted socket, counting what the kernel accepts; vectored writes are passed through
/// so hyper keeps its queueing write strategy. Per write: one atomic load and one atomic add.
struct Counting {
    inner: tokio::net::TcpStream,
    connection: Arc<Connection>,
    /// The stream being written and the connection's generation it was read at.
    stream: Option<Arc<StreamStats>>,
    seen: u64,
}

impl Counting {
    fn count(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        let generation = self.connection.generation.load(Ordering::Acquire);
        if generation != self.seen {
            self.stream = self.connection.current();
            self.seen = generation;
        }
        if let Some(stream) = &self.stream {
            stream.written.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counting {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.count(n);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            self.count(n);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

type Reply = Response<http_body_util::Either<TokenBody, Full<Bytes>>>;

async fn respond(
    request: Request<Incoming>,
    registry: Arc<Registry>,
    connection: Arc<Connection>,
) -> Result<Reply, Infallible> {
    if request.method() == Method::GET && request.uri().path() == "/stats" {
        let (mut first, mut count) = (0u64, 0u64);
        for pair in request.uri().query().unwrap_or("").split('&') {
            match pair.split_once('=') {
                Some(("first", v)) => first = v.parse().unwrap_or(0),
                Some(("count", v)) => count = v.parse().unwrap_or(0),
                _ => {}
            }
        }
        let reply = registry.reply(first, count.min(1_000_000));
        let json = serde_json::to_string(&reply).unwrap_or_default();
        return Ok(Response::new(http_body_util::Either::Right(Full::new(
            Bytes::from(json),
        ))));
    }
    if request.method() != Method::POST || !request.uri().path().ends_with("/chat/completions") {
        return Ok(plain(StatusCode::NOT_FOUND, "not found"));
    }
    let body = match Limited::new(request.into_body(), MAX_REQUEST_BYTES)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(_) => return Ok(plain(StatusCode::BAD_REQUEST, "unreadable body")),
    };
    let Some(spec) = spec_of(&body) else {
        return Ok(plain(
            StatusCode::BAD_REQUEST,
            "the last message must be `bench id=… n=… interval_us=…`",
        ));
    };
    if !wants_stream(&body) {
        return Ok(completion(spec));
    }
    let stats = registry.register(spec.id);
    connection.carry(stats.clone());
    let mut response = Response::new(http_body_util::Either::Left(
        TokenBody::new(spec, Some(stats)).with_usage(asks_for_usage(&body)),
    ));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    Ok(response)
}

/// The spec in the last message's `content` (a string, or text parts).
fn spec_of(body: &[u8]) -> Option<Spec> {
    let request: serde_json::Value = serde_json::from_slice(body).ok()?;
    let content = request
        .get("messages")?
        .as_array()?
        .last()?
        .get("content")?;
    match content {
        serde_json::Value::String(text) => Spec::parse(text),
        serde_json::Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(serde_json::Value::as_str))
            .find_map(Spec::parse),
        _ => None,
    }
}

/// OpenAI's `stream_options.include_usage` (the usage chunk is sent only when asked).
fn asks_for_usage(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .map(|request| request["stream_options"]["include_usage"] == true)
        .unwrap_or(false)
}

/// OpenAI's `stream` field (absent means false).
fn wants_stream(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|request| request.get("stream").and_then(serde_json::Value::as_bool))
        .unwrap_or(false)
}

/// A non-streamed `chat.completion`: every token at once, stamped now.
fn completion(spec: Spec) -> Reply {
    let mut content = String::with_capacity(32 * spec.tokens as usize);
    let stamp = unix_nanos();
    for seq in 0..spec.tokens {
        push_token(&mut content, spec.id, seq, stamp);
    }
    let json = serde_json::json!({
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "bench",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop",
        }],
        "usage": {"prompt_tokens": 8, "completion_tokens": spec.tokens, "total_tokens": 8 + spec.tokens},
    });
    let mut response = Response::new(http_body_util::Either::Right(Full::new(Bytes::from(
        json.to_string(),
    ))));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn plain(status: StatusCode, text: &str) -> Reply {
    let mut response = Response::new(http_body_util::Either::Right(Full::new(Bytes::from(
        format!("{{\"error\":{{\"message\":\"{text}\"}}}}"),
    ))));
    *response.status_mut() = status;
    response
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Role,
    Tokens,
    Done,
}

/// The streamed reply: one body frame per SSE event, paced by a single reused timer.
pub struct TokenBody {
    spec: Spec,
    phase: Phase,
    next: u32,
    start: Instant,
    interval: Option<Duration>,
    sleep: Pin<Box<Sleep>>,
    stats: Option<Arc<StreamStats>>,
    /// End with a usage chunk (the request asked for it).
    usage: bool,
}

impl TokenBody {
    fn new(spec: Spec, stats: Option<Arc<StreamStats>>) -> TokenBody {
        let start = Instant::now();
        TokenBody {
            spec,
            phase: Phase::Role,
            next: 0,
            start,
            interval: (spec.interval_us > 0).then(|| Duration::from_micros(spec.interval_us)),
            sleep: Box::pin(tokio::time::sleep_until(start)),
            stats,
            usage: false,
        }
    }

    fn with_usage(mut self, usage: bool) -> TokenBody {
        self.usage = usage;
        self
    }
}

impl Body for TokenBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        match this.phase {
            Phase::Role => {
                this.phase = Phase::Tokens;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(ROLE_CHUNK)))))
            }
            Phase::Tokens if this.next >= this.spec.tokens => {
                this.phase = Phase::Done;
                if let Some(stats) = &this.stats {
                    stats.finished.store(true, Ordering::Relaxed);
                }
                let end = if this.usage {
                    FINISH_WITH_USAGE
                } else {
                    FINISH_CHUNK
                };
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(end)))))
            }
            Phase::Tokens => {
                if let (Some(interval), true) = (this.interval, this.next > 0) {
                    let deadline = this.start + interval * this.next;
                    if Instant::now() < deadline {
                        if this.sleep.deadline() != deadline {
                            this.sleep.as_mut().reset(deadline);
                        }
                        if this.sleep.as_mut().poll(cx).is_pending() {
                            return Poll::Pending;
                        }
                    }
                }
                let mut chunk = String::with_capacity(CHUNK_HEAD.len() + CHUNK_TAIL.len() + 48);
                chunk.push_str(CHUNK_HEAD);
                push_token(&mut chunk, this.spec.id, this.next, unix_nanos());
                chunk.push_str(CHUNK_TAIL);
                this.next += 1;
                if let Some(stats) = &this.stats {
                    stats.tokens.store(this.next, Ordering::Relaxed);
                }
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
            }
            Phase::Done => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.phase == Phase::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_is_read_from_the_last_message() {
        let body = br#"{"model":"bench","stream":true,"messages":[{"role":"user","content":"hi"},{"role":"user","content":"bench id=3 n=4 interval_us=5"}]}"#;
        assert_eq!(
            spec_of(body),
            Some(Spec {
                id: 3,
                tokens: 4,
                interval_us: 5
            })
        );
        assert_eq!(spec_of(b"{}"), None);
        assert!(wants_stream(body));
        assert!(!wants_stream(br#"{"messages":[]}"#));
    }

    #[tokio::test]
    async fn non_streamed_request_gets_one_completion_object() {
        let spec = Spec {
            id: 9,
            tokens: 4,
            interval_us: 0,
        };
        let body = completion(spec)
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(json["object"], "chat.completion");
        let content = json["choices"][0]["message"]["content"]
            .as_str()
            .expect("content");
        let mut checker = crate::token::Checker::new(spec);
        checker.feed(content, unix_nanos(), std::time::Instant::now());
        assert_eq!(checker.verdict(), Ok(()));
    }

    #[tokio::test]
    async fn body_is_openai_sse_ending_with_done() {
        let spec = Spec {
            id: 1,
            tokens: 3,
            interval_us: 0,
        };
        let stats = Arc::new(StreamStats::default());
        let body = TokenBody::new(spec, Some(stats.clone()))
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(events.len(), 6);
        assert_eq!(events[5], "data: [DONE]");
        let mut content = String::new();
        for event in &events[..4] {
            let chunk: serde_json::Value =
                serde_json::from_str(event.trim_start_matches("data: ")).expect("json chunk");
            content.push_str(
                chunk["choices"][0]["delta"]["content"]
                    .as_str()
                    .expect("content"),
            );
        }
        let mut checker = crate::token::Checker::new(spec);
        checker.feed(&content, unix_nanos(), std::time::Instant::now());
        assert_eq!(checker.verdict(), Ok(()));
        assert_eq!(stats.tokens.load(Ordering::Relaxed), 3);
        assert!(stats.finished.load(Ordering::Relaxed));
    }

    #[test]
    fn stats_classify_streams_by_id() {
        let registry = Registry::default();
        let a = registry.register(10);
        let b = registry.register(11);
        let _c = registry.register(12);
        a.written.store(100, Ordering::Relaxed);
        a.finished.store(true, Ordering::Relaxed);
        b.closed.store(true, Ordering::Relaxed);
        b.closed_at_ns.store(42, Ordering::Relaxed);
        let reply = registry.reply(10, 4);
        assert_eq!(reply.ids, vec![10, 11, 12]);
        assert_eq!(reply.closed_at_ns, vec![0, 42, 0]);
        assert_eq!(
            (reply.found, reply.finished, reply.cut, reply.streaming),
            (3, 1, 1, 1)
        );
        assert_eq!(reply.written, vec![100, 0, 0]);
        assert_eq!(registry.reply(20, 5).found, 0);
    }
}
