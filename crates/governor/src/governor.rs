//! The governor's live state and its decisions.
//!
//! A connection gets a [`Ticket`] at `connect` and counts as pre-login
//! until `login` moves it into a class's slots or it is released. Each
//! class keeps three things. Its logged-in sessions are ordered by login
//! time, for rotation and for choosing the oldest victim. A count per user
//! lets a user with several sessions yield first. A queue of users it
//! turned away recently lets those who waited longest go first.
//!
//! Slots freed while users wait, by rotation or by a session ending, are
//! set aside for the head of the queue for `rotation_hold`, because the
//! client that was just cut reconnects at once and would otherwise win
//! the slot back by speed.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use crate::Time;
use crate::bucket::Bucket;
use crate::decision::{Admission, ClassId, DecisionKind, LoginDecision, Reason, Refusal, Rotation, Ticket};
use crate::network::SourceKey;
use crate::policy::{ClassConfig, Policy, Rate};
use crate::share::{Claim, fair_shares};
use crate::users::{Penalty, UserTable, Waiting};

/// Maximum number of sessions one decision passes to `preemptible`, so a decision
/// stays cheap even when most candidates are busy.
const VICTIM_SCAN_MAX: usize = 64;

/// Maximum number of oldest sessions a retry estimate looks at.
const RETRY_SCAN_MAX: usize = 16;

/// Maximum number of sessions one rotation looks at for an expired lease.
const LEASE_SCAN_MAX: usize = 4 * VICTIM_SCAN_MAX;

/// Returns the lease, in thousandths of the class's lease, of a session
/// admitted while nobody waited: spread evenly over half a lease to a whole
/// one. After a restart or a reconnect storm every holder gets in at once;
/// with equal leases they would all come due at once too, and the users
/// still waiting would sit out a second whole lease before the next wave.
/// Sessions admitted from the queue get the whole lease.
fn first_lease_permille(ticket: Ticket, now: Time) -> u16 {
    // A multiplicative hash of the ticket and time: deterministic, so the
    // simulator and the server agree, and spread enough for this purpose.
    let mixed = (u64::from(ticket.0) ^ now.as_millis().rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    500 + (mixed >> 32) as u16 % 501
}

/// Marks "no user" in a connection's user field.
const NO_USER: u32 = u32::MAX;

/// The governor: one per server, or one per simulated policy run.
pub struct Governor {
    policy: Policy,
    classes: Vec<ClassState>,
    connections: Vec<Connection>,
    free_tickets: Vec<u32>,
    sources: HashMap<SourceKey, SourceState>,
    users: UserTable,
    /// Client ID names the classes match on, lowercased.
    client_names: Vec<String>,
    preauth: u32,
    /// Logged-in sessions, excluding those preempted or rotated.
    held: u32,
    /// Decisions per class, kind and reason.
    counters: Vec<u64>,
    /// Users and sources to check for removal once they hold nothing.
    cleanup: VecDeque<(Time, Cleanup)>,
}

/// What makes room for a login when no slot is free.
#[derive(Clone, Copy, Debug)]
enum Victim {
    /// A session to cut.
    Session(Ticket),
    /// A slot set aside for this class's queue.
    SetAside(u16),
}

#[derive(Clone, Copy, Debug)]
enum Cleanup {
    User(u32, u32),
    Source(SourceKey),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Free,
    Preauth,
    Session,
    /// Preempted or rotated: counts nowhere, waiting for the server to
    /// close it.
    Leaving,
}

/// One connection, from connect to release.
#[derive(Clone, Copy, Debug)]
struct Connection {
    stage: Stage,
    class: u16,
    /// Index into `client_names` plus one; zero when no ID was given.
    client: u16,
    /// This session's lease in thousandths of the class's lease (500 to
    /// 1000); see [`first_lease_permille`].
    lease_permille: u16,
    user: u32,
    address: IpAddr,
    /// Connect time, then login time.
    since: Time,
}

#[derive(Default)]
struct ClassState {
    preauth: u32,
    held: u32,
    by_age: BTreeSet<(Time, Ticket)>,
    user_counts: HashMap<u32, u32>,
    /// Users holding two or more sessions of the class, by count.
    crowded: BTreeSet<(u32, u32)>,
    /// Connections per source, kept only when the class has
    /// `per_source_max`.
    source_counts: HashMap<SourceKey, u32>,
    /// Users refused for want of a slot, oldest first. Entries whose user
    /// no longer waits in this class are skipped and dropped.
    queue: VecDeque<QueueEntry>,
    waiting: u32,
    /// Expiry times of slots set aside for the head of the queue.
    set_aside: VecDeque<Time>,
    rotation_bucket: Option<Bucket>,
}

#[derive(Clone, Copy, Debug)]
struct QueueEntry {
    user: u32,
    generation: u32,
    since: Time,
}

#[derive(Default, Debug)]
struct SourceState {
    connections: u32,
    /// A cleanup check for this source is queued.
    cleanup_queued: bool,
    bucket: Option<(Bucket, Rate)>,
    penalty: Penalty,
}


/// Counts of one class, for metrics and reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassStats {
    pub preauth: u32,
    pub sessions: u32,
    pub waiting: u32,
    pub set_aside: u32,
}

