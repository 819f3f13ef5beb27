//! The single writer thread and its group commit.
//!
//! All changes go through one connection on one thread, fed by a bounded
//! channel. The thread takes every request that queued up while the
//! previous transaction was committing and runs them in one transaction,
//! each inside its own savepoint, so one request's failure undoes only its
//! own changes while the batch shares one fsync. Results are sent back only
//! after the commit, so a caller never sees a change that could still be
//! lost.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::JoinHandle;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::blobs::BlobDir;
use crate::{BlobId, ChangeNotifier, MailboxId, ModSeq, Result, StoreError};

/// The changes of a committed request that need action after the commit.
#[derive(Default)]
pub struct Effects {
    /// Each changed mailbox with its new highest MODSEQ.
    changed: HashMap<MailboxId, ModSeq>,
}

impl Effects {
    /// Records that `mailbox` now has highest MODSEQ `modseq`.
    pub fn changed(&mut self, mailbox: MailboxId, modseq: ModSeq) {
        let entry = self.changed.entry(mailbox).or_insert(modseq);
        *entry = (*entry).max(modseq);
    }

    fn merge(&mut self, other: Effects) {
        for (mailbox, modseq) in other.changed {
            self.changed(mailbox, modseq);
        }
    }
}

/// A queued request with its result slot, with the result type erased so
/// requests of different types share one channel.
trait Pending: Send {
    /// Runs the request on the open transaction and returns whether it
    /// succeeded and so whether its savepoint is kept.
    fn run(&mut self, conn: &Connection, effects: &mut Effects) -> bool;
    /// Records a failure that happened around the request.
    fn fail(&mut self, err: StoreError);
    /// Sends the result, replaced by `commit_error` if the batch did not
    /// commit.
    fn finish(self: Box<Self>, commit_error: Option<&StoreError>);
}

struct Request<T, F> {
    work: Option<F>,
    result: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Pending for Request<T, F>
where
    T: Send,
    F: FnOnce(&Connection, &mut Effects) -> Result<T> + Send,
{
    fn run(&mut self, conn: &Connection, effects: &mut Effects) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let result = work(conn, effects);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn fail(&mut self, err: StoreError) {
        self.result = Some(Err(err));
    }

    fn finish(self: Box<Self>, commit_error: Option<&StoreError>) {
        let result = match (self.result, commit_error) {
            (Some(Err(err)), _) => Err(err),
            (_, Some(err)) => Err(StoreError::CommitFailed(err.to_string())),
            (Some(Ok(value)), None) => Ok(value),
            (None, None) => Err(StoreError::Closed),
        };
        // The caller may have gone away (its task was cancelled), but the
        // change is committed either way.
        let _ = self.reply.send(result);
    }
}

/// Settings of the writer thread.
#[derive(Clone, Debug)]
pub struct WriterLimits {
    /// Maximum number of requests waiting for the writer. Further callers
    /// wait for room.
    pub queue_max: usize,
    /// Requests committed together in one transaction at most.
    pub batch_max: usize,
    /// Most rows the change log keeps; see [`log_changes`].
    pub change_log_rows_max: i64,
}

/// The handle to the writer thread. Dropping it lets the thread finish the
/// queued requests, then joins it.
pub struct Writer {
    requests: Option<mpsc::Sender<Box<dyn Pending>>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub fn start(
        conn: Connection,
        blobs: BlobDir,
        notifier: Arc<ChangeNotifier>,
        limits: WriterLimits,
    ) -> Result<Self> {
        let (sender, receiver) = mpsc::channel(limits.queue_max.max(1));
        let thread = std::thread::Builder::new()
            .name("roost-store-writer".into())
            .spawn(move || write_loop(conn, receiver, &blobs, &notifier, &limits))?;
        Ok(Self {
            requests: Some(sender),
            thread: Some(thread),
        })
    }

    /// Runs `work` in the next transaction and returns its result once the
    /// transaction is durable. Waits while the queue is full.
    pub async fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Effects) -> Result<T> + Send + 'static,
    {
        let (reply, result) = oneshot::channel();
        let request = Box::new(Request {
            work: Some(work),
            result: None,
            reply,
        });
        let sender = self.requests.as_ref().ok_or(StoreError::Closed)?;
        sender.send(request).await.map_err(|_| StoreError::Closed)?;
        result.await.unwrap_or(Err(StoreError::Closed))
    }

    #[cfg(test)]
    /// Returns how many requests wait in the queue, not counting the batch
    /// the writer is running.
    pub fn queued(&self) -> usize {
        self.requests
            .as_ref()
            .map_or(0, |sender| sender.max_capacity() - sender.capacity())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("store writer thread panicked");
        }
    }
}

