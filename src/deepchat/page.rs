//! The Deep Chat page served at `GET /` (`--playground`, on for `demo`): the widget wired to
//! this proxy, filling the window, and a plain-words message when the bundle does not load.

/// The page, with the script URL, socket path, stop key and description filled in as JSON
/// string literals (safe inside a `<script>` since `<` is escaped).
pub fn page(script_src: &str, path: &str, stop_key: &str, description: &str) -> String {
    TEMPLATE
        .replace("__SCRIPT__", &js_string(script_src))
        .replace("__PATH__", &js_string(path))
        .replace("__STOP_KEY__", &js_string(stop_key))
        .replace("__DESCRIPTION__", &js_string(description))
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
<title>deepchat-proxy</title>
<style>
  html, body { height: 100%; margin: 0; }
  body { font-family: system-ui, sans-serif; display: flex; flex-direction: column; box-sizing: border-box; padding: 0.75rem; gap: 0.5rem; }
  header h1 { font-size: 1.1rem; margin: 0; }
  header p { margin: 0.25rem 0 0; color: #555; font-size: 0.9rem; }
  main { flex: 1; min-height: 0; display: flex; }
  deep-chat { display: block; flex: 1; min-width: 0; }
  #load-error { align-self: flex-start; border: 1px solid #c00; background: #fff4f4; padding: 1rem; border-radius: 6px; max-width: 48rem; }
  #load-error code { background: #f3e6e6; padding: 0 0.2em; }
</style>
</head>
<body>
<header>
<h1>deepchat-proxy</h1>
<p id="description"></p>
</header>
<main>
<deep-chat id="chat"></deep-chat>
</main>
<script type="module">
  const src = __SCRIPT__;
  document.getElementById("description").textContent = __DESCRIPTION__;
  const chat = document.getElementById("chat");
  // Without the bundle the element stays an empty box: replace it with what went wrong and
  // the flag that fixes it, in words.
  function failed(what) {
    const box = document.createElement("div");
    box.id = "load-error";
    box.setAttribute("role", "alert");
    const lead = document.createElement("p");
    lead.innerHTML = "<strong>Deep Chat did not load.</strong> ";
    lead.append(what);
    const fix = document.createElement("p");
    fix.innerHTML = "With no network, give the proxy a local copy: <code>npm install deep-chat</code>, "
      + "then start it with <code>--deep-chat-script node_modules/deep-chat/dist/deepChat.bundle.js</code> "
      + "(or point <code>--deep-chat-script</code> at a URL this browser can reach).";
    box.append(lead, fix);
    chat.replaceWith(box);
  }
  // Properties set before the element is defined are lost when the bundle upgrades it,
  // so load Deep Chat first and configure it once it is defined.
  const script = document.createElement("script");
  script.type = "module";
  script.src = src;
  script.onerror = () => failed("The browser could not fetch " + src + ".");
  document.head.appendChild(script);
  const defined = customElements.whenDefined("deep-chat").then(() => true);
  const gaveUp = new Promise((resolve) => setTimeout(() => resolve(false), 15000));
  if (await Promise.race([defined, gaveUp])) {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    chat.connect = {
      url: scheme + location.host + __PATH__,
      websocket: true,
      stream: { simulation: __STOP_KEY__ },
    };
    chat.errorMessages = { displayServiceErrorMessages: true };
    chat.introMessage = { text: "Ask me anything: the answer streams through the proxy." };
    chat.style.border = "1px solid #ccc";
    chat.style.borderRadius = "8px";
    // Deep Chat sizes its own container (320×350 by default): let it fill the element.
    chat.chatStyle = { width: "100%", height: "100%", border: "none" };
  } else if (!document.getElementById("load-error")) {
    failed(src + " loaded, but did not define <deep-chat> within 15 seconds: is it deepChat.bundle.js?");
  }
</script>
</body>
</html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_into_the_page() {
        let page = page(
            "https://cdn.test/dc.js",
            "/chat",
            "</script>\"x",
            "demo <b>",
        );
        assert!(page.contains(r#"const src = "https://cdn.test/dc.js";"#));
        assert!(page.contains(r#"url: scheme + location.host + "/chat","#));
        assert!(page.contains(r#"simulation: "\u003c/script>\"x""#));
        assert!(page.contains(r#"textContent = "demo \u003cb>";"#));
        assert!(!page.contains("__"));
    }
}
