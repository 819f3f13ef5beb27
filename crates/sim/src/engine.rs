//! The discrete-event engine: one run of one policy over a scenario, in
//! virtual time.
//!
//! Events wait in a binary heap ordered by time and then by the order in
//! which they were planned, so a run is deterministic. A client plans at
//! most four live events at once (a wake, a connect or login, a logout and
//! a busy flip); events of a connection that was cut stay in the heap as
//! stale entries until their time and are then dropped.
//!
//! NOTE: the heap is not capped. Its size is the client count times four
//! plus the stale entries: at most two per cut or logout, each dropped
//! within a session length or busy spell.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Instant;

use roost_governor::{Ticket, Time};

use crate::behaviour::{Client, Next, Stage};
use crate::policies::{AdmissionPolicy, Cut, CutKind, PolicyKind, build_policy};
use crate::report::{ClassReport, PolicyReport, Series, WaitHistogram, jain_index};
use crate::scenario::Scenario;

/// Marks a ticket that no client holds.
const NO_CLIENT: u32 = u32::MAX;

/// The result of one policy's run.
pub struct PolicyRun {
    pub report: PolicyReport,
    pub series: Series,
}

#[derive(Clone, Copy, Debug)]
enum Event {
    Tick,
    Sample,
    /// A client starts a sync or work spell.
    Wake(u32),
    /// A client opens a connection; the second field is its epoch.
    Connect(u32, u32),
    Login(u32, u32, Ticket),
    Logout(u32, u32),
    Busy(u32, u32),
}

struct Scheduled {
    at: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    /// Reversed, so that the max-heap pops the earliest event first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Counts of one report group (the clients of one population name).
#[derive(Default)]
struct GroupStats {
    served: u64,
    refused: u64,
    completed: u64,
    preemptions: u64,
    rotations: u64,
    collapse_cuts: u64,
    reset_cuts: u64,
    held: u32,
    peak: u32,
    waits: WaitHistogram,
}

struct Engine<'a> {
    scenario: &'a Scenario,
    policy: Box<dyn AdmissionPolicy>,
    clients: Vec<Client>,
    /// The client of each ticket, or `NO_CLIENT`. A client has at most one
    /// ticket at a time and policies reuse released tickets, so this is
    /// about as long as the client count.
    owners: Vec<u32>,
    events: BinaryHeap<Scheduled>,
    seq: u64,
    groups: Vec<GroupStats>,
    series: Series,
    cuts: Vec<Cut>,
    decisions: u64,
    collapses: u64,
    resets: u64,
}

/// Runs `kind` over `scenario` and reports per population name.
pub fn simulate(scenario: &Scenario, kind: PolicyKind) -> Result<PolicyRun, String> {
    let policy = build_policy(kind, scenario)?;
    let mut names: Vec<String> = Vec::new();
    let mut clients = Vec::new();
    for population in &scenario.populations {
        let group = match names.iter().position(|name| *name == population.name) {
            Some(group) => group,
            None => {
                names.push(population.name.clone());
                names.len() - 1
            }
        };
        for number in 0..population.count {
            let index = clients.len() as u32;
            clients.push(Client::new(population, group as u16, number, index, scenario.seed));
        }
    }
    let series = Series::new(scenario, &names);
    let mut engine = Engine {
        scenario,
        policy,
        groups: names.iter().map(|_| GroupStats::default()).collect(),
        owners: Vec::with_capacity(clients.len()),
        events: BinaryHeap::with_capacity(clients.len() * 2 + 2),
        clients,
        seq: 0,
        series,
        cuts: Vec::new(),
        decisions: 0,
        collapses: 0,
        resets: 0,
    };

    let started = Instant::now();
    engine.run();
    let wall_seconds = started.elapsed().as_secs_f64();

    let report = engine.report(kind, &names, wall_seconds);
    Ok(PolicyRun { report, series: engine.series })
}

