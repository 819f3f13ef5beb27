//! The background threads: one notices other processes' commits, and one
//! removes orphaned body files once after open.
//!
//! `roost deliver` runs as its own process on the same data directory, so
//! its commits never pass through this process's writer. SQLite's
//! `PRAGMA data_version` changes on a connection whenever another
//! connection has committed, and polling it is cheap. Only when it changes
//! does the thread read the highest MODSEQ of each watched mailbox.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::blobs::BlobDir;
use super::mailboxes::highest_modseq;
use crate::{BlobId, ChangeNotifier, Result};

/// Settings of the background threads.
pub struct PollerSettings {
    pub interval: Duration,
    pub blobs: BlobDir,
    pub orphan_grace: Duration,
}

/// The handle to the background threads. Dropping it stops and joins them.
pub struct Poller {
    stop_polling: Option<mpsc::Sender<()>>,
    stop_cleanup: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Poller {
    /// Starts the threads. The cleanup runs on its own thread because a
    /// large store has millions of body files to check, and notifications
    /// must not wait for that.
    pub fn start(
        poll_conn: Connection,
        cleanup_conn: Connection,
        notifier: Arc<ChangeNotifier>,
        settings: PollerSettings,
    ) -> Result<Self> {
        let (stop_polling, stopped) = mpsc::channel();
        let stop_cleanup = Arc::new(AtomicBool::new(false));
        let mut poller = Self {
            stop_polling: Some(stop_polling),
            stop_cleanup: stop_cleanup.clone(),
            threads: Vec::new(),
        };

        let interval = settings.interval;
        poller.threads.push(
            std::thread::Builder::new()
                .name("roost-store-poller".into())
                .spawn(move || poll_loop(&poll_conn, &notifier, interval, &stopped))?,
        );
        poller.threads.push(
            std::thread::Builder::new()
                .name("roost-store-cleanup".into())
                .spawn(move || remove_orphans(&cleanup_conn, &settings, &stop_cleanup))?,
        );
        Ok(poller)
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        // Dropping the sender wakes the poller from its wait at once, and the
        // cleanup checks its flag between folders.
        self.stop_polling = None;
        self.stop_cleanup.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("store background thread panicked");
            }
        }
    }
}

fn remove_orphans(conn: &Connection, settings: &PollerSettings, stop: &AtomicBool) {
    let is_referenced = |id: BlobId| -> Result<bool> {
        Ok(conn
            .prepare_cached("SELECT 1 FROM blobs WHERE id = ?1")?
            .exists([id.0])?)
    };
    match settings
        .blobs
        .remove_orphans(settings.orphan_grace, is_referenced, || {
            stop.load(Ordering::Relaxed)
        }) {
        Ok(0) => {}
        Ok(removed) => tracing::info!(removed, "removed unreferenced message body files"),
        Err(err) => {
            tracing::warn!(error = %err, "failed to remove unreferenced message body files")
        }
    }
}

fn poll_loop(
    conn: &Connection,
    notifier: &ChangeNotifier,
    interval: Duration,
    stopped: &mpsc::Receiver<()>,
) {
    let mut last_version = None;
    // Changes before the poller started are already in every MODSEQ a
    // watcher reads when it subscribes.
    let mut last_seq = latest_change(conn).ok().flatten().unwrap_or(0);
    loop {
        match data_version(conn) {
            Ok(version) if last_version != Some(version) => {
                last_version = Some(version);
                last_seq = publish_changes(conn, notifier, last_seq);
            }
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(error = %err, "failed to poll the store for changes by other processes")
            }
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

fn latest_change(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.query_row("SELECT MAX(seq) FROM changes", [], |row| row.get(0))
}

/// Publishes the changes logged after `last_seq` and returns the newest
/// sequence number read. When the log was trimmed past `last_seq` while
/// this poller slept, every watched mailbox is read instead.
fn publish_changes(conn: &Connection, notifier: &ChangeNotifier, last_seq: i64) -> i64 {
    let oldest: rusqlite::Result<Option<i64>> = conn.query_row("SELECT MIN(seq) FROM changes", [], |row| row.get(0));
    let gap = match oldest {
        Ok(Some(oldest)) => oldest > last_seq + 1,
        Ok(None) => false,
        Err(_) => true,
    };
    if gap {
        let latest = latest_change(conn).ok().flatten().unwrap_or(last_seq);
        publish_watched(conn, notifier);
        return latest;
    }
    let mut newest = last_seq;
    let mut read = || -> rusqlite::Result<()> {
        let mut statement = conn.prepare_cached("SELECT seq, mailbox_id, modseq FROM changes WHERE seq > ?1 ORDER BY seq")?;
        let mut rows = statement.query([last_seq])?;
        while let Some(row) = rows.next()? {
            newest = row.get(0)?;
            notifier.publish(crate::MailboxId(row.get(1)?), row.get(2)?);
        }
        Ok(())
    };
    if let Err(err) = read() {
        tracing::warn!(error = %err, "failed to read the store's change log; reading every watched mailbox");
        publish_watched(conn, notifier);
    }
    newest
}

/// Sends each watched mailbox's highest MODSEQ to its watchers. A mailbox
/// that another process deleted gets one more than its watchers hold, so
/// they wake and find it gone.
fn publish_watched(conn: &Connection, notifier: &ChangeNotifier) {
    for (mailbox, held) in notifier.watched() {
        match highest_modseq(conn, mailbox) {
            Ok(Some(modseq)) => notifier.publish(mailbox, modseq),
            Ok(None) => notifier.publish(mailbox, held + 1),
            Err(err) => {
                tracing::warn!(mailbox = mailbox.0, error = %err, "failed to read a watched mailbox's MODSEQ")
            }
        }
    }
}