fn write_loop(
    mut conn: Connection,
    mut requests: mpsc::Receiver<Box<dyn Pending>>,
    blobs: &BlobDir,
    notifier: &ChangeNotifier,
    limits: &WriterLimits,
) {
    let batch_max = limits.batch_max.max(1);
    let mut batch: Vec<Box<dyn Pending>> = Vec::with_capacity(batch_max);
    while let Some(first) = requests.blocking_recv() {
        batch.push(first);
        while batch.len() < batch_max {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        commit_batch(&mut conn, &mut batch, blobs, notifier, limits.change_log_rows_max);
    }
    tracing::debug!("store writer stopped");
}

fn commit_batch(
    conn: &mut Connection,
    batch: &mut Vec<Box<dyn Pending>>,
    blobs: &BlobDir,
    notifier: &ChangeNotifier,
    change_log_rows_max: i64,
) {
    let mut effects = Effects::default();
    let committed = run_batch(conn, batch, &mut effects, change_log_rows_max);
    match committed {
        Ok(unreferenced) => {
            for id in unreferenced {
                if let Err(err) = blobs.remove(id) {
                    // The row is gone, so the file is an orphan that the
                    // next open removes.
                    tracing::warn!(blob = id.0, error = %err, "failed to remove unreferenced message body");
                }
            }
            for (mailbox, modseq) in effects.changed {
                notifier.publish(mailbox, modseq);
            }
            for request in batch.drain(..) {
                request.finish(None);
            }
        }
        Err(err) => {
            tracing::error!(error = %err, requests = batch.len(), "store transaction failed");
            for request in batch.drain(..) {
                request.finish(Some(&err));
            }
        }
    }
}

/// Runs every request of the batch in one transaction, deletes blob rows
/// left without references, and commits. Returns the ids of the deleted
/// blob rows, whose files are removed after the commit so that a failed
/// commit never leaves a row without its file.
fn run_batch(
    conn: &mut Connection,
    batch: &mut [Box<dyn Pending>],
    effects: &mut Effects,
    change_log_rows_max: i64,
) -> Result<Vec<BlobId>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for request in batch.iter_mut() {
        run_in_savepoint(&tx, request.as_mut(), effects);
    }
    let unreferenced = delete_unreferenced_blobs(&tx)?;
    log_changes(&tx, effects, change_log_rows_max)?;
    tx.commit()?;
    Ok(unreferenced)
}

/// Appends the batch's changed mailboxes to the change log, which other
/// processes read, and trims the log to its newest `rows_max` rows. A
/// process whose poller falls further behind reads every watched mailbox
/// instead.
fn log_changes(conn: &Connection, effects: &Effects, rows_max: i64) -> Result<()> {
    if effects.changed.is_empty() {
        return Ok(());
    }
    let mut insert = conn.prepare_cached("INSERT INTO changes (mailbox_id, modseq) VALUES (?1, ?2)")?;
    let mut last = 0;
    for (mailbox, modseq) in &effects.changed {
        insert.execute(rusqlite::params![mailbox.0, modseq])?;
        last = conn.last_insert_rowid();
    }
    // A range delete on the primary key: a cheap seek when nothing is due.
    conn.prepare_cached("DELETE FROM changes WHERE seq <= ?1")?.execute([last - rows_max.max(1)])?;
    Ok(())
}

fn run_in_savepoint(conn: &Connection, request: &mut dyn Pending, effects: &mut Effects) {
    if let Err(err) = conn.execute_batch("SAVEPOINT request") {
        request.fail(err.into());
        return;
    }
    let mut own_effects = Effects::default();
    let ok = catch_unwind(AssertUnwindSafe(|| request.run(conn, &mut own_effects))).unwrap_or_else(
        |_| {
            tracing::error!("store request panicked; its changes are rolled back");
            request.fail(StoreError::Io(std::io::Error::other(
                "store request panicked",
            )));
            false
        },
    );
    if ok {
        match conn.execute_batch("RELEASE request") {
            Ok(()) => {
                effects.merge(own_effects);
                return;
            }
            Err(err) => request.fail(err.into()),
        }
    }
    if let Err(err) = conn.execute_batch("ROLLBACK TO request; RELEASE request") {
        tracing::error!(error = %err, "failed to roll back a store request");
    }
}

