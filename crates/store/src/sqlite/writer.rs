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

/// What a committed request changed, acted on after the commit.
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
    /// Runs the request on the open transaction; returns whether it
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
        // The caller may have gone away (its task was cancelled); the
        // change is committed either way.
        let _ = self.reply.send(result);
    }
}

/// Settings of the writer thread.
#[derive(Clone, Debug)]
pub struct WriterLimits {
    /// Requests that may wait for the writer; further callers wait for room.
    pub queue_max: usize,
    /// Requests committed together in one transaction at most.
    pub batch_max: usize,
}

/// The handle to the writer thread. Dropping it lets the thread finish the
/// queued requests, then joins it.
pub struct Writer {
    requests: Option<mpsc::Sender<Box<dyn Pending>>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub fn start(conn: Connection, blobs: BlobDir, notifier: Arc<ChangeNotifier>, limits: WriterLimits) -> Result<Self> {
        let (sender, receiver) = mpsc::channel(limits.queue_max.max(1));
        let batch_max = limits.batch_max.max(1);
        let thread = std::thread::Builder::new()
            .name("roost-store-writer".into())
            .spawn(move || write_loop(conn, receiver, &blobs, &notifier, batch_max))?;
        Ok(Self { requests: Some(sender), thread: Some(thread) })
    }

    /// Runs `work` in the next transaction and returns its result once the
    /// transaction is durable. Waits while the queue is full.
    pub async fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Effects) -> Result<T> + Send + 'static,
    {
        let (reply, result) = oneshot::channel();
        let request = Box::new(Request { work: Some(work), result: None, reply });
        let sender = self.requests.as_ref().ok_or(StoreError::Closed)?;
        sender.send(request).await.map_err(|_| StoreError::Closed)?;
        result.await.unwrap_or(Err(StoreError::Closed))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("store writer thread panicked");
            }
        }
    }
}

fn write_loop(
    mut conn: Connection,
    mut requests: mpsc::Receiver<Box<dyn Pending>>,
    blobs: &BlobDir,
    notifier: &ChangeNotifier,
    batch_max: usize,
) {
    let mut batch: Vec<Box<dyn Pending>> = Vec::with_capacity(batch_max);
    while let Some(first) = requests.blocking_recv() {
        batch.push(first);
        while batch.len() < batch_max {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        commit_batch(&mut conn, &mut batch, blobs, notifier);
    }
    tracing::debug!("store writer stopped");
}

fn commit_batch(conn: &mut Connection, batch: &mut Vec<Box<dyn Pending>>, blobs: &BlobDir, notifier: &ChangeNotifier) {
    let mut effects = Effects::default();
    let committed = run_batch(conn, batch, &mut effects);
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
fn run_batch(conn: &mut Connection, batch: &mut [Box<dyn Pending>], effects: &mut Effects) -> Result<Vec<BlobId>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for request in batch.iter_mut() {
        run_in_savepoint(&tx, request.as_mut(), effects);
    }
    let unreferenced = delete_unreferenced_blobs(&tx)?;
    tx.commit()?;
    Ok(unreferenced)
}

fn run_in_savepoint(conn: &Connection, request: &mut dyn Pending, effects: &mut Effects) {
    if let Err(err) = conn.execute_batch("SAVEPOINT request") {
        request.fail(err.into());
        return;
    }
    let mut own_effects = Effects::default();
    let ok = catch_unwind(AssertUnwindSafe(|| request.run(conn, &mut own_effects))).unwrap_or_else(|_| {
        tracing::error!("store request panicked; its changes are rolled back");
        request.fail(StoreError::Io(std::io::Error::other("store request panicked")));
        false
    });
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
