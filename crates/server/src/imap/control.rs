//! The session table and the one sweeper that serves every session's
//! timers.
//!
//! A session registers a small [`SessionControl`] and stamps it with the
//! time of its last activity. No session owns a timer: one sweeper task
//! walks the table at a fixed tick and wakes sessions, through their
//! control's `Notify`, to send an IDLE keepalive or to log out for
//! inactivity. Shutdown goes through the same path. The table belongs to
//! the server instance that created it, never to the process, so several
//! servers (or later several worker processes) keep separate tables.

use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

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
}

/// Requests the sweeper or the server leaves for a session. Kept as bits
/// so several can be pending at once.
pub mod request {
    pub const KEEPALIVE: u8 = 1 << 0;
    pub const TIMEOUT: u8 = 1 << 1;
    pub const SHUTDOWN: u8 = 1 << 2;
}

/// The part of a session the sweeper and the server can reach.
pub struct SessionControl {
    /// Seconds since the table's epoch at the last activity.
    last_activity: AtomicU32,
    /// Seconds since the table's epoch of the last keepalive or IDLE start.
    last_keepalive: AtomicU32,
    phase: AtomicU8,
    requests: AtomicU8,
    /// Wakes the session when `requests` gains a bit.
    pub wake: Notify,
}

impl SessionControl {
    /// Takes and clears the pending requests.
    pub fn take_requests(&self) -> u8 {
        self.requests.swap(0, Ordering::AcqRel)
    }

    fn request(&self, bits: u8) {
        self.requests.fetch_or(bits, Ordering::AcqRel);
        self.wake.notify_one();
    }
}

/// The server's table of live sessions.
pub struct SessionTable {
    epoch: Instant,
    slots: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    entries: Vec<Weak<SessionControl>>,
    free: Vec<usize>,
    live: usize,
}

/// A session's registration; dropping it frees the slot.
pub struct Registration {
    table: Arc<SessionTable>,
    slot: usize,
    pub control: Arc<SessionControl>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut slots = self.table.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entries[self.slot] = Weak::new();
        slots.free.push(self.slot);
        slots.live -= 1;
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
    pub fn new() -> Arc<SessionTable> {
        Arc::new(SessionTable { epoch: Instant::now(), slots: Mutex::new(Slots::default()) })
    }

    fn now_secs(&self) -> u32 {
        self.epoch.elapsed().as_secs().min(u32::MAX as u64) as u32
    }

    /// Adds a session in the `Unauthenticated` phase.
    pub fn register(self: &Arc<Self>) -> Registration {
        let now = self.now_secs();
        let control = Arc::new(SessionControl {
            last_activity: AtomicU32::new(now),
            last_keepalive: AtomicU32::new(now),
            phase: AtomicU8::new(Phase::Unauthenticated as u8),
            requests: AtomicU8::new(0),
            wake: Notify::new(),
        });
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let weak = Arc::downgrade(&control);
        let slot = match slots.free.pop() {
            Some(slot) => {
                slots.entries[slot] = weak;
                slot
            }
            None => {
                slots.entries.push(weak);
                slots.entries.len() - 1
            }
        };
        slots.live += 1;
        Registration { table: Arc::clone(self), slot, control }
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
    }

    /// Asks every session to end with `* BYE`.
    pub fn shutdown_all(&self) {
        for control in self.live_controls() {
            control.request(request::SHUTDOWN);
        }
    }

    fn live_controls(&self) -> Vec<Arc<SessionControl>> {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entries.iter().filter_map(Weak::upgrade).collect()
    }

    /// Applies the timers once: due keepalives and inactivity timeouts.
    pub fn sweep(&self, timeouts: &Timeouts) {
        let now = self.now_secs();
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        for control in slots.entries.iter().filter_map(Weak::upgrade) {
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

    /// Runs the sweeper until the table is dropped by everyone else.
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
        }
    }
}

/// Returns the sweeper's period: fine enough that a keepalive or timeout is late by
/// at most a quarter of its interval, and never under one second.
fn sweep_tick(timeouts: &Timeouts) -> Duration {
    let shortest = timeouts.idle_keepalive.min(timeouts.unauthenticated).min(timeouts.authenticated);
    (shortest / 4).clamp(Duration::from_secs(1), Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts() -> Timeouts {
        Timeouts {
            unauthenticated: Duration::from_secs(0),
            authenticated: Duration::from_secs(3600),
            idle_keepalive: Duration::from_secs(0),
        }
    }

    #[test]
    fn sweep_times_out_unauthenticated() {
        let table = SessionTable::new();
        let registration = table.register();
        table.sweep(&timeouts());
        assert_eq!(registration.control.take_requests(), request::TIMEOUT);
    }

    #[test]
    fn sweep_sends_keepalive_to_idle_sessions_only() {
        let table = SessionTable::new();
        let idle = table.register();
        let busy = table.register();
        table.touch(&idle.control, Phase::Idle);
        table.touch(&busy.control, Phase::Busy);
        table.sweep(&timeouts());
        assert_eq!(idle.control.take_requests(), request::KEEPALIVE);
        assert_eq!(busy.control.take_requests(), 0);
    }

    #[test]
    fn dropped_registration_frees_its_slot() {
        let table = SessionTable::new();
        let first = table.register();
        assert_eq!(table.len(), 1);
        drop(first);
        assert_eq!(table.len(), 0);
        let _second = table.register();
        assert_eq!(table.slots.lock().unwrap().entries.len(), 1);
    }

    #[test]
    fn shutdown_reaches_every_session() {
        let table = SessionTable::new();
        let sessions: Vec<_> = (0..3).map(|_| table.register()).collect();
        table.shutdown_all();
        for session in &sessions {
            assert_eq!(session.control.take_requests(), request::SHUTDOWN);
        }
    }
}
