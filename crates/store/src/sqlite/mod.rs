//! The embedded back end: a SQLite index plus message bodies as files.
//!
//! Layout of a data directory:
//! - `index.sqlite` (with its `-wal` and `-shm` files): accounts,
//!   mailboxes, message rows, expunge records and subscriptions, in WAL
//!   mode with `synchronous=FULL`, so a commit is durable when it returns.
//! - `blobs/xx/<id>`: one immutable file per message body, shared by
//!   copies and removed with its last reference.
//!
//! Threads: one writer thread owns the only connection that writes, and
//! it commits queued requests in groups ([`writer`]). Reads run on tokio's
//! blocking pool with a small pool of connections ([`readers`]). A poller
//! thread notices other processes' commits, and a cleanup thread removes
//! orphaned body files once after open ([`poller`]). No SQLite call runs
//! on the async reactor, except the single primary-key read in
//! [`MailStore::watch`] for a mailbox that has no watcher yet.
//!
//! Several processes may open one data directory at once (the server and
//! `roost deliver`), and SQLite's locking orders their writes.

mod blobs;
mod mailboxes;
mod messages;
mod poller;
mod readers;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::Connection;

use self::blobs::BlobDir;
use self::mailboxes::canonical_name;
use self::messages::{StoredBody, validate_keywords};
use self::poller::{Poller, PollerSettings};
use self::readers::Readers;
use self::writer::{Writer, WriterLimits};
use crate::{
    ChangeReceiver,
    AccountId, Appended, BlobId, ChangeNotifier, Copied, FlagChanges, FlagOp, Flags, MailStore,
    MailboxId, MailboxInfo, MailboxStatus, MessageRecord, ModSeq, NewMessage, Result, Snapshot,
    StoreError, Uid, Vanished,
};

pub use self::schema::SCHEMA_VERSION;

/// Accounts [`SqliteStore::create_accounts`] creates in one write request.
/// 5,000 accounts with six mailboxes each take about 0.2 s (a million took
/// 40 s on a 2-core test machine), so other writes wait at most that long.
const ACCOUNTS_PER_WRITE: usize = 5_000;

/// Limits and timings of a [`SqliteStore`]. The defaults are estimates
/// for a server with many sessions, not measured values.
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// Write requests that may wait for the writer thread. Callers beyond
    /// this wait for room, so a burst of deliveries cannot grow memory
    /// without bound. Default 1024.
    pub write_queue_max: usize,
    /// Write requests committed together in one transaction at most.
    /// Default 256.
    pub write_batch_max: usize,
    /// Maximum number of read connections. Further reads wait. Default 4.
    pub readers_max: usize,
    /// Page cache of each read connection, and of the one that reads a
    /// mailbox's MODSEQ for a new watcher, in bytes. Reads that miss it
    /// go to the operating system's file cache. SQLite's own default is
    /// about 2 MiB, which a server of mostly idle sessions gains little
    /// from and pays on every reader. Default 256 KiB.
    pub reader_cache_bytes: u64,
    /// How often to check whether another process has committed changes.
    /// Default 300 ms.
    pub poll_interval: Duration,
    /// Most rows kept in the change log, which tells other processes
    /// which mailboxes a commit changed. A process whose poller falls
    /// further behind reads every mailbox it watches instead. Default
    /// 100 000.
    pub change_log_rows_max: i64,
    /// How long a connection waits for another process's lock before it
    /// fails with a database error. Default 10 s.
    pub busy_timeout: Duration,
    /// Unreferenced body files younger than this are kept by the cleanup
    /// at open, because another process may be about to commit them.
    /// Default one hour.
    pub orphan_grace: Duration,
    /// Maximum length of a mailbox name in bytes (UTF-8). Default 1024.
    pub mailbox_name_bytes_max: usize,
    /// Maximum number of mailboxes per account, counting parents that
    /// CREATE and RENAME add. Default 10 000.
    pub mailboxes_per_account_max: u64,
    /// Maximum number of expunge records kept per mailbox for QRESYNC.
    /// The oldest beyond this are pruned, and [`MailStore::expunged_since`]
    /// then reports its list as incomplete for older MODSEQs.
    /// Default 100 000.
    pub expunged_per_mailbox_max: u64,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            write_queue_max: 1024,
            write_batch_max: 256,
            readers_max: 4,
            reader_cache_bytes: 256 * 1024,
            poll_interval: Duration::from_millis(300),
            change_log_rows_max: 100_000,
            busy_timeout: Duration::from_secs(10),
            orphan_grace: Duration::from_secs(3600),
            mailbox_name_bytes_max: 1024,
            mailboxes_per_account_max: 10_000,
            expunged_per_mailbox_max: 100_000,
        }
    }
}

