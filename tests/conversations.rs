//! Conversations that outlive the socket, through the real server and real stores: ids
//! validated, a dialogue continued on a new socket (memory, SQLite across a restart, Redis),
//! owners kept apart (token and JWT), Deep Chat's `loadHistory` paging and `DELETE`, a Redis
//! outage that costs only the "not saved" note, turns on one conversation serialized, two
//! replica processes sharing one Redis (dialogue and rate limit), and the TTL.

mod support;

use futures_util::SinkExt;
use serde_json::{json, Value};
use std::time::Duration;
use support::services::{ProxyProcess, RedisServer};
use support::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const ID: &str = "conversation-0001-alpha";
const NOTE: &str = "This turn was not saved";

/// One turn over a fresh socket on `url`: the reply frames up to the stop key.
async fn ask(url: &str, text: &str) -> Vec<Value> {
    let mut ws = connect(url).await;
    send_user(&mut ws, text).await;
    let frames = read_reply(&mut ws, "stop-key").await;
    let _ = ws.close(None).await;
    frames
}

/// (role, text) of every message an upstream request carried.
fn dialogue(request: &Received) -> Vec<(String, String)> {
    request.body["messages"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .map(|m| {
                    (
                        m["role"].as_str().unwrap_or_default().to_owned(),
                        m["content"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn turn(role: &str, text: &str) -> (String, String) {
    (role.to_owned(), text.to_owned())
}

/// `GET|DELETE /chat/history?{query}` with an optional bearer token: status and JSON body.
async fn history(
    addr: std::net::SocketAddr,
    method: &str,
    query: &str,
    token: Option<&str>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/chat/history?{query}");
    let mut request = match method {
        "DELETE" => client.delete(url),
        _ => client.get(url),
    };
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .timeout(PATIENCE)
        .send()
        .await
        .expect("history response");
    let status = response.status().as_u16();
    let body = json_of(response).await;
    (status, body)
}

/// A one-message JSON POST on `/chat?{query}`: status and body.
async fn post(
    addr: std::net::SocketAddr,
    query: &str,
    body: Value,
    token: Option<&str>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("http://{addr}/chat?{query}"))
        .body(body.to_string())
        .timeout(PATIENCE);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("response");
    let status = response.status().as_u16();
    (status, json_of(response).await)
}

/// The response body as JSON (`null` when empty or not JSON).
async fn json_of(response: reqwest::Response) -> Value {
    let bytes = response.bytes().await.unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

fn user(text: &str) -> Value {
    json!({"messages": [{"role": "user", "text": text}]})
}

#[tokio::test]
async fn ids_that_are_not_valid_are_refused_on_every_transport() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &[], &[]).await;
    // WebSocket: the handshake is refused with the reason.
    let url = format!("ws://{}/chat?conversation=short", proxy.addr);
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400)
        }
        other => panic!("expected a 400 handshake, got {other:?}"),
    }
    // A body id on a socket: an error frame, and the socket stays usable.
    let mut ws = connect(&proxy.ws_url()).await;
    let bad = json!({"messages": [{"role": "user", "text": "hi"}], "conversationId": "bad id!"});
    ws.send(Message::text(bad.to_string())).await.expect("send");
    let frames = read_reply(&mut ws, "stop-key").await;
    assert!(
        errors(&frames)[0].contains("16 to 128 characters"),
        "{frames:?}"
    );
    // HTTP: 400 for the URL's id and the body's.
    let (status, body) = post(proxy.addr, "conversation=a%20b", user("hi"), None).await;
    assert_eq!(status, 400, "{body}");
    let mut with_id = user("hi");
    with_id["conversationId"] = json!("x".repeat(129));
    assert_eq!(post(proxy.addr, "", with_id, None).await.0, 400);
    let (status, _) = history(proxy.addr, "GET", "conversation=tiny", None).await;
    assert_eq!(status, 400);
    assert!(upstream.received().is_empty(), "nothing reached the model");
}

#[tokio::test]
async fn a_conversation_continues_on_a_new_socket_in_memory_and_over_http() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &[], &[]).await;
    let url = format!("{}?conversation={ID}", proxy.ws_url());
    upstream.push(Reply::openai_text(&["Hello ", "Ada"]));
    assert_eq!(reply_text(&ask(&url, "I am Ada").await), "Hello Ada");
    upstream.push(Reply::openai_text(&["You are Ada"]));
    assert_eq!(reply_text(&ask(&url, "Who am I?").await), "You are Ada");
    let sent = upstream.wait_requests(2).await;
    assert_eq!(
        dialogue(&sent[1]),
        vec![
            turn("user", "I am Ada"),
            turn("assistant", "Hello Ada"),
            turn("user", "Who am I?")
        ]
    );
    // The same conversation over HTTP, named in the body (Deep Chat's additionalBodyProps).
    upstream.push(Reply::openai_text(&["Still Ada"]));
    let mut body = user("And now?");
    body["conversationId"] = json!(ID);
    let (status, answer) = post(proxy.addr, "", body, None).await;
    assert_eq!((status, answer["text"].as_str()), (200, Some("Still Ada")));
    assert_eq!(dialogue(&upstream.wait_requests(3).await[2]).len(), 5);
    // A socket without an id starts from nothing, as before.
    upstream.push(Reply::openai_text(&["Who?"]));
    ask(&proxy.ws_url(), "Who am I?").await;
    assert_eq!(
        dialogue(&upstream.wait_requests(4).await[3]),
        vec![turn("user", "Who am I?")]
    );
}

