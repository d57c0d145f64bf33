//! The Markdown report: a summary table, the idle-socket table, one table per scenario.
//! Added latency is the proxy's percentile minus the floor's percentile measured in the same
//! run; ratios divide the two. CPU seconds per million tokens equal CPU microseconds per token.
//! This file assembles the report and names the scenarios; each family's tables are their own
//! module.

mod format;
mod gateway;
mod overwrite;
mod stalled;
mod streams;

use crate::results::{Outcome, ScenarioResult};
use crate::scenarios::{Kind, Mode, Shape};
use format::{bytes, div, mib, num, ratio, thousands, us};
use overwrite::{frames_per_reply, overwrite_markdown};
use stalled::stalled_markdown;
use std::fmt::Write as _;
use streams::proxy_cpu_per_token;

fn describe(result: &ScenarioResult) -> String {
    match &result.scenario.kind {
        Kind::Idle { sockets } => format!("{} idle WebSockets", thousands(*sockets)),
        Kind::Stalled {
            clients,
            tokens,
            hold_s,
        } => format!(
            "{} clients send one message each and never read; replies of {} tokens, unpaced; held {hold_s} s",
            thousands(*clients),
            thousands(*tokens as usize)
        ),
        Kind::Streams {
            streams,
            tokens,
            rate,
            shape,
        } => {
            let pace = if *rate == 0 {
                "unpaced (as fast as the sockets go)".to_owned()
            } else {
                format!("at {rate} tokens/s")
            };
            let start = match shape {
                Shape::Steady { ramp_ms: 0 } => "".to_owned(),
                Shape::Steady { ramp_ms } => {
                    format!(", connects spread over {:.1} s", *ramp_ms as f64 / 1000.0)
                }
                Shape::Burst => ", all connecting at once".to_owned(),
            };
            let upstream = if result.scenario.upstream_http2 {
                "; the proxy reaches the mock over HTTP/2 (h2c)"
            } else {
                ""
            };
            let reply = if result.scenario.overwrite {
                "; clients read in overwrite mode"
            } else {
                ""
            };
            format!(
                "{} streams × {tokens} tokens {pace}{start}{upstream}{reply}",
                thousands(*streams)
            )
        }
        Kind::Json { rate, seconds } => format!(
            "{} non-streamed requests/s for {seconds} s, {} tokens each",
            thousands(*rate as usize),
            crate::openloop::ANSWER_TOKENS
        ),
        Kind::Cancel { streams, ramp_ms, .. } => format!(
            "{} replies of {} tokens at {:.0} tokens/s, started over {:.1} s; each client leaves after {} tokens",
            thousands(*streams),
            crate::cancel::REPLY_TOKENS,
            1e6 / crate::cancel::INTERVAL_US as f64,
            *ramp_ms as f64 / 1000.0,
            crate::cancel::READ_BEFORE_CLOSE
        ),
        Kind::Churn {
            transport,
            rate,
            seconds,
        } => format!(
            "{} new {} conversations/s for {seconds} s, {} tokens each",
            thousands(*rate as usize),
            match transport {
                crate::churn::Transport::Ws => "WebSocket",
                crate::churn::Transport::Sse => "SSE",
            },
            crate::churn::REPLY_TOKENS
        ),
        Kind::Cold { starts } => format!("{starts} fresh proxy starts"),
    }
}

/// One console line per scenario.
pub fn one_line(result: &ScenarioResult) -> String {
    let line = outcome_line(result);
    match &result.proxy_exited {
        Some(why) => format!("{line}\n   FAILED: {why}"),
        None => line,
    }
}

