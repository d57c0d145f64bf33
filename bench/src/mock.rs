//! The mock upstream: OpenAI Chat Completions SSE on `POST /v1/chat/completions`, as fast as
//! hyper goes. Each request's last user message is a [`Spec`]; the reply is a role chunk, the
//! spec's tokens (each stamped with its send time, paced on an absolute schedule so timer jitter
//! never accumulates), a `finish_reason: "stop"` chunk and `data: [DONE]`.
//!
//! It runs as its own process so its CPU is measured apart from the load generator's, and it
//! stops by itself: when its standard input closes (the driver is gone) or after `--max-seconds`.

use crate::token::{push_token, unix_nanos, Spec};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpSocket;
use tokio::time::{Instant, Sleep};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on; port 0 picks a free one. The bound address is printed on stdout.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Stop after this long whatever happens.
    #[arg(long, default_value_t = 1800)]
    max_seconds: u64,
}

const CHUNK_HEAD: &str = r#"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"bench","choices":[{"index":0,"delta":{"content":""#;
const CHUNK_TAIL: &str = "\"},\"finish_reason\":null}]}\n\n";
const ROLE_CHUNK: &[u8] = b"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n";
const FINISH_CHUNK: &[u8] = b"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";

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
        tokio::spawn(async move {
            let service = hyper::service::service_fn(respond);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

type Reply = Response<http_body_util::Either<TokenBody, Full<Bytes>>>;

async fn respond(request: Request<Incoming>) -> Result<Reply, Infallible> {
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
    let mut response = Response::new(http_body_util::Either::Left(TokenBody::new(spec)));
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
}

impl TokenBody {
    fn new(spec: Spec) -> TokenBody {
        let start = Instant::now();
        TokenBody {
            spec,
            phase: Phase::Role,
            next: 0,
            start,
            interval: (spec.interval_us > 0).then(|| Duration::from_micros(spec.interval_us)),
            sleep: Box::pin(tokio::time::sleep_until(start)),
        }
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
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(FINISH_CHUNK)))))
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
    }

    #[tokio::test]
    async fn body_is_openai_sse_ending_with_done() {
        let spec = Spec {
            id: 1,
            tokens: 3,
            interval_us: 0,
        };
        let body = TokenBody::new(spec)
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
    }
}
