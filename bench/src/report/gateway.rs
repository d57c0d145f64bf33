//! The tables for the figures LLM gateways publish and the ones they do not: JSON mode at a
//! fixed arrival rate, cancel latency, connection churn, and cold start. Added latency is
//! again the proxy phase's percentile minus the direct phase's.

use super::describe;
use super::format::{div, num, us};
use super::streams::three;
use crate::cancel::{CancelPhase, CloseKind};
use crate::coldstart::ColdStartResult;
use crate::results::{Outcome, RatePhase, ScenarioResult};
use crate::scenarios::Kind;
use crate::stats::Pct;
use std::fmt::Write as _;

pub fn markdown(md: &mut String, results: &[ScenarioResult]) {
    let json: Vec<&ScenarioResult> = results
        .iter()
        .filter(|r| matches!(r.scenario.kind, Kind::Json { .. }))
        .collect();
    if !json.is_empty() {
        json_table(md, &json);
    }
    let cancels: Vec<&ScenarioResult> = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Cancel(_)))
        .collect();
    if !cancels.is_empty() {
        cancel_table(md, &cancels);
    }
    let churn: Vec<&ScenarioResult> = results
        .iter()
        .filter(|r| matches!(r.scenario.kind, Kind::Churn { .. }))
        .collect();
    if !churn.is_empty() {
        churn_table(md, &churn);
    }
    for result in results {
        if let Outcome::Cold(cold) = &result.outcome {
            cold_table(md, &result.scenario.name, cold);
        }
    }
}

/// Achieved arrivals per second over the phase.
fn per_second(phase: &RatePhase) -> f64 {
    div(phase.ok as f64, phase.wall_s)
}

/// Proxy CPU µs per arrival answered.
fn proxy_cpu_per_arrival(phase: &RatePhase) -> f64 {
    div(phase.cpu.proxy_s * 1e6, phase.ok as f64)
}

fn failures(md: &mut String, name: &str, direct: &[String], proxy: &[String]) {
    for failure in direct {
        let _ = writeln!(md, "\n{name}, direct failure: {failure}");
    }
    for failure in proxy {
        let _ = writeln!(md, "\n{name}, proxy failure: {failure}");
    }
}

fn json_table(md: &mut String, results: &[&ScenarioResult]) {
    md.push_str("### JSON mode at a fixed arrival rate (open loop)\n\n");
    md.push_str("Non-streamed requests sent on schedule whether or not earlier ones finished, over a pool of keep-alive connections; latency from each request's due time to its answer's last byte, so queueing counts. Direct: a `chat.completion` from the mock; via the proxy: Deep Chat `POST /chat` → `{\"text\"}` (the proxy streams from the mock and assembles the answer).\n\n");
    md.push_str("| scenario | requests ok (direct / proxy) | direct p50 / p99 / p99.9 | via proxy p50 / p99 / p99.9 | **added p50 / p99 / p99.9** | max direct / proxy | answered/s (direct / proxy) | **proxy CPU µs per request** | mock CPU µs per request (direct / proxy) | generator lateness p99 (direct / proxy) | connections | other processes' CPU (proxy phase) |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for result in results {
        let Outcome::Rate { direct, proxy } = &result.outcome else {
            continue;
        };
        let added = proxy.latency.minus(&direct.latency);
        let _ = writeln!(
            md,
            "| {} | {}/{} / {}/{} | {} | {} | **{}** | {} / {} | {:.0} / {:.0} | **{}** | {} / {} | {} / {} | {} | {:.2} CPUs |",
            result.scenario.name,
            direct.ok,
            direct.arrivals,
            proxy.ok,
            proxy.arrivals,
            three(&direct.latency),
            three(&proxy.latency),
            three(&added),
            us(direct.latency.max),
            us(proxy.latency.max),
            per_second(direct),
            per_second(proxy),
            num(proxy_cpu_per_arrival(proxy), 1),
            num(div(direct.cpu.mock_s * 1e6, direct.ok as f64), 1),
            num(div(proxy.cpu.mock_s * 1e6, proxy.ok as f64), 1),
            us(direct.late.p99),
            us(proxy.late.p99),
            proxy.connections,
            div(proxy.cpu.other_s, proxy.wall_s),
        );
    }
    for result in results {
        if let Outcome::Rate { direct, proxy } = &result.outcome {
            failures(md, &result.scenario.name, &direct.failures, &proxy.failures);
        }
    }
    md.push('\n');
}

