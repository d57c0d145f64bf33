//! One clock for events seen by different processes: CLOCK_MONOTONIC is system-wide on Linux
//! (every process reads the same counter), never steps when the wall clock is set, and is what
//! `std::time::Instant` reads, so the mock and the load generator can compare their stamps.

use rustix::time::{clock_gettime, ClockId};

/// Nanoseconds of CLOCK_MONOTONIC (since boot, suspend excluded).
pub fn monotonic_nanos() -> u64 {
    let now = clock_gettime(ClockId::Monotonic);
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(now.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::monotonic_nanos;

    #[test]
    fn never_goes_back_and_follows_instant() {
        let started = std::time::Instant::now();
        let a = monotonic_nanos();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let b = monotonic_nanos();
        let elapsed = started.elapsed().as_nanos() as u64;
        assert!(b >= a + 5_000_000, "{a} then {b}");
        // Instant's reading brackets the two: the same clock (a generous margin for scheduling).
        assert!(b - a <= elapsed && elapsed - (b - a) < 50_000_000);
    }
}
