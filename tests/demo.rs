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

#[tokio::test]
async fn playground_serves_the_page_for_any_provider_and_is_off_unless_asked() {
    let args = [
        "openai",
        "--base-url",
        "http://127.0.0.1:1/v1",
        "--model",
        "m1",
    ];
    let off = Proxy::start(&args).await;
    assert!(http_get(off.addr, "/").await.starts_with("HTTP/1.1 404"));
    let mut with = vec!["--playground"];
    with.extend_from_slice(&args);
    let on = Proxy::start(&with).await;
    let page = http_get(on.addr, "/").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        page.contains("openai, model m1, upstream 127.0.0.1:1"),
        "{page}"
    );
    let demo_off = Proxy::start(&["demo", "--playground=false"]).await;
    assert!(http_get(demo_off.addr, "/")
        .await
        .starts_with("HTTP/1.1 404"));
}

#[tokio::test]
async fn a_local_bundle_is_served_from_the_page_origin() {
    let dir = std::env::temp_dir().join(format!("deepchat-proxy-bundle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let bundle = dir.join("deepChat.bundle.js");
    std::fs::write(
        &bundle,
        "customElements.define('deep-chat', class extends HTMLElement {});",
    )
    .expect("write");
    let path = bundle.to_str().expect("utf-8 path");
    let proxy = Proxy::start(&["demo", "--deep-chat-script", path]).await;
    let page = http_get(proxy.addr, "/").await;
    assert!(page.contains(r#"const src = "/deep-chat.js";"#), "{page}");
    let script = http_get(proxy.addr, "/deep-chat.js").await;
    assert!(script.starts_with("HTTP/1.1 200"), "{script}");
    assert!(
        script
            .to_ascii_lowercase()
            .contains("content-type: text/javascript"),
        "{script}"
    );
    assert!(
        script.ends_with("class extends HTMLElement {});"),
        "{script}"
    );

    // Too large to be a bundle: refused at start rather than read into memory.
    let huge = dir.join("huge.js");
    std::fs::File::create(&huge)
        .and_then(|f| f.set_len(deepchat_proxy::config::MAX_BUNDLE_BYTES + 1))
        .expect("sparse file");
    let cli = <deepchat_proxy::cli::Cli as clap::Parser>::try_parse_from([
        "deepchat-proxy",
        "demo",
        "--deep-chat-script",
        huge.to_str().expect("utf-8 path"),
    ])
    .expect("flags");
    let err = deepchat_proxy::Config::from_cli(cli)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("bytes is more than"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
