//! Real parts for the conversation tests: a `redis-server` on a free loopback port (no
//! persistence, killed on drop), and the proxy binary as its own process (a replica), whose
//! address is read from its start-up line.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::PATIENCE;

/// A loopback port nobody listened on a moment ago (bound, read, released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A real Redis for one test; killed when dropped.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
}

impl RedisServer {
    /// Starts `redis-server` (Debian's package; `.ci/run` installs it) and waits for its PONG.
    pub fn start() -> RedisServer {
        // Another process may take the released port first: then try another one.
        for _ in 0..5 {
            let port = free_port();
            let spawned = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let child = match spawned {
                Ok(child) => child,
                Err(err) => panic!(
                    "these tests need a real redis-server on PATH (apt-get install redis-server; \
                     .ci/run installs it): {err}"
                ),
            };
            let mut server = RedisServer {
                child: Some(child),
                port,
            };
            if server.wait_ready() {
                return server;
            }
            server.kill();
        }
        panic!("redis-server did not start on a free loopback port");
    }

    /// True once the server answers PING; false if it exited (port taken) or never answered.
    fn wait_ready(&mut self) -> bool {
        use std::io::{Read, Write};
        let started = Instant::now();
        while started.elapsed() < PATIENCE {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    return false;
                }
            }
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                let mut answer = [0u8; 7];
                if stream.write_all(b"PING\r\n").is_ok()
                    && stream.read_exact(&mut answer).is_ok()
                    && &answer == b"+PONG\r\n"
                {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server at once (an outage).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The proxy binary as a separate process (a replica); killed when dropped.
pub struct ProxyProcess {
    child: Child,
    pub addr: SocketAddr,
}

impl ProxyProcess {
    /// Runs the binary with `args` (after `--listen 127.0.0.1:0`) and no inherited variables
    /// but `env`, and waits for its "listening on" line.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> ProxyProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_deepchat-proxy"))
            .args(["--listen", "127.0.0.1:0", "--log-format", "pretty"])
            .args(args)
            .env_clear()
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the proxy binary");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads every line (so the pipe never fills) and reports the address once.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr: String = rest.chars().take_while(|c| *c != ';').collect();
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = rx
            .recv_timeout(PATIENCE)
            .expect("the proxy printed its address in time");
        ProxyProcess {
            child,
            addr: addr.parse().expect("a socket address"),
        }
    }

    pub fn ws_url(&self, query: &str) -> String {
        format!("ws://{}/chat?{query}", self.addr)
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
