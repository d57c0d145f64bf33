//! The backpressure table of a stalled scenario: the proxy's memory and the mock's writes
//! while N clients never read, and whether every upstream closed once they left.

use super::format::{bytes, div, mib, num, thousands};
use crate::stalled::{MockSample, StalledResult};
use std::fmt::Write as _;

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

pub fn stalled_markdown(md: &mut String, name: &str, description: &str, st: &StalledResult) {
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