/// The embedded [`MailStore`]. Dropping it finishes queued writes and
/// stops its threads.
pub struct SqliteStore {
    // Fields drop in order: the poller stops first, then the writer
    // finishes its queue.
    #[expect(dead_code, reason = "held for its Drop, which stops the thread")]
    poller: Poller,
    writer: Writer,
    readers: Arc<Readers>,
    blobs: BlobDir,
    notifier: Arc<ChangeNotifier>,
    /// The connection for [`MailStore::watch`]'s first read of a mailbox.
    peek: Mutex<Connection>,
    options: SqliteOptions,
}

impl SqliteStore {
    /// Opens the store in `dir`, creating the folder and schema on first
    /// use, with default options.
    pub fn open(dir: &Path) -> Result<SqliteStore> {
        Self::open_with(dir, SqliteOptions::default())
    }

    /// Opens the store in `dir` with the given options.
    pub fn open_with(dir: &Path, options: SqliteOptions) -> Result<SqliteStore> {
        std::fs::create_dir_all(dir)?;
        let blobs = BlobDir::open(dir.join("blobs"))?;
        let index = dir.join("index.sqlite");

        let mut write_conn = schema::connect(&index, options.busy_timeout)?;
        // The writer runs each request in a savepoint, so SQLite keeps
        // statement and savepoint journals of the pages it changes. In
        // memory they cost a copy per changed page. In a temporary file
        // they cost a write call each, 44 per created account when measured.
        write_conn.pragma_update(None, "temp_store", "MEMORY")?;
        schema::migrate(&mut write_conn)?;
        // Makes the names of a new index file and its WAL durable.
        blobs::sync_dir(dir)?;
        let peek = schema::connect(&index, options.busy_timeout)?;
        schema::set_cache_bytes(&peek, options.reader_cache_bytes)?;
        let poll_conn = schema::connect(&index, options.busy_timeout)?;
        let cleanup_conn = schema::connect(&index, options.busy_timeout)?;

        let notifier = Arc::new(ChangeNotifier::new());
        let limits = WriterLimits {
            queue_max: options.write_queue_max,
            batch_max: options.write_batch_max,
            change_log_rows_max: options.change_log_rows_max,
        };
        let writer = Writer::start(write_conn, blobs.clone(), notifier.clone(), limits)?;
        let settings = PollerSettings {
            interval: options.poll_interval,
            blobs: blobs.clone(),
            orphan_grace: options.orphan_grace,
        };
        let poller = Poller::start(poll_conn, cleanup_conn, notifier.clone(), settings)?;
        let readers = Arc::new(Readers::new(
            PathBuf::from(&index),
            options.busy_timeout,
            options.reader_cache_bytes,
            options.readers_max,
        ));
        tracing::info!(dir = %dir.display(), "opened mail store");
        Ok(SqliteStore {
            poller,
            writer,
            readers,
            blobs,
            notifier,
            peek: Mutex::new(peek),
            options,
        })
    }

    fn canonical(&self, name: &str) -> Result<String> {
        canonical_name(name, self.options.mailbox_name_bytes_max)
    }

    /// Writes the bodies as durable files, returning them with their ids.
    async fn store_bodies(&self, messages: Vec<NewMessage>) -> Result<Vec<StoredBody>> {
        let blobs = self.blobs.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut stored = Vec::with_capacity(messages.len());
            for message in messages {
                match blobs.write(&message.raw) {
                    Ok(blob) => stored.push(StoredBody { message, blob }),
                    Err(err) => {
                        remove_files(&blobs, stored.iter().map(|body| body.blob));
                        return Err(err);
                    }
                }
            }
            Ok(stored)
        });
        task.await.map_err(|err| {
            StoreError::Io(std::io::Error::other(format!(
                "body write task failed: {err}"
            )))
        })?
    }

    /// Removes the body files of a failed append that no row references.
    /// A commit that reported an I/O error may still have reached the
    /// disk, so each id is checked rather than assumed unreferenced.
    async fn discard_bodies(&self, ids: Vec<BlobId>) {
        let blobs = self.blobs.clone();
        let unreferenced = self
            .readers
            .run(move |conn| {
                let mut exists = conn.prepare_cached("SELECT 1 FROM blobs WHERE id = ?1")?;
                let mut unreferenced = Vec::new();
                for id in ids {
                    if !exists.exists([id.0])? {
                        unreferenced.push(id);
                    }
                }
                Ok(unreferenced)
            })
            .await;
        match unreferenced {
            Ok(ids) => {
                let _ = tokio::task::spawn_blocking(move || remove_files(&blobs, ids.into_iter()))
                    .await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "failed to check the bodies of a failed append, so they stay until a later open removes them")
            }
        }
    }
}

