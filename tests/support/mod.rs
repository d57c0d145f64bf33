//! Test support: the real proxy started in-process on 127.0.0.1:0, a scripted mock upstream
//! whose every chunk, delay, status and drop the test controls, and a Deep Chat-like WebSocket
//! client.

#![allow(dead_code)]

pub mod binary;
pub mod mcp;
pub mod services;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::Value;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Every wait in tests is bounded so a broken proxy fails the test instead of hanging it.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A running proxy; dropping it (or calling `stop`) shuts it down.
pub struct Proxy {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Proxy {
    /// Starts the proxy with these command-line arguments (after the program name; `--listen`
    /// is added).
    pub async fn start(args: &[&str]) -> Proxy {
        let mut argv = vec!["deepchat-proxy", "--listen", "127.0.0.1:0"];
        argv.extend_from_slice(args);
        let parsed = deepchat_proxy::cli::parse_from(argv).expect("valid flags");
        Proxy::start_cli(parsed.cli).await
    }

    /// As [`Proxy::start`], with the provider subcommands of `table` instead of the built-in one.
    pub async fn start_with_table(
        table: &'static [deepchat_adapters::providers::Provider],
        args: &[&str],
    ) -> Proxy {
        let mut argv = vec!["deepchat-proxy", "--listen", "127.0.0.1:0"];
        argv.extend_from_slice(args);
        let parsed = deepchat_proxy::cli::parse_from_table(table, argv).expect("valid flags");
        Proxy::start_cli(parsed.cli).await
    }

    async fn start_cli(cli: deepchat_proxy::cli::Cli) -> Proxy {
        let config = deepchat_proxy::Config::from_cli(cli).expect("valid config");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(deepchat_proxy::run(listener, config, async move {
            let _ = rx.await;
        }));
        Proxy {
            addr,
            shutdown: Some(tx),
            task,
        }
    }

    /// Starts an `openai` proxy pointed at `upstream`, plus extra global args before the
    /// subcommand and provider args after it. Unless the test sets them, retries and rate
    /// limiting are off, so each scripted reply answers exactly one request.
    pub async fn openai(upstream: &MockUpstream, global: &[&str], provider: &[&str]) -> Proxy {
        let base = format!("http://{}/v1", upstream.addr);
        let mut args: Vec<&str> = global.to_vec();
        for (flag, value) in [("--retries", "0"), ("--rate-limit", "0")] {
            if !global.contains(&flag) {
                args.extend_from_slice(&[flag, value]);
            }
        }
        args.extend_from_slice(&["openai", "--base-url", &base, "--model", "test-model"]);
        args.extend_from_slice(&["--api-key-env", "DEEPCHAT_PROXY_TEST_NO_SUCH_KEY"]);
        args.extend_from_slice(provider);
        Proxy::start(&args).await
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/chat", self.addr)
    }

    /// Signals shutdown (as SIGTERM does) without waiting for the drain.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(PATIENCE, &mut self.task)
            .await
            .expect("proxy stopped in time")
            .expect("proxy task")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One step of a scripted upstream response body.
#[derive(Debug, Clone)]
pub enum Step {
    /// Raw bytes, sent as one chunk.
    Bytes(Vec<u8>),
    /// A pause before the next step.
    Wait(Duration),
    /// Abort the connection mid-body (no proper end).
    Drop,
    /// Keep the response open, sending SSE comments, until the client goes away.
    HoldUntilClosed,
    /// Bytes sent only if the request asked for usage (`stream_options.include_usage`), as
    /// OpenAI's Chat Completions stream sends its usage chunk.
    IfUsageAsked(Vec<u8>),
}

/// A scripted response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub steps: Vec<Step>,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    /// An OpenAI SSE stream of these deltas, then (only when the request asked, as OpenAI
    /// does) a usage chunk with these token counts, then `[DONE]`.
    pub fn openai_text_with_usage(deltas: &[&str], prompt: u64, completion: u64) -> Reply {
        let mut steps: Vec<Step> = deltas
            .iter()
            .map(|d| Step::Bytes(openai_chunk(d)))
            .collect();
        steps.push(Step::IfUsageAsked(
            format!(
                "data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":{prompt},\"completion_tokens\":{completion},\"total_tokens\":{}}}}}\n\n",
                prompt + completion
            )
            .into_bytes(),
        ));
        steps.push(Step::Bytes(b"data: [DONE]\n\n".to_vec()));
        Reply::sse(steps)
    }

    /// An OpenAI SSE stream of these content deltas, ending with `[DONE]`.
    pub fn openai_text(deltas: &[&str]) -> Reply {
        let mut steps: Vec<Step> = deltas
            .iter()
            .map(|d| Step::Bytes(openai_chunk(d)))
            .collect();
        steps.push(Step::Bytes(b"data: [DONE]\n\n".to_vec()));
        Reply::sse(steps)
    }

