//! The admission policies the simulator compares: four baselines that
//! model what administrators do without a governor, and an adapter around
//! the real Roost governor. The engine drives all five through
//! [`AdmissionPolicy`], so every policy sees the same clients.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use roost_governor::{Admission, Governor, LoginDecision, Network, Ticket, Time};

use crate::scenario::{Population, Scenario};

/// The policies, by the name the command line and reports use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// No admission control; the server collapses when overloaded.
    None,
    /// A hard session limit and a cap on the proxies' connections.
    ProxyCap,
    /// `ProxyCap`, plus every proxy connection cut each reset interval.
    ProxyCapReset,
    /// A hard session limit and a cap per user and address.
    PerUserIpCap,
    /// Roost's governor, built from the scenario's `[governor]` table.
    Roost,
}

impl PolicyKind {
    pub const ALL: [PolicyKind; 5] =
        [PolicyKind::None, PolicyKind::ProxyCap, PolicyKind::ProxyCapReset, PolicyKind::PerUserIpCap, PolicyKind::Roost];

    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::None => "none",
            PolicyKind::ProxyCap => "proxy-cap",
            PolicyKind::ProxyCapReset => "proxy-cap-reset-15m",
            PolicyKind::PerUserIpCap => "per-user-ip-cap",
            PolicyKind::Roost => "roost",
        }
    }

    /// Finds a policy by name; the error lists the valid names.
    pub fn from_name(name: &str) -> Result<PolicyKind, String> {
        PolicyKind::ALL.into_iter().find(|kind| kind.name() == name).ok_or_else(|| {
            let names: Vec<&str> = PolicyKind::ALL.iter().map(|kind| kind.name()).collect();
            format!("unknown policy \"{name}\"; valid policies are: {}", names.join(", "))
        })
    }
}

/// Why a connection was cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutKind {
    /// The governor took the slot for another login.
    Preemption,
    /// The governor rotated a session past its lease to let waiting users in.
    Rotation,
    /// The ungoverned server collapsed under load.
    Collapse,
    /// proxy-cap-reset-15m cut every proxy connection.
    Reset,
}

/// A connection the policy ended. The engine closes it and then calls
/// [`AdmissionPolicy::release`] on the ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cut {
    pub ticket: Ticket,
    pub kind: CutKind,
}

/// The outcome of a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connected {
    /// The connection may log in after `delay` plus the login time.
    Admitted { ticket: Ticket, delay: Duration },
    Refused,
}

/// What every simulated policy does. Each call takes the virtual time;
/// cuts the call makes are appended to `cuts`.
pub trait AdmissionPolicy {
    /// Decides on a new connection from `address`.
    fn connect(&mut self, now: Time, address: IpAddr) -> Connected;

    /// Decides on the login of `user` on `ticket`; returns whether the
    /// session holds a slot. On `false` the engine releases the ticket.
    /// `preemptible` tells whether a logged-in session may be cut now.
    fn login(
        &mut self,
        now: Time,
        ticket: Ticket,
        user: &str,
        preemptible: &mut dyn FnMut(Ticket) -> bool,
        cuts: &mut Vec<Cut>,
    ) -> bool;

    /// Ends a connection, whatever its stage, including one the policy cut.
    fn release(&mut self, now: Time, ticket: Ticket);

    /// Runs the periodic work, once per scenario `tick`.
    fn tick(&mut self, now: Time, preemptible: &mut dyn FnMut(Ticket) -> bool, cuts: &mut Vec<Cut>);

    /// Returns how long a login takes now, given the unloaded `base` time.
    fn login_time(&self, base: Duration) -> Duration {
        base
    }

    /// Returns the lease of the class the population's sessions land in;
    /// `None` when sessions are never rotated.
    fn lease(&self, _population: &Population) -> Option<Duration> {
        None
    }
}

