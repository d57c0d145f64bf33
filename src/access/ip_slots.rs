//! Open connections counted per client IP (`--max-connections-per-ip`), so one address cannot
//! take every `--max-connections` slot. Counted by TCP peer, the only address known before a
//! request arrives.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Connection counts by peer IP; entries disappear when their last connection closes.
pub struct IpSlots {
    /// Most connections per IP; `None` = no per-IP cap.
    limit: Option<usize>,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection's place in its IP's count; released when dropped.
pub struct IpSlot {
    ip: IpAddr,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl IpSlots {
    pub fn new(limit: Option<usize>) -> IpSlots {
        IpSlots {
            limit,
            counts: Arc::default(),
        }
    }

    /// A slot for one more connection from `ip`, or `None` when that IP is at its cap.
    pub fn acquire(&self, ip: IpAddr) -> Option<IpSlot> {
        let limit = self.limit?;
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(ip).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            ip,
            counts: self.counts.clone(),
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_each_ip_and_frees_slots_on_drop() {
        let slots = IpSlots::new(Some(2));
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let first = slots.acquire(a).expect("room");
        let _second = slots.acquire(a).expect("room");
        assert!(slots.acquire(a).is_none(), "third from one IP is refused");
        assert!(slots.acquire(b).is_some(), "another IP is not affected");
        drop(first);
        assert!(
            slots.acquire(a).is_some(),
            "a closed connection frees its slot"
        );
        let counts = slots.counts.lock().expect("lock");
        assert_eq!(
            counts.get(&b),
            None,
            "entries go away with their last connection"
        );
    }
}
