//! The tool loop when things go wrong: a tool that fails, throws, hangs or returns 10 MB, a
//! model that never stops calling tools or names a tool it was not offered, a server that is
//! down or changes its tool list, two servers that offer one name, a browser that leaves while
//! a tool runs, and a server that would read the proxy's secrets from its environment.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::mcp::{
    everything_stdio, fixture_stdio, openai_tool_calls, openai_tool_results, shown,
};
use support::*;

const STOP: &str = "stop-key";

/// A marker file for the fixture's `hang` calls (`started`, then `cancelled`), unique per
/// test.
fn marker(test: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "deepchat-proxy-{test}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let _ = std::fs::remove_file(&path);
    path
}

/// Asks once over a new socket; returns the frames and the upstream's tool results of the
/// second request.
async fn ask(
    proxy: &Proxy,
    upstream: &MockUpstream,
    question: &str,
) -> (Vec<Value>, Vec<(String, String)>) {
    let mut ws = connect(&proxy.ws_url()).await;
    send_user(&mut ws, question).await;
    let frames = read_reply(&mut ws, STOP).await;
    let requests = upstream.wait_requests(2).await;
    (frames, openai_tool_results(&requests[1].body))
}

#[tokio::test]
async fn a_failing_or_throwing_tool_is_a_result_the_model_sees_not_an_error() {
    let upstream = MockUpstream::start().await;
    let mcp = fixture_stdio("fx", &marker("fail"));
    let proxy = Proxy::openai(&upstream, &["--mcp", &mcp], &[]).await;
    upstream.push(openai_tool_calls(&[("fail", "{}"), ("crash", "{}")]));
    upstream.push(Reply::openai_text(&["Both tools failed."]));
    let (frames, results) = ask(&proxy, &upstream, "try").await;
    assert!(errors(&frames).is_empty(), "{frames:?}");
    assert_eq!(shown(&frames), "Both tools failed.");
    assert_eq!(
        results[0],
        ("call_t0".to_owned(), "the disk is on fire".to_owned())
    );
    assert!(results[1].1.contains("fixture crashed"), "{results:?}");
}

#[tokio::test]
async fn a_hanging_tool_is_cancelled_at_the_tool_timeout_and_the_model_is_told() {
    let upstream = MockUpstream::start().await;
    let marker = marker("timeout");
    let mcp = fixture_stdio("fx", &marker);
    let proxy = Proxy::openai(&upstream, &["--mcp", &mcp, "--tool-timeout", "1"], &[]).await;
    upstream.push(openai_tool_calls(&[("hang", "{}")]));
    upstream.push(Reply::openai_text(&["It timed out."]));
    let (frames, results) = ask(&proxy, &upstream, "hang").await;
    assert_eq!(shown(&frames), "It timed out.");
    assert_eq!(
        results[0].1,
        "the tool did not answer within 1 s and was cancelled"
    );
    wait_for_file(&marker, "cancelled").await;
}

#[tokio::test]
async fn leaving_while_a_tool_runs_cancels_the_call_on_the_server() {
    let upstream = MockUpstream::start().await;
    let marker = marker("leave");
    let mcp = fixture_stdio("fx", &marker);
    let proxy = Proxy::openai(&upstream, &["--mcp", &mcp], &[]).await;
    upstream.push(openai_tool_calls(&[("hang", "{}")]));
    let mut ws = connect(&proxy.ws_url()).await;
    send_user(&mut ws, "hang").await;
    let status = next_message(&mut ws).await;
    assert!(
        status.to_text().expect("text").contains("Running hang…"),
        "{status:?}"
    );
    drop(ws);
    wait_for_file(&marker, "cancelled").await;
    // Nothing more went upstream: the loop ended with the socket.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(upstream.received().len(), 1);
}