fn outcome_line(result: &ScenarioResult) -> String {
    if let Some(line) = gateway::one_line(result) {
        return line;
    }
    match &result.outcome {
        Outcome::Idle(idle) => format!(
            "   {}/{} idle sockets open, {} KiB each",
            idle.opened,
            idle.sockets,
            num(
                div(
                    idle.rss_open_kib.saturating_sub(idle.rss_before_kib) as f64,
                    idle.opened as f64
                ),
                1
            )
        ),
        Outcome::Stalled(st) => {
            let end = st.mock.last().copied().unwrap_or_default();
            let mut line = format!(
                "   {}/{} stalled clients; proxy RSS {} → {} (2 s) → {} (end) MiB, slope {} KiB/s over the last half; mock wrote ≤ {} per stream ({} of {} tokens); upstream closed {} after the clients; RSS then {} MiB",
                st.connected,
                st.clients,
                mib(st.rss_start_kib),
                mib(st.rss_2s_kib),
                mib(st.rss_end_kib),
                num(st.slope_kib_per_s, 1),
                bytes(end.written_max),
                end.tokens_max,
                st.tokens,
                st.upstream_closed_after_s
                    .map_or("NOT all".to_owned(), |s| format!("{s:.1} s")),
                mib(st.rss_closed_3s_kib),
            );
            for failure in &st.failures {
                let _ = write!(line, "\n   failure: {failure}");
            }
            line
        }
        Outcome::Streams { direct, proxy } => {
            let mut line = format!(
                "   complete {}/{} direct, {}/{} proxy; added first token p99 {}, per token p50 {} p99 {}; proxy {} µs CPU/token",
                direct.complete,
                direct.streams,
                proxy.complete,
                proxy.streams,
                us(proxy.first_token.p99 - direct.first_token.p99),
                us(proxy.per_token.p50 - direct.per_token.p50),
                us(proxy.per_token.p99 - direct.per_token.p99),
                num(proxy_cpu_per_token(proxy), 2),
            );
            if result.scenario.overwrite {
                let _ = write!(
                    line,
                    "\n   overwrite mode: {} frames per reply, wire bytes {} the reply text's",
                    num(frames_per_reply(proxy), 1),
                    ratio(div(proxy.wire_bytes as f64, proxy.text_bytes as f64)),
                );
            }
            for failure in direct.failures.iter().chain(&proxy.failures) {
                let _ = write!(line, "\n   failure: {failure}");
            }
            line
        }
        // Written by `gateway::one_line`.
        Outcome::Rate { .. } | Outcome::Cancel(_) | Outcome::Cold(_) => String::new(),
    }
}

pub fn markdown(machine: &str, mode: Mode, label: &str, results: &[ScenarioResult]) -> String {
    let mut md = String::new();
    let mode = match mode {
        Mode::Smoke => "smoke",
        Mode::Full => "full",
    };
    let _ = writeln!(md, "Machine: {machine}. Mode: `{mode}`.");
    if !label.is_empty() {
        let _ = writeln!(md, "Proxy: {label}.");
    }
    md.push('\n');
    for result in results {
        if let Some(why) = &result.proxy_exited {
            let _ = writeln!(md, "**{}: {why}.**\n", result.scenario.name);
        }
    }

    let streams: Vec<&ScenarioResult> = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Streams { .. }))
        .collect();
    if !streams.is_empty() {
        streams::summary(&mut md, &streams);
        streams::inter_chunk_gap(&mut md, &streams);
    }
    gateway::markdown(&mut md, results);

    let overwrite: Vec<&ScenarioResult> = streams
        .iter()
        .copied()
        .filter(|r| r.scenario.overwrite)
        .collect();
    if !overwrite.is_empty() {
        overwrite_markdown(&mut md, &overwrite);
    }

    let idle: Vec<&ScenarioResult> = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Idle(_)))
        .collect();
    if !idle.is_empty() {
        md.push_str("### Idle WebSockets: memory per open socket\n\n");
        md.push_str("| scenario | sockets open | proxy RSS before | RSS with sockets open | KiB per idle socket | open fds | RSS after closing | proxy CPU while holding them |\n");
        md.push_str("|---|---|---|---|---|---|---|---|\n");
        for result in idle {
            let Outcome::Idle(idle) = &result.outcome else {
                continue;
            };
            let _ = writeln!(
                md,
                "| {} | {}/{} | {:.1} MiB | {:.1} MiB | {} | {} | {:.1} MiB | {:.3} s over {:.0} s |",
                result.scenario.name,
                idle.opened,
                idle.sockets,
                idle.rss_before_kib as f64 / 1024.0,
                idle.rss_open_kib as f64 / 1024.0,
                num(
                    div(
                        idle.rss_open_kib.saturating_sub(idle.rss_before_kib) as f64,
                        idle.opened as f64
                    ),
                    1
                ),
                idle.fds_open,
                idle.rss_closed_kib as f64 / 1024.0,
                idle.cpu_idle_s,
                idle.hold_s,
            );
        }
        md.push('\n');
    }

    for result in results {
        if let Outcome::Stalled(st) = &result.outcome {
            stalled_markdown(&mut md, &result.scenario.name, &describe(result), st);
        }
    }

    streams::details(&mut md, &streams);
    md
}
