//! Per-mailbox change notification shared by every back end.
//!
//! The notifier keeps one small channel per mailbox that someone is
//! watching, carrying that mailbox's highest MODSEQ. It does not know where
//! changes come from: back ends call [`ChangeNotifier::publish`] after each
//! commit and after noticing another process's commits.
//!
//! The channel is an atomic value and a slot for each receiver's waker,
//! rather than a tokio `watch` channel: every session in IDLE has a
//! receiver, often alone on its mailbox, and a receiver is polled in place
//! instead of through a stored future, so a waiting session keeps no
//! future state for it.

use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use smallvec::SmallVec;

use crate::{MailboxId, ModSeq};

/// One mailbox's highest MODSEQ and the wakers of the receivers waiting
/// for it to grow.
#[derive(Debug)]
struct Channel {
    highest: AtomicU64,
    /// Set when the notifier is dropped: no value will come any more.
    closed: AtomicBool,
    wakers: Mutex<Wakers>,
}

/// One slot per live receiver, reused after the receiver is dropped. Most
/// mailboxes have one receiver, the one session that selected it, so its
/// slot is stored inline.
#[derive(Debug, Default)]
struct Wakers {
    slots: SmallVec<[Option<Waker>; 1]>,
    free: Vec<u32>,
}

impl Channel {
    fn new(highest: ModSeq) -> Channel {
        Channel { highest: AtomicU64::new(highest), closed: AtomicBool::new(false), wakers: Mutex::default() }
    }

    fn wakers(&self) -> std::sync::MutexGuard<'_, Wakers> {
        // Every update is a single store into a slot or a push, so a
        // poisoned lock still guards consistent data.
        self.wakers.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes a slot for a new receiver.
    fn attach(&self) -> u32 {
        let mut wakers = self.wakers();
        match wakers.free.pop() {
            Some(slot) => slot,
            None => {
                wakers.slots.push(None);
                (wakers.slots.len() - 1) as u32
            }
        }
    }

    /// Wakes every receiver that is waiting.
    fn wake_all(&self) {
        let waiting: SmallVec<[Waker; 1]> = self.wakers().slots.iter_mut().filter_map(Option::take).collect();
        for waker in waiting {
            waker.wake();
        }
    }
}

/// The notifier was dropped, so the mailbox's MODSEQ will not be reported
/// any more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Closed;

/// A receiver of one mailbox's highest MODSEQ, with the value it last saw.
/// A clone shares the channel and starts from the value the original saw.
#[derive(Debug)]
pub struct ChangeReceiver {
    channel: Arc<Channel>,
    slot: u32,
    seen: ModSeq,
}

impl Clone for ChangeReceiver {
    fn clone(&self) -> Self {
        ChangeReceiver { channel: Arc::clone(&self.channel), slot: self.channel.attach(), seen: self.seen }
    }
}

impl Drop for ChangeReceiver {
    fn drop(&mut self) {
        let mut wakers = self.channel.wakers();
        wakers.slots[self.slot as usize] = None;
        wakers.free.push(self.slot);
    }
}

impl ChangeReceiver {
    /// Returns the mailbox's highest MODSEQ as last published.
    pub fn current(&self) -> ModSeq {
        self.channel.highest.load(Ordering::Acquire)
    }

    /// Returns the current value and records it as seen.
    pub fn mark_seen(&mut self) -> ModSeq {
        self.seen = self.current();
        self.seen
    }

    /// Returns whether a value greater than the one last seen was published.
    pub fn has_changed(&self) -> bool {
        self.current() > self.seen
    }

    /// Polls for a value greater than the one last seen, without recording
    /// it as seen: the caller does that when it reports the change.
    pub fn poll_changed(&self, cx: &mut Context<'_>) -> Poll<Result<(), Closed>> {
        if self.has_changed() {
            return Poll::Ready(Ok(()));
        }
        {
            let mut wakers = self.channel.wakers();
            let slot = &mut wakers.slots[self.slot as usize];
            if !slot.as_ref().is_some_and(|waker| waker.will_wake(cx.waker())) {
                *slot = Some(cx.waker().clone());
            }
        }
        // Checked again after the waker is in place, so a publish that ran
        // between the first check and the registration is not missed.
        if self.has_changed() {
            Poll::Ready(Ok(()))
        } else if self.channel.closed.load(Ordering::Acquire) {
            Poll::Ready(Err(Closed))
        } else {
            Poll::Pending
        }
    }

