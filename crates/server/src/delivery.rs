//! Delivery of one message into an account's INBOX, shared by LMTP and
//! `roost deliver`.
//!
//! This module owns what happens to a message between the end of its
//! transfer and its durable storage: line-ending normalisation, the size
//! limit, MIME analysis, account creation on first delivery and the append.
//! It does not depend on LMTP syntax or sockets.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use roost_auth::UserDb;
use roost_store::{Appended, Flags, InternalDate, MailStore, NewMessage, StoreError};
use tracing::{info, warn};

use crate::config::Config;

/// The separator between a user name and a detail in a recipient's local
/// part, as in `alice+lists`. Dovecot's LMTP server strips the same part
/// when its `recipient_delimiter` setting is `+`.
// NOTE: not configurable yet, so a site that uses another delimiter gets
// 550 for addresses with a detail.
const RECIPIENT_DELIMITER: char = '+';

/// A failed delivery, by kind. LMTP maps each kind to its own reply.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// No user of that name exists: a permanent failure (LMTP 550 5.1.1).
    #[error("user {0:?} not found")]
    UnknownUser(String),
    /// The message exceeds `limits.message_bytes_max` (LMTP 552 5.3.4).
    #[error("message of {size} bytes exceeds the maximum of {max} bytes")]
    TooBig { size: usize, max: usize },
    /// The store failed. The sender should retry later (LMTP 451 4.3.0).
    #[error("storing the message failed: {0}")]
    Store(#[from] StoreError),
    /// The analysis or lookup task was cancelled, for example because the
    /// runtime is shutting down. The sender should retry later.
    #[error("delivery was interrupted: {0}")]
    Interrupted(#[from] tokio::task::JoinError),
}

impl DeliveryError {
    /// Returns whether the same delivery may succeed later.
    pub fn is_temporary(&self) -> bool {
        matches!(self, DeliveryError::Store(_) | DeliveryError::Interrupted(_))
    }
}

/// A message ready to be appended: CRLF line endings, within the size
/// limit and with its MIME data derived. Appending it to several accounts
/// shares the bytes.
#[derive(Clone, Debug)]
pub struct PreparedMessage {
    message: NewMessage,
}

impl PreparedMessage {
    /// Returns the size in bytes as stored (RFC822.SIZE).
    pub fn size(&self) -> usize {
        self.message.raw.len()
    }
}

/// Delivers messages into users' INBOXes.
pub struct Deliverer {
    store: Arc<dyn MailStore>,
    users: Arc<UserDb>,
    /// Maximum message size in bytes, after line-ending normalisation.
    message_bytes_max: usize,
    mime_limits: roost_mime::Limits,
    /// Special-use mailboxes (name, attribute) created with a new account.
    default_mailboxes: Vec<(String, String)>,
}

impl Deliverer {
    pub fn new(store: Arc<dyn MailStore>, users: Arc<UserDb>, config: &Config) -> Self {
        Deliverer {
            store,
            users,
            message_bytes_max: config.limits.message_bytes_max,
            mime_limits: config.limits.mime(),
            default_mailboxes: config.imap.default_mailboxes.clone(),
        }
    }

    /// Returns whether a user of that name exists. The lookup may re-read
    /// the passwd-file, so async callers run it in `spawn_blocking`.
    pub fn user_exists(&self, name: &str) -> bool {
        self.users.exists(name)
    }

    /// Returns the user that a recipient's local part names: the user of
    /// exactly that name, else of its ASCII lowercase form, else the same
    /// for the part before the first `+` (`alice+lists` is `alice`). The
    /// lookups may re-read the passwd-file, so async callers run this in
    /// `spawn_blocking`.
    pub fn resolve_user(&self, local_part: &str) -> Option<String> {
        let base = local_part.split_once(RECIPIENT_DELIMITER).map(|(base, _detail)| base);
        let candidates = [Some(local_part), base].into_iter().flatten().filter(|name| !name.is_empty());
        for name in candidates {
            if self.users.exists(name) {
                return Some(name.to_string());
            }
            let lowercase = name.to_ascii_lowercase();
            if lowercase != name && self.users.exists(&lowercase) {
                return Some(lowercase);
            }
        }
        None
    }

    /// Delivers one message to `user`'s INBOX with INTERNALDATE now.
    /// Returns once the message is durable.
    pub async fn deliver(&self, user: &str, raw: Vec<u8>) -> Result<Appended, DeliveryError> {
        let message = self.prepare(raw).await?;
        self.deliver_prepared(user, &message).await
    }

    /// Normalises bare LF to CRLF, checks the size limit and derives the
    /// MIME data, once for any number of recipients.
    pub async fn prepare(&self, raw: Vec<u8>) -> Result<PreparedMessage, DeliveryError> {
        let raw = normalize_line_endings(raw);
        if raw.len() > self.message_bytes_max {
            return Err(DeliveryError::TooBig { size: raw.len(), max: self.message_bytes_max });
        }

        // MIME analysis of a large message takes long enough to stall
        // other sessions, so it runs on the blocking pool.
        let limits = self.mime_limits.clone();
        let (raw, derived) = tokio::task::spawn_blocking(move || {
            let derived = roost_mime::derive(&raw, &limits).encode();
            (raw, derived)
        })
        .await?;

        let message = NewMessage {
            raw: raw.into(),
            internal_date: now_internal_date(),
            flags: Flags::default(),
            derived: derived.into(),
        };
        Ok(PreparedMessage { message })
    }

    /// Appends a prepared message to `user`'s INBOX, creating the account
    /// on first delivery. Returns once the message is durable, and logs the
    /// result with the recipient and size.
    pub async fn deliver_prepared(&self, user: &str, message: &PreparedMessage) -> Result<Appended, DeliveryError> {
        let result = self.append_to_inbox(user, message).await;
        match &result {
            Ok(appended) => {
                info!(recipient = user, size = message.size(), uid = appended.uid, "delivered");
            }
            Err(error) => {
                warn!(recipient = user, size = message.size(), %error, "delivery failed");
            }
        }
        result
    }

    async fn append_to_inbox(&self, user: &str, message: &PreparedMessage) -> Result<Appended, DeliveryError> {
        let users = self.users.clone();
        let name = user.to_string();
        if !tokio::task::spawn_blocking(move || users.exists(&name)).await? {
            return Err(DeliveryError::UnknownUser(user.to_string()));
        }

        let account = self.store.account(user, &self.default_mailboxes).await?;
        let inbox = self
            .store
            .mailbox(account, "INBOX")
            .await?
            .ok_or_else(|| StoreError::MailboxNotFound("INBOX".to_string()))?;
        let appended = self.store.append(inbox.id, vec![message.message.clone()]).await?;

        // The store returns one result per message given.
        appended.into_iter().next().ok_or_else(|| StoreError::Invalid("append returned no result".to_string()).into())
    }
}

/// Delivers one message for `roost deliver NAME < message`: opens the store
/// and the users in `config.data_dir`, which a running server may share.
/// A [`DeliveryError`] in the error chain shows whether a retry may
/// succeed.
pub async fn deliver_local(config: &Config, user: &str, raw: Vec<u8>) -> anyhow::Result<()> {
    let data_dir = config.data_dir.clone();
    let limits = config.limits.clone();
    let (store, users) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let store = roost_store::sqlite::SqliteStore::open_with(&data_dir, crate::store_options(&limits))
            .with_context(|| format!("failed to open the store in {}", data_dir.display()))?;
        let users =
            UserDb::open(&data_dir).with_context(|| format!("failed to open the users in {}", data_dir.display()))?;
        Ok((store, users))
    })
    .await??;

    let deliverer = Deliverer::new(Arc::new(store), Arc::new(users), config);
    deliverer.deliver(user, raw).await.with_context(|| format!("failed to deliver to {user}"))?;
    Ok(())
}