    /// An Anthropic Messages stream of these text deltas, ending with `message_stop`.
    pub fn anthropic_text(deltas: &[&str]) -> Reply {
        let event = |name: &str, data: serde_json::Value| {
            Step::Bytes(format!("event: {name}\ndata: {data}\n\n").into_bytes())
        };
        let mut steps = vec![
            event(
                "message_start",
                serde_json::json!({"type": "message_start", "message": {"id": "msg_test",
                    "type": "message", "role": "assistant", "content": [], "model": "claude-test",
                    "stop_reason": null, "usage": {"input_tokens": 3, "output_tokens": 1}}}),
            ),
            event(
                "content_block_start",
                serde_json::json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
            ),
        ];
        for delta in deltas {
            steps.push(event(
                "content_block_delta",
                serde_json::json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": delta}}),
            ));
        }
        steps.push(event(
            "content_block_stop",
            serde_json::json!({"type": "content_block_stop", "index": 0}),
        ));
        steps.push(event(
            "message_delta",
            serde_json::json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": deltas.len()}}),
        ));
        steps.push(event(
            "message_stop",
            serde_json::json!({"type": "message_stop"}),
        ));
        Reply::sse(steps)
    }

    pub fn sse(steps: Vec<Step>) -> Reply {
        Reply {
            status: 200,
            content_type: "text/event-stream",
            steps,
            headers: Vec::new(),
        }
    }

    pub fn error(status: u16, body: &str) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            steps: vec![Step::Bytes(body.as_bytes().to_vec())],
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: &str) -> Reply {
        self.headers.push((name, value.to_owned()));
        self
    }
}

/// One `data:` event carrying a Chat Completions content delta.
pub fn openai_chunk(delta: &str) -> Vec<u8> {
    let chunk = serde_json::json!({
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": delta}, "finish_reason": null}]
    });
    format!("data: {chunk}\n\n").into_bytes()
}

/// What the mock saw of one request.
#[derive(Debug, Clone)]
pub struct Received {
    pub version: hyper::Version,
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct MockState {
    replies: VecDeque<Reply>,
    received: Vec<Received>,
    /// When each response noticed its client had gone.
    closed_at: Vec<Instant>,
    /// TCP connections accepted.
    connections: usize,
}

/// A scripted upstream on 127.0.0.1:0: replies are served in the order they were queued.
#[derive(Clone)]
pub struct MockUpstream {
    pub addr: SocketAddr,
    state: Arc<Mutex<MockState>>,
    changed: Arc<Notify>,
}

impl MockUpstream {
    pub async fn start() -> MockUpstream {
        MockUpstream::start_with_h2_streams(200).await
    }

