//! What happened in the last minutes, for the `/status` page: replies by outcome and
//! time-to-first-token percentiles, per minute over a short window. Bounded: a fixed number of
//! minutes, each a fixed-size histogram, whatever the traffic.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Minutes kept.
pub const WINDOW_MINUTES: u64 = 15;

/// Time-to-first-token buckets: 1 ms, growing by a quarter each, up to about 2 minutes, so a
/// percentile read from them is within 25 % of the truth.
const TTFT_BUCKETS: usize = 53;
const FIRST_BOUND_MS: f64 = 1.0;
const GROWTH: f64 = 1.25;

#[derive(Clone)]
struct Minute {
    /// Minutes since the process started.
    index: u64,
    ok: u64,
    errors: u64,
    cancelled: u64,
    ttft: [u32; TTFT_BUCKETS],
}

impl Minute {
    fn new(index: u64) -> Minute {
        Minute {
            index,
            ok: 0,
            errors: 0,
            cancelled: 0,
            ttft: [0; TTFT_BUCKETS],
        }
    }
}

/// The rolling window.
pub struct Recent {
    started: Instant,
    minutes: Mutex<VecDeque<Minute>>,
}

/// The window summed up.
#[derive(Debug, Default, PartialEq)]
pub struct Summary {
    pub ok: u64,
    pub errors: u64,
    pub cancelled: u64,
    /// Time-to-first-token p50, p90, p99 (bucket upper bounds), when any reply had text.
    pub ttft: Option<[Duration; 3]>,
}

impl Recent {
    pub fn new() -> Recent {
        Recent {
            started: Instant::now(),
            minutes: Mutex::new(VecDeque::new()),
        }
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Counts one finished reply (`ok`, `error` or `cancelled`) and its first-token time.
    pub fn record(&self, status: &str, first_token: Option<Duration>) {
        let now = self.minute_now();
        let Ok(mut minutes) = self.minutes.lock() else {
            return;
        };
        if minutes.back().map(|m| m.index) != Some(now) {
            minutes.push_back(Minute::new(now));
        }
        while minutes
            .front()
            .is_some_and(|m| m.index + WINDOW_MINUTES <= now)
        {
            minutes.pop_front();
        }
        let Some(minute) = minutes.back_mut() else {
            return;
        };
        match status {
            "ok" => minute.ok += 1,
            "cancelled" => minute.cancelled += 1,
            _ => minute.errors += 1,
        }
        if let Some(first) = first_token {
            minute.ttft[bucket_of(first)] += 1;
        }
    }

    /// The last [`WINDOW_MINUTES`] minutes.
    pub fn summary(&self) -> Summary {
        let now = self.minute_now();
        let Ok(minutes) = self.minutes.lock() else {
            return Summary::default();
        };
        let mut summary = Summary::default();
        let mut ttft = [0u64; TTFT_BUCKETS];
        for minute in minutes.iter().filter(|m| m.index + WINDOW_MINUTES > now) {
            summary.ok += minute.ok;
            summary.errors += minute.errors;
            summary.cancelled += minute.cancelled;
            for (total, count) in ttft.iter_mut().zip(minute.ttft.iter()) {
                *total += u64::from(*count);
            }
        }
        let samples: u64 = ttft.iter().sum();
        if samples > 0 {
            summary.ttft = Some([0.5, 0.9, 0.99].map(|q| percentile(&ttft, samples, q)));
        }
        summary
    }

    fn minute_now(&self) -> u64 {
        self.started.elapsed().as_secs() / 60
    }
}

impl Default for Recent {
    fn default() -> Self {
        Recent::new()
    }
}

fn bound_ms(bucket: usize) -> f64 {
    FIRST_BOUND_MS * GROWTH.powi(bucket as i32)
}

fn bucket_of(duration: Duration) -> usize {
    let ms = duration.as_secs_f64() * 1000.0;
    (0..TTFT_BUCKETS)
        .find(|b| ms <= bound_ms(*b))
        .unwrap_or(TTFT_BUCKETS - 1)
}

fn percentile(buckets: &[u64; TTFT_BUCKETS], samples: u64, quantile: f64) -> Duration {
    let rank = ((samples as f64) * quantile).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (bucket, count) in buckets.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return Duration::from_secs_f64(bound_ms(bucket) / 1000.0);
        }
    }
    Duration::from_secs_f64(bound_ms(TTFT_BUCKETS - 1) / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_outcomes_and_reads_percentiles_within_a_bucket() {
        let recent = Recent::new();
        for ms in 1..=100u64 {
            recent.record("ok", Some(Duration::from_millis(ms * 10)));
        }
        recent.record("error", None);
        recent.record("cancelled", None);
        let summary = recent.summary();
        assert_eq!((summary.ok, summary.errors, summary.cancelled), (100, 1, 1));
        let [p50, p90, p99] = summary.ttft.expect("percentiles");
        // True values 500, 900, 990 ms; a bucket bound is at most 25 % above.
        for (got, truth) in [(p50, 500.0), (p90, 900.0), (p99, 990.0)] {
            let got = got.as_secs_f64() * 1000.0;
            assert!(got >= truth && got <= truth * GROWTH, "{got} vs {truth}");
        }
    }

    #[test]
    fn the_largest_bucket_is_about_two_minutes() {
        let largest = bound_ms(TTFT_BUCKETS - 1);
        assert!((100_000.0..200_000.0).contains(&largest), "{largest}");
        assert_eq!(bucket_of(Duration::from_secs(3600)), TTFT_BUCKETS - 1);
    }
}
