//! Per-mailbox change notification shared by every back end.
//!
//! The notifier owns one `watch` channel per mailbox that someone is
//! watching, carrying that mailbox's highest MODSEQ. It does not know where
//! changes come from: back ends call [`ChangeNotifier::publish`] after each
//! commit and after noticing another process's commits.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

use crate::{MailboxId, ModSeq};

/// Hands out `watch` receivers of each mailbox's highest MODSEQ.
///
/// The map holds only mailboxes with at least one live receiver: entries
/// whose receivers are all dropped are removed on the next
/// [`publish`](Self::publish) or [`watched`](Self::watched), so the map
/// never grows beyond the number of mailboxes being watched.
#[derive(Default)]
pub struct ChangeNotifier {
    senders: Mutex<HashMap<MailboxId, watch::Sender<ModSeq>>>,
}

impl ChangeNotifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns a receiver of the mailbox's highest MODSEQ. When the mailbox
    /// has no channel yet, `current` reads its value. `current` runs under
    /// the notifier's lock so that no `publish` falls between that read
    /// and the new channel.
    pub fn subscribe(
        &self,
        mailbox: MailboxId,
        current: impl FnOnce() -> ModSeq,
    ) -> watch::Receiver<ModSeq> {
        let mut senders = self.lock();
        if let Some(sender) = senders.get(&mailbox) {
            return sender.subscribe();
        }
        let (sender, receiver) = watch::channel(current());
        senders.insert(mailbox, sender);
        receiver
    }

    /// Sends `modseq` to the mailbox's receivers if it is greater than the
    /// value they have, so a late or repeated report never moves them back.
    pub fn publish(&self, mailbox: MailboxId, modseq: ModSeq) {
        let mut senders = self.lock();
        let Some(sender) = senders.get(&mailbox) else {
            return;
        };
        if sender.receiver_count() == 0 {
            senders.remove(&mailbox);
            return;
        }
        sender.send_if_modified(|value| {
            if modseq > *value {
                *value = modseq;
                true
            } else {
                false
            }
        });
    }

    /// Returns each watched mailbox with its receivers' current value,
    /// after removing channels that have no receiver left.
    pub fn watched(&self) -> Vec<(MailboxId, ModSeq)> {
        let mut senders = self.lock();
        senders.retain(|_, sender| sender.receiver_count() > 0);
        senders
            .iter()
            .map(|(id, sender)| (*id, *sender.borrow()))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<MailboxId, watch::Sender<ModSeq>>> {
        // A panic while the lock was held cannot leave the map inconsistent
        // (every update is a single insert, remove or send), so a poisoned
        // lock is still safe to use.
        self.senders
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_only_moves_forward() {
        let notifier = ChangeNotifier::new();
        let mut receiver = notifier.subscribe(MailboxId(1), || 5);
        notifier.publish(MailboxId(1), 4);
        assert!(!receiver.has_changed().unwrap());
        notifier.publish(MailboxId(1), 6);
        assert!(receiver.has_changed().unwrap());
        assert_eq!(*receiver.borrow_and_update(), 6);
    }

    #[test]
    fn dropped_receivers_free_their_entry() {
        let notifier = ChangeNotifier::new();
        let receiver = notifier.subscribe(MailboxId(1), || 1);
        let _kept = notifier.subscribe(MailboxId(2), || 1);
        drop(receiver);
        let watched: Vec<MailboxId> = notifier.watched().into_iter().map(|(id, _)| id).collect();
        assert_eq!(watched, vec![MailboxId(2)]);
    }

    #[test]
    fn second_subscriber_shares_channel() {
        let notifier = ChangeNotifier::new();
        let _first = notifier.subscribe(MailboxId(1), || 3);
        let second = notifier.subscribe(MailboxId(1), || {
            panic!("value must come from the live channel")
        });
        assert_eq!(*second.borrow(), 3);
    }
}