    /// Like [`MockUpstream::start`], advertising at most `max` concurrent HTTP/2 streams per
    /// connection (SETTINGS_MAX_CONCURRENT_STREAMS).
    pub async fn start_with_h2_streams(max: u32) -> MockUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind mock");
        let mock = MockUpstream {
            addr: listener.local_addr().expect("addr"),
            state: Arc::default(),
            changed: Arc::default(),
        };
        let server = mock.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                server.state.lock().expect("lock").connections += 1;
                let mock = server.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let mock = mock.clone();
                        async move { Ok::<_, std::convert::Infallible>(mock.respond(request).await) }
                    });
                    // HTTP/1.1, or HTTP/2 when the client opens with its preface (h2c).
                    let mut builder = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    );
                    builder.http2().max_concurrent_streams(max);
                    let _ = builder
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        mock
    }

    pub fn push(&self, reply: Reply) {
        self.state.lock().expect("lock").replies.push_back(reply);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().expect("lock").received.clone()
    }

    pub fn connections(&self) -> usize {
        self.state.lock().expect("lock").connections
    }

    pub fn closed_count(&self) -> usize {
        self.state.lock().expect("lock").closed_at.len()
    }

    /// Waits until `n` requests have arrived.
    pub async fn wait_requests(&self, n: usize) -> Vec<Received> {
        self.wait_for(|s| s.received.len() >= n).await;
        self.received()
    }

    fn note_closed(&self) {
        self.state
            .lock()
            .expect("lock")
            .closed_at
            .push(Instant::now());
        self.changed.notify_waiters();
    }

    /// Waits until `n` responses saw their client go away; returns when that happened.
    pub async fn wait_closed(&self, n: usize) -> Instant {
        self.wait_for(|s| s.closed_at.len() >= n).await;
        self.state.lock().expect("lock").closed_at[n - 1]
    }

    async fn wait_for(&self, done: impl Fn(&MockState) -> bool) {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let notified = self.changed.notified();
                if done(&self.state.lock().expect("lock")) {
                    return;
                }
                notified.await;
            }
        })
        .await
        .expect("mock upstream condition within patience");
    }

    async fn respond(
        &self,
        request: hyper::Request<hyper::body::Incoming>,
    ) -> hyper::Response<http_body_util::combinators::BoxBody<Bytes, std::io::Error>> {
        let version = request.version();
        let method = request.method().to_string();
        let path = request
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default();
        let headers = request
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let bytes = request
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let usage_asked = body["stream_options"]["include_usage"] == Value::Bool(true);
        let reply = {
            let mut state = self.state.lock().expect("lock");
            state.received.push(Received {
                version,
                method,
                path,
                headers,
                body,
            });
            state.replies.pop_front()
        };
        self.changed.notify_waiters();
        let reply = reply.unwrap_or_else(|| {
            Reply::error(500, r#"{"error":{"message":"mock has no reply queued"}}"#)
        });
        let reply_headers = reply.headers.clone();

        let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
        let mock = self.clone();
        tokio::spawn(async move {
            for step in reply.steps {
                let step = match step {
                    Step::IfUsageAsked(bytes) if usage_asked => Step::Bytes(bytes),
                    Step::IfUsageAsked(_) => continue,
                    other => other,
                };
                match step {
                    Step::Bytes(bytes) => {
                        if tx.send(Ok(Frame::data(Bytes::from(bytes)))).await.is_err() {
                            mock.note_closed();
                            return;
                        }
                    }
                    Step::Wait(pause) => tokio::time::sleep(pause).await,
                    Step::Drop => {
                        let _ = tx.send(Err(std::io::Error::other("dropped by test"))).await;
                        return;
                    }
                    Step::HoldUntilClosed => loop {
                        let ping = Frame::data(Bytes::from_static(b": keep-alive\n\n"));
                        if tx.send(Ok(ping)).await.is_err() {
                            mock.note_closed();
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    },
                    // Turned into bytes or skipped above.
                    Step::IfUsageAsked(_) => {}
                }
            }
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let mut response = hyper::Response::builder()
            .status(reply.status)
            .header("content-type", reply.content_type);
        for (name, value) in &reply_headers {
            response = response.header(*name, value);
        }
        response
            .body(BodyExt::boxed(StreamBody::new(stream)))
            .expect("response")
    }
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a Deep Chat-style socket.
pub async fn connect(url: &str) -> Ws {
    let (ws, _) = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect in time")
        .expect("websocket connect");
    ws
}

/// Sends one Deep Chat request: only the newest message, as Deep Chat does by default.
pub async fn send_user(ws: &mut Ws, text: &str) {
    let body = serde_json::json!({"messages": [{"role": "user", "text": text}]});
    ws.send(Message::text(body.to_string()))
        .await
        .expect("send");
}

/// The next WebSocket message (of any kind), within patience, on an open socket.
pub async fn next_message(ws: &mut Ws) -> Message {
    tokio::time::timeout(PATIENCE, ws.next())
        .await
        .expect("frame within patience")
        .expect("socket open")
        .expect("frame")
}

/// Reads frames until (and including) the stop key frame.
pub async fn read_reply(ws: &mut Ws, stop_key: &str) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        if let Message::Text(text) = next_message(ws).await {
            let frame: Value = serde_json::from_str(text.as_str()).expect("JSON frame");
            let is_stop = frame.get("text").and_then(Value::as_str) == Some(stop_key);
            frames.push(frame);
            if is_stop {
                return frames;
            }
        }
    }
}

/// Concatenated text of all frames except the final stop key.
pub fn reply_text(frames: &[Value]) -> String {
    frames[..frames.len().saturating_sub(1)]
        .iter()
        .filter_map(|f| f.get("text").and_then(Value::as_str))
        .collect()
}

/// The error frames' texts.
/// The error texts among `frames`, each without the request id every error ends with
/// (asserted here, so every error test also checks that the id is there).
pub fn errors(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .filter_map(|f| f.get("error").and_then(Value::as_str))
        .map(|text| without_request_id(text).to_owned())
        .collect()
}

/// `text` without its trailing ` (request id ID)`; panics if it has none.
pub fn without_request_id(text: &str) -> &str {
    let (message, id) = text
        .rsplit_once(" (request id ")
        .unwrap_or_else(|| panic!("no request id at the end of {text:?}"));
    assert!(
        id.ends_with(')') && id.len() > 1,
        "malformed request id in {text:?}"
    );
    message
}

/// The request id an error text ends with.
pub fn request_id_of(text: &str) -> &str {
    let message = without_request_id(text);
    &text[message.len() + " (request id ".len()..text.len() - 1]
}
