//! The conformance suite every back end must pass.
//!
//! Each case is a public async function that takes a fresh, empty store
//! (or, where a case needs it, a way to open the same data again) and
//! panics on the first broken expectation. A back end's integration tests
//! call each case once, so a failure names the case. [`run_all`] runs the
//! cases that need only fresh stores, for a quick check of a new back end.
//!
//! The cases test behaviour through [`MailStore`] alone: they know no
//! back end's files, tables or threads.

use std::sync::Arc;
use std::time::Duration;

use crate::{
    AccountId, FlagOp, Flags, InternalDate, MailStore, MailboxId, ModSeq, NewMessage, StoreError,
    Uid, system_flag,
};

/// How long a case waits for a watcher to wake. `MailStore` promises that a
/// change by another process is noticed within a second.
const WAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// Builds a small message whose body names `label`, so bodies differ.
pub fn message(label: &str) -> NewMessage {
    let raw = format!("From: a@example.org\r\nSubject: {label}\r\n\r\nBody of {label}.\r\n");
    NewMessage {
        raw: raw.into_bytes().into(),
        internal_date: InternalDate {
            unix_seconds: 1_700_000_000,
            offset_minutes: 120,
        },
        flags: Flags::default(),
        derived: format!("derived {label}").into_bytes().into(),
    }
}

fn flags(system: u8, keywords: &[&str]) -> Flags {
    Flags {
        system,
        keywords: keywords.iter().map(|keyword| Arc::from(*keyword)).collect(),
    }
}

fn defaults() -> Vec<(String, String)> {
    vec![
        ("Sent".into(), "\\Sent".into()),
        ("Trash".into(), "\\Trash".into()),
    ]
}

async fn setup(store: &dyn MailStore) -> AccountId {
    store
        .account("alice", &defaults())
        .await
        .expect("account creation failed")
}

async fn mailbox_id(store: &dyn MailStore, account: AccountId, name: &str) -> MailboxId {
    store
        .mailbox(account, name)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("mailbox {name:?} not found"))
        .id
}

async fn append_labels(store: &dyn MailStore, mailbox: MailboxId, labels: &[&str]) -> Vec<Uid> {
    let messages = labels.iter().map(|label| message(label)).collect();
    store
        .append(mailbox, messages)
        .await
        .unwrap()
        .iter()
        .map(|appended| appended.uid)
        .collect()
}

async fn names(store: &dyn MailStore, account: AccountId) -> Vec<String> {
    store
        .mailboxes(account)
        .await
        .unwrap()
        .into_iter()
        .map(|info| info.name)
        .collect()
}

async fn uids(store: &dyn MailStore, mailbox: MailboxId) -> Vec<Uid> {
    store
        .snapshot(mailbox)
        .await
        .unwrap()
        .messages
        .iter()
        .map(|entry| entry.uid)
        .collect()
}

/// Runs every case that needs only fresh stores. `make` returns a new,
/// empty store on each call.
pub async fn run_all<S: MailStore>(make: impl Fn() -> S) {
    account_creates_default_mailboxes(&make()).await;
    create_accounts_skips_existing(&make()).await;
    create_mailbox_makes_parents(&make()).await;
    delete_mailbox_keeps_children(&make()).await;
    rename_mailbox_moves_children(&make()).await;
    rename_inbox_moves_messages(&make()).await;
    subscriptions_are_names(&make()).await;
    append_assigns_ascending_uids(&make()).await;
    uids_not_reused_after_expunge(&make()).await;
    recreated_mailbox_gets_new_uid_validity(&make()).await;
    store_flags_bumps_modseq_on_change(&make()).await;
    store_flags_unchanged_since(&make()).await;
    copy_shares_bodies(&make()).await;
    move_expunges_source(&make()).await;
    expunge_all_and_by_uid(&make()).await;
    expunged_since_lists_vanished(&make()).await;
    snapshot_matches_status(&make()).await;
    claim_recent_once(&make()).await;
    watch_wakes_on_changes(&make()).await;
    deleted_mailbox_is_gone(&make()).await;
    delete_account_removes_mail(&make()).await;
    large_message_round_trips(&make()).await;
    concurrent_appends_are_distinct(Arc::new(make())).await;
}

pub async fn account_creates_default_mailboxes(store: &dyn MailStore) {
    let account = setup(store).await;
    assert_eq!(names(store, account).await, vec!["INBOX", "Sent", "Trash"]);

    let sent = store.mailbox(account, "Sent").await.unwrap().unwrap();
    assert_eq!(sent.special_use.as_deref(), Some("\\Sent"));
    let inbox = store
        .mailbox(account, "inbox")
        .await
        .unwrap()
        .expect("INBOX matches any case");
    assert_eq!(inbox.name, "INBOX");
    assert_eq!(inbox.uid_next, 1);

    let again = store.account("alice", &defaults()).await.unwrap();
    assert_eq!(again, account, "a second call must return the same account");
    assert_eq!(
        names(store, account).await.len(),
        3,
        "a second call must not add mailboxes"
    );

    let other = store.account("bob", &[]).await.unwrap();
    assert_ne!(other, account);
    assert_eq!(names(store, other).await, vec!["INBOX"]);
}

