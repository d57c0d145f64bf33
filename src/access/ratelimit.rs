//! Requests per client per minute: a token bucket per key (client IP, and token identity when
//! authenticated). Memory stays bounded: buckets that have refilled completely carry no
//! information and are dropped when the table grows.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Table size past which full buckets are swept out.
const SWEEP_AT: usize = 10_000;

/// Who is asking, for rate limiting: the peer IP, and the token identity when authenticated.
#[derive(Debug, Clone)]
pub struct ClientKey {
    pub ip: String,
    pub identity: Option<String>,
}

impl ClientKey {
    pub fn keys(&self) -> Vec<&str> {
        let mut keys = vec![self.ip.as_str()];
        keys.extend(self.identity.as_deref());
        keys
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// A per-key token bucket allowing `per_minute` requests per minute (bursts up to that).
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// `per_minute == 0` disables limiting.
    pub fn new(per_minute: u32) -> RateLimiter {
        RateLimiter {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request for every key; `Err(wait)` says when the first refused key has a token
    /// again. Nothing is taken unless all keys have one, so a refused request costs nothing.
    pub fn check(&self, keys: &[&str]) -> Result<(), Duration> {
        self.check_at(keys, Instant::now())
    }

    fn check_at(&self, keys: &[&str], now: Instant) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let mut buckets = match self.buckets.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if buckets.len() > SWEEP_AT {
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * per_second < capacity
            });
        }
        for key in keys {
            let bucket = buckets.entry((*key).to_owned()).or_insert(Bucket {
                tokens: capacity,
                updated: now,
            });
            let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
            bucket.updated = now;
            if bucket.tokens < 1.0 {
                return Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second));
            }
        }
        for key in keys {
            if let Some(bucket) = buckets.get_mut(*key) {
                bucket.tokens -= 1.0;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_refills_over_time() {
        let limiter = RateLimiter::new(3);
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_at(&["ip"], start).is_ok());
        }
        let wait = limiter.check_at(&["ip"], start).expect_err("limited");
        assert!(
            wait > Duration::from_secs(19) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(
            limiter.check_at(&["other"], start).is_ok(),
            "keys are independent"
        );
        assert!(limiter
            .check_at(&["ip"], start + Duration::from_secs(21))
            .is_ok());
    }

    #[test]
    fn every_key_must_have_room() {
        let limiter = RateLimiter::new(1);
        let now = Instant::now();
        assert!(limiter.check_at(&["ip-a", "token"], now).is_ok());
        assert!(
            limiter.check_at(&["ip-b", "token"], now).is_err(),
            "shared token is spent"
        );
        assert!(
            limiter.check_at(&["ip-b"], now).is_ok(),
            "refusal took nothing from ip-b"
        );
    }

    #[test]
    fn zero_disables() {
        let limiter = RateLimiter::new(0);
        for _ in 0..1000 {
            assert!(limiter.check(&["ip"]).is_ok());
        }
    }
}
