//! Accounts, mailboxes, names and subscriptions in the index.
//!
//! Every function here runs inside a transaction that the caller opened:
//! a read transaction from the reader pool or the writer's transaction.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::writer::Effects;
use crate::{
    AccountId, HIERARCHY_SEPARATOR, MailboxId, MailboxInfo, MailboxStatus, ModSeq, Result,
    StoreError, Uid,
};

const INBOX: &str = "INBOX";

/// A mailbox row with the fields that write paths need.
pub struct MailboxRow {
    pub id: MailboxId,
    pub account: AccountId,
    pub name: String,
    pub uid_validity: u32,
    pub uid_next: Uid,
    pub highest_modseq: ModSeq,
    pub recent_floor: Uid,
    pub special_use: Option<String>,
}

impl MailboxRow {
    const COLUMNS: &str =
        "id, account_id, name, uid_validity, uid_next, highest_modseq, recent_floor, special_use";

    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: MailboxId(row.get(0)?),
            account: AccountId(row.get(1)?),
            name: row.get(2)?,
            uid_validity: row.get(3)?,
            uid_next: row.get(4)?,
            highest_modseq: row.get(5)?,
            recent_floor: row.get(6)?,
            special_use: row.get(7)?,
        })
    }

    pub fn info(self) -> MailboxInfo {
        MailboxInfo {
            id: self.id,
            name: self.name,
            uid_validity: self.uid_validity,
            uid_next: self.uid_next,
            highest_modseq: self.highest_modseq,
            special_use: self.special_use,
        }
    }
}

/// Returns the canonical form of a mailbox name, or `Invalid` if it is
/// empty, longer than `bytes_max`, has an empty level or contains a control
/// character. Names are case-sensitive, except that a first level spelled
/// `INBOX` in any case becomes `INBOX`, so `inbox/Sent` and `INBOX/Sent`
/// are one mailbox, as in Dovecot and Cyrus.
pub fn canonical_name(name: &str, bytes_max: usize) -> Result<String> {
    if name.is_empty() {
        return Err(StoreError::Invalid("mailbox name is empty".into()));
    }
    if name.len() > bytes_max {
        return Err(StoreError::Invalid(format!(
            "mailbox name is {} bytes long; the maximum is {bytes_max}",
            name.len()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "mailbox name {name:?} contains a control character"
        )));
    }
    if name.split(HIERARCHY_SEPARATOR).any(str::is_empty) {
        return Err(StoreError::Invalid(format!(
            "mailbox name {name:?} has an empty level; levels are separated by a single {HIERARCHY_SEPARATOR:?}"
        )));
    }
    let (first, rest) = match name.split_once(HIERARCHY_SEPARATOR) {
        Some((first, rest)) => (first, Some(rest)),
        None => (name, None),
    };
    if !first.eq_ignore_ascii_case(INBOX) {
        return Ok(name.to_owned());
    }
    Ok(match rest {
        Some(rest) => format!("{INBOX}{HIERARCHY_SEPARATOR}{rest}"),
        None => INBOX.to_owned(),
    })
}

/// Returns the names of the levels above `name`, outermost first.
fn parents(name: &str) -> impl Iterator<Item = &str> {
    name.match_indices(HIERARCHY_SEPARATOR)
        .map(|(at, _)| &name[..at])
}

pub fn find_account(conn: &Connection, name: &str) -> Result<Option<AccountId>> {
    let id = conn
        .prepare_cached("SELECT id FROM accounts WHERE name = ?1")?
        .query_row([name], |row| row.get(0))
        .optional()?;
    Ok(id.map(AccountId))
}

/// Returns the account, creating it with `INBOX` and the default mailboxes
/// if it does not exist yet.
pub fn ensure_account(
    conn: &Connection,
    name: &str,
    defaults: &[(String, String)],
    name_bytes_max: usize,
) -> Result<AccountId> {
    if let Some(id) = find_account(conn, name)? {
        return Ok(id);
    }
    insert_account(conn, name, defaults, name_bytes_max)
}