fn close_name(close: CloseKind) -> &'static str {
    match close {
        CloseKind::WsClose => "WebSocket close frame",
        CloseKind::Reset => "TCP reset (SO_LINGER 0, drop)",
        CloseKind::SseAbort => "SSE client closes the connection",
    }
}

fn pmax(p: &Pct) -> String {
    format!("{} / {} / {}", us(p.p50), us(p.p99), us(p.max))
}

fn measured(phase: &CancelPhase) -> String {
    format!("{}/{}", phase.measured, phase.streams)
}

fn cancel_table(md: &mut String, results: &[&ScenarioResult]) {
    md.push_str("### Cancel latency: client leaves → upstream connection closed\n\n");
    md.push_str("Each client reads the first tokens of a long paced reply, stamps CLOCK_MONOTONIC and leaves; the mock stamps the same clock when its connection for that reply closes. Direct: SSE clients of the mock that close their connection (what the mock itself takes to notice).\n\n");
    md.push_str("| scenario | how the client leaves | timed (direct / proxy) | direct p50 / p99 / max | **via proxy p50 / p99 / max** | added p50 / p99 |\n");
    md.push_str("|---|---|---|---|---|---|\n");
    for result in results {
        let Outcome::Cancel(cancel) = &result.outcome else {
            continue;
        };
        let added = cancel.proxy.latency.minus(&cancel.direct.latency);
        let _ = writeln!(
            md,
            "| {} | {} | {} / {} | {} | **{}** | {} / {} |",
            result.scenario.name,
            close_name(cancel.close),
            measured(&cancel.direct),
            measured(&cancel.proxy),
            pmax(&cancel.direct.latency),
            pmax(&cancel.proxy.latency),
            us(added.p50),
            us(added.p99),
        );
    }
    for result in results {
        if let Outcome::Cancel(cancel) = &result.outcome {
            failures(
                md,
                &result.scenario.name,
                &cancel.direct.failures,
                &cancel.proxy.failures,
            );
        }
    }
    md.push('\n');
}

fn churn_table(md: &mut String, results: &[&ScenarioResult]) {
    md.push_str("### Connection churn: a new connection per conversation\n\n");
    md.push_str("New connections at a fixed rate (open loop), each asking one short question and leaving: through the proxy a Deep Chat WebSocket (handshake, message, reply, close) or SSE `POST`; direct, an SSE request to the mock on a new connection. \"Whole conversation\" runs from the due time to the socket closed.\n\n");
    md.push_str("| scenario | load | conversations ok (direct / proxy) | connect p50 / p99: direct; via proxy | first token p50 / p99: direct; via proxy | whole conversation via proxy p50 / p99 / p99.9 | added p50 / p99 / p99.9 | **proxy CPU µs per conversation** | other processes' CPU (proxy phase) |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for result in results {
        let Outcome::Rate { direct, proxy } = &result.outcome else {
            continue;
        };
        let pair = |p: &Pct| format!("{} / {}", us(p.p50), us(p.p99));
        let _ = writeln!(
            md,
            "| {} | {} | {}/{} / {}/{} | {}; {} | {}; {} | {} | {} | **{}** | {:.2} CPUs |",
            result.scenario.name,
            describe(result),
            direct.ok,
            direct.arrivals,
            proxy.ok,
            proxy.arrivals,
            pair(&direct.connect),
            pair(&proxy.connect),
            pair(&direct.first_token),
            pair(&proxy.first_token),
            three(&proxy.latency),
            three(&proxy.latency.minus(&direct.latency)),
            num(proxy_cpu_per_arrival(proxy), 1),
            div(proxy.cpu.other_s, proxy.wall_s),
        );
    }
    for result in results {
        if let Outcome::Rate { direct, proxy } = &result.outcome {
            failures(md, &result.scenario.name, &direct.failures, &proxy.failures);
        }
    }
    md.push('\n');
}

