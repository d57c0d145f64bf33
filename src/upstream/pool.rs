//! The upstream HTTP clients. One reqwest client multiplexes every HTTP/2 reply over a single
//! connection per host, and when the server's `SETTINGS_MAX_CONCURRENT_STREAMS` is reached
//! hyper queues further replies behind the running ones instead of opening another
//! connection: with long streamed replies, the queued user waits for someone else's answer to
//! finish. Once the upstream is known to speak HTTP/2, replies are spread over as many clients
//! (each its own connection) as it takes to keep every connection within
//! `--upstream-streams-per-connection`. Over HTTP/1.1 one client pools connections itself.

use crate::upstream::settings::UpstreamPolicy;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub struct UpstreamPool {
    policy: UpstreamPolicy,
    slots: Mutex<Vec<Arc<Slot>>>,
    /// The upstream speaks HTTP/2 (`--upstream-http2`, or a response said so).
    multiplexed: AtomicBool,
}

struct Slot {
    client: reqwest::Client,
    /// Replies in flight on this client.
    active: AtomicUsize,
}

/// One reply's share of a client; gives it back when dropped.
pub struct Lease {
    slot: Arc<Slot>,
}

impl Lease {
    pub fn client(&self) -> &reqwest::Client {
        &self.slot.client
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.slot.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl UpstreamPool {
    pub fn new(policy: UpstreamPolicy) -> Self {
        UpstreamPool {
            slots: Mutex::new(vec![Arc::new(Slot::new(&policy))]),
            multiplexed: AtomicBool::new(policy.http2_only),
            policy,
        }
    }

    /// A client for one reply: over HTTP/2, the first one with room, or a new one.
    pub fn lease(&self) -> Lease {
        let mut slots = match self.slots.lock() {
            Ok(slots) => slots,
            Err(poisoned) => poisoned.into_inner(),
        };
        let limit = self.policy.streams_per_connection.max(1);
        let found = if self.multiplexed.load(Ordering::Relaxed) {
            slots
                .iter()
                .find(|slot| slot.active.load(Ordering::Relaxed) < limit)
                .cloned()
        } else {
            slots.first().cloned()
        };
        let slot = found.unwrap_or_else(|| {
            let slot = Arc::new(Slot::new(&self.policy));
            slots.push(slot.clone());
            tracing::debug!(
                clients = slots.len(),
                "new upstream connection for HTTP/2 replies"
            );
            slot
        });
        slot.active.fetch_add(1, Ordering::Relaxed);
        Lease { slot }
    }

    /// Notes the protocol of a response: HTTP/2 turns on spreading.
    pub fn saw_version(&self, version: reqwest::Version) {
        if version == reqwest::Version::HTTP_2 && !self.multiplexed.swap(true, Ordering::Relaxed) {
            tracing::info!("the upstream speaks HTTP/2: replies share connections");
        }
    }

    #[cfg(test)]
    fn clients(&self) -> usize {
        self.slots.lock().map(|s| s.len()).unwrap_or(0)
    }
}

impl Slot {
    fn new(policy: &UpstreamPolicy) -> Self {
        Slot {
            client: crate::upstream::client::client(policy),
            active: AtomicUsize::new(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn policy(http2_only: bool, streams_per_connection: usize) -> UpstreamPolicy {
        UpstreamPolicy {
            connect_timeout: Duration::from_secs(1),
            first_byte_timeout: Duration::from_secs(1),
            chunk_timeout: Duration::from_secs(1),
            reply_timeout: Duration::from_secs(1),
            retries: 0,
            http2_only,
            streams_per_connection,
        }
    }

    #[test]
    fn http1_uses_one_client_however_many_replies() {
        let pool = UpstreamPool::new(policy(false, 2));
        let leases: Vec<Lease> = (0..5).map(|_| pool.lease()).collect();
        assert_eq!(pool.clients(), 1);
        drop(leases);
    }

    #[test]
    fn http2_spreads_replies_and_reuses_freed_room() {
        let pool = UpstreamPool::new(policy(true, 2));
        let first: Vec<Lease> = (0..4).map(|_| pool.lease()).collect();
        assert_eq!(pool.clients(), 2);
        let fifth = pool.lease();
        assert_eq!(pool.clients(), 3);
        drop(first);
        drop(fifth);
        let again: Vec<Lease> = (0..4).map(|_| pool.lease()).collect();
        assert_eq!(
            pool.clients(),
            3,
            "freed room is used before new connections"
        );
        drop(again);
    }

    #[test]
    fn an_http2_response_turns_spreading_on() {
        let pool = UpstreamPool::new(policy(false, 1));
        let a = pool.lease();
        let b = pool.lease();
        assert_eq!(pool.clients(), 1);
        pool.saw_version(reqwest::Version::HTTP_11);
        let _c = pool.lease();
        assert_eq!(pool.clients(), 1);
        pool.saw_version(reqwest::Version::HTTP_2);
        let _d = pool.lease();
        assert_eq!(pool.clients(), 2);
        drop((a, b));
    }
}
