//! The circuit breaker of one upstream target: after `--breaker-failures` consecutive failed
//! replies it opens, and a fallback chain skips the target for `--breaker-cooldown`, so a dead
//! provider does not add its timeout to every reply. Then it is half-open: one reply tries the
//! target again; its success closes the breaker, its failure opens it for another cool-down.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Serving; counts failures in a row.
    Closed { failures: u32 },
    /// Skipped until then.
    Open { until: Instant },
    /// One trial reply is out; others skip the target until then. A trial that never reports
    /// (its client left) frees the slot when this passes.
    Trial { until: Instant },
}

/// One upstream target's breaker, shared by every reply that may use it.
#[derive(Debug)]
pub struct Breaker {
    /// Failures in a row that open it; 0 = never opens.
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            threshold,
            cooldown,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// Whether a reply may try the target now. When the cool-down is over, the first caller
    /// gets the trial and the breaker waits for its report.
    pub fn admit(&self) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return true;
        };
        let now = Instant::now();
        match *state {
            State::Closed { .. } => true,
            State::Open { until } | State::Trial { until } if now < until => false,
            State::Open { .. } | State::Trial { .. } => {
                *state = State::Trial {
                    until: now + self.cooldown,
                };
                true
            }
        }
    }

    /// The target answered with content: the breaker closes.
    pub fn succeeded(&self) {
        if let Ok(mut state) = self.state.lock() {
            *state = State::Closed { failures: 0 };
        }
    }

    /// The target failed a reply (after its retries). Returns true when this opened the breaker.
    pub fn failed(&self) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        if self.threshold == 0 {
            return false;
        }
        let open = State::Open {
            until: Instant::now() + self.cooldown,
        };
        match *state {
            State::Closed { failures } if failures + 1 < self.threshold => {
                *state = State::Closed {
                    failures: failures + 1,
                };
                false
            }
            State::Open { .. } => false,
            State::Closed { .. } | State::Trial { .. } => {
                *state = open;
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_then_lets_one_trial_through() {
        let breaker = Breaker::new(2, Duration::from_millis(0));
        assert!(breaker.admit());
        assert!(!breaker.failed());
        assert!(breaker.admit(), "one failure is below the threshold");
        assert!(breaker.failed(), "the second opens it");
        // A zero cool-down is over at once: the next caller is the trial.
        assert!(breaker.admit());
        assert!(breaker.failed(), "a failed trial opens it again");
        assert!(breaker.admit());
        breaker.succeeded();
        assert!(breaker.admit());
        assert!(!breaker.failed(), "closed again: counting from zero");
    }

    #[test]
    fn open_breaker_refuses_until_the_cool_down_ends() {
        let breaker = Breaker::new(1, Duration::from_secs(3600));
        assert!(breaker.failed());
        assert!(!breaker.admit());
        let off = Breaker::new(0, Duration::from_secs(3600));
        assert!(!off.failed());
        assert!(off.admit());
    }
}