pub async fn create_accounts_skips_existing(store: &dyn MailStore) {
    let alice = setup(store).await;
    store.create_mailbox(alice, "Work", None).await.unwrap();

    let listed: Vec<String> = ["alice", "bob", "carol", "bob"].iter().map(|name| name.to_string()).collect();
    let created = store.create_accounts(&listed, &defaults()).await.unwrap();
    assert_eq!(created, 2, "bob and carol are new; alice exists and bob is listed twice");
    assert_eq!(names(store, alice).await, vec!["INBOX", "Sent", "Trash", "Work"]);

    let bob = store.account("bob", &[]).await.unwrap();
    assert_eq!(names(store, bob).await, vec!["INBOX", "Sent", "Trash"]);
    let trash = store.mailbox(bob, "Trash").await.unwrap().unwrap();
    assert_eq!(trash.special_use.as_deref(), Some("\\Trash"));

    let again = store.create_accounts(&listed, &defaults()).await.unwrap();
    assert_eq!(again, 0);

    // Parents of nested defaults are created, duplicates once.
    let nested = vec![
        ("Archive/2024".to_owned(), "\\Archive".to_owned()),
        ("Sent".to_owned(), "\\Sent".to_owned()),
        ("Sent".to_owned(), "\\Sent".to_owned()),
    ];
    assert_eq!(store.create_accounts(&["erin".to_owned()], &nested).await.unwrap(), 1);
    let erin = store.account("erin", &[]).await.unwrap();
    assert_eq!(names(store, erin).await, vec!["Archive", "Archive/2024", "INBOX", "Sent"]);
    let archive = store.mailbox(erin, "Archive").await.unwrap().unwrap();
    assert_eq!(archive.special_use, None);
    let yearly = store.mailbox(erin, "Archive/2024").await.unwrap().unwrap();
    assert_eq!(yearly.special_use.as_deref(), Some("\\Archive"));
    let mut validities = Vec::new();
    for mailbox in store.mailboxes(erin).await.unwrap() {
        validities.push(store.mailbox(erin, &mailbox.name).await.unwrap().unwrap().uid_validity);
    }
    validities.sort_unstable();
    validities.dedup();
    assert_eq!(validities.len(), 4, "every mailbox gets its own UIDVALIDITY");

    let empty = store.create_accounts(&["dave".to_owned(), String::new()], &defaults()).await;
    assert!(matches!(empty, Err(StoreError::Invalid(_))), "{empty:?}");
    assert_eq!(store.create_accounts(&[], &defaults()).await.unwrap(), 0);
}

pub async fn create_mailbox_makes_parents(store: &dyn MailStore) {
    let account = setup(store).await;
    store
        .create_mailbox(account, "Work/2024/Reports", None)
        .await
        .unwrap();
    let all = names(store, account).await;
    assert!(all.contains(&"Work".to_owned()), "parent missing: {all:?}");
    assert!(
        all.contains(&"Work/2024".to_owned()),
        "parent missing: {all:?}"
    );
    assert!(
        all.contains(&"Work/2024/Reports".to_owned()),
        "mailbox missing: {all:?}"
    );

    let exists = store.create_mailbox(account, "Work/2024", None).await;
    assert!(
        matches!(exists, Err(StoreError::MailboxExists(_))),
        "{exists:?}"
    );
    let inbox = store.create_mailbox(account, "inbox", None).await;
    assert!(
        matches!(inbox, Err(StoreError::MailboxExists(_))),
        "{inbox:?}"
    );

    store
        .create_mailbox(account, "work", None)
        .await
        .expect("names other than INBOX are case-sensitive");
    let archive = store
        .create_mailbox(account, "Archive", Some("\\Archive"))
        .await
        .unwrap();
    let info = store.mailbox(account, "Archive").await.unwrap().unwrap();
    assert_eq!(info.id, archive);
    assert_eq!(info.special_use.as_deref(), Some("\\Archive"));

    let invalid = store.create_mailbox(account, "a//b", None).await;
    assert!(
        matches!(invalid, Err(StoreError::Invalid(_))),
        "{invalid:?}"
    );
}

