//! Tests of `SqliteStore` behaviour that the shared conformance suite
//! cannot express: its files on disk, its schema version and its options.

use std::fs::{self, File};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use roost_store::conformance::message;
use roost_store::sqlite::{SqliteOptions, SqliteStore};
use roost_store::{MailStore, StoreError};

/// Returns the paths of every file under `blobs/`.
fn body_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for fanout in fs::read_dir(dir.join("blobs")).unwrap() {
        for entry in fs::read_dir(fanout.unwrap().path()).unwrap() {
            files.push(entry.unwrap().path());
        }
    }
    files
}

fn age(path: &Path) {
    let old = SystemTime::now() - Duration::from_secs(2 * 3600);
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(old)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_removes_old_orphan_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let referenced = {
        let store = SqliteStore::open(dir.path()).unwrap();
        let account = store.account("alice", &[]).await.unwrap();
        let inbox = store.mailbox(account, "INBOX").await.unwrap().unwrap().id;
        store.append(inbox, vec![message("kept")]).await.unwrap();
        store.messages(inbox, &[1]).await.unwrap().remove(0).blob
    };
    let kept_file = body_files(dir.path()).pop().unwrap();
    age(&kept_file);
    // Files as a crash would leave them: a body never committed and a
    // temporary file never linked, both old, and a new one that another
    // process might still commit.
    let orphan = dir.path().join("blobs/07/0000000000000007");
    let temp = dir.path().join("blobs/08/0000000000000008.tmp");
    let recent = dir.path().join("blobs/09/0000000000000009");
    for path in [&orphan, &temp, &recent] {
        fs::write(path, b"partial").unwrap();
    }
    age(&orphan);
    age(&temp);

    let store = SqliteStore::open(dir.path()).unwrap();
    for _ in 0..500 {
        if !orphan.exists() && !temp.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!orphan.exists(), "an old unreferenced body must be removed");
    assert!(!temp.exists(), "an old temporary file must be removed");
    assert!(
        recent.exists(),
        "a recent unreferenced body may still be committed"
    );
    assert!(kept_file.exists(), "a referenced body must stay");
    assert_eq!(
        &store.read_raw(referenced).await.unwrap()[..],
        &message("kept").raw[..]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_schema_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path()).unwrap());
    let conn = rusqlite::Connection::open(dir.path().join("index.sqlite")).unwrap();
    conn.pragma_update(
        None,
        "user_version",
        roost_store::sqlite::SCHEMA_VERSION + 1,
    )
    .unwrap();
    drop(conn);

    let opened = SqliteStore::open(dir.path());
    assert!(
        matches!(opened, Err(StoreError::SchemaTooNew { .. })),
        "{:?}",
        opened.err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_append_leaves_no_body_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let account = store.account("alice", &[]).await.unwrap();
    let doomed = store.create_mailbox(account, "Doomed", None).await.unwrap();
    store.delete_mailbox(account, "Doomed").await.unwrap();

    let appended = store.append(doomed, vec![message("a"), message("b")]).await;
    assert!(
        matches!(appended, Err(StoreError::MailboxGone(_))),
        "{appended:?}"
    );
    assert!(
        body_files(dir.path()).is_empty(),
        "left behind: {:?}",
        body_files(dir.path())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expunged_body_file_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let account = store.account("alice", &[]).await.unwrap();
    let inbox = store.mailbox(account, "INBOX").await.unwrap().unwrap().id;
    store.append(inbox, vec![message("a")]).await.unwrap();
    assert_eq!(body_files(dir.path()).len(), 1);

    let deleted = roost_store::Flags {
        system: roost_store::system_flag::DELETED,
        keywords: Vec::new(),
    };
    store
        .store_flags(inbox, &[1], roost_store::FlagOp::Add, &deleted, None)
        .await
        .unwrap();
    store.expunge(inbox, None).await.unwrap();
    assert!(
        body_files(dir.path()).is_empty(),
        "left behind: {:?}",
        body_files(dir.path())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailbox_name_length_limit() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        mailbox_name_bytes_max: 16,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open_with(dir.path(), options).unwrap();
    let account = store.account("alice", &[]).await.unwrap();

    store
        .create_mailbox(account, &"a".repeat(16), None)
        .await
        .expect("a name at the limit is accepted");
    let past = store.create_mailbox(account, &"b".repeat(17), None).await;
    assert!(matches!(past, Err(StoreError::Invalid(_))), "{past:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_write_queue_still_serves_everyone() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        write_queue_max: 1,
        write_batch_max: 1,
        readers_max: 1,
        ..SqliteOptions::default()
    };
    let store = Arc::new(SqliteStore::open_with(dir.path(), options).unwrap());
    let account = store.account("alice", &[]).await.unwrap();
    let inbox = store.mailbox(account, "INBOX").await.unwrap().unwrap().id;

    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..8 {
        let store = store.clone();
        tasks.spawn(async move {
            let appended = store
                .append(inbox, vec![message(&format!("{task}"))])
                .await
                .unwrap();
            store.snapshot(inbox).await.unwrap();
            appended[0].uid
        });
    }
    let mut uids = Vec::new();
    while let Some(uid) = tasks.join_next().await {
        uids.push(uid.unwrap());
    }
    uids.sort_unstable();
    assert_eq!(uids, (1..=8).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expunge_records_pruned_past_limit() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        expunged_per_mailbox_max: 2,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open_with(dir.path(), options).unwrap();
    let account = store.account("alice", &[]).await.unwrap();
    let inbox = store.mailbox(account, "INBOX").await.unwrap().unwrap().id;
    let messages = (0..3).map(|i| message(&i.to_string())).collect();
    store.append(inbox, messages).await.unwrap();
    let start = store.status(inbox).await.unwrap().highest_modseq;
    let deleted = roost_store::Flags {
        system: roost_store::system_flag::DELETED,
        keywords: Vec::new(),
    };

    // Two expunges: exactly at the limit, nothing is pruned.
    let mut after = Vec::new();
    for uid in [1, 2] {
        store
            .store_flags(inbox, &[uid], roost_store::FlagOp::Add, &deleted, None)
            .await
            .unwrap();
        store.expunge(inbox, None).await.unwrap();
        after.push(store.status(inbox).await.unwrap().highest_modseq);
    }
    let at_limit = store.expunged_since(inbox, start).await.unwrap();
    assert_eq!(at_limit.uids, vec![1, 2]);
    assert!(at_limit.complete);

    // A third expunge is one past the limit, so the oldest record goes.
    store
        .store_flags(inbox, &[3], roost_store::FlagOp::Add, &deleted, None)
        .await
        .unwrap();
    store.expunge(inbox, None).await.unwrap();
    let past_limit = store.expunged_since(inbox, start).await.unwrap();
    assert_eq!(past_limit.uids, vec![2, 3]);
    assert!(!past_limit.complete, "the record of UID 1 was pruned");
    let since_first = store.expunged_since(inbox, after[0]).await.unwrap();
    assert_eq!(since_first.uids, vec![2, 3]);
    assert!(
        since_first.complete,
        "nothing after the first expunge was pruned"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailbox_count_limit() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        mailboxes_per_account_max: 3,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open_with(dir.path(), options).unwrap();
    let account = store.account("alice", &[]).await.unwrap();

    store.create_mailbox(account, "a", None).await.unwrap();
    store
        .create_mailbox(account, "b", None)
        .await
        .expect("the third mailbox is at the limit");
    let past = store.create_mailbox(account, "c", None).await;
    assert!(matches!(past, Err(StoreError::LimitExceeded(_))), "{past:?}");

    store.delete_mailbox(account, "b").await.unwrap();
    let with_parent = store.create_mailbox(account, "x/y", None).await;
    assert!(
        matches!(with_parent, Err(StoreError::LimitExceeded(_))),
        "{with_parent:?}"
    );
    assert!(
        store.mailbox(account, "x").await.unwrap().is_none(),
        "a rejected create leaves no parent"
    );

    store.create_mailbox(account, "b", None).await.unwrap();
    let renamed = store.rename_mailbox(account, "a", "p/q").await;
    assert!(
        matches!(renamed, Err(StoreError::LimitExceeded(_))),
        "{renamed:?}"
    );
    assert!(
        store.mailbox(account, "a").await.unwrap().is_some(),
        "a rejected rename changes nothing"
    );
    assert!(store.mailbox(account, "p").await.unwrap().is_none());
}

fn change_log_rows(dir: &Path) -> i64 {
    let conn = rusqlite::Connection::open(dir.join("index.sqlite")).unwrap();
    conn.query_row("SELECT COUNT(*) FROM changes", [], |row| row.get(0)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_log_kept_to_limit() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions { change_log_rows_max: 3, ..SqliteOptions::default() };
    let store = SqliteStore::open_with(dir.path(), options).unwrap();
    let account = store.account("alice", &[]).await.unwrap();
    let inbox = store.mailbox(account, "INBOX").await.unwrap().unwrap().id;
    let before = change_log_rows(dir.path());
    for (appended, expected) in [(1, 1), (2, 2), (3, 3), (4, 3), (5, 3)] {
        store.append(inbox, vec![message(&format!("{appended}"))]).await.unwrap();
        assert_eq!(change_log_rows(dir.path()), (before + expected).min(3), "after {appended} appends");
    }
}

/// Waits until `receiver` holds at least `modseq`, or fails after 5 s.
async fn wait_for_modseq(receiver: &mut roost_store::ChangeReceiver, modseq: roost_store::ModSeq) {
    tokio::time::timeout(Duration::from_secs(5), receiver.wait_until(modseq))
        .await
        .expect("the change reached the other store within 5 s")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_process_changes_reach_watchers() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions { poll_interval: Duration::from_millis(50), change_log_rows_max: 4, ..SqliteOptions::default() };
    let watcher = SqliteStore::open_with(dir.path(), options.clone()).unwrap();
    let writer = SqliteStore::open_with(dir.path(), options).unwrap();
    let account = writer.account("alice", &[]).await.unwrap();
    let inbox = writer.mailbox(account, "INBOX").await.unwrap().unwrap().id;
    let mut receiver = watcher.watch(inbox);

    // One change: read from the change log.
    writer.append(inbox, vec![message("one")]).await.unwrap();
    let modseq = writer.mailbox(account, "INBOX").await.unwrap().unwrap().highest_modseq;
    wait_for_modseq(&mut receiver, modseq).await;

    // More changes than the log keeps between two polls: the watcher falls
    // back to reading the mailbox itself and still sees the last one.
    let mut appends = Vec::new();
    for n in 0..20 {
        appends.push(writer.append(inbox, vec![message(&format!("burst {n}"))]));
    }
    for append in appends {
        append.await.unwrap();
    }
    let modseq = writer.mailbox(account, "INBOX").await.unwrap().unwrap().highest_modseq;
    wait_for_modseq(&mut receiver, modseq).await;
    assert_eq!(receiver.current(), modseq);
}
