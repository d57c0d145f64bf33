//! The demo page served at `GET /` by the `demo` provider: Deep Chat wired to this proxy.

/// The page, with the script URL, socket path and stop key filled in as JSON string literals
/// (safe inside a `<script>` since `<` is escaped).
pub fn demo_page(deep_chat_script: &str, path: &str, stop_key: &str) -> String {
    TEMPLATE
        .replace("__SCRIPT__", &js_string(deep_chat_script))
        .replace("__PATH__", &js_string(path))
        .replace("__STOP_KEY__", &js_string(stop_key))
}

fn js_string(value: &str) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|_| "\"\"".into())
        .replace('<', "\\u003c")
}

const TEMPLATE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>deepchat-proxy demo</title>
<style>
  body { font-family: system-ui, sans-serif; display: flex; flex-direction: column; align-items: center; margin: 2rem; }
  deep-chat { width: min(42rem, 95vw); height: 70vh; }
</style>
</head>
<body>
<h1>deepchat-proxy demo</h1>
<p>Deep Chat streaming over a WebSocket from the proxy's built-in demo provider.</p>
<deep-chat id="chat"></deep-chat>
<script type="module">
  // Properties set before the element is defined are lost when the bundle upgrades it,
  // so load Deep Chat first and configure it once it is defined.
  const script = document.createElement("script");
  script.type = "module";
  script.src = __SCRIPT__;
  document.head.appendChild(script);
  await customElements.whenDefined("deep-chat");
  const chat = document.getElementById("chat");
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  chat.connect = {
    url: scheme + location.host + __PATH__,
    websocket: true,
    stream: { simulation: __STOP_KEY__ },
  };
  chat.errorMessages = { displayServiceErrorMessages: true };
  chat.introMessage = { text: "Ask me anything: the demo provider streams its answer." };
</script>
</body>
</html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_into_the_page() {
        let page = demo_page("https://cdn.test/dc.js", "/chat", "</script>\"x");
        assert!(page.contains(r#"script.src = "https://cdn.test/dc.js";"#));
        assert!(page.contains(r#"url: scheme + location.host + "/chat","#));
        assert!(page.contains(r#"simulation: "\u003c/script>\"x""#));
        assert!(!page.contains("__"));
    }
}