pub async fn delete_mailbox_keeps_children(store: &dyn MailStore) {
    let account = setup(store).await;
    store
        .create_mailbox(account, "Lists/rust", None)
        .await
        .unwrap();
    let lists = mailbox_id(store, account, "Lists").await;
    append_labels(store, lists, &["one"]).await;

    store.delete_mailbox(account, "Lists").await.unwrap();
    let all = names(store, account).await;
    assert!(
        !all.contains(&"Lists".to_owned()),
        "deleted mailbox still listed: {all:?}"
    );
    assert!(
        all.contains(&"Lists/rust".to_owned()),
        "child must survive: {all:?}"
    );

    let missing = store.delete_mailbox(account, "Lists").await;
    assert!(
        matches!(missing, Err(StoreError::MailboxNotFound(_))),
        "{missing:?}"
    );
    let inbox = store.delete_mailbox(account, "Inbox").await;
    assert!(matches!(inbox, Err(StoreError::Forbidden(_))), "{inbox:?}");
}

pub async fn rename_mailbox_moves_children(store: &dyn MailStore) {
    let account = setup(store).await;
    store
        .create_mailbox(account, "Old/a/b", None)
        .await
        .unwrap();
    store.create_mailbox(account, "Older", None).await.unwrap();
    let old = mailbox_id(store, account, "Old").await;
    let validity = store.status(old).await.unwrap().uid_validity;
    append_labels(store, old, &["kept"]).await;

    store
        .rename_mailbox(account, "Old", "New/Place")
        .await
        .unwrap();
    let all = names(store, account).await;
    for expected in ["New", "New/Place", "New/Place/a", "New/Place/a/b", "Older"] {
        assert!(
            all.contains(&expected.to_owned()),
            "{expected} missing: {all:?}"
        );
    }
    assert!(
        !all.iter()
            .any(|name| name.starts_with("Old/") || name == "Old"),
        "old names left: {all:?}"
    );
    let renamed = mailbox_id(store, account, "New/Place").await;
    assert_eq!(renamed, old, "a renamed mailbox keeps its id");
    assert_eq!(store.status(renamed).await.unwrap().messages, 1);
    assert_eq!(store.status(renamed).await.unwrap().uid_validity, validity);

    let missing = store.rename_mailbox(account, "Nowhere", "Somewhere").await;
    assert!(
        matches!(missing, Err(StoreError::MailboxNotFound(_))),
        "{missing:?}"
    );
    let taken = store.rename_mailbox(account, "Older", "Sent").await;
    assert!(
        matches!(taken, Err(StoreError::MailboxExists(_))),
        "{taken:?}"
    );
    let to_inbox = store.rename_mailbox(account, "Older", "inbox").await;
    assert!(
        matches!(to_inbox, Err(StoreError::MailboxExists(_))),
        "{to_inbox:?}"
    );
    let below_itself = store.rename_mailbox(account, "Older", "Older/x").await;
    assert!(below_itself.is_err(), "renaming below itself must fail");
}

pub async fn rename_inbox_moves_messages(store: &dyn MailStore) {
    let account = setup(store).await;
    store
        .create_mailbox(account, "INBOX/child", None)
        .await
        .unwrap();
    let inbox = mailbox_id(store, account, "INBOX").await;
    let moved_uids = append_labels(store, inbox, &["a", "b"]).await;
    let inbox_before = store.status(inbox).await.unwrap();

    store
        .rename_mailbox(account, "INBOX", "Old Mail")
        .await
        .unwrap();

    let inbox_after = store.status(inbox).await.unwrap();
    assert_eq!(inbox_after.messages, 0, "INBOX must be left empty");
    assert_eq!(
        inbox_after.uid_next, inbox_before.uid_next,
        "INBOX UIDs must not be reused"
    );
    assert!(inbox_after.highest_modseq > inbox_before.highest_modseq);
    let target = mailbox_id(store, account, "Old Mail").await;
    assert_eq!(uids(store, target).await, moved_uids);
    assert!(
        names(store, account)
            .await
            .contains(&"INBOX/child".to_owned()),
        "INBOX children stay"
    );

    let later = append_labels(store, inbox, &["c"]).await;
    assert!(
        later[0] > *moved_uids.last().unwrap(),
        "INBOX UIDs must keep ascending"
    );
}

pub async fn subscriptions_are_names(store: &dyn MailStore) {
    let account = setup(store).await;
    store.set_subscribed(account, "Sent", true).await.unwrap();
    store
        .set_subscribed(account, "Does/Not/Exist", true)
        .await
        .unwrap();
    store.set_subscribed(account, "inbox", true).await.unwrap();
    store
        .set_subscribed(account, "Sent", true)
        .await
        .expect("subscribing twice is harmless");
    assert_eq!(
        store.subscriptions(account).await.unwrap(),
        vec!["Does/Not/Exist", "INBOX", "Sent"]
    );

    store.set_subscribed(account, "Sent", false).await.unwrap();
    store
        .set_subscribed(account, "Never", false)
        .await
        .expect("unsubscribing an unknown name is harmless");
    assert_eq!(
        store.subscriptions(account).await.unwrap(),
        vec!["Does/Not/Exist", "INBOX"]
    );
}

