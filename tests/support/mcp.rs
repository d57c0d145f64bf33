//! The MCP servers the tool tests start: the reference `server-everything` from npm (stdio, or
//! streamable HTTP on a port of its own) and `tests/mcp/fixture.mjs` (failing, hanging, huge
//! tools), all installed by `npm ci` in tests/mcp (scripts/test-all does it).

#![allow(dead_code)]

use std::path::PathBuf;

fn mcp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp")
}

fn installed(relative: &str) -> String {
    let path = mcp_dir().join(relative);
    assert!(
        path.exists(),
        "{} is missing: run `npm ci` in tests/mcp (scripts/test-all does)",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

/// `--mcp` value starting the reference server over stdio as `name`.
pub fn everything_stdio(name: &str) -> String {
    let script = installed("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    format!("{name}=node {script} stdio")
}

/// `--mcp` value starting the fixture server as `name`; it writes `cancelled` to `marker`
/// when a `hang` call is cancelled.
pub fn fixture_stdio(name: &str, marker: &std::path::Path) -> String {
    installed("node_modules/@modelcontextprotocol/sdk/package.json");
    let script = mcp_dir().join("fixture.mjs");
    format!("{name}=node {} {}", script.display(), marker.display())
}

/// The reference server over streamable HTTP on a free loopback port; killed on drop.
pub struct EverythingHttp {
    child: std::process::Child,
    pub url: String,
}

impl EverythingHttp {
    pub fn start() -> EverythingHttp {
        let script =
            installed("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
        // It listens on PORT (all interfaces; the test talks to it on loopback only), so a
        // free port is found first.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = std::process::Command::new("node")
            .args([script.as_str(), "streamableHttp"])
            .env("PORT", port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start server-everything over HTTP");
        let deadline = std::time::Instant::now() + super::PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "server-everything HTTP did not listen"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        EverythingHttp {
            child,
            url: format!("http://127.0.0.1:{port}/mcp"),
        }
    }
}

impl Drop for EverythingHttp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An OpenAI Chat stream in which the model calls these tools (`(name, arguments JSON)`), the
/// arguments in two pieces, then stops for tool use, as OpenAI streams calls.
pub fn openai_tool_calls(calls: &[(&str, &str)]) -> super::Reply {
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        let chunk = serde_json::json!({
            "id": "chatcmpl-tools", "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
        });
        super::Step::Bytes(format!("data: {chunk}\n\n").into_bytes())
    };
    let mut steps = Vec::new();
    for (index, (name, arguments)) in calls.iter().enumerate() {
        let (first, second) = arguments.split_at(arguments.len() / 2);
        steps.push(chunk(
            serde_json::json!({"tool_calls": [{"index": index, "id": format!("call_t{index}"),
                "type": "function", "function": {"name": name, "arguments": first}}]}),
            None,
        ));
        steps.push(chunk(
            serde_json::json!({"tool_calls": [{"index": index, "function": {"arguments": second}}]}),
            None,
        ));
    }
    steps.push(chunk(serde_json::json!({}), Some("tool_calls")));
    steps.push(super::Step::Bytes(b"data: [DONE]\n\n".to_vec()));
    super::Reply::sse(steps)
}

/// What Deep Chat shows of a stop-key reply: text appended, `overwrite: true` replacing it.
pub fn shown(frames: &[serde_json::Value]) -> String {
    let mut text = String::new();
    for frame in &frames[..frames.len().saturating_sub(1)] {
        let Some(piece) = frame.get("text").and_then(serde_json::Value::as_str) else {
            continue;
        };
        if frame.get("overwrite") == Some(&serde_json::Value::Bool(true)) {
            text = piece.to_owned();
        } else {
            text.push_str(piece);
        }
    }
    text
}

/// The tool messages (`role: tool`) of an OpenAI Chat request body, as `(tool_call_id, content)`.
pub fn openai_tool_results(body: &serde_json::Value) -> Vec<(String, String)> {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["role"] == "tool")
        .map(|m| {
            (
                m["tool_call_id"].as_str().unwrap_or("").to_owned(),
                m["content"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}