fn remove_files(blobs: &BlobDir, ids: impl Iterator<Item = BlobId>) {
    for id in ids {
        if let Err(err) = blobs.remove(id) {
            tracing::warn!(blob = id.0, error = %err, "failed to remove an unused message body file");
        }
    }
}

#[async_trait]
impl MailStore for SqliteStore {
    async fn account(&self, name: &str, defaults: &[(String, String)]) -> Result<AccountId> {
        if name.is_empty() {
            return Err(StoreError::Invalid("account name is empty".into()));
        }
        let owned = name.to_owned();
        if let Some(id) = self
            .readers
            .run(move |conn| mailboxes::find_account(conn, &owned))
            .await?
        {
            return Ok(id);
        }
        let owned = name.to_owned();
        let defaults = defaults.to_vec();
        let name_bytes_max = self.options.mailbox_name_bytes_max;
        self.writer
            .run(move |conn, _| mailboxes::ensure_account(conn, &owned, &defaults, name_bytes_max))
            .await
    }

    async fn create_accounts(&self, names: &[String], defaults: &[(String, String)]) -> Result<usize> {
        if names.iter().any(|name| name.is_empty()) {
            return Err(StoreError::Invalid("account name is empty".into()));
        }
        let name_bytes_max = self.options.mailbox_name_bytes_max;
        let mut created = 0;
        // One write per chunk keeps each transaction short, so deliveries
        // and logins interleave with a large import.
        for chunk in names.chunks(ACCOUNTS_PER_WRITE) {
            let chunk = chunk.to_vec();
            let defaults = defaults.to_vec();
            created += self
                .writer
                .run(move |conn, _| {
                    let mut created = 0;
                    for name in &chunk {
                        if mailboxes::create_account_if_missing(conn, name, &defaults, name_bytes_max)? {
                            created += 1;
                        }
                    }
                    Ok(created)
                })
                .await?;
        }
        Ok(created)
    }

    async fn delete_account(&self, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.writer
            .run(move |conn, effects| mailboxes::delete_account(conn, &name, effects))
            .await
    }

    async fn mailboxes(&self, account: AccountId) -> Result<Vec<MailboxInfo>> {
        let rows = self
            .readers
            .run(move |conn| mailboxes::list_mailboxes(conn, account))
            .await?;
        Ok(rows.into_iter().map(|row| row.info()).collect())
    }

    async fn mailbox(&self, account: AccountId, name: &str) -> Result<Option<MailboxInfo>> {
        let name = self.canonical(name)?;
        let row = self
            .readers
            .run(move |conn| mailboxes::find_mailbox(conn, account, &name))
            .await?;
        Ok(row.map(|row| row.info()))
    }

    async fn create_mailbox(
        &self,
        account: AccountId,
        name: &str,
        special_use: Option<&str>,
    ) -> Result<MailboxId> {
        let name = self.canonical(name)?;
        let special_use = special_use.map(str::to_owned);
        let mailboxes_max = self.options.mailboxes_per_account_max;
        self.writer
            .run(move |conn, _| {
                let id = mailboxes::create_mailbox(conn, account, &name, special_use.as_deref())?;
                mailboxes::check_mailbox_count(conn, account, mailboxes_max)?;
                Ok(id)
            })
            .await
    }

    async fn delete_mailbox(&self, account: AccountId, name: &str) -> Result<()> {
        let name = self.canonical(name)?;
        self.writer
            .run(move |conn, effects| mailboxes::delete_mailbox(conn, account, &name, effects))
            .await
    }

    async fn rename_mailbox(&self, account: AccountId, from: &str, to: &str) -> Result<()> {
        let from = self.canonical(from)?;
        let to = self.canonical(to)?;
        let expunged_max = self.options.expunged_per_mailbox_max;
        let mailboxes_max = self.options.mailboxes_per_account_max;
        self.writer
            .run(move |conn, effects| {
                mailboxes::rename_mailbox(conn, account, &from, &to, expunged_max, effects)?;
                mailboxes::check_mailbox_count(conn, account, mailboxes_max)
            })
            .await
    }

    async fn set_subscribed(&self, account: AccountId, name: &str, subscribed: bool) -> Result<()> {
        let name = self.canonical(name)?;
        self.writer
            .run(move |conn, _| mailboxes::set_subscribed(conn, account, &name, subscribed))
            .await
    }

    async fn subscriptions(&self, account: AccountId) -> Result<Vec<String>> {
        self.readers
            .run(move |conn| mailboxes::subscriptions(conn, account))
            .await
    }

