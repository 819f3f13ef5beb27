//! Reads a scenario file: the server, the client populations, the Roost
//! policy and the settings of the baseline policies.
//!
//! Every error is one line that starts with the file name and names the
//! key, the value and the fix, such as
//! `scenario.toml: key population[1].count: invalid value -3; expected a whole number above 0`.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use roost_governor::config::{Count, parse_governor};
use roost_governor::policy::parse_duration;
use roost_governor::{Network, Policy};
use toml::{Table, Value};

/// Maximum simulated run, so the event count and time series stay bounded.
pub const DURATION_MAX: Duration = Duration::from_secs(7 * 86_400);
/// Maximum number of clients over all populations.
pub const CLIENTS_MAX: u64 = 1_000_000;
/// Maximum number of `[[population]]` tables.
pub const POPULATIONS_MAX: usize = 64;
/// Maximum number of time-series samples one policy run records
/// (duration divided by `sample_interval`).
pub const SAMPLES_MAX: u64 = 100_000;
/// Maximum number of governor ticks one policy run makes (duration
/// divided by `tick`).
pub const TICKS_MAX: u64 = 10_000_000;
/// Maximum server capacity a scenario may give.
pub const CAPACITY_MAX: u32 = 10_000_000;

const TOP_KEYS: &[&str] = &["baselines", "governor", "population", "scenario"];
const SCENARIO_KEYS: &[&str] = &[
    "capacity",
    "collapse_factor",
    "duration",
    "login_time",
    "name",
    "restart_time",
    "sample_interval",
    "seed",
    "tick",
];
const BASELINE_KEYS: &[&str] = &["per_user_ip_max", "proxy_cap", "proxy_networks", "reset_interval"];
const POPULATION_KEYS: &[&str] = &[
    "addresses",
    "behaviour",
    "busy_fraction",
    "count",
    "interval",
    "name",
    "networks",
    "reconnect_delay",
    "session",
    "user_prefix",
];

/// One simulated server and the clients that use it.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub duration: Duration,
    pub seed: u64,
    /// Session slots of the server.
    pub capacity: u32,
    /// The ungoverned server drops every session once it has more than
    /// `capacity` times this.
    pub collapse_factor: f64,
    /// Time a login takes on an unloaded server.
    pub login_time: Duration,
    /// Time the ungoverned server refuses connections after a collapse.
    pub restart_time: Duration,
    /// Period of the policies' periodic work (the governor's `tick`).
    pub tick: Duration,
    /// Period of the sessions-held time series.
    pub sample_interval: Duration,
    /// The Roost policy from the `[governor]` table, when there is one.
    pub governor: Option<Policy>,
    pub baselines: Baselines,
    pub populations: Vec<Population>,
}

/// Settings of the baseline policies.
#[derive(Clone, Debug)]
pub struct Baselines {
    /// Addresses the proxy-cap policies cap together.
    pub proxy_networks: Vec<Network>,
    /// Maximum number of connections from `proxy_networks` together.
    pub proxy_cap: Option<u32>,
    /// Period at which proxy-cap-reset-15m cuts every proxy connection.
    pub reset_interval: Duration,
    /// Maximum number of sessions of one user from one address (per-user-ip-cap).
    pub per_user_ip_max: u32,
}

/// A group of clients that behave alike.
#[derive(Clone, Debug)]
pub struct Population {
    /// Report label; populations with the same name are reported together.
    pub name: String,
    pub behaviour: Behaviour,
    pub count: u32,
    pub networks: Vec<Network>,
    pub addresses: AddressAssignment,
    /// Users are named this followed by 1 to `count`.
    pub user_prefix: String,
}

/// Rule by which a population's clients get their fixed source address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressAssignment {
    /// Client i takes the i-th address of the networks, wrapping around.
    Spread,
    /// Each client takes a uniformly random address of the networks.
    Random,
}

