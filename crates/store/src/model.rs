//! The mail model every back end stores: accounts, mailboxes, messages,
//! flags and the change sequence (MODSEQ) that orders all changes.

use std::sync::Arc;

/// An account's id inside one store. Accounts are created on first use
/// (login or delivery); the store never learns passwords.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(pub u64);

/// A mailbox's id inside one store. Ids are never reused, so a session that
/// keeps an id of a deleted mailbox gets `StoreError::MailboxGone`
/// rather than another mailbox's messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MailboxId(pub u64);

/// A message's UID within its mailbox (RFC 3501 section 2.3.1.1): strictly
/// ascending in order of addition and never reused within one UIDVALIDITY.
pub type Uid = u32;

/// A change number. Every change to a mailbox (a new message, a flag change,
/// an expunge) gets a MODSEQ greater than every earlier one in that mailbox,
/// as RFC 7162 requires for CONDSTORE.
pub type ModSeq = u64;

/// The separator between levels of a mailbox name in the store's canonical
/// form. Names are stored as UTF-8; modified UTF-7 is a protocol concern.
pub const HIERARCHY_SEPARATOR: char = '/';

/// The system flags of RFC 3501 section 2.3.2, as bits of `Flags::system`.
/// `\Recent` is not here: it is a property of a session, not of a message.
pub mod system_flag {
    pub const SEEN: u8 = 1 << 0;
    pub const ANSWERED: u8 = 1 << 1;
    pub const FLAGGED: u8 = 1 << 2;
    pub const DELETED: u8 = 1 << 3;
    pub const DRAFT: u8 = 1 << 4;
}

/// The flags of one message: system flags as bits and keywords by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// Bits from [`system_flag`].
    pub system: u8,
    /// Keywords (RFC 3501 `flag-keyword`). The store treats keywords that
    /// differ only in ASCII case as one, keeps the first spelling it saw,
    /// and returns them sorted by their lowercase form.
    pub keywords: Vec<Arc<str>>,
}

/// The way a STORE-like request combines the given flags with the current ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagOp {
    /// Replace the flags (`FLAGS`).
    Replace,
    /// Add the flags (`+FLAGS`).
    Add,
    /// Remove the flags (`-FLAGS`).
    Remove,
}

/// A mailbox as listed for an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailboxInfo {
    pub id: MailboxId,
    /// Canonical UTF-8 name, levels separated by [`HIERARCHY_SEPARATOR`].
    /// The inbox is always named `INBOX`.
    pub name: String,
    pub uid_validity: u32,
    pub uid_next: Uid,
    pub highest_modseq: ModSeq,
    /// A special-use attribute such as `\Sent` (RFC 6154), if any.
    pub special_use: Option<String>,
}

/// The counts STATUS and SELECT report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailboxStatus {
    pub messages: u32,
    /// Messages without `\Seen`.
    pub unseen: u32,
    /// Messages with a UID at or above the mailbox's recent floor, that is
    /// messages no session has yet claimed as `\Recent`.
    pub recent: u32,
    pub uid_next: Uid,
    pub uid_validity: u32,
    pub highest_modseq: ModSeq,
    /// Sum of the messages' RFC822.SIZE.
    pub size: u64,
    /// Messages with `\Deleted`.
    pub deleted: u32,
}

/// One message as it is in a snapshot of a mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageEntry {
    pub uid: Uid,
    /// The MODSEQ of the message's last change (addition or flag change).
    pub modseq: ModSeq,
    pub flags: Flags,
}

/// A consistent view of a mailbox's messages at one MODSEQ, in UID order.
/// Snapshots are immutable and shared between sessions through an `Arc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub mailbox: MailboxId,
    pub uid_validity: u32,
    pub uid_next: Uid,
    /// The mailbox's highest MODSEQ when the snapshot was taken; every
    /// change with a greater MODSEQ is not in it.
    pub highest_modseq: ModSeq,
    /// Messages in ascending UID order; the index plus one is the message
    /// sequence number for a session that has seen exactly this snapshot.
    pub messages: Vec<MessageEntry>,
    /// Every keyword used in the mailbox, for the FLAGS response.
    pub keywords: Vec<Arc<str>>,
}

/// A message that APPEND or delivery adds.
#[derive(Clone, Debug)]
pub struct NewMessage {
    /// The message exactly as received, with CRLF line endings.
    pub raw: Arc<[u8]>,
    /// INTERNALDATE as seconds since the Unix epoch plus the sender's UTC
    /// offset in minutes, so it is returned as given.
    pub internal_date: InternalDate,
    pub flags: Flags,
    /// Data derived from the MIME structure at delivery (ENVELOPE,
    /// BODYSTRUCTURE, part offsets). Opaque to the store: it is written and
    /// read back as is, so MIME is parsed once per message.
    pub derived: Arc<[u8]>,
}

/// A point in time with the UTC offset it was given in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InternalDate {
    pub unix_seconds: i64,
    pub offset_minutes: i16,
}

/// The result of adding a message (for APPENDUID, RFC 4315).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    pub mailbox: MailboxId,
    pub uid_validity: u32,
    pub uid: Uid,
    pub modseq: ModSeq,
}

/// The result of COPY or MOVE (for COPYUID, RFC 4315): pairs of source and
/// destination UIDs in ascending source order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Copied {
    pub uid_validity: u32,
    pub uids: Vec<(Uid, Uid)>,
}

/// A message's stored data, without its body bytes.
#[derive(Clone, Debug)]
pub struct MessageRecord {
    pub uid: Uid,
    pub internal_date: InternalDate,
    /// RFC822.SIZE: the length of the raw message in octets.
    pub size: u64,
    pub flags: Flags,
    pub modseq: ModSeq,
    /// As given in [`NewMessage::derived`].
    pub derived: Arc<[u8]>,
    /// The body's id in the store, for [`crate::MailStore::read_raw`].
    pub blob: BlobId,
}

/// The id of a stored message body. COPY shares one body between mailboxes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlobId(pub u64);