fn delete_unreferenced_blobs(conn: &Connection) -> Result<Vec<BlobId>> {
    let mut statement = conn.prepare_cached("DELETE FROM blobs WHERE refs = 0 RETURNING id")?;
    let ids = statement.query_map([], |row| row.get::<_, u64>(0).map(BlobId))?;
    Ok(ids.collect::<rusqlite::Result<Vec<_>>>()?)
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc as std_mpsc;

    use super::*;
    use crate::sqlite::schema;

    struct Fixture {
        _dir: tempfile::TempDir,
        index: std::path::PathBuf,
        writer: Arc<Writer>,
    }

    fn start(queue_max: usize, batch_max: usize) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join("index.sqlite");
        let mut conn = schema::connect(&index, std::time::Duration::from_secs(5)).unwrap();
        schema::migrate(&mut conn).unwrap();
        let blobs = BlobDir::open(dir.path().join("blobs")).unwrap();
        let writer = Writer::start(
            conn,
            blobs,
            Arc::new(ChangeNotifier::new()),
            WriterLimits {
                queue_max,
                batch_max,
                change_log_rows_max: 100,
            },
        )
        .unwrap();
        Fixture {
            _dir: dir,
            index,
            writer: Arc::new(writer),
        }
    }

    /// Occupies the writer thread until the returned sender is used or
    /// dropped.
    async fn block(
        writer: &Arc<Writer>,
    ) -> (std_mpsc::Sender<()>, tokio::task::JoinHandle<Result<()>>) {
        let (release, released) = std_mpsc::channel::<()>();
        let (started, is_started) = oneshot::channel();
        let writer = writer.clone();
        let blocker = tokio::spawn(async move {
            writer
                .run(move |_, _| {
                    let _ = started.send(());
                    let _ = released.recv();
                    Ok(())
                })
                .await
        });
        is_started.await.unwrap();
        (release, blocker)
    }

    fn insert_marker(
        key: &'static str,
    ) -> impl FnOnce(&Connection, &mut Effects) -> Result<()> + Send + 'static {
        move |conn, _| {
            conn.execute("INSERT INTO meta (key, value) VALUES (?1, 1)", [key])?;
            Ok(())
        }
    }

    async fn wait_until_queued(writer: &Writer, count: usize) {
        for _ in 0..1000 {
            if writer.queued() == count {
                return;
            }
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        panic!(
            "queue never reached {count} requests; it has {}",
            writer.queued()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queue_full_makes_callers_wait() {
        let fixture = start(2, 16);
        let (release, blocker) = block(&fixture.writer).await;

        let mut callers = Vec::new();
        for key in ["first", "second", "third"] {
            let writer = fixture.writer.clone();
            callers.push(tokio::spawn(
                async move { writer.run(insert_marker(key)).await },
            ));
        }
        // Two requests fill the queue, so the third caller waits for room.
        wait_until_queued(&fixture.writer, 2).await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(
            fixture.writer.queued(),
            2,
            "the queue must not grow past its limit"
        );

        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        for caller in callers {
            caller
                .await
                .unwrap()
                .expect("a waiting caller must get through once there is room");
        }
        assert_eq!(fixture.writer.queued(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_requests_share_one_transaction() {
        let fixture = start(8, 8);
        let (release, blocker) = block(&fixture.writer).await;

        let first = {
            let writer = fixture.writer.clone();
            tokio::spawn(async move { writer.run(insert_marker("grouped")).await })
        };
        wait_until_queued(&fixture.writer, 1).await;
        let index = fixture.index.clone();
        let second = {
            let writer = fixture.writer.clone();
            tokio::spawn(async move {
                writer
                    .run(move |conn, _| {
                        // The first request's row is visible here but not
                        // to another connection, so both run in one
                        // uncommitted transaction.
                        let own: i64 = conn.query_row(
                            "SELECT count(*) FROM meta WHERE key = 'grouped'",
                            [],
                            |row| row.get(0),
                        )?;
                        let other = Connection::open(&index)?;
                        let outside: i64 = other.query_row(
                            "SELECT count(*) FROM meta WHERE key = 'grouped'",
                            [],
                            |row| row.get(0),
                        )?;
                        Ok((own, outside))
                    })
                    .await
            })
        };
        wait_until_queued(&fixture.writer, 2).await;

        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        first.await.unwrap().unwrap();
        let (own, outside) = second.await.unwrap().unwrap();
        assert_eq!(own, 1);
        assert_eq!(outside, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failed_request_rolls_back_alone() {
        let fixture = start(8, 8);
        let (release, blocker) = block(&fixture.writer).await;

        let failing = {
            let writer = fixture.writer.clone();
            tokio::spawn(async move {
                writer
                    .run(|conn, _| {
                        conn.execute("INSERT INTO meta (key, value) VALUES ('undone', 1)", [])?;
                        Err::<(), _>(StoreError::Invalid("rejected on purpose".into()))
                    })
                    .await
            })
        };
        wait_until_queued(&fixture.writer, 1).await;
        let succeeding = {
            let writer = fixture.writer.clone();
            tokio::spawn(async move { writer.run(insert_marker("kept")).await })
        };
        wait_until_queued(&fixture.writer, 2).await;

        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        assert!(matches!(
            failing.await.unwrap(),
            Err(StoreError::Invalid(_))
        ));
        succeeding.await.unwrap().unwrap();

        let check = Connection::open(&fixture.index).unwrap();
        let keys: Vec<String> = check
            .prepare("SELECT key FROM meta WHERE key IN ('undone', 'kept')")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(keys, vec!["kept"]);
    }
}