/// Builds the policy `kind` for `scenario`.
pub fn build_policy(kind: PolicyKind, scenario: &Scenario) -> Result<Box<dyn AdmissionPolicy>, String> {
    let baselines = &scenario.baselines;
    let proxy_cap = || {
        let cap = baselines.proxy_cap.ok_or_else(|| {
            format!("policy {} needs baselines.proxy_cap; add it to the scenario", kind.name())
        })?;
        if baselines.proxy_networks.is_empty() {
            return Err(format!("policy {} needs baselines.proxy_networks; add it to the scenario", kind.name()));
        }
        Ok(ProxyCap {
            slots: SlotTable::new(&baselines.proxy_networks),
            capacity: scenario.capacity,
            cap,
            reset: None,
        })
    };
    Ok(match kind {
        PolicyKind::None => Box::new(NoLimit {
            slots: SlotTable::new(&[]),
            capacity: scenario.capacity,
            collapse_above: (f64::from(scenario.capacity) * scenario.collapse_factor).floor() as u32,
            restart_time: scenario.restart_time,
            down_until: Time::from_millis(0),
        }),
        PolicyKind::ProxyCap => Box::new(proxy_cap()?),
        PolicyKind::ProxyCapReset => {
            let mut policy = proxy_cap()?;
            let interval = baselines.reset_interval;
            policy.reset = Some(Reset { interval, next: Time::from_millis(0).after(interval) });
            Box::new(policy)
        }
        PolicyKind::PerUserIpCap => Box::new(PerUserIpCap {
            slots: SlotTable::new(&[]),
            capacity: scenario.capacity,
            max: baselines.per_user_ip_max,
            counts: HashMap::new(),
            users: HashMap::new(),
        }),
        PolicyKind::Roost => {
            let policy = scenario.governor.clone().ok_or_else(|| {
                "policy roost needs a [governor] table in the scenario; add one or leave roost out of --policies".to_owned()
            })?;
            Box::new(RoostPolicy { governor: Governor::new(policy) })
        }
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Free,
    Preauth,
    Session,
    /// Cut by the policy, waiting for the engine's release.
    Leaving,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    stage: Stage,
    address: IpAddr,
    proxy: bool,
}

/// The connections of a baseline policy. Tickets are reused after
/// release; the table is as large as the most connections open at once,
/// which is at most the number of simulated clients.
struct SlotTable {
    slots: Vec<Slot>,
    free: Vec<u32>,
    proxy_networks: Vec<Network>,
    /// Logged-in sessions.
    held: u32,
    /// Connections from proxy networks, pre-login and logged in.
    proxy_open: u32,
}

impl SlotTable {
    fn new(proxy_networks: &[Network]) -> SlotTable {
        SlotTable { slots: Vec::new(), free: Vec::new(), proxy_networks: proxy_networks.to_vec(), held: 0, proxy_open: 0 }
    }

    fn is_proxy(&self, address: IpAddr) -> bool {
        self.proxy_networks.iter().any(|network| network.contains(address))
    }

    fn open(&mut self, address: IpAddr) -> Ticket {
        let proxy = self.is_proxy(address);
        self.proxy_open += u32::from(proxy);
        let slot = Slot { stage: Stage::Preauth, address, proxy };
        match self.free.pop() {
            Some(index) => {
                self.slots[index as usize] = slot;
                Ticket(index)
            }
            None => {
                self.slots.push(slot);
                Ticket(self.slots.len() as u32 - 1)
            }
        }
    }

    fn stage(&self, ticket: Ticket) -> Stage {
        self.slots.get(ticket.0 as usize).map_or(Stage::Free, |slot| slot.stage)
    }

    fn admit(&mut self, ticket: Ticket) {
        if self.stage(ticket) == Stage::Preauth {
            self.slots[ticket.0 as usize].stage = Stage::Session;
            self.held += 1;
        }
    }

    /// Marks a live connection as cut; it stops counting at once.
    fn cut(&mut self, ticket: Ticket) {
        let slot = &mut self.slots[ticket.0 as usize];
        match slot.stage {
            Stage::Session => self.held -= 1,
            Stage::Preauth => {}
            Stage::Free | Stage::Leaving => return,
        }
        if slot.proxy {
            self.proxy_open -= 1;
        }
        slot.stage = Stage::Leaving;
    }

    /// Frees a connection; returns the stage it was in.
    fn release(&mut self, ticket: Ticket) -> Stage {
        let stage = self.stage(ticket);
        if stage == Stage::Free {
            return stage;
        }
        let slot = self.slots[ticket.0 as usize];
        if stage != Stage::Leaving && slot.proxy {
            self.proxy_open -= 1;
        }
        if stage == Stage::Session {
            self.held -= 1;
        }
        self.slots[ticket.0 as usize].stage = Stage::Free;
        self.free.push(ticket.0);
        stage
    }

    /// Returns the live connections (pre-login or logged in).
    fn live(&self) -> impl Iterator<Item = (Ticket, Slot)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| matches!(slot.stage, Stage::Preauth | Stage::Session))
            .map(|(index, slot)| (Ticket(index as u32), *slot))
    }
}

