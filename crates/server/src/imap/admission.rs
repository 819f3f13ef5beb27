//! The IMAP side of the connection governor: decisions at accept and at
//! login, eviction of preempted and rotated sessions, and the views the
//! metrics endpoint and `roost who` show.
//!
//! The governor itself is pure policy (`roost-governor`); this module
//! feeds it the server's clock and the sessions' phases, logs every
//! decision at debug level with its reason, and carries out evictions
//! through the session table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use roost_governor::{Admission, ClassId, LoginDecision, Rotation, Ticket};
use tracing::debug;

use super::control::{GovernorSite, Phase, SessionTable};
use crate::admin::WhoRow;
use crate::metrics::{MetricKind, MetricsText};
use crate::workers::link::NoAnswer;

impl SessionTable {
    /// Decides on a new connection from `address`, before anything is
    /// allocated for it. Runs where the governor runs: a single-process
    /// server or the supervisor.
    pub fn admit_connection(&self, address: IpAddr) -> Admission {
        let now = self.now();
        let mut governor = self.lock_governor();
        let decision = governor.connect(now, address);
        match &decision {
            Admission::Admit { ticket, class, delay } => {
                debug!(%address, ticket = ticket.0, class = governor.class_name(*class), ?delay, "governor admitted a connection");
            }
            Admission::Refuse { class, refusal } => {
                debug!(
                    %address,
                    class = governor.class_name(*class),
                    reason = refusal.reason.label(),
                    "governor refused a connection"
                );
            }
        }
        decision
    }

    /// Releases the ticket of an admitted connection that could not be
    /// served after all.
    pub fn abandon(&self, ticket: Ticket) {
        let now = self.now();
        match &self.governor {
            GovernorSite::Local(governor) => governor.lock().unwrap_or_else(|e| e.into_inner()).release(now, ticket),
            GovernorSite::Supervisor(link) => link.release(ticket),
        }
    }

    /// Records the client name an ID command gave (RFC 2971).
    pub fn identify(&self, ticket: Ticket, client_name: &str) {
        match &self.governor {
            GovernorSite::Local(governor) => governor.lock().unwrap_or_else(|e| e.into_inner()).identify(ticket, client_name),
            GovernorSite::Supervisor(link) => link.identify(ticket, client_name),
        }
    }

    /// Returns whether the governor may cut the session holding `ticket` now.
    fn preemptible(&self, ticket: Ticket) -> bool {
        super::control::is_preemptible(self.phases.get(ticket))
    }

    /// Asks the session holding `ticket` to close with `* BYE [UNAVAILABLE]`
    /// once it is between commands, in whichever process holds it.
    pub(crate) fn evict(&self, ticket: Ticket, reason: roost_governor::Reason, retry_after: std::time::Duration) {
        if let Some(remote) = self.remote_evictions.get() {
            remote(ticket, reason, retry_after);
        } else if let Some(control) = self.control(ticket) {
            control.evict(reason, retry_after);
        }
    }

    /// Decides on the login of `user` whose password checked out. A
    /// session chosen to make room is asked to close once it is between
    /// commands.
    pub async fn decide_login(&self, ticket: Ticket, user: &str, groups: &[&str]) -> LoginDecision {
        if let GovernorSite::Supervisor(link) = &self.governor {
            return link.login(ticket, user, groups).await;
        }
        self.decide_login_here(ticket, user, groups)
    }

    /// Decides a login with the governor of this process.
    pub(crate) fn decide_login_here(&self, ticket: Ticket, user: &str, groups: &[&str]) -> LoginDecision {
        let now = self.now();
        let mut governor = self.lock_governor();
        let decision = governor.login(now, ticket, user, groups, &mut |candidate| self.preemptible(candidate));
        match &decision {
            LoginDecision::Admit { class, reason } => {
                debug!(ticket = ticket.0, user, class = governor.class_name(*class), reason = reason.label(), "governor admitted a login");
            }
            LoginDecision::Preempt { class, reason, victim, victim_retry } => {
                debug!(
                    ticket = ticket.0,
                    user,
                    class = governor.class_name(*class),
                    reason = reason.label(),
                    victim = victim.0,
                    "governor admitted a login by preempting a session"
                );
                self.evict(*victim, *reason, *victim_retry);
            }
            LoginDecision::Refuse { class, refusal } => {
                debug!(
                    ticket = ticket.0,
                    user,
                    class = governor.class_name(*class),
                    reason = refusal.reason.label(),
                    "governor refused a login"
                );
            }
        }
        decision
    }

    /// Returns how long to wait before checking a password of `user`, or
    /// why a worker's supervisor did not tell.
    pub async fn login_delay(&self, user: &str) -> Result<Duration, NoAnswer> {
        match &self.governor {
            GovernorSite::Local(governor) => {
                let now = self.now();
                Ok(governor.lock().unwrap_or_else(|e| e.into_inner()).login_delay(now, user))
            }
            GovernorSite::Supervisor(link) => link.login_delay(user).await,
        }
    }

    /// Records a failed login and returns how long to hold back the `NO`.
    /// `user` is counted against only when it is a user of the users file;
    /// a worker passes the name the client gave and the supervisor checks.
    pub async fn login_failed(&self, ticket: Ticket, user: Option<&str>) -> Duration {
        match &self.governor {
            GovernorSite::Local(governor) => {
                let now = self.now();
                governor.lock().unwrap_or_else(|e| e.into_inner()).login_failed(now, ticket, user)
            }
            GovernorSite::Supervisor(link) => link.login_failed(ticket, user).await,
        }
    }

