//! The users the governor remembers: those holding or leaving sessions,
//! waiting for a slot, or carrying a recent penalty or a rate bucket.
//!
//! A server with a million idle sessions remembers about as many users, so
//! a user's record is kept small. The name is stored once: the index
//! contains only slot numbers and hashes names through the slots. A user's
//! first two tickets are stored inline. The state only some users have (a
//! penalty, a rate bucket, a place in a queue) is boxed and allocated when
//! first needed.

use std::hash::{BuildHasher, RandomState};
use std::ops::{Index, IndexMut};

use hashbrown::HashTable;
use smallvec::SmallVec;

use crate::Time;
use crate::bucket::Bucket;
use crate::decision::Ticket;
use crate::policy::Rate;

/// Failed logins in a row and when the last one happened.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Penalty {
    pub failures: u32,
    pub last: Time,
}

/// A user's place among those turned away from a class.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Waiting {
    pub class: u16,
    pub since: Time,
    pub last_refused: Time,
}

#[derive(Debug)]
pub(crate) struct UserState {
    name: Box<str>,
    /// Bumped each time the slot is reused, so stale queue entries of the
    /// previous user never match.
    pub generation: u32,
    /// Sessions evicted that the server has not released yet.
    pub leaving: u32,
    /// A cleanup check for this user is queued.
    pub cleanup_queued: bool,
    /// Logged-in sessions in login order.
    pub sessions: SmallVec<[Ticket; 2]>,
    rare: Option<Box<RareState>>,
}

/// State only some users have. It is boxed, so a user who logs in once and
/// idles pays one pointer for it.
#[derive(Debug, Default)]
pub(crate) struct RareState {
    pub bucket: Option<(Bucket, Rate)>,
    pub penalty: Penalty,
    pub waiting: Option<Waiting>,
}

impl UserState {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn penalty(&self) -> Penalty {
        self.rare.as_ref().map(|rare| rare.penalty).unwrap_or_default()
    }

    pub fn waiting(&self) -> Option<Waiting> {
        self.rare.as_ref().and_then(|rare| rare.waiting)
    }

    pub fn bucket(&self) -> Option<(Bucket, Rate)> {
        self.rare.as_ref().and_then(|rare| rare.bucket)
    }

    /// Returns the rare state, creating it empty when the user has none.
    pub fn rare_mut(&mut self) -> &mut RareState {
        self.rare.get_or_insert_with(Box::default)
    }

    pub fn take_waiting(&mut self) -> Option<Waiting> {
        self.rare.as_mut().and_then(|rare| rare.waiting.take())
    }
}

/// The remembered users, by slot number, with an index by name.
#[derive(Default)]
pub(crate) struct UserTable {
    slots: Vec<UserState>,
    /// Slot numbers, hashed and compared by the name in the slot.
    by_name: HashTable<u32>,
    hasher: RandomState,
    free: Vec<u32>,
}

impl UserTable {
    pub fn find(&self, name: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(name);
        self.by_name.find(hash, |&slot| &*self.slots[slot as usize].name == name).copied()
    }

    /// Returns the slot of `name`, taking a free one when the user is new.
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(slot) = self.find(name) {
            return slot;
        }
        let state = |generation| UserState {
            name: name.into(),
            generation,
            leaving: 0,
            cleanup_queued: false,
            sessions: SmallVec::new(),
            rare: None,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                let generation = self.slots[slot as usize].generation.wrapping_add(1);
                self.slots[slot as usize] = state(generation);
                slot
            }
            None => {
                self.slots.push(state(0));
                self.slots.len() as u32 - 1
            }
        };
        let hash = self.hasher.hash_one(name);
        let slots = &self.slots;
        self.by_name.insert_unique(hash, slot, |&other| self.hasher.hash_one(&*slots[other as usize].name));
        slot
    }

    /// Returns whether the index still maps the name in `slot` to `slot`,
    /// which is false once the user is forgotten.
    pub fn is_live(&self, slot: u32) -> bool {
        self.find(&self.slots[slot as usize].name) == Some(slot)
    }

    /// Forgets the user in `slot` and frees the slot for reuse.
    pub fn forget(&mut self, slot: u32) {
        let hash = self.hasher.hash_one(&*self.slots[slot as usize].name);
        if let Ok(entry) = self.by_name.find_entry(hash, |&other| other == slot) {
            entry.remove();
        }
        let state = &mut self.slots[slot as usize];
        state.name = Box::default();
        state.rare = None;
        state.sessions = SmallVec::new();
        self.free.push(slot);
    }
}

impl Index<u32> for UserTable {
    type Output = UserState;

    fn index(&self, slot: u32) -> &UserState {
        &self.slots[slot as usize]
    }
}

impl IndexMut<u32> for UserTable {
    fn index_mut(&mut self, slot: u32) -> &mut UserState {
        &mut self.slots[slot as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgotten_slot_reused_with_new_generation() {
        let mut users = UserTable::default();
        let alice = users.intern("alice");
        let bob = users.intern("bob");
        assert_eq!(users.intern("alice"), alice);
        assert_eq!(users.find("bob"), Some(bob));
        assert_eq!(users[bob].name(), "bob");

        users.forget(alice);
        assert_eq!(users.find("alice"), None);
        assert!(!users.is_live(alice));
        let carol = users.intern("carol");
        assert_eq!(carol, alice);
        assert_eq!(users[carol].generation, 1);
        assert!(users.is_live(carol));
        assert_eq!(users.find("bob"), Some(bob));
    }

    #[test]
    fn index_finds_users_after_growth() {
        let mut users = UserTable::default();
        let slots: Vec<u32> = (0..5000).map(|n| users.intern(&format!("user{n}"))).collect();
        for (n, slot) in slots.iter().enumerate() {
            assert_eq!(users.find(&format!("user{n}")), Some(*slot));
        }
        assert_eq!(users.find("user5000"), None);
    }

    #[test]
    fn rare_state_allocated_only_when_set() {
        let mut users = UserTable::default();
        let slot = users.intern("alice");
        assert!(users[slot].waiting().is_none());
        assert_eq!(users[slot].penalty().failures, 0);
        assert!(users[slot].rare.is_none());
        users[slot].rare_mut().penalty.failures = 2;
        assert_eq!(users[slot].penalty().failures, 2);
        assert!(users[slot].take_waiting().is_none());
    }

    #[test]
    fn user_state_stays_small() {
        // Name, two inline tickets, counters and the rare-state box.
        assert!(std::mem::size_of::<UserState>() <= 64, "{}", std::mem::size_of::<UserState>());
    }
}