async fn wait_for_file(path: &std::path::Path, content: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if std::fs::read_to_string(path).is_ok_and(|text| text == content) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never said {content:?}: the call was not cancelled on the server",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn ten_megabytes_of_output_are_cut_to_the_cap_before_going_upstream() {
    let upstream = MockUpstream::start().await;
    let mcp = fixture_stdio("fx", &marker("huge"));
    let proxy = Proxy::openai(
        &upstream,
        &["--mcp", &mcp, "--max-tool-output", "4096"],
        &[],
    )
    .await;
    upstream.push(openai_tool_calls(&[("huge", "{}")]));
    upstream.push(Reply::openai_text(&["That was long."]));
    let (frames, results) = ask(&proxy, &upstream, "huge").await;
    assert_eq!(shown(&frames), "That was long.");
    let content = &results[0].1;
    assert!(
        content.len() <= 4096,
        "{} bytes went upstream",
        content.len()
    );
    assert!(content.starts_with("xxxx"));
    assert!(content.ends_with("[output cut: the tool returned more than 4096 bytes]"));
}

#[tokio::test]
async fn a_model_that_keeps_calling_tools_is_stopped_with_a_clear_error() {
    let upstream = MockUpstream::start().await;
    let mcp = everything_stdio("everything");
    let proxy = Proxy::openai(&upstream, &["--mcp", &mcp, "--max-tool-rounds", "2"], &[]).await;
    for _ in 0..3 {
        upstream.push(openai_tool_calls(&[("echo", r#"{"message":"again"}"#)]));
    }
    let mut ws = connect(&proxy.ws_url()).await;
    send_user(&mut ws, "loop").await;
    let frames = read_reply(&mut ws, STOP).await;
    assert_eq!(
        errors(&frames),
        ["the model kept calling tools: stopped after 2 rounds (--max-tool-rounds)"]
    );
    // Two rounds ran: three requests, the last one's calls never run.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(upstream.received().len(), 3);
}

#[tokio::test]
async fn filters_decide_what_is_offered_and_an_unoffered_tool_never_runs() {
    let upstream = MockUpstream::start().await;
    let mcp = everything_stdio("everything");
    let proxy = Proxy::openai(
        &upstream,
        &[
            "--mcp",
            &mcp,
            "--mcp-allow-tool",
            "get-*",
            "--mcp-allow-tool",
            "echo",
            "--mcp-deny-tool",
            "get-env",
        ],
        &[],
    )
    .await;
    upstream.push(openai_tool_calls(&[
        ("get-env", "{}"),
        ("echo", r#"{"message":"hi"}"#),
    ]));
    upstream.push(Reply::openai_text(&["ok"]));
    let (_, results) = ask(&proxy, &upstream, "env").await;
    let requests = upstream.received();
    let offered: Vec<&str> = requests[0].body["tools"]
        .as_array()
        .expect("tools offered")
        .iter()
        .filter_map(|tool| tool["function"]["name"].as_str())
        .collect();
    assert!(
        offered.contains(&"echo") && offered.contains(&"get-sum"),
        "{offered:?}"
    );
    assert!(
        !offered.contains(&"get-env") && !offered.contains(&"trigger-long-running-operation"),
        "{offered:?}"
    );
    assert_eq!(results[0].1, "there is no tool named \"get-env\"");
    assert_eq!(results[1].1, "Echo: hi");
    // Counted, the unoffered name under "unknown" so a model cannot grow the label set.
    let metrics = reqwest::get(format!("http://{}/metrics", proxy.addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    for series in [
        r#"deepchat_proxy_tool_calls_total{tool="unknown",outcome="error"}"#,
        r#"deepchat_proxy_tool_calls_total{tool="echo",outcome="ok"}"#,
    ] {
        assert!(
            metrics.lines().any(|line| line.starts_with(series)),
            "{series} in {metrics}"
        );
    }
    assert!(
        !metrics.contains(r#"tool="get-env""#),
        "an unoffered name became a label"
    );
}

#[tokio::test]
async fn stdio_servers_never_see_the_proxys_secrets() {
    std::env::set_var("DEEPCHAT_PROXY_TEST_TOOLS_KEY", "sk-secret-7f3a9");
    std::env::set_var("DEEPCHAT_PROXY_TEST_PASSED", "visible-value");
    let upstream = MockUpstream::start().await;
    let mcp = everything_stdio("everything");
    let base = format!("http://{}/v1", upstream.addr);
    let proxy = Proxy::start(&[
        "--mcp",
        &mcp,
        "--mcp-env",
        "DEEPCHAT_PROXY_TEST_PASSED",
        "--retries",
        "0",
        "openai",
        "--base-url",
        &base,
        "--model",
        "m",
        "--api-key-env",
        "DEEPCHAT_PROXY_TEST_TOOLS_KEY",
    ])
    .await;
    upstream.push(openai_tool_calls(&[("get-env", "{}")]));
    upstream.push(Reply::openai_text(&["ok"]));
    let (_, results) = ask(&proxy, &upstream, "env").await;
    let env: Value = serde_json::from_str(&results[0].1).expect("get-env prints JSON");
    assert_eq!(env["DEEPCHAT_PROXY_TEST_PASSED"], "visible-value");
    assert!(
        !results[0].1.contains("sk-secret-7f3a9"),
        "the API key leaked: {}",
        results[0].1
    );
    let names: Vec<&String> = env.as_object().expect("object").keys().collect();
    assert!(
        names.iter().all(|name| [
            "PATH",
            "HOME",
            "LANG",
            "LC_ALL",
            "TMPDIR",
            "DEEPCHAT_PROXY_TEST_PASSED"
        ]
        .contains(&name.as_str())),
        "only the allowed variables: {names:?}"
    );
}

#[tokio::test]
async fn a_server_that_is_down_is_reported_and_replies_go_on_without_tools() {
    let upstream = MockUpstream::start().await;
    let mcp = everything_stdio("everything");
    let proxy = Proxy::openai(
        &upstream,
        &[
            "--mcp",
            "broken=/nonexistent/mcp-server --stdio",
            "--mcp",
            &mcp,
        ],
        &[],
    )
    .await;
    let ready = reqwest::get(format!("http://{}/readyz", proxy.addr))
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200);
    let body = ready.text().await.expect("body");
    assert!(
        body.contains("mcp broken: down: cannot start \"/nonexistent/mcp-server\""),
        "{body}"
    );
    assert!(body.contains("mcp everything: up ("), "{body}");
    upstream.push(Reply::openai_text(&["fine"]));
    let mut ws = connect(&proxy.ws_url()).await;
    send_user(&mut ws, "hi").await;
    assert_eq!(shown(&read_reply(&mut ws, STOP).await), "fine");
}

#[tokio::test]
async fn a_changed_tool_list_is_offered_from_the_next_reply() {
    let upstream = MockUpstream::start().await;
    let mcp = fixture_stdio("fx", &marker("list"));
    let proxy = Proxy::openai(&upstream, &["--mcp", &mcp], &[]).await;
    upstream.push(openai_tool_calls(&[("add-tool", "{}")]));
    upstream.push(Reply::openai_text(&["added"]));
    let (_, results) = ask(&proxy, &upstream, "add").await;
    assert_eq!(results[0].1, "added");
    let offered = |request: &Received| -> Vec<String> {
        request.body["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|tool| tool["function"]["name"].as_str().map(str::to_owned))
            .collect()
    };
    assert!(!offered(&upstream.received()[0]).contains(&"late".to_owned()));
    // The notification is handled by the server's supervisor: allow it a moment.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut asked = 2;
    loop {
        upstream.push(Reply::openai_text(&["ok"]));
        let mut ws = connect(&proxy.ws_url()).await;
        send_user(&mut ws, "again").await;
        read_reply(&mut ws, STOP).await;
        asked += 1;
        let requests = upstream.wait_requests(asked).await;
        if offered(&requests[asked - 1]).contains(&"late".to_owned()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new tool was never offered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_name_two_servers_share_is_offered_once_and_called_on_the_first() {
    let (first, second) = (marker("first"), marker("second"));
    let one = fixture_stdio("one", &first);
    let two = fixture_stdio("two", &second);
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(&upstream, &["--mcp", &one, "--mcp", &two], &[]).await;
    upstream.push(openai_tool_calls(&[("whoami", "{}")]));
    upstream.push(Reply::openai_text(&["done"]));
    let (_, results) = ask(&proxy, &upstream, "who?").await;
    let requests = upstream.received();
    let mut offered: Vec<&str> = requests[0].body["tools"]
        .as_array()
        .expect("tools offered")
        .iter()
        .filter_map(|tool| tool["function"]["name"].as_str())
        .collect();
    let listed = offered.len();
    offered.sort_unstable();
    offered.dedup();
    assert_eq!(listed, offered.len(), "a shared name offered twice");
    assert!(offered.contains(&"whoami"), "{offered:?}");
    assert_eq!(results[0].1, format!("fixture {}", first.display()));
}

#[tokio::test]
async fn the_start_line_and_check_say_which_servers_are_up() {
    let mcp = everything_stdio("everything");
    let args = [
        "--mcp",
        mcp.as_str(),
        "--mcp",
        "broken=/nonexistent/mcp-server",
        "--mcp-deny-tool",
        "get-env",
        "openai",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--model",
        "m",
        "--api-key-env",
        "DEEPCHAT_PROXY_TEST_NO_SUCH_KEY",
    ];
    let ((mut child, _, _), started) = support::binary::spawn_reporting(&args, &[]);
    let line = started["message"]
        .as_str()
        .or(started["fields"]["message"].as_str())
        .unwrap_or_default()
        .to_owned();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.contains("MCP servers everything, broken (at most 4 tool rounds, 30 s per call)"),
        "{started}"
    );
    let offered = line.split("tools: ").nth(1).expect("the tools part");
    assert!(offered.contains(" offered from MCP everything ("), "{line}");
    assert!(
        offered.contains("broken (down: cannot start \"/nonexistent/mcp-server\""),
        "{line}"
    );

    // --check validates the flags without starting any server.
    let checked = std::process::Command::new(support::binary::BIN)
        .args(["--check", "--mcp", "bad name=x"])
        .args(&args[6..])
        .output()
        .expect("run --check");
    assert_eq!(checked.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&checked.stderr);
    assert!(
        stderr.contains("the server name \"bad name\" must be letters, digits"),
        "{stderr}"
    );
}

#[tokio::test]
async fn an_http_servers_token_goes_to_that_server_only() {
    std::env::set_var("DEEPCHAT_PROXY_TEST_MCP_TOKEN", "mcp-secret-51d2");
    // A stand-in MCP server that records the first request's head and refuses it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("web=http://{}/mcp", listener.local_addr().expect("addr"));
    let recorded = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && socket.read(&mut byte).await.unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        let _ = socket
            .write_all(
                b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            )
            .await;
        String::from_utf8_lossy(&head).to_lowercase()
    });
    let upstream = MockUpstream::start().await;
    let proxy = Proxy::openai(
        &upstream,
        &[
            "--mcp",
            &url,
            "--mcp-token-env",
            "web=DEEPCHAT_PROXY_TEST_MCP_TOKEN",
        ],
        &[],
    )
    .await;
    let head = tokio::time::timeout(PATIENCE, recorded)
        .await
        .expect("the MCP server was contacted")
        .expect("recorded");
    assert!(
        head.contains("authorization: bearer mcp-secret-51d2"),
        "{head}"
    );
    upstream.push(Reply::openai_text(&["ok"]));
    let mut ws = connect(&proxy.ws_url()).await;
    send_user(&mut ws, "hi").await;
    read_reply(&mut ws, STOP).await;
    let sent = &upstream.received()[0];
    assert!(
        sent.headers
            .iter()
            .all(|(_, value)| !value.contains("mcp-secret-51d2")),
        "the MCP token went to the model's upstream: {:?}",
        sent.headers
    );
}

#[test]
fn a_token_for_a_stdio_server_or_an_unset_variable_is_refused() {
    let check = |extra: &[&str]| {
        let output = std::process::Command::new(support::binary::BIN)
            .args([
                "--check",
                "--mcp",
                "local=node x.js",
                "--mcp",
                "web=https://mcp.example.com/mcp",
            ])
            .args(extra)
            .args([
                "openai",
                "--model",
                "m",
                "--base-url",
                "http://127.0.0.1:9/v1",
            ])
            .output()
            .expect("run --check");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stderr) = check(&["--mcp-token-env", "local=HOME"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("\"local\" is a command; give a stdio server its secrets with --mcp-env"),
        "{stderr}"
    );
    let (code, stderr) = check(&["--mcp-token-env", "web=DEEPCHAT_PROXY_TEST_UNSET_TOKEN"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("DEEPCHAT_PROXY_TEST_UNSET_TOKEN is empty or unset"),
        "{stderr}"
    );
}
