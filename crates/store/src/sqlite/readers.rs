//! The pool of read connections.
//!
//! SQLite calls block, so reads run on tokio's blocking threads, never on
//! the reactor. Each read runs in its own read transaction. In WAL mode
//! such a transaction reads one committed state however long it takes, so
//! a snapshot is consistent while the writer goes on committing.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::Semaphore;

use super::schema;
use crate::{Result, StoreError};

pub struct Readers {
    path: PathBuf,
    busy_timeout: Duration,
    cache_bytes: u64,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl Readers {
    /// Creates a pool of at most `count` connections, opened on first use.
    pub fn new(path: PathBuf, busy_timeout: Duration, cache_bytes: u64, count: usize) -> Self {
        let count = count.max(1);
        Self {
            path,
            busy_timeout,
            cache_bytes,
            idle: Mutex::new(Vec::with_capacity(count)),
            permits: Arc::new(Semaphore::new(count)),
        }
    }

    /// Runs `read` in a read transaction on a pooled connection, waiting
    /// while every connection is busy.
    pub async fn run<T, F>(self: &Arc<Self>, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let pool = self.clone();
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut conn = pool.take()?;
            let result = read_in_transaction(&mut conn, read);
            pool.put(conn);
            result
        });
        task.await.map_err(|err| {
            StoreError::Io(std::io::Error::other(format!(
                "store read task failed: {err}"
            )))
        })?
    }

    /// Takes an idle connection or opens one. The semaphore keeps the
    /// total at the pool size. A connection lost to a panic is replaced
    /// here.
    fn take(&self) -> Result<Connection> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        match idle {
            Some(conn) => Ok(conn),
            None => {
                let conn = schema::connect(&self.path, self.busy_timeout)?;
                schema::set_cache_bytes(&conn, self.cache_bytes)?;
                Ok(conn)
            }
        }
    }

    fn put(&self, conn: Connection) {
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(conn);
    }
}

fn read_in_transaction<T>(
    conn: &mut Connection,
    read: impl FnOnce(&Connection) -> Result<T>,
) -> Result<T> {
    let tx = conn.transaction()?;
    let value = read(&tx)?;
    tx.finish()?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reader_cache_size_applied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        schema::connect(&path, Duration::from_secs(1)).unwrap();
        let readers = Arc::new(Readers::new(path, Duration::from_secs(1), 300 * 1024, 2));
        let size: i64 = readers
            .run(|conn| Ok(conn.pragma_query_value(None, "cache_size", |row| row.get(0))?))
            .await
            .unwrap();
        assert_eq!(size, -300);
    }
}
