//! `--upstream-http2`: replies multiplexed over one HTTP/2 (h2c) connection to the upstream,
//! and a browser that stops reading must not freeze the other replies sharing it.

mod support;

use futures_util::StreamExt;
use std::time::Duration;
use support::*;
use tokio_tungstenite::tungstenite::Message;

const STOP: &str = "stop-key";

#[tokio::test]
async fn replies_share_one_http2_connection() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--upstream-http2"], &[]).await;
    let deltas = ["one ", "two ", "three"];
    let mut steps = Vec::new();
    for delta in deltas {
        steps.push(Step::Bytes(openai_chunk(delta)));
        // Long enough for the three replies to overlap.
        steps.push(Step::Wait(Duration::from_millis(150)));
    }
    steps.push(Step::Bytes(b"data: [DONE]\n\n".to_vec()));
    let mut clients = Vec::new();
    for _ in 0..3 {
        upstream.push(Reply::sse(steps.clone()));
        let mut ws = connect(&proxy.ws_url()).await;
        send_user(&mut ws, "hello").await;
        clients.push(ws);
    }
    for ws in &mut clients {
        assert_eq!(reply_text(&read_reply(ws, STOP).await), deltas.concat());
    }
    let received = upstream.received();
    assert_eq!(received.len(), 3);
    assert!(
        received.iter().all(|r| r.version == hyper::Version::HTTP_2),
        "{:?}",
        received.iter().map(|r| r.version).collect::<Vec<_>>()
    );
    assert_eq!(
        upstream.connections(),
        1,
        "one connection carried all three"
    );
}

#[tokio::test]
async fn a_server_stream_limit_opens_another_connection_instead_of_queueing() {
    // The server takes one stream per connection; hyper would queue the second reply behind
    // the first (2 s) on a shared connection.
    let upstream = MockUpstream::start_with_h2_streams(1).await;
    let proxy = Proxy::openai(
        &upstream,
        &["--upstream-http2", "--upstream-streams-per-connection", "1"],
        &[],
    )
    .await;
    upstream.push(Reply::sse(vec![
        Step::Bytes(openai_chunk("slow")),
        Step::Wait(Duration::from_secs(2)),
        Step::Bytes(b"data: [DONE]\n\n".to_vec()),
    ]));
    let mut slow = connect(&proxy.ws_url()).await;
    send_user(&mut slow, "take your time").await;
    upstream.wait_requests(1).await;

    upstream.push(Reply::openai_text(&["quick"]));
    let mut quick = connect(&proxy.ws_url()).await;
    let asked = std::time::Instant::now();
    send_user(&mut quick, "quick one").await;
    assert_eq!(reply_text(&read_reply(&mut quick, STOP).await), "quick");
    let waited = asked.elapsed();
    assert!(
        waited < Duration::from_millis(1500),
        "the second reply waited {waited:?} behind the first"
    );
    assert_eq!(upstream.connections(), 2);
    assert_eq!(reply_text(&read_reply(&mut slow, STOP).await), "slow");
}

#[tokio::test]
async fn stalled_readers_do_not_freeze_other_replies_on_the_connection() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--upstream-http2"], &[]).await;
    // Far more than the socket buffers between the proxy and a client hold, sent as fast as
    // flow control allows: each stalled reply fills its HTTP/2 stream window in the proxy.
    let big = openai_chunk(&"x".repeat(16 * 1024)).repeat(1024);
    let mut stalled = Vec::new();
    for _ in 0..4 {
        upstream.push(Reply::sse(vec![
            Step::Bytes(big.clone()),
            Step::Bytes(b"data: [DONE]\n\n".to_vec()),
        ]));
        let mut ws = connect(&proxy.ws_url()).await;
        send_user(&mut ws, "a lot, then I stop reading").await;
        let first = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("first frame");
        assert!(matches!(first, Some(Ok(Message::Text(_)))), "{first:?}");
        // Never read again.
        stalled.push(ws);
    }
    // Let the stalled replies fill everything they can.
    tokio::time::sleep(Duration::from_millis(500)).await;

    upstream.push(Reply::openai_text(&["still ", "flowing"]));
    let mut reader = connect(&proxy.ws_url()).await;
    send_user(&mut reader, "are you there?").await;
    assert_eq!(
        reply_text(&read_reply(&mut reader, STOP).await),
        "still flowing"
    );
    assert_eq!(upstream.connections(), 1, "the same connection carried it");
    drop(stalled);
}
