//! The simulated clients: their state and what each behaviour does next
//! after a connection is admitted, refused, cut or ended.
//!
//! Every client draws from its own random generator, seeded from the
//! scenario seed and its index, so a client's draws do not depend on what
//! other clients did. The same seed thus gives the same client behaviour
//! under every policy, up to the policy's own decisions.

use std::net::IpAddr;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use roost_governor::{Ticket, Time};

use crate::scenario::{AddressAssignment, Behaviour, DelayRange, Population};

/// Mean length of an interactive client's busy spell (a command running).
const BUSY_SPELL_MEAN: Duration = Duration::from_secs(5);

/// Stage of a client's connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Offline,
    /// Connected and waiting for its login to run.
    Connecting(Ticket),
    /// Logged in since `since`.
    Session { ticket: Ticket, since: Time },
}

/// Action a client plans for a later time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    Nothing,
    /// Open a new connection.
    Connect(Time),
    /// Start the next sync or work spell.
    Wake(Time),
}

/// One simulated client: one user at one fixed address.
pub struct Client {
    /// Index of the report group (the population name).
    pub group: u16,
    pub behaviour: Behaviour,
    pub address: IpAddr,
    pub user: Box<str>,
    rng: SmallRng,
    /// Bumped whenever the client's connection ends or a new one is
    /// planned, so that events planned for an earlier connection are
    /// recognised as stale.
    pub epoch: u32,
    pub stage: Stage,
    /// Busy clients are in the middle of a command and must not be cut.
    pub busy: bool,
    /// End of an interactive client's current work spell.
    work_until: Time,
    /// Length of an interactive client's first work spell, when it starts
    /// the run in the middle of one.
    first_spell: Option<Duration>,
    /// Start of the current wait: the first refusal since the client last
    /// held a session.
    pub waiting_since: Option<Time>,
    /// Milliseconds logged in over the run.
    pub connected_ms: u64,
}

impl Client {
    /// Creates client `index` of `population`; `number` is its position
    /// in the population, from 0.
    pub fn new(population: &Population, group: u16, number: u32, index: u32, seed: u64) -> Client {
        // Distinct, well-mixed seeds per client: SplitMix64 of seed and index.
        let mut rng = SmallRng::seed_from_u64(split_mix(seed ^ split_mix(u64::from(index))));
        let address = match population.addresses {
            AddressAssignment::Spread => population.address_at(u128::from(number)),
            AddressAssignment::Random => {
                let count = population.address_count().max(1);
                population.address_at(rng.random_range(0..count))
            }
        };
        Client {
            group,
            behaviour: population.behaviour,
            address,
            user: format!("{}{}", population.user_prefix, number + 1).into(),
            rng,
            epoch: 0,
            stage: Stage::Offline,
            busy: false,
            work_until: Time::from_millis(0),
            first_spell: None,
            waiting_since: None,
            connected_ms: 0,
        }
    }

    /// Returns whether the governor may cut the client's session now.
    pub fn preemptible(&self) -> bool {
        !self.busy
    }

    /// Returns the client's first action. Holders connect within their
    /// reconnect delay of the start, as proxies waiting for a server to
    /// come up do. Pollers and interactive clients start as if they had
    /// been running for a long time, so that their load has no start-up
    /// surge: the first wake is drawn from the renewal process's
    /// stationary residual time (see [`Client::residual`]).
    pub fn start(&mut self) -> Next {
        let zero = Time::from_millis(0);
        match self.behaviour {
            Behaviour::Holder { reconnect_delay } => Next::Connect(zero.after(self.delay(reconnect_delay))),
            Behaviour::Poller { interval, .. } => Next::Wake(zero.after(self.residual(interval))),
            Behaviour::Interactive { interval, session, .. } => {
                // In a work spell at the start with the probability that
                // the spell takes of the whole cycle.
                let working = session.as_secs_f64() / (session + interval).as_secs_f64();
                if self.rng.random_bool(working) {
                    self.first_spell = Some(self.residual(session));
                    Next::Wake(zero)
                } else {
                    Next::Wake(zero.after(self.residual(interval)))
                }
            }
        }
    }

    /// Draws the time left of a spell whose length is uniform from 0.5 to
    /// 1.5 times `mean`, seen at a random moment: a length-biased draw
    /// (density proportional to the length) times a uniform fraction.
    fn residual(&mut self, mean: Duration) -> Duration {
        let (low, high) = (mean.as_secs_f64() * 0.5, mean.as_secs_f64() * 1.5);
        let u: f64 = self.rng.random();
        let length = (low * low + u * (high * high - low * low)).sqrt();
        let fraction: f64 = self.rng.random();
        Duration::from_secs_f64(length * fraction)
    }

