//! Messages, flags, MODSEQ and expunge records in the index.
//!
//! Every function here runs inside a transaction that the caller opened.
//! Bodies are already durable files when [`append`] runs, so this module
//! only stores their ids.

use std::collections::HashSet;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};

use super::mailboxes::{MailboxRow, mailbox_row};
use super::writer::Effects;
use crate::{
    Appended, BlobId, Copied, FlagChanges, FlagOp, Flags, InternalDate, MailboxId, MessageEntry,
    MessageRecord, ModSeq, NewMessage, Result, Snapshot, StoreError, Uid, Vanished,
};

/// The system flag bits that exist. Other bits are dropped.
const SYSTEM_FLAGS_MASK: u8 = 0x1f;
const DELETED: u8 = crate::system_flag::DELETED;

/// Raises a mailbox's highest MODSEQ by one and returns the new value,
/// which the caller gives to every change of this request.
pub fn bump_modseq(conn: &Connection, mailbox: MailboxId) -> Result<ModSeq> {
    conn.prepare_cached("UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = ?1 RETURNING highest_modseq")?
        .query_row([mailbox.0], |row| row.get(0))
        .optional()?
        .ok_or(StoreError::MailboxGone(mailbox))
}

/// Reserves `count` UIDs from the mailbox's UIDNEXT and returns the first.
/// UIDNEXT is written in the same transaction as the messages, so a UID
/// handed out is never handed out again, even after a crash.
fn reserve_uids(conn: &Connection, mailbox: &MailboxRow, count: usize) -> Result<Uid> {
    let first = mailbox.uid_next;
    let next = u32::try_from(count)
        .ok()
        .and_then(|count| first.checked_add(count))
        .ok_or_else(|| {
            StoreError::Invalid(format!("mailbox {:?} has no UIDs left", mailbox.name))
        })?;
    conn.prepare_cached("UPDATE mailboxes SET uid_next = ?2 WHERE id = ?1")?
        .execute(params![mailbox.id.0, next])?;
    Ok(first)
}

/// A message body that is already durable on disk, with its index data.
pub struct StoredBody {
    pub message: NewMessage,
    pub blob: BlobId,
}