    /// Runs the governor's periodic work and asks rotated sessions to
    /// close. Does nothing in a worker, whose governor runs elsewhere.
    pub(super) fn run_governor_tick(&self) {
        let now = self.now();
        let mut rotations: Vec<Rotation> = Vec::new();
        {
            let Some(mut governor) = self.local_governor() else { return };
            governor.tick(now, &mut |ticket| self.preemptible(ticket), &mut rotations);
            for rotation in &rotations {
                debug!(ticket = rotation.ticket.0, class = governor.class_name(rotation.class), "governor rotated a session");
            }
        }
        for rotation in rotations {
            self.evict(rotation.ticket, roost_governor::Reason::Lease, rotation.retry_after);
        }
    }

    /// Renders the governor's state in the Prometheus text format.
    pub fn render_metrics(&self) -> String {
        let governor = self.lock_governor();
        let classes: Vec<ClassId> = governor.class_ids().collect();
        let mut states: BTreeMap<(u16, &'static str), u64> = BTreeMap::new();
        for class in &classes {
            for state in ["preauth", "active", "idle", "leaving"] {
                states.insert((class.0, state), 0);
            }
        }
        for (ticket, view) in governor.sessions() {
            let state = if !view.logged_in {
                if view.user.is_some() { "leaving" } else { "preauth" }
            } else if self.phases.get(ticket) == Some(Phase::Idle as u8) {
                "idle"
            } else {
                "active"
            };
            *states.entry((view.class.0, state)).or_default() += 1;
        }

        let mut text = MetricsText::new();
        text.family(
            "roost_sessions",
            MetricKind::Gauge,
            "IMAP connections by governor class and state: preauth (not logged in), active, idle (in IDLE), leaving (preempted or rotated, closing).",
        );
        for ((class, state), count) in &states {
            let name = governor.class_name(ClassId(*class));
            text.sample("roost_sessions", &[("class", name), ("state", state)], *count as f64);
        }
        text.family(
            "roost_governor_decisions_total",
            MetricKind::Counter,
            "Governor decisions since start, by class, decision and reason.",
        );
        for (class, kind, reason, count) in governor.decision_counts() {
            let name = governor.class_name(class);
            let labels = [("class", name), ("decision", kind.label()), ("reason", reason.label())];
            text.sample("roost_governor_decisions_total", &labels, count as f64);
        }
        text.family("roost_governor_waiting_users", MetricKind::Gauge, "Users refused for want of a slot who are still retrying, by class.");
        for class in &classes {
            let stats = governor.class_stats(*class);
            text.sample("roost_governor_waiting_users", &[("class", governor.class_name(*class))], f64::from(stats.waiting));
        }
        text.family("roost_governor_class_slots", MetricKind::Gauge, "Configured slots of each class: reserved and limit.");
        let policy = governor.policy();
        for (index, config) in policy.classes.iter().chain(std::iter::once(&policy.default_class)).enumerate() {
            let name = governor.class_name(ClassId(index as u16));
            text.sample("roost_governor_class_slots", &[("class", name), ("kind", "reserved")], f64::from(config.reserved));
            let limit = config.limit.unwrap_or(policy.max_sessions);
            text.sample("roost_governor_class_slots", &[("class", name), ("kind", "limit")], f64::from(limit));
        }
        text.family("roost_worker_connections", MetricKind::Gauge, "Connections each worker process holds; absent for a single-process server.");
        for (index, connections) in self.worker_loads() {
            text.sample("roost_worker_connections", &[("worker", &index.to_string())], connections as f64);
        }
        text.family("roost_governor_max_sessions", MetricKind::Gauge, "Most logged-in sessions the governor admits.");
        text.sample("roost_governor_max_sessions", &[], f64::from(policy.max_sessions));
        text.family("roost_governor_max_preauth", MetricKind::Gauge, "Most connections the governor lets wait for login.");
        text.sample("roost_governor_max_preauth", &[], f64::from(policy.max_preauth));
        text.finish()
    }

    /// Returns each running worker's connection count, read through the
    /// pool that registered itself for evictions.
    fn worker_loads(&self) -> Vec<(usize, usize)> {
        self.worker_loads.get().map(|loads| loads()).unwrap_or_default()
    }

    /// Lists live connections for `roost who`.
    pub fn who(&self) -> Vec<WhoRow> {
        let now = self.now();
        let governor = self.lock_governor();
        governor
            .sessions()
            .map(|(ticket, view)| {
                let state = if view.logged_in {
                    match self.phases.get(ticket) {
                        Some(phase) if phase == Phase::Idle as u8 => "idle",
                        Some(phase) if phase == Phase::Busy as u8 || phase == Phase::Partial as u8 => "busy",
                        _ => "active",
                    }
                } else if view.user.is_some() {
                    "leaving"
                } else {
                    "preauth"
                };
                WhoRow {
                    user: view.user.map(str::to_owned),
                    class: governor.class_name(view.class).to_owned(),
                    source: view.address,
                    state: state.to_owned(),
                    since_secs: now.since(view.since).as_secs(),
                }
            })
            .collect()
    }
}

/// Formats the text after `BYE [UNAVAILABLE]` or `NO [UNAVAILABLE]`.
pub fn unavailable_text(reason: roost_governor::Reason, retry_seconds: u32) -> String {
    let mut text = String::new();
    let _ = write!(text, "{}, retry in {retry_seconds} s", reason.describe());
    text
}