/// What the governor records of one connection.
#[derive(Clone, Copy, Debug)]
pub struct SessionView<'a> {
    pub class: ClassId,
    pub user: Option<&'a str>,
    pub address: IpAddr,
    /// Connect time before login, login time after.
    pub since: Time,
    pub logged_in: bool,
}

impl Governor {
    /// Creates a governor; `policy` must have passed [`Policy::validate`].
    pub fn new(policy: Policy) -> Governor {
        let class_count = policy.classes.len() + 1;
        let mut client_names: Vec<String> = Vec::new();
        for class in &policy.classes {
            for name in &class.client_ids {
                let name = name.to_lowercase();
                if !client_names.contains(&name) {
                    client_names.push(name);
                }
            }
        }
        Governor {
            classes: (0..class_count).map(|_| ClassState::default()).collect(),
            counters: vec![0; class_count * DecisionKind::ALL.len() * crate::Reason::ALL.len()],
            policy,
            connections: Vec::new(),
            free_tickets: Vec::new(),
            sources: HashMap::new(),
            users: UserTable::default(),
            client_names,
            preauth: 0,
            held: 0,
            cleanup: VecDeque::new(),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    fn class_config(&self, class: u16) -> &ClassConfig {
        self.policy.classes.get(usize::from(class)).unwrap_or(&self.policy.default_class)
    }

    /// Returns the classes in matching order, the default class last.
    pub fn class_ids(&self) -> impl Iterator<Item = ClassId> + use<> {
        (0..self.classes.len() as u16).map(ClassId)
    }

    pub fn class_name(&self, class: ClassId) -> &str {
        &self.class_config(class.0).name
    }

    /// Finds a class by name.
    pub fn class_by_name(&self, name: &str) -> Option<ClassId> {
        self.class_ids().find(|&class| self.class_name(class) == name)
    }

    pub fn class_stats(&self, class: ClassId) -> ClassStats {
        let state = &self.classes[usize::from(class.0)];
        ClassStats {
            preauth: state.preauth,
            sessions: state.held,
            waiting: state.waiting,
            set_aside: state.set_aside.len() as u32,
        }
    }

    /// Returns the connections not yet logged in and the logged-in sessions.
    pub fn totals(&self) -> (u32, u32) {
        (self.preauth, self.held)
    }

    /// Returns every non-zero decision counter.
    pub fn decision_counts(&self) -> impl Iterator<Item = (ClassId, DecisionKind, Reason, u64)> + '_ {
        let kinds = DecisionKind::ALL.len();
        let reasons = Reason::ALL.len();
        self.counters.iter().enumerate().filter(|(_, count)| **count > 0).map(move |(index, count)| {
            let class = ClassId((index / (kinds * reasons)) as u16);
            let kind = DecisionKind::ALL[index / reasons % kinds];
            let reason = Reason::ALL[index % reasons];
            (class, kind, reason, *count)
        })
    }

    fn count(&mut self, class: u16, kind: DecisionKind, reason: Reason) {
        let kinds = DecisionKind::ALL.len();
        let reasons = Reason::ALL.len();
        let kind_index = DecisionKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        let reason_index = Reason::ALL.iter().position(|r| *r == reason).unwrap_or(0);
        self.counters[(usize::from(class) * kinds + kind_index) * reasons + reason_index] += 1;
    }

    /// Returns what is recorded of a live connection.
    pub fn session(&self, ticket: Ticket) -> Option<SessionView<'_>> {
        let connection = self.connections.get(ticket.0 as usize)?;
        if matches!(connection.stage, Stage::Free) {
            return None;
        }
        Some(self.view(connection))
    }