    /// Waits until a value greater than the one last seen is published, and
    /// records it as seen.
    pub async fn changed(&mut self) -> Result<(), Closed> {
        poll_fn(|cx| self.poll_changed(cx)).await?;
        self.mark_seen();
        Ok(())
    }

    /// Waits until the value is at least `modseq`, and records it as seen.
    pub async fn wait_until(&mut self, modseq: ModSeq) -> Result<(), Closed> {
        while self.mark_seen() < modseq {
            self.changed().await?;
        }
        Ok(())
    }
}

/// Hands out receivers of each mailbox's highest MODSEQ.
///
/// The map holds only mailboxes with at least one live receiver: entries
/// whose receivers are all dropped are removed on the next
/// [`publish`](Self::publish) or [`watched`](Self::watched), so the map
/// never grows beyond the number of mailboxes being watched.
#[derive(Default)]
pub struct ChangeNotifier {
    channels: Mutex<HashMap<MailboxId, Arc<Channel>>>,
}

/// Returns how many receivers share `channel`, besides the notifier's map.
fn receiver_count(channel: &Arc<Channel>) -> usize {
    Arc::strong_count(channel) - 1
}

impl ChangeNotifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns a receiver of the mailbox's highest MODSEQ, which has seen
    /// the current value. When the mailbox has no channel yet, `current`
    /// reads its value. `current` runs under the notifier's lock so that no
    /// `publish` falls between that read and the new channel.
    pub fn subscribe(&self, mailbox: MailboxId, current: impl FnOnce() -> ModSeq) -> ChangeReceiver {
        let mut channels = self.lock();
        let channel = Arc::clone(channels.entry(mailbox).or_insert_with(|| Arc::new(Channel::new(current()))));
        let seen = channel.highest.load(Ordering::Acquire);
        let slot = channel.attach();
        ChangeReceiver { channel, slot, seen }
    }

    /// Sends `modseq` to the mailbox's receivers if it is greater than the
    /// value they have, so a late or repeated report never moves them back.
    pub fn publish(&self, mailbox: MailboxId, modseq: ModSeq) {
        let mut channels = self.lock();
        let Some(channel) = channels.get(&mailbox) else {
            return;
        };
        if receiver_count(channel) == 0 {
            channels.remove(&mailbox);
            return;
        }
        if channel.highest.fetch_max(modseq, Ordering::AcqRel) < modseq {
            channel.wake_all();
        }
    }

    /// Returns each watched mailbox with its receivers' current value,
    /// after removing channels that have no receiver left.
    pub fn watched(&self) -> Vec<(MailboxId, ModSeq)> {
        let mut channels = self.lock();
        channels.retain(|_, channel| receiver_count(channel) > 0);
        channels
            .iter()
            .map(|(id, channel)| (*id, channel.highest.load(Ordering::Acquire)))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<MailboxId, Arc<Channel>>> {
        // A panic while the lock was held cannot leave the map inconsistent
        // (every update is a single insert, remove or store), so a poisoned
        // lock is still safe to use.
        self.channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for ChangeNotifier {
    fn drop(&mut self) {
        for channel in self.lock().values() {
            channel.closed.store(true, Ordering::Release);
            channel.wake_all();
        }
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
        assert!(!receiver.has_changed());
        notifier.publish(MailboxId(1), 6);
        assert!(receiver.has_changed());
        assert_eq!(receiver.mark_seen(), 6);
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
        assert_eq!(second.current(), 3);
    }

    #[tokio::test]
    async fn changed_wakes_a_waiting_receiver() {
        let notifier = Arc::new(ChangeNotifier::new());
        let mut receiver = notifier.subscribe(MailboxId(1), || 1);
        let publisher = Arc::clone(&notifier);
        let waiter = tokio::spawn(async move {
            receiver.changed().await.unwrap();
            receiver.current()
        });
        tokio::task::yield_now().await;
        publisher.publish(MailboxId(1), 2);
        let seen = tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.unwrap().unwrap();
        assert_eq!(seen, 2);
    }

    #[tokio::test]
    async fn changed_returns_at_once_for_an_unseen_value() {
        let notifier = ChangeNotifier::new();
        let mut receiver = notifier.subscribe(MailboxId(1), || 1);
        notifier.publish(MailboxId(1), 3);
        receiver.changed().await.unwrap();
        assert!(!receiver.has_changed());
    }

    #[tokio::test]
    async fn dropped_notifier_closes_receivers() {
        let notifier = ChangeNotifier::new();
        let mut receiver = notifier.subscribe(MailboxId(1), || 1);
        drop(notifier);
        assert_eq!(receiver.changed().await, Err(Closed));
    }
}