/// `none`: every connection and login is accepted. Logins slow down in
/// proportion to overload, and past `collapse_above` sessions the server
/// drops every connection and refuses new ones for `restart_time`.
struct NoLimit {
    slots: SlotTable,
    capacity: u32,
    collapse_above: u32,
    restart_time: Duration,
    down_until: Time,
}

impl AdmissionPolicy for NoLimit {
    fn connect(&mut self, now: Time, address: IpAddr) -> Connected {
        if now < self.down_until {
            return Connected::Refused;
        }
        Connected::Admitted { ticket: self.slots.open(address), delay: Duration::ZERO }
    }

    fn login(&mut self, now: Time, ticket: Ticket, _user: &str, _: &mut dyn FnMut(Ticket) -> bool, cuts: &mut Vec<Cut>) -> bool {
        if self.slots.stage(ticket) != Stage::Preauth {
            return false;
        }
        if self.slots.held + 1 > self.collapse_above {
            // The login that overloads the server fails with it.
            let victims: Vec<Ticket> = self.slots.live().map(|(other, _)| other).filter(|other| *other != ticket).collect();
            for victim in victims {
                self.slots.cut(victim);
                cuts.push(Cut { ticket: victim, kind: CutKind::Collapse });
            }
            self.down_until = now.after(self.restart_time);
            return false;
        }
        self.slots.admit(ticket);
        true
    }

    fn release(&mut self, _now: Time, ticket: Ticket) {
        self.slots.release(ticket);
    }

    fn tick(&mut self, _now: Time, _: &mut dyn FnMut(Ticket) -> bool, _cuts: &mut Vec<Cut>) {}

    fn login_time(&self, base: Duration) -> Duration {
        let load = f64::from(self.slots.held) / f64::from(self.capacity.max(1));
        base.mul_f64(load.max(1.0))
    }
}

struct Reset {
    interval: Duration,
    next: Time,
}

/// `proxy-cap` and `proxy-cap-reset-15m`: a hard limit of `capacity`
/// sessions, like a server's process limit, and at most `cap` connections
/// from the proxy networks together, like a firewall's connection limit.
/// Counting connections rather than sessions keeps the proxies' sessions
/// under the cap too.
struct ProxyCap {
    slots: SlotTable,
    capacity: u32,
    cap: u32,
    reset: Option<Reset>,
}

impl AdmissionPolicy for ProxyCap {
    fn connect(&mut self, _now: Time, address: IpAddr) -> Connected {
        if self.slots.is_proxy(address) && self.slots.proxy_open >= self.cap {
            return Connected::Refused;
        }
        Connected::Admitted { ticket: self.slots.open(address), delay: Duration::ZERO }
    }

    fn login(&mut self, _now: Time, ticket: Ticket, _user: &str, _: &mut dyn FnMut(Ticket) -> bool, _cuts: &mut Vec<Cut>) -> bool {
        if self.slots.stage(ticket) != Stage::Preauth || self.slots.held >= self.capacity {
            return false;
        }
        self.slots.admit(ticket);
        true
    }

    fn release(&mut self, _now: Time, ticket: Ticket) {
        self.slots.release(ticket);
    }

    fn tick(&mut self, now: Time, _: &mut dyn FnMut(Ticket) -> bool, cuts: &mut Vec<Cut>) {
        let Some(reset) = &mut self.reset else { return };
        if now < reset.next {
            return;
        }
        while reset.next <= now {
            reset.next = reset.next.after(reset.interval);
        }
        let victims: Vec<Ticket> = self.slots.live().filter(|(_, slot)| slot.proxy).map(|(ticket, _)| ticket).collect();
        for victim in victims {
            self.slots.cut(victim);
            cuts.push(Cut { ticket: victim, kind: CutKind::Reset });
        }
    }
}

