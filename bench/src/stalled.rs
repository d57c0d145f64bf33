//! Backpressure: N Deep Chat clients each send one message and then never read again, while the
//! mock upstream answers each with a long unpaced reply. A proxy that propagates backpressure
//! stops reading the upstream once the client's socket is full, so the mock's writes stall and
//! the proxy's memory stays flat; one that buffers grows by the reply's size per client.
//!
//! Measured: the proxy's RSS every 100 ms, the mock's own counters (bytes the kernel accepted
//! from it per stream, tokens it produced, whether each stream's connection is still open) every
//! second, and, after the clients close their sockets, how long until the mock sees every
//! upstream connection close. The checks are functional only: the mock's writes must stop
//! growing, far short of the reply, and every upstream connection must close within a bounded
//! wait after the clients leave.

use crate::client;
use crate::mock::StatsReply;
use crate::procfs;
use crate::token::Spec;
use bytes::Bytes;
use futures_util::SinkExt;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpSocket;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

/// Requested receive buffer of each stalled client (the kernel doubles it and applies its
/// minimum): the client's socket fills after a few kilobytes, so the stall bites at once.
const CLIENT_RCVBUF: u32 = 4096;

/// The segment size the clients and the mock announce: Ethernet's, not loopback's 64 KiB.
/// Linux sizes a socket's send buffer per segment (about 2 × congestion window × segment), so
/// with loopback's segments each stalled socket buffers megabytes in the kernel: 1,000 streams
/// would press on the machine-wide TCP memory limit, and no browser sits behind such a path.
pub const MSS: u32 = 1460;

/// The mock's send buffer per connection (the kernel doubles it). Auto-tuned, it grew to
/// 2–3 MiB per stalled stream; the upstream's own buffer says nothing about the proxy.
pub const MOCK_SNDBUF: u32 = 64 * 1024;

/// A stream "stopped growing" when no stream's written bytes grew by more than this over one
/// second. A proxy that buffers grows by megabytes per second per stream.
pub const PLATEAU_SLACK: u64 = 64 * 1024;

/// Beyond the hold, how long to wait for the mock's writes to stop growing.
const PLATEAU_EXTRA: Duration = Duration::from_secs(10);

/// After the clients close: how long the proxy gets to close every upstream connection.
pub const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// A stream must have produced less than this fraction of its reply at the end.
const MAX_SHARE_OF_REPLY: f64 = 0.25;

/// The mock's counters at one moment, condensed.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct MockSample {
    /// Seconds since every client had sent its message (negative: before).
    pub t_s: f64,
    pub found: usize,
    pub streaming: usize,
    pub finished: usize,
    pub cut: usize,
    pub written_min: u64,
    pub written_p50: u64,
    pub written_max: u64,
    pub written_sum: u64,
    pub tokens_p50: u32,
    pub tokens_max: u32,
    /// Largest growth of one stream's written bytes since the previous sample.
    pub grew_max: u64,
    /// Proxy RSS at the same moment.
    pub proxy_rss_kib: u64,
    /// Kernel queues at the same moment, summed over the streams.
    pub queues: Queues,
}

#[derive(Debug, Clone, Serialize)]
pub struct StalledResult {
    pub clients: usize,
    /// Tokens each reply would have if read to the end.
    pub tokens: u32,
    pub hold_s: f64,
    /// Clients that connected, completed the handshake and sent their message.
    pub connected: usize,
    /// Seconds to open every socket and send every message.
    pub connect_s: f64,
    pub rss_before_kib: u64,
    /// When every client had sent (t = 0).
    pub rss_start_kib: u64,
    pub rss_2s_kib: u64,
    /// At the end of the hold.
    pub rss_end_kib: u64,
    pub rss_peak_kib: u64,
    /// Least-squares slope of RSS over the last half of the hold.
    pub slope_kib_per_s: f64,
    /// Proxy CPU over the whole hold and over its last half.
    pub cpu_hold_s: f64,
    /// CPU seconds every other process used during the hold (other builds, …), and the hold's
    /// length including any wait for the plateau.
    pub other_cpu_s: f64,
    pub held_s: f64,
    pub cpu_last_half_s: f64,
    pub fds_held: usize,
    /// Kernel TCP buffer memory (machine-wide) at the end of the hold, KiB.
    pub kernel_tcp_kib: u64,
    /// Where the unread bytes sat at the end of the hold (kernel socket queues, summed).
    pub queues: Queues,
    /// Second at which no stream grew by more than [`PLATEAU_SLACK`] over one second.
    pub plateau_at_s: Option<f64>,
    /// Per second during the hold (and the plateau wait, if any).
    pub mock: Vec<MockSample>,
    /// Seconds from closing the clients until the mock saw every stream's connection close.
    pub upstream_closed_after_s: Option<f64>,
    /// Streams whose upstream connection was still open at the end of the wait.
    pub upstream_still_open: usize,
    /// One second after the upstream connections closed (or the wait ended), and three.
    pub rss_closed_kib: u64,
    pub rss_closed_3s_kib: u64,
    pub fds_closed: usize,
    /// (seconds since t = 0, KiB) every 100 ms, from t = 0 to the end.
    pub rss_series: Vec<(f64, u64)>,
    /// Second (since t = 0) at which the clients closed.
    pub closed_at_s: f64,
    /// Checks that failed.
    pub failures: Vec<String>,
}

