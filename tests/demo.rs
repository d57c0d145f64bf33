//! The offline demo provider and its page.

mod support;

use support::*;

#[tokio::test]
async fn demo_streams_an_echo_and_remembers_turns() {
    let proxy = Proxy::start(&["demo", "--tokens-per-second", "1000"]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    send_user(&mut ws, "héllo 👋").await;
    let frames = read_reply(&mut ws, "stop-key").await;
    let text = reply_text(&frames);
    assert!(
        text.starts_with("You said: \u{201c}héllo 👋\u{201d} (message 1"),
        "{text}"
    );
    assert!(
        frames.len() > 5,
        "streamed in many frames: {}",
        frames.len()
    );
    send_user(&mut ws, "again").await;
    let text = reply_text(&read_reply(&mut ws, "stop-key").await);
    assert!(text.contains("(message 2 of this chat)"), "{text}");
}

#[tokio::test]
async fn demo_page_embeds_deep_chat_wired_to_the_proxy() {
    let proxy = Proxy::start(&[
        "--path",
        "/ws",
        "--stop-key",
        "DONE!",
        "demo",
        "--deep-chat-script",
        "http://127.0.0.1:1/dc.js",
    ])
    .await;
    let page = http_get(proxy.addr, "/").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("text/html"));
    assert!(page.contains(r#"const src = "http://127.0.0.1:1/dc.js";"#));
    assert!(page.contains(r#"location.host + "/ws""#));
    assert!(page.contains(r#"simulation: "DONE!""#));
    let missing = http_get(proxy.addr, "/nope").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    let plain = http_get(proxy.addr, "/ws").await;
    assert!(plain.starts_with("HTTP/1.1 426"), "{plain}");
}

/// A minimal HTTP/1.1 GET, to see exactly what a browser would receive.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    tokio::time::timeout(PATIENCE, stream.read_to_string(&mut response))
        .await
        .expect("response in time")
        .expect("read");
    response
}
