//! The streaming scenarios' tables: the summary of what the proxy adds, the inter-chunk gap
//! it adds per token (the gateway-style name for the per-token delay, with p99.9), and one
//! detailed table per scenario.

use super::describe;
use super::format::{div, num, ratio, triple, us};
use crate::results::{Outcome, Phase, ScenarioResult};
use crate::stats::Pct;
use std::fmt::Write as _;

/// Proxy CPU µs per relayed token.
pub fn proxy_cpu_per_token(proxy: &Phase) -> f64 {
    let cpu = proxy.proxy.map_or(0.0, |u| u.cpu_s());
    div(cpu * 1e6, proxy.tokens as f64)
}

/// The summary: one row per streaming scenario.
pub fn summary(md: &mut String, streams: &[&ScenarioResult]) {
    md.push_str("### Summary: what the proxy adds\n\n");
    md.push_str("| scenario | load | replies complete (direct / proxy) | added first token p50 / p99 / max | added per token p50 / p99 / max | per-token p99 ratio | relayed tokens/s (÷ direct) | proxy CPU µs/token = s/Mtok (÷ mock's) | proxy RSS peak (KiB per stream) | other processes' CPU during the proxy phase |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for result in streams {
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

/// One detailed table per streaming scenario.
pub fn details(md: &mut String, streams: &[&ScenarioResult]) {
    for result in streams {
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
}

/// The inter-chunk gap the proxy adds per token: the per-token delay (upstream stamp → client
/// receipt) through the proxy minus the direct one, percentile by percentile, with p99.9.
pub fn inter_chunk_gap(md: &mut String, streams: &[&ScenarioResult]) {
    md.push_str("### Inter-chunk gap added per token\n\n");
    md.push_str("The per-token delay above under the name gateways use: how much later each chunk reaches the client than it would straight from the upstream (upstream stamp → client receipt, through the proxy minus direct, per percentile).\n\n");
    md.push_str("| scenario | load | tokens (direct / proxy) | direct p50 / p99 / p99.9 | via proxy p50 / p99 / p99.9 | **added p50 / p99 / p99.9** | added max |\n");
    md.push_str("|---|---|---|---|---|---|---|\n");
    for result in streams {
        let Outcome::Streams { direct, proxy } = &result.outcome else {
            continue;
        };
        let (d, p) = (&direct.per_token, &proxy.per_token);
        let added = p.minus(d);
        let _ = writeln!(
            md,
            "| {} | {} | {} / {} | {} | {} | **{}** | {} |",
            result.scenario.name,
            describe(result),
            d.samples,
            p.samples,
            three(d),
            three(p),
            three(&added),
            us(added.max),
        );
    }
    md.push('\n');
}

/// p50 / p99 / p99.9.
pub fn three(p: &Pct) -> String {
    format!("{} / {} / {}", us(p.p50), us(p.p99), us(p.p999))
}
