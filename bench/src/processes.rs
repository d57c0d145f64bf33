//! The benchmark's child processes: the mock upstream, the proxy under test (under
//! `timeout -s KILL`, so it can never outlive a run) and an optional `perf record` of it.

use crate::procfs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::time::timeout;

/// The mock upstream process (this binary's `mock` subcommand).
pub struct Mock {
    _child: Child,
    /// Held open: the mock exits when it closes.
    _stdin: Option<ChildStdin>,
    pub pid: u32,
    pub addr: SocketAddr,
}

impl Mock {
    pub async fn start(
        out: &Path,
        name: &str,
        lifetime: Duration,
        extra: &[String],
    ) -> Result<Mock, String> {
        let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
        let log = log_file(out, &format!("{name}.mock.log"))?;
        let mut child = Command::new(exe)
            .args(["mock", "--listen", "127.0.0.1:0", "--max-seconds"])
            .arg(lifetime.as_secs().to_string())
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start the mock upstream: {e}"))?;
        let pid = child.id().ok_or("mock exited at once")?;
        let stdout = child.stdout.take().ok_or("mock has no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = timeout(Duration::from_secs(10), lines.next_line())
            .await
            .map_err(|_| "mock did not start within 10 s".to_owned())?
            .map_err(|e| format!("mock stdout: {e}"))?
            .ok_or("mock exited before listening")?;
        let addr = line
            .strip_prefix("listening ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("mock said {line:?}"))?;
        Ok(Mock {
            _stdin: child.stdin.take(),
            _child: child,
            pid,
            addr,
        })
    }
}

/// The proxy under test, run as `timeout -s KILL <lifetime> deepchat-proxy …`.
pub struct Proxy {
    wrapper: Child,
    pub pid: u32,
    pub addr: SocketAddr,
}

impl Proxy {
    pub async fn start(
        binary: &Path,
        mock: SocketAddr,
        out: &Path,
        name: &str,
        lifetime: Duration,
        global_flags: &[&str],
    ) -> Result<Proxy, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = log_file(out, &format!("{name}.proxy.log"))?;
        let mut wrapper = Command::new("timeout")
            .args(["-s", "KILL", &lifetime.as_secs().to_string()])
            .arg(binary)
            .args(["--listen", &addr.to_string()])
            .args(global_flags)
            .arg("openai")
            .args([
                "--base-url",
                &format!("http://{mock}/v1"),
                "--model",
                "bench",
            ])
            .env_remove("OPENAI_API_KEY")
            .env("RUST_LOG", "info")
            // Every client comes from 127.0.0.1: a per-IP request limit would measure itself.
            // (Ignored by proxy versions without one.)
            .env("DEEPCHAT_PROXY_RATE_LIMIT", "0")
            // Likewise the per-IP connection cap (thousands of sockets from one address).
            .env("DEEPCHAT_PROXY_MAX_CONNECTIONS_PER_IP", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let wrapper_pid = wrapper.id().ok_or("proxy wrapper exited at once")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let pid = loop {
            if let Some(pid) = procfs::first_child(wrapper_pid) {
                break pid;
            }
            if Instant::now() > deadline || matches!(wrapper.try_wait(), Ok(Some(_))) {
                return Err("the proxy did not start".into());
            }
            // Short polls: the cold-start scenario times the start from this.
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let proxy = Proxy { wrapper, pid, addr };
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(proxy);
            }
            if Instant::now() > deadline {
                return Err(format!("the proxy is not listening on {addr}"));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Whether the proxy has exited by itself (crashed, or killed by something else than the
    /// driver), and how: a run where it did is not a measurement of it.
    pub fn exited(&mut self) -> Option<String> {
        match self.wrapper.try_wait() {
            Ok(Some(status)) => Some(format!(
                "the proxy exited during the scenario ({status}; see its log)"
            )),
            _ => None,
        }
    }

    pub async fn stop(&mut self) {
        signal(self.pid, "KILL");
        let _ = timeout(Duration::from_secs(5), self.wrapper.wait()).await;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if matches!(self.wrapper.try_wait(), Ok(None)) {
            signal(self.pid, "KILL");
        }
    }
}

/// Sends a signal to one process by id.
fn signal(pid: u32, name: &str) {
    let _ = std::process::Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn log_file(out: &Path, name: &str) -> Result<std::fs::File, String> {
    let path = out.join(name);
    std::fs::File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

/// A `perf record` of one process, stopped with SIGINT so it writes a complete file.
pub struct Perf {
    child: Child,
}

impl Perf {
    pub fn start(pid: u32, path: &Path) -> Option<Perf> {
        let child = Command::new("perf")
            .args(["record", "-e", "cpu-clock", "-F", "499"])
            .args(["--call-graph", "dwarf,16384", "-p", &pid.to_string(), "-o"])
            .arg(path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        match child {
            Ok(child) => Some(Perf { child }),
            Err(err) => {
                eprintln!("bench: perf not started: {err}");
                None
            }
        }
    }

    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            signal(pid, "INT");
        }
        let _ = timeout(Duration::from_secs(60), self.child.wait()).await;
    }
}
