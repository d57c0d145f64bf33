//! The Deep Chat client for the proxy's overwrite reply mode (`?reply=overwrite`): every frame
//! carries the reply's text so far, so the client measures what resending it costs on the wire
//! (bytes received per reply against the text's own bytes) and how many frames a reply takes.

use crate::client::{open_and_ask, truncate, Limits, StreamResult};
use crate::token::{unix_nanos, Checker, Spec};
use futures_util::StreamExt;
use serde::Deserialize;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

/// An overwrite-mode frame: `{"text"}` first, then `{"text", "overwrite": true}`.
#[derive(Deserialize)]
struct OverwriteFrame<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(default)]
    overwrite: Option<bool>,
    #[serde(default)]
    error: Option<String>,
}

/// Bytes a server-to-client (unmasked) WebSocket frame with this payload takes on the wire.
fn frame_bytes(payload: usize) -> u64 {
    let header = match payload {
        0..=125 => 2,
        126..=65_535 => 4,
        _ => 10,
    };
    (header + payload) as u64
}

/// One conversation in overwrite mode: connect to `path?reply=overwrite`, send the spec, read
/// frames until the latest one's text is exactly the whole reply. Each frame must extend the
/// previous text; only the new part is fed to the checker, so every token is checked once.
pub async fn via_proxy(addr: SocketAddr, path: &str, spec: Spec, limits: Limits) -> StreamResult {
    let started = Instant::now();
    let url = format!("ws://{addr}{path}?reply=overwrite");
    let (mut ws, connect, sent_at) = match open_and_ask(addr, &url, &spec, limits, started).await {
        Ok(opened) => opened,
        Err(failed) => return *failed,
    };
    let mut checker = Checker::new(spec);
    let mut frames = 0u32;
    let mut wire_bytes = 0u64;
    let mut so_far = String::new();
    let mut error = None;
    while !checker.is_complete() {
        let message = match timeout(limits.read, ws.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(err))) => {
                error = Some(format!("read: {err}"));
                break;
            }
            Ok(None) => {
                error = Some("socket closed before the whole reply".into());
                break;
            }
            Err(_) => {
                error = Some(format!("no frame within {:?}", limits.read));
                break;
            }
        };
        let Message::Text(text) = message else {
            continue;
        };
        let received_ns = unix_nanos();
        let received_at = Instant::now();
        wire_bytes += frame_bytes(text.len());
        let frame: OverwriteFrame = match serde_json::from_str(text.as_str()) {
            Ok(frame) => frame,
            Err(_) => {
                error = Some(format!(
                    "not a Deep Chat frame: {}",
                    truncate(text.as_str())
                ));
                break;
            }
        };
        if let Some(message) = frame.error {
            error = Some(format!("error frame: {message}"));
            break;
        }
        let Some(full) = frame.text else {
            error = Some(format!("frame without text: {}", truncate(text.as_str())));
            break;
        };
        // The first frame of a reply is plain; every later one replaces the text shown.
        let expected_overwrite = frames > 0;
        if frame.overwrite.unwrap_or(false) != expected_overwrite {
            error = Some(format!(
                "frame {} has overwrite {:?}, expected {expected_overwrite}",
                frames + 1,
                frame.overwrite
            ));
            break;
        }
        let Some(added) = full.strip_prefix(so_far.as_str()) else {
            error = Some(format!(
                "frame {} does not extend the text so far: {}",
                frames + 1,
                truncate(&full)
            ));
            break;
        };
        frames += 1;
        checker.feed(added, received_ns, received_at);
        so_far.push_str(added);
        if checker.has_failed() {
            break;
        }
    }
    let _ = timeout(Duration::from_secs(1), ws.close(None)).await;
    let mut result = StreamResult::from_checker(started, connect, sent_at, checker, frames, error);
    result.wire_bytes = wire_bytes;
    result.text_bytes = so_far.len() as u64;
    result
}

#[cfg(test)]
mod tests {
    use super::frame_bytes;

    #[test]
    fn frame_headers_grow_with_the_payload_length() {
        assert_eq!(frame_bytes(0), 2);
        assert_eq!(frame_bytes(125), 127);
        assert_eq!(frame_bytes(126), 130);
        assert_eq!(frame_bytes(65_535), 65_539);
        assert_eq!(frame_bytes(65_536), 65_546);
    }
}
