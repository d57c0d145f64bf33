//! Keys, deadlines and cancellation under attack and on a flaky network (issue 12, items 1–6):
//! redirects are never followed, redaction survives truncation, silent clients lose their
//! connection, a stalled or silent upstream cannot hold a reply past its deadlines, leaving
//! cancels the upstream at any stage, and a draining proxy refuses new connections at once.

mod support;

use futures_util::StreamExt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;

const STOP: &str = "stop-key";
const KEY: &str = "sk-live-0123456789abcdefghijklmnopqrstuv";

/// An upstream that reads requests and never answers; it records each request's arrival and
/// the moment the proxy closed that connection.
#[derive(Clone, Default)]
struct SilentUpstream {
    addr: Option<SocketAddr>,
    requests: Arc<Mutex<Vec<Instant>>>,
    closed: Arc<Mutex<Vec<Instant>>>,
}

impl SilentUpstream {
    async fn start() -> SilentUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let upstream = SilentUpstream {
            addr: Some(listener.local_addr().expect("addr")),
            ..Default::default()
        };
        let recorder = upstream.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let recorder = recorder.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let mut seen_request = false;
                    loop {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(_) if !seen_request => {
                                seen_request = true;
                                recorder.requests.lock().expect("lock").push(Instant::now());
                            }
                            Ok(_) => {}
                        }
                    }
                    recorder.closed.lock().expect("lock").push(Instant::now());
                });
            }
        });
        upstream
    }

    fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr.expect("started"))
    }

    async fn wait_requests(&self, n: usize) {
        wait_until(|| self.requests.lock().expect("lock").len() >= n).await;
    }

    async fn wait_closed(&self, n: usize) -> Instant {
        wait_until(|| self.closed.lock().expect("lock").len() >= n).await;
        self.closed.lock().expect("lock")[n - 1]
    }
}

async fn wait_until(done: impl Fn() -> bool) {
    tokio::time::timeout(PATIENCE, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("condition within patience");
}

/// An `openai` proxy on `base_url` with `KEY` in its key variable and these extra flags.
async fn proxy_with_key(global: &[&str], base_url: &str, provider: &[&str]) -> Proxy {
    std::env::set_var("DEEPCHAT_PROXY_TEST_FAULTS_KEY", KEY);
    let mut args: Vec<&str> = vec!["--retries", "0", "--rate-limit", "0"];
    args.extend_from_slice(global);
    args.extend_from_slice(&["openai", "--base-url", base_url, "--model", "m"]);
    args.extend_from_slice(&["--api-key-env", "DEEPCHAT_PROXY_TEST_FAULTS_KEY"]);
    args.extend_from_slice(provider);
    Proxy::start(&args).await
}

fn mock_base(upstream: &MockUpstream) -> String {
    format!("http://{}/v1", upstream.addr)
}

#[tokio::test]
async fn redirects_are_never_followed_and_name_status_and_target_host() {
    let elsewhere = MockUpstream::start().await;
    let upstream = MockUpstream::start().await;
    let proxy = proxy_with_key(
        &[],
        &mock_base(&upstream),
        &["--header", "X-Team-Secret: team-secret-value"],
    )
    .await;
    let mut ws = connect(&proxy.ws_url()).await;
    for status in [302, 307, 308] {
        elsewhere.push(Reply::openai_text(&["stolen answer"]));
        let target = format!("http://{}/v1/chat/completions", elsewhere.addr);
        upstream.push(Reply::error(status, "").with_header("location", &target));
        send_user(&mut ws, "hi").await;
        let frames = read_reply(&mut ws, STOP).await;
        let shown = errors(&frames);
        assert_eq!(shown.len(), 1, "{frames:?}");
        assert!(shown[0].contains(&format!("HTTP {status}")), "{shown:?}");
        assert!(
            shown[0].contains(&elsewhere.addr.to_string()),
            "names the target host: {shown:?}"
        );
        assert!(!shown[0].contains(KEY), "{shown:?}");
        assert_eq!(reply_text(&frames), "", "no text from the redirect target");
    }
    assert!(
        elsewhere.received().is_empty(),
        "the redirect target got {:?}",
        elsewhere.received()
    );
}

#[tokio::test]
async fn a_secret_cut_by_an_excerpt_is_still_redacted() {
    let upstream = MockUpstream::start().await;
    let proxy = proxy_with_key(
        &[],
        &mock_base(&upstream),
        &["--header", "X-Team-Secret: team-secret-value"],
    )
    .await;
    let mut ws = connect(&proxy.ws_url()).await;

    // A non-JSON error body is cut at 300 characters; the key straddles the cut.
    let body = format!("{}{KEY} and team-secret-value", "x".repeat(280));
    upstream.push(Reply {
        content_type: "text/plain",
        ..Reply::error(500, &body)
    });
    // An unreadable stream line is cut at 200 characters, again through the key.
    let line = format!("data: {}{KEY}\n\n", "y".repeat(170));
    upstream.push(Reply::sse(vec![Step::Bytes(line.into_bytes())]));
    // The upstream echoes a header value in a stream error.
    upstream.push(Reply::sse(vec![Step::Bytes(
        b"data: {\"error\":{\"message\":\"team team-secret-value is over quota\"}}\n\n".to_vec(),
    )]));
    for _ in 0..3 {
        send_user(&mut ws, "hi").await;
        let frames = read_reply(&mut ws, STOP).await;
        let shown = errors(&frames).join(" ");
        assert!(shown.contains("[redacted]"), "{shown}");
        assert!(
            !shown.contains(&KEY[..8]),
            "part of the key leaked: {shown}"
        );
        assert!(
            !shown.contains("team-secret"),
            "a header value leaked: {shown}"
        );
    }
}

/// Reads until the peer closes; the time it took, or `None` past `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_request_timeout() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--request-timeout", "1"], &[]).await;
    let mut silent = TcpStream::connect(proxy.addr).await.expect("connect");
    let took = closed_within(&mut silent, PATIENCE).await;
    assert!(took.is_some(), "a silent socket must not stay open");
}

