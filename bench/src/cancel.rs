//! Cancel latency: streaming replies whose clients leave mid-stream, and how long until the
//! upstream connection closes, as the mock sees it. Three ways to leave: a WebSocket close
//! frame, a TCP reset (SO_LINGER 0, then drop the socket), and an SSE client aborting (the
//! connection closed, as a browser's `fetch` abort does). The floor: SSE clients reading the
//! mock directly that close the same way, so what the mock itself takes to notice is known.
//!
//! Timing: the client stamps CLOCK_MONOTONIC just before it closes; the mock stamps it when
//! hyper is done with the connection (`clock`: one system-wide clock, so stamps taken in the
//! two processes compare). Every client must have read a correct first part of its reply, and
//! every upstream connection must close (within [`CLOSE_WAIT`]) before its reply was produced
//! to the end.

use crate::client::{open_and_ask, LIMITS};
use crate::clock::monotonic_nanos;
use crate::deepchat_http::{mock_sse_request, proxy_sse_request, read_deepchat_sse, Conn};
use crate::driver::summarize_failures;
use crate::stalled::mock_stats;
use crate::stats::Pct;
use crate::token::{unix_nanos, Checker, Spec};
use futures_util::StreamExt;
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

/// Tokens each reply would have: far more than are read before leaving.
pub const REPLY_TOKENS: u32 = 500;
/// Tokens read before leaving.
pub const READ_BEFORE_CLOSE: u32 = 10;
/// Pace of the replies: 50 tokens/s, so a client leaves about 0.2 s in.
pub const INTERVAL_US: u64 = 20_000;
/// After the last client left, how long every upstream connection gets to close.
pub const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// How a client leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CloseKind {
    /// WebSocket close frame (then the socket closes normally).
    WsClose,
    /// TCP reset: SO_LINGER 0 and drop the WebSocket's socket.
    Reset,
    /// SSE: the client closes the connection mid-response.
    SseAbort,
}