pub async fn append_assigns_ascending_uids(store: &dyn MailStore) {
    let account = setup(store).await;
    let inbox = mailbox_id(store, account, "INBOX").await;
    let before = store.status(inbox).await.unwrap();
    let mut flagged = message("flagged");
    flagged.flags = flags(system_flag::FLAGGED, &["$Label1"]);
    let appended = store
        .append(inbox, vec![message("one"), flagged, message("three")])
        .await
        .unwrap();

    let uids: Vec<Uid> = appended.iter().map(|a| a.uid).collect();
    assert_eq!(uids, vec![1, 2, 3]);
    assert!(
        appended
            .iter()
            .all(|a| a.uid_validity == before.uid_validity)
    );
    assert!(appended.iter().all(|a| a.modseq > before.highest_modseq));

    let records = store.messages(inbox, &[3, 1, 99, 2]).await.unwrap();
    let order: Vec<Uid> = records.iter().map(|r| r.uid).collect();
    assert_eq!(
        order,
        vec![3, 1, 2],
        "records come in the order asked, without missing UIDs"
    );
    assert_eq!(records[2].flags, flags(system_flag::FLAGGED, &["$Label1"]));
    assert_eq!(&records[1].derived[..], b"derived one");
    assert_eq!(
        records[1].internal_date,
        InternalDate {
            unix_seconds: 1_700_000_000,
            offset_minutes: 120
        }
    );
    assert_eq!(records[1].size, message("one").raw.len() as u64);
    let raw = store.read_raw(records[1].blob).await.unwrap();
    assert_eq!(&raw[..], &message("one").raw[..]);

    let next = store.append(inbox, vec![message("four")]).await.unwrap();
    assert_eq!(next[0].uid, 4);
    let status = store.status(inbox).await.unwrap();
    assert_eq!(status.uid_next, 5);
    assert_eq!(status.messages, 4);
}

pub async fn uids_not_reused_after_expunge(store: &dyn MailStore) {
    let account = setup(store).await;
    let inbox = mailbox_id(store, account, "INBOX").await;
    append_labels(store, inbox, &["a", "b", "c"]).await;
    store
        .store_flags(
            inbox,
            &[2, 3],
            FlagOp::Add,
            &flags(system_flag::DELETED, &[]),
            None,
        )
        .await
        .unwrap();
    assert_eq!(store.expunge(inbox, None).await.unwrap(), vec![2, 3]);

    let next = append_labels(store, inbox, &["d"]).await;
    assert_eq!(next, vec![4], "expunged UIDs must not be reused");
}

pub async fn recreated_mailbox_gets_new_uid_validity(store: &dyn MailStore) {
    let account = setup(store).await;
    let first = store.create_mailbox(account, "Box", None).await.unwrap();
    append_labels(store, first, &["a"]).await;
    let old_validity = store.status(first).await.unwrap().uid_validity;

    store.delete_mailbox(account, "Box").await.unwrap();
    let second = store.create_mailbox(account, "Box", None).await.unwrap();
    assert_ne!(second, first, "mailbox ids are never reused");
    let status = store.status(second).await.unwrap();
    assert_ne!(
        status.uid_validity, old_validity,
        "a new incarnation needs a new UIDVALIDITY"
    );
    assert_eq!(status.messages, 0);
}

/// Checks that UIDNEXT, UIDs and MODSEQ survive closing the store. `open`
/// opens the same data each time it is called. The store is dropped
/// without any shutdown call, as a crash would leave it.
pub async fn uids_survive_reopen(open: &dyn Fn() -> Box<dyn MailStore>) {
    let (inbox, modseq) = {
        let store = open();
        let account = setup(&*store).await;
        let inbox = mailbox_id(&*store, account, "INBOX").await;
        append_labels(&*store, inbox, &["a", "b"]).await;
        store
            .store_flags(
                inbox,
                &[2],
                FlagOp::Add,
                &flags(system_flag::DELETED, &[]),
                None,
            )
            .await
            .unwrap();
        store.expunge(inbox, None).await.unwrap();
        (inbox, store.status(inbox).await.unwrap().highest_modseq)
    };

    let store = open();
    let account = setup(&*store).await;
    assert_eq!(mailbox_id(&*store, account, "INBOX").await, inbox);
    let status = store.status(inbox).await.unwrap();
    assert_eq!(status.uid_next, 3);
    assert_eq!(status.highest_modseq, modseq);
    assert_eq!(uids(&*store, inbox).await, vec![1]);
    let next = append_labels(&*store, inbox, &["c"]).await;
    assert_eq!(
        next,
        vec![3],
        "a UID used before the reopen must not be reused"
    );
}