/// Creates the store accounts of `users` that do not exist yet, with
/// `INBOX` and the configured default mailboxes, for `roost user import`.
/// Returns how many were created. Creating them here rather than at first
/// login keeps a storm of first logins from queueing on the store's writer.
pub async fn create_accounts(config: &Config, users: Vec<String>) -> anyhow::Result<usize> {
    let data_dir = config.data_dir.clone();
    let limits = config.limits.clone();
    let store = tokio::task::spawn_blocking(move || {
        roost_store::sqlite::SqliteStore::open_with(&data_dir, crate::store_options(&limits))
            .with_context(|| format!("failed to open the store in {}", data_dir.display()))
    })
    .await??;
    let created = store
        .create_accounts(&users, &config.imap.default_mailboxes)
        .await
        .context("failed to create the accounts of the imported users")?;
    Ok(created)
}

/// Replaces every LF not preceded by CR with CRLF, because the store keeps
/// messages with CRLF line endings. Returns the input unchanged when it has
/// no bare LF.
pub fn normalize_line_endings(raw: Vec<u8>) -> Vec<u8> {
    let has_bare_lf = raw.iter().enumerate().any(|(index, &byte)| byte == b'\n' && (index == 0 || raw[index - 1] != b'\r'));
    if !has_bare_lf {
        return raw;
    }

    let mut normalized = Vec::with_capacity(raw.len() + raw.len() / 32);
    let mut previous = 0u8;
    for &byte in &raw {
        if byte == b'\n' && previous != b'\r' {
            normalized.push(b'\r');
        }
        normalized.push(byte);
        previous = byte;
    }
    normalized
}

/// Returns the current time with the local UTC offset, as IMAP clients
/// show INTERNALDATE in the server's zone.
fn now_internal_date() -> InternalDate {
    let unix_seconds = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs() as i64);
    InternalDate { unix_seconds, offset_minutes: local_offset_minutes(unix_seconds) }
}

/// Returns the local zone's UTC offset at `unix_seconds`, or 0 if the C
/// library cannot tell.
fn local_offset_minutes(unix_seconds: i64) -> i16 {
    let time = unix_seconds as libc::time_t;
    // SAFETY: `tm` is plain data that localtime_r fills in, both pointers
    // are valid for the call, and localtime_r is the thread-safe variant.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let filled = unsafe { libc::localtime_r(&time, &mut tm) };
    if filled.is_null() {
        return 0;
    }
    // Real zones lie within UTC-12 and UTC+14, so the division fits in i16.
    (tm.tm_gmtoff / 60) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_lf_becomes_crlf() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b""),
            (b"a\r\nb\r\n", b"a\r\nb\r\n"),
            (b"a\nb\n", b"a\r\nb\r\n"),
            (b"\n", b"\r\n"),
            (b"a\r\nb\nc\r\r\n", b"a\r\nb\r\nc\r\r\n"),
            (b"a\rb", b"a\rb"),
        ];
        for &(input, expected) in cases {
            assert_eq!(normalize_line_endings(input.to_vec()), expected, "input {input:?}");
        }
    }

    #[test]
    fn local_offset_is_a_real_zone() {
        let offset = local_offset_minutes(1_700_000_000);
        assert!((-12 * 60..=14 * 60).contains(&offset), "offset {offset}");
    }
}