/// One phase: N clients that leave mid-reply.
#[derive(Debug, Clone, Serialize)]
pub struct CancelPhase {
    pub streams: usize,
    /// Clients whose close reached the upstream, timed.
    pub measured: usize,
    /// Client's close → the mock sees the upstream connection close.
    pub latency: Pct,
    pub failures: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CancelResult {
    pub close: CloseKind,
    pub streams: usize,
    /// Direct SSE clients that close their connection: the mock's own noticing.
    pub direct: CancelPhase,
    pub proxy: CancelPhase,
}

impl CancelResult {
    /// Streams not measured (failed, or their upstream never closed).
    pub fn failed(&self) -> usize {
        (self.direct.streams - self.direct.measured) + (self.proxy.streams - self.proxy.measured)
    }
}

/// Where a phase's clients go.
#[derive(Debug, Clone, Copy)]
pub enum CancelTarget {
    Mock(SocketAddr),
    Proxy(SocketAddr, CloseKind),
}

fn spec(id: u64) -> Spec {
    Spec {
        id,
        tokens: REPLY_TOKENS,
        interval_us: INTERVAL_US,
    }
}

/// One phase: `streams` clients started over `ramp`, ids from `first_id`.
pub async fn run_phase(
    target: CancelTarget,
    mock: SocketAddr,
    streams: usize,
    ramp: Duration,
    first_id: u64,
) -> CancelPhase {
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let mut tasks = Vec::with_capacity(streams);
    for i in 0..streams {
        let offset = ramp.mul_f64(i as f64 / streams.max(1) as f64);
        let spec = spec(first_id + i as u64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(start + offset).await;
            let bound = LIMITS.connect + LIMITS.read + Duration::from_secs(5);
            match timeout(bound, leave_mid_reply(target, spec)).await {
                Ok(outcome) => outcome.map(|stamp| (spec.id, stamp)),
                Err(_) => Err(format!("not done within {bound:?}")),
            }
        }));
    }
    let mut closed_at: HashMap<u64, u64> = HashMap::new();
    let mut failures = Vec::new();
    for task in tasks {
        match task.await {
            Ok(Ok((id, stamp))) => {
                closed_at.insert(id, stamp);
            }
            Ok(Err(why)) => failures.push(why),
            Err(err) => failures.push(format!("client task failed: {err}")),
        }
    }
    // Wait until the mock has seen every upstream connection of this phase close.
    let deadline = Instant::now() + CLOSE_WAIT;
    let mut last = None;
    loop {
        match mock_stats(mock, first_id, streams).await {
            Ok(reply) => {
                let open = reply
                    .ids
                    .iter()
                    .zip(&reply.closed_at_ns)
                    .filter(|(id, at)| closed_at.contains_key(id) && **at == 0)
                    .count();
                let done = open == 0 && reply.found >= closed_at.len();
                last = Some(reply);
                if done {
                    break;
                }
            }
            Err(why) => failures.push(why),
        }
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut latencies = Vec::with_capacity(closed_at.len());
    if let Some(reply) = last {
        for (i, id) in reply.ids.iter().enumerate() {
            let Some(&client_ns) = closed_at.get(id) else {
                continue;
            };
            let upstream_ns = reply.closed_at_ns.get(i).copied().unwrap_or(0);
            let tokens = reply.tokens.get(i).copied().unwrap_or(0);
            if upstream_ns == 0 {
                failures.push(format!(
                    "upstream still open {} s after the client left",
                    CLOSE_WAIT.as_secs()
                ));
            } else if tokens >= REPLY_TOKENS {
                failures.push("the upstream produced the whole reply".into());
            } else {
                latencies.push(upstream_ns as i64 - client_ns as i64);
            }
        }
    } else {
        failures.push("the mock's stats never answered".into());
    }
    CancelPhase {
        streams,
        measured: latencies.len(),
        latency: Pct::of_ns(latencies),
        failures: summarize_failures(failures),
    }
}

/// One client: ask, read [`READ_BEFORE_CLOSE`] correct tokens, leave; returns the
/// CLOCK_MONOTONIC stamp taken just before leaving.
async fn leave_mid_reply(target: CancelTarget, spec: Spec) -> Result<u64, String> {
    match target {
        CancelTarget::Proxy(addr, kind @ (CloseKind::WsClose | CloseKind::Reset)) => {
            leave_websocket(addr, spec, kind).await
        }
        CancelTarget::Proxy(addr, CloseKind::SseAbort) => {
            let mut conn = Conn::open(addr, LIMITS).await?;
            let mut body = ask(&mut conn, proxy_sse_request(addr, &spec)).await?;
            let mut checker = Checker::new(spec);
            read_deepchat_sse(
                &mut conn,
                &mut body,
                &mut checker,
                LIMITS,
                Some(READ_BEFORE_CLOSE),
            )
            .await?;
            enough(&checker)?;
            let stamp = monotonic_nanos();
            drop(body);
            drop(conn);
            Ok(stamp)
        }
        CancelTarget::Mock(addr) => {
            let mut conn = Conn::open(addr, LIMITS).await?;
            let mut body = ask(&mut conn, mock_sse_request(addr, &spec)).await?;
            let mut checker = Checker::new(spec);
            read_completion_chunks(&mut conn, &mut body, &mut checker).await?;
            let stamp = monotonic_nanos();
            drop(body);
            drop(conn);
            Ok(stamp)
        }
    }
}

async fn ask(
    conn: &mut Conn,
    request: hyper::Request<http_body_util::Full<bytes::Bytes>>,
) -> Result<Incoming, String> {
    let sending = timeout(LIMITS.read, conn.sender.send_request(request));
    match conn.drive(sending).await? {
        Ok(Ok(response)) if response.status().is_success() => Ok(response.into_body()),
        Ok(Ok(response)) => Err(format!("HTTP {}", response.status())),
        Ok(Err(err)) => Err(format!("send: {err}")),
        Err(_) => Err("no response headers".into()),
    }
}

