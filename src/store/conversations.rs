//! The conversation facade the transports use: keys that include the owner, one turn at a time
//! per conversation (a lock in this process and, with a shared store, one across replicas),
//! and every store call under [`STORE_DEADLINE`], timed and counted. A store that fails never
//! fails the reply: the caller learns only whether this turn was saved.

use super::id::ConversationId;
use super::locks::LocalLocks;
use super::record::Record;
use super::{Store, StoreError, StoreFuture, STORE_DEADLINE};
use crate::ops::telemetry;
use crate::request_id::RequestId;
use deepchat_adapters::Turn;
use sha2::{Digest, Sha256};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pause between tries for a lock another replica holds.
const LOCK_RETRY: Duration = Duration::from_millis(25);

/// Where conversations live and how turns on one conversation take turns.
pub struct Conversations {
    store: Arc<dyn Store>,
    locks: LocalLocks,
    /// `--history-ttl`: a conversation not written for this long is gone.
    ttl: Duration,
    /// How long a turn waits for the turn before it on the same conversation: as long as a
    /// reply may take (`--reply-timeout`).
    wait: Duration,
    /// How long a lock in the shared store lasts if its holder dies mid-turn.
    hold: Duration,
}

/// One conversation of one owner.
#[derive(Debug, Clone)]
pub struct Key {
    /// Owner and id: the store key, so another principal's id names another conversation.
    name: String,
    /// Hash of the principal, kept in the record too.
    owner: String,
}

/// Another turn of the conversation held it for longer than a reply may take.
#[derive(Debug)]
pub struct Busy;

impl Conversations {
    pub fn new(store: Arc<dyn Store>, ttl: Duration, reply_timeout: Duration) -> Conversations {
        Conversations {
            store,
            locks: LocalLocks::default(),
            ttl,
            wait: reply_timeout,
            hold: reply_timeout + Duration::from_secs(60),
        }
    }

    /// The key of conversation `id` for `principal` (the token or JWT identity; `None` without
    /// auth). Only a hash of the principal is kept.
    pub fn key(principal: Option<&str>, id: &ConversationId) -> Key {
        let digest = Sha256::digest(principal.unwrap_or("anonymous").as_bytes());
        let owner: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        Key {
            name: format!("{owner}:{}", id.as_str()),
            owner,
        }
    }

    async fn call<T>(&self, op: &'static str, call: StoreFuture<'_, T>) -> Result<T, StoreError> {
        timed(self.store.kind(), op, call).await
    }

    /// Waits for this conversation's turn, then reads it. With the store down the lease still
    /// comes (the local lock holds), with [`Lease::loaded`] an error.
    pub async fn lease(&self, key: Key) -> Result<Lease, Busy> {
        let deadline = tokio::time::Instant::now() + self.wait;
        let lock = self.locks.lock_for(&key.name);
        let local = tokio::time::timeout_at(deadline, lock.lock_owned())
            .await
            .map_err(|_| Busy)?;
        let mut lease = Lease {
            store: self.store.clone(),
            ttl: self.ttl,
            key,
            _local: local,
            remote: None,
            loaded: Err(()),
        };
        let mut reachable = true;
        if let Some(shared) = self.store.shared() {
            let token = lock_token();
            loop {
                match self
                    .call("lock", shared.try_lock(&lease.key.name, &token, self.hold))
                    .await
                {
                    Ok(true) => {
                        lease.remote = Some(token);
                        break;
                    }
                    Ok(false) if tokio::time::Instant::now() + LOCK_RETRY < deadline => {
                        tokio::time::sleep(LOCK_RETRY).await;
                    }
                    Ok(false) => return Err(Busy),
                    // Counted; this replica's lock still serializes its own turns, and the
                    // read is not tried (the store just failed): the turn starts sooner.
                    Err(_) => {
                        reachable = false;
                        break;
                    }
                }
            }
        }
        if reachable {
            lease.loaded = self.read(&lease.key).await.map_err(|_| ());
        }
        Ok(lease)
    }

    /// The stored dialogue of `key`, `None` when there is none (or it expired, or it is not
    /// this owner's).
    pub async fn read(&self, key: &Key) -> Result<Option<Vec<Turn>>, StoreError> {
        let bytes = self.call("load", self.store.load(&key.name)).await?;
        Ok(bytes
            .and_then(|bytes| Record::from_bytes(&bytes))
            .filter(|record| record.owner == key.owner)
            .map(|record| record.turns()))
    }

