//! `--store memory` (the default): conversations in this process, bounded by count and bytes,
//! each expiring `--history-ttl` after its last write. Past a bound, expired ones go first,
//! then the least recently used: a flood of new ids cannot grow memory.

use super::{Store, StoreFuture};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most conversations kept.
pub const MAX_CONVERSATIONS: usize = 10_000;
/// Most bytes of stored dialogues kept (one dialogue is bounded by the conversation budget).
pub const MAX_BYTES: usize = 256 * 1024 * 1024;

struct Entry {
    value: Vec<u8>,
    expires: Instant,
    /// For least-recently-used eviction.
    used: Instant,
}

pub struct MemoryStore {
    /// The entries and their byte total.
    table: Mutex<(HashMap<String, Entry>, usize)>,
    max_entries: usize,
    max_bytes: usize,
}

impl MemoryStore {
    pub fn new(max_entries: usize, max_bytes: usize) -> MemoryStore {
        MemoryStore {
            table: Mutex::new((HashMap::new(), 0)),
            max_entries: max_entries.max(1),
            max_bytes,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Entry>, &mut usize) -> T) -> T {
        let mut guard = match self.table.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let (map, bytes) = &mut *guard;
        f(map, bytes)
    }
}

/// Drops expired entries, then the least recently used, until `map` is within the bounds.
fn evict(
    map: &mut HashMap<String, Entry>,
    bytes: &mut usize,
    max_entries: usize,
    max_bytes: usize,
) {
    if map.len() <= max_entries && *bytes <= max_bytes {
        return;
    }
    let now = Instant::now();
    map.retain(|_, entry| {
        let keep = entry.expires > now;
        if !keep {
            *bytes -= entry.value.len();
        }
        keep
    });
    while map.len() > max_entries || *bytes > max_bytes {
        let Some(oldest) = map
            .iter()
            .min_by_key(|(_, entry)| entry.used)
            .map(|(key, _)| key.clone())
        else {
            return;
        };
        if let Some(entry) = map.remove(&oldest) {
            *bytes -= entry.value.len();
        }
    }
}

impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let value = self.with(|map, bytes| {
            let now = Instant::now();
            match map.get_mut(key) {
                Some(entry) if entry.expires > now => {
                    entry.used = now;
                    Some(entry.value.clone())
                }
                Some(_) => {
                    if let Some(gone) = map.remove(key) {
                        *bytes -= gone.value.len();
                    }
                    None
                }
                None => None,
            }
        });
        Box::pin(async move { Ok(value) })
    }

    fn save<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Duration) -> StoreFuture<'a, ()> {
        self.with(|map, bytes| {
            let now = Instant::now();
            *bytes += value.len();
            let entry = Entry {
                value,
                expires: now + ttl,
                used: now,
            };
            if let Some(old) = map.insert(key.to_owned(), entry) {
                *bytes -= old.value.len();
            }
            evict(map, bytes, self.max_entries, self.max_bytes);
        });
        Box::pin(async { Ok(()) })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        let existed = self.with(|map, bytes| match map.remove(key) {
            Some(entry) => {
                *bytes -= entry.value.len();
                entry.expires > Instant::now()
            }
            None => false,
        });
        Box::pin(async move { Ok(existed) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_by_count_and_bytes_and_expiring() {
        let store = MemoryStore::new(2, 10);
        let hour = Duration::from_secs(3600);
        store.save("a", b"1234".to_vec(), hour).await.expect("save");
        store.save("b", b"1234".to_vec(), hour).await.expect("save");
        store.load("a").await.expect("load"); // a is now more recent than b
        store.save("c", b"12".to_vec(), hour).await.expect("save");
        assert!(
            store.load("b").await.expect("load").is_none(),
            "least recently used goes"
        );
        assert!(store.load("a").await.expect("load").is_some());
        store
            .save("d", b"123456789".to_vec(), hour)
            .await
            .expect("save");
        assert!(store.with(|_, bytes| *bytes) <= 10, "bytes bounded");
        store
            .save("short", b"x".to_vec(), Duration::from_millis(1))
            .await
            .expect("save");
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(
            store.load("short").await.expect("load").is_none(),
            "expired"
        );
        assert!(!store.delete("short").await.expect("delete"));
        assert!(store.delete("d").await.expect("delete"));
    }
}