/// The part read must be correct and long enough.
fn enough(checker: &Checker) -> Result<(), String> {
    if checker.has_failed() {
        return Err(checker.verdict().err().unwrap_or_default());
    }
    if checker.tokens() < READ_BEFORE_CLOSE {
        return Err(format!(
            "reply ended after {} tokens, before the client left",
            checker.tokens()
        ));
    }
    Ok(())
}

async fn leave_websocket(addr: SocketAddr, spec: Spec, kind: CloseKind) -> Result<u64, String> {
    let url = format!("ws://{addr}/chat");
    let (mut ws, _, _) = open_and_ask(addr, &url, &spec, LIMITS, Instant::now())
        .await
        .map_err(|failed| failed.verdict.err().unwrap_or_default())?;
    let mut checker = Checker::new(spec);
    while checker.tokens() < READ_BEFORE_CLOSE && !checker.has_failed() {
        let message = match timeout(LIMITS.read, ws.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(err))) => return Err(format!("read: {err}")),
            Ok(None) => return Err("socket closed before the client left".into()),
            Err(_) => return Err(format!("no frame within {:?}", LIMITS.read)),
        };
        let Message::Text(text) = message else {
            continue;
        };
        let frame: serde_json::Value = serde_json::from_str(text.as_str())
            .map_err(|_| format!("not JSON: {}", crate::client::truncate(text.as_str())))?;
        match frame.get("text").and_then(serde_json::Value::as_str) {
            Some(text) => checker.feed(text, unix_nanos(), Instant::now()),
            None => {
                return Err(format!(
                    "unexpected frame: {}",
                    crate::client::truncate(text.as_str())
                ))
            }
        }
    }
    enough(&checker)?;
    match kind {
        CloseKind::Reset => {
            // An abortive close: the kernel sends RST instead of FIN when the socket goes.
            socket2::SockRef::from(ws.get_ref())
                .set_linger(Some(Duration::ZERO))
                .map_err(|e| format!("SO_LINGER: {e}"))?;
            let stamp = monotonic_nanos();
            drop(ws);
            Ok(stamp)
        }
        _ => {
            let stamp = monotonic_nanos();
            let _ = timeout(Duration::from_secs(2), ws.close(None)).await;
            // Read until the proxy's close frame and the end of the socket, briefly.
            let _ = timeout(Duration::from_secs(2), async {
                while let Some(Ok(_)) = ws.next().await {}
            })
            .await;
            Ok(stamp)
        }
    }
}

/// Reads the mock's OpenAI SSE chunks until [`READ_BEFORE_CLOSE`] tokens arrived.
async fn read_completion_chunks(
    conn: &mut Conn,
    body: &mut Incoming,
    checker: &mut Checker,
) -> Result<(), String> {
    use http_body_util::BodyExt;
    let mut splitter = crate::deepchat_http::SseSplitter::default();
    while checker.tokens() < READ_BEFORE_CLOSE {
        let frame = match conn.drive(timeout(LIMITS.read, body.frame())).await? {
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(err))) => return Err(format!("read: {err}")),
            Ok(None) => return Err("reply ended before the client left".into()),
            Err(_) => return Err(format!("no data within {:?}", LIMITS.read)),
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        for payload in splitter.push(&data) {
            if payload == b"[DONE]" {
                return Err("reply ended before the client left".into());
            }
            let chunk: serde_json::Value =
                serde_json::from_slice(&payload).map_err(|_| "unreadable SSE chunk".to_owned())?;
            if let Some(text) = chunk["choices"][0]["delta"]["content"].as_str() {
                checker.feed(text, unix_nanos(), Instant::now());
            }
        }
    }
    enough(checker)
}
