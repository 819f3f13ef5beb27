//! Times the governor's decisions at the size of the proxy-storm scenario.
//!
//! The governor is built from a scenario's `[governor]` table (default
//! scenarios/proxy-storm.toml) and filled with the sessions the campus and
//! the proxies hold there (1,000 and 850). Each cycle then opens a
//! connection, logs it in and releases a session, in virtual time that
//! advances 1 ms per cycle, with a tick every simulated second:
//! - a campus cycle logs a new campus user in and releases the oldest
//!   campus session, so the live population stays the same;
//! - a proxy cycle logs a phone in while the proxies' slots are full, so
//!   the login is refused (or takes a slot that rotation freed) and the
//!   connection is released. User names repeat every 20,000 cycles, so a
//!   phone sometimes logs in again while it has a session, and another
//!   phone then takes one of its two sessions by the per-user share.
//!
//! Usage: governor-bench [MILLION_CYCLES] [SCENARIO]
//! Prints the nanoseconds per decision (connect, login, release or tick).

use std::collections::VecDeque;
use std::hint::black_box;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use roost_governor::{Admission, Governor, LoginDecision, Ticket, Time};

/// Campus sessions held at the start, as in proxy-storm.
const CAMPUS_SESSIONS: usize = 1000;
/// Distinct users per class; names are made before timing starts.
const USERS: usize = 20_000;

struct Bench {
    governor: Governor,
    now: u64,
    decisions: u64,
    rotations: Vec<roost_governor::Rotation>,
}

impl Bench {
    fn at(&self) -> Time {
        Time::from_millis(self.now)
    }

    /// Connects from `address` and logs `user` in; returns the ticket
    /// and whether the login took a slot.
    fn login(&mut self, address: IpAddr, user: &str) -> Option<(Ticket, bool)> {
        let now = self.at();
        self.decisions += 1;
        let Admission::Admit { ticket, .. } = self.governor.connect(now, address) else { return None };
        self.decisions += 1;
        let decision = self.governor.login(now, ticket, user, &[], &mut |_| true);
        let admitted = match decision {
            LoginDecision::Admit { .. } => true,
            LoginDecision::Preempt { victim, .. } => {
                self.release(victim);
                true
            }
            LoginDecision::Refuse { .. } => false,
        };
        Some((ticket, admitted))
    }

    fn release(&mut self, ticket: Ticket) {
        self.decisions += 1;
        self.governor.release(self.at(), ticket);
    }