/// Behaviour model of a population's clients.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Behaviour {
    /// A push proxy's session: log in, hold an IDLE session until cut,
    /// and reconnect after `reconnect_delay` whatever happened. It ignores
    /// retry hints.
    Holder { reconnect_delay: DelayRange },
    /// A desktop client that syncs every `interval` (mean) for `session`
    /// (mean) and logs out. It is busy while syncing, and when refused it
    /// tries again at its next sync.
    Poller { interval: Duration, session: Duration },
    /// A person at a desktop client: logged in for `session` (mean), away
    /// for `interval` (mean), busy `busy_fraction` of the logged-in time.
    /// After a cut or refusal it reconnects after `reconnect_delay`.
    Interactive { interval: Duration, session: Duration, reconnect_delay: DelayRange, busy_fraction: f64 },
}

impl Behaviour {
    pub fn label(&self) -> &'static str {
        match self {
            Behaviour::Holder { .. } => "holder",
            Behaviour::Poller { .. } => "poller",
            Behaviour::Interactive { .. } => "interactive",
        }
    }
}

/// A uniform random delay between `min` and `max`; `min` is above zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DelayRange {
    pub min: Duration,
    pub max: Duration,
}

/// Reads and checks the scenario file at `path`.
pub fn load_scenario(path: &Path) -> Result<Scenario, String> {
    let text = std::fs::read_to_string(path).map_err(|err| format!("{}: cannot read the file: {err}", path.display()))?;
    parse_scenario(&text, &path.display().to_string())
}

/// Parses a scenario from `text`; `source` names it in error messages.
pub fn parse_scenario(text: &str, source: &str) -> Result<Scenario, String> {
    let table: Table = text.parse().map_err(|err: toml::de::Error| {
        let position = err.span().map(|span| line_column(text, span.start)).unwrap_or_default();
        format!("{source}{position}: invalid TOML: {}", err.message().replace('\n', " "))
    })?;
    Reader { source }.scenario(&table)
}

/// Returns `:LINE:COLUMN` (both from 1) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |last| last.chars().count()) + 1;
    format!(":{line}:{column}")
}

/// Reads values, prefixing each error with the file name.
struct Reader<'a> {
    source: &'a str,
}