#[tokio::test]
async fn a_body_that_trickles_in_gets_408() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--request-timeout", "1"], &[]).await;
    let mut slow = TcpStream::connect(proxy.addr).await.expect("connect");
    let head = "POST /chat HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n";
    slow.write_all(head.as_bytes()).await.expect("head");
    let answer = tokio::time::timeout(PATIENCE, async {
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            // One byte every 300 ms: always "making progress", never done.
            let _ = slow.write_all(b" ").await;
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(300), slow.read(&mut buf)).await
            {
                if n == 0 {
                    return answer;
                }
                answer.extend_from_slice(&buf[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                    return answer;
                }
            }
        }
    })
    .await
    .expect("an answer before patience runs out");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn idle_keep_alive_and_h2c_connections_are_closed() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--http-idle-timeout", "1"], &[]).await;

    let mut keep_alive = TcpStream::connect(proxy.addr).await.expect("connect");
    keep_alive
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("request");
    let took = closed_within(&mut keep_alive, PATIENCE).await;
    assert!(took.is_some(), "an idle keep-alive connection must close");

    // An HTTP/2 connection (prior knowledge) that opens and then says nothing more.
    let mut h2 = TcpStream::connect(proxy.addr).await.expect("connect");
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .expect("preface");
    let took = closed_within(&mut h2, PATIENCE).await;
    assert!(took.is_some(), "an idle HTTP/2 connection must close");
}

/// A TCP connection to the proxy from a given loopback source address.
async fn connect_from(source: &str, proxy: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{source}:0").parse().expect("source"))
        .expect("bind source");
    socket.connect(proxy).await.expect("connect")
}

#[tokio::test]
async fn one_ip_cannot_take_every_connection_slot() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(
        &upstream,
        &["--max-connections", "50", "--max-connections-per-ip", "3"],
        &[],
    )
    .await;
    let mut hogs = Vec::new();
    for _ in 0..3 {
        hogs.push(connect_from("127.0.0.2", proxy.addr).await);
    }
    // The slots are taken once the proxy has accepted them.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fourth = connect_from("127.0.0.2", proxy.addr).await;
    fourth
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("request");
    let mut answer = String::new();
    let _ = tokio::time::timeout(PATIENCE, fourth.read_to_string(&mut answer)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");

    // Another client still gets through.
    upstream.push(Reply::openai_text(&["still served"]));
    let mut ws = connect(&proxy.ws_url()).await;
    send_user(&mut ws, "hi").await;
    assert_eq!(reply_text(&read_reply(&mut ws, STOP).await), "still served");
    drop(hogs);
}

#[tokio::test]
async fn a_stalled_error_body_ends_the_reply_by_the_first_byte_deadline() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--first-byte-timeout", "1"], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    upstream.push(Reply {
        steps: vec![
            Step::Bytes(b"{\"error\":{\"message\":\"overloa".to_vec()),
            Step::Wait(Duration::from_secs(60)),
        ],
        ..Reply::error(500, "")
    });
    send_user(&mut ws, "first").await;
    let frames = read_reply(&mut ws, STOP).await;
    assert!(errors(&frames)[0].contains("HTTP 500"), "{frames:?}");
    // The socket is free for the next message.
    upstream.push(Reply::openai_text(&["second answer"]));
    send_user(&mut ws, "second").await;
    assert_eq!(
        reply_text(&read_reply(&mut ws, STOP).await),
        "second answer"
    );
}