pub async fn store_flags_bumps_modseq_on_change(store: &dyn MailStore) {
    let account = setup(store).await;
    let inbox = mailbox_id(store, account, "INBOX").await;
    append_labels(store, inbox, &["a", "b"]).await;
    let start = store.status(inbox).await.unwrap().highest_modseq;

    let added = store
        .store_flags(
            inbox,
            &[1, 2, 77],
            FlagOp::Add,
            &flags(system_flag::SEEN, &["Work"]),
            None,
        )
        .await
        .unwrap();
    let changed: Vec<Uid> = added.changed.iter().map(|entry| entry.uid).collect();
    assert_eq!(changed, vec![1, 2], "UIDs not in the mailbox are skipped");
    let after_add = store.status(inbox).await.unwrap().highest_modseq;
    assert!(after_add > start);
    assert!(
        added
            .changed
            .iter()
            .all(|entry| entry.modseq > start && entry.modseq <= after_add)
    );

    let repeated = store
        .store_flags(
            inbox,
            &[1, 2],
            FlagOp::Add,
            &flags(system_flag::SEEN, &["work"]),
            None,
        )
        .await
        .unwrap();
    assert!(
        repeated.changed.is_empty(),
        "no flag changed, so nothing is reported: {repeated:?}"
    );
    assert_eq!(
        store.status(inbox).await.unwrap().highest_modseq,
        after_add,
        "no change, no new MODSEQ"
    );

    let removed = store
        .store_flags(
            inbox,
            &[2],
            FlagOp::Remove,
            &flags(system_flag::SEEN, &["WORK"]),
            None,
        )
        .await
        .unwrap();
    assert_eq!(removed.changed.len(), 1);
    assert_eq!(removed.changed[0].flags, Flags::default());

    let replaced = store
        .store_flags(
            inbox,
            &[1],
            FlagOp::Replace,
            &flags(system_flag::ANSWERED, &["Done"]),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        replaced.changed[0].flags,
        flags(system_flag::ANSWERED, &["Done"])
    );

    let snapshot = store.snapshot(inbox).await.unwrap();
    assert_eq!(
        snapshot.messages[0].flags,
        flags(system_flag::ANSWERED, &["Done"])
    );
    assert_eq!(snapshot.messages[1].flags, Flags::default());
    assert_eq!(snapshot.messages[0].modseq, replaced.changed[0].modseq);
    assert_eq!(snapshot.messages[1].modseq, removed.changed[0].modseq);
    let keywords: Vec<&str> = snapshot.keywords.iter().map(|k| &**k).collect();
    assert_eq!(keywords, vec!["Done"]);

    let status = store.status(inbox).await.unwrap();
    assert_eq!(status.unseen, 2);
}

pub async fn store_flags_unchanged_since(store: &dyn MailStore) {
    let account = setup(store).await;
    let inbox = mailbox_id(store, account, "INBOX").await;
    append_labels(store, inbox, &["a", "b"]).await;
    let base = store.status(inbox).await.unwrap().highest_modseq;
    let first = store
        .store_flags(
            inbox,
            &[1],
            FlagOp::Add,
            &flags(system_flag::SEEN, &[]),
            None,
        )
        .await
        .unwrap();
    let first_modseq = first.changed[0].modseq;

    let guarded = store
        .store_flags(
            inbox,
            &[1, 2],
            FlagOp::Add,
            &flags(system_flag::FLAGGED, &[]),
            Some(base),
        )
        .await
        .unwrap();
    assert_eq!(guarded.failed, vec![1], "message 1 changed after {base}");
    let changed: Vec<Uid> = guarded.changed.iter().map(|entry| entry.uid).collect();
    assert_eq!(changed, vec![2]);

    let at_modseq = store
        .store_flags(
            inbox,
            &[1],
            FlagOp::Add,
            &flags(system_flag::FLAGGED, &[]),
            Some(first_modseq),
        )
        .await
        .unwrap();
    assert!(
        at_modseq.failed.is_empty(),
        "a MODSEQ equal to UNCHANGEDSINCE passes"
    );
    assert_eq!(at_modseq.changed.len(), 1);
}