    async fn status(&self, mailbox: MailboxId) -> Result<MailboxStatus> {
        self.readers
            .run(move |conn| mailboxes::status(conn, mailbox))
            .await
    }

    async fn append(&self, mailbox: MailboxId, messages: Vec<NewMessage>) -> Result<Vec<Appended>> {
        for message in &messages {
            validate_keywords(&message.flags)?;
        }
        let bodies = self.store_bodies(messages).await?;
        let ids: Vec<BlobId> = bodies.iter().map(|body| body.blob).collect();
        let appended = self
            .writer
            .run(move |conn, effects| messages::append(conn, mailbox, &bodies, effects))
            .await;
        if appended.is_err() && !ids.is_empty() {
            self.discard_bodies(ids).await;
        }
        appended
    }

    async fn snapshot(&self, mailbox: MailboxId) -> Result<Arc<Snapshot>> {
        let snapshot = self
            .readers
            .run(move |conn| messages::snapshot(conn, mailbox))
            .await?;
        Ok(Arc::new(snapshot))
    }

    async fn store_flags(
        &self,
        mailbox: MailboxId,
        uids: &[Uid],
        op: FlagOp,
        flags: &Flags,
        unchanged_since: Option<ModSeq>,
    ) -> Result<FlagChanges> {
        validate_keywords(flags)?;
        let uids = uids.to_vec();
        let flags = flags.clone();
        self.writer
            .run(move |conn, effects| {
                messages::store_flags(conn, mailbox, &uids, op, &flags, unchanged_since, effects)
            })
            .await
    }

    async fn copy(&self, from: MailboxId, uids: &[Uid], to: MailboxId) -> Result<Copied> {
        let uids = uids.to_vec();
        let expunged_max = self.options.expunged_per_mailbox_max;
        self.writer
            .run(move |conn, effects| {
                messages::copy(conn, from, &uids, to, false, expunged_max, effects)
            })
            .await
    }

    async fn move_messages(&self, from: MailboxId, uids: &[Uid], to: MailboxId) -> Result<Copied> {
        let uids = uids.to_vec();
        let expunged_max = self.options.expunged_per_mailbox_max;
        self.writer
            .run(move |conn, effects| {
                messages::copy(conn, from, &uids, to, true, expunged_max, effects)
            })
            .await
    }

    async fn expunge(&self, mailbox: MailboxId, uids: Option<&[Uid]>) -> Result<Vec<Uid>> {
        let uids = uids.map(<[Uid]>::to_vec);
        let expunged_max = self.options.expunged_per_mailbox_max;
        self.writer
            .run(move |conn, effects| {
                messages::expunge(conn, mailbox, uids.as_deref(), expunged_max, effects)
            })
            .await
    }

    async fn expunged_since(&self, mailbox: MailboxId, since: ModSeq) -> Result<Vanished> {
        self.readers
            .run(move |conn| messages::expunged_since(conn, mailbox, since))
            .await
    }

    async fn messages(&self, mailbox: MailboxId, uids: &[Uid]) -> Result<Vec<MessageRecord>> {
        let uids = uids.to_vec();
        self.readers
            .run(move |conn| messages::records(conn, mailbox, &uids))
            .await
    }

    async fn read_raw(&self, blob: BlobId) -> Result<Arc<[u8]>> {
        let blobs = self.blobs.clone();
        let task = tokio::task::spawn_blocking(move || blobs.read(blob));
        let bytes = task.await.map_err(|err| {
            StoreError::Io(std::io::Error::other(format!(
                "body read task failed: {err}"
            )))
        })??;
        Ok(bytes.into())
    }

    async fn claim_recent(&self, mailbox: MailboxId) -> Result<Vec<Uid>> {
        self.writer
            .run(move |conn, _| messages::claim_recent(conn, mailbox))
            .await
    }

    /// Returns a receiver of the mailbox's highest MODSEQ. For a mailbox
    /// without watchers, the first value is read with one primary-key
    /// query on the calling thread. It is 0 if the mailbox does not exist
    /// or the read fails. Call this before taking the snapshot it guards,
    /// so that no change falls between the two.
    fn watch(&self, mailbox: MailboxId) -> ChangeReceiver {
        self.notifier.subscribe(mailbox, || {
            let conn = self.peek.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            match mailboxes::highest_modseq(&conn, mailbox) {
                Ok(modseq) => modseq.unwrap_or(0),
                Err(err) => {
                    tracing::warn!(mailbox = mailbox.0, error = %err, "failed to read MODSEQ for a new watcher");
                    0
                }
            }
        })
    }
}