/// Creates the account with `INBOX` and the default mailboxes unless it
/// exists. Returns whether it was created.
pub fn create_account_if_missing(
    conn: &Connection,
    name: &str,
    defaults: &[(String, String)],
    name_bytes_max: usize,
) -> Result<bool> {
    if find_account(conn, name)?.is_some() {
        return Ok(false);
    }
    insert_account(conn, name, defaults, name_bytes_max)?;
    Ok(true)
}

fn insert_account(
    conn: &Connection,
    name: &str,
    defaults: &[(String, String)],
    name_bytes_max: usize,
) -> Result<AccountId> {
    let id: u64 = conn
        .prepare_cached("INSERT INTO accounts (name) VALUES (?1) RETURNING id")?
        .query_row([name], |row| row.get(0))?;
    let account = AccountId(id);

    // The account is new, so its mailboxes are the ones listed here: the
    // list is checked for duplicates and missing parents in memory,
    // without a query per mailbox.
    let mut mailboxes: Vec<(String, Option<&str>)> = vec![(INBOX.to_owned(), None)];
    for (mailbox, special_use) in defaults {
        let mailbox = canonical_name(mailbox, name_bytes_max)?;
        if mailboxes.iter().any(|(listed, _)| *listed == mailbox) {
            continue;
        }
        for parent in parents(&mailbox) {
            if !mailboxes.iter().any(|(listed, _)| listed == parent) {
                mailboxes.push((parent.to_owned(), None));
            }
        }
        mailboxes.push((mailbox, Some(special_use.as_str())));
    }
    let first = reserve_uid_validities(conn, mailboxes.len() as u32)?;
    for (offset, (mailbox, special_use)) in mailboxes.iter().enumerate() {
        insert_mailbox_row(conn, account, mailbox, *special_use, first + offset as u32)?;
    }
    Ok(account)
}

pub fn delete_account(conn: &Connection, name: &str, effects: &mut Effects) -> Result<()> {
    let account =
        find_account(conn, name)?.ok_or_else(|| StoreError::AccountNotFound(name.to_owned()))?;
    for mailbox in list_mailboxes(conn, account)? {
        remove_mailbox(conn, &mailbox, effects)?;
    }
    conn.execute(
        "DELETE FROM subscriptions WHERE account_id = ?1",
        [account.0],
    )?;
    conn.execute("DELETE FROM accounts WHERE id = ?1", [account.0])?;
    Ok(())
}

