//! `GET /status`: a small read-only page for people, beside `/metrics` for Prometheus: uptime,
//! what is open now, the last minutes' replies and first-token percentiles, and whether the
//! upstream accepts connections. Plain HTML with inline style, no script and no external
//! assets, so it works on a locked-down network and leaks nothing to third parties.

use crate::ops::recent::WINDOW_MINUTES;
use crate::ops::telemetry;
use std::fmt::Write;
use std::time::Duration;

/// One upstream of one route, as the readiness check last saw it.
pub struct UpstreamHealth {
    pub route: String,
    /// `host:port`, or what stands in for it (the demo).
    pub target: String,
    pub result: Result<(), String>,
}

/// The page, rendered now, with every route's upstreams.
pub fn page(upstreams: &[UpstreamHealth]) -> String {
    let recent = telemetry::recent();
    let summary = recent.summary();
    let (connections, streams) = telemetry::active_now();
    let mut upstream_rows = String::new();
    for upstream in upstreams {
        let (class, text) = match &upstream.result {
            Ok(()) => ("ok", "accepting connections"),
            Err(reason) => ("down", reason.as_str()),
        };
        let _ = write!(
            upstream_rows,
            "<tr><td>{}</td><th>{}</th><td class=\"{class}\">{}</td></tr>",
            escape(&upstream.route),
            escape(&upstream.target),
            escape(text)
        );
    }
    let ttft = match summary.ttft {
        Some([p50, p90, p99]) => format!("{} / {} / {}", ms(p50), ms(p90), ms(p99)),
        None => "no replies with text yet".to_owned(),
    };
    let mut html = String::with_capacity(2048);
    html.push_str(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"10\"><title>deepchat-proxy status</title>\
         <style>body{font:15px system-ui,sans-serif;margin:2em;max-width:46em}\
         table{border-collapse:collapse}td,th{padding:.3em 1em .3em 0;text-align:left}\
         .ok{color:#1a7f37}.down{color:#cf222e}</style></head><body>",
    );
    let _ = write!(
        html,
        "<h1>deepchat-proxy {}</h1><table>\
         <tr><th>Uptime</th><td>{}</td></tr>\
         <tr><th>Open connections</th><td>{connections}</td></tr>\
         <tr><th>Replies streaming now</th><td>{streams}</td></tr>\
         </table><h2>Last {WINDOW_MINUTES} minutes</h2><table>\
         <tr><th>Replies ok</th><td>{}</td></tr>\
         <tr><th>Replies failed</th><td>{}</td></tr>\
         <tr><th>Replies cancelled by the client</th><td>{}</td></tr>\
         <tr><th>First token p50 / p90 / p99</th><td>{ttft}</td></tr>\
         </table><h2>Upstreams</h2><table>\
         <tr><th>Route</th><th>Upstream</th><th>State</th></tr>{upstream_rows}</table>\
         <p>Figures of this process since it started; Prometheus metrics at \
         <a href=\"/metrics\">/metrics</a>.</p></body></html>",
        env!("CARGO_PKG_VERSION"),
        uptime(recent.uptime()),
        summary.ok,
        summary.errors,
        summary.cancelled,
    );
    html
}

fn ms(duration: Duration) -> String {
    format!("{} ms", duration.as_millis())
}

fn uptime(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (days, hours, minutes) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60);
    if days > 0 {
        format!("{days} d {hours} h {minutes} min")
    } else if hours > 0 {
        format!("{hours} h {minutes} min")
    } else {
        format!("{minutes} min {} s", seconds % 60)
    }
}

/// Text into HTML: an upstream's error message is not ours to trust.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_text_is_escaped_and_uptime_reads_naturally() {
        assert_eq!(
            escape("<script>\"x\" & 'y'</script>"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
        assert_eq!(uptime(Duration::from_secs(65)), "1 min 5 s");
        assert_eq!(uptime(Duration::from_secs(3 * 3600 + 120)), "3 h 2 min");
        assert_eq!(
            uptime(Duration::from_secs(2 * 86_400 + 3600)),
            "2 d 1 h 0 min"
        );
    }
}