    /// Forgets `key` after any turn in flight; whether there was a conversation.
    pub async fn forget(&self, key: Key) -> Result<bool, StoreError> {
        let lease = self
            .lease(key)
            .await
            .map_err(|Busy| StoreError::Backend("the conversation stayed busy".into()))?;
        let deleted = self
            .call("delete", self.store.delete(&lease.key.name))
            .await;
        lease.release().await;
        deleted
    }

    /// With a store replicas share: counts one request for every key across replicas;
    /// `Err(wait)` when one is at `per_minute`. `None` when there is no shared store or it
    /// failed (the caller then limits in this process).
    pub async fn count_request(
        &self,
        keys: &[&str],
        per_minute: u32,
    ) -> Option<Result<(), Duration>> {
        let shared = self.store.shared()?;
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        match self
            .call("rate_limit", shared.count_request(&keys, per_minute))
            .await
        {
            Ok(None) => Some(Ok(())),
            Ok(Some(wait)) => Some(Err(wait)),
            Err(_) => None,
        }
    }
}

/// Runs one store call under the deadline, timing it; a failure is logged and counted.
async fn timed<T>(
    kind: &'static str,
    op: &'static str,
    call: StoreFuture<'_, T>,
) -> Result<T, StoreError> {
    let started = Instant::now();
    let result = match tokio::time::timeout(STORE_DEADLINE, call).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Deadline(STORE_DEADLINE)),
    };
    telemetry::store_call(kind, op, started.elapsed(), result.is_ok());
    if let Err(err) = &result {
        tracing::warn!(store = kind, op, %err, "conversation store call failed");
    }
    result
}

/// A unique holder token for a shared lock (unique across replicas; not a secret).
fn lock_token() -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("{:016x}-{}", hasher.finish(), RequestId::new())
}

/// One turn's hold on a conversation: its lock, and the dialogue read when it was taken.
pub struct Lease {
    store: Arc<dyn Store>,
    /// `--history-ttl`, for the save.
    ttl: Duration,
    key: Key,
    /// This process's lock of the conversation, held until the lease ends.
    _local: tokio::sync::OwnedMutexGuard<()>,
    /// The token of the shared store's lock, when one was taken.
    remote: Option<String>,
    /// The stored dialogue (`None`: a new or expired conversation), or `Err` if the store failed.
    loaded: Result<Option<Vec<Turn>>, ()>,
}

impl Lease {
    /// The stored dialogue (empty for a new conversation), or `None` when it could not be read.
    pub fn loaded(&self) -> Option<&[Turn]> {
        match &self.loaded {
            Ok(Some(turns)) => Some(turns),
            Ok(None) => Some(&[]),
            Err(()) => None,
        }
    }

    /// Saves `turns` as the whole conversation (one write) and ends the lease; whether it was
    /// saved.
    pub async fn save(self, turns: &[Turn]) -> bool {
        let value = Record::new(&self.key.owner, turns).to_bytes();
        let kind = self.store.kind();
        let saved = timed(
            kind,
            "save",
            self.store.save(&self.key.name, value, self.ttl),
        )
        .await
        .is_ok();
        self.release().await;
        saved
    }

    /// Ends the lease, freeing the shared lock at once (it would expire by itself).
    pub async fn release(mut self) {
        if let Some(token) = self.remote.take() {
            unlock(self.store.clone(), self.key.name.clone(), token).await;
        }
    }
}

async fn unlock(store: Arc<dyn Store>, name: String, token: String) {
    if let Some(shared) = store.shared() {
        let _ = timed(store.kind(), "unlock", shared.unlock(&name, &token)).await;
    }
}

/// A lease dropped mid-turn (the client left) frees the shared lock too, in the background.
impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(token) = self.remote.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(unlock(self.store.clone(), self.key.name.clone(), token));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hash_the_principal_and_differ_by_owner() {
        let id = ConversationId::parse("0123456789abcdef").expect("id");
        let alice = Conversations::key(Some("jwt-alice"), &id);
        let bob = Conversations::key(Some("jwt-bob"), &id);
        let nobody = Conversations::key(None, &id);
        assert_ne!(alice.name, bob.name);
        assert_ne!(alice.name, nobody.name);
        assert!(!alice.name.contains("alice"));
        assert!(alice.name.ends_with(":0123456789abcdef"));
    }
}