#[tokio::test]
async fn a_sqlite_conversation_survives_a_proxy_restart() {
    let dir = std::env::temp_dir().join(format!("dcp-conversations-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("restart.db");
    let _ = std::fs::remove_file(&file);
    let store = format!("sqlite:{}", file.display());
    let upstream = MockUpstream::start().await;
    let first = Proxy::openai(&upstream, &["--store", &store], &[]).await;
    upstream.push(Reply::openai_text(&["Noted: blue"]));
    ask(
        &format!("{}?conversation={ID}", first.ws_url()),
        "My colour is blue",
    )
    .await;
    first.stop().await.expect("stopped");

    let second = Proxy::openai(&upstream, &["--store", &store], &[]).await;
    upstream.push(Reply::openai_text(&["Blue"]));
    ask(
        &format!("{}?conversation={ID}", second.ws_url()),
        "My colour?",
    )
    .await;
    let sent = upstream.wait_requests(2).await;
    assert_eq!(
        dialogue(&sent[1]),
        vec![
            turn("user", "My colour is blue"),
            turn("assistant", "Noted: blue"),
            turn("user", "My colour?")
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

const TOKENS_VAR: &str = "DEEPCHAT_PROXY_TEST_CONVERSATION_TOKENS";
const SECRET_VAR: &str = "DEEPCHAT_PROXY_TEST_CONVERSATION_JWT";

fn jwt(sub: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 3600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": sub, "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(b"conversation-secret"),
    )
    .expect("jwt")
}

/// A socket carrying `token` as Deep Chat does (`bearer.<token>` subprotocol).
async fn ask_as(url: &str, token: &str, text: &str) -> Vec<Value> {
    let mut request = url.into_client_request().expect("request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        format!("bearer.{token}").parse().expect("header"),
    );
    let (mut ws, _) = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(request))
        .await
        .expect("connect in time")
        .expect("connect");
    send_user(&mut ws, text).await;
    let frames = read_reply(&mut ws, "stop-key").await;
    let _ = ws.close(None).await;
    frames
}

#[tokio::test]
async fn another_principal_gets_404_and_never_the_dialogue() {
    std::env::set_var(TOKENS_VAR, "alice-token,bob-token");
    std::env::set_var(SECRET_VAR, "conversation-secret");
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(
        &upstream,
        &[
            "--auth-token-env",
            TOKENS_VAR,
            "--jwt-secret-env",
            SECRET_VAR,
        ],
        &[],
    )
    .await;
    let url = format!("{}?conversation={ID}", proxy.ws_url());
    let query = format!("conversation={ID}");
    for (alice, bob) in [
        ("alice-token".to_owned(), "bob-token".to_owned()),
        (jwt("alice"), jwt("bob")),
    ] {
        upstream.push(Reply::openai_text(&["secret noted"]));
        ask_as(&url, &alice, "my secret is 42").await;
        let (status, page) = history(proxy.addr, "GET", &query, Some(&alice)).await;
        assert_eq!(status, 200);
        assert_eq!(page[0]["text"], "my secret is 42");
        let (status, body) = history(proxy.addr, "GET", &query, Some(&bob)).await;
        assert_eq!(status, 404, "{body}");
        assert!(!body.to_string().contains("42"));
        // Same answer as an id that never existed.
        let (status, missing) = history(
            proxy.addr,
            "GET",
            "conversation=never-existed-0000",
            Some(&bob),
        )
        .await;
        assert_eq!((status, &missing), (404, &body));
        assert_eq!(
            history(proxy.addr, "DELETE", &query, Some(&bob)).await.0,
            404
        );
        // Bob chatting on the id starts his own conversation: none of Alice's turns go upstream.
        upstream.push(Reply::openai_text(&["hi bob"]));
        ask_as(&url, &bob, "what is the secret?").await;
        let sent = upstream.received();
        assert_eq!(
            dialogue(sent.last().expect("bob's request")),
            vec![turn("user", "what is the secret?")]
        );
        // Alice's conversation is intact; clean up for the JWT round.
        assert_eq!(
            history(proxy.addr, "GET", &query, Some(&alice)).await.1[1]["text"],
            "secret noted"
        );
        assert_eq!(
            history(proxy.addr, "DELETE", &query, Some(&alice)).await.0,
            204
        );
        assert_eq!(
            history(proxy.addr, "DELETE", &query, Some(&bob)).await.0,
            204
        );
    }
    assert_eq!(
        history(proxy.addr, "GET", &query, None).await.0,
        401,
        "no token, no history"
    );
}

#[tokio::test]
async fn history_pages_like_load_history_and_delete_forgets() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &[], &[]).await;
    let url = format!("{}?conversation={ID}", proxy.ws_url());
    for i in 1..=3 {
        upstream.push(Reply::openai_text(&[&format!("answer {i}")]));
        ask(&url, &format!("question {i}")).await;
    }
    let query = format!("conversation={ID}");
    let texts = |page: &Value| -> Vec<Value> {
        page.as_array()
            .expect("array")
            .iter()
            .map(|m| m.get("text").cloned().unwrap_or(m.clone()))
            .collect()
    };
    let (status, all) = history(proxy.addr, "GET", &query, None).await;
    assert_eq!(status, 200);
    assert_eq!(all[0], json!({"role": "user", "text": "question 1"}));
    assert_eq!(all[1], json!({"role": "ai", "text": "answer 1"}));
    assert_eq!(
        all.as_array().map(Vec::len),
        Some(7),
        "six messages, then false"
    );
    let newest = history(proxy.addr, "GET", &format!("{query}&index=0&size=4"), None)
        .await
        .1;
    assert_eq!(
        texts(&newest),
        vec![
            json!("question 2"),
            json!("answer 2"),
            json!("question 3"),
            json!("answer 3")
        ]
    );
    let older = history(proxy.addr, "GET", &format!("{query}&index=1&size=4"), None)
        .await
        .1;
    assert_eq!(
        texts(&older),
        vec![json!("question 1"), json!("answer 1"), json!(false)]
    );
    // CORS as for the chat path: the preflight allows GET and DELETE; a foreign origin is refused.
    let preflight = reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            format!("http://{}/chat/history", proxy.addr),
        )
        .header("origin", "http://localhost:3000")
        .header("access-control-request-method", "DELETE")
        .send()
        .await
        .expect("preflight");
    assert_eq!(preflight.status(), 204);
    assert!(preflight.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap_or_default()
        .contains("DELETE"));
    let foreign = reqwest::Client::new()
        .get(format!("http://{}/chat/history?{query}", proxy.addr))
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("foreign");
    assert_eq!(foreign.status(), 403);

    assert_eq!(history(proxy.addr, "DELETE", &query, None).await.0, 204);
    assert_eq!(history(proxy.addr, "GET", &query, None).await.0, 404);
    assert_eq!(history(proxy.addr, "DELETE", &query, None).await.0, 404);
    upstream.push(Reply::openai_text(&["fresh"]));
    ask(&url, "after delete").await;
    assert_eq!(
        dialogue(&upstream.wait_requests(4).await[3]),
        vec![turn("user", "after delete")]
    );
}

