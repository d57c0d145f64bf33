//! Connection churn: new conversations at a fixed arrival rate, each on a new connection that
//! asks one short question, reads the reply and leaves: a WebSocket (handshake, one message,
//! the reply, close) or an SSE `POST` through the proxy, and direct an SSE request to the mock
//! on a new connection (the floor: TCP connect and one streamed reply). Open-loop like
//! `openloop`: conversations start on schedule whether or not earlier ones finished.

use crate::arrivals::{self, Arrival};
use crate::client::{self, StreamResult, LIMITS};
use crate::deepchat_http::sse_via_proxy;
use crate::driver::summarize_failures;
use crate::meter::Meter;
use crate::openloop::nanos;
use crate::results::RatePhase;
use crate::stats::Pct;
use crate::token::Spec;
use serde::Serialize;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::time::timeout;

/// Tokens in each reply: a short one.
pub const REPLY_TOKENS: u32 = 5;

/// A conversation not over within this is lost.
const CONVERSATION_LIMIT: Duration = Duration::from_secs(30);

/// How the conversations come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Deep Chat WebSocket through the proxy.
    Ws,
    /// Deep Chat SSE (`POST`, `Accept: text/event-stream`) through the proxy.
    Sse,
}

#[derive(Debug, Clone, Copy)]
pub enum ChurnTarget {
    /// SSE straight from the mock, a new connection each.
    Direct(SocketAddr),
    Proxy(SocketAddr, Transport),
}

async fn conversation(target: ChurnTarget, spec: Spec) -> StreamResult {
    match target {
        ChurnTarget::Direct(addr) => client::direct(addr, spec, LIMITS).await,
        ChurnTarget::Proxy(addr, Transport::Ws) => {
            client::via_proxy(addr, "/chat", spec, LIMITS).await
        }
        ChurnTarget::Proxy(addr, Transport::Sse) => sse_via_proxy(addr, spec, LIMITS).await,
    }
}

/// One phase: `rate` new conversations/s for `seconds`, ids from `first_id`.
pub async fn run_phase(
    target: ChurnTarget,
    rate: u32,
    seconds: f64,
    first_id: u64,
    mock_pid: u32,
    proxy_pid: Option<u32>,
) -> RatePhase {
    let count = (f64::from(rate) * seconds).round() as usize;
    // Warm-up, not counted: lazy setup and the proxy's first upstream connections.
    for i in 0..4 {
        let result = conversation(target, spec(first_id + count as u64 + i)).await;
        if let Err(why) = result.verdict {
            eprintln!("bench: warm-up conversation failed: {why}");
        }
    }
    let meter = Meter::start(proxy_pid, mock_pid);
    let started = Instant::now();
    let done = arrivals::run(rate, count, |arrival: Arrival| {
        let spec = spec(first_id + arrival.index as u64);
        async move {
            let result = match timeout(CONVERSATION_LIMIT, conversation(target, spec)).await {
                Ok(result) => result,
                Err(_) => StreamResult::gave_up(
                    Instant::now(),
                    format!("not done within {CONVERSATION_LIMIT:?}"),
                ),
            };
            let latency = result.finished.saturating_duration_since(arrival.due);
            (result, latency)
        }
    })
    .await;
    let wall_s = started.elapsed().as_secs_f64();
    let cpu = meter.finish();
    let (mut failures, mut latencies, mut late) = (Vec::new(), Vec::new(), Vec::new());
    let (mut connects, mut ttfts) = (Vec::new(), Vec::new());
    let mut ok = 0;
    for arrival in done {
        late.push(nanos(arrival.late));
        let Some((result, latency)) = arrival.value else {
            failures.push("conversation task failed".to_owned());
            continue;
        };
        match result.verdict {
            Ok(()) => {
                ok += 1;
                latencies.push(nanos(latency));
                connects.push(nanos(result.connect));
                if let Some(ttft) = result.ttft {
                    ttfts.push(nanos(ttft));
                }
            }
            Err(why) => failures.push(why),
        }
    }
    RatePhase {
        arrivals: count,
        ok,
        failures: summarize_failures(failures),
        latency: Pct::of_ns(latencies),
        late: Pct::of_ns(late),
        connect: Pct::of_ns(connects),
        first_token: Pct::of_ns(ttfts),
        connections: 0,
        wall_s,
        cpu,
    }
}

fn spec(id: u64) -> Spec {
    Spec {
        id,
        tokens: REPLY_TOKENS,
        interval_us: 0,
    }
}