    /// Advances the clock by 1 ms and ticks once per simulated second.
    fn advance(&mut self, proxies: &mut VecDeque<Ticket>) {
        self.now += 1;
        if self.now.is_multiple_of(1000) {
            self.decisions += 1;
            let mut rotations = std::mem::take(&mut self.rotations);
            self.governor.tick(self.at(), &mut |_| true, &mut rotations);
            for rotation in rotations.drain(..) {
                proxies.retain(|ticket| *ticket != rotation.ticket);
                self.release(rotation.ticket);
            }
            self.rotations = rotations;
        }
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let millions: f64 = match args.next().map(|text| text.parse::<f64>()) {
        None => 2.0,
        Some(Ok(value)) if value > 0.0 && value <= 1000.0 => value,
        Some(_) => {
            eprintln!("governor-bench: MILLION_CYCLES must be a number above 0 and at most 1000, such as 2 or 0.5");
            return ExitCode::FAILURE;
        }
    };
    let path = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/proxy-storm.toml"));
    let scenario = match roost_sim::load_scenario(&path) {
        Ok(scenario) => scenario,
        Err(err) => {
            eprintln!("governor-bench: {err}");
            return ExitCode::FAILURE;
        }
    };
    let Some(policy) = scenario.governor.clone() else {
        eprintln!("governor-bench: {} has no [governor] table; pass a scenario with one", path.display());
        return ExitCode::FAILURE;
    };
    let Some(proxy_population) = scenario.populations.iter().find(|population| population.name == "proxy") else {
        eprintln!("governor-bench: {} has no population named \"proxy\"", path.display());
        return ExitCode::FAILURE;
    };
    let Some(campus_population) = scenario.populations.iter().find(|population| population.name != "proxy") else {
        eprintln!("governor-bench: {} needs a population besides \"proxy\"", path.display());
        return ExitCode::FAILURE;
    };

    let campus_users: Vec<String> = (0..USERS).map(|i| format!("campus{i}")).collect();
    let phone_users: Vec<String> = (0..USERS).map(|i| format!("phone{i}")).collect();
    let campus_addresses: Vec<IpAddr> = (0..USERS).map(|i| campus_population.address_at(i as u128)).collect();
    let proxy_addresses: Vec<IpAddr> = (0..4).map(|i| proxy_population.address_at(i)).collect();

    let mut bench = Bench { governor: Governor::new(policy), now: 0, decisions: 0, rotations: Vec::new() };
    let mut campus: VecDeque<Ticket> = VecDeque::new();
    let mut proxies: VecDeque<Ticket> = VecDeque::new();
    for i in 0..CAMPUS_SESSIONS {
        if let Some((ticket, true)) = bench.login(campus_addresses[i], &campus_users[i]) {
            campus.push_back(ticket);
        }
    }
    // Phones take every slot the campus reservation leaves them.
    for i in 0..USERS {
        match bench.login(proxy_addresses[i % 4], &phone_users[i]) {
            Some((ticket, true)) => proxies.push_back(ticket),
            Some((ticket, false)) => {
                bench.release(ticket);
                break;
            }
            None => break,
        }
    }
    let (preauth, held) = bench.governor.totals();
    println!(
        "policy from {}: {held} live sessions ({} campus, {} proxy), {preauth} pre-login",
        path.display(),
        campus.len(),
        proxies.len()
    );

    let cycles = (millions * 1_000_000.0) as u64;
    bench.decisions = 0;
    let started = Instant::now();
    for cycle in 0..cycles {
        let index = (cycle as usize) % USERS;
        if cycle % 2 == 0 {
            if let Some((ticket, admitted)) = bench.login(campus_addresses[index], &campus_users[index]) {
                if admitted {
                    campus.push_back(ticket);
                    if let Some(oldest) = campus.pop_front() {
                        bench.release(oldest);
                    }
                } else {
                    bench.release(ticket);
                }
            }
        } else if let Some((ticket, admitted)) = bench.login(proxy_addresses[index % 4], &phone_users[index]) {
            if admitted {
                proxies.push_back(ticket);
            } else {
                bench.release(ticket);
            }
        }
        bench.advance(&mut proxies);
    }
    let elapsed = started.elapsed();
    black_box(&bench.governor);

    let (preauth, held) = bench.governor.totals();
    let nanos = elapsed.as_nanos() as f64 / bench.decisions.max(1) as f64;
    println!(
        "{cycles} cycles, {} decisions in {:.3} s: {nanos:.0} ns per decision, {:.2} million decisions per second",
        bench.decisions,
        elapsed.as_secs_f64(),
        bench.decisions as f64 / elapsed.as_secs_f64() / 1e6
    );
    println!("at the end: {held} live sessions, {preauth} pre-login, {} simulated seconds", bench.now / 1000);
    let mut kinds: Vec<(&str, u64)> = Vec::new();
    for (_, kind, _, count) in bench.governor.decision_counts() {
        match kinds.iter_mut().find(|(label, _)| *label == kind.label()) {
            Some((_, total)) => *total += count,
            None => kinds.push((kind.label(), count)),
        }
    }
    let kinds: Vec<String> = kinds.iter().map(|(label, count)| format!("{label} {count}")).collect();
    println!("governor decisions, fill included: {}", kinds.join(", "));
    ExitCode::SUCCESS
}