async fn metrics(addr: std::net::SocketAddr) -> String {
    reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body")
}

/// The sum of every series of `name` whose labels contain `label` (0 when absent).
fn counter_sum(metrics: &str, name: &str, label: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(name) && line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_redis_outage_costs_only_a_note_and_the_reply_arrives_whole() {
    let mut redis = RedisServer::start();
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--store", &redis.url()], &[]).await;
    let url = format!("{}?conversation={ID}", proxy.ws_url());
    let mut ws = connect(&url).await;
    upstream.push(Reply::openai_text(&["one"]));
    send_user(&mut ws, "first").await;
    let first = read_reply(&mut ws, "stop-key").await;
    assert_eq!(reply_text(&first), "one", "saved while Redis is up");

    let errors_before = counter_sum(
        &metrics(proxy.addr).await,
        "deepchat_proxy_store_errors_total",
        "store=\"redis\"",
    );
    redis.kill();
    upstream.push(Reply::openai_text(&["the whole ", "second ", "reply"]));
    send_user(&mut ws, "second").await;
    let frames = read_reply(&mut ws, "stop-key").await;
    let text = reply_text(&frames);
    assert!(text.starts_with("the whole second reply"), "{frames:?}");
    assert_eq!(text.matches(NOTE).count(), 1, "told once: {frames:?}");
    assert!(errors(&frames).is_empty(), "{frames:?}");
    // The socket's own memory stood in for the store it could not read.
    let sent = upstream.wait_requests(2).await;
    assert_eq!(dialogue(&sent[1]).len(), 3, "{:?}", dialogue(&sent[1]));
    let errors_after = counter_sum(
        &metrics(proxy.addr).await,
        "deepchat_proxy_store_errors_total",
        "store=\"redis\"",
    );
    assert!(
        errors_after > errors_before,
        "{errors_before} -> {errors_after}"
    );
    let latency = metrics(proxy.addr).await;
    assert!(
        latency.contains("deepchat_proxy_store_seconds"),
        "latency histogram"
    );

    // Over HTTP too: the JSON answer and the SSE stream carry the whole reply and the note.
    upstream.push(Reply::openai_text(&["json ", "reply"]));
    let (status, answer) = post(
        proxy.addr,
        &format!("conversation={ID}"),
        user("third"),
        None,
    )
    .await;
    let text = answer["text"].as_str().unwrap_or_default();
    assert_eq!(status, 200, "{answer}");
    assert!(
        text.starts_with("json reply") && text.matches(NOTE).count() == 1,
        "{text}"
    );
    upstream.push(Reply::openai_text(&["sse ", "reply"]));
    let events = reqwest::Client::new()
        .post(format!("http://{}/chat?conversation={ID}", proxy.addr))
        .header("accept", "text/event-stream")
        .body(user("fourth").to_string())
        .timeout(PATIENCE)
        .send()
        .await
        .expect("sse")
        .text()
        .await
        .expect("sse body");
    assert!(events.contains(r#"data: {"text":"sse "}"#), "{events}");
    assert_eq!(events.matches(NOTE).count(), 1, "{events}");
}

#[tokio::test]
async fn two_sockets_on_one_conversation_take_turns() {
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &[], &[]).await;
    let url = format!("{}?conversation={ID}", proxy.ws_url());
    let slow = |parts: &[&str]| {
        let mut steps = Vec::new();
        for part in parts {
            steps.push(Step::Bytes(openai_chunk(part)));
            steps.push(Step::Wait(Duration::from_millis(150)));
        }
        steps.push(Step::Bytes(b"data: [DONE]\n\n".to_vec()));
        Reply::sse(steps)
    };
    upstream.push(slow(&["a1 ", "a2 ", "a3"]));
    upstream.push(slow(&["b1 ", "b2"]));
    let mut first = connect(&url).await;
    let mut second = connect(&url).await;
    send_user(&mut first, "from A").await;
    // B asks while A's reply is streaming.
    let a_first = next_message(&mut first).await;
    send_user(&mut second, "from B").await;
    let mut a_frames =
        vec![serde_json::from_str::<Value>(a_first.to_text().expect("text")).expect("json")];
    a_frames.extend(read_reply(&mut first, "stop-key").await);
    let b_frames = read_reply(&mut second, "stop-key").await;
    assert_eq!(reply_text(&a_frames), "a1 a2 a3");
    assert_eq!(reply_text(&b_frames), "b1 b2");
    // B's turn started after A's was saved: it carries A's whole turn.
    let sent = upstream.wait_requests(2).await;
    assert_eq!(
        dialogue(&sent[1]),
        vec![
            turn("user", "from A"),
            turn("assistant", "a1 a2 a3"),
            turn("user", "from B")
        ]
    );
}

#[tokio::test]
async fn two_replica_processes_share_conversations_and_the_rate_limit() {
    let redis = RedisServer::start();
    let upstream = MockUpstream::start().await;
    let base = format!("http://{}/v1", upstream.addr);
    let store = redis.url();
    let args = [
        "--store",
        &store,
        "--rate-limit",
        "3",
        "--retries",
        "0",
        "openai",
        "--base-url",
        &base,
        "--model",
        "m",
        "--api-key-env",
        "NO_SUCH_KEY",
    ];
    let a = ProxyProcess::start(&args, &[]);
    let b = ProxyProcess::start(&args, &[]);
    let query = format!("conversation={ID}");
    upstream.push(Reply::openai_text(&["Hi Grace"]));
    ask(&a.ws_url(&query), "I am Grace").await;
    upstream.push(Reply::openai_text(&["Grace"]));
    ask(&b.ws_url(&query), "Who am I?").await;
    let sent = upstream.wait_requests(2).await;
    assert_eq!(
        dialogue(&sent[1]),
        vec![
            turn("user", "I am Grace"),
            turn("assistant", "Hi Grace"),
            turn("user", "Who am I?")
        ]
    );
    // Two requests so far, one on each replica; the limit is 3 a minute for both together.
    upstream.push(Reply::openai_text(&["third"]));
    assert_eq!(post(a.addr, "", user("three"), None).await.0, 200);
    let (status, body) = post(b.addr, "", user("four"), None).await;
    assert_eq!(
        status, 429,
        "the fourth request is over the shared limit: {body}"
    );
    assert_eq!(post(a.addr, "", user("five"), None).await.0, 429);
}

#[tokio::test]
async fn idle_conversations_expire_in_every_store() {
    let redis = RedisServer::start();
    let dir = std::env::temp_dir().join(format!("dcp-ttl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let sqlite = format!("sqlite:{}", dir.join("ttl.db").display());
    for store in ["memory".to_owned(), sqlite, redis.url()] {
        let upstream = MockUpstream::start().await;
        let proxy = Proxy::openai(&upstream, &["--store", &store, "--history-ttl", "1"], &[]).await;
        let url = format!("{}?conversation={ID}", proxy.ws_url());
        upstream.push(Reply::openai_text(&["soon gone"]));
        ask(&url, "remember me").await;
        let query = format!("conversation={ID}");
        assert_eq!(
            history(proxy.addr, "GET", &query, None).await.0,
            200,
            "{store}"
        );
        tokio::time::sleep(Duration::from_millis(2200)).await;
        assert_eq!(
            history(proxy.addr, "GET", &query, None).await.0,
            404,
            "{store}"
        );
        upstream.push(Reply::openai_text(&["who?"]));
        ask(&url, "do you remember?").await;
        assert_eq!(
            dialogue(&upstream.wait_requests(2).await[1]),
            vec![turn("user", "do you remember?")],
            "{store}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
