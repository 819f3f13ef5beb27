//! Kills a process in the middle of appending and checks that the store it
//! leaves behind is consistent.
//!
//! The test re-runs its own test binary as the child process, selected by
//! an environment variable. SIGKILL stops the process but not the kernel,
//! so this checks the ordering of files and commits against a process
//! crash. It does not simulate power loss, which would also drop writes
//! still in the page cache.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use roost_store::MailStore;
use roost_store::conformance::message;
use roost_store::sqlite::SqliteStore;

const CHILD_DIR_VARIABLE: &str = "ROOST_STORE_CRASH_CHILD_DIR";
/// Maximum number of appends by the child, so it stops by itself if never
/// killed.
const CHILD_APPENDS_MAX: u32 = 2000;
/// Messages that must be stored before the child is killed.
const STORED_BEFORE_KILL: u32 = 20;

#[test]
fn killed_appender_leaves_consistent_store() {
    if let Ok(dir) = std::env::var(CHILD_DIR_VARIABLE) {
        append_until_killed(&dir);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();

    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "killed_appender_leaves_consistent_store",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_VARIABLE, dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("failed to start the child process");
    let mut child = KillOnDrop(child);

    // Watch the child's progress through a store of our own, as the
    // server watches `roost deliver`.
    let watcher = wait_for_store(dir.path());
    let deadline = Instant::now() + Duration::from_secs(30);
    runtime.block_on(async {
        let account = loop {
            if let Ok(account) = watcher.account("crash", &[]).await {
                break account;
            }
            assert!(
                Instant::now() < deadline,
                "the child never created its account"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let inbox = watcher.mailbox(account, "INBOX").await.unwrap().unwrap().id;
        while watcher.status(inbox).await.unwrap().messages < STORED_BEFORE_KILL {
            assert!(
                Instant::now() < deadline,
                "the child stored too few messages in time"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    child.0.kill().expect("failed to kill the child process");
    let status = child.0.wait().unwrap();
    assert!(
        !status.success(),
        "the child must have been killed, not finished"
    );
    drop(watcher);

    let store = SqliteStore::open(dir.path()).unwrap();
    runtime.block_on(check_consistent(&store));
}

/// Kills the child if the test fails before killing it on purpose.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Opens the store, retrying while the child is still creating it.
fn wait_for_store(dir: &std::path::Path) -> SqliteStore {
    for _ in 0..500 {
        if dir.join("index.sqlite").exists()
            && let Ok(store) = SqliteStore::open(dir)
        {
            return store;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the child never created the store in {}", dir.display());
}

fn append_until_killed(dir: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open(std::path::Path::new(dir)).unwrap();
        let account = store.account("crash", &[]).await.unwrap();
        let inbox = store.mailbox(account, "INBOX").await.unwrap().unwrap().id;
        for index in 0..CHILD_APPENDS_MAX {
            store
                .append(inbox, vec![message(&index.to_string())])
                .await
                .unwrap();
        }
    });
}

async fn check_consistent(store: &SqliteStore) {
    let account = store.account("crash", &[]).await.unwrap();
    let inbox = store.mailbox(account, "INBOX").await.unwrap().unwrap().id;
    let status = store.status(inbox).await.unwrap();
    let snapshot = store.snapshot(inbox).await.unwrap();
    assert!(status.messages >= STORED_BEFORE_KILL);
    assert_eq!(snapshot.messages.len() as u32, status.messages);

    let uids: Vec<u32> = snapshot.messages.iter().map(|entry| entry.uid).collect();
    let expected: Vec<u32> = (1..=status.messages).collect();
    assert_eq!(uids, expected, "one append at a time leaves dense UIDs");
    assert!(status.uid_next > *uids.last().unwrap());

    // Every committed message must have its body, byte for byte.
    for record in store.messages(inbox, &uids).await.unwrap() {
        let label = String::from_utf8(record.derived.to_vec())
            .unwrap()
            .replace("derived ", "");
        let raw = store
            .read_raw(record.blob)
            .await
            .unwrap_or_else(|err| panic!("body of UID {} lost: {err}", record.uid));
        assert_eq!(
            &raw[..],
            &message(&label).raw[..],
            "body of UID {}",
            record.uid
        );
        assert_eq!(
            label,
            (record.uid - 1).to_string(),
            "messages are stored in append order"
        );
    }

    let next = store.append(inbox, vec![message("after")]).await.unwrap();
    assert_eq!(
        next[0].uid, status.uid_next,
        "the first UID after the crash is UIDNEXT"
    );
}
