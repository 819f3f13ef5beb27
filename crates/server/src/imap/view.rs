//! Mailbox views shared between sessions.
//!
//! A selected session does not keep its own copy of the message list. It
//! holds an `Arc` of the snapshot whose sequence numbers it has announced
//! to its client; sessions that are up to date share the same snapshot
//! through the [`ViewRegistry`]. A session that may not yet be told of
//! expunges (during FETCH, STORE or SEARCH, RFC 3501 section 7.4.1) keeps
//! its older snapshot until it may, so its sequence numbers stay valid.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use roost_store::{MailStore, MailboxId, ModSeq, Snapshot, Uid};

/// The newest snapshot of every mailbox some session has open.
#[derive(Default)]
pub struct ViewRegistry {
    latest: Mutex<HashMap<MailboxId, Weak<Snapshot>>>,
}

impl ViewRegistry {
    /// Returns a snapshot of `mailbox` at least as new as `modseq`, shared
    /// with every other session that asked for it since the last change.
    pub async fn current(
        &self,
        store: &dyn MailStore,
        mailbox: MailboxId,
        modseq: ModSeq,
    ) -> roost_store::Result<Arc<Snapshot>> {
        if let Some(snapshot) = self.cached(mailbox, modseq) {
            return Ok(snapshot);
        }
        let snapshot = store.snapshot(mailbox).await?;
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        // Another session may have loaded a newer one meanwhile; keep the newest.
        if let Some(existing) = latest.get(&mailbox).and_then(Weak::upgrade) {
            if existing.highest_modseq >= snapshot.highest_modseq {
                return Ok(existing);
            }
        }
        latest.insert(mailbox, Arc::downgrade(&snapshot));
        if latest.len() > 1024 && latest.len().is_power_of_two() {
            latest.retain(|_, weak| weak.strong_count() > 0);
        }
        Ok(snapshot)
    }

    fn cached(&self, mailbox: MailboxId, modseq: ModSeq) -> Option<Arc<Snapshot>> {
        let latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        let snapshot = latest.get(&mailbox)?.upgrade()?;
        (snapshot.highest_modseq >= modseq).then_some(snapshot)
    }
}

/// Position of a UID in a snapshot: its sequence number minus one.
pub fn index_of(snapshot: &Snapshot, uid: Uid) -> Option<usize> {
    snapshot.messages.binary_search_by_key(&uid, |m| m.uid).ok()
}

/// The untagged responses that bring a client from `old` to `new`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ViewDelta {
    /// Sequence numbers to announce with EXPUNGE, in the order to send them
    /// (descending, so each number is still valid when it is sent).
    pub expunged: Vec<u32>,
    /// The new message count, if it must be announced with EXISTS.
    pub exists: Option<u32>,
    /// Indexes into `new.messages` whose flags changed.
    pub flag_changes: Vec<usize>,
    /// UIDs that are new in `new`.
    pub added: Vec<Uid>,
}

/// Compares two snapshots of one mailbox.
pub fn delta(old: &Snapshot, new: &Snapshot) -> ViewDelta {
    let mut delta = ViewDelta::default();
    let mut remaining = old.messages.len();
    // Walk both lists from the end so EXPUNGE numbers come out descending.
    let mut new_index = new.messages.len();
    for old_index in (0..old.messages.len()).rev() {
        let uid = old.messages[old_index].uid;
        while new_index > 0 && new.messages[new_index - 1].uid > uid {
            new_index -= 1;
        }
        let survives = new_index > 0 && new.messages[new_index - 1].uid == uid;
        if survives {
            let entry = &new.messages[new_index - 1];
            if entry.modseq > old.highest_modseq && entry.flags != old.messages[old_index].flags {
                delta.flag_changes.push(new_index - 1);
            }
        } else {
            delta.expunged.push(old_index as u32 + 1);
            remaining -= 1;
        }
    }
    delta.flag_changes.reverse();
    let last_old_uid = old.messages.last().map_or(0, |m| m.uid).max(old.uid_next.saturating_sub(1));
    delta.added = new.messages.iter().map(|m| m.uid).filter(|&uid| uid > last_old_uid).collect();
    if !delta.added.is_empty() || remaining != new.messages.len() {
        delta.exists = Some(new.messages.len() as u32);
    }
    delta
}

#[cfg(test)]
mod tests {
    use roost_store::{Flags, MessageEntry};

    use super::*;

    fn snapshot(modseq: ModSeq, uid_next: Uid, messages: &[(Uid, ModSeq, u8)]) -> Snapshot {
        Snapshot {
            mailbox: MailboxId(1),
            uid_validity: 1,
            uid_next,
            highest_modseq: modseq,
            messages: messages
                .iter()
                .map(|&(uid, modseq, system)| MessageEntry { uid, modseq, flags: Flags { system, keywords: vec![] } })
                .collect(),
            keywords: vec![],
        }
    }

    #[test]
    fn delta_expunges_descending() {
        let old = snapshot(5, 5, &[(1, 1, 0), (2, 2, 0), (3, 3, 0), (4, 4, 0)]);
        let new = snapshot(7, 5, &[(1, 1, 0), (3, 3, 0)]);
        let delta = delta(&old, &new);
        assert_eq!(delta.expunged, vec![4, 2]);
        assert_eq!(delta.exists, None);
        assert!(delta.added.is_empty());
    }

    #[test]
    fn delta_reports_new_messages_and_flag_changes() {
        let old = snapshot(3, 3, &[(1, 1, 0), (2, 2, 0)]);
        let new = snapshot(6, 5, &[(1, 5, 1), (2, 2, 0), (3, 4, 0), (4, 6, 0)]);
        let delta = delta(&old, &new);
        assert!(delta.expunged.is_empty());
        assert_eq!(delta.exists, Some(4));
        assert_eq!(delta.flag_changes, vec![0]);
        assert_eq!(delta.added, vec![3, 4]);
    }

    #[test]
    fn delta_of_expunge_and_append_announces_both() {
        let old = snapshot(2, 3, &[(1, 1, 0), (2, 2, 0)]);
        let new = snapshot(4, 4, &[(2, 2, 0), (3, 4, 0)]);
        let delta = delta(&old, &new);
        assert_eq!(delta.expunged, vec![1]);
        assert_eq!(delta.exists, Some(2));
        assert_eq!(delta.added, vec![3]);
    }
}