impl Engine<'_> {
    fn schedule(&mut self, at: Time, event: Event) {
        self.seq += 1;
        self.events.push(Scheduled { at: at.as_millis(), seq: self.seq, event });
    }

    fn follow(&mut self, client: u32, next: Next) {
        match next {
            Next::Nothing => {}
            Next::Connect(at) => {
                let epoch = self.clients[client as usize].epoch;
                self.schedule(at, Event::Connect(client, epoch));
            }
            Next::Wake(at) => self.schedule(at, Event::Wake(client)),
        }
    }

    fn run(&mut self) {
        let start = Time::from_millis(0);
        self.schedule(start, Event::Tick);
        self.schedule(start, Event::Sample);
        for client in 0..self.clients.len() as u32 {
            let next = self.clients[client as usize].start();
            self.follow(client, next);
        }

        let end = self.scenario.duration.as_millis() as u64;
        while let Some(scheduled) = self.events.pop() {
            if scheduled.at >= end {
                break;
            }
            let now = Time::from_millis(scheduled.at);
            match scheduled.event {
                Event::Tick => self.tick(now),
                Event::Sample => {
                    let held: Vec<u32> = self.groups.iter().map(|group| group.held).collect();
                    self.series.record(now, &held);
                    self.schedule(now.after(self.scenario.sample_interval), Event::Sample);
                }
                Event::Wake(client) => {
                    let (connect, next) = self.clients[client as usize].wake(now);
                    self.follow(client, next);
                    if connect {
                        self.connect(now, client);
                    }
                }
                Event::Connect(client, epoch) => {
                    let state = &self.clients[client as usize];
                    if state.epoch == epoch && state.stage == Stage::Offline {
                        self.connect(now, client);
                    }
                }
                Event::Login(client, epoch, ticket) => {
                    let state = &self.clients[client as usize];
                    if state.epoch == epoch && state.stage == Stage::Connecting(ticket) {
                        self.login(now, client, ticket);
                    }
                }
                Event::Logout(client, epoch) => {
                    let state = &self.clients[client as usize];
                    if state.epoch == epoch
                        && let Stage::Session { ticket, .. } = state.stage
                    {
                        self.logout(now, client, ticket);
                    }
                }
                Event::Busy(client, epoch) => {
                    let state = &mut self.clients[client as usize];
                    if state.epoch == epoch
                        && matches!(state.stage, Stage::Session { .. })
                        && let Some(at) = state.toggle_busy(now)
                    {
                        self.schedule(at, Event::Busy(client, epoch));
                    }
                }
            }
        }

        let end = Time::from_millis(end);
        for client in &mut self.clients {
            client.finish(end);
            if let Some(since) = client.waiting_since {
                self.groups[usize::from(client.group)].waits.record(end.since(since));
            }
        }
    }

    fn set_owner(&mut self, ticket: Ticket, client: u32) {
        let index = ticket.0 as usize;
        if self.owners.len() <= index {
            self.owners.resize(index + 1, NO_CLIENT);
        }
        self.owners[index] = client;
    }

    fn release(&mut self, now: Time, ticket: Ticket) {
        self.decisions += 1;
        self.policy.release(now, ticket);
        if let Some(owner) = self.owners.get_mut(ticket.0 as usize) {
            *owner = NO_CLIENT;
        }
    }

    fn connect(&mut self, now: Time, client: u32) {
        self.decisions += 1;
        let address = self.clients[client as usize].address;
        match self.policy.connect(now, address) {
            crate::policies::Connected::Admitted { ticket, delay } => {
                self.set_owner(ticket, client);
                let state = &mut self.clients[client as usize];
                state.stage = Stage::Connecting(ticket);
                let epoch = state.epoch;
                let login_at = now.after(delay).after(self.policy.login_time(self.scenario.login_time));
                self.schedule(login_at, Event::Login(client, epoch, ticket));
            }
            crate::policies::Connected::Refused => self.refuse(now, client),
        }
    }

    fn refuse(&mut self, now: Time, client: u32) {
        let state = &mut self.clients[client as usize];
        self.groups[usize::from(state.group)].refused += 1;
        let next = state.refused(now);
        self.follow(client, next);
    }

    fn login(&mut self, now: Time, client: u32, ticket: Ticket) {
        self.decisions += 1;
        let Engine { policy, clients, owners, cuts, .. } = self;
        let mut preemptible = |candidate: Ticket| {
            owners
                .get(candidate.0 as usize)
                .and_then(|owner| clients.get(*owner as usize))
                .is_some_and(Client::preemptible)
        };
        let user = &clients[client as usize].user;
        let admitted = policy.login(now, ticket, user, &mut preemptible, cuts);
        let cut_count = cuts.len();

        if admitted {
            let state = &mut self.clients[client as usize];
            let group = &mut self.groups[usize::from(state.group)];
            if let Some(since) = state.waiting_since {
                group.waits.record(now.since(since));
            }
            group.served += 1;
            group.held += 1;
            group.peak = group.peak.max(group.held);
            let epoch = state.epoch;
            let (logout, busy) = state.admitted(now, ticket);
            if let Some(at) = logout {
                self.schedule(at, Event::Logout(client, epoch));
            }
            if let Some(at) = busy {
                self.schedule(at, Event::Busy(client, epoch));
            }
        } else {
            self.release(now, ticket);
            self.refuse(now, client);
        }
        if cut_count > 0 {
            self.apply_cuts(now);
        }
    }

    fn logout(&mut self, now: Time, client: u32, ticket: Ticket) {
        self.release(now, ticket);
        let state = &mut self.clients[client as usize];
        let group = &mut self.groups[usize::from(state.group)];
        group.held -= 1;
        group.completed += 1;
        let next = state.logged_out(now);
        self.follow(client, next);
    }

    fn tick(&mut self, now: Time) {
        self.decisions += 1;
        let Engine { policy, clients, owners, cuts, .. } = self;
        let mut preemptible = |candidate: Ticket| {
            owners
                .get(candidate.0 as usize)
                .and_then(|owner| clients.get(*owner as usize))
                .is_some_and(Client::preemptible)
        };
        policy.tick(now, &mut preemptible, cuts);
        if !self.cuts.is_empty() {
            self.apply_cuts(now);
        }
        self.schedule(now.after(self.scenario.tick), Event::Tick);
    }

    /// Closes the connections the policy cut: the client sees a BYE (or a
    /// dropped connection) and the ticket is released.
    fn apply_cuts(&mut self, now: Time) {
        let cuts = std::mem::take(&mut self.cuts);
        if cuts.iter().any(|cut| cut.kind == CutKind::Collapse) {
            self.collapses += 1;
        }
        if cuts.iter().any(|cut| cut.kind == CutKind::Reset) {
            self.resets += 1;
        }
        for cut in &cuts {
            let owner = self.owners.get(cut.ticket.0 as usize).copied().unwrap_or(NO_CLIENT);
            self.release(now, cut.ticket);
            if owner == NO_CLIENT {
                continue;
            }
            let state = &mut self.clients[owner as usize];
            match state.stage {
                // A connection cut before its login ran is a refused login.
                Stage::Connecting(ticket) if ticket == cut.ticket => self.refuse(now, owner),
                Stage::Session { ticket, .. } if ticket == cut.ticket => {
                    let group = &mut self.groups[usize::from(state.group)];
                    group.held -= 1;
                    match cut.kind {
                        CutKind::Preemption => group.preemptions += 1,
                        CutKind::Rotation => group.rotations += 1,
                        CutKind::Collapse => group.collapse_cuts += 1,
                        CutKind::Reset => group.reset_cuts += 1,
                    }
                    let next = state.cut(now);
                    self.follow(owner, next);
                }
                _ => {}
            }
        }
        // Hand the buffer back so its allocation is reused.
        self.cuts = cuts;
        self.cuts.clear();
    }

    fn report(&self, kind: PolicyKind, names: &[String], wall_seconds: f64) -> PolicyReport {
        let duration_s = self.scenario.duration.as_secs_f64();
        let slot_seconds = f64::from(self.scenario.capacity) * duration_s;
        let classes = names
            .iter()
            .enumerate()
            .map(|(index, name)| {
                let stats = &self.groups[index];
                let members: Vec<&Client> = self.clients.iter().filter(|client| usize::from(client.group) == index).collect();
                let connected: Vec<f64> = members.iter().map(|client| client.connected_ms as f64 / 1000.0).collect();
                let connected_total: f64 = connected.iter().sum();
                let population = self.scenario.populations.iter().find(|population| population.name == *name);
                let lease_s = population.and_then(|population| self.policy.lease(population)).map_or(0.0, |lease| lease.as_secs_f64());
                let attempts = stats.served + stats.refused;
                let cuts = stats.preemptions + stats.rotations + stats.collapse_cuts + stats.reset_cuts;
                ClassReport {
                    name: name.clone(),
                    behaviour: population.map_or("", |population| population.behaviour.label()).to_owned(),
                    clients: members.len() as u64,
                    logins_served: stats.served,
                    logins_refused: stats.refused,
                    served_fraction: if attempts == 0 { 1.0 } else { stats.served as f64 / attempts as f64 },
                    jain_connected_time: jain_index(&connected),
                    max_wait_s: stats.waits.max_seconds(),
                    p99_wait_s: stats.waits.percentile_seconds(0.99),
                    p90_wait_s: stats.waits.percentile_seconds(0.90),
                    p50_wait_s: stats.waits.percentile_seconds(0.50),
                    waits: stats.waits.count(),
                    lease_s,
                    rotations: stats.rotations,
                    preemptions: stats.preemptions,
                    collapse_cuts: stats.collapse_cuts,
                    reset_cuts: stats.reset_cuts,
                    cuts,
                    sessions_completed: stats.completed,
                    connected_share: if slot_seconds > 0.0 { connected_total / slot_seconds } else { 0.0 },
                    connected_s_mean: if members.is_empty() { 0.0 } else { connected_total / members.len() as f64 },
                    peak_sessions: stats.peak,
                }
            })
            .collect();
        PolicyReport {
            name: kind.name().to_owned(),
            decisions_per_second: if wall_seconds > 0.0 { self.decisions as f64 / wall_seconds } else { 0.0 },
            decisions: self.decisions,
            wall_seconds,
            collapses: self.collapses,
            resets: self.resets,
            classes,
        }
    }
}
