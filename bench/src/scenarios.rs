//! The benchmark's scenarios: how many streams, how many tokens at what rate, how they start,
//! and the smoke and full matrices built from them.

use crate::cancel::CloseKind;
use crate::churn::Transport;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A few streams of each kind: seconds; fails on any incomplete or wrong reply.
    Smoke,
    /// The published matrix: 1, 100, 1,000 and 10,000 streams, steady and burst, idle sockets.
    Full,
}

/// How streams start.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// Connects spread evenly over the ramp: token emission is spread evenly in time.
    Steady { ramp_ms: u64 },
    /// Every client connects at the same instant and sends as soon as it is connected.
    Burst,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Kind {
    /// Open WebSockets that never send: memory per idle socket.
    Idle { sockets: usize },
    /// Clients that send one message and never read, against long unpaced replies: the proxy
    /// must stop reading the upstream instead of buffering (backpressure).
    Stalled {
        clients: usize,
        /// Tokens each reply would have (unpaced), far more than the sockets can hold.
        tokens: u32,
        /// Seconds the sockets are held unread.
        hold_s: u64,
    },
    Streams {
        streams: usize,
        tokens: u32,
        /// Tokens per second per stream; 0 = as fast as the connection goes.
        rate: u32,
        shape: Shape,
    },
    /// Plain JSON mode at a fixed arrival rate (open loop), over keep-alive connections.
    Json { rate: u32, seconds: u32 },
    /// Streaming replies whose clients leave mid-stream: close to upstream-closed latency.
    Cancel {
        streams: usize,
        close: CloseKind,
        /// Clients start spread over this.
        ramp_ms: u64,
    },
    /// New connections at a fixed rate, each one short conversation.
    Churn {
        transport: Transport,
        rate: u32,
        seconds: u32,
    },
    /// Fresh proxy processes, each asked at once.
    Cold { starts: usize },
}

#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub name: String,
    pub kind: Kind,
    /// The proxy runs with `--upstream-http2`: streams share h2c connections to the mock (up
    /// to `--upstream-streams-per-connection` each) instead of holding a socket each.
    pub upstream_http2: bool,
    /// Clients connect with `?reply=overwrite`: every frame resends the text so far, and the
    /// report shows frames and wire bytes per reply.
    pub overwrite: bool,
}

impl Scenario {
    /// The same scenario over HTTP/2 to the upstream, named `h2-<name>`.
    fn over_http2(mut self) -> Scenario {
        self.name = format!("h2-{}", self.name);
        self.upstream_http2 = true;
        self
    }
}

fn streams(name: &str, streams: usize, tokens: u32, rate: u32, shape: Shape) -> Scenario {
    Scenario {
        name: name.to_owned(),
        kind: Kind::Streams {
            streams,
            tokens,
            rate,
            shape,
        },
        upstream_http2: false,
        overwrite: false,
    }
}

/// Streams whose clients read the reply in overwrite mode.
fn overwrite(name: &str, count: usize, tokens: u32, rate: u32, shape: Shape) -> Scenario {
    Scenario {
        overwrite: true,
        ..streams(name, count, tokens, rate, shape)
    }
}

fn idle(name: &str, sockets: usize) -> Scenario {
    Scenario {
        name: name.to_owned(),
        kind: Kind::Idle { sockets },
        upstream_http2: false,
        overwrite: false,
    }
}

fn stalled(name: &str, clients: usize, hold_s: u64) -> Scenario {
    Scenario {
        name: name.to_owned(),
        kind: Kind::Stalled {
            clients,
            // ≈ 195 MiB per reply: far beyond what the kernel's socket buffers can absorb
            // (auto-tuned receive buffers may reach tcp_rmem's 32 MiB here), so a plateau is the
            // proxy's doing.
            tokens: 1_000_000,
            hold_s,
        },
        upstream_http2: false,
        overwrite: false,
    }
}

fn plain(name: &str, kind: Kind) -> Scenario {
    Scenario {
        name: name.to_owned(),
        kind,
        upstream_http2: false,
        overwrite: false,
    }
}