pub fn append(
    conn: &Connection,
    mailbox: MailboxId,
    bodies: &[StoredBody],
    effects: &mut Effects,
) -> Result<Vec<Appended>> {
    let row = mailbox_row(conn, mailbox)?;
    if bodies.is_empty() {
        return Ok(Vec::new());
    }
    let first_uid = reserve_uids(conn, &row, bodies.len())?;
    let modseq = bump_modseq(conn, mailbox)?;
    let mut insert_blob =
        conn.prepare_cached("INSERT INTO blobs (id, size, derived) VALUES (?1, ?2, ?3)")?;
    let mut insert_message = conn.prepare_cached(
        "INSERT INTO messages (mailbox_id, uid, modseq, system_flags, keywords, internal_date, date_offset, size, blob_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    let mut appended = Vec::with_capacity(bodies.len());
    for (uid, body) in (first_uid..).zip(bodies) {
        let size = body.message.raw.len() as u64;
        let flags = normalise(&body.message.flags);
        insert_blob.execute(params![body.blob.0, size, &body.message.derived[..]])?;
        insert_message.execute(params![
            mailbox.0,
            uid,
            modseq,
            flags.system,
            encode_keywords(&flags.keywords),
            body.message.internal_date.unix_seconds,
            body.message.internal_date.offset_minutes,
            size,
            body.blob.0,
        ])?;
        appended.push(Appended {
            mailbox,
            uid_validity: row.uid_validity,
            uid,
            modseq,
        });
    }
    effects.changed(mailbox, modseq);
    Ok(appended)
}

pub fn snapshot(conn: &Connection, mailbox: MailboxId) -> Result<Snapshot> {
    let row = mailbox_row(conn, mailbox)?;
    let mut statement =
        conn.prepare_cached("SELECT uid, modseq, system_flags, keywords FROM messages WHERE mailbox_id = ?1 ORDER BY uid")?;
    let mut rows = statement.query([mailbox.0])?;
    let mut interner = Interner::default();
    let mut messages = Vec::with_capacity(status_count(conn, mailbox)?);
    while let Some(message) = rows.next()? {
        let keywords: String = message.get(3)?;
        messages.push(MessageEntry {
            uid: message.get(0)?,
            modseq: message.get(1)?,
            flags: Flags {
                system: message.get(2)?,
                keywords: interner.decode(&keywords),
            },
        });
    }
    debug_assert!(
        messages.windows(2).all(|pair| pair[0].uid < pair[1].uid),
        "UIDs must ascend"
    );
    Ok(Snapshot {
        mailbox,
        uid_validity: row.uid_validity,
        uid_next: row.uid_next,
        highest_modseq: row.highest_modseq,
        messages,
        keywords: interner.into_sorted(),
    })
}

fn status_count(conn: &Connection, mailbox: MailboxId) -> Result<usize> {
    let count: u64 = conn
        .prepare_cached("SELECT messages FROM mailboxes WHERE id = ?1")?
        .query_row([mailbox.0], |row| row.get(0))?;
    Ok(usize::try_from(count).unwrap_or(0))
}

/// Returns `uids` sorted ascending without duplicates.
fn sorted_unique(uids: &[Uid]) -> Vec<Uid> {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    sorted
}

pub fn store_flags(
    conn: &Connection,
    mailbox: MailboxId,
    uids: &[Uid],
    op: FlagOp,
    flags: &Flags,
    unchanged_since: Option<ModSeq>,
    effects: &mut Effects,
) -> Result<FlagChanges> {
    mailbox_row(conn, mailbox)?;
    let given = normalise(flags);
    let mut select = conn.prepare_cached(
        "SELECT modseq, system_flags, keywords FROM messages WHERE mailbox_id = ?1 AND uid = ?2",
    )?;
    let mut update =
        conn.prepare_cached("UPDATE messages SET modseq = ?3, system_flags = ?4, keywords = ?5 WHERE mailbox_id = ?1 AND uid = ?2")?;
    let mut interner = Interner::default();
    let mut changes = FlagChanges::default();
    let mut modseq = None;
    for uid in sorted_unique(uids) {
        let current = select
            .query_row(params![mailbox.0, uid], |row| {
                Ok((
                    row.get::<_, ModSeq>(0)?,
                    row.get::<_, u8>(1)?,
                    row.get::<_, String>(2)?,
                ))
            })
            .optional()?;
        let Some((message_modseq, system, keywords)) = current else {
            continue;
        };
        if unchanged_since.is_some_and(|limit| message_modseq > limit) {
            changes.failed.push(uid);
            continue;
        }
        let old = Flags {
            system,
            keywords: interner.decode(&keywords),
        };
        let new = apply(op, &old, &given);
        if new == old {
            continue;
        }
        let modseq = match modseq {
            Some(modseq) => modseq,
            None => *modseq.insert(bump_modseq(conn, mailbox)?),
        };
        update.execute(params![
            mailbox.0,
            uid,
            modseq,
            new.system,
            encode_keywords(&new.keywords)
        ])?;
        changes.changed.push(MessageEntry {
            uid,
            modseq,
            flags: new,
        });
    }
    if let Some(modseq) = modseq {
        effects.changed(mailbox, modseq);
    }
    Ok(changes)
}

/// Copies messages. With `remove_source`, it also deletes them from the
/// source and records them as expunged there (MOVE).
pub fn copy(
    conn: &Connection,
    from: MailboxId,
    uids: &[Uid],
    to: MailboxId,
    remove_source: bool,
    expunged_max: u64,
    effects: &mut Effects,
) -> Result<Copied> {
    let source = mailbox_row(conn, from)?;
    let target = mailbox_row(conn, to)?;
    if source.account != target.account {
        return Err(StoreError::Forbidden(
            "messages can only be copied within one account".into(),
        ));
    }
    let present = existing_uids(conn, from, uids)?;
    let mut copied = Copied {
        uid_validity: target.uid_validity,
        uids: Vec::with_capacity(present.len()),
    };
    if present.is_empty() {
        return Ok(copied);
    }

    let first_uid = reserve_uids(conn, &target, present.len())?;
    let target_modseq = bump_modseq(conn, to)?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO messages (mailbox_id, uid, modseq, system_flags, keywords, internal_date, date_offset, size, blob_id) \
         SELECT ?3, ?4, ?5, system_flags, keywords, internal_date, date_offset, size, blob_id \
         FROM messages WHERE mailbox_id = ?1 AND uid = ?2",
    )?;
    for (new_uid, &uid) in (first_uid..).zip(&present) {
        insert.execute(params![from.0, uid, to.0, new_uid, target_modseq])?;
        copied.uids.push((uid, new_uid));
    }
    effects.changed(to, target_modseq);

    if remove_source {
        let source_modseq = bump_modseq(conn, from)?;
        remove_messages(conn, from, &present, source_modseq, expunged_max)?;
        effects.changed(from, source_modseq);
    }
    Ok(copied)
}

