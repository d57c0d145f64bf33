//! The overwrite-mode table: frames and wire bytes per reply when every frame resends the
//! text so far.

use super::describe;
use super::format::{div, num, ratio};
use super::streams::proxy_cpu_per_token;
use crate::results::{Outcome, Phase, ScenarioResult};
use std::fmt::Write as _;

/// Text frames per reply, over the replies of a phase.
pub fn frames_per_reply(phase: &Phase) -> f64 {
    div(phase.frames as f64, phase.streams as f64)
}

/// The overwrite-mode table: what resending the text so far costs.
pub fn overwrite_markdown(md: &mut String, results: &[&ScenarioResult]) {
    md.push_str("### Overwrite reply mode: the cost of resending the text so far\n\n");
    md.push_str("Each frame carries the whole text so far (`?reply=overwrite`; the proxy means to send at most one frame per 30 ms and merge the text meanwhile, so frames per reply show whether it does). Wire bytes count every text frame received, WebSocket header included; they are divided by the bytes of the reply's final text.\n\n");
    md.push_str("| scenario | load | replies complete | frames per reply | wire bytes per reply | reply text bytes | wire ÷ text | proxy CPU µs/token |\n");
    md.push_str("|---|---|---|---|---|---|---|---|\n");
    for result in results {
        let Outcome::Streams { proxy, .. } = &result.outcome else {
            continue;
        };
        let replies = proxy.streams as f64;
        let _ = writeln!(
            md,
            "| {} | {} | {}/{} | {} | {} | {} | {} | {} |",
            result.scenario.name,
            describe(result),
            proxy.complete,
            proxy.streams,
            num(frames_per_reply(proxy), 1),
            num(div(proxy.wire_bytes as f64, replies), 0),
            num(div(proxy.text_bytes as f64, replies), 0),
            ratio(div(proxy.wire_bytes as f64, proxy.text_bytes as f64)),
            num(proxy_cpu_per_token(proxy), 2),
        );
    }
    md.push('\n');
}
