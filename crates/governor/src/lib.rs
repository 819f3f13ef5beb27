//! Roost's connection governor: which connections and logins may hold a
//! slot, shared fairly and by priority.
//!
//! The governor is a pure state machine. Every call takes the current
//! [`Time`] and returns a decision; nothing here reads a clock, a socket or
//! a file. The server feeds it real connections and the simulator feeds it
//! simulated ones, so both run the same decisions.
//!
//! Code map:
//! - [`policy`] is what an administrator configures: global bounds and
//!   classes.
//! - [`governor`] holds the live state and makes the decisions.
//! - [`decision`] is what comes out: admit, delay, refuse, preempt, rotate,
//!   each with a [`Reason`].
//! - [`share`] computes weighted max-min fair shares among classes.
//! - [`config`] reads the `[governor]` TOML table shared by the server
//!   configuration and simulator scenarios.
//!
//! **Architecture Invariant:** no I/O, no clock and no threads. Callers
//! serialise access (the server keeps the governor behind one mutex), and
//! a decision never waits.

mod bucket;
mod users;
pub mod config;
pub mod decision;
pub mod governor;
pub mod network;
pub mod policy;
pub mod share;

pub use decision::{Admission, ClassId, DecisionKind, LoginDecision, Reason, Refusal, Rotation, Ticket};
pub use governor::{ClassStats, Governor, SessionView};
pub use network::{Network, SourceKey};
pub use policy::{ClassConfig, Policy, Rate};

use std::time::Duration;

/// A point in time, in milliseconds since an epoch the caller chooses.
/// The server counts from its start, the simulator from the scenario's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(u64);

impl Time {
    pub const fn from_millis(millis: u64) -> Time {
        Time(millis)
    }

    pub fn from_duration(since_epoch: Duration) -> Time {
        Time(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
    }

    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Returns the time `duration` later.
    pub fn after(self, duration: Duration) -> Time {
        Time(self.0.saturating_add(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)))
    }

    /// Returns the time elapsed since `earlier`, zero if `earlier` is later.
    pub fn since(self, earlier: Time) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// Returns the seconds elapsed since `earlier`, zero if `earlier` is later.
    pub fn seconds_since(self, earlier: Time) -> f64 {
        self.0.saturating_sub(earlier.0) as f64 / 1000.0
    }
}