/// The RSS of one process every 100 ms, until stopped (bounded: at most ten minutes).
struct Series {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<(f64, u64)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Series {
    fn start(pid: u32, zero: Instant) -> Series {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (s, out) = (stop.clone(), samples.clone());
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_millis(100));
            for _ in 0..6_000u32 {
                ticks.tick().await;
                if s.load(Ordering::Relaxed) {
                    break;
                }
                if let (Some(rss), Ok(mut out)) = (procfs::rss_kib(pid), out.lock()) {
                    out.push((zero.elapsed().as_secs_f64(), rss));
                }
            }
        });
        Series {
            stop,
            samples,
            task,
        }
    }

    fn snapshot(&self) -> Vec<(f64, u64)> {
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }

    async fn finish(self) -> Vec<(f64, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        let samples = self.samples;
        let _ = timeout(Duration::from_secs(2), self.task).await;
        let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
        samples
    }
}

/// Asks the mock for its counters of streams `first..first + count`.
pub(crate) async fn mock_stats(
    mock: SocketAddr,
    first: u64,
    count: usize,
) -> Result<StatsReply, String> {
    let query = async {
        let tcp = tokio::net::TcpStream::connect(mock)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("http: {e}"))?;
        let connection = tokio::spawn(connection);
        let request = Request::get(format!("/stats?first={first}&count={count}"))
            .header(hyper::header::HOST, mock.to_string())
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("request: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let body = Limited::new(response.into_body(), 64 << 20)
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        drop(sender);
        connection.abort();
        serde_json::from_slice::<StatsReply>(&body).map_err(|e| format!("stats: {e}"))
    };
    timeout(Duration::from_secs(5), query)
        .await
        .map_err(|_| "the mock's stats did not answer within 5 s".to_owned())?
}

fn condense(
    t_s: f64,
    reply: &StatsReply,
    previous: Option<&StatsReply>,
    rss: u64,
    queues: Queues,
) -> MockSample {
    let mut written = reply.written.clone();
    written.sort_unstable();
    let mut tokens = reply.tokens.clone();
    tokens.sort_unstable();
    let grew_max = match previous {
        Some(previous) if previous.written.len() == reply.written.len() => reply
            .written
            .iter()
            .zip(&previous.written)
            .map(|(now, before)| now.saturating_sub(*before))
            .max()
            .unwrap_or(0),
        // Streams appeared since: their whole count is growth.
        _ => written.last().copied().unwrap_or(0),
    };
    MockSample {
        t_s,
        found: reply.found,
        streaming: reply.streaming,
        finished: reply.finished,
        cut: reply.cut,
        written_min: written.first().copied().unwrap_or(0),
        written_p50: written.get(written.len() / 2).copied().unwrap_or(0),
        written_max: written.last().copied().unwrap_or(0),
        written_sum: written.iter().sum(),
        tokens_p50: tokens.get(tokens.len() / 2).copied().unwrap_or(0),
        tokens_max: tokens.last().copied().unwrap_or(0),
        grew_max,
        proxy_rss_kib: rss,
        queues,
    }
}