/// Returns those of `uids` that are in the mailbox, ascending.
fn existing_uids(conn: &Connection, mailbox: MailboxId, uids: &[Uid]) -> Result<Vec<Uid>> {
    let mut exists =
        conn.prepare_cached("SELECT 1 FROM messages WHERE mailbox_id = ?1 AND uid = ?2")?;
    let mut present = Vec::new();
    for uid in sorted_unique(uids) {
        if exists.exists(params![mailbox.0, uid])? {
            present.push(uid);
        }
    }
    Ok(present)
}

/// Deletes messages and records each UID as expunged at `modseq`. Blob
/// rows left without references are deleted by the writer before commit.
fn remove_messages(
    conn: &Connection,
    mailbox: MailboxId,
    uids: &[Uid],
    modseq: ModSeq,
    expunged_max: u64,
) -> Result<()> {
    let mut delete =
        conn.prepare_cached("DELETE FROM messages WHERE mailbox_id = ?1 AND uid = ?2")?;
    let mut record =
        conn.prepare_cached("INSERT INTO expunged (mailbox_id, uid, modseq) VALUES (?1, ?2, ?3)")?;
    for &uid in uids {
        delete.execute(params![mailbox.0, uid])?;
        record.execute(params![mailbox.0, uid, modseq])?;
    }
    prune_expunged(conn, mailbox, expunged_max)
}

/// Deletes the oldest expunge records beyond `expunged_max` and raises the
/// mailbox's vanished floor to the highest MODSEQ deleted, so that
/// [`expunged_since`] can report when its list is incomplete.
pub fn prune_expunged(conn: &Connection, mailbox: MailboxId, expunged_max: u64) -> Result<()> {
    let count: u64 = conn
        .prepare_cached("SELECT expunged FROM mailboxes WHERE id = ?1")?
        .query_row([mailbox.0], |row| row.get(0))?;
    let Some(excess) = count.checked_sub(expunged_max).filter(|excess| *excess > 0) else {
        return Ok(());
    };
    let pruned: Option<ModSeq> = conn
        .prepare_cached(
            "DELETE FROM expunged WHERE mailbox_id = ?1 AND uid IN \
             (SELECT uid FROM expunged WHERE mailbox_id = ?1 ORDER BY modseq, uid LIMIT ?2) \
             RETURNING modseq",
        )?
        .query_map(params![mailbox.0, excess], |row| row.get::<_, ModSeq>(0))?
        .try_fold(None, |highest: Option<ModSeq>, modseq| {
            modseq.map(|modseq| Some(highest.map_or(modseq, |h| h.max(modseq))))
        })?;
    if let Some(floor) = pruned {
        conn.prepare_cached(
            "UPDATE mailboxes SET vanished_floor = max(vanished_floor, ?2) WHERE id = ?1",
        )?
        .execute(params![mailbox.0, floor])?;
    }
    Ok(())
}

