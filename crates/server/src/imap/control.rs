//! The session table and the one sweeper that serves every session's
//! timers.
//!
//! A session registers a small [`SessionControl`] and stamps it with the
//! time of its last activity. No session owns a timer: one sweeper task
//! walks the table at a fixed tick and wakes sessions, through their
//! control's waker, to send an IDLE keepalive or to log out for
//! inactivity. Shutdown goes through the same path. The table belongs to
//! the server instance that created it, never to the process, so several
//! servers (or later several worker processes) keep separate tables.
//!
//! Slots are indexed by the connection governor's ticket, so the governor
//! names a session to preempt or rotate and the table finds it at once.
//! The governor's side lives in [`super::admission`].

use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use std::collections::HashMap;

use roost_governor::{Governor, Reason, Ticket};

use crate::workers::link::SupervisorLink;
use crate::workers::phases::PhaseBoard;

/// The activity of a session, as far as timers are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Connected, not logged in: `timeout_unauthenticated` applies.
    Unauthenticated = 0,
    /// Logged in and between commands: `timeout_authenticated` applies.
    Authenticated = 1,
    /// In IDLE: keepalives are due every `idle_keepalive`, and
    /// `timeout_authenticated` applies from the start of the IDLE.
    Idle = 2,
    /// Running a command: no timer applies.
    Busy = 3,
    /// Between the lines or literals of one command, such as an APPEND
    /// waiting for its message: `timeout_authenticated` applies, and the
    /// session is not preemptible.
    Partial = 4,
}

/// Requests the sweeper or the server leaves for a session. Kept as bits
/// so several can be pending at once.
pub mod request {
    pub const KEEPALIVE: u8 = 1 << 0;
    pub const TIMEOUT: u8 = 1 << 1;
    pub const SHUTDOWN: u8 = 1 << 2;
    /// The governor preempted or rotated the session; the reason and retry
    /// hint are in the control's `eviction`.
    pub const EVICT: u8 = 1 << 3;
}

/// The part of a session the sweeper and the server can reach.
pub struct SessionControl {
    ticket: Ticket,
    /// Seconds since the table's epoch at the last activity.
    last_activity: AtomicU32,
    /// Seconds since the table's epoch of the last keepalive or IDLE start.
    last_keepalive: AtomicU32,
    phase: AtomicU8,
    requests: AtomicU8,
    /// Why the governor evicted the session: the index of its reason in
    /// [`Reason::ALL`] in the top byte, the retry hint in seconds below.
    eviction: AtomicU32,
    /// The session's task, woken when `requests` gains a bit. A waker
    /// slot rather than a `Notify`, so the waiting session polls it in
    /// place and keeps no future for it.
    waker: Mutex<Option<Waker>>,
}

impl SessionControl {
    /// Takes and clears the pending requests.
    pub fn take_requests(&self) -> u8 {
        self.requests.swap(0, Ordering::AcqRel)
    }

    fn request(&self, bits: u8) {
        self.requests.fetch_or(bits, Ordering::AcqRel);
        let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Polls for pending requests without taking them.
    pub fn poll_requests(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.requests.load(Ordering::Acquire) != 0 {
            return Poll::Ready(());
        }
        {
            let mut waker = self.waker.lock().unwrap_or_else(|e| e.into_inner());
            if !waker.as_ref().is_some_and(|waker| waker.will_wake(cx.waker())) {
                *waker = Some(cx.waker().clone());
            }
        }
        // Checked again with the waker in place, so a request made between
        // the first check and the registration is not missed.
        if self.requests.load(Ordering::Acquire) != 0 { Poll::Ready(()) } else { Poll::Pending }
    }

    /// Asks the session to close with `* BYE [UNAVAILABLE]` once it is
    /// between commands.
    pub fn evict(&self, reason: Reason, retry_after: Duration) {
        let index = Reason::ALL.iter().position(|r| *r == reason).unwrap_or(0) as u32;
        let seconds = roost_governor::decision::retry_seconds(retry_after).min(0x00ff_ffff) as u32;
        self.eviction.store(index << 24 | seconds, Ordering::Release);
        self.request(request::EVICT);
    }

    /// Returns the reason and retry hint in seconds of the last eviction.
    pub fn eviction(&self) -> (Reason, u32) {
        let packed = self.eviction.load(Ordering::Acquire);
        let reason = Reason::ALL.get((packed >> 24) as usize).copied().unwrap_or(Reason::Capacity);
        (reason, packed & 0x00ff_ffff)
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            0 => Phase::Unauthenticated,
            1 => Phase::Authenticated,
            2 => Phase::Idle,
            3 => Phase::Busy,
            _ => Phase::Partial,
        }
    }

}

/// Checks whether a session in `phase` (as the phase board records it)
/// waits in IDLE or between commands, so it can be closed without cutting
/// a command short.
pub fn is_preemptible(phase: Option<u8>) -> bool {
    phase == Some(Phase::Authenticated as u8) || phase == Some(Phase::Idle as u8)
}

