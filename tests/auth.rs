//! Client authentication through the real server: JWT claims (`nbf`, `aud`, `iss`, leeway)
//! and where a WebSocket's token comes from when the browser also sends other credentials.

mod support;

use serde_json::{json, Value};
use support::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const SECRET_VAR: &str = "DEEPCHAT_PROXY_TEST_AUTH_JWT_SECRET";
const TOKENS_VAR: &str = "DEEPCHAT_PROXY_TEST_AUTH_TOKENS";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn sign(claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"jwt-test-secret"),
    )
    .expect("jwt")
}

/// The HTTP status the proxy answers a one-message POST carrying `token` with.
async fn status_for(proxy: &Proxy, token: &str) -> u16 {
    let body = json!({"messages": [{"role": "user", "text": "hi"}]}).to_string();
    reqwest::Client::new()
        .post(format!("http://{}/chat", proxy.addr))
        .bearer_auth(token)
        .body(body)
        .timeout(PATIENCE)
        .send()
        .await
        .expect("response")
        .status()
        .as_u16()
}

async fn jwt_proxy(upstream: &MockUpstream, extra: &[&str]) -> Proxy {
    std::env::set_var(SECRET_VAR, "jwt-test-secret");
    let mut global = vec!["--jwt-secret-env", SECRET_VAR];
    global.extend_from_slice(extra);
    Proxy::openai(upstream, &global, &[]).await
}

#[tokio::test]
async fn a_jwt_that_is_not_yet_valid_is_refused() {
    let upstream = MockUpstream::start().await;
    let proxy = jwt_proxy(&upstream, &[]).await;
    let later = sign(json!({"sub": "u", "exp": now() + 3600, "nbf": now() + 600}));
    assert_eq!(status_for(&proxy, &later).await, 401);
    upstream.push(Reply::openai_text(&["ok"]));
    let valid_now = sign(json!({"sub": "u", "exp": now() + 3600, "nbf": now() - 10}));
    assert_eq!(status_for(&proxy, &valid_now).await, 200);
    assert_eq!(
        upstream.received().len(),
        1,
        "the early token never reached upstream"
    );
}

#[tokio::test]
async fn audience_and_issuer_are_checked_when_configured() {
    let upstream = MockUpstream::start().await;
    let proxy = jwt_proxy(
        &upstream,
        &["--jwt-audience", "chat", "--jwt-issuer", "https://id.test"],
    )
    .await;
    let exp = now() + 3600;
    upstream.push(Reply::openai_text(&["ok"]));
    let good = sign(json!({"sub": "u", "exp": exp, "aud": "chat", "iss": "https://id.test"}));
    assert_eq!(status_for(&proxy, &good).await, 200);
    for bad in [
        json!({"sub": "u", "exp": exp, "aud": "billing", "iss": "https://id.test"}),
        json!({"sub": "u", "exp": exp, "iss": "https://id.test"}),
        json!({"sub": "u", "exp": exp, "aud": "chat", "iss": "https://evil.test"}),
        json!({"sub": "u", "exp": exp, "aud": "chat"}),
    ] {
        assert_eq!(status_for(&proxy, &sign(bad.clone())).await, 401, "{bad}");
    }
    assert_eq!(upstream.received().len(), 1);
}

#[tokio::test]
async fn without_an_audience_flag_a_token_for_some_audience_is_refused() {
    let upstream = MockUpstream::start().await;
    let proxy = jwt_proxy(&upstream, &[]).await;
    let for_another_service = sign(json!({"sub": "u", "exp": now() + 3600, "aud": "billing"}));
    assert_eq!(status_for(&proxy, &for_another_service).await, 401);
}

#[tokio::test]
async fn the_expiry_leeway_is_a_flag() {
    let upstream = MockUpstream::start().await;
    let just_expired = sign(json!({"sub": "u", "exp": now() - 30}));
    let default_leeway = jwt_proxy(&upstream, &[]).await;
    upstream.push(Reply::openai_text(&["ok"]));
    assert_eq!(status_for(&default_leeway, &just_expired).await, 200);
    let strict = jwt_proxy(&upstream, &["--jwt-leeway", "0"]).await;
    assert_eq!(status_for(&strict, &just_expired).await, 401);
}

/// A WebSocket upgrade with these extra headers.
fn upgrade_request(
    proxy: &Proxy,
    headers: &[(&'static str, &str)],
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut request = proxy.ws_url().into_client_request().expect("request");
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, value.parse().expect("header value"));
    }
    request
}

#[tokio::test]
async fn a_bearer_subprotocol_is_used_when_the_browser_also_sends_basic_auth() {
    std::env::set_var(TOKENS_VAR, "tok-ws");
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--auth-token-env", TOKENS_VAR], &[]).await;
    // A page behind HTTP basic auth: the browser adds its Authorization to the upgrade.
    let behind_basic = upgrade_request(
        &proxy,
        &[
            ("authorization", "Basic dXNlcjpwYXNz"),
            ("sec-websocket-protocol", "bearer.tok-ws"),
        ],
    );
    let (mut ws, _) =
        tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(behind_basic))
            .await
            .expect("handshake in time")
            .expect("admitted by the subprotocol token");
    upstream.push(Reply::openai_text(&["in"]));
    send_user(&mut ws, "hi").await;
    assert_eq!(reply_text(&read_reply(&mut ws, "stop-key").await), "in");

    // A Bearer header is the client's explicit choice and wins over the subprotocol.
    let wrong_bearer = upgrade_request(
        &proxy,
        &[
            ("authorization", "Bearer not-a-token"),
            ("sec-websocket-protocol", "bearer.tok-ws"),
        ],
    );
    let refused = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(wrong_bearer))
        .await
        .expect("answer in time");
    assert!(
        matches!(refused, Err(tokio_tungstenite::tungstenite::Error::Http(ref r)) if r.status() == 401),
        "{refused:?}"
    );
}