pub async fn copy_shares_bodies(store: &dyn MailStore) {
    let account = setup(store).await;
    let inbox = mailbox_id(store, account, "INBOX").await;
    let trash = mailbox_id(store, account, "Trash").await;
    append_labels(store, inbox, &["a", "b", "c"]).await;
    store
        .store_flags(
            inbox,
            &[3],
            FlagOp::Add,
            &flags(system_flag::FLAGGED, &["Keep"]),
            None,
        )
        .await
        .unwrap();

    let copied = store.copy(inbox, &[3, 1, 50], trash).await.unwrap();
    assert_eq!(
        copied.uids,
        vec![(1, 1), (3, 2)],
        "pairs in ascending source order"
    );
    assert_eq!(
        copied.uid_validity,
        store.status(trash).await.unwrap().uid_validity
    );
    assert_eq!(
        uids(store, inbox).await,
        vec![1, 2, 3],
        "copy leaves the source alone"
    );

    let source = store.messages(inbox, &[3]).await.unwrap();
    let target = store.messages(trash, &[2]).await.unwrap();
    assert_eq!(target[0].flags, source[0].flags, "flags are copied");
    assert_eq!(target[0].blob, source[0].blob, "the body is shared");
    assert_eq!(target[0].derived, source[0].derived);

    // The shared body must outlive the source message and go with the last copy.
    let blob = source[0].blob;
    store
        .store_flags(
            inbox,
            &[3],
            FlagOp::Add,
            &flags(system_flag::DELETED, &[]),
            None,
        )
        .await
        .unwrap();
    store.expunge(inbox, None).await.unwrap();
    let raw = store
        .read_raw(blob)
        .await
        .expect("the copy still needs the body");
    assert_eq!(&raw[..], &message("c").raw[..]);
    store
        .store_flags(
            trash,
            &[2],
            FlagOp::Add,
            &flags(system_flag::DELETED, &[]),
            None,
        )
        .await
        .unwrap();
    store.expunge(trash, None).await.unwrap();
    let gone = store.read_raw(blob).await;
    assert!(matches!(gone, Err(StoreError::BlobNotFound(_))), "{gone:?}");

    let other = store.account("mallory", &[]).await.unwrap();
    let foreign = mailbox_id(store, other, "INBOX").await;
    let across = store.copy(inbox, &[1], foreign).await;
    assert!(across.is_err(), "copying between accounts must fail");
}

pub async fn move_expunges_source(store: &dyn MailStore) {
    let account = setup(store).await;
    let inbox = mailbox_id(store, account, "INBOX").await;
    let trash = mailbox_id(store, account, "Trash").await;
    append_labels(store, inbox, &["a", "b", "c"]).await;
    let source_before = store.status(inbox).await.unwrap().highest_modseq;

    let moved = store.move_messages(inbox, &[1, 3], trash).await.unwrap();
    assert_eq!(moved.uids, vec![(1, 1), (3, 2)]);
    assert_eq!(uids(store, inbox).await, vec![2]);
    assert_eq!(uids(store, trash).await, vec![1, 2]);
    assert!(store.status(inbox).await.unwrap().highest_modseq > source_before);
    let body = store.messages(trash, &[2]).await.unwrap();
    assert_eq!(
        &store.read_raw(body[0].blob).await.unwrap()[..],
        &message("c").raw[..]
    );

    let nothing = store.move_messages(inbox, &[40], trash).await.unwrap();
    assert!(nothing.uids.is_empty());
}

pub async fn expunge_all_and_by_uid(store: &dyn MailStore) {
    let account = setup(store).await;
    let inbox = mailbox_id(store, account, "INBOX").await;
    append_labels(store, inbox, &["a", "b", "c", "d"]).await;
    store
        .store_flags(
            inbox,
            &[1, 2, 4],
            FlagOp::Add,
            &flags(system_flag::DELETED, &[]),
            None,
        )
        .await
        .unwrap();
    assert_eq!(store.status(inbox).await.unwrap().deleted, 3);

    let before = store.status(inbox).await.unwrap().highest_modseq;
    assert_eq!(
        store.expunge(inbox, Some(&[4, 3])).await.unwrap(),
        vec![4],
        "only \\Deleted among the given UIDs"
    );
    assert!(store.status(inbox).await.unwrap().highest_modseq > before);
    assert_eq!(store.expunge(inbox, None).await.unwrap(), vec![1, 2]);
    assert_eq!(uids(store, inbox).await, vec![3]);

    let unchanged = store.status(inbox).await.unwrap().highest_modseq;
    assert!(store.expunge(inbox, None).await.unwrap().is_empty());
    assert_eq!(
        store.status(inbox).await.unwrap().highest_modseq,
        unchanged,
        "an empty expunge changes nothing"
    );
}

pub async fn expunged_since_lists_vanished(store: &dyn MailStore) {
    let account = setup(store).await;
    let inbox = mailbox_id(store, account, "INBOX").await;
    let trash = mailbox_id(store, account, "Trash").await;
    append_labels(store, inbox, &["a", "b", "c", "d"]).await;
    let start = store.status(inbox).await.unwrap().highest_modseq;

    store
        .store_flags(
            inbox,
            &[2],
            FlagOp::Add,
            &flags(system_flag::DELETED, &[]),
            None,
        )
        .await
        .unwrap();
    store.expunge(inbox, None).await.unwrap();
    let after_expunge = store.status(inbox).await.unwrap().highest_modseq;
    store.move_messages(inbox, &[4], trash).await.unwrap();

    let all = store.expunged_since(inbox, start).await.unwrap();
    assert_eq!(all.uids, vec![2, 4], "expunged and moved UIDs both vanish");
    assert!(all.complete);
    let later = store.expunged_since(inbox, after_expunge).await.unwrap();
    assert_eq!(later.uids, vec![4], "only expunges after the given MODSEQ");
    let none = store
        .expunged_since(inbox, store.status(inbox).await.unwrap().highest_modseq)
        .await
        .unwrap();
    assert!(none.uids.is_empty());
    assert!(
        store
            .expunged_since(trash, 0)
            .await
            .unwrap()
            .uids
            .is_empty(),
        "a copy target loses nothing"
    );

    store
        .rename_mailbox(account, "INBOX", "Archive")
        .await
        .unwrap();
    let renamed = store.expunged_since(inbox, after_expunge).await.unwrap();
    assert_eq!(
        renamed.uids,
        vec![1, 3, 4],
        "messages moved out by renaming INBOX vanish from it"
    );
}

