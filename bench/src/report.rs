//! The Markdown report: a summary table, the idle-socket table, one table per scenario.
//! Added latency is the proxy's percentile minus the floor's percentile measured in the same
//! run; ratios divide the two. CPU seconds per million tokens equal CPU microseconds per token.

use crate::results::{Outcome, Phase, ScenarioResult};
use crate::scenarios::{Kind, Mode, Shape};
use crate::stalled::{MockSample, StalledResult};
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

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// A byte count in B, KiB or MiB.
fn bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1024.0 * 1024.0 {
        format!("{:.2} MiB", n / 1024.0 / 1024.0)
    } else if n >= 1024.0 {
        format!("{:.0} KiB", n / 1024.0)
    } else {
        format!("{n:.0} B")
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
    }
}

/// Text frames per reply, over the replies of a phase.
fn frames_per_reply(phase: &Phase) -> f64 {
    div(phase.frames as f64, phase.streams as f64)
}

/// The overwrite-mode table: what resending the text so far costs.
fn overwrite_markdown(md: &mut String, results: &[&ScenarioResult]) {
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

/// The proxy's RSS sampled nearest to second `t` of the hold.
fn rss_at_second(st: &StalledResult, t: f64) -> u64 {
    st.rss_series
        .iter()
        .min_by(|a, b| (a.0 - t).abs().total_cmp(&(b.0 - t).abs()))
        .map_or(0, |s| s.1)
}

/// Approximate size of a whole reply of `tokens` (content events only).
fn reply_bytes(tokens: u32) -> u64 {
    // A token is `id:seq:stamp;`: about 30 characters; chunked framing adds about 6 bytes.
    u64::from(tokens) * (crate::mock::TOKEN_EVENT_OVERHEAD as u64 + 36)
}

fn stalled_markdown(md: &mut String, name: &str, description: &str, st: &StalledResult) {
    let _ = writeln!(md, "### Backpressure: {name}: {description}\n");
    let at = |t: f64| {
        st.mock
            .iter()
            .find(|s| s.t_s >= t)
            .copied()
            .unwrap_or_default()
    };
    let end = st.mock.last().copied().unwrap_or_default();
    let two = at(2.0);
    let half = at((st.hold_s / 2.0).round());
    let per_stream = |s: &MockSample| {
        format!(
            "{} ({} – {})",
            bytes(s.written_p50),
            bytes(s.written_min),
            bytes(s.written_max)
        )
    };
    md.push_str("| | |\n|---|---|\n");
    let rows: Vec<(String, String)> = vec![
        (
            "clients connected and sent their message".into(),
            format!("{}/{} in {:.1} s", st.connected, st.clients, st.connect_s),
        ),
        (
            "each reply if read to the end".into(),
            format!(
                "{} tokens, ≈ {}",
                thousands(st.tokens as usize),
                bytes(reply_bytes(st.tokens))
            ),
        ),
        (
            "proxy RSS before connecting / at t = 0 (all sent) / 2 s / end of hold / peak".into(),
            format!(
                "{} / {} / {} / {} / {} MiB",
                mib(st.rss_before_kib),
                mib(st.rss_start_kib),
                mib(st.rss_2s_kib),
                mib(st.rss_end_kib),
                mib(st.rss_peak_kib)
            ),
        ),
        (
            format!(
                "**proxy RSS slope over the last half of the hold** ({}–{} s, 100 ms samples)",
                st.hold_s / 2.0,
                st.hold_s
            ),
            format!("**{} KiB/s**", num(st.slope_kib_per_s, 1)),
        ),
        (
            "proxy RSS from the second the mock's writes stopped growing to the end of the hold"
                .into(),
            match st.plateau_at_s {
                Some(t) if t <= st.hold_s => {
                    let from = rss_at_second(st, t);
                    format!(
                        "{} → {} MiB ({:.0} s → {:.0} s)",
                        mib(from),
                        mib(st.rss_end_kib),
                        t,
                        st.hold_s
                    )
                }
                Some(t) => format!("writes stopped only at {t:.0} s, after the hold"),
                None => "writes never stopped".into(),
            },
        ),
        (
            "proxy RSS per stalled stream at the end of the hold ((end − before) ÷ clients)".into(),
            format!(
                "{} KiB",
                num(
                    div(
                        st.rss_end_kib.saturating_sub(st.rss_before_kib) as f64,
                        st.connected as f64
                    ),
                    0
                )
            ),
        ),
        (
            "proxy CPU during the hold / its last half".into(),
            format!("{:.2} s / {:.2} s", st.cpu_hold_s, st.cpu_last_half_s),
        ),
        (
            "other processes' CPU during the hold".into(),
            format!("{:.2} s over {:.1} s", st.other_cpu_s, st.held_s),
        ),
        (
            "proxy open fds while holding".into(),
            st.fds_held.to_string(),
        ),
        (
            "mock bytes written per stream (median (min – max)) at 2 s".into(),
            per_stream(&two),
        ),
        (
            format!(
                "… at {:.0} s (half the hold)",
                half.t_s
            ),
            per_stream(&half),
        ),
        (
            format!("… at {:.0} s (end)", end.t_s),
            per_stream(&end),
        ),
        (
            "mock bytes written, all streams, at the end".into(),
            bytes(end.written_sum),
        ),
        (
            "tokens out of the mock per stream at the end: median / max".into(),
            format!(
                "{} / {} of {} ({:.2} %)",
                thousands(end.tokens_p50 as usize),
                thousands(end.tokens_max as usize),
                thousands(st.tokens as usize),
                100.0 * f64::from(end.tokens_max) / f64::from(st.tokens.max(1))
            ),
        ),
        (
            "largest growth of one stream's written bytes over the last second".into(),
            format!(
                "{} (plateau: no stream grew more than {} in a second from {})",
                bytes(end.grew_max),
                bytes(crate::stalled::PLATEAU_SLACK),
                st.plateau_at_s
                    .map_or("never".to_owned(), |t| format!("{t:.0} s"))
            ),
        ),
        (
            "streams still streaming / finished / cut, at the end of the hold".into(),
            format!("{} / {} / {}", end.streaming, end.finished, end.cut),
        ),
        (
            "kernel TCP buffers, machine-wide, at the end of the hold".into(),
            bytes(st.kernel_tcp_kib * 1024),
        ),
        (
            "bytes queued in the kernel at the end of the hold, per stream: mock's send queue / proxy's unread upstream / proxy's send queue to the client / client's unread".into(),
            {
                let n = st.connected.max(1) as u64;
                let q = &st.queues;
                format!(
                    "{} / {} / {} / {}",
                    bytes(q.mock_tx / n),
                    bytes(q.proxy_upstream_rx / n),
                    bytes(q.proxy_client_tx / n),
                    bytes(q.client_rx / n)
                )
            },
        ),
        (
            "so the proxy had read per stream (mock's bytes minus both upstream queues), mean".into(),
            {
                let n = st.connected.max(1) as u64;
                let q = &st.queues;
                bytes(
                    end.written_sum
                        .saturating_sub(q.mock_tx + q.proxy_upstream_rx)
                        / n,
                )
            },
        ),
        (
            "**every upstream connection closed (seen by the mock) after the clients closed**".into(),
            match st.upstream_closed_after_s {
                Some(s) => format!("**after {:.2} s**", s),
                None => format!(
                    "**no: {} still open after {} s**",
                    st.upstream_still_open,
                    crate::stalled::CLOSE_WAIT.as_secs()
                ),
            },
        ),
        (
            "proxy RSS 1 s / 3 s after that; open fds".into(),
            format!(
                "{} / {} MiB; {}",
                mib(st.rss_closed_kib),
                mib(st.rss_closed_3s_kib),
                st.fds_closed
            ),
        ),
        (
            "checks".into(),
            if st.failures.is_empty() {
                "pass".into()
            } else {
                format!("**FAILED**: {}", st.failures.join("; "))
            },
        ),
    ];
    for (label, value) in rows {
        let _ = writeln!(md, "| {label} | {value} |");
    }
    md.push('\n');
    md.push_str("| t (s) | proxy RSS | streams streaming / finished / cut | mock bytes written per stream: min / median / max | all streams | tokens out per stream: median / max | largest one-stream growth over the second | kernel, all streams: proxy's unread upstream / proxy's send queues to the clients |\n");
    md.push_str("|---|---|---|---|---|---|---|---|\n");
    for s in &st.mock {
        let _ = writeln!(
            md,
            "| {:.0} | {} MiB | {} / {} / {} | {} / {} / {} | {} | {} / {} | {} | {} / {} |",
            s.t_s,
            mib(s.proxy_rss_kib),
            s.streaming,
            s.finished,
            s.cut,
            bytes(s.written_min),
            bytes(s.written_p50),
            bytes(s.written_max),
            bytes(s.written_sum),
            thousands(s.tokens_p50 as usize),
            thousands(s.tokens_max as usize),
            bytes(s.grew_max),
            bytes(s.queues.proxy_upstream_rx),
            bytes(s.queues.proxy_client_tx),
        );
    }
    md.push('\n');
}
