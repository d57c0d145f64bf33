//! WebSocket close codes through the real server (RFC 6455): the close frame a socket earns
//! reaches the client, even when the client is still sending.

mod support;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use support::*;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

/// The close code the client receives next, skipping pings; panics on anything else.
async fn close_code(ws: &mut Ws) -> u16 {
    loop {
        match tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("close frame within patience")
        {
            Some(Ok(Message::Ping(_))) => continue,
            Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_invalid_utf8_text_frame_gets_1007() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &[], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    let invalid = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    ws.send(Message::Frame(invalid)).await.expect("send");
    assert_eq!(close_code(&mut ws).await, 1007);
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn a_10_mb_message_gets_1009_while_the_client_is_still_sending() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &[], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    let huge = json!({"messages": [{"role": "user", "text": "x".repeat(10_000_000)}]});
    // The proxy refuses the message from its header, long before the client has sent it all;
    // a send error would mean the proxy reset the connection under the client.
    tokio::time::timeout(PATIENCE, ws.send(Message::text(huge.to_string())))
        .await
        .expect("sent within patience")
        .expect("the proxy kept reading until the client was done");
    assert_eq!(close_code(&mut ws).await, 1009);
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn an_oversized_message_during_a_reply_gets_1009() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--max-request-bytes", "1000"], &[]).await;
    let mut ws = connect(&proxy.ws_url()).await;
    upstream.push(Reply::sse(vec![
        Step::Bytes(openai_chunk("long")),
        Step::HoldUntilClosed,
    ]));
    send_user(&mut ws, "start").await;
    upstream.wait_requests(1).await;
    let huge = json!({"messages": [{"role": "user", "text": "y".repeat(2_000_000)}]});
    tokio::time::timeout(PATIENCE, ws.send(Message::text(huge.to_string())))
        .await
        .expect("sent within patience")
        .expect("the proxy kept reading until the client was done");
    loop {
        match tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("frames within patience")
        {
            Some(Ok(Message::Text(_) | Message::Ping(_))) => continue,
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), 1009);
                break;
            }
            other => panic!("expected close 1009, got {other:?}"),
        }
    }
    upstream.wait_closed(1).await;
}
