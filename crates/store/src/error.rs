//! The store's error type. It names what went wrong in storage terms; the
//! protocol layer decides which response code each kind becomes.
use crate::{BlobId, MailboxId};

/// The reason a store operation failed. The protocol layer maps each kind to a
/// response code (RFC 5530), so kinds are distinguished by what a client
/// can do about them, not by where they arose.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("mailbox {0:?} not found")]
    MailboxNotFound(String),
    #[error("mailbox id {0:?} no longer exists")]
    MailboxGone(MailboxId),
    #[error("mailbox {0:?} already exists")]
    MailboxExists(String),
    #[error("account {0:?} not found")]
    AccountNotFound(String),
    #[error("not permitted: {0}")]
    Forbidden(String),
    /// A configured limit would be exceeded, such as the number of
    /// mailboxes per account.
    #[error("limit reached: {0}")]
    LimitExceeded(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A message body that the index references is missing from disk, or
    /// the id was never stored.
    #[error("message body {0:?} not found")]
    BlobNotFound(BlobId),
    /// The data directory was written by a newer build whose schema this
    /// build cannot read.
    #[error(
        "database schema version {found} is newer than the supported version {supported}; upgrade Roost"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    /// The store's writer thread has stopped, so no change can be made.
    #[error("store is closed")]
    Closed,
    /// A transaction that batched several requests failed to commit, so
    /// none of them took effect. The message is the commit error.
    #[error("commit failed: {0}")]
    CommitFailed(String),
    #[error("storage failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("database failed: {0}")]
    Database(#[from] rusqlite::Error),
}