#[tokio::test]
async fn leaving_while_the_upstream_has_not_answered_cancels_it() {
    let upstream = SilentUpstream::start().await;
    let proxy = proxy_with_key(&["--first-byte-timeout", "60"], &upstream.base_url(), &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    send_user(&mut ws, "hi").await;
    upstream.wait_requests(1).await;
    let left = Instant::now();
    drop(ws);
    let closed = upstream.wait_closed(1).await;
    assert!(
        closed.duration_since(left) < Duration::from_secs(5),
        "upstream closed {:?} after the client left",
        closed.duration_since(left)
    );
}

#[tokio::test]
async fn leaving_during_retry_waits_makes_no_more_attempts() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--retries", "2"], &[]).await;
    for _ in 0..3 {
        upstream.push(
            Reply::error(429, r#"{"error":{"message":"slow down"}}"#)
                .with_header("retry-after", "1"),
        );
    }
    let mut ws = connect(&proxy.ws_url()).await;
    send_user(&mut ws, "hi").await;
    upstream.wait_requests(1).await;
    drop(ws);
    // Both retries would have gone out by now had the reply outlived its client.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(upstream.received().len(), 1);
}

#[tokio::test]
async fn shutdown_while_waiting_for_headers_sends_the_error_the_stop_key_then_1001() {
    let upstream = SilentUpstream::start().await;
    let proxy = proxy_with_key(
        &["--drain-timeout", "1", "--first-byte-timeout", "60"],
        &upstream.base_url(),
        &[],
    )
    .await;
    let mut ws = connect(&proxy.ws_url()).await;
    send_user(&mut ws, "hi").await;
    upstream.wait_requests(1).await;
    let stopping = tokio::spawn(proxy.stop());
    let frames = read_reply(&mut ws, STOP).await;
    assert!(errors(&frames)[0].contains("shutting down"), "{frames:?}");
    match tokio::time::timeout(PATIENCE, ws.next())
        .await
        .expect("close")
    {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected close 1001, got {other:?}"),
    }
    stopping.await.expect("join").expect("stopped");
    upstream.wait_closed(1).await;
}

#[tokio::test]
async fn a_draining_proxy_refuses_new_connections_at_once() {
    let upstream = MockUpstream::start().await;
    let mut proxy = Proxy::openai(&upstream, &["--drain-timeout", "5"], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    upstream.push(Reply::sse(vec![
        Step::Bytes(openai_chunk("long")),
        Step::HoldUntilClosed,
    ]));
    send_user(&mut ws, "hi").await;
    let _ = next_message(&mut ws).await;
    let addr = proxy.addr;
    proxy.begin_shutdown();
    // The listener closes as the drain begins; a new client is refused instead of waiting.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let attempt = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await;
    match attempt {
        Ok(Err(err)) => assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused),
        Ok(Ok(_)) => panic!("a draining proxy accepted a new connection"),
        Err(_) => panic!("connect hung during the drain"),
    }
}

#[tokio::test]
async fn a_stream_that_opens_with_an_error_or_ends_empty_is_retried_before_anything_is_shown() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--retries", "2"], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    // 200, then an error as the first event (as OpenAI sends when overloaded mid-request).
    upstream.push(Reply::sse(vec![Step::Bytes(
        b"data: {\"error\":{\"message\":\"The server had an error\",\"type\":\"server_error\"}}\n\n"
            .to_vec(),
    )]));
    // 200, then nothing but the end marker.
    upstream.push(Reply::sse(vec![Step::Bytes(b"data: [DONE]\n\n".to_vec())]));
    upstream.push(Reply::openai_text(&["third ", "attempt"]));
    send_user(&mut ws, "hi").await;
    let frames = read_reply(&mut ws, STOP).await;
    assert_eq!(
        reply_text(&frames),
        "third attempt",
        "{frames:?} {:?}",
        upstream.received().len()
    );
    assert!(errors(&frames).is_empty(), "{frames:?}");
    assert_eq!(upstream.received().len(), 3);

    // Out of retries: the user sees the stream's own error, once.
    for _ in 0..3 {
        upstream.push(Reply::sse(vec![Step::Bytes(
            b"data: {\"error\":{\"message\":\"still failing\"}}\n\n".to_vec(),
        )]));
    }
    send_user(&mut ws, "again").await;
    let frames = read_reply(&mut ws, STOP).await;
    assert_eq!(
        errors(&frames),
        vec!["upstream error: still failing".to_owned()],
        "{frames:?}"
    );
    assert_eq!(upstream.received().len(), 6);
}