/// Lists UIDs expunged after `since`, as [`crate::MailStore::expunged_since`] describes.
pub fn expunged_since(conn: &Connection, mailbox: MailboxId, since: ModSeq) -> Result<Vanished> {
    let floor: ModSeq = conn
        .prepare_cached("SELECT vanished_floor FROM mailboxes WHERE id = ?1")?
        .query_row([mailbox.0], |row| row.get(0))
        .optional()?
        .ok_or(StoreError::MailboxGone(mailbox))?;
    let mut statement = conn.prepare_cached(
        "SELECT uid FROM expunged WHERE mailbox_id = ?1 AND modseq > ?2 ORDER BY uid",
    )?;
    let uids = statement
        .query_map(params![mailbox.0, since], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<Uid>>>()?;
    Ok(Vanished {
        uids,
        complete: since >= floor,
    })
}

pub fn expunge(
    conn: &Connection,
    mailbox: MailboxId,
    uids: Option<&[Uid]>,
    expunged_max: u64,
    effects: &mut Effects,
) -> Result<Vec<Uid>> {
    mailbox_row(conn, mailbox)?;
    let deleted = deleted_uids(conn, mailbox)?;
    let doomed: Vec<Uid> = match uids {
        None => deleted,
        Some(uids) => {
            let wanted = sorted_unique(uids);
            deleted
                .into_iter()
                .filter(|uid| wanted.binary_search(uid).is_ok())
                .collect()
        }
    };
    if doomed.is_empty() {
        return Ok(doomed);
    }
    let modseq = bump_modseq(conn, mailbox)?;
    remove_messages(conn, mailbox, &doomed, modseq, expunged_max)?;
    effects.changed(mailbox, modseq);
    Ok(doomed)
}

fn deleted_uids(conn: &Connection, mailbox: MailboxId) -> Result<Vec<Uid>> {
    let mut statement = conn.prepare_cached(
        "SELECT uid FROM messages WHERE mailbox_id = ?1 AND (system_flags & ?2) != 0 ORDER BY uid",
    )?;
    let uids = statement.query_map(params![mailbox.0, DELETED], |row| row.get(0))?;
    Ok(uids.collect::<rusqlite::Result<_>>()?)
}

pub fn records(conn: &Connection, mailbox: MailboxId, uids: &[Uid]) -> Result<Vec<MessageRecord>> {
    mailbox_row(conn, mailbox)?;
    let mut statement = conn.prepare_cached(
        "SELECT m.modseq, m.system_flags, m.keywords, m.internal_date, m.date_offset, m.size, m.blob_id, b.derived \
         FROM messages m JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = ?1 AND m.uid = ?2",
    )?;
    let mut interner = Interner::default();
    let mut records = Vec::with_capacity(uids.len());
    for &uid in uids {
        let row = statement
            .query_row(params![mailbox.0, uid], |row| {
                Ok((
                    row.get::<_, ModSeq>(0)?,
                    row.get::<_, u8>(1)?,
                    row.get::<_, String>(2)?,
                    InternalDate {
                        unix_seconds: row.get(3)?,
                        offset_minutes: row.get(4)?,
                    },
                    row.get::<_, u64>(5)?,
                    BlobId(row.get(6)?),
                    row.get::<_, Vec<u8>>(7)?,
                ))
            })
            .optional()?;
        let Some((modseq, system, keywords, internal_date, size, blob, derived)) = row else {
            continue;
        };
        records.push(MessageRecord {
            uid,
            internal_date,
            size,
            flags: Flags {
                system,
                keywords: interner.decode(&keywords),
            },
            modseq,
            derived: derived.into(),
            blob,
        });
    }
    Ok(records)
}

/// Returns the UIDs at or above the recent floor and raises the floor to
/// UIDNEXT. This is not a change to any message, so MODSEQ stays.
pub fn claim_recent(conn: &Connection, mailbox: MailboxId) -> Result<Vec<Uid>> {
    let row = mailbox_row(conn, mailbox)?;
    let mut statement = conn.prepare_cached(
        "SELECT uid FROM messages WHERE mailbox_id = ?1 AND uid >= ?2 ORDER BY uid",
    )?;
    let uids = statement
        .query_map(params![mailbox.0, row.recent_floor], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<Uid>>>()?;
    conn.prepare_cached("UPDATE mailboxes SET recent_floor = uid_next WHERE id = ?1")?
        .execute([mailbox.0])?;
    Ok(uids)
}

/// Checks that every keyword can be stored: not empty and without spaces
/// or control characters, which the stored form uses as separators.
pub fn validate_keywords(flags: &Flags) -> Result<()> {
    for keyword in &flags.keywords {
        if keyword.is_empty() || keyword.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(StoreError::Invalid(format!(
                "keyword {keyword:?} is empty or contains a space or control character"
            )));
        }
    }
    Ok(())
}

/// Returns flags with unknown system bits dropped and keywords made unique
/// ignoring ASCII case (the first spelling wins), sorted by their
/// lowercase form.
fn normalise(flags: &Flags) -> Flags {
    let mut keywords: Vec<Arc<str>> = Vec::with_capacity(flags.keywords.len());
    for keyword in &flags.keywords {
        if !keywords
            .iter()
            .any(|seen| seen.eq_ignore_ascii_case(keyword))
        {
            keywords.push(keyword.clone());
        }
    }
    keywords.sort_by_cached_key(|keyword| keyword.to_ascii_lowercase());
    Flags {
        system: flags.system & SYSTEM_FLAGS_MASK,
        keywords,
    }
}

/// Combines current flags with normalised given flags as `op` requests.
fn apply(op: FlagOp, current: &Flags, given: &Flags) -> Flags {
    match op {
        FlagOp::Replace => given.clone(),
        FlagOp::Add => {
            let mut keywords = current.keywords.clone();
            keywords.extend(given.keywords.iter().cloned());
            normalise(&Flags {
                system: current.system | given.system,
                keywords,
            })
        }
        FlagOp::Remove => {
            let keywords = current
                .keywords
                .iter()
                .filter(|keyword| {
                    !given
                        .keywords
                        .iter()
                        .any(|removed| removed.eq_ignore_ascii_case(keyword))
                })
                .cloned()
                .collect();
            Flags {
                system: current.system & !given.system,
                keywords,
            }
        }
    }
}

fn encode_keywords(keywords: &[Arc<str>]) -> String {
    keywords.join(" ")
}

/// Shares one `Arc<str>` per keyword spelling across the messages of one
/// read, so a large mailbox stores each keyword in memory once.
#[derive(Default)]
struct Interner {
    seen: HashSet<Arc<str>>,
}

impl Interner {
    fn decode(&mut self, stored: &str) -> Vec<Arc<str>> {
        stored
            .split(' ')
            .filter(|word| !word.is_empty())
            .map(|word| self.intern(word))
            .collect()
    }

    fn intern(&mut self, word: &str) -> Arc<str> {
        if let Some(shared) = self.seen.get(word) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(word);
        self.seen.insert(shared.clone());
        shared
    }

    /// Returns every keyword seen, unique ignoring ASCII case and sorted
    /// by lowercase form.
    fn into_sorted(self) -> Vec<Arc<str>> {
        normalise(&Flags {
            system: 0,
            keywords: self.seen.into_iter().collect(),
        })
        .keywords
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(system: u8, keywords: &[&str]) -> Flags {
        Flags {
            system,
            keywords: keywords.iter().map(|k| Arc::from(*k)).collect(),
        }
    }

    #[test]
    fn apply_add_merges_keywords_ignoring_case() {
        let current = flags(1, &["Work"]);
        let given = normalise(&flags(2, &["work", "Alpha"]));
        assert_eq!(
            apply(FlagOp::Add, &current, &given),
            flags(3, &["Alpha", "Work"])
        );
    }

    #[test]
    fn apply_remove_matches_keywords_ignoring_case() {
        let current = flags(3, &["Alpha", "Work"]);
        let given = normalise(&flags(1, &["WORK"]));
        assert_eq!(
            apply(FlagOp::Remove, &current, &given),
            flags(2, &["Alpha"])
        );
    }

    #[test]
    fn normalise_drops_unknown_bits() {
        assert_eq!(normalise(&flags(0xff, &[])).system, SYSTEM_FLAGS_MASK);
    }

    #[test]
    fn keywords_with_space_are_invalid() {
        assert!(validate_keywords(&flags(0, &["a b"])).is_err());
        assert!(validate_keywords(&flags(0, &[""])).is_err());
        assert!(validate_keywords(&flags(0, &["$Label1"])).is_ok());
    }
}
