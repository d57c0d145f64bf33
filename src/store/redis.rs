//! `--store redis://…`: conversations in Redis or Valkey, shared by every replica (the `redis`
//! crate on tokio, through a connection manager that reconnects by itself). A save is one
//! `SET … PX` of the whole dialogue, so it is atomic and expires on its own. Replicas also
//! share, through it, the per-conversation lock (`SET NX PX`, freed by a compare-and-delete
//! script) and the rate-limit counters (one script: check every key, then count them all).

use super::{Shared, Store, StoreError, StoreFuture, STORE_DEADLINE};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use std::time::Duration;
use tokio::sync::OnceCell;

/// Every key this proxy writes starts with this, so a shared Redis stays readable.
const PREFIX: &str = "deepchat-proxy:";

/// Frees a lock only for its holder.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

/// One request against every key's one-minute window: if any key is at the limit, nothing is
/// counted and the milliseconds until its window ends come back; else every key is counted
/// (a new window expires in 60 s) and 0 comes back.
const COUNT: &str = r"
local limit = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local used = tonumber(redis.call('GET', key) or '0')
  if used >= limit then
    local wait = redis.call('PTTL', key)
    if wait < 1 then wait = 1 end
    return wait
  end
end
for i, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('PEXPIRE', key, 60000) end
end
return 0";

pub struct RedisStore {
    client: redis::Client,
    /// Made on first use (and retried after a failed connect), so the proxy starts without Redis.
    connection: OnceCell<ConnectionManager>,
    unlock: Script,
    count: Script,
}

fn backend(err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("redis: {err}"))
}

impl RedisStore {
    pub fn open(url: &str) -> Result<RedisStore, StoreError> {
        Ok(RedisStore {
            client: redis::Client::open(url).map_err(backend)?,
            connection: OnceCell::new(),
            unlock: Script::new(UNLOCK),
            count: Script::new(COUNT),
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(STORE_DEADLINE)
            .set_response_timeout(STORE_DEADLINE)
            // Reconnects happen in the background; a call never waits through many of them.
            .set_number_of_retries(1);
        self.connection
            .get_or_try_init(|| ConnectionManager::new_with_config(self.client.clone(), config))
            .await
            .cloned()
            .map_err(backend)
    }
}

fn key(name: &str) -> String {
    format!("{PREFIX}conversation:{name}")
}

/// Milliseconds for Redis: at least 1.
fn millis(duration: Duration) -> u64 {
    (duration.as_millis() as u64).max(1)
}

impl Store for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn load<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let mut connection = self.connection().await?;
            connection.get(key(name)).await.map_err(backend)
        })
    }

    fn save<'a>(&'a self, name: &'a str, value: Vec<u8>, ttl: Duration) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut connection = self.connection().await?;
            redis::cmd("SET")
                .arg(key(name))
                .arg(value)
                .arg("PX")
                .arg(millis(ttl))
                .query_async::<()>(&mut connection)
                .await
                .map_err(backend)
        })
    }

    fn delete<'a>(&'a self, name: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut connection = self.connection().await?;
            let removed: u64 = connection.del(key(name)).await.map_err(backend)?;
            Ok(removed > 0)
        })
    }

    fn shared(&self) -> Option<&dyn Shared> {
        Some(self)
    }
}

impl Shared for RedisStore {
    fn try_lock<'a>(
        &'a self,
        name: &'a str,
        token: &'a str,
        hold: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut connection = self.connection().await?;
            let taken: Option<String> = redis::cmd("SET")
                .arg(format!("{PREFIX}lock:{name}"))
                .arg(token)
                .arg("NX")
                .arg("PX")
                .arg(millis(hold))
                .query_async(&mut connection)
                .await
                .map_err(backend)?;
            Ok(taken.is_some())
        })
    }

    fn unlock<'a>(&'a self, name: &'a str, token: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut connection = self.connection().await?;
            self.unlock
                .key(format!("{PREFIX}lock:{name}"))
                .arg(token)
                .invoke_async::<i64>(&mut connection)
                .await
                .map(|_| ())
                .map_err(backend)
        })
    }

    fn count_request<'a>(
        &'a self,
        keys: &'a [String],
        per_minute: u32,
    ) -> StoreFuture<'a, Option<Duration>> {
        Box::pin(async move {
            let mut connection = self.connection().await?;
            let mut invocation = self.count.prepare_invoke();
            for name in keys {
                invocation.key(format!("{PREFIX}rate:{name}"));
            }
            invocation.arg(per_minute);
            let wait: i64 = invocation
                .invoke_async(&mut connection)
                .await
                .map_err(backend)?;
            Ok((wait > 0).then(|| Duration::from_millis(wait as u64)))
        })
    }
}