pub async fn snapshot_matches_status(store: &dyn MailStore) {
    let account = setup(store).await;
    let inbox = mailbox_id(store, account, "INBOX").await;
    append_labels(store, inbox, &["a", "b", "c"]).await;
    store
        .store_flags(
            inbox,
            &[2],
            FlagOp::Add,
            &flags(system_flag::SEEN, &[]),
            None,
        )
        .await
        .unwrap();
    store
        .store_flags(
            inbox,
            &[3],
            FlagOp::Add,
            &flags(system_flag::DELETED, &[]),
            None,
        )
        .await
        .unwrap();

    let snapshot = store.snapshot(inbox).await.unwrap();
    let status = store.status(inbox).await.unwrap();
    assert_eq!(snapshot.messages.len() as u32, status.messages);
    assert_eq!(snapshot.highest_modseq, status.highest_modseq);
    assert_eq!(snapshot.uid_next, status.uid_next);
    assert_eq!(snapshot.uid_validity, status.uid_validity);
    assert!(
        snapshot
            .messages
            .iter()
            .all(|entry| entry.modseq <= snapshot.highest_modseq)
    );
    assert_eq!(status.unseen, 2);
    assert_eq!(status.deleted, 1);
    let size: u64 = ["a", "b", "c"]
        .iter()
        .map(|label| message(label).raw.len() as u64)
        .sum();
    assert_eq!(status.size, size);

    // A snapshot is immutable: later changes do not show in it.
    store.append(inbox, vec![message("d")]).await.unwrap();
    assert_eq!(snapshot.messages.len(), 3);
    let later = store.snapshot(inbox).await.unwrap();
    assert_eq!(later.messages.len(), 4);
    assert!(later.highest_modseq > snapshot.highest_modseq);
}

pub async fn claim_recent_once(store: &dyn MailStore) {
    let account = setup(store).await;
    let inbox = mailbox_id(store, account, "INBOX").await;
    append_labels(store, inbox, &["a", "b"]).await;
    assert_eq!(store.status(inbox).await.unwrap().recent, 2);

    assert_eq!(store.claim_recent(inbox).await.unwrap(), vec![1, 2]);
    assert_eq!(store.status(inbox).await.unwrap().recent, 0);
    assert!(
        store.claim_recent(inbox).await.unwrap().is_empty(),
        "another session sees them as not recent"
    );

    append_labels(store, inbox, &["c"]).await;
    assert_eq!(store.status(inbox).await.unwrap().recent, 1);
    assert_eq!(store.claim_recent(inbox).await.unwrap(), vec![3]);
}

/// Waits until the receiver's value is at least `modseq`.
async fn wait_for(receiver: &mut crate::ChangeReceiver, modseq: ModSeq, what: &str) {
    let reached = tokio::time::timeout(WAKE_TIMEOUT, receiver.wait_until(modseq)).await;
    match reached {
        Ok(Ok(())) => {}
        Ok(Err(_)) => panic!("change channel closed while waiting for {what}"),
        Err(_) => panic!(
            "watcher not woken within {WAKE_TIMEOUT:?} after {what}: its value is {}",
            receiver.current()
        ),
    }
}

pub async fn watch_wakes_on_changes(store: &dyn MailStore) {
    let account = setup(store).await;
    let inbox = mailbox_id(store, account, "INBOX").await;
    let mut receiver = store.watch(inbox);
    assert_eq!(
        receiver.mark_seen(),
        store.status(inbox).await.unwrap().highest_modseq
    );

    let appended = store.append(inbox, vec![message("a")]).await.unwrap();
    wait_for(&mut receiver, appended[0].modseq, "an append").await;

    let changed = store
        .store_flags(
            inbox,
            &[1],
            FlagOp::Add,
            &flags(system_flag::DELETED, &[]),
            None,
        )
        .await
        .unwrap();
    wait_for(&mut receiver, changed.changed[0].modseq, "a flag change").await;

    store.expunge(inbox, None).await.unwrap();
    let expunged = store.status(inbox).await.unwrap().highest_modseq;
    wait_for(&mut receiver, expunged, "an expunge").await;

    let mut second = store.watch(inbox);
    assert_eq!(
        second.mark_seen(),
        expunged,
        "a new watcher starts at the current MODSEQ"
    );
}

