//! What the governor decides and why.

use std::time::Duration;

/// A connection's handle in the governor, from `connect` to `release`.
/// Tickets are small integers reused after release, so a server can index
/// its own session table with them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(pub u32);

/// Index of a class: the configured classes in order, then the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClassId(pub u16);

/// The decision on a new connection, made from its source alone.
#[derive(Clone, Debug, PartialEq)]
pub enum Admission {
    /// Serve the connection; send the greeting after `delay`, which is
    /// non-zero when the source reconnects faster than its class allows.
    Admit { ticket: Ticket, class: ClassId, delay: Duration },
    /// Close the connection. Nothing was recorded for it.
    Refuse { class: ClassId, refusal: Refusal },
}

/// The decision on a login whose password checked out.
#[derive(Clone, Debug, PartialEq)]
pub enum LoginDecision {
    /// The session holds a slot of `class` from now on.
    Admit { class: ClassId, reason: Reason },
    /// The session holds a slot of `class`, taken from `victim`, which the
    /// server must close with `* BYE [UNAVAILABLE]` once it is between
    /// commands. The victim no longer counts against any limit.
    Preempt { class: ClassId, reason: Reason, victim: Ticket, victim_retry: Duration },
    /// The login fails with `NO` and the connection stays unauthenticated.
    Refuse { class: ClassId, refusal: Refusal },
}

/// Why and how a connection or login is turned away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    /// When the client should try again; sent as "retry in N s".
    pub retry_after: Duration,
}

impl Refusal {
    /// Returns the response code: `LIMIT` when a per-user or per-source
    /// cap is the cause, `UNAVAILABLE` otherwise (RFC 5530).
    pub fn code(&self) -> &'static str {
        match self.reason {
            Reason::PerUserMax | Reason::PerSourceMax => "LIMIT",
            _ => "UNAVAILABLE",
        }
    }

    /// Returns the human-readable text after the code, such as
    /// `no slot is free for this class of client, retry in 30 s`.
    pub fn text(&self) -> String {
        format!("{}, retry in {} s", self.reason.describe(), retry_seconds(self.retry_after))
    }
}

/// Rounds a retry hint up to whole seconds, at least one.
pub fn retry_seconds(retry_after: Duration) -> u64 {
    let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    seconds.max(1)
}

/// A session the governor wants closed, and when its client may retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    pub ticket: Ticket,
    pub class: ClassId,
    pub retry_after: Duration,
}

/// The kind of a decision, as counted in metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DecisionKind {
    Admit,
    Delay,
    Refuse,
    Preempt,
    Rotate,
}

impl DecisionKind {
    pub const ALL: [DecisionKind; 5] =
        [DecisionKind::Admit, DecisionKind::Delay, DecisionKind::Refuse, DecisionKind::Preempt, DecisionKind::Rotate];

    /// Returns the metric label.
    pub fn label(self) -> &'static str {
        match self {
            DecisionKind::Admit => "admit",
            DecisionKind::Delay => "delay",
            DecisionKind::Refuse => "refuse",
            DecisionKind::Preempt => "preempt",
            DecisionKind::Rotate => "rotate",
        }
    }
}

/// The cause behind a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// A connection was accepted before login.
    Connected,
    /// A free slot was within the class's limit.
    FreeSlot,
    /// A slot set aside by rotation went to a user at the head of the queue.
    RotationSlot,
    /// No more connections may wait for login.
    PreauthFull,
    /// Every slot is taken and none can be freed for this class.
    Capacity,
    /// The class holds its `limit`.
    ClassLimit,
    /// The user holds `per_user_max` sessions in the class.
    PerUserMax,
    /// The source holds `per_source_max` connections in the class.
    PerSourceMax,
    /// The source reconnects faster than `source_rate`.
    SourceRate,
    /// The user logs in faster than `user_rate`.
    UserRate,
    /// A session of a lower-priority class made room.
    Priority,
    /// A class beyond its reservation made room for one within it.
    Reservation,
    /// A class beyond its weighted fair share made room for one below it.
    FairShare,
    /// A user holding more sessions of the class made room for one holding fewer.
    UserShare,
    /// A session idle longer than the class's lease made room for waiting users.
    Lease,
}

impl Reason {
    pub const ALL: [Reason; 15] = [
        Reason::Connected,
        Reason::FreeSlot,
        Reason::RotationSlot,
        Reason::PreauthFull,
        Reason::Capacity,
        Reason::ClassLimit,
        Reason::PerUserMax,
        Reason::PerSourceMax,
        Reason::SourceRate,
        Reason::UserRate,
        Reason::Priority,
        Reason::Reservation,
        Reason::FairShare,
        Reason::UserShare,
        Reason::Lease,
    ];

    /// Returns the metric label.
    pub fn label(self) -> &'static str {
        match self {
            Reason::Connected => "connected",
            Reason::FreeSlot => "free_slot",
            Reason::RotationSlot => "rotation_slot",
            Reason::PreauthFull => "preauth_full",
            Reason::Capacity => "capacity",
            Reason::ClassLimit => "class_limit",
            Reason::PerUserMax => "per_user_max",
            Reason::PerSourceMax => "per_source_max",
            Reason::SourceRate => "source_rate",
            Reason::UserRate => "user_rate",
            Reason::Priority => "priority",
            Reason::Reservation => "reservation",
            Reason::FairShare => "fair_share",
            Reason::UserShare => "user_share",
            Reason::Lease => "lease",
        }
    }

    /// Returns the words sent to a client turned away or cut for this reason.
    pub fn describe(self) -> &'static str {
        match self {
            Reason::Connected | Reason::FreeSlot | Reason::RotationSlot => "admitted",
            Reason::PreauthFull => "too many connections are waiting to log in",
            Reason::Capacity => "no slot is free for this class of client",
            Reason::ClassLimit => "all slots for this class of client are in use",
            Reason::PerUserMax => "too many sessions for this user",
            Reason::PerSourceMax => "too many connections from this address",
            Reason::SourceRate => "reconnecting too fast from this address",
            Reason::UserRate => "logging in too fast",
            Reason::Priority => "session ended to admit a higher-priority client",
            Reason::Reservation => "session ended to admit a client with reserved slots",
            Reason::FairShare => "session ended to share slots fairly",
            Reason::UserShare => "session ended to admit a user holding fewer sessions",
            Reason::Lease => "session rotated to let waiting users in",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_text_carries_retry_hint() {
        let refusal = Refusal { reason: Reason::Capacity, retry_after: Duration::from_millis(2500) };
        assert_eq!(refusal.code(), "UNAVAILABLE");
        assert_eq!(refusal.text(), "no slot is free for this class of client, retry in 3 s");
    }

    #[test]
    fn caps_use_limit_code() {
        for reason in [Reason::PerUserMax, Reason::PerSourceMax] {
            assert_eq!(Refusal { reason, retry_after: Duration::ZERO }.code(), "LIMIT");
        }
        assert_eq!(Refusal { reason: Reason::ClassLimit, retry_after: Duration::ZERO }.code(), "UNAVAILABLE");
    }

    #[test]
    fn retry_hint_is_at_least_one_second() {
        assert_eq!(retry_seconds(Duration::ZERO), 1);
        assert_eq!(retry_seconds(Duration::from_secs(30)), 30);
    }
}
