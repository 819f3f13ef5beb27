//! The mail store: the model (accounts, mailboxes, messages, flags, MODSEQ)
//! and the back ends that keep it.
//!
//! [`MailStore`] is the seam between the server and storage. The embedded
//! back end ([`sqlite::SqliteStore`]) keeps the index in SQLite and message
//! bodies in files; a PostgreSQL back end will implement the same trait.
//! Every back end passes the conformance suite in [`conformance`].
//!
//! **Architecture Invariant:** the store handles no IMAP syntax, sessions,
//! message sequence numbers or sockets, and it never parses MIME.
//! Derived data arrives opaque in [`NewMessage::derived`]. Sequence numbers
//! are the session's business, computed from a [`Snapshot`].

pub mod conformance;
mod error;
mod model;
mod notify;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

pub use error::StoreError;
pub use model::*;
pub use notify::{ChangeNotifier, ChangeReceiver, Closed};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Storage for every account's mail.
///
/// Every mutating method returns only after its change is durable, so a
/// caller may acknowledge it (APPEND OK, LMTP 250). Every change to a
/// mailbox's messages raises its highest MODSEQ and wakes the receivers
/// returned by [`MailStore::watch`], also for changes made by another
/// process sharing the same data (noticed within a second).
#[async_trait]
pub trait MailStore: Send + Sync + 'static {
    /// Returns the account named `name`, creating it with an `INBOX` and
    /// the given special-use mailboxes (name, attribute) on first use.
    async fn account(&self, name: &str, defaults: &[(String, String)]) -> Result<AccountId>;

    /// Creates the accounts in `names` that do not exist yet, each with an
    /// `INBOX` and the given special-use mailboxes, so that first logins
    /// find them ready. Returns how many accounts were created.
    async fn create_accounts(&self, names: &[String], defaults: &[(String, String)]) -> Result<usize>;

    /// Deletes an account and all of its mail.
    async fn delete_account(&self, name: &str) -> Result<()>;

    /// Lists the account's mailboxes in name order.
    async fn mailboxes(&self, account: AccountId) -> Result<Vec<MailboxInfo>>;

    /// Looks up one mailbox by canonical name (`INBOX` matches any case).
    async fn mailbox(&self, account: AccountId, name: &str) -> Result<Option<MailboxInfo>>;

    /// Creates a mailbox; parents that do not exist are created too
    /// (RFC 3501 CREATE). Fails with `MailboxExists` if it exists.
    async fn create_mailbox(
        &self,
        account: AccountId,
        name: &str,
        special_use: Option<&str>,
    ) -> Result<MailboxId>;

    /// Deletes a mailbox and its messages. Children are kept (RFC 3501
    /// DELETE); deleting `INBOX` fails with `Forbidden`.
    async fn delete_mailbox(&self, account: AccountId, name: &str) -> Result<()>;

    /// Renames a mailbox and all of its children. Renaming `INBOX` moves
    /// its messages to a new mailbox named `to` and leaves `INBOX` empty,
    /// as RFC 3501 RENAME requires.
    async fn rename_mailbox(&self, account: AccountId, from: &str, to: &str) -> Result<()>;

    /// Adds or removes a subscription. Subscriptions are names, kept
    /// whether or not the mailbox exists.
    async fn set_subscribed(&self, account: AccountId, name: &str, subscribed: bool) -> Result<()>;

    /// Lists subscribed names in name order.
    async fn subscriptions(&self, account: AccountId) -> Result<Vec<String>>;

    /// Counts a mailbox's messages for STATUS and SELECT.
    async fn status(&self, mailbox: MailboxId) -> Result<MailboxStatus>;

    /// Adds messages to a mailbox in one durable transaction, in order,
    /// with ascending UIDs.
    async fn append(&self, mailbox: MailboxId, messages: Vec<NewMessage>) -> Result<Vec<Appended>>;

    /// Reads every message's UID, flags and MODSEQ in one consistent view.
    async fn snapshot(&self, mailbox: MailboxId) -> Result<Arc<Snapshot>>;

    /// Changes flags of the given messages; UIDs not in the mailbox are
    /// skipped. With `unchanged_since`, messages whose MODSEQ is greater
    /// are not changed and are returned in `FlagChanges::failed`
    /// (RFC 7162 UNCHANGEDSINCE). Messages whose flags do not change keep
    /// their MODSEQ.
    async fn store_flags(
        &self,
        mailbox: MailboxId,
        uids: &[Uid],
        op: FlagOp,
        flags: &Flags,
        unchanged_since: Option<ModSeq>,
    ) -> Result<FlagChanges>;

    /// Copies messages to another mailbox of the same account, sharing
    /// their bodies. UIDs not in the source are skipped. Flags are copied.
    async fn copy(&self, from: MailboxId, uids: &[Uid], to: MailboxId) -> Result<Copied>;

    /// Moves messages: copy and expunge from the source in one transaction.
    async fn move_messages(&self, from: MailboxId, uids: &[Uid], to: MailboxId) -> Result<Copied>;

    /// Removes messages that have `\Deleted`; with `uids`, only those among
    /// them (UID EXPUNGE). Returns the removed UIDs in ascending order.
    async fn expunge(&self, mailbox: MailboxId, uids: Option<&[Uid]>) -> Result<Vec<Uid>>;

    /// Lists the UIDs expunged from the mailbox with a MODSEQ greater than
    /// `since`, ascending, for QRESYNC's VANISHED (RFC 7162). Old expunge
    /// records may be pruned, so `Vanished::complete` is false when some
    /// expunges after `since` may be missing from the list.
    async fn expunged_since(&self, mailbox: MailboxId, since: ModSeq) -> Result<Vanished>;

    /// Reads messages' stored data (without bodies), skipping UIDs that
    /// are gone, in the order given.
    async fn messages(&self, mailbox: MailboxId, uids: &[Uid]) -> Result<Vec<MessageRecord>>;

    /// Reads one message body.
    async fn read_raw(&self, blob: BlobId) -> Result<Arc<[u8]>>;

    /// Claims `\Recent` for a session that selects the mailbox read-write:
    /// returns the UIDs at or above the mailbox's recent floor and moves the
    /// floor to UIDNEXT, so no other session sees them as recent
    /// (RFC 3501 section 2.3.2).
    async fn claim_recent(&self, mailbox: MailboxId) -> Result<Vec<Uid>>;

    /// Returns a receiver of the mailbox's highest MODSEQ. It changes after
    /// every committed change to the mailbox's messages, and also when the
    /// mailbox is deleted. Call it before taking the snapshot it guards, so
    /// that no change falls between the two.
    fn watch(&self, mailbox: MailboxId) -> ChangeReceiver;
}

/// The result of [`MailStore::expunged_since`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vanished {
    /// Expunged UIDs in ascending order.
    pub uids: Vec<Uid>,
    /// False when records old enough to matter were pruned. The caller
    /// must then treat every UID below UIDNEXT that is not in the mailbox
    /// as expunged. RFC 5162 section 4.1 allows a server that has
    /// forgotten expunge MODSEQs to report every expunged UID that way.
    pub complete: bool,
}

/// The result of [`MailStore::store_flags`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlagChanges {
    /// Messages whose flags changed, with their new flags and MODSEQ.
    pub changed: Vec<MessageEntry>,
    /// UIDs left unchanged because of `unchanged_since`.
    pub failed: Vec<Uid>,
}