/// One client: connect with a small receive buffer, hand-shake, send one message, and return
/// the socket, which is then never read.
async fn stalled_client(
    addr: SocketAddr,
    spec: Spec,
) -> Option<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>> {
    let open = async {
        let socket = TcpSocket::new_v4().ok()?;
        socket.set_recv_buffer_size(CLIENT_RCVBUF).ok()?;
        socket2::SockRef::from(&socket).set_tcp_mss(MSS).ok()?;
        let tcp = socket.connect(addr).await.ok()?;
        let _ = tcp.set_nodelay(true);
        let url = format!("ws://{addr}/chat");
        let config = Some(client::client_config());
        let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, config)
            .await
            .ok()?;
        let request = serde_json::json!({"messages": [{"role": "user", "text": spec.prompt()}]});
        ws.send(Message::text(request.to_string())).await.ok()?;
        Some(ws)
    };
    timeout(Duration::from_secs(30), open).await.ok().flatten()
}

/// Least-squares slope (per second) of `(t, v)` samples; 0 with fewer than two.
fn slope(samples: &[(f64, u64)]) -> f64 {
    let n = samples.len() as f64;
    if samples.len() < 2 {
        return 0.0;
    }
    let mean_t = samples.iter().map(|s| s.0).sum::<f64>() / n;
    let mean_v = samples.iter().map(|s| s.1 as f64).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for &(t, v) in samples {
        num += (t - mean_t) * (v as f64 - mean_v);
        den += (t - mean_t) * (t - mean_t);
    }
    if den > 0.0 {
        num / den
    } else {
        0.0
    }
}

/// The sample nearest to `t` (RSS in KiB), or 0.
fn rss_at(series: &[(f64, u64)], t: f64) -> u64 {
    series
        .iter()
        .min_by(|a, b| (a.0 - t).abs().total_cmp(&(b.0 - t).abs()))
        .map_or(0, |s| s.1)
}

/// Bytes queued in the kernel on each hop at one moment, summed over the scenario's sockets
/// (from /proc/net/tcp: `tx_queue` = sent but not yet acknowledged by the peer, unsent
/// included; `rx_queue` = received but not yet read by the application).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Queues {
    /// Mock → proxy: not yet taken by the proxy's socket (the mock's send queues).
    pub mock_tx: u64,
    /// In the proxy's upstream sockets, not yet read by the proxy.
    pub proxy_upstream_rx: u64,
    /// Proxy → clients: in the proxy's client sockets, not yet taken by the clients' sockets.
    pub proxy_client_tx: u64,
    /// In the clients' sockets, never read.
    pub client_rx: u64,
}

fn queues(proxy_port: u16, mock_port: u16) -> Queues {
    let mut q = Queues::default();
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return q;
    };
    let port = |address: &str| {
        address
            .rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(remote), Some(state), Some(queue)) =
            (fields.get(1), fields.get(2), fields.get(3), fields.get(4))
        else {
            continue;
        };
        if *state != "01" {
            continue; // ESTABLISHED only
        }
        let Some((tx, rx)) = queue.split_once(':') else {
            continue;
        };
        let tx = u64::from_str_radix(tx, 16).unwrap_or(0);
        let rx = u64::from_str_radix(rx, 16).unwrap_or(0);
        match (port(local), port(remote)) {
            (Some(l), _) if l == mock_port => q.mock_tx += tx,
            (_, Some(r)) if r == mock_port => q.proxy_upstream_rx += rx,
            (Some(l), _) if l == proxy_port => q.proxy_client_tx += tx,
            (_, Some(r)) if r == proxy_port => q.client_rx += rx,
            _ => {}
        }
    }
    q
}

/// The machine's TCP memory pressure threshold in KiB (`tcp_mem`'s middle value), if known.
fn tcp_pressure_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_mem")
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()
        .map(|pages| pages * 4)
}

/// Kernel TCP buffer memory in KiB (`/proc/net/sockstat`, `TCP: … mem PAGES`).
fn kernel_tcp_kib() -> u64 {
    std::fs::read_to_string("/proc/net/sockstat")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("TCP:"))?;
            let mut words = line.split_whitespace();
            words.find(|w| *w == "mem")?;
            words.next()?.parse::<u64>().ok()
        })
        .map_or(0, |pages| pages * 4)
}

