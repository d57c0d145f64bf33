//! Conversations that outlive the socket: one small key/value trait ([`Store`]) with expiry,
//! chosen by `--store` (`memory`, `sqlite:PATH`, `redis://…`), and the facade the transports use
//! ([`conversations::Conversations`]): conversation ids, ownership, per-conversation locks,
//! deadlines and metrics on every call. A store keeps opaque values (one serialized dialogue per
//! key, see [`record`]), so every write is one whole value: never half-applied.

pub mod conversations;
pub mod id;
mod locks;
mod memory;
pub mod record;
mod redis;
mod sqlite;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Longest any one store call may take. A healthy store answers in milliseconds; past this it
/// is down or overloaded, and the reply (which never waits on the store for longer) goes on
/// without it rather than hang.
pub const STORE_DEADLINE: Duration = Duration::from_secs(2);

/// Why a store call failed (logged and counted; the client hears only "not saved").
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store did not answer within {0:?}")]
    Deadline(Duration),
    #[error("{0}")]
    Backend(String),
}

/// A boxed store future (the trait stays object-safe without an async-trait crate).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Keys to opaque values with a time to live. Each `save` replaces the whole value at once.
pub trait Store: Send + Sync {
    /// `memory`, `sqlite` or `redis`: the metrics label.
    fn kind(&self) -> &'static str;
    /// The value under `key`, unless it is missing or expired.
    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>>;
    /// Replaces the value under `key`; it expires `ttl` after this write.
    fn save<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Duration) -> StoreFuture<'a, ()>;
    /// Removes `key`; whether there was a value.
    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool>;
    /// What replicas share through this store (locks, rate counters); `None` for a store only
    /// this process uses.
    fn shared(&self) -> Option<&dyn Shared> {
        None
    }
}

/// What a store several replicas share can also do for them.
pub trait Shared: Send + Sync {
    /// Takes the lock `key` for `hold` (it expires by itself if the holder dies) with `token`
    /// as the holder's proof; whether it was free.
    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
        hold: Duration,
    ) -> StoreFuture<'a, bool>;
    /// Frees the lock `key` if `token` still holds it.
    fn unlock<'a>(&'a self, key: &'a str, token: &'a str) -> StoreFuture<'a, ()>;
    /// Counts one request for every key in a one-minute window, unless one of them is at
    /// `per_minute` already (then nothing is counted and the wait until it frees is returned).
    fn count_request<'a>(
        &'a self,
        keys: &'a [String],
        per_minute: u32,
    ) -> StoreFuture<'a, Option<Duration>>;
}

/// `--store`: where conversations are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// In this process, bounded, gone on restart.
    Memory,
    /// A SQLite file that survives restarts (one process).
    Sqlite(std::path::PathBuf),
    /// A Redis (or Valkey) URL that replicas share; may carry a password, so never shown.
    Redis(String),
}

impl StoreSpec {
    /// Reads `memory`, `sqlite:PATH` or `redis://…` / `rediss://…`.
    pub fn parse(text: &str) -> Result<StoreSpec, String> {
        let text = text.trim();
        if text.is_empty() || text == "memory" {
            return Ok(StoreSpec::Memory);
        }
        if let Some(path) = text.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err("sqlite: needs a file path, e.g. sqlite:/var/lib/deepchat-proxy/conversations.db".into());
            }
            return Ok(StoreSpec::Sqlite(path.into()));
        }
        if text.starts_with("redis://") || text.starts_with("rediss://") {
            ::redis::Client::open(text).map_err(|e| format!("not a Redis URL: {e}"))?;
            return Ok(StoreSpec::Redis(text.to_owned()));
        }
        Err("give memory, sqlite:PATH or redis://HOST:PORT".into())
    }

    /// For the start-up line: the kind and, for SQLite, the file; never a Redis password.
    pub fn describe(&self) -> String {
        match self {
            StoreSpec::Memory => "memory".into(),
            StoreSpec::Sqlite(path) => format!("sqlite {}", path.display()),
            StoreSpec::Redis(_) => "redis".into(),
        }
    }
}

/// Opens the store `spec` names (a SQLite file is created; Redis connects on first use, so a
/// proxy starts while Redis is still coming up).
pub fn open(spec: &StoreSpec) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match spec {
        StoreSpec::Memory => Arc::new(memory::MemoryStore::new(
            memory::MAX_CONVERSATIONS,
            memory::MAX_BYTES,
        )),
        StoreSpec::Sqlite(path) => Arc::new(sqlite::SqliteStore::open(path)?),
        StoreSpec::Redis(url) => Arc::new(redis::RedisStore::open(url)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_never_show_a_password() {
        assert_eq!(StoreSpec::parse("memory"), Ok(StoreSpec::Memory));
        assert_eq!(
            StoreSpec::parse("sqlite:/tmp/c.db"),
            Ok(StoreSpec::Sqlite("/tmp/c.db".into()))
        );
        let redis = StoreSpec::parse("redis://:secret@127.0.0.1:6379/0").expect("redis");
        assert!(!redis.describe().contains("secret"));
        assert!(StoreSpec::parse("sqlite:").is_err());
        assert!(StoreSpec::parse("postgres://x").is_err());
    }
}
