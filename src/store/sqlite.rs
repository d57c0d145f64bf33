//! `--store sqlite:PATH`: conversations in a SQLite file (rusqlite, SQLite bundled), so they
//! survive a restart of a single proxy. WAL journal (readers never wait for the writer);
//! every call runs on tokio's blocking pool, since SQLite blocks. A save is one transaction
//! that replaces the whole dialogue and purges expired ones.

use super::{Store, StoreError, StoreFuture};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub struct SqliteStore {
    /// One connection: SQLite serializes writers anyway, and chat turns are few per second.
    connection: Arc<Mutex<Connection>>,
}

fn backend(err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("sqlite: {err}"))
}

/// Milliseconds since the Unix epoch (expiry survives a restart, so it is wall-clock time).
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let connection = Connection::open(path)
            .map_err(|e| StoreError::Backend(format!("sqlite {}: {e}", path.display())))?;
        // WAL answers with the mode it set; busy_timeout waits for another connection's lock.
        connection
            .query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .map_err(backend)?;
        connection
            .busy_timeout(Duration::from_secs(1))
            .map_err(backend)?;
        connection
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS conversations (
                     key TEXT PRIMARY KEY,
                     value BLOB NOT NULL,
                     expires_ms INTEGER NOT NULL
                 );
                 CREATE INDEX IF NOT EXISTS conversations_expiry ON conversations (expires_ms);",
            )
            .map_err(backend)?;
        Ok(SqliteStore {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Runs `work` on the blocking pool with the connection.
    fn run<'a, T: Send + 'static>(
        &'a self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreFuture<'a, T> {
        let connection = self.connection.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut guard = match connection.lock() {
                    Ok(guard) => guard,
                    Err(poisoned) => poisoned.into_inner(),
                };
                work(&mut guard)
            })
            .await
            .map_err(backend)?
            .map_err(backend)
        })
    }
}

impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let key = key.to_owned();
        self.run(move |db| {
            db.query_row(
                "SELECT value FROM conversations WHERE key = ?1 AND expires_ms > ?2",
                params![key, now_ms()],
                |row| row.get(0),
            )
            .optional()
        })
    }

    fn save<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Duration) -> StoreFuture<'a, ()> {
        let key = key.to_owned();
        self.run(move |db| {
            let now = now_ms();
            let tx = db.transaction()?;
            tx.execute(
                "INSERT INTO conversations (key, value, expires_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_ms = excluded.expires_ms",
                params![key, value, now.saturating_add(ttl.as_millis() as i64)],
            )?;
            tx.execute("DELETE FROM conversations WHERE expires_ms <= ?1", params![now])?;
            tx.commit()
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        let key = key.to_owned();
        self.run(move |db| {
            let live = db.execute(
                "DELETE FROM conversations WHERE key = ?1 AND expires_ms > ?2",
                params![key, now_ms()],
            )?;
            db.execute("DELETE FROM conversations WHERE key = ?1", params![key])?;
            Ok(live > 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn survives_reopening_and_expires() {
        let dir = std::env::temp_dir().join(format!("dcp-sqlite-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("unit.db");
        let _ = std::fs::remove_file(&path);
        let hour = Duration::from_secs(3600);
        {
            let store = SqliteStore::open(&path).expect("open");
            store.save("k", b"v1".to_vec(), hour).await.expect("save");
            store.save("k", b"v2".to_vec(), hour).await.expect("save");
            store
                .save("gone", b"x".to_vec(), Duration::from_millis(1))
                .await
                .expect("save");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        let store = SqliteStore::open(&path).expect("reopen");
        assert_eq!(store.load("k").await.expect("load"), Some(b"v2".to_vec()));
        assert_eq!(store.load("gone").await.expect("load"), None);
        assert!(store.delete("k").await.expect("delete"));
        assert!(!store.delete("k").await.expect("delete"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