fn cold_table(md: &mut String, name: &str, cold: &ColdStartResult) {
    let _ = writeln!(md, "### Cold start: {name}\n");
    let _ = writeln!(
        md,
        "{} fresh proxy processes; each gets a WebSocket conversation the moment it accepts connections, then a second one.\n",
        cold.starts
    );
    md.push_str("| | p50 | max | samples |\n|---|---|---|---|\n");
    let rows: [(&str, &Pct); 5] = [
        (
            "spawning the process → accepting connections",
            &cold.listening,
        ),
        (
            "spawning the process → first token of the first conversation",
            &cold.start_to_first_token,
        ),
        (
            "first conversation's first token (from sending; empty upstream pool)",
            &cold.cold_ttft,
        ),
        (
            "second conversation's first token (upstream connection pooled)",
            &cold.warm_ttft,
        ),
        (
            "a TCP connect to the mock (a new upstream connection on loopback)",
            &cold.upstream_connect,
        ),
    ];
    for (label, p) in rows {
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} |",
            us(p.p50),
            us(p.max),
            p.samples
        );
    }
    let gap = cold.cold_ttft.minus(&cold.warm_ttft);
    let _ = writeln!(
        md,
        "| first minus second conversation's first token | {} | | |",
        us(gap.p50)
    );
    for failure in &cold.failures {
        let _ = writeln!(md, "\nfailure: {failure}");
    }
    md.push('\n');
}

/// The console line of a gateway-style scenario (None for the others).
pub fn one_line(result: &ScenarioResult) -> Option<String> {
    let mut line = match &result.outcome {
        Outcome::Rate { direct, proxy } => {
            let added = proxy.latency.minus(&direct.latency);
            format!(
                "   ok {}/{} direct, {}/{} proxy; latency via proxy p50 {} p99 {} p99.9 {}; added p50 {} p99 {} p99.9 {}; proxy {} µs CPU each",
                direct.ok,
                direct.arrivals,
                proxy.ok,
                proxy.arrivals,
                us(proxy.latency.p50),
                us(proxy.latency.p99),
                us(proxy.latency.p999),
                us(added.p50),
                us(added.p99),
                us(added.p999),
                num(proxy_cpu_per_arrival(proxy), 1),
            ) + &fail_lines(&direct.failures, &proxy.failures)
        }
        Outcome::Cancel(cancel) => format!(
            "   timed {} direct, {} proxy; close → upstream closed: direct p50 {} p99 {} max {}; via proxy p50 {} p99 {} max {}",
            measured(&cancel.direct),
            measured(&cancel.proxy),
            us(cancel.direct.latency.p50),
            us(cancel.direct.latency.p99),
            us(cancel.direct.latency.max),
            us(cancel.proxy.latency.p50),
            us(cancel.proxy.latency.p99),
            us(cancel.proxy.latency.max),
        ) + &fail_lines(&cancel.direct.failures, &cancel.proxy.failures),
        Outcome::Cold(cold) => format!(
            "   {} starts: listening p50 {}; start → first token p50 {} max {}; first TTFT p50 {}, second {}",
            cold.starts,
            us(cold.listening.p50),
            us(cold.start_to_first_token.p50),
            us(cold.start_to_first_token.max),
            us(cold.cold_ttft.p50),
            us(cold.warm_ttft.p50),
        ) + &fail_lines(&cold.failures, &[]),
        _ => return None,
    };
    line.truncate(line.trim_end().len());
    Some(line)
}

fn fail_lines(direct: &[String], proxy: &[String]) -> String {
    let mut out = String::new();
    for failure in direct.iter().chain(proxy) {
        let _ = write!(out, "\n   failure: {failure}");
    }
    out
}