fn json(rate: u32, seconds: u32) -> Scenario {
    plain(&format!("json-{rate}"), Kind::Json { rate, seconds })
}

fn cancel(close: CloseKind, streams: usize, ramp_ms: u64) -> Scenario {
    let how = match close {
        CloseKind::WsClose => "ws-close",
        CloseKind::Reset => "reset",
        CloseKind::SseAbort => "sse-abort",
    };
    plain(
        &format!("cancel-{how}-{streams}"),
        Kind::Cancel {
            streams,
            close,
            ramp_ms,
        },
    )
}

fn churn(transport: Transport, rate: u32, seconds: u32) -> Scenario {
    let how = match transport {
        Transport::Ws => "ws",
        Transport::Sse => "sse",
    };
    plain(
        &format!("churn-{how}-{rate}"),
        Kind::Churn {
            transport,
            rate,
            seconds,
        },
    )
}

fn cold(starts: usize) -> Scenario {
    plain(&format!("cold-start-{starts}"), Kind::Cold { starts })
}

fn steady(ramp_ms: u64) -> Shape {
    Shape::Steady { ramp_ms }
}

pub fn scenarios(mode: Mode) -> Vec<Scenario> {
    match mode {
        Mode::Smoke => vec![
            idle("idle-10", 10),
            streams("steady-5", 5, 20, 100, steady(100)),
            streams("burst-5", 5, 20, 100, Shape::Burst),
            streams("flood-5", 5, 500, 0, Shape::Burst),
            stalled("stalled-20", 20, 4),
            streams("steady-5", 5, 20, 100, steady(100)).over_http2(),
            overwrite("overwrite-5", 5, 20, 100, steady(100)),
            json(100, 1),
            cancel(CloseKind::WsClose, 5, 100),
            cancel(CloseKind::Reset, 5, 100),
            cancel(CloseKind::SseAbort, 5, 100),
            churn(Transport::Ws, 20, 1),
            churn(Transport::Sse, 20, 1),
            cold(2),
        ],
        Mode::Full => vec![
            idle("idle-1000", 1_000),
            idle("idle-10000", 10_000),
            streams("steady-1", 1, 250, 50, steady(0)),
            streams("steady-100", 100, 250, 50, steady(1_000)),
            streams("steady-1000", 1_000, 250, 50, steady(2_000)),
            streams("steady-10000", 10_000, 40, 5, steady(4_000)),
            streams("burst-100", 100, 100, 50, Shape::Burst),
            streams("burst-1000", 1_000, 100, 50, Shape::Burst),
            streams("burst-10000", 10_000, 20, 5, Shape::Burst),
            streams("flood-100", 100, 2_000, 0, Shape::Burst),
            // On two cores the proxy needs 8–10 s to fill 1,000 clients' socket paths; the
            // hold is long enough that most of its last half comes after that.
            stalled("stalled-1000", 1_000, 15),
            // Shared upstream sockets: 10,000 streams then need about 10,100 descriptors in the
            // proxy instead of 20,000 (this machine's hard limit).
            streams("steady-1000", 1_000, 250, 50, steady(2_000)).over_http2(),
            streams("steady-10000", 10_000, 40, 5, steady(4_000)).over_http2(),
            streams("burst-10000", 10_000, 20, 5, Shape::Burst).over_http2(),
            // steady-100's load with every frame resending the text so far.
            overwrite("overwrite-100", 100, 250, 50, steady(1_000)),
            // What LLM gateways publish: non-streamed requests at a fixed rate (open loop).
            json(500, 10),
            json(2_000, 10),
            json(5_000, 10),
            // What none publishes: how fast a client's leaving reaches the upstream, …
            cancel(CloseKind::WsClose, 1_000, 2_000),
            cancel(CloseKind::Reset, 1_000, 2_000),
            cancel(CloseKind::SseAbort, 1_000, 2_000),
            // … what a connection per conversation costs, …
            churn(Transport::Ws, 500, 5),
            churn(Transport::Sse, 500, 5),
            // … and the first request after a start.
            cold(20),
        ],
    }
}
