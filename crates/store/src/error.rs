use crate::MailboxId;

/// Why a store operation failed. The protocol layer maps each kind to a
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
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("storage failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("database failed: {0}")]
    Database(#[from] rusqlite::Error),
}