    fn view<'a>(&'a self, connection: &Connection) -> SessionView<'a> {
        let user = (connection.user != NO_USER).then(|| self.users[connection.user].name());
        SessionView {
            class: ClassId(connection.class),
            user,
            address: connection.address,
            since: connection.since,
            logged_in: matches!(connection.stage, Stage::Session),
        }
    }

    /// Returns every live connection, including those told to leave.
    pub fn sessions(&self) -> impl Iterator<Item = (Ticket, SessionView<'_>)> {
        self.connections
            .iter()
            .enumerate()
            .filter(|(_, connection)| !matches!(connection.stage, Stage::Free))
            .map(|(index, connection)| (Ticket(index as u32), self.view(connection)))
    }

    /// Returns the class a connection matches. Classes that name users or
    /// groups match only when `user` is given.
    fn classify(&self, address: IpAddr, client: u16, user: Option<(&str, &[&str])>) -> u16 {
        for (index, class) in self.policy.classes.iter().enumerate() {
            if !class.networks.is_empty() && !class.networks.iter().any(|network| network.contains(address)) {
                continue;
            }
            if !class.client_ids.is_empty() {
                let Some(name) = client.checked_sub(1).map(|i| &self.client_names[usize::from(i)]) else {
                    continue;
                };
                if !class.client_ids.iter().any(|id| id.eq_ignore_ascii_case(name)) {
                    continue;
                }
            }
            if class.needs_user() {
                let Some((name, groups)) = user else { continue };
                let member = class.users.contains(name) || groups.iter().any(|group| class.groups.contains(*group));
                if !member {
                    continue;
                }
            }
            return index as u16;
        }
        self.policy.classes.len() as u16
    }

    /// Decides on a new connection from `address`, before any byte is read.
    pub fn connect(&mut self, now: Time, address: IpAddr) -> Admission {
        let class = self.classify(address, 0, None);
        let key = SourceKey::of(address);
        let config = self.class_config(class).clone_limits();

        if self.preauth >= self.policy.max_preauth {
            return self.refuse_connect(class, Reason::PreauthFull, self.policy.retry_default);
        }
        if let Some(max) = config.per_source_max {
            let count = self.classes[usize::from(class)].source_counts.get(&key).copied().unwrap_or(0);
            if count >= max {
                return self.refuse_connect(class, Reason::PerSourceMax, self.policy.retry_default);
            }
        }
        let mut delay = Duration::ZERO;
        if let Some(rate) = config.source_rate {
            let wait_max = self.policy.greeting_delay_max.as_secs_f64();
            let source = self.sources.entry(key).or_default();
            let (bucket, _) = source.bucket.get_or_insert_with(|| (Bucket::full(&rate, now), rate));
            match bucket.borrow(&rate, now, wait_max) {
                Some(wait) => delay = Duration::from_secs_f64(wait),
                None => {
                    let retry = Duration::from_secs_f64(bucket.take(&rate, now).err().unwrap_or(1.0));
                    self.schedule_source_cleanup(now, key);
                    return self.refuse_connect(class, Reason::SourceRate, retry);
                }
            }
        }

        let ticket = self.allocate(Connection {
            stage: Stage::Preauth,
            class,
            client: 0,
            lease_permille: 1000,
            user: NO_USER,
            address,
            since: now,
        });
        self.preauth += 1;
        self.classes[usize::from(class)].preauth += 1;
        self.add_source(class, key);
        if delay.is_zero() {
            self.count(class, DecisionKind::Admit, Reason::Connected);
        } else {
            self.count(class, DecisionKind::Delay, Reason::SourceRate);
        }
        Admission::Admit { ticket, class: ClassId(class), delay }
    }

    fn refuse_connect(&mut self, class: u16, reason: Reason, retry_after: Duration) -> Admission {
        self.count(class, DecisionKind::Refuse, reason);
        Admission::Refuse { class: ClassId(class), refusal: Refusal { reason, retry_after } }
    }

    fn allocate(&mut self, connection: Connection) -> Ticket {
        match self.free_tickets.pop() {
            Some(index) => {
                self.connections[index as usize] = connection;
                Ticket(index)
            }
            None => {
                self.connections.push(connection);
                Ticket(self.connections.len() as u32 - 1)
            }
        }
    }

    fn add_source(&mut self, class: u16, key: SourceKey) {
        self.sources.entry(key).or_default().connections += 1;
        if self.class_config(class).per_source_max.is_some() {
            *self.classes[usize::from(class)].source_counts.entry(key).or_default() += 1;
        }
    }

    fn remove_source(&mut self, now: Time, class: u16, key: SourceKey) {
        if self.class_config(class).per_source_max.is_some() {
            let counts = &mut self.classes[usize::from(class)].source_counts;
            if let Some(count) = counts.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&key);
                }
            }
        }
        if let Some(source) = self.sources.get_mut(&key) {
            source.connections = source.connections.saturating_sub(1);
            if source.connections == 0 {
                self.schedule_source_cleanup(now, key);
            }
        }
    }

    /// Records the client's ID name (RFC 2971). Before login this can move
    /// the connection into a class that matches on client names.
    pub fn identify(&mut self, ticket: Ticket, client_name: &str) {
        let client = self
            .client_names
            .iter()
            .position(|name| name.eq_ignore_ascii_case(client_name))
            .map_or(0, |index| index as u16 + 1);
        let Some(connection) = self.connections.get_mut(ticket.0 as usize) else { return };
        connection.client = client;
        if connection.stage != Stage::Preauth {
            return;
        }
        let (address, old) = (connection.address, connection.class);
        let class = self.classify(address, client, None);
        if class != old {
            let key = SourceKey::of(address);
            self.classes[usize::from(old)].preauth -= 1;
            self.classes[usize::from(class)].preauth += 1;
            self.move_source_count(old, class, key);
            self.connections[ticket.0 as usize].class = class;
        }
    }

    fn move_source_count(&mut self, from: u16, to: u16, key: SourceKey) {
        if self.class_config(from).per_source_max.is_some() {
            let counts = &mut self.classes[usize::from(from)].source_counts;
            if let Some(count) = counts.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&key);
                }
            }
        }
        if self.class_config(to).per_source_max.is_some() {
            *self.classes[usize::from(to)].source_counts.entry(key).or_default() += 1;
        }
    }

    /// Returns how long to wait before checking the password of `user`:
    /// what is left of the penalty its recent failed logins earned.
    pub fn login_delay(&self, now: Time, user: &str) -> Duration {
        let Some(index) = self.users.find(user) else { return Duration::ZERO };
        let penalty = self.users[index].penalty();
        self.penalty_delay(penalty).saturating_sub(now.since(penalty.last))
    }

    /// Records a failed login and returns how long to hold back the `NO`.
    /// Failures count per source and, for a user that exists, per user.
    /// Only the failing connection waits, so other users of the same
    /// source are not slowed.
    pub fn login_failed(&mut self, now: Time, ticket: Ticket, user: Option<&str>) -> Duration {
        let window = self.policy.login_penalty_window;
        let bump = |penalty: &mut Penalty| {
            if now.since(penalty.last) > window {
                penalty.failures = 0;
            }
            penalty.failures = penalty.failures.saturating_add(1);
            penalty.last = now;
            *penalty
        };
        let mut delay = Duration::ZERO;
        if let Some(connection) = self.connections.get(ticket.0 as usize) {
            let key = SourceKey::of(connection.address);
            let source = self.sources.entry(key).or_default();
            let penalty = bump(&mut source.penalty);
            delay = delay.max(self.penalty_delay(penalty));
        }
        if let Some(name) = user {
            let index = self.users.intern(name);
            let penalty = bump(&mut self.users[index].rare_mut().penalty);
            delay = delay.max(self.penalty_delay(penalty));
            self.schedule_user_cleanup(now, index);
        }
        delay
    }

    fn penalty_delay(&self, penalty: Penalty) -> Duration {
        if penalty.failures == 0 {
            return Duration::ZERO;
        }
        let doublings = (penalty.failures - 1).min(20);
        self.policy.login_penalty_base.saturating_mul(1 << doublings).min(self.policy.login_penalty_max)
    }

    /// Decides on the login of `user` (whose password checked out) on
    /// `ticket`. `preemptible` tells whether a session may be cut now: it
    /// must be waiting in IDLE or between commands, never in the middle of
    /// one.
    pub fn login(
        &mut self,
        now: Time,
        ticket: Ticket,
        user: &str,
        groups: &[&str],
        preemptible: &mut dyn FnMut(Ticket) -> bool,
    ) -> LoginDecision {
        let Some(connection) = self.connections.get(ticket.0 as usize).copied() else {
            return LoginDecision::Refuse {
                class: ClassId(self.policy.classes.len() as u16),
                refusal: Refusal { reason: Reason::Capacity, retry_after: self.policy.retry_default },
            };
        };
        match connection.stage {
            Stage::Preauth => {}
            Stage::Session => {
                return LoginDecision::Admit { class: ClassId(connection.class), reason: Reason::FreeSlot };
            }
            Stage::Free | Stage::Leaving => {
                return LoginDecision::Refuse {
                    class: ClassId(connection.class),
                    refusal: Refusal { reason: Reason::Capacity, retry_after: self.policy.retry_default },
                };
            }
        }
        let class = self.classify(connection.address, connection.client, Some((user, groups)));
        let config = self.class_config(class).clone_limits();
        let key = SourceKey::of(connection.address);
        let user_index = self.users.intern(user);

        if let Some(rate) = config.user_rate {
            let user_state = self.users[user_index].rare_mut();
            let (bucket, _) = user_state.bucket.get_or_insert_with(|| (Bucket::full(&rate, now), rate));
            if let Err(wait) = bucket.take(&rate, now) {
                self.schedule_user_cleanup(now, user_index);
                return self.refuse_login(class, Reason::UserRate, Duration::from_secs_f64(wait));
            }
        }
        if let Some(max) = config.per_user_max {
            let held = self.classes[usize::from(class)].user_counts.get(&user_index).copied().unwrap_or(0);
            if held >= max {
                self.schedule_user_cleanup(now, user_index);
                return self.refuse_login(class, Reason::PerUserMax, self.policy.retry_default);
            }
        }
        if let Some(max) = config.per_source_max {
            let mut count = self.classes[usize::from(class)].source_counts.get(&key).copied().unwrap_or(0);
            if connection.class == class {
                count = count.saturating_sub(1);
            }
            if count >= max {
                self.schedule_user_cleanup(now, user_index);
                return self.refuse_login(class, Reason::PerSourceMax, self.policy.retry_default);
            }
        }

        if let Some(reason) = self.take_free_slot(now, class, user_index) {
            self.admit(now, ticket, class, user_index);
            self.count(class, DecisionKind::Admit, reason);
            return LoginDecision::Admit { class: ClassId(class), reason };
        }
        if let Some((victim, reason)) = self.find_victim(now, class, user_index, preemptible) {
            let victim = match victim {
                Victim::Session(ticket) => ticket,
                Victim::SetAside(donor) => {
                    self.classes[usize::from(donor)].set_aside.pop_back();
                    self.admit(now, ticket, class, user_index);
                    self.count(class, DecisionKind::Admit, reason);
                    return LoginDecision::Admit { class: ClassId(class), reason };
                }
            };
            let victim_class = self.connections[victim.0 as usize].class;
            let victim_retry = self.retry_estimate(now, victim_class);
            self.evict(now, victim);
            self.count(victim_class, DecisionKind::Rotate, reason);
            self.admit(now, ticket, class, user_index);
            self.count(class, DecisionKind::Preempt, reason);
            return LoginDecision::Preempt { class: ClassId(class), reason, victim, victim_retry };
        }

        let at_limit = self.class_config(class).limit.is_some_and(|limit| self.occupied(class) >= limit);
        let reason = if at_limit { Reason::ClassLimit } else { Reason::Capacity };
        self.enqueue(now, class, user_index);
        let retry = self.retry_estimate(now, class);
        self.refuse_login(class, reason, retry)
    }

    fn refuse_login(&mut self, class: u16, reason: Reason, retry_after: Duration) -> LoginDecision {
        self.count(class, DecisionKind::Refuse, reason);
        LoginDecision::Refuse { class: ClassId(class), refusal: Refusal { reason, retry_after } }
    }

    fn limit(&self, class: u16) -> u32 {
        self.class_config(class).limit.unwrap_or(u32::MAX).min(self.policy.max_sessions)
    }

    /// Sessions plus slots set aside for the class's queue.
    fn occupied(&self, class: u16) -> u32 {
        let state = &self.classes[usize::from(class)];
        state.held + state.set_aside.len() as u32
    }

    /// Returns the slots a newcomer of `class` could take without
    /// displacing anyone: within the class's limit, outside every other
    /// class's unused reservation and outside slots set aside.
    fn free_slots(&self, class: u16) -> u32 {
        let set_aside: u32 = self.classes.iter().map(|state| state.set_aside.len() as u32).sum();
        let unused_reserved: u32 = (0..self.classes.len() as u16)
            .filter(|&other| other != class)
            .map(|other| self.class_config(other).reserved.saturating_sub(self.occupied(other)))
            .sum();
        let global =
            self.policy.max_sessions.saturating_sub(self.held).saturating_sub(set_aside).saturating_sub(unused_reserved);
        let in_class = self.limit(class).saturating_sub(self.occupied(class));
        global.min(in_class)
    }

    fn take_free_slot(&mut self, now: Time, class: u16, user: u32) -> Option<Reason> {
        let state = &mut self.classes[usize::from(class)];
        while state.set_aside.front().is_some_and(|expiry| *expiry <= now) {
            state.set_aside.pop_front();
        }
        let set_aside = state.set_aside.len();
        if set_aside > 0 && self.queue_position(now, class, user).is_some_and(|position| position < set_aside) {
            self.classes[usize::from(class)].set_aside.pop_front();
            return Some(Reason::RotationSlot);
        }
        (self.free_slots(class) > 0).then_some(Reason::FreeSlot)
    }

    /// Returns the user's place among those still waiting in the class,
    /// looking only as far as the slots set aside reach.
    fn queue_position(&self, now: Time, class: u16, user: u32) -> Option<usize> {
        let state = &self.classes[usize::from(class)];
        let mut position = 0;
        for entry in &state.queue {
            if position >= state.set_aside.len() {
                return None;
            }
            if !self.entry_live(now, class, entry) {
                continue;
            }
            if entry.user == user {
                return Some(position);
            }
            position += 1;
        }
        None
    }

    fn entry_live(&self, now: Time, class: u16, entry: &QueueEntry) -> bool {
        let state = &self.users[entry.user];
        state.generation == entry.generation
            && state.waiting().is_some_and(|waiting| {
                waiting.class == class
                    && waiting.since == entry.since
                    && now.since(waiting.last_refused) <= self.policy.waiting_window
            })
    }

    fn enqueue(&mut self, now: Time, class: u16, user: u32) {
        let generation = self.users[user].generation;
        match &mut self.users[user].rare_mut().waiting {
            Some(waiting) if waiting.class == class => waiting.last_refused = now,
            other => {
                let previous = other.replace(Waiting { class, since: now, last_refused: now });
                if let Some(previous) = previous {
                    self.classes[usize::from(previous.class)].waiting -= 1;
                }
                let state = &mut self.classes[usize::from(class)];
                state.queue.push_back(QueueEntry { user, generation, since: now });
                state.waiting += 1;
            }
        }
        self.schedule_user_cleanup(now, user);
    }

    fn stop_waiting(&mut self, user: u32) {
        if let Some(waiting) = self.users[user].take_waiting() {
            self.classes[usize::from(waiting.class)].waiting -= 1;
        }
    }

    /// Estimates when a client refused or rotated in `class` gets a slot:
    /// with rotation, the waiting users take turns of one lease each;
    /// without it, the default hint.
    /// Estimates when a client refused or rotated in `class` gets a slot.
    /// With rotation: the time until the first session of the class may be
    /// rotated, plus one lease for every round of turns the users already
    /// waiting take (waiting users over slots). Without rotation: the
    /// default hint.
    fn retry_estimate(&self, now: Time, class: u16) -> Duration {
        let Some(lease) = self.class_config(class).lease else { return self.policy.retry_default };
        let state = &self.classes[usize::from(class)];
        let first_due = state
            .by_age
            .iter()
            .take(RETRY_SCAN_MAX)
            .map(|(since, ticket)| {
                let permille = self.connections[ticket.0 as usize].lease_permille;
                since.after(lease * u32::from(permille) / 1000)
            })
            .min()
            .map_or(Duration::ZERO, |due| due.since(now));
        let rounds = f64::from(state.waiting) / f64::from(self.occupied(class).max(1));
        (first_due + lease.mul_f64(rounds.min(1_000.0))).max(Duration::from_secs(1))
    }

    fn admit(&mut self, now: Time, ticket: Ticket, class: u16, user: u32) {
        let connection = self.connections[ticket.0 as usize];
        let key = SourceKey::of(connection.address);
        self.preauth -= 1;
        self.classes[usize::from(connection.class)].preauth -= 1;
        self.move_source_count(connection.class, class, key);

        self.held += 1;
        let state = &mut self.classes[usize::from(class)];
        state.held += 1;
        state.by_age.insert((now, ticket));
        let count = state.user_counts.entry(user).or_default();
        *count += 1;
        let count = *count;
        if count >= 2 {
            state.crowded.remove(&(count - 1, user));
            state.crowded.insert((count, user));
        }
        self.users[user].sessions.push(ticket);
        let contended = self.classes[usize::from(class)].waiting > 0;
        self.stop_waiting(user);
        let connection = &mut self.connections[ticket.0 as usize];
        connection.lease_permille = if contended { 1000 } else { first_lease_permille(ticket, now) };
        connection.stage = Stage::Session;
        connection.class = class;
        connection.user = user;
        connection.since = now;
    }

    /// Takes a logged-in session out of every count; the connection stays
    /// until the server releases it.
    fn evict(&mut self, now: Time, ticket: Ticket) {
        self.remove_session(now, ticket);
        let user = self.connections[ticket.0 as usize].user;
        self.users[user].leaving += 1;
        self.connections[ticket.0 as usize].stage = Stage::Leaving;
    }

    fn remove_session(&mut self, now: Time, ticket: Ticket) {
        let connection = self.connections[ticket.0 as usize];
        let class = connection.class;
        let user = connection.user;
        self.held -= 1;
        let state = &mut self.classes[usize::from(class)];
        state.held -= 1;
        state.by_age.remove(&(connection.since, ticket));
        if let Some(count) = state.user_counts.get_mut(&user) {
            let before = *count;
            *count -= 1;
            if before >= 2 {
                state.crowded.remove(&(before, user));
            }
            if *count >= 2 {
                state.crowded.insert((*count, user));
            }
            if *count == 0 {
                state.user_counts.remove(&user);
            }
        }
        let sessions = &mut self.users[user].sessions;
        sessions.retain(|held| *held != ticket);
        if sessions.is_empty() {
            self.schedule_user_cleanup(now, user);
        }
        self.remove_source(now, class, SourceKey::of(connection.address));
    }

    /// Finds a session to cut so that a user of `class` can log in: first
    /// from a class beyond its fair share when `class` is below its own
    /// (lower priority first), then, inside `class`, from the user holding
    /// the most sessions when that is at least two more than `user` holds.
    fn find_victim(
        &mut self,
        now: Time,
        class: u16,
        user: u32,
        preemptible: &mut dyn FnMut(Ticket) -> bool,
    ) -> Option<(Victim, Reason)> {
        let mut budget = VICTIM_SCAN_MAX;
        let occupied = self.occupied(class);
        if occupied < self.limit(class) {
            let shares = self.shares(now, class, user);
            if f64::from(occupied + 1) <= shares[usize::from(class)].ceil() + 1e-9 {
                let priority = self.class_config(class).priority;
                let mut donors: Vec<(i32, f64, u16)> = (0..self.classes.len() as u16)
                    .filter(|&other| other != class)
                    .filter_map(|other| {
                        // Slots set aside for a class's queue count as its own,
                        // so a class cannot hold slots above its share that way.
                        let config = self.class_config(other);
                        let occupied = self.occupied(other);
                        let share = shares[usize::from(other)];
                        let above_share = f64::from(occupied) - 1.0 >= share.floor() - 1e-9;
                        (occupied > config.reserved && above_share)
                            .then(|| (config.priority, (f64::from(occupied) - share) / f64::from(config.weight), other))
                    })
                    .collect();
                donors.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)).then(a.2.cmp(&b.2)));
                for (donor_priority, _, donor) in donors {
                    let reason = if donor_priority < priority {
                        Reason::Priority
                    } else if occupied < self.class_config(class).reserved {
                        Reason::Reservation
                    } else {
                        Reason::FairShare
                    };
                    // A slot set aside for the donor's queue goes first: taking
                    // it cuts nobody.
                    if !self.classes[usize::from(donor)].set_aside.is_empty() {
                        return Some((Victim::SetAside(donor), reason));
                    }
                    if let Some(victim) = self.pick_victim(donor, preemptible, &mut budget) {
                        return Some((Victim::Session(victim), reason));
                    }
                }
            }
        }

        let state = &self.classes[usize::from(class)];
        let own = state.user_counts.get(&user).copied().unwrap_or(0);
        let crowded: Vec<u32> = state
            .crowded
            .iter()
            .rev()
            .take_while(|(count, _)| *count >= own + 2)
            .map(|(_, holder)| *holder)
            .collect();
        for holder in crowded {
            let sessions = self.users[holder].sessions.clone();
            for ticket in sessions {
                if budget == 0 {
                    return None;
                }
                if self.connections[ticket.0 as usize].class != class {
                    continue;
                }
                budget -= 1;
                if preemptible(ticket) {
                    return Some((Victim::Session(ticket), Reason::UserShare));
                }
            }
        }
        None
    }

    fn shares(&self, _now: Time, class: u16, user: u32) -> Vec<f64> {
        let newcomer_waits = self.users[user].waiting().is_some_and(|waiting| waiting.class == class);
        let claims: Vec<Claim> = (0..self.classes.len() as u16)
            .map(|index| {
                let config = self.class_config(index);
                let state = &self.classes[usize::from(index)];
                let mut demand = self.occupied(index) + state.waiting;
                if index == class && !newcomer_waits {
                    demand += 1;
                }
                Claim {
                    demand,
                    reserved: config.reserved,
                    limit: self.limit(index),
                    weight: config.weight,
                    priority: config.priority,
                }
            })
            .collect();
        fair_shares(self.policy.max_sessions, &claims)
    }

    /// Picks a preemptible session of `class`: the oldest of the user
    /// holding the most sessions, else the oldest of the class.
    fn pick_victim(
        &self,
        class: u16,
        preemptible: &mut dyn FnMut(Ticket) -> bool,
        budget: &mut usize,
    ) -> Option<Ticket> {
        let state = &self.classes[usize::from(class)];
        for (_, holder) in state.crowded.iter().rev() {
            for ticket in &self.users[*holder].sessions {
                if *budget == 0 {
                    return None;
                }
                if self.connections[ticket.0 as usize].class != class {
                    continue;
                }
                *budget -= 1;
                if preemptible(*ticket) {
                    return Some(*ticket);
                }
            }
        }
        for (_, ticket) in &state.by_age {
            if *budget == 0 {
                return None;
            }
            *budget -= 1;
            if preemptible(*ticket) {
                return Some(*ticket);
            }
        }
        None
    }

    /// Ends a connection, whatever its stage.
    pub fn release(&mut self, now: Time, ticket: Ticket) {
        let Some(connection) = self.connections.get(ticket.0 as usize).copied() else { return };
        match connection.stage {
            Stage::Free => return,
            Stage::Preauth => {
                self.preauth -= 1;
                self.classes[usize::from(connection.class)].preauth -= 1;
                self.remove_source(now, connection.class, SourceKey::of(connection.address));
            }
            Stage::Session => {
                self.remove_session(now, ticket);
                // While users wait, the freed slot goes to the head of the
                // queue rather than to whoever reconnects first.
                let class = connection.class;
                let hold = self.policy.rotation_hold;
                let state = &mut self.classes[usize::from(class)];
                if state.waiting as usize > state.set_aside.len() {
                    state.set_aside.push_back(now.after(hold));
                }
            }
            Stage::Leaving => {
                let user = connection.user;
                self.users[user].leaving -= 1;
                if self.users[user].sessions.is_empty() {
                    self.schedule_user_cleanup(now, connection.user);
                }
            }
        }
        self.connections[ticket.0 as usize].stage = Stage::Free;
        self.free_tickets.push(ticket.0);
    }

    /// Runs the periodic work: expires set-aside slots and stale waiters,
    /// rotates sessions past their lease while users wait, and forgets
    /// users and sources that hold nothing. Rotated sessions are appended
    /// to `rotations` for the server to close.
    pub fn tick(&mut self, now: Time, preemptible: &mut dyn FnMut(Ticket) -> bool, rotations: &mut Vec<Rotation>) {
        for class in 0..self.classes.len() as u16 {
            self.expire_queue(now, class);
            self.rotate(now, class, preemptible, rotations);
        }
        self.run_cleanup(now);
    }

    fn expire_queue(&mut self, now: Time, class: u16) {
        let state = &mut self.classes[usize::from(class)];
        while state.set_aside.front().is_some_and(|expiry| *expiry <= now) {
            state.set_aside.pop_front();
        }
        let mut queue = std::mem::take(&mut self.classes[usize::from(class)].queue);
        let mut gave_up = Vec::new();
        queue.retain(|entry| {
            let user = &self.users[entry.user];
            let current = user.generation == entry.generation
                && user.waiting().is_some_and(|waiting| waiting.class == class && waiting.since == entry.since);
            if current && !self.entry_live(now, class, entry) {
                // Refused too long ago: the user stopped trying.
                gave_up.push(entry.user);
                return false;
            }
            current
        });
        self.classes[usize::from(class)].queue = queue;
        for user in gave_up {
            self.stop_waiting(user);
        }
    }

    fn rotate(&mut self, now: Time, class: u16, preemptible: &mut dyn FnMut(Ticket) -> bool, rotations: &mut Vec<Rotation>) {
        let config = self.class_config(class);
        let Some(lease) = config.lease else { return };
        let rate = Rate { per_second: config.rotation_rate, burst: config.rotation_rate.ceil().max(1.0) as u32 };
        let state = &self.classes[usize::from(class)];
        let wanted = (state.waiting as usize)
            .saturating_sub(state.set_aside.len())
            .saturating_sub(self.free_slots(class) as usize);
        if wanted == 0 {
            return;
        }
        let mut budget = VICTIM_SCAN_MAX;
        for _ in 0..wanted {
            let bucket = self.classes[usize::from(class)].rotation_bucket.get_or_insert_with(|| Bucket::full(&rate, now));
            let mut probe = *bucket;
            if probe.take(&rate, now).is_err() {
                return;
            }
            let connections = &self.connections;
            let mut examined = 0;
            let victim = self.classes[usize::from(class)]
                .by_age
                .iter()
                .take_while(|(since, _)| now.since(*since) >= lease / 2)
                .map(|(_, ticket)| *ticket)
                .find(|ticket| {
                    examined += 1;
                    if budget == 0 || examined > LEASE_SCAN_MAX {
                        return false;
                    }
                    let connection = &connections[ticket.0 as usize];
                    let own_lease = lease * u32::from(connection.lease_permille) / 1000;
                    if now.since(connection.since) < own_lease {
                        return false;
                    }
                    budget -= 1;
                    preemptible(*ticket)
                });
            let Some(victim) = victim else { return };
            if let Some(bucket) = self.classes[usize::from(class)].rotation_bucket.as_mut() {
                let _ = bucket.take(&rate, now);
            }
            let retry_after = self.retry_estimate(now, class);
            self.evict(now, victim);
            let hold = self.policy.rotation_hold;
            self.classes[usize::from(class)].set_aside.push_back(now.after(hold));
            self.count(class, DecisionKind::Rotate, Reason::Lease);
            rotations.push(Rotation { ticket: victim, class: ClassId(class), retry_after });
        }
    }

    fn schedule_user_cleanup(&mut self, now: Time, user: u32) {
        let state = &mut self.users[user];
        if std::mem::replace(&mut state.cleanup_queued, true) {
            return;
        }
        let generation = state.generation;
        self.cleanup.push_back((now.after(self.state_lifetime()), Cleanup::User(user, generation)));
    }

    fn schedule_source_cleanup(&mut self, now: Time, key: SourceKey) {
        let Some(source) = self.sources.get_mut(&key) else { return };
        if std::mem::replace(&mut source.cleanup_queued, true) {
            return;
        }
        self.cleanup.push_back((now.after(self.state_lifetime()), Cleanup::Source(key)));
    }

    /// How long a user or source holding nothing is remembered: long
    /// enough for its penalty, rate bucket and place in a queue to matter.
    fn state_lifetime(&self) -> Duration {
        self.policy.login_penalty_window.max(self.policy.waiting_window).max(Duration::from_secs(60))
    }

    fn run_cleanup(&mut self, now: Time) {
        while let Some(&(due, item)) = self.cleanup.front() {
            if due > now {
                return;
            }
            self.cleanup.pop_front();
            match item {
                Cleanup::User(index, generation) => {
                    let user = &mut self.users[index];
                    if user.generation != generation {
                        continue;
                    }
                    user.cleanup_queued = false;
                    if !self.users.is_live(index) {
                        continue;
                    }
                    let user = &self.users[index];
                    let quiet = user.sessions.is_empty()
                        && user.leaving == 0
                        && user.waiting().is_none()
                        && user.bucket().is_none_or(|(bucket, rate)| bucket.is_full(&rate, now))
                        && now.since(user.penalty().last) > self.policy.login_penalty_window;
                    if quiet {
                        self.users.forget(index);
                    } else if user.sessions.is_empty() && user.leaving == 0 {
                        self.schedule_user_cleanup(now, index);
                    }
                }
                Cleanup::Source(key) => {
                    let Some(source) = self.sources.get_mut(&key) else { continue };
                    source.cleanup_queued = false;
                    let quiet = source.connections == 0
                        && source.bucket.is_none_or(|(bucket, rate)| bucket.is_full(&rate, now))
                        && now.since(source.penalty.last) > self.policy.login_penalty_window;
                    if quiet {
                        self.sources.remove(&key);
                    } else if source.connections == 0 {
                        self.schedule_source_cleanup(now, key);
                    }
                }
            }
        }
    }
}

/// The parts of a class a decision reads, copied out so the state can be
/// changed while they are in hand.
struct ClassLimits {
    per_source_max: Option<u32>,
    per_user_max: Option<u32>,
    source_rate: Option<Rate>,
    user_rate: Option<Rate>,
}

impl ClassConfig {
    fn clone_limits(&self) -> ClassLimits {
        ClassLimits {
            per_source_max: self.per_source_max,
            per_user_max: self.per_user_max,
            source_rate: self.source_rate,
            user_rate: self.user_rate,
        }
    }
}
