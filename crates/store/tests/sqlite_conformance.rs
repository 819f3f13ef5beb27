//! Runs the conformance suite on `SqliteStore`, each case in its own
//! temporary data directory.

use std::path::PathBuf;
use std::sync::Arc;

use roost_store::MailStore;
use roost_store::conformance;
use roost_store::sqlite::SqliteStore;
use tempfile::TempDir;

fn fresh() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    (dir, store)
}

macro_rules! case {
    ($name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let (_dir, store) = fresh();
            conformance::$name(&store).await;
        }
    };
}

case!(account_creates_default_mailboxes);
case!(create_accounts_skips_existing);
case!(create_mailbox_makes_parents);
case!(delete_mailbox_keeps_children);
case!(rename_mailbox_moves_children);
case!(rename_inbox_moves_messages);
case!(subscriptions_are_names);
case!(append_assigns_ascending_uids);
case!(uids_not_reused_after_expunge);
case!(recreated_mailbox_gets_new_uid_validity);
case!(store_flags_bumps_modseq_on_change);
case!(store_flags_unchanged_since);
case!(copy_shares_bodies);
case!(move_expunges_source);
case!(expunge_all_and_by_uid);
case!(expunged_since_lists_vanished);
case!(snapshot_matches_status);
case!(claim_recent_once);
case!(watch_wakes_on_changes);
case!(deleted_mailbox_is_gone);
case!(delete_account_removes_mail);
case!(large_message_round_trips);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_distinct() {
    let (_dir, store) = fresh();
    conformance::concurrent_appends_are_distinct(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uids_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().to_owned();
    let open = move || -> Box<dyn MailStore> { Box::new(SqliteStore::open(&path).unwrap()) };
    conformance::uids_survive_reopen(&open).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_handle_wakes_watchers() {
    let dir = tempfile::tempdir().unwrap();
    let first = SqliteStore::open(dir.path()).unwrap();
    let second = SqliteStore::open(dir.path()).unwrap();
    conformance::other_handle_wakes_watchers(&first, &second).await;
}
