//! The Markdown report: a summary table, the idle-socket table, one table per scenario.
//! Added latency is the proxy's percentile minus the floor's percentile measured in the same
//! run; ratios divide the two. CPU seconds per million tokens equal CPU microseconds per token.

use crate::driver::{Kind, Mode, Outcome, Phase, ScenarioResult, Shape};
use crate::stats::Pct;
use std::fmt::Write as _;

fn us(v: f64) -> String {
    if !v.is_finite() {
        "–".into()
    } else if v.abs() >= 10_000.0 {
        format!("{:.1} ms", v / 1000.0)
    } else if v.abs() >= 100.0 {
        format!("{v:.0} µs")
    } else {
        format!("{v:.1} µs")
    }
}

/// A plain number with `decimals`, or "–" when unknown.
fn num(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "–".into()
    }
}

fn ratio(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.2}×")
    } else {
        "–".into()
    }
}

fn div(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

fn triple(p: &Pct) -> String {
    format!("{} / {} / {}", us(p.p50), us(p.p99), us(p.max))
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn describe(result: &ScenarioResult) -> String {
    match &result.scenario.kind {
        Kind::Idle { sockets } => format!("{} idle WebSockets", thousands(*sockets)),
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
            format!(
                "{} streams × {tokens} tokens {pace}{start}",
                thousands(*streams)
            )
        }
    }
}

/// Proxy CPU µs per relayed token.
fn proxy_cpu_per_token(proxy: &Phase) -> f64 {
    let cpu = proxy.proxy.map_or(0.0, |u| u.cpu_s());
    div(cpu * 1e6, proxy.tokens as f64)
}

/// One console line per scenario.
pub fn one_line(result: &ScenarioResult) -> String {
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
            for failure in direct.failures.iter().chain(&proxy.failures) {
                let _ = write!(line, "\n   failure: {failure}");
            }
            line
        }
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

    let streams: Vec<&ScenarioResult> = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Streams { .. }))
        .collect();
    if !streams.is_empty() {
        md.push_str("### Summary: what the proxy adds\n\n");
        md.push_str("| scenario | load | replies complete (direct / proxy) | added first token p50 / p99 / max | added per token p50 / p99 / max | per-token p99 ratio | relayed tokens/s (÷ direct) | proxy CPU µs/token = s/Mtok (÷ mock's) | proxy RSS peak (KiB per stream) | other processes' CPU during the proxy phase |\n");
        md.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
        for result in &streams {
            let Outcome::Streams { direct, proxy } = &result.outcome else {
                continue;
            };
            let usage = proxy.proxy.unwrap_or_default();
            let mock_per_token = div(proxy.mock_cpu_s * 1e6, proxy.tokens as f64);
            let cpu = proxy_cpu_per_token(proxy);
            let _ = writeln!(
                md,
                "| {} | {} | {}/{} / {}/{} | {} | {} | {} | {:.0} ({}) | {} ({}) | {:.1} MiB ({}) | {:.2} CPUs |",
                result.scenario.name,
                describe(result),
                direct.complete,
                direct.streams,
                proxy.complete,
                proxy.streams,
                triple(&proxy.first_token.minus(&direct.first_token)),
                triple(&proxy.per_token.minus(&direct.per_token)),
                ratio(div(proxy.per_token.p99, direct.per_token.p99)),
                proxy.tokens_per_s(),
                ratio(div(proxy.tokens_per_s(), direct.tokens_per_s())),
                num(cpu, 2),
                ratio(div(cpu, mock_per_token)),
                usage.rss_peak_kib as f64 / 1024.0,
                num(
                    div(
                        usage.rss_peak_kib.saturating_sub(usage.rss_before_kib) as f64,
                        proxy.streams as f64
                    ),
                    1
                ),
                div(proxy.other_cpu_s, proxy.wall_s),
            );
        }
        md.push('\n');
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

    for result in &streams {
        let Outcome::Streams { direct, proxy } = &result.outcome else {
            continue;
        };
        let _ = writeln!(md, "### {}: {}\n", result.scenario.name, describe(result));
        md.push_str("| | direct (floor) | via proxy | added | ratio |\n|---|---|---|---|---|\n");
        let _ = writeln!(
            md,
            "| replies complete and correct | {}/{} | {}/{} | | |",
            direct.complete, direct.streams, proxy.complete, proxy.streams
        );
        let rows: [(&str, &Pct, &Pct); 3] = [
            (
                "connect (TCP, + WebSocket handshake via proxy)",
                &direct.connect,
                &proxy.connect,
            ),
            (
                "first token (from sending the message)",
                &direct.first_token,
                &proxy.first_token,
            ),
            (
                "per token (upstream stamp → client receipt)",
                &direct.per_token,
                &proxy.per_token,
            ),
        ];
        for (label, d, p) in rows {
            let added = p.minus(d);
            let r = p.ratio(d);
            for (stat, dv, pv, av, rv) in [
                ("p50", d.p50, p.p50, added.p50, r.p50),
                ("p99", d.p99, p.p99, added.p99, r.p99),
                ("max", d.max, p.max, added.max, r.max),
            ] {
                let _ = writeln!(
                    md,
                    "| {label} {stat} | {} | {} | {} | {} |",
                    us(dv),
                    us(pv),
                    us(av),
                    ratio(rv)
                );
            }
        }
        let _ = writeln!(
            md,
            "| tokens/s (wall: first connect → last reply) | {:.0} | {:.0} | | {} |",
            direct.tokens_per_s(),
            proxy.tokens_per_s(),
            ratio(div(proxy.tokens_per_s(), direct.tokens_per_s()))
        );
        let _ = writeln!(
            md,
            "| text frames (SSE events) per token | {} | {} | | |",
            num(div(direct.frames as f64, direct.tokens as f64), 3),
            num(div(proxy.frames as f64, proxy.tokens as f64), 3)
        );
        let usage = proxy.proxy.unwrap_or_default();
        let mock_direct = div(direct.mock_cpu_s * 1e6, direct.tokens as f64);
        let mock_proxy = div(proxy.mock_cpu_s * 1e6, proxy.tokens as f64);
        let cpu = proxy_cpu_per_token(proxy);
        let _ = writeln!(
            md,
            "| CPU µs per token (= s per million tokens) | mock {} | proxy {} (user {:.2} s, system {:.2} s); mock {} | | proxy ÷ mock {} |",
            num(mock_direct, 2),
            num(cpu, 2),
            usage.cpu_user_s,
            usage.cpu_system_s,
            num(mock_proxy, 2),
            ratio(div(cpu, mock_proxy))
        );
        let _ = writeln!(
            md,
            "| load generator CPU µs per token | {} | {} | | |",
            num(div(direct.loadgen_cpu_s * 1e6, direct.tokens as f64), 2),
            num(div(proxy.loadgen_cpu_s * 1e6, proxy.tokens as f64), 2)
        );
        let _ = writeln!(
            md,
            "| proxy RSS before / peak / after | | {:.1} / {:.1} / {:.1} MiB | {} KiB per stream at peak | |",
            usage.rss_before_kib as f64 / 1024.0,
            usage.rss_peak_kib as f64 / 1024.0,
            usage.rss_after_kib as f64 / 1024.0,
            num(
                div(
                    usage.rss_peak_kib.saturating_sub(usage.rss_before_kib) as f64,
                    proxy.streams as f64
                ),
                1
            )
        );
        let _ = writeln!(
            md,
            "| proxy open fds: peak / after the phase | | {} / {} | | |",
            usage.fds_peak, usage.fds_after
        );
        let _ = writeln!(
            md,
            "| connects dropped by a full listen queue (retried after ≥ 1 s) | {} | {} | | |",
            direct.listen_overflows, proxy.listen_overflows
        );
        let _ = writeln!(
            md,
            "| other processes' CPU meanwhile (s) | {:.2} over {:.1} s | {:.2} over {:.1} s | | |",
            direct.other_cpu_s, direct.wall_s, proxy.other_cpu_s, proxy.wall_s
        );
        let _ = writeln!(
            md,
            "| kernel interrupt CPU meanwhile (s; loopback TCP, ours included) | {:.2} | {:.2} | | |",
            direct.interrupt_cpu_s, proxy.interrupt_cpu_s
        );
        for failure in direct.failures.iter() {
            let _ = writeln!(md, "\nDirect failure: {failure}");
        }
        for failure in proxy.failures.iter() {
            let _ = writeln!(md, "\nProxy failure: {failure}");
        }
        md.push('\n');
    }
    md
}