pub fn list_mailboxes(conn: &Connection, account: AccountId) -> Result<Vec<MailboxRow>> {
    let sql = format!(
        "SELECT {} FROM mailboxes WHERE account_id = ?1 ORDER BY name",
        MailboxRow::COLUMNS
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map([account.0], MailboxRow::from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Looks up a mailbox by canonical name.
pub fn find_mailbox(
    conn: &Connection,
    account: AccountId,
    name: &str,
) -> Result<Option<MailboxRow>> {
    let sql = format!(
        "SELECT {} FROM mailboxes WHERE account_id = ?1 AND name = ?2",
        MailboxRow::COLUMNS
    );
    let row = conn
        .prepare_cached(&sql)?
        .query_row(params![account.0, name], MailboxRow::from_row)
        .optional()?;
    Ok(row)
}

/// Looks up a mailbox by id. A deleted one is `MailboxGone`.
pub fn mailbox_row(conn: &Connection, id: MailboxId) -> Result<MailboxRow> {
    let sql = format!(
        "SELECT {} FROM mailboxes WHERE id = ?1",
        MailboxRow::COLUMNS
    );
    conn.prepare_cached(&sql)?
        .query_row([id.0], MailboxRow::from_row)
        .optional()?
        .ok_or(StoreError::MailboxGone(id))
}

/// Reads the highest MODSEQ of a mailbox, or `None` if it was deleted.
pub fn highest_modseq(conn: &Connection, id: MailboxId) -> Result<Option<ModSeq>> {
    let modseq = conn
        .prepare_cached("SELECT highest_modseq FROM mailboxes WHERE id = ?1")?
        .query_row([id.0], |row| row.get(0))
        .optional()?;
    Ok(modseq)
}

/// Draws the UIDVALIDITY for a new mailbox: the current time in seconds,
/// or one more than the last value drawn if that is not smaller. Every
/// mailbox incarnation in this store thus gets a distinct value, even
/// when a name is deleted and created again within one second.
fn next_uid_validity(conn: &Connection) -> Result<u32> {
    reserve_uid_validities(conn, 1)
}

/// Reserves `count` consecutive UIDVALIDITY values and returns the first.
/// Values follow the clock in seconds, or the last value taken if that is
/// ahead, so they never repeat in this store.
fn reserve_uid_validities(conn: &Connection, count: u32) -> Result<u32> {
    let last: Option<u32> = conn
        .prepare_cached("SELECT value FROM meta WHERE key = 'uid_validity_last'")?
        .query_row([], |row| row.get(0))
        .optional()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| u32::try_from(elapsed.as_secs()).unwrap_or(u32::MAX))
        .unwrap_or(1);
    let exhausted = || StoreError::Invalid("no UIDVALIDITY values are left in this store".into());
    let first = match last {
        Some(last) if last >= now => last.checked_add(1).ok_or_else(exhausted)?,
        _ => now.max(1),
    };
    let reserved_last = first.checked_add(count.saturating_sub(1)).ok_or_else(exhausted)?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('uid_validity_last', ?1)",
    )?
    .execute([reserved_last])?;
    Ok(first)
}

fn insert_mailbox(
    conn: &Connection,
    account: AccountId,
    name: &str,
    special_use: Option<&str>,
) -> Result<MailboxId> {
    let uid_validity = next_uid_validity(conn)?;
    insert_mailbox_row(conn, account, name, special_use, uid_validity)
}

fn insert_mailbox_row(
    conn: &Connection,
    account: AccountId,
    name: &str,
    special_use: Option<&str>,
    uid_validity: u32,
) -> Result<MailboxId> {
    let id: u64 = conn
        .prepare_cached(
            "INSERT INTO mailboxes (account_id, name, uid_validity, special_use) VALUES (?1, ?2, ?3, ?4) RETURNING id",
        )?
        .query_row(params![account.0, name, uid_validity, special_use], |row| row.get(0))?;
    Ok(MailboxId(id))
}

/// Creates `name` and any missing levels above it (without attributes).
fn create_with_parents(
    conn: &Connection,
    account: AccountId,
    name: &str,
    special_use: Option<&str>,
) -> Result<MailboxId> {
    for parent in parents(name) {
        if find_mailbox(conn, account, parent)?.is_none() {
            insert_mailbox(conn, account, parent, None)?;
        }
    }
    insert_mailbox(conn, account, name, special_use)
}

pub fn create_mailbox(
    conn: &Connection,
    account: AccountId,
    name: &str,
    special_use: Option<&str>,
) -> Result<MailboxId> {
    ensure_account_exists(conn, account)?;
    if find_mailbox(conn, account, name)?.is_some() {
        return Err(StoreError::MailboxExists(name.to_owned()));
    }
    create_with_parents(conn, account, name, special_use)
}

/// Fails with `Forbidden` if the account has more than `mailboxes_max`
/// mailboxes. Write paths call it after their inserts, so the failure rolls
/// back exactly the mailboxes that request created.
pub fn check_mailbox_count(
    conn: &Connection,
    account: AccountId,
    mailboxes_max: u64,
) -> Result<()> {
    let count: u64 = conn
        .prepare_cached("SELECT count(*) FROM mailboxes WHERE account_id = ?1")?
        .query_row([account.0], |row| row.get(0))?;
    if count > mailboxes_max {
        return Err(StoreError::LimitExceeded(format!(
            "the account would have {count} mailboxes; the maximum is {mailboxes_max}"
        )));
    }
    Ok(())
}

fn ensure_account_exists(conn: &Connection, account: AccountId) -> Result<()> {
    let exists = conn
        .prepare_cached("SELECT 1 FROM accounts WHERE id = ?1")?
        .exists([account.0])?;
    if exists {
        Ok(())
    } else {
        Err(StoreError::AccountNotFound(format!("id {}", account.0)))
    }
}

pub fn delete_mailbox(
    conn: &Connection,
    account: AccountId,
    name: &str,
    effects: &mut Effects,
) -> Result<()> {
    if name == INBOX {
        return Err(StoreError::Forbidden("INBOX cannot be deleted".into()));
    }
    let mailbox = find_mailbox(conn, account, name)?
        .ok_or_else(|| StoreError::MailboxNotFound(name.to_owned()))?;
    remove_mailbox(conn, &mailbox, effects)
}

/// Deletes a mailbox row with its messages and expunge records. Its
/// watchers are woken with a MODSEQ one past the last, so they look again
/// and find the mailbox gone.
fn remove_mailbox(conn: &Connection, mailbox: &MailboxRow, effects: &mut Effects) -> Result<()> {
    conn.prepare_cached("DELETE FROM messages WHERE mailbox_id = ?1")?
        .execute([mailbox.id.0])?;
    conn.prepare_cached("DELETE FROM expunged WHERE mailbox_id = ?1")?
        .execute([mailbox.id.0])?;
    conn.prepare_cached("DELETE FROM mailboxes WHERE id = ?1")?
        .execute([mailbox.id.0])?;
    effects.changed(mailbox.id, mailbox.highest_modseq + 1);
    Ok(())
}

pub fn rename_mailbox(
    conn: &Connection,
    account: AccountId,
    from: &str,
    to: &str,
    expunged_max: u64,
    effects: &mut Effects,
) -> Result<()> {
    let source = find_mailbox(conn, account, from)?
        .ok_or_else(|| StoreError::MailboxNotFound(from.to_owned()))?;
    if find_mailbox(conn, account, to)?.is_some() {
        return Err(StoreError::MailboxExists(to.to_owned()));
    }
    if from == INBOX {
        return rename_inbox(conn, &source, to, expunged_max, effects);
    }
    let prefix = format!("{from}{HIERARCHY_SEPARATOR}");
    if to.starts_with(&prefix) {
        return Err(StoreError::Invalid(format!(
            "cannot rename {from:?} to {to:?}, a name below itself"
        )));
    }

    let mut renames = vec![(source.id, to.to_owned())];
    for child in children(conn, account, from)? {
        let new_name = format!("{to}{}", &child.name[from.len()..]);
        if find_mailbox(conn, account, &new_name)?.is_some() {
            return Err(StoreError::MailboxExists(new_name));
        }
        renames.push((child.id, new_name));
    }
    for parent in parents(to) {
        if find_mailbox(conn, account, parent)?.is_none() {
            insert_mailbox(conn, account, parent, None)?;
        }
    }
    let mut statement = conn.prepare_cached("UPDATE mailboxes SET name = ?2 WHERE id = ?1")?;
    for (id, new_name) in renames {
        statement.execute(params![id.0, new_name])?;
    }
    Ok(())
}

/// Returns the mailboxes below `name` at any depth.
fn children(conn: &Connection, account: AccountId, name: &str) -> Result<Vec<MailboxRow>> {
    // Names below `a` sort between "a/" and "a0", because '0' follows '/'
    // in byte order, which is SQLite's default collation.
    let low = format!("{name}{HIERARCHY_SEPARATOR}");
    let high = format!("{name}{}", char::from(HIERARCHY_SEPARATOR as u8 + 1));
    let sql = format!(
        "SELECT {} FROM mailboxes WHERE account_id = ?1 AND name > ?2 AND name < ?3 ORDER BY name",
        MailboxRow::COLUMNS
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(params![account.0, low, high], MailboxRow::from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Moves every message of `INBOX` to a new mailbox `to`, keeping their
/// UIDs, flags and MODSEQs under the new mailbox's UIDVALIDITY. `INBOX`
/// keeps its UIDNEXT and records the moved UIDs as expunged. Mailboxes
/// below `INBOX` stay where they are, as RFC 3501 RENAME requires.
fn rename_inbox(
    conn: &Connection,
    inbox: &MailboxRow,
    to: &str,
    expunged_max: u64,
    effects: &mut Effects,
) -> Result<()> {
    let target = create_with_parents(conn, inbox.account, to, None)?;
    conn.prepare_cached(
        "UPDATE mailboxes SET uid_next = ?2, highest_modseq = ?3, recent_floor = ?4 WHERE id = ?1",
    )?
    .execute(params![
        target.0,
        inbox.uid_next,
        inbox.highest_modseq,
        inbox.recent_floor
    ])?;

    let moved = conn
        .prepare_cached("SELECT count(*) FROM messages WHERE mailbox_id = ?1")?
        .query_row([inbox.id.0], |row| row.get::<_, u64>(0))?;
    if moved == 0 {
        return Ok(());
    }
    let modseq = super::messages::bump_modseq(conn, inbox.id)?;
    conn.prepare_cached(
        "INSERT INTO expunged (mailbox_id, uid, modseq) SELECT mailbox_id, uid, ?2 FROM messages WHERE mailbox_id = ?1",
    )?
    .execute(params![inbox.id.0, modseq])?;
    super::messages::prune_expunged(conn, inbox.id, expunged_max)?;
    conn.prepare_cached("UPDATE messages SET mailbox_id = ?2 WHERE mailbox_id = ?1")?
        .execute(params![inbox.id.0, target.0])?;
    effects.changed(inbox.id, modseq);
    Ok(())
}

pub fn set_subscribed(
    conn: &Connection,
    account: AccountId,
    name: &str,
    subscribed: bool,
) -> Result<()> {
    ensure_account_exists(conn, account)?;
    let sql = if subscribed {
        "INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?1, ?2)"
    } else {
        "DELETE FROM subscriptions WHERE account_id = ?1 AND name = ?2"
    };
    conn.prepare_cached(sql)?
        .execute(params![account.0, name])?;
    Ok(())
}

pub fn subscriptions(conn: &Connection, account: AccountId) -> Result<Vec<String>> {
    let mut statement =
        conn.prepare_cached("SELECT name FROM subscriptions WHERE account_id = ?1 ORDER BY name")?;
    let names = statement.query_map([account.0], |row| row.get(0))?;
    Ok(names.collect::<rusqlite::Result<_>>()?)
}

/// Reads the STATUS counts. The counters are kept by triggers, and the
/// recent count is a range scan of the primary key from the recent floor.
pub fn status(conn: &Connection, mailbox: MailboxId) -> Result<MailboxStatus> {
    let status = conn
        .prepare_cached(
            "SELECT messages, unseen, uid_next, uid_validity, highest_modseq, size, deleted, recent_floor \
             FROM mailboxes WHERE id = ?1",
        )?
        .query_row([mailbox.0], |row| {
            Ok((
                MailboxStatus {
                    messages: row.get(0)?,
                    unseen: row.get(1)?,
                    recent: 0,
                    uid_next: row.get(2)?,
                    uid_validity: row.get(3)?,
                    highest_modseq: row.get(4)?,
                    size: row.get(5)?,
                    deleted: row.get(6)?,
                },
                row.get::<_, Uid>(7)?,
            ))
        })
        .optional()?;
    let (mut status, recent_floor) = status.ok_or(StoreError::MailboxGone(mailbox))?;
    status.recent = conn
        .prepare_cached("SELECT count(*) FROM messages WHERE mailbox_id = ?1 AND uid >= ?2")?
        .query_row(params![mailbox.0, recent_floor], |row| row.get(0))?;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_name_cases() {
        let cases: &[(&str, Option<&str>)] = &[
            ("INBOX", Some("INBOX")),
            ("inbox", Some("INBOX")),
            ("InBoX/Sent", Some("INBOX/Sent")),
            ("Inboxes", Some("Inboxes")),
            ("Work/Reports", Some("Work/Reports")),
            ("work", Some("work")),
            ("", None),
            ("/a", None),
            ("a/", None),
            ("a//b", None),
            ("a\u{0}b", None),
            ("a\rb", None),
        ];
        for (input, expected) in cases {
            let result = canonical_name(input, 100).ok();
            assert_eq!(result.as_deref(), *expected, "input {input:?}");
        }
    }

    #[test]
    fn canonical_name_length_limit() {
        let at_limit = "a".repeat(100);
        let past_limit = "a".repeat(101);
        assert!(canonical_name(&at_limit, 100).is_ok());
        assert!(matches!(
            canonical_name(&past_limit, 100),
            Err(StoreError::Invalid(_))
        ));
    }

    #[test]
    fn parents_outermost_first() {
        assert_eq!(parents("a/b/c").collect::<Vec<_>>(), vec!["a", "a/b"]);
        assert_eq!(parents("a").count(), 0);
    }
}