    /// Starts a sync or work spell at `now`. Returns whether to connect
    /// now and when to wake next.
    pub fn wake(&mut self, now: Time) -> (bool, Next) {
        match self.behaviour {
            Behaviour::Holder { .. } => (false, Next::Nothing),
            Behaviour::Poller { interval, .. } => {
                // A sync still running when the next is due skips that one.
                let next = Next::Wake(now.after(self.around(interval)));
                (self.stage == Stage::Offline, next)
            }
            Behaviour::Interactive { session, .. } => {
                let spell = match self.first_spell.take() {
                    Some(spell) => spell,
                    None => self.around(session),
                };
                self.work_until = now.after(spell);
                (self.stage == Stage::Offline, Next::Nothing)
            }
        }
    }

    /// Sets up a session admitted at `now`. Returns when the client logs
    /// out, if it does, and when its first busy spell starts, if it has one.
    pub fn admitted(&mut self, now: Time, ticket: Ticket) -> (Option<Time>, Option<Time>) {
        self.stage = Stage::Session { ticket, since: now };
        self.waiting_since = None;
        match self.behaviour {
            Behaviour::Holder { .. } => {
                self.busy = false;
                (None, None)
            }
            Behaviour::Poller { session, .. } => {
                self.busy = true;
                (Some(now.after(self.around(session))), None)
            }
            Behaviour::Interactive { busy_fraction, .. } => {
                self.busy = false;
                let logout = self.work_until.max(now.after(Duration::from_millis(1)));
                let busy = self.idle_spell(busy_fraction).map(|spell| now.after(spell));
                (Some(logout), busy)
            }
        }
    }

    /// Flips an interactive session between busy and idle. Returns when
    /// it flips again.
    pub fn toggle_busy(&mut self, now: Time) -> Option<Time> {
        let Behaviour::Interactive { busy_fraction, .. } = self.behaviour else { return None };
        self.busy = !self.busy;
        let spell = if self.busy { Some(self.around(BUSY_SPELL_MEAN)) } else { self.idle_spell(busy_fraction) };
        spell.map(|spell| now.after(spell))
    }

    /// Records a refused connection or login at `now`; returns what the
    /// client does next.
    pub fn refused(&mut self, now: Time) -> Next {
        self.end_connection(now);
        self.waiting_since.get_or_insert(now);
        self.retry(now)
    }

    /// Records that the client's connection was cut at `now`; returns
    /// what it does next. A poller's sync counts as failed and it waits
    /// for its next sync.
    pub fn cut(&mut self, now: Time) -> Next {
        self.end_connection(now);
        self.retry(now)
    }

    /// Records a logout at `now`; returns when the client wakes next.
    pub fn logged_out(&mut self, now: Time) -> Next {
        self.end_connection(now);
        match self.behaviour {
            Behaviour::Interactive { interval, .. } => Next::Wake(now.after(self.around(interval))),
            _ => Next::Nothing,
        }
    }

    /// Adds the time of a session still held at `end` to the connected time.
    pub fn finish(&mut self, end: Time) {
        if let Stage::Session { since, .. } = self.stage {
            self.connected_ms += end.since(since).as_millis() as u64;
        }
    }

    fn end_connection(&mut self, now: Time) {
        self.finish(now);
        self.stage = Stage::Offline;
        self.busy = false;
        self.epoch = self.epoch.wrapping_add(1);
    }

    fn retry(&mut self, now: Time) -> Next {
        match self.behaviour {
            Behaviour::Holder { reconnect_delay } => Next::Connect(now.after(self.delay(reconnect_delay))),
            Behaviour::Poller { .. } => Next::Nothing,
            Behaviour::Interactive { interval, reconnect_delay, .. } => {
                let retry = now.after(self.delay(reconnect_delay));
                if retry < self.work_until {
                    Next::Connect(retry)
                } else {
                    // The work spell is over; come back at the next one.
                    Next::Wake(self.work_until.max(now).after(self.around(interval)))
                }
            }
        }
    }

    /// Draws a delay uniformly from `range`.
    fn delay(&mut self, range: DelayRange) -> Duration {
        let (min, max) = (range.min.as_millis() as u64, range.max.as_millis() as u64);
        Duration::from_millis(self.rng.random_range(min..=max.max(min)))
    }

    /// Draws a duration uniformly from 0.5 to 1.5 times `mean`, at least 1 ms.
    fn around(&mut self, mean: Duration) -> Duration {
        let mean = mean.as_millis() as u64;
        Duration::from_millis(self.rng.random_range(mean / 2..=mean + mean / 2).max(1))
    }

    /// Draws an idle spell so that busy spells take `busy_fraction` of
    /// the logged-in time; `None` when the client is never busy.
    fn idle_spell(&mut self, busy_fraction: f64) -> Option<Duration> {
        if busy_fraction <= 0.0 {
            return None;
        }
        Some(self.around(BUSY_SPELL_MEAN.mul_f64((1.0 - busy_fraction) / busy_fraction)))
    }
}

/// SplitMix64's output function, to turn nearby integers into unrelated seeds.
fn split_mix(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