/// Where the connection governor runs for this server instance.
pub enum GovernorSite {
    /// In this process: a single-process server, or the supervisor.
    Local(Mutex<Governor>),
    /// In the supervisor process; this is a worker that asks it.
    Supervisor(Arc<SupervisorLink>),
}

/// The server's table of live sessions and its connection governor.
pub struct SessionTable {
    epoch: Instant,
    slots: Mutex<Slots>,
    /// A local governor is locked before `slots` whenever both are held.
    pub(crate) governor: GovernorSite,
    /// Each session's phase by ticket, readable by the governor's process.
    pub(crate) phases: Arc<PhaseBoard>,
    /// Carries an eviction to the worker process that holds the session;
    /// unset when sessions live in this process.
    pub(crate) remote_evictions: std::sync::OnceLock<RemoteEvict>,
    /// Reports each worker's connection count, for metrics; unset without workers.
    pub(crate) worker_loads: std::sync::OnceLock<Box<dyn Fn() -> Vec<(usize, usize)> + Send + Sync>>,
}

/// Sends an eviction to the process that holds the session.
pub type RemoteEvict = Box<dyn Fn(Ticket, Reason, Duration) + Send + Sync>;

#[derive(Default)]
struct Slots {
    entries: HashMap<Ticket, Weak<SessionControl>>,
    live: usize,
}

/// A session's registration; dropping it frees the slot and releases the
/// governor's ticket.
pub struct Registration {
    table: Arc<SessionTable>,
    pub ticket: Ticket,
    pub control: Arc<SessionControl>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        // The slot is cleared before the ticket is released, so a reused
        // ticket never finds this session's control.
        {
            let mut slots = self.table.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots.entries.remove(&self.ticket);
            slots.live -= 1;
        }
        // A released ticket must not look preemptible until it is reused.
        self.table.phases.set(self.ticket, Phase::Busy as u8);
        match &self.table.governor {
            GovernorSite::Local(governor) => {
                let now = self.table.now();
                governor.lock().unwrap_or_else(|e| e.into_inner()).release(now, self.ticket);
            }
            GovernorSite::Supervisor(link) => link.release(self.ticket),
        }
    }
}

/// The timer settings the sweeper applies.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub unauthenticated: Duration,
    pub authenticated: Duration,
    pub idle_keepalive: Duration,
}

impl SessionTable {
    /// Creates the table of a single-process server, or of the supervisor,
    /// with the governor in this process.
    pub fn new(governor: Governor, phases: Arc<PhaseBoard>) -> Arc<SessionTable> {
        Arc::new(SessionTable {
            epoch: Instant::now(),
            slots: Mutex::new(Slots::default()),
            governor: GovernorSite::Local(Mutex::new(governor)),
            phases,
            remote_evictions: std::sync::OnceLock::new(),
            worker_loads: std::sync::OnceLock::new(),
        })
    }

    /// Creates the table of a worker process, whose governor runs in the
    /// supervisor.
    pub fn for_worker(link: Arc<SupervisorLink>, phases: Arc<PhaseBoard>) -> Arc<SessionTable> {
        Arc::new(SessionTable {
            epoch: Instant::now(),
            slots: Mutex::new(Slots::default()),
            governor: GovernorSite::Supervisor(link),
            phases,
            remote_evictions: std::sync::OnceLock::new(),
            worker_loads: std::sync::OnceLock::new(),
        })
    }

    fn now_secs(&self) -> u32 {
        self.epoch.elapsed().as_secs().min(u32::MAX as u64) as u32
    }

    /// Returns the governor's clock: the time since the table was created.
    pub fn now(&self) -> roost_governor::Time {
        roost_governor::Time::from_duration(self.epoch.elapsed())
    }

