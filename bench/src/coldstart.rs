//! Cold start: a fresh proxy process, and the first conversation the moment it accepts
//! connections. Measured per start: spawn → accepting, spawn → first token of that first
//! conversation, its time to first token (the upstream pool is empty: the proxy connects to the
//! mock first), and the next conversation's (its upstream connection is pooled by then). The
//! difference between those two is what warm upstream connections (`--upstream-prewarm`) could
//! save; a TCP connect to the mock is measured alongside, for what a new loopback connection
//! costs by itself.

use crate::client::{self, LIMITS};
use crate::driver::summarize_failures;
use crate::openloop::nanos;
use crate::processes::Proxy;
use crate::stats::Pct;
use crate::token::Spec;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// Tokens in each reply.
const TOKENS: u32 = 5;

#[derive(Debug, Clone, Serialize)]
pub struct ColdStartResult {
    pub starts: usize,
    /// Spawning the proxy → its port accepts a connection.
    pub listening: Pct,
    /// Spawning the proxy → the first conversation's first token.
    pub start_to_first_token: Pct,
    /// The first conversation's time to first token: an empty upstream pool.
    pub cold_ttft: Pct,
    /// The second conversation's: its upstream connection pooled.
    pub warm_ttft: Pct,
    /// A TCP connect from here to the mock (what a new upstream connection costs on loopback).
    pub upstream_connect: Pct,
    pub failures: Vec<String>,
}

pub async fn run(
    binary: &Path,
    mock: SocketAddr,
    out: &Path,
    name: &str,
    starts: usize,
    first_id: u64,
) -> ColdStartResult {
    let (mut listening, mut to_first, mut cold, mut warm) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut failures = Vec::new();
    let mut id = first_id;
    for _ in 0..starts {
        let spawned = Instant::now();
        let mut proxy =
            match Proxy::start(binary, mock, out, name, Duration::from_secs(60), &[]).await {
                Ok(proxy) => proxy,
                Err(why) => {
                    failures.push(why);
                    continue;
                }
            };
        listening.push(nanos(spawned.elapsed()));
        for conversation in 0..2 {
            let spec = Spec {
                id,
                tokens: TOKENS,
                interval_us: 0,
            };
            id += 1;
            let began = Instant::now();
            let result = client::via_proxy(proxy.addr, "/chat", spec, LIMITS).await;
            match (result.verdict, result.ttft) {
                (Ok(()), Some(ttft)) if conversation == 0 => {
                    cold.push(nanos(ttft));
                    let first_token = began.duration_since(spawned) + result.connect + ttft;
                    to_first.push(nanos(first_token));
                }
                (Ok(()), Some(ttft)) => warm.push(nanos(ttft)),
                (Ok(()), None) => failures.push("a reply without tokens".into()),
                (Err(why), _) => failures.push(why),
            }
        }
        proxy.stop().await;
    }
    let mut connects = Vec::new();
    for _ in 0..starts.max(5) {
        let began = Instant::now();
        match client::connect_tcp(mock, LIMITS.connect).await {
            Ok(tcp) => {
                connects.push(nanos(began.elapsed()));
                drop(tcp);
            }
            Err(why) => failures.push(why),
        }
    }
    ColdStartResult {
        starts,
        listening: Pct::of_ns(listening),
        start_to_first_token: Pct::of_ns(to_first),
        cold_ttft: Pct::of_ns(cold),
        warm_ttft: Pct::of_ns(warm),
        upstream_connect: Pct::of_ns(connects),
        failures: summarize_failures(failures),
    }
}