/// Checks that a change made through `second`, a separate handle on the
/// same data (as another process would open it), wakes watchers of
/// `first` within a second.
pub async fn other_handle_wakes_watchers(first: &dyn MailStore, second: &dyn MailStore) {
    let account = setup(first).await;
    let inbox = mailbox_id(first, account, "INBOX").await;
    let mut receiver = first.watch(inbox);

    let same_account = second.account("alice", &defaults()).await.unwrap();
    assert_eq!(same_account, account);
    let appended = second
        .append(inbox, vec![message("delivered")])
        .await
        .unwrap();
    wait_for(
        &mut receiver,
        appended[0].modseq,
        "an append by another handle",
    )
    .await;
    assert_eq!(uids(first, inbox).await, vec![appended[0].uid]);

    let changed = second
        .store_flags(
            inbox,
            &[appended[0].uid],
            FlagOp::Add,
            &flags(system_flag::SEEN, &[]),
            None,
        )
        .await
        .unwrap();
    wait_for(
        &mut receiver,
        changed.changed[0].modseq,
        "a flag change by another handle",
    )
    .await;
}

pub async fn deleted_mailbox_is_gone(store: &dyn MailStore) {
    let account = setup(store).await;
    let doomed = store.create_mailbox(account, "Doomed", None).await.unwrap();
    append_labels(store, doomed, &["a"]).await;
    let mut receiver = store.watch(doomed);
    let held = receiver.mark_seen();

    store.delete_mailbox(account, "Doomed").await.unwrap();
    wait_for(&mut receiver, held + 1, "a delete").await;
    assert!(matches!(
        store.status(doomed).await,
        Err(StoreError::MailboxGone(_))
    ));
    assert!(matches!(
        store.snapshot(doomed).await,
        Err(StoreError::MailboxGone(_))
    ));
    let appended = store.append(doomed, vec![message("late")]).await;
    assert!(
        matches!(appended, Err(StoreError::MailboxGone(_))),
        "{appended:?}"
    );
    assert!(store.mailbox(account, "Doomed").await.unwrap().is_none());
}

pub async fn delete_account_removes_mail(store: &dyn MailStore) {
    let account = setup(store).await;
    let inbox = mailbox_id(store, account, "INBOX").await;
    append_labels(store, inbox, &["a"]).await;
    let blob = store.messages(inbox, &[1]).await.unwrap()[0].blob;
    store.set_subscribed(account, "Sent", true).await.unwrap();

    store.delete_account("alice").await.unwrap();
    assert!(matches!(
        store.status(inbox).await,
        Err(StoreError::MailboxGone(_))
    ));
    assert!(matches!(
        store.read_raw(blob).await,
        Err(StoreError::BlobNotFound(_))
    ));
    let missing = store.delete_account("alice").await;
    assert!(
        matches!(missing, Err(StoreError::AccountNotFound(_))),
        "{missing:?}"
    );

    let fresh = setup(store).await;
    assert_ne!(fresh, account);
    assert!(store.subscriptions(fresh).await.unwrap().is_empty());
}

pub async fn large_message_round_trips(store: &dyn MailStore) {
    let account = setup(store).await;
    let inbox = mailbox_id(store, account, "INBOX").await;
    // Four MiB with every byte value, so no byte is changed in storage.
    let mut raw = b"Subject: large\r\n\r\n".to_vec();
    raw.extend((0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8));
    let mut large = message("large");
    large.raw = raw.clone().into();

    let appended = store.append(inbox, vec![large]).await.unwrap();
    let record = store
        .messages(inbox, &[appended[0].uid])
        .await
        .unwrap()
        .remove(0);
    assert_eq!(record.size, raw.len() as u64);
    let read = store.read_raw(record.blob).await.unwrap();
    assert!(read[..] == raw[..], "the body must come back byte for byte");
}

/// Appends 200 messages from 20 concurrent tasks and checks that every
/// one is stored with a distinct UID.
pub async fn concurrent_appends_are_distinct(store: Arc<dyn MailStore>) {
    const TASKS: u32 = 20;
    const PER_TASK: u32 = 10;
    let account = setup(&*store).await;
    let inbox = mailbox_id(&*store, account, "INBOX").await;

    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let store = store.clone();
        tasks.spawn(async move {
            let mut uids = Vec::new();
            for index in 0..PER_TASK {
                let appended = store
                    .append(inbox, vec![message(&format!("{task}-{index}"))])
                    .await
                    .unwrap();
                uids.push(appended[0].uid);
            }
            uids
        });
    }
    let mut all = Vec::new();
    while let Some(uids) = tasks.join_next().await {
        all.extend(uids.expect("append task panicked"));
    }

    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len() as u32, TASKS * PER_TASK, "UIDs must be distinct");
    let stored = uids(&*store, inbox).await;
    assert_eq!(stored, all, "every returned UID must be stored");
    assert_eq!(
        store.status(inbox).await.unwrap().messages,
        TASKS * PER_TASK
    );
}
