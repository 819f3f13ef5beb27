//! The index schema and the connection settings every connection uses.
//!
//! Counters that STATUS reports (messages, unseen, deleted, size), the
//! count of expunge records and blob reference counts are kept by triggers, so no write path can forget them
//! and STATUS reads one row.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::{Result, StoreError};

/// The schema version this build writes, kept in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 2;

/// Version 2 adds the change log: one row per mailbox a commit changed,
/// so a process that sees another's commit reads only what changed
/// instead of every mailbox it watches.
const SCHEMA_V2: &str = r#"
CREATE TABLE changes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    mailbox_id INTEGER NOT NULL,
    modseq     INTEGER NOT NULL
);
"#;

const SCHEMA_V1: &str = r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE accounts (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE
);

-- AUTOINCREMENT keeps mailbox ids from being reused after a delete.
CREATE TABLE mailboxes (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id     INTEGER NOT NULL REFERENCES accounts(id),
    name           TEXT NOT NULL,
    uid_validity   INTEGER NOT NULL,
    uid_next       INTEGER NOT NULL DEFAULT 1,
    highest_modseq INTEGER NOT NULL DEFAULT 1,
    recent_floor   INTEGER NOT NULL DEFAULT 1,
    -- Expunge records with a MODSEQ at or below this may have been pruned.
    vanished_floor INTEGER NOT NULL DEFAULT 0,
    expunged       INTEGER NOT NULL DEFAULT 0,
    special_use    TEXT,
    messages       INTEGER NOT NULL DEFAULT 0,
    unseen         INTEGER NOT NULL DEFAULT 0,
    deleted        INTEGER NOT NULL DEFAULT 0,
    size           INTEGER NOT NULL DEFAULT 0,
    UNIQUE (account_id, name)
);

-- One row per body file. `derived` lives here because copies share it.
CREATE TABLE blobs (
    id      INTEGER PRIMARY KEY,
    size    INTEGER NOT NULL,
    refs    INTEGER NOT NULL DEFAULT 0,
    derived BLOB NOT NULL
);
CREATE INDEX blobs_unreferenced ON blobs (id) WHERE refs = 0;

CREATE TABLE messages (
    mailbox_id     INTEGER NOT NULL REFERENCES mailboxes(id),
    uid            INTEGER NOT NULL,
    modseq         INTEGER NOT NULL,
    system_flags   INTEGER NOT NULL,
    keywords       TEXT NOT NULL,
    internal_date  INTEGER NOT NULL,
    date_offset    INTEGER NOT NULL,
    size           INTEGER NOT NULL,
    blob_id        INTEGER NOT NULL REFERENCES blobs(id),
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;

-- Expunged UIDs with the MODSEQ of their expunge, for QRESYNC VANISHED.
CREATE TABLE expunged (
    mailbox_id INTEGER NOT NULL,
    uid        INTEGER NOT NULL,
    modseq     INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX expunged_modseq ON expunged (mailbox_id, modseq);

CREATE TRIGGER expunged_counted_insert AFTER INSERT ON expunged BEGIN
    UPDATE mailboxes SET expunged = expunged + 1 WHERE id = NEW.mailbox_id;
END;

CREATE TRIGGER expunged_counted_delete AFTER DELETE ON expunged BEGIN
    UPDATE mailboxes SET expunged = expunged - 1 WHERE id = OLD.mailbox_id;
END;

CREATE TABLE subscriptions (
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    name       TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
) WITHOUT ROWID;

-- Flag bit 1 is \Seen and bit 8 is \Deleted (crate::system_flag).
CREATE TRIGGER messages_counted_insert AFTER INSERT ON messages BEGIN
    UPDATE mailboxes SET
        messages = messages + 1,
        unseen = unseen + ((NEW.system_flags & 1) = 0),
        deleted = deleted + ((NEW.system_flags & 8) != 0),
        size = size + NEW.size
    WHERE id = NEW.mailbox_id;
    UPDATE blobs SET refs = refs + 1 WHERE id = NEW.blob_id;
END;

CREATE TRIGGER messages_counted_delete AFTER DELETE ON messages BEGIN
    UPDATE mailboxes SET
        messages = messages - 1,
        unseen = unseen - ((OLD.system_flags & 1) = 0),
        deleted = deleted - ((OLD.system_flags & 8) != 0),
        size = size - OLD.size
    WHERE id = OLD.mailbox_id;
    UPDATE blobs SET refs = refs - 1 WHERE id = OLD.blob_id;
END;

CREATE TRIGGER messages_counted_update AFTER UPDATE OF mailbox_id, system_flags ON messages BEGIN
    UPDATE mailboxes SET
        messages = messages - 1,
        unseen = unseen - ((OLD.system_flags & 1) = 0),
        deleted = deleted - ((OLD.system_flags & 8) != 0),
        size = size - OLD.size
    WHERE id = OLD.mailbox_id;
    UPDATE mailboxes SET
        messages = messages + 1,
        unseen = unseen + ((NEW.system_flags & 1) = 0),
        deleted = deleted + ((NEW.system_flags & 8) != 0),
        size = size + NEW.size
    WHERE id = NEW.mailbox_id;
END;
"#;

/// Sets the page cache of `conn` to about `bytes`, at least 1 KiB.
pub fn set_cache_bytes(conn: &Connection, bytes: u64) -> Result<()> {
    // A negative cache_size is a size in KiB rather than in pages.
    let kib = (bytes / 1024).clamp(1, i64::MAX as u64) as i64;
    conn.pragma_update(None, "cache_size", -kib)?;
    Ok(())
}

/// Opens a connection to the index with the settings every connection
/// needs. `synchronous=FULL` makes each commit durable when it returns.
pub fn connect(path: &Path, busy_timeout: Duration) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(busy_timeout)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// Creates the schema on a new database and checks the version of an
/// existing one. Two processes opening a new data directory at once are
/// serialised by the immediate transaction.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    match found {
        0 => {
            tx.execute_batch(SCHEMA_V1)?;
            tx.execute_batch(SCHEMA_V2)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        1 => {
            tx.execute_batch(SCHEMA_V2)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        SCHEMA_VERSION => {}
        _ if found > SCHEMA_VERSION => {
            return Err(StoreError::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        _ => {
            return Err(StoreError::Invalid(format!(
                "unknown database schema version {found}"
            )));
        }
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_one_gains_change_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        let mut conn = connect(&path, Duration::from_secs(5)).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        migrate(&mut conn).unwrap();
        let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let rows: i64 = conn.query_row("SELECT COUNT(*) FROM changes", [], |row| row.get(0)).unwrap();
        assert_eq!(rows, 0);
    }
}
