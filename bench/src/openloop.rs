//! Plain JSON mode at a fixed arrival rate (the way LLM gateways publish their overhead:
//! vegeta against a mock provider, non-streaming). Requests go out on the open-loop schedule of
//! `arrivals`, over a pool of keep-alive connections sized for the rate; a request that finds
//! every connection busy waits for one, and that wait counts in its latency (measured from its
//! due time). Direct, each is a non-streamed `chat.completion` from the mock; through the
//! proxy, a Deep Chat `POST /chat` answered with one `{"text"}` (the proxy itself always
//! streams from the upstream and assembles the answer). Every answer is checked token by token.

use crate::arrivals::{self, Arrival};
use crate::deepchat_http::{check_answer, mock_json_request, proxy_json_request, Answer};
use crate::driver::summarize_failures;
use crate::meter::Meter;
use crate::results::RatePhase;
use crate::stats::Pct;
use crate::token::Spec;
use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::time::timeout;

/// Tokens in each answer: a short completion.
pub const ANSWER_TOKENS: u32 = 8;

/// A request not answered within this is an error.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);

/// Keep-alive connections for `rate` requests/s: one per 50 requests/s (at the 1–2 ms a
/// request may take under load, a few times what the rate needs), at least 8.
pub fn pool_size(rate: u32) -> usize {
    (rate as usize / 50).max(8)
}

/// Where the requests go.
#[derive(Debug, Clone, Copy)]
pub enum JsonTarget {
    Mock(SocketAddr),
    Proxy(SocketAddr),
}

impl JsonTarget {
    fn addr(self) -> SocketAddr {
        match self {
            JsonTarget::Mock(addr) | JsonTarget::Proxy(addr) => addr,
        }
    }

    fn request(self, spec: &Spec) -> hyper::Request<Full<Bytes>> {
        match self {
            JsonTarget::Mock(addr) => mock_json_request(addr, spec),
            JsonTarget::Proxy(addr) => proxy_json_request(addr, spec),
        }
    }

    fn answer(self) -> Answer {
        match self {
            JsonTarget::Mock(_) => Answer::Completion,
            JsonTarget::Proxy(_) => Answer::DeepChat,
        }
    }
}

type Sender = http1::SendRequest<Full<Bytes>>;

/// Keep-alive connections, each used by one request at a time.
struct Pool {
    addr: SocketAddr,
    idle: Mutex<Vec<Sender>>,
    /// One permit per connection: a request holds one while it uses a connection.
    permits: Semaphore,
}

impl Pool {
    async fn open(addr: SocketAddr, size: usize) -> Result<Pool, String> {
        let mut idle = Vec::with_capacity(size);
        for _ in 0..size {
            idle.push(connect(addr).await?);
        }
        Ok(Pool {
            addr,
            idle: Mutex::new(idle),
            permits: Semaphore::new(size),
        })
    }

    /// One request on a pooled connection (a new one replaces a connection that failed).
    async fn ask(&self, target: JsonTarget, spec: Spec) -> Result<(), String> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| "pool closed".to_owned())?;
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut sender = match pooled {
            Some(sender) => sender,
            None => connect(self.addr).await?,
        };
        sender
            .ready()
            .await
            .map_err(|e| format!("connection: {e}"))?;
        let response = sender
            .send_request(target.request(&spec))
            .await
            .map_err(|e| format!("request: {e}"))?;
        check_answer(response, target.answer(), spec).await?;
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(sender);
        }
        Ok(())
    }
}

async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let tcp = crate::client::connect_tcp(addr, Duration::from_secs(10)).await?;
    let (sender, connection) =
        timeout(Duration::from_secs(10), http1::handshake(TokioIo::new(tcp)))
            .await
            .map_err(|_| "http handshake timed out".to_owned())?
            .map_err(|e| format!("http: {e}"))?;
    // Ends when the pool drops its sender.
    tokio::spawn(connection);
    Ok(sender)
}

/// One phase: `rate` requests/s for `seconds` against `target`, ids from `first_id`.
pub async fn run_phase(
    target: JsonTarget,
    rate: u32,
    seconds: f64,
    first_id: u64,
    mock_pid: u32,
    proxy_pid: Option<u32>,
) -> RatePhase {
    let count = (f64::from(rate) * seconds).round() as usize;
    let connections = pool_size(rate);
    let pool = match Pool::open(target.addr(), connections).await {
        Ok(pool) => Arc::new(pool),
        Err(why) => return RatePhase::failed(count, format!("pool: {why}")),
    };
    // Warm-up, not counted: every connection once, so lazy setup is done.
    let warm_up: Vec<_> = (0..connections)
        .map(|i| {
            let pool = pool.clone();
            let spec = spec(first_id + count as u64 + i as u64);
            tokio::spawn(async move { timeout(REQUEST_LIMIT, pool.ask(target, spec)).await })
        })
        .collect();
    for task in warm_up {
        if !matches!(task.await, Ok(Ok(Ok(())))) {
            eprintln!("bench: a warm-up request failed");
        }
    }
    let meter = Meter::start(proxy_pid, mock_pid);
    let started = Instant::now();
    let done = arrivals::run(rate, count, |arrival: Arrival| {
        let pool = pool.clone();
        let spec = spec(first_id + arrival.index as u64);
        async move {
            let outcome = match timeout(REQUEST_LIMIT, pool.ask(target, spec)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!("no answer within {REQUEST_LIMIT:?}")),
            };
            (outcome, arrival.due.elapsed())
        }
    })
    .await;
    let wall_s = started.elapsed().as_secs_f64();
    let cpu = meter.finish();
    let mut failures = Vec::new();
    let mut latencies = Vec::with_capacity(done.len());
    let mut late = Vec::with_capacity(done.len());
    let mut ok = 0;
    for arrival in done {
        late.push(nanos(arrival.late));
        match arrival.value {
            Some((Ok(()), latency)) => {
                ok += 1;
                latencies.push(nanos(latency));
            }
            Some((Err(why), _)) => failures.push(why),
            None => failures.push("request task failed".into()),
        }
    }
    RatePhase {
        arrivals: count,
        ok,
        failures: summarize_failures(failures),
        latency: Pct::of_ns(latencies),
        late: Pct::of_ns(late),
        connect: Pct::of_ns(Vec::new()),
        first_token: Pct::of_ns(Vec::new()),
        connections,
        wall_s,
        cpu,
    }
}

fn spec(id: u64) -> Spec {
    Spec {
        id,
        tokens: ANSWER_TOKENS,
        interval_us: 0,
    }
}

pub(crate) fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}