impl Reader<'_> {
    fn error(&self, message: impl std::fmt::Display) -> String {
        format!("{}: {message}", self.source)
    }

    fn invalid(&self, key: &str, value: &Value, expected: &str) -> String {
        self.error(format_args!("key {key}: invalid value {value}; expected {expected}"))
    }

    fn missing(&self, key: &str, what: &str) -> String {
        self.error(format_args!("key {key} is missing; add {what}"))
    }

    fn check_keys(&self, prefix: &str, table: &Table, valid: &[&str]) -> Result<(), String> {
        for key in table.keys() {
            if !valid.contains(&key.as_str()) {
                let full = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                return Err(self.error(format_args!("unknown key {full}; valid keys are: {}", valid.join(", "))));
            }
        }
        Ok(())
    }

    fn table<'t>(&self, key: &str, value: &'t Value) -> Result<&'t Table, String> {
        value.as_table().ok_or_else(|| self.invalid(key, value, "a table"))
    }

    fn string<'t>(&self, key: &str, value: &'t Value) -> Result<&'t str, String> {
        value.as_str().ok_or_else(|| self.invalid(key, value, "a quoted string"))
    }

    fn name(&self, key: &str, value: &Value) -> Result<String, String> {
        let valid = |name: &str| {
            !name.is_empty()
                && name.len() <= 64
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        match value.as_str() {
            Some(name) if valid(name) => Ok(name.to_owned()),
            _ => Err(self.invalid(key, value, "a name of 1 to 64 letters, digits, '-' and '_'")),
        }
    }

    fn whole(&self, key: &str, value: &Value, min: u64, max: u64) -> Result<u64, String> {
        let expected = if max == u64::MAX {
            if min == 1 { "a whole number above 0".to_owned() } else { format!("a whole number of at least {min}") }
        } else {
            format!("a whole number from {min} to {max}")
        };
        value
            .as_integer()
            .and_then(|number| u64::try_from(number).ok())
            .filter(|number| (min..=max).contains(number))
            .ok_or_else(|| self.invalid(key, value, &expected))
    }

    fn duration(&self, key: &str, value: &Value, min: Duration) -> Result<Duration, String> {
        let text = self.string(key, value)?;
        let duration = parse_duration(text).map_err(|why| self.error(format_args!("key {key}: {why}")))?;
        if duration < min {
            let expected = if min == Duration::from_millis(1) {
                "a duration above zero, such as 30s".to_owned()
            } else {
                format!("a duration of at least {}ms", min.as_millis())
            };
            return Err(self.invalid(key, value, &expected));
        }
        Ok(duration)
    }

    fn fraction(&self, key: &str, value: &Value, min: f64, max: f64, expected: &str) -> Result<f64, String> {
        value
            .as_float()
            .or_else(|| value.as_integer().map(|number| number as f64))
            .filter(|number| number.is_finite() && (min..=max).contains(number))
            .ok_or_else(|| self.invalid(key, value, expected))
    }

    fn networks(&self, key: &str, value: &Value) -> Result<Vec<Network>, String> {
        let items = value.as_array().ok_or_else(|| self.invalid(key, value, "a list of networks such as [\"10.0.0.0/16\"]"))?;
        items
            .iter()
            .map(|item| {
                let text = item.as_str().ok_or_else(|| self.invalid(key, value, "a list of quoted networks"))?;
                text.parse::<Network>().map_err(|why| self.error(format_args!("key {key}: invalid value \"{text}\": {why}")))
            })
            .collect()
    }

    fn delay_range(&self, key: &str, value: &Value) -> Result<DelayRange, String> {
        let expected = "a list of two durations above zero, minimum first, such as [\"500ms\", \"2s\"]";
        let parts: Vec<&Value> = match value {
            Value::String(_) => vec![value, value],
            Value::Array(items) if items.len() == 2 => items.iter().collect(),
            _ => return Err(self.invalid(key, value, expected)),
        };
        let mut bounds = [Duration::ZERO; 2];
        for (bound, part) in bounds.iter_mut().zip(parts) {
            let text = part.as_str().ok_or_else(|| self.invalid(key, value, expected))?;
            *bound = parse_duration(text).map_err(|why| self.error(format_args!("key {key}: {why}")))?;
        }
        if bounds[0].is_zero() || bounds[0] > bounds[1] {
            return Err(self.invalid(key, value, expected));
        }
        Ok(DelayRange { min: bounds[0], max: bounds[1] })
    }

    fn scenario(&self, root: &Table) -> Result<Scenario, String> {
        self.check_keys("", root, TOP_KEYS)?;
        let header = match root.get("scenario") {
            Some(value) => self.table("scenario", value)?,
            None => return Err(self.missing("scenario", "a [scenario] table with name, duration and capacity")),
        };
        self.check_keys("scenario", header, SCENARIO_KEYS)?;

        let name = match header.get("name") {
            Some(value) => self.name("scenario.name", value)?,
            None => return Err(self.missing("scenario.name", "a name such as \"proxy-storm\"")),
        };
        let duration = match header.get("duration") {
            Some(value) => self.duration("scenario.duration", value, Duration::from_secs(1))?,
            None => return Err(self.missing("scenario.duration", "the simulated time, such as \"1h\"")),
        };
        if duration > DURATION_MAX {
            return Err(self.invalid("scenario.duration", &header["duration"], "at most 7d"));
        }
        let seed = match header.get("seed") {
            Some(value) => self.whole("scenario.seed", value, 0, i64::MAX as u64)?,
            None => 1,
        };
        let capacity = match header.get("capacity") {
            Some(value) => self.whole("scenario.capacity", value, 1, u64::from(CAPACITY_MAX))? as u32,
            None => return Err(self.missing("scenario.capacity", "the server's session slots, such as 2000")),
        };
        let collapse_factor = match header.get("collapse_factor") {
            Some(value) => self.fraction("scenario.collapse_factor", value, 1.0, 100.0, "a number from 1 to 100")?,
            None => 1.25,
        };
        let optional_duration = |key: &str, default: Duration, min: Duration| match header.get(key) {
            Some(value) => self.duration(&format!("scenario.{key}"), value, min),
            None => Ok(default),
        };
        let login_time = optional_duration("login_time", Duration::from_millis(20), Duration::ZERO)?;
        let restart_time = optional_duration("restart_time", Duration::from_secs(10), Duration::ZERO)?;
        let tick = optional_duration("tick", Duration::from_secs(1), Duration::from_millis(10))?;
        let sample_interval = optional_duration("sample_interval", Duration::from_secs(10), Duration::from_millis(100))?;
        if duration.as_millis() / tick.as_millis() > u128::from(TICKS_MAX) {
            return Err(self.invalid("scenario.tick", &header["tick"], "a longer tick: the run may make at most 10,000,000 ticks"));
        }
        if duration.as_millis() / sample_interval.as_millis() > u128::from(SAMPLES_MAX) {
            return Err(self.invalid(
                "scenario.sample_interval",
                header.get("sample_interval").unwrap_or(&Value::from("10s")),
                "a longer interval: the run may take at most 100,000 samples",
            ));
        }

        let baselines = match root.get("baselines") {
            Some(value) => self.baselines(self.table("baselines", value)?)?,
            None => Baselines {
                proxy_networks: Vec::new(),
                proxy_cap: None,
                reset_interval: Duration::from_secs(15 * 60),
                per_user_ip_max: 10,
            },
        };

        let populations = match root.get("population") {
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .enumerate()
                .map(|(index, item)| {
                    let key = format!("population[{index}]");
                    self.population(&key, self.table(&key, item)?)
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(value) => return Err(self.invalid("population", value, "one or more [[population]] tables")),
            None => return Err(self.missing("population", "one or more [[population]] tables")),
        };
        if populations.len() > POPULATIONS_MAX {
            return Err(self.error(format_args!(
                "key population: {} populations given; at most {POPULATIONS_MAX} are allowed",
                populations.len()
            )));
        }
        let clients: u64 = populations.iter().map(|population| u64::from(population.count)).sum();
        if clients > CLIENTS_MAX {
            return Err(self.error(format_args!(
                "key population: {clients} clients in all; at most {CLIENTS_MAX} are allowed, so lower the counts"
            )));
        }

        let governor = match root.get("governor") {
            Some(value) => Some(self.governor(self.table("governor", value)?, capacity, clients)?),
            None => None,
        };

        Ok(Scenario {
            name,
            duration,
            seed,
            capacity,
            collapse_factor,
            login_time,
            restart_time,
            tick,
            sample_interval,
            governor,
            baselines,
            populations,
        })
    }

    fn governor(&self, table: &Table, capacity: u32, clients: u64) -> Result<Policy, String> {
        let read = parse_governor(table, &[]).map_err(|why| self.error(why))?;
        let mut policy = read.policy;
        match read.max_sessions {
            Count::Fixed(count) if count == capacity => {}
            Count::Fixed(count) => {
                return Err(self.error(format_args!(
                    "key governor.max_sessions: invalid value {count}; expected scenario.capacity ({capacity}), so both policies get the same slots"
                )));
            }
            Count::Auto if table.contains_key("max_sessions") => {
                return Err(self.error(format_args!(
                    "key governor.max_sessions: invalid value \"auto\"; expected a number, scenario.capacity ({capacity})"
                )));
            }
            Count::Auto => {
                return Err(self.missing("governor.max_sessions", &format!("max_sessions = {capacity}, the same as scenario.capacity")));
            }
        }
        match read.max_preauth {
            Count::Fixed(_) => {}
            Count::Auto if table.contains_key("max_preauth") => {
                return Err(self.error("key governor.max_preauth: invalid value \"auto\"; expected a whole number above 0"));
            }
            // Every client has at most one connection at a time.
            Count::Auto => policy.max_preauth = u32::try_from(clients).unwrap_or(u32::MAX),
        }
        policy.validate().map_err(|why| self.error(format_args!("key governor: {why}")))?;
        Ok(policy)
    }

    fn baselines(&self, table: &Table) -> Result<Baselines, String> {
        self.check_keys("baselines", table, BASELINE_KEYS)?;
        let proxy_networks = match table.get("proxy_networks") {
            Some(value) => self.networks("baselines.proxy_networks", value)?,
            None => Vec::new(),
        };
        let proxy_cap = match table.get("proxy_cap") {
            Some(value) => Some(self.whole("baselines.proxy_cap", value, 1, u64::from(CAPACITY_MAX))? as u32),
            None => None,
        };
        let reset_interval = match table.get("reset_interval") {
            Some(value) => self.duration("baselines.reset_interval", value, Duration::from_secs(1))?,
            None => Duration::from_secs(15 * 60),
        };
        let per_user_ip_max = match table.get("per_user_ip_max") {
            Some(value) => self.whole("baselines.per_user_ip_max", value, 1, u64::from(u32::MAX))? as u32,
            None => 10,
        };
        Ok(Baselines { proxy_networks, proxy_cap, reset_interval, per_user_ip_max })
    }

    fn population(&self, key: &str, table: &Table) -> Result<Population, String> {
        self.check_keys(key, table, POPULATION_KEYS)?;
        let field = |name: &str| (format!("{key}.{name}"), table.get(name));
        let required = |name: &str, what: &str| -> Result<(String, &Value), String> {
            match field(name) {
                (full, Some(value)) => Ok((full, value)),
                (full, None) => Err(self.missing(&full, what)),
            }
        };

        let (full, value) = required("name", "a name, used as the class label in reports")?;
        let name = self.name(&full, value)?;
        let (full, value) = required("count", "the number of clients, such as 1000")?;
        let count = self.whole(&full, value, 1, u64::MAX)?;
        if count > CLIENTS_MAX {
            return Err(self.invalid(&full, value, &format!("at most {CLIENTS_MAX} clients")));
        }
        let count = count as u32;
        let (full, value) = required("networks", "the networks the clients connect from, such as [\"10.0.0.0/16\"]")?;
        let networks = self.networks(&full, value)?;
        if networks.is_empty() {
            return Err(self.invalid(&full, value, "at least one network"));
        }
        let addresses = match field("addresses") {
            (_, None) => AddressAssignment::Spread,
            (full, Some(value)) => match value.as_str() {
                Some("spread") => AddressAssignment::Spread,
                Some("random") => AddressAssignment::Random,
                _ => return Err(self.invalid(&full, value, "\"spread\" or \"random\"")),
            },
        };
        let user_prefix = match field("user_prefix") {
            (_, None) => name.clone(),
            (full, Some(value)) => self.name(&full, value)?,
        };

        let (full, value) = required("behaviour", "one of \"holder\", \"poller\", \"interactive\"")?;
        let kind = self.string(&full, value)?;
        let allowed: &[&str] = match kind {
            "holder" => &["reconnect_delay"],
            "poller" => &["interval", "session"],
            "interactive" => &["interval", "session", "reconnect_delay", "busy_fraction"],
            _ => return Err(self.invalid(&full, value, "one of \"holder\", \"poller\", \"interactive\"")),
        };
        for behaviour_key in ["interval", "session", "reconnect_delay", "busy_fraction"] {
            if table.contains_key(behaviour_key) && !allowed.contains(&behaviour_key) {
                return Err(self.error(format_args!(
                    "key {key}.{behaviour_key} does not apply to behaviour \"{kind}\"; remove it (a {kind} takes: {})",
                    allowed.join(", ")
                )));
            }
        }
        let interval = |what: &str| -> Result<Duration, String> {
            let (full, value) = required("interval", what)?;
            self.duration(&full, value, Duration::from_secs(1))
        };
        let session = |what: &str| -> Result<Duration, String> {
            let (full, value) = required("session", what)?;
            self.duration(&full, value, Duration::from_millis(1))
        };
        let behaviour = match kind {
            "holder" => {
                let (full, value) = required("reconnect_delay", "the delay before reconnecting, such as [\"500ms\", \"2s\"]")?;
                Behaviour::Holder { reconnect_delay: self.delay_range(&full, value)? }
            }
            "poller" => Behaviour::Poller {
                interval: interval("the mean time between syncs, such as \"5m\"")?,
                session: session("the mean sync duration, such as \"15s\"")?,
            },
            _ => {
                let reconnect_delay = match field("reconnect_delay") {
                    (full, Some(value)) => self.delay_range(&full, value)?,
                    (_, None) => DelayRange { min: Duration::from_secs(2), max: Duration::from_secs(10) },
                };
                let busy_fraction = match field("busy_fraction") {
                    (full, Some(value)) => self.fraction(&full, value, 0.0, 0.9, "a fraction from 0 to 0.9")?,
                    (_, None) => 0.1,
                };
                Behaviour::Interactive {
                    interval: interval("the mean time away between sessions, such as \"2h\"")?,
                    session: session("the mean time logged in, such as \"45m\"")?,
                    reconnect_delay,
                    busy_fraction,
                }
            }
        };
        Ok(Population { name, behaviour, count, networks, addresses, user_prefix })
    }
}

/// Returns the number of addresses in `network`, saturating at `u128::MAX`.
fn network_size(network: &Network) -> u128 {
    let bits = match network.address {
        IpAddr::V4(_) => 32 - u32::from(network.prefix_len.min(32)),
        IpAddr::V6(_) => 128 - u32::from(network.prefix_len.min(128)),
    };
    1u128.checked_shl(bits).unwrap_or(u128::MAX)
}

/// Returns the `offset`-th address of `network`, wrapping within it.
fn network_address(network: &Network, offset: u128) -> IpAddr {
    let offset = offset % network_size(network).max(1);
    match network.address {
        IpAddr::V4(base) => {
            let mask = if network.prefix_len == 0 { 0 } else { u32::MAX << (32 - u32::from(network.prefix_len.min(32))) };
            IpAddr::from((u32::from(base) & mask).wrapping_add(offset as u32).to_be_bytes())
        }
        IpAddr::V6(base) => {
            let bits = u32::from(network.prefix_len.min(128));
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            IpAddr::from((u128::from(base) & mask).wrapping_add(offset).to_be_bytes())
        }
    }
}

impl Population {
    /// Returns the address at `index` over all of the population's
    /// networks, in order, wrapping around.
    pub fn address_at(&self, index: u128) -> IpAddr {
        let total = self.networks.iter().map(network_size).fold(0u128, u128::saturating_add).max(1);
        let mut offset = index % total;
        for network in &self.networks {
            let size = network_size(network);
            if offset < size {
                return network_address(network, offset);
            }
            offset -= size;
        }
        network_address(&self.networks[0], 0)
    }

    /// Returns the number of addresses the networks hold, saturating.
    pub fn address_count(&self) -> u128 {
        self.networks.iter().map(network_size).fold(0u128, u128::saturating_add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_spread_over_networks() {
        let population = Population {
            name: "p".into(),
            behaviour: Behaviour::Poller { interval: Duration::from_secs(60), session: Duration::from_secs(1) },
            count: 10,
            networks: vec!["198.51.100.0/30".parse().unwrap(), "192.0.2.7".parse().unwrap()],
            addresses: AddressAssignment::Spread,
            user_prefix: "p".into(),
        };
        let addresses: Vec<String> = (0..6).map(|i| population.address_at(i).to_string()).collect();
        assert_eq!(addresses, ["198.51.100.0", "198.51.100.1", "198.51.100.2", "198.51.100.3", "192.0.2.7", "198.51.100.0"]);
        assert_eq!(population.address_count(), 5);
    }

    #[test]
    fn toml_errors_give_line() {
        let err = parse_scenario("[scenario\nname = 1", "s.toml").unwrap_err();
        assert!(err.starts_with("s.toml:1:"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}
