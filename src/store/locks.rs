//! One async lock per conversation in this process, so two sockets on one conversation take
//! turns. The table holds weak references only: a lock lives while a turn holds or awaits it,
//! and dead entries are swept when the table has doubled, so it never outgrows the turns in
//! flight by more than that.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

/// Table size under which no sweep is worth it.
const SWEEP_FLOOR: usize = 1024;

/// Locks by conversation key, and the table size at which the next sweep runs.
type Table = (HashMap<String, Weak<tokio::sync::Mutex<()>>>, usize);

#[derive(Default)]
pub struct LocalLocks {
    table: Mutex<Table>,
}

impl LocalLocks {
    /// The lock of `key`, shared with every turn that holds or awaits it now.
    pub fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut guard = match self.table.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let (map, sweep_at) = &mut *guard;
        if let Some(lock) = map.get(key).and_then(Weak::upgrade) {
            return lock;
        }
        if map.len() >= (*sweep_at).max(SWEEP_FLOOR) {
            map.retain(|_, lock| lock.strong_count() > 0);
            *sweep_at = map.len() * 2;
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        map.insert(key.to_owned(), Arc::downgrade(&lock));
        lock
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.lock().map(|g| g.0.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_lock_per_key_and_a_bounded_table() {
        let locks = LocalLocks::default();
        let a = locks.lock_for("a");
        assert!(Arc::ptr_eq(&a, &locks.lock_for("a")));
        for i in 0..10 * SWEEP_FLOOR {
            drop(locks.lock_for(&i.to_string()));
        }
        assert!(locks.len() <= SWEEP_FLOOR + 1, "{}", locks.len());
        assert!(
            Arc::ptr_eq(&a, &locks.lock_for("a")),
            "a held lock survives sweeps"
        );
    }
}
