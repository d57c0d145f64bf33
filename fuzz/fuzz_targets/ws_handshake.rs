//! The WebSocket upgrade handshake on arbitrary request headers: never panics, answers 101
//! exactly when a key and version 13 are offered, and echoes only a subprotocol that was offered.
//!
//! Input: header lines `name: value`; lines that are not valid headers are skipped.

#![no_main]

use deepchat_proxy::deepchat::ws;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let value = line[colon + 1..].trim_ascii();
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    let _ = ws::is_upgrade(&headers);
    let response = ws::accept(&headers);
    let offered = headers.contains_key("sec-websocket-key")
        && headers
            .get("sec-websocket-version")
            .is_some_and(|v| v.as_bytes() == b"13");
    assert_eq!(response.status() == 101, offered, "{headers:?}");
    if let Some(protocol) = response.headers().get("sec-websocket-protocol") {
        let echoed = protocol.as_bytes();
        let was_offered = headers
            .get_all("sec-websocket-protocol")
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .any(|p| p.trim_ascii() == echoed);
        assert!(was_offered, "echoed {protocol:?} from {headers:?}");
    }
});
