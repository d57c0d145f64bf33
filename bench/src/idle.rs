//! The idle scenario: open WebSockets that never send, to measure the proxy's memory and CPU
//! per idle socket.

use crate::client::{self, LIMITS};
use crate::processes::Proxy;
use crate::procfs;
use serde::Serialize;
use std::time::Duration;
use tokio::time::timeout;

#[derive(Debug, Clone, Serialize)]
pub struct IdleResult {
    pub sockets: usize,
    pub opened: usize,
    pub rss_before_kib: u64,
    pub rss_open_kib: u64,
    pub rss_closed_kib: u64,
    pub fds_open: usize,
    /// Proxy CPU over a few seconds of holding the idle sockets.
    pub cpu_idle_s: f64,
    pub hold_s: f64,
}

/// Opens `sockets` WebSockets that never send, then measures the proxy holding them.
pub async fn run_idle(proxy: &Proxy, sockets: usize) -> IdleResult {
    let rss_before = procfs::rss_kib(proxy.pid).unwrap_or(0);
    let mut open = Vec::with_capacity(sockets);
    // In batches, so the proxy's accept queue is never the limit here.
    let mut remaining = sockets;
    while remaining > 0 {
        let batch = remaining.min(500);
        remaining -= batch;
        let mut handles = Vec::with_capacity(batch);
        for _ in 0..batch {
            let addr = proxy.addr;
            handles.push(tokio::spawn(async move {
                let tcp = timeout(LIMITS.connect, tokio::net::TcpStream::connect(addr)).await;
                let Ok(Ok(tcp)) = tcp else { return None };
                let url = format!("ws://{addr}/chat");
                let config = Some(client::client_config());
                let handshake = tokio_tungstenite::client_async_with_config(url, tcp, config);
                match timeout(LIMITS.connect, handshake).await {
                    Ok(Ok((ws, _))) => Some(ws),
                    _ => None,
                }
            }));
        }
        for handle in handles {
            if let Ok(Some(ws)) = handle.await {
                open.push(ws);
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_open = procfs::rss_kib(proxy.pid).unwrap_or(0);
    let fds_open = procfs::open_fds(proxy.pid).unwrap_or(0);
    let cpu_before = procfs::cpu(proxy.pid).unwrap_or_default();
    let hold = Duration::from_secs(3);
    tokio::time::sleep(hold).await;
    let cpu_idle = procfs::cpu(proxy.pid)
        .unwrap_or_default()
        .since(cpu_before)
        .total();
    let opened = open.len();
    drop(open);
    tokio::time::sleep(Duration::from_secs(1)).await;
    IdleResult {
        sockets,
        opened,
        rss_before_kib: rss_before,
        rss_open_kib: rss_open,
        rss_closed_kib: procfs::rss_kib(proxy.pid).unwrap_or(0),
        fds_open,
        cpu_idle_s: cpu_idle,
        hold_s: hold.as_secs_f64(),
    }
}
