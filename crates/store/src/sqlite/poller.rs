//! The background thread that notices other processes' commits and
//! removes orphaned body files.
//!
//! `roost deliver` runs as its own process on the same data directory, so
//! its commits never pass through this process's writer. SQLite's
//! `PRAGMA data_version` changes on a connection whenever another
//! connection has committed, so polling it is cheap; only when it changes
//! does the thread read the highest MODSEQ of each watched mailbox.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::blobs::BlobDir;
use super::mailboxes::highest_modseq;
use crate::{BlobId, ChangeNotifier, Result};

/// Settings of the poller thread.
pub struct PollerSettings {
    pub interval: Duration,
    pub blobs: BlobDir,
    pub orphan_grace: Duration,
}

/// The handle to the poller thread; dropping it stops and joins the thread.
pub struct Poller {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Poller {
    pub fn start(conn: Connection, notifier: Arc<ChangeNotifier>, settings: PollerSettings) -> Result<Self> {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("roost-store-poller".into())
            .spawn(move || {
                remove_orphans(&conn, &settings, &stopped);
                poll_loop(&conn, &notifier, settings.interval, &stopped);
            })?;
        Ok(Self { stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        // Dropping the sender wakes the thread from its wait at once.
        self.stop = None;
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("store poller thread panicked");
            }
        }
    }
}

fn is_stopped(stopped: &mpsc::Receiver<()>) -> bool {
    matches!(stopped.try_recv(), Err(mpsc::TryRecvError::Disconnected) | Ok(()))
}

fn remove_orphans(conn: &Connection, settings: &PollerSettings, stopped: &mpsc::Receiver<()>) {
    let is_referenced = |id: BlobId| -> Result<bool> {
        Ok(conn.prepare_cached("SELECT 1 FROM blobs WHERE id = ?1")?.exists([id.0])?)
    };
    match settings.blobs.remove_orphans(settings.orphan_grace, is_referenced, || is_stopped(stopped)) {
        Ok(0) => {}
        Ok(removed) => tracing::info!(removed, "removed unreferenced message body files"),
        Err(err) => tracing::warn!(error = %err, "failed to remove unreferenced message body files"),
    }
}

fn poll_loop(conn: &Connection, notifier: &ChangeNotifier, interval: Duration, stopped: &mpsc::Receiver<()>) {
    let mut last_version = None;
    loop {
        match data_version(conn) {
            Ok(version) if last_version != Some(version) => {
                last_version = Some(version);
                publish_watched(conn, notifier);
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "failed to poll the store for changes by other processes"),
        }
        match stopped.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    tracing::debug!("store poller stopped");
}

fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "data_version", |row| row.get(0))
}

/// Sends each watched mailbox's highest MODSEQ to its watchers. A mailbox
/// that another process deleted gets one more than its watchers hold, so
/// they wake and find it gone.
fn publish_watched(conn: &Connection, notifier: &ChangeNotifier) {
    for (mailbox, held) in notifier.watched() {
        match highest_modseq(conn, mailbox) {
            Ok(Some(modseq)) => notifier.publish(mailbox, modseq),
            Ok(None) => notifier.publish(mailbox, held + 1),
            Err(err) => tracing::warn!(mailbox = mailbox.0, error = %err, "failed to read a watched mailbox's MODSEQ"),
        }
    }
}