#[allow(clippy::too_many_arguments)]
pub async fn run(
    proxy: SocketAddr,
    proxy_pid: u32,
    mock: SocketAddr,
    mock_pid: u32,
    clients: usize,
    tokens: u32,
    hold: Duration,
    first_id: u64,
) -> StalledResult {
    let mut failures = Vec::new();
    let rss_before = procfs::rss_kib(proxy_pid).unwrap_or(0);

    // Open the sockets in batches of 500, each sending its message as soon as it is open.
    let connect_started = Instant::now();
    let mut open = Vec::with_capacity(clients);
    let mut next = 0usize;
    while next < clients {
        let batch = (clients - next).min(500);
        let mut handles = Vec::with_capacity(batch);
        for i in next..next + batch {
            let spec = Spec {
                id: first_id + i as u64,
                tokens,
                interval_us: 0,
            };
            handles.push(tokio::spawn(stalled_client(proxy, spec)));
        }
        next += batch;
        for handle in handles {
            if let Ok(Some(ws)) = handle.await {
                open.push(ws);
            }
        }
    }
    let connect_s = connect_started.elapsed().as_secs_f64();
    let connected = open.len();
    if connected < clients {
        failures.push(format!(
            "only {connected} of {clients} clients connected and sent their message"
        ));
    }

    // t = 0: every client has sent. Hold the sockets without reading them.
    let zero = Instant::now();
    let rss_start = procfs::rss_kib(proxy_pid).unwrap_or(0);
    let series = Series::start(proxy_pid, zero);
    let cpu_zero = procfs::cpu(proxy_pid).unwrap_or_default();
    let mock_zero = procfs::cpu(mock_pid).unwrap_or_default();
    let me_zero = procfs::cpu(std::process::id()).unwrap_or_default();
    let machine_zero = procfs::machine_cpu().unwrap_or_default();
    let mut cpu_half = cpu_zero;
    let mut samples: Vec<MockSample> = Vec::new();
    let mut previous: Option<StatsReply> = None;
    let mut plateau_at = None;
    let mut last_reply = None;
    let hold_end = zero + hold;
    let give_up = hold_end + PLATEAU_EXTRA;
    let mut second = 1u32;
    loop {
        let at = zero + Duration::from_secs(u64::from(second));
        tokio::time::sleep_until(at.into()).await;
        if u64::from(second) == hold.as_secs() / 2 {
            cpu_half = procfs::cpu(proxy_pid).unwrap_or_default();
        }
        let rss = procfs::rss_kib(proxy_pid).unwrap_or(0);
        let now_queues = queues(proxy.port(), mock.port());
        match mock_stats(mock, first_id, clients).await {
            Ok(reply) => {
                let sample = condense(
                    f64::from(second),
                    &reply,
                    previous.as_ref(),
                    rss,
                    now_queues,
                );
                let stopped = previous.is_some()
                    && sample.found == connected
                    && sample.grew_max <= PLATEAU_SLACK;
                if stopped && plateau_at.is_none() {
                    plateau_at = Some(f64::from(second));
                } else if !stopped {
                    plateau_at = None;
                }
                samples.push(sample);
                previous = Some(reply.clone());
                last_reply = Some(reply);
            }
            Err(err) => {
                failures.push(format!("mock stats at {second} s: {err}"));
                break;
            }
        }
        second += 1;
        // The kernel's TCP memory is shared by the whole machine: never push it into pressure.
        if let Some(limit) = tcp_pressure_kib() {
            let used = kernel_tcp_kib();
            if used * 10 > limit * 9 {
                failures.push(format!(
                    "stopped early at {} s: kernel TCP memory {used} KiB reached 90 % of the machine's pressure threshold",
                    second - 1
                ));
                break;
            }
        }
        let now = Instant::now();
        // Hold for the whole period; beyond it, only until the writes have stopped growing.
        if now >= give_up || (now >= hold_end && plateau_at.is_some()) {
            break;
        }
    }
    let cpu_end = procfs::cpu(proxy_pid).unwrap_or_default();
    let held_s = zero.elapsed().as_secs_f64();
    let others = {
        let machine = procfs::machine_cpu().unwrap_or_default();
        let mock = procfs::cpu(mock_pid).unwrap_or_default().since(mock_zero);
        let me = procfs::cpu(std::process::id())
            .unwrap_or_default()
            .since(me_zero);
        (machine.processes
            - machine_zero.processes
            - mock.total()
            - me.total()
            - cpu_end.since(cpu_zero).total())
        .max(0.0)
    };
    let fds_held = procfs::open_fds(proxy_pid).unwrap_or(0);
    let kernel_tcp = kernel_tcp_kib();
    let queues = queues(proxy.port(), mock.port());
    let held = series.snapshot();

    if let Some(reply) = &last_reply {
        if reply.found < connected {
            failures.push(format!(
                "the mock saw only {} of the {connected} streams",
                reply.found
            ));
        }
        if reply.finished > 0 {
            failures.push(format!(
                "{} streams were produced to the end: nothing held the upstream back",
                reply.finished
            ));
        }
        let limit = (f64::from(tokens) * MAX_SHARE_OF_REPLY) as u32;
        let over = reply.tokens.iter().filter(|&&t| t >= limit).count();
        if over > 0 {
            failures.push(format!(
                "{over} streams got {limit} or more of their {tokens} tokens out of the mock while their client read nothing"
            ));
        }
    }
    if plateau_at.is_none() {
        let grew = samples.last().map_or(0, |s| s.grew_max);
        failures.push(format!(
            "the mock's writes never stopped growing: still {grew} bytes per second on one stream after {:.0} s",
            zero.elapsed().as_secs_f64()
        ));
    }

    // The clients leave: their sockets close (with unread data, so the kernel resets them).
    let closed_at = zero.elapsed().as_secs_f64();
    let closing = Instant::now();
    drop(open);
    let mut upstream_closed_after = None;
    let mut still_open = connected;
    while closing.elapsed() < CLOSE_WAIT {
        tokio::time::sleep(Duration::from_millis(100)).await;
        match mock_stats(mock, first_id, clients).await {
            Ok(reply) => {
                still_open = reply.streaming;
                if reply.streaming == 0 {
                    upstream_closed_after = Some(closing.elapsed().as_secs_f64());
                    break;
                }
            }
            Err(err) => {
                failures.push(format!("mock stats after closing: {err}"));
                break;
            }
        }
    }
    if still_open > 0 {
        failures.push(format!(
            "{still_open} upstream connections still open {} s after their clients closed",
            CLOSE_WAIT.as_secs()
        ));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_closed = procfs::rss_kib(proxy_pid).unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_closed_3s = procfs::rss_kib(proxy_pid).unwrap_or(0);
    let fds_closed = procfs::open_fds(proxy_pid).unwrap_or(0);
    let rss_series = series.finish().await;

    let hold_s = hold.as_secs_f64();
    let last_half: Vec<(f64, u64)> = held
        .iter()
        .copied()
        .filter(|s| s.0 >= hold_s / 2.0 && s.0 <= hold_s)
        .collect();
    StalledResult {
        clients,
        tokens,
        hold_s,
        connected,
        connect_s,
        rss_before_kib: rss_before,
        rss_start_kib: rss_start,
        rss_2s_kib: rss_at(&held, 2.0),
        rss_end_kib: rss_at(&held, hold_s),
        rss_peak_kib: held.iter().map(|s| s.1).max().unwrap_or(0),
        slope_kib_per_s: slope(&last_half),
        cpu_hold_s: cpu_end.since(cpu_zero).total(),
        cpu_last_half_s: cpu_end.since(cpu_half).total(),
        other_cpu_s: others,
        held_s,
        fds_held,
        kernel_tcp_kib: kernel_tcp,
        queues,
        plateau_at_s: plateau_at,
        mock: samples,
        upstream_closed_after_s: upstream_closed_after,
        upstream_still_open: still_open,
        rss_closed_kib: rss_closed,
        rss_closed_3s_kib: rss_closed_3s,
        fds_closed,
        rss_series,
        closed_at_s: closed_at,
        failures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line_and_of_a_flat_series() {
        let line: Vec<(f64, u64)> = (0..10)
            .map(|i| (f64::from(i) * 0.1, 100 + 5 * i as u64))
            .collect();
        assert!((slope(&line) - 50.0).abs() < 1e-9);
        let flat: Vec<(f64, u64)> = (0..10).map(|i| (f64::from(i), 7)).collect();
        assert_eq!(slope(&flat), 0.0);
        assert_eq!(slope(&[]), 0.0);
    }

    #[test]
    fn growth_is_per_stream() {
        let before = StatsReply {
            found: 2,
            streaming: 2,
            written: vec![100, 5_000],
            tokens: vec![1, 2],
            ..StatsReply::default()
        };
        let after = StatsReply {
            written: vec![300, 5_000],
            ..before.clone()
        };
        let sample = condense(1.0, &after, Some(&before), 0, Queues::default());
        assert_eq!(sample.grew_max, 200);
        assert_eq!((sample.written_min, sample.written_max), (300, 5_000));
        assert_eq!(sample.written_sum, 5_300);
    }
}