/// `per-user-ip-cap`: a hard limit of `capacity` sessions and at most
/// `max` sessions per user and address, as Dovecot's
/// `mail_max_userip_connections` sets.
struct PerUserIpCap {
    slots: SlotTable,
    capacity: u32,
    max: u32,
    /// Sessions per user and address; entries at zero are removed, so the
    /// map is no larger than the sessions held.
    counts: HashMap<(Box<str>, IpAddr), u32>,
    /// User of each logged-in session, by ticket.
    users: HashMap<u32, Box<str>>,
}

impl PerUserIpCap {
    fn key(&self, ticket: Ticket, user: &str) -> (Box<str>, IpAddr) {
        (user.into(), self.slots.slots[ticket.0 as usize].address)
    }
}

impl AdmissionPolicy for PerUserIpCap {
    fn connect(&mut self, _now: Time, address: IpAddr) -> Connected {
        Connected::Admitted { ticket: self.slots.open(address), delay: Duration::ZERO }
    }

    fn login(&mut self, _now: Time, ticket: Ticket, user: &str, _: &mut dyn FnMut(Ticket) -> bool, _cuts: &mut Vec<Cut>) -> bool {
        if self.slots.stage(ticket) != Stage::Preauth || self.slots.held >= self.capacity {
            return false;
        }
        let key = self.key(ticket, user);
        let count = self.counts.entry(key).or_default();
        if *count >= self.max {
            return false;
        }
        *count += 1;
        self.slots.admit(ticket);
        self.users.insert(ticket.0, user.into());
        true
    }

    fn release(&mut self, _now: Time, ticket: Ticket) {
        let address = self.slots.slots.get(ticket.0 as usize).map(|slot| slot.address);
        if self.slots.release(ticket) == Stage::Session
            && let (Some(user), Some(address)) = (self.users.remove(&ticket.0), address)
        {
            let key = (user, address);
            if let Some(count) = self.counts.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    self.counts.remove(&key);
                }
            }
        }
    }

    fn tick(&mut self, _now: Time, _: &mut dyn FnMut(Ticket) -> bool, _cuts: &mut Vec<Cut>) {}
}

/// `roost`: the real governor. Preemption victims and rotations become
/// cuts; a client's retry hints are the behaviour model's to use or ignore.
struct RoostPolicy {
    governor: Governor,
}

impl AdmissionPolicy for RoostPolicy {
    fn connect(&mut self, now: Time, address: IpAddr) -> Connected {
        match self.governor.connect(now, address) {
            Admission::Admit { ticket, delay, .. } => Connected::Admitted { ticket, delay },
            Admission::Refuse { .. } => Connected::Refused,
        }
    }

    fn login(
        &mut self,
        now: Time,
        ticket: Ticket,
        user: &str,
        preemptible: &mut dyn FnMut(Ticket) -> bool,
        cuts: &mut Vec<Cut>,
    ) -> bool {
        match self.governor.login(now, ticket, user, &[], preemptible) {
            LoginDecision::Admit { .. } => true,
            LoginDecision::Preempt { victim, .. } => {
                cuts.push(Cut { ticket: victim, kind: CutKind::Preemption });
                true
            }
            LoginDecision::Refuse { .. } => false,
        }
    }

    fn release(&mut self, now: Time, ticket: Ticket) {
        self.governor.release(now, ticket);
    }

    fn tick(&mut self, now: Time, preemptible: &mut dyn FnMut(Ticket) -> bool, cuts: &mut Vec<Cut>) {
        let mut rotations = Vec::new();
        self.governor.tick(now, preemptible, &mut rotations);
        cuts.extend(rotations.into_iter().map(|rotation| Cut { ticket: rotation.ticket, kind: CutKind::Rotation }));
    }

    /// Finds the class by the population's name, else the first class
    /// whose networks hold the population's first address and that does
    /// not match on users, groups or client names.
    fn lease(&self, population: &Population) -> Option<Duration> {
        let policy = self.governor.policy();
        if let Some(class) = self.governor.class_by_name(&population.name) {
            return policy.classes.get(usize::from(class.0)).unwrap_or(&policy.default_class).lease;
        }
        let address = population.address_at(0);
        policy
            .classes
            .iter()
            .filter(|class| !class.needs_user() && class.client_ids.is_empty())
            .find(|class| class.networks.is_empty() || class.networks.iter().any(|network| network.contains(address)))
            .unwrap_or(&policy.default_class)
            .lease
    }
}
