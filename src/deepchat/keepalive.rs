//! WebSocket keepalive during a reply: when pings are due, whether the client answered.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Keepalive during a reply. A peer that vanished, or a client that stopped reading, would
/// otherwise hold the reply (and the paid upstream stream) until the send buffer fills or the
/// reply times out. Pings ride along with the reply's frames; a ping that stays unanswered, or
/// cannot even be written, for one interval ends the reply.
pub struct Keepalive {
    pub interval: Duration,
    started: Instant,
    /// Milliseconds after `started` (+1) at which the oldest unanswered ping fell due; 0 = none.
    unanswered_since: AtomicU64,
    /// When the next ping falls due, in the same unit.
    next_ping: AtomicU64,
}

impl Keepalive {
    pub fn new(interval: Duration) -> Self {
        let started = Instant::now();
        Keepalive {
            interval,
            started,
            unanswered_since: AtomicU64::new(0),
            next_ping: AtomicU64::new(millis(interval) + 1),
        }
    }

    fn now(&self) -> u64 {
        millis(self.started.elapsed()) + 1
    }

    /// True (and the next ping scheduled) when a ping should go out now.
    pub fn ping_due(&self) -> bool {
        let now = self.now();
        if now < self.next_ping.load(Ordering::Relaxed) {
            return false;
        }
        self.next_ping
            .store(now + millis(self.interval), Ordering::Relaxed);
        let _ =
            self.unanswered_since
                .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        true
    }

    /// The client sent something: it is alive and reading.
    pub fn answered(&self) {
        self.unanswered_since.store(0, Ordering::Relaxed);
    }

    pub fn overdue(&self) -> bool {
        let since = self.unanswered_since.load(Ordering::Relaxed);
        since != 0 && self.now().saturating_sub(since) >= millis(self.interval)
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_unanswered_ping_is_overdue_after_one_interval() {
        let keepalive = Keepalive::new(Duration::from_secs(1));
        assert!(
            !keepalive.ping_due(),
            "nothing due before the first interval"
        );
        tokio::time::advance(Duration::from_millis(1000)).await;
        assert!(keepalive.ping_due());
        assert!(!keepalive.ping_due(), "one ping per interval");
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(!keepalive.overdue());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(keepalive.overdue());
        keepalive.answered();
        assert!(!keepalive.overdue(), "an answer clears it");
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_ping_does_not_restart_the_clock_of_an_unanswered_one() {
        let keepalive = Keepalive::new(Duration::from_secs(1));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(keepalive.ping_due());
        tokio::time::advance(Duration::from_millis(600)).await;
        keepalive.answered();
        tokio::time::advance(Duration::from_millis(400)).await;
        assert!(keepalive.ping_due(), "second ping at 2 s");
        tokio::time::advance(Duration::from_millis(900)).await;
        assert!(!keepalive.ping_due());
        assert!(!keepalive.overdue(), "0.9 s unanswered");
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(keepalive.ping_due(), "third ping at 3 s");
        assert!(
            keepalive.overdue(),
            "the 2 s ping is still the oldest unanswered"
        );
    }
}
