//! Percentiles (nearest rank) over exact samples: no histogram buckets, nothing dropped.

use serde::Serialize;

/// p50, p99, p99.9 and max of a distribution, in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Pct {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub samples: usize,
}

impl Pct {
    /// From nanosecond samples (sorted here); "–" in reports when there are none.
    pub fn of_ns(mut samples: Vec<i64>) -> Pct {
        if samples.is_empty() {
            return Pct::unknown(0);
        }
        samples.sort_unstable();
        let us = |ns: i64| ns as f64 / 1000.0;
        Pct {
            p50: us(rank(&samples, 50.0)),
            p99: us(rank(&samples, 99.0)),
            p999: us(rank(&samples, 99.9)),
            max: us(samples.last().copied().unwrap_or(0)),
            samples: samples.len(),
        }
    }

    /// No samples on either side: nothing to compare (shown as "–").
    fn unknown(samples: usize) -> Pct {
        Pct {
            p50: f64::NAN,
            p99: f64::NAN,
            p999: f64::NAN,
            max: f64::NAN,
            samples,
        }
    }

    /// `self - floor` per statistic: what the proxy adds.
    pub fn minus(&self, floor: &Pct) -> Pct {
        if self.samples == 0 || floor.samples == 0 {
            return Pct::unknown(self.samples);
        }
        Pct {
            p50: self.p50 - floor.p50,
            p99: self.p99 - floor.p99,
            p999: self.p999 - floor.p999,
            max: self.max - floor.max,
            samples: self.samples,
        }
    }

    /// `self / floor` per statistic.
    pub fn ratio(&self, floor: &Pct) -> Pct {
        if self.samples == 0 || floor.samples == 0 {
            return Pct::unknown(self.samples);
        }
        let div = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        Pct {
            p50: div(self.p50, floor.p50),
            p99: div(self.p99, floor.p99),
            p999: div(self.p999, floor.p999),
            max: div(self.max, floor.max),
            samples: self.samples,
        }
    }
}

/// Nearest-rank percentile of sorted samples; 0 when empty.
fn rank(sorted: &[i64], percentile: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    // In integer per-mille: 99.9 % of 1,000 in floating point is 999.000…1, whose ceiling
    // would pick the 1,000th sample.
    let permille = (percentile * 10.0).round() as usize;
    let index = (permille * sorted.len())
        .div_ceil(1000)
        .clamp(1, sorted.len())
        - 1;
    sorted[index]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let samples: Vec<i64> = (1..=100).map(|v| v * 1000).collect();
        let p = Pct::of_ns(samples);
        assert_eq!((p.p50, p.p99, p.max), (50.0, 99.0, 100.0));
        let thousand: Vec<i64> = (1..=1000).map(|v| v * 1000).collect();
        assert_eq!(Pct::of_ns(thousand).p999, 999.0);
        let one = Pct::of_ns(vec![5000]);
        assert_eq!((one.p50, one.p99, one.max), (5.0, 5.0, 5.0));
        let none = Pct::of_ns(Vec::new());
        assert!(none.p50.is_nan() && none.samples == 0);
        assert!(p.minus(&none).p99.is_nan());
    }
}