    /// Locks the governor when it runs in this process.
    pub fn local_governor(&self) -> Option<std::sync::MutexGuard<'_, Governor>> {
        match &self.governor {
            GovernorSite::Local(governor) => Some(governor.lock().unwrap_or_else(|e| e.into_inner())),
            GovernorSite::Supervisor(_) => None,
        }
    }

    /// Locks the governor of a single-process server or the supervisor.
    ///
    /// # Panics
    /// In a worker process, whose governor runs in the supervisor; the
    /// callers (accept, metrics, `who`, the tests) never run there.
    pub fn lock_governor(&self) -> std::sync::MutexGuard<'_, Governor> {
        self.local_governor().expect("the governor runs in this process")
    }

    /// Adds a session the governor admitted as `ticket`, in the
    /// `Unauthenticated` phase.
    pub fn register(self: &Arc<Self>, ticket: Ticket) -> Registration {
        let now = self.now_secs();
        let control = Arc::new(SessionControl {
            ticket,
            last_activity: AtomicU32::new(now),
            last_keepalive: AtomicU32::new(now),
            phase: AtomicU8::new(Phase::Unauthenticated as u8),
            requests: AtomicU8::new(0),
            eviction: AtomicU32::new(0),
            waker: Mutex::new(None),
        });
        self.phases.set(ticket, Phase::Unauthenticated as u8);
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entries.insert(ticket, Arc::downgrade(&control));
        slots.live += 1;
        Registration { table: Arc::clone(self), ticket, control }
    }

    /// Returns the control of the session holding `ticket`.
    pub fn control(&self, ticket: Ticket) -> Option<Arc<SessionControl>> {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entries.get(&ticket).and_then(Weak::upgrade)
    }

    /// Number of registered sessions.
    pub fn len(&self) -> usize {
        self.slots.lock().unwrap_or_else(|e| e.into_inner()).live
    }

    /// Records activity and the phase the session enters.
    pub fn touch(&self, control: &SessionControl, phase: Phase) {
        let now = self.now_secs();
        control.last_activity.store(now, Ordering::Relaxed);
        if phase == Phase::Idle {
            control.last_keepalive.store(now, Ordering::Relaxed);
        }
        control.phase.store(phase as u8, Ordering::Relaxed);
        self.phases.set(control.ticket, phase as u8);
    }

    /// Asks every session to end with `* BYE`.
    pub fn shutdown_all(&self) {
        for control in self.live_controls() {
            control.request(request::SHUTDOWN);
        }
    }

    fn live_controls(&self) -> Vec<Arc<SessionControl>> {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entries.values().filter_map(Weak::upgrade).collect()
    }

    /// Applies the timers once: due keepalives and inactivity timeouts.
    pub fn sweep(&self, timeouts: &Timeouts) {
        let now = self.now_secs();
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        for control in slots.entries.values().filter_map(Weak::upgrade) {
            let idle_for = now.saturating_sub(control.last_activity.load(Ordering::Relaxed));
            let phase = control.phase.load(Ordering::Relaxed);
            let limit = if phase == Phase::Unauthenticated as u8 {
                timeouts.unauthenticated
            } else if phase == Phase::Busy as u8 {
                continue;
            } else {
                timeouts.authenticated
            };
            if u64::from(idle_for) >= limit.as_secs() {
                control.request(request::TIMEOUT);
                continue;
            }
            if phase == Phase::Idle as u8 {
                let since = now.saturating_sub(control.last_keepalive.load(Ordering::Relaxed));
                if u64::from(since) >= timeouts.idle_keepalive.as_secs() {
                    control.last_keepalive.store(now, Ordering::Relaxed);
                    control.request(request::KEEPALIVE);
                }
            }
        }
    }

    /// Runs the sweeper until the table is dropped by everyone else. Each
    /// tick also runs the governor's periodic work, such as rotation.
    pub async fn run_sweeper(self: Arc<Self>, timeouts: Timeouts) {
        let tick = sweep_tick(&timeouts);
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if Arc::strong_count(&self) == 1 {
                return;
            }
            self.sweep(&timeouts);
            self.run_governor_tick();
        }
    }
}

/// Returns the sweeper's period: fine enough that a keepalive or timeout is
/// late by at most a quarter of its interval, between 250 ms and one second.
fn sweep_tick(timeouts: &Timeouts) -> Duration {
    let shortest = timeouts.idle_keepalive.min(timeouts.unauthenticated).min(timeouts.authenticated);
    // Rotation is paced per second, so the tick never exceeds one second.
    (shortest / 4).clamp(Duration::from_millis(250), Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use roost_governor::{Admission, Policy};

    use super::*;

    fn new_table() -> Arc<SessionTable> {
        SessionTable::new(Governor::new(Policy::with_capacity(100, 100)), Arc::new(PhaseBoard::create(256).unwrap()))
    }

    fn register(table: &Arc<SessionTable>) -> Registration {
        let decision = table.lock_governor().connect(table.now(), "127.0.0.1".parse().unwrap());
        let Admission::Admit { ticket, .. } = decision else { panic!("{decision:?}") };
        table.register(ticket)
    }

    fn timeouts() -> Timeouts {
        Timeouts {
            unauthenticated: Duration::from_secs(0),
            authenticated: Duration::from_secs(3600),
            idle_keepalive: Duration::from_secs(0),
        }
    }

    #[test]
    fn sweep_times_out_unauthenticated() {
        let table = new_table();
        let registration = register(&table);
        table.sweep(&timeouts());
        assert_eq!(registration.control.take_requests(), request::TIMEOUT);
    }

    #[test]
    fn sweep_sends_keepalive_to_idle_sessions_only() {
        let table = new_table();
        let idle = register(&table);
        let busy = register(&table);
        table.touch(&idle.control, Phase::Idle);
        table.touch(&busy.control, Phase::Busy);
        table.sweep(&timeouts());
        assert_eq!(idle.control.take_requests(), request::KEEPALIVE);
        assert_eq!(busy.control.take_requests(), 0);
    }

    #[test]
    fn dropped_registration_frees_its_slot() {
        let table = new_table();
        let first = register(&table);
        assert_eq!(table.len(), 1);
        drop(first);
        assert_eq!(table.len(), 0);
        let _second = register(&table);
        assert_eq!(table.slots.lock().unwrap().entries.len(), 1);
    }

    #[test]
    fn shutdown_reaches_every_session() {
        let table = new_table();
        let sessions: Vec<_> = (0..3).map(|_| register(&table)).collect();
        table.shutdown_all();
        for session in &sessions {
            assert_eq!(session.control.take_requests(), request::SHUTDOWN);
        }
    }
}
