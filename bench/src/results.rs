//! What a benchmark run measured: per phase (direct or through the proxy), per scenario. The
//! driver fills these in and the report renders them; both read this, neither the other.

use crate::cancel::CancelResult;
use crate::coldstart::ColdStartResult;
use crate::idle::IdleResult;
use crate::meter::PhaseCpu;
use crate::scenarios::Scenario;
use crate::stalled::StalledResult;
use crate::stats::Pct;
use serde::Serialize;

/// CPU and memory of one process over one phase.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Usage {
    pub cpu_user_s: f64,
    pub cpu_system_s: f64,
    pub rss_before_kib: u64,
    pub rss_peak_kib: u64,
    pub rss_after_kib: u64,
    pub fds_peak: usize,
    /// Still open half a second after the last reply (idle upstream connections kept, …).
    pub fds_after: usize,
}

impl Usage {
    pub fn cpu_s(&self) -> f64 {
        self.cpu_user_s + self.cpu_system_s
    }
}

/// One run of N streams against one target.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub streams: usize,
    pub complete: usize,
    pub failures: Vec<String>,
    pub connect: Pct,
    pub first_token: Pct,
    pub per_token: Pct,
    pub tokens: u64,
    pub frames: u64,
    /// Overwrite mode: WebSocket bytes received over all replies (frame headers included).
    pub wire_bytes: u64,
    /// Overwrite mode: bytes of all replies' final texts.
    pub text_bytes: u64,
    pub wall_s: f64,
    /// Only for the proxy phase.
    pub proxy: Option<Usage>,
    pub mock_cpu_s: f64,
    pub loadgen_cpu_s: f64,
    /// CPU seconds used meanwhile by every other process on the machine (other builds, …):
    /// the measurement is only as clean as this is small.
    pub other_cpu_s: f64,
    /// CPU seconds the kernel spent in interrupts meanwhile (loopback TCP, ours included).
    pub interrupt_cpu_s: f64,
    /// Connects the kernel dropped because a listen queue was full (clients retry after 1 s,
    /// 3 s, …): the mock's in the direct phase, in the proxy phase nearly all the proxy's.
    pub listen_overflows: u64,
}

impl Phase {
    pub fn tokens_per_s(&self) -> f64 {
        if self.wall_s > 0.0 {
            self.tokens as f64 / self.wall_s
        } else {
            0.0
        }
    }
}

/// One open-loop phase: arrivals at a fixed rate (JSON requests, or whole conversations on
/// new connections), against one target.
#[derive(Debug, Clone, Serialize)]
pub struct RatePhase {
    pub arrivals: usize,
    /// Answered completely and correctly.
    pub ok: usize,
    pub failures: Vec<String>,
    /// From each arrival's due time to its answer's (or reply's) last byte: queueing included.
    pub latency: Pct,
    /// How late the load generator started each arrival (its own share of `latency`).
    pub late: Pct,
    /// Conversations only: TCP connect (+ WebSocket handshake) and first token from sending.
    pub connect: Pct,
    pub first_token: Pct,
    /// JSON mode: keep-alive connections in the pool (0: a new connection per arrival).
    pub connections: usize,
    pub wall_s: f64,
    pub cpu: PhaseCpu,
}

impl RatePhase {
    /// A phase that could not start.
    pub fn failed(arrivals: usize, why: String) -> RatePhase {
        let none = || Pct::of_ns(Vec::new());
        RatePhase {
            arrivals,
            ok: 0,
            failures: vec![why],
            latency: none(),
            late: none(),
            connect: none(),
            first_token: none(),
            connections: 0,
            wall_s: 0.0,
            cpu: PhaseCpu::default(),
        }
    }

    pub fn lost(&self) -> usize {
        self.arrivals - self.ok.min(self.arrivals)
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Outcome {
    Idle(IdleResult),
    Stalled(Box<StalledResult>),
    Streams {
        direct: Box<Phase>,
        proxy: Box<Phase>,
    },
    /// JSON mode or connection churn at a fixed rate: direct, then through the proxy.
    Rate {
        direct: Box<RatePhase>,
        proxy: Box<RatePhase>,
    },
    Cancel(Box<CancelResult>),
    Cold(Box<ColdStartResult>),
}

#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    pub scenario: Scenario,
    pub outcome: Outcome,
    /// Set when the proxy under test exited by itself before the scenario ended.
    pub proxy_exited: Option<String>,
}

impl ScenarioResult {
    /// Replies that were not complete and correct (for stalled clients: failed checks).
    pub fn incomplete(&self) -> usize {
        usize::from(self.proxy_exited.is_some())
            + match &self.outcome {
                Outcome::Idle(idle) => idle.sockets - idle.opened,
                Outcome::Stalled(stalled) => stalled.failures.len(),
                Outcome::Streams { direct, proxy } => {
                    (direct.streams - direct.complete) + (proxy.streams - proxy.complete)
                }
                Outcome::Rate { direct, proxy } => direct.lost() + proxy.lost(),
                Outcome::Cancel(cancel) => cancel.failed(),
                Outcome::Cold(cold) => cold.failures.len(),
            }
    }
}
