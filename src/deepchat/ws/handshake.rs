//! The WebSocket upgrade handshake, hand-written on hyper (RFC 6455 section 4.2.2).

use crate::response::{self, Body};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// True when the request asks for a WebSocket upgrade.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    header_has_token(headers, hyper::header::CONNECTION, "upgrade")
        && header_has_token(headers, hyper::header::UPGRADE, "websocket")
}

fn header_has_token(headers: &HeaderMap, name: hyper::header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .map(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// The handshake answer: 101 for a valid upgrade request, else the 400 to send instead.
/// Browsers drop a socket whose reply names no subprotocol they offered, so the first offered
/// one is echoed.
pub fn accept(headers: &HeaderMap) -> Response<Body> {
    let version_ok = headers
        .get(hyper::header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    let key = headers.get(hyper::header::SEC_WEBSOCKET_KEY);
    let (Some(key), true) = (key, version_ok) else {
        let mut response = response::plain(
            StatusCode::BAD_REQUEST,
            "WebSocket upgrade needs Sec-WebSocket-Key and Sec-WebSocket-Version: 13",
        );
        response.headers_mut().insert(
            hyper::header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return response;
    };
    let mut response = Response::new(response::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let out = response.headers_mut();
    out.insert(
        hyper::header::CONNECTION,
        HeaderValue::from_static("upgrade"),
    );
    out.insert(
        hyper::header::UPGRADE,
        HeaderValue::from_static("websocket"),
    );
    let accept_key = derive_accept_key(key.as_bytes());
    if let Ok(value) = HeaderValue::from_str(&accept_key) {
        out.insert(hyper::header::SEC_WEBSOCKET_ACCEPT, value);
    }
    if let Some(protocol) = first_protocol(headers) {
        if let Ok(value) = HeaderValue::from_str(&protocol) {
            out.insert(hyper::header::SEC_WEBSOCKET_PROTOCOL, value);
        }
    }
    response
}

/// The protocol to answer with: the first offered one that is not a `bearer.` token carrier
/// (so the token is not echoed needlessly), else the first offered.
fn first_protocol(headers: &HeaderMap) -> Option<String> {
    let offered: Vec<&str> = headers
        .get_all(hyper::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    offered
        .iter()
        .find(|p| !p.starts_with(crate::access::auth::BEARER_PROTOCOL_PREFIX))
        .or(offered.first())
        .map(|p| (*p).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn accept_key_follows_rfc6455_example() {
        let request = headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        assert!(is_upgrade(&request));
        let response = accept(&request);
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(
            response.headers()["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert!(response.headers().get("sec-websocket-protocol").is_none());
    }

    #[test]
    fn echoes_first_offered_subprotocol() {
        let request = headers(&[
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-protocol", "alpha, beta"),
        ]);
        let response = accept(&request);
        assert_eq!(response.headers()["sec-websocket-protocol"], "alpha");
    }

    #[test]
    fn rejects_missing_key_or_wrong_version() {
        let no_key = headers(&[("sec-websocket-version", "13")]);
        assert_eq!(accept(&no_key).status(), 400);
        let old = headers(&[
            ("sec-websocket-version", "8"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        assert_eq!(accept(&old).status(), 400);
        assert!(!is_upgrade(&headers(&[("connection", "close")])));
    }
}
