//! Turns a scenario into what a loopback replay runs: populations shrunk
//! by the population scale, networks moved onto loopback, and the Roost
//! policy with its counts scaled like the populations and its times and
//! rates scaled by the time scale. The server config and the users file
//! written from it match the replay made with the same scales.

use std::time::Duration;

use roost_governor::policy::format_duration;
use roost_governor::{ClassConfig, Network, Policy, Rate};
use roost_sim::Scenario;

use super::loopback::LoopbackMap;

/// Minimum of the policy durations the config format requires to be at
/// least one second: `waiting_window`, `rotation_hold`, `retry_default` and
/// a class's `lease`.
const ONE_SECOND: Duration = Duration::from_secs(1);

/// Keepalive interval of the server's IDLE sessions, `[imap]
/// idle_keepalive`, before scaling: the server's default.
const IDLE_KEEPALIVE: Duration = Duration::from_secs(120);

/// A scenario made ready for a loopback replay.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The scenario with scaled populations on loopback networks, and the
    /// scaled policy in `governor`.
    pub scenario: Scenario,
    pub map: LoopbackMap,
    /// Scenario seconds per real second.
    pub time_scale: f64,
    /// Share of each population and of the policy's session counts.
    pub population_scale: f64,
    /// `[imap] idle_keepalive` for the server, scaled.
    pub idle_keepalive: Duration,
    /// Changes the scaling made beyond dividing and multiplying, such as
    /// a duration raised to its minimum.
    pub notes: Vec<String>,
}

/// Scales and moves `scenario` for a replay.
pub fn prepare(
    mut scenario: Scenario,
    time_scale: f64,
    population_scale: f64,
) -> Result<Prepared, String> {
    let mut notes = Vec::new();

    // Populations need every network on loopback. A class may lose IPv6
    // networks as long as an IPv4 one is left, so it still matches only
    // what it matched before.
    for population in &scenario.populations {
        if let Some(network) = population.networks.iter().find(|n| n.address.is_ipv6()) {
            return Err(format!(
                "population {}: network {network} is IPv6; loopback offers only ::1, so give the population IPv4 networks to replay it",
                population.name
            ));
        }
    }
    let class_networks = scenario
        .governor
        .iter()
        .flat_map(|policy| &policy.classes)
        .flat_map(|class| &class.networks)
        .filter(|network| network.address.is_ipv4());
    let population_networks = scenario
        .populations
        .iter()
        .flat_map(|population| &population.networks);
    let map = LoopbackMap::build(class_networks.chain(population_networks).copied())?;

    for population in &mut scenario.populations {
        population.count = scale_count(population.count, population_scale).max(1);
        population.networks = map_networks(&map, &population.networks)?;
    }
    if let Some(policy) = &mut scenario.governor {
        scale_policy(policy, &map, time_scale, population_scale, &mut notes)?;
    }
    scenario.capacity = scale_count(scenario.capacity, population_scale).max(1);

    let idle_keepalive = scale_duration(
        IDLE_KEEPALIVE,
        time_scale,
        ONE_SECOND,
        "imap.idle_keepalive",
        &mut notes,
    );
    Ok(Prepared {
        scenario,
        map,
        time_scale,
        population_scale,
        idle_keepalive,
        notes,
    })
}

fn map_networks(map: &LoopbackMap, networks: &[Network]) -> Result<Vec<Network>, String> {
    networks.iter().map(|network| map.map(network)).collect()
}

fn scale_policy(
    policy: &mut Policy,
    map: &LoopbackMap,
    time_scale: f64,
    population_scale: f64,
    notes: &mut Vec<String>,
) -> Result<(), String> {
    policy.max_sessions = scale_count(policy.max_sessions, population_scale).max(1);
    policy.max_preauth = scale_count(policy.max_preauth, population_scale).max(1);
    let mut scale = |duration: Duration, key: &str, min: Duration| {
        scale_duration(duration, time_scale, min, &format!("governor.{key}"), notes)
    };
    policy.waiting_window = scale(policy.waiting_window, "waiting_window", ONE_SECOND);
    policy.rotation_hold = scale(policy.rotation_hold, "rotation_hold", ONE_SECOND);
    policy.retry_default = scale(policy.retry_default, "retry_default", ONE_SECOND);
    policy.greeting_delay_max = scale(
        policy.greeting_delay_max,
        "greeting_delay_max",
        Duration::ZERO,
    );
    policy.login_penalty_base = scale(
        policy.login_penalty_base,
        "login_penalty_base",
        Duration::ZERO,
    );
    policy.login_penalty_max = scale(
        policy.login_penalty_max,
        "login_penalty_max",
        Duration::ZERO,
    );
    policy.login_penalty_window = scale(
        policy.login_penalty_window,
        "login_penalty_window",
        Duration::ZERO,
    );

    for class in &mut policy.classes {
        let key = format!("governor.class \"{}\"", class.name);
        let had_networks = !class.networks.is_empty();
        let dropped: Vec<String> = class
            .networks
            .iter()
            .filter(|network| network.address.is_ipv6())
            .map(ToString::to_string)
            .collect();
        class.networks.retain(|network| network.address.is_ipv4());
        if had_networks && class.networks.is_empty() {
            return Err(format!(
                "{key}: every network is IPv6, and loopback offers only ::1; give the class an IPv4 network to replay it"
            ));
        }
        if !dropped.is_empty() {
            notes.push(format!(
                "{key}: IPv6 networks {} left out, since replayed clients connect over IPv4",
                dropped.join(", ")
            ));
        }
        class.networks = map_networks(map, &class.networks)?;
        scale_class(class, &key, time_scale, population_scale, notes);
    }
    scale_class(
        &mut policy.default_class,
        "governor.default",
        time_scale,
        population_scale,
        notes,
    );
    policy
        .validate()
        .map_err(|why| format!("the scaled policy is invalid: {why}"))
}

fn scale_class(
    class: &mut ClassConfig,
    key: &str,
    time_scale: f64,
    population_scale: f64,
    notes: &mut Vec<String>,
) {
    // Reservations round down and limits to the nearest, so that the
    // reservations still fit in max_sessions and under each limit.
    class.reserved = (f64::from(class.reserved) * population_scale).floor() as u32;
    class.limit = class
        .limit
        .map(|limit| scale_count(limit, population_scale));
    class.lease = class.lease.map(|lease| {
        scale_duration(
            lease,
            time_scale,
            ONE_SECOND,
            &format!("{key}.lease"),
            notes,
        )
    });
    class.rotation_rate *= time_scale;
    class.source_rate = class.source_rate.map(|rate| scale_rate(rate, time_scale));
    class.user_rate = class.user_rate.map(|rate| scale_rate(rate, time_scale));
}

/// Multiplies a count by the population scale, to the nearest whole number.
pub fn scale_count(count: u32, population_scale: f64) -> u32 {
    (f64::from(count) * population_scale).round() as u32
}

/// Divides `duration` by the time scale, to whole milliseconds and at
/// least `min`; a non-zero duration stays at least 1 ms.
fn scale_duration(
    duration: Duration,
    time_scale: f64,
    min: Duration,
    key: &str,
    notes: &mut Vec<String>,
) -> Duration {
    if duration.is_zero() {
        return duration;
    }
    let millis = (duration.as_secs_f64() * 1000.0 / time_scale)
        .round()
        .max(1.0) as u64;
    let scaled = Duration::from_millis(millis);
    if scaled < min {
        notes.push(format!(
            "{key}: {} scaled is {}, below its minimum; written as {}",
            format_duration(duration),
            format_duration(scaled),
            format_duration(min)
        ));
        return min;
    }
    scaled
}

fn scale_rate(rate: Rate, time_scale: f64) -> Rate {
    Rate {
        per_second: rate.per_second * time_scale,
        burst: rate.burst,
    }
}

/// Writes a rate the way `Rate::parse` reads it: events per minute when
/// that count is large enough to be precise, else one event per interval.
pub fn format_rate(rate: &Rate) -> String {
    let per_minute = rate.per_second * 60.0;
    if per_minute >= 10.0 {
        format!("{}/1m", per_minute.round() as u64)
    } else {
        let millis = (1000.0 / rate.per_second).round().max(1.0) as u64;
        format!("1/{}", format_duration(Duration::from_millis(millis)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = include_str!("../../../../scenarios/proxy-storm-small.toml");

    fn small() -> Scenario {
        roost_sim::parse_scenario(SMALL, "proxy-storm-small.toml").unwrap()
    }

    #[test]
    fn populations_scaled_and_moved() {
        let prepared = prepare(small(), 60.0, 0.3).unwrap();
        let populations = &prepared.scenario.populations;
        assert_eq!(populations[0].count, 300);
        assert_eq!(populations[0].networks[0].to_string(), "127.1.0.0/16");
        assert_eq!(populations[1].count, 30);
        assert_eq!(populations[1].networks[0].to_string(), "127.2.0.0/30");
    }

    #[test]
    fn policy_scaled() {
        let prepared = prepare(small(), 60.0, 0.3).unwrap();
        let policy = prepared.scenario.governor.as_ref().unwrap();
        assert_eq!(policy.max_sessions, 30);
        assert_eq!(policy.max_preauth, 330);
        let campus = &policy.classes[0];
        assert_eq!(campus.reserved, 22, "75 * 0.3 rounds down");
        assert_eq!(campus.networks[0].to_string(), "127.1.0.0/16");
        let proxy = &policy.classes[1];
        assert_eq!(proxy.lease, Some(Duration::from_secs(1)));
        assert_eq!(proxy.rotation_rate, 600.0);
        assert_eq!(policy.waiting_window, Duration::from_secs(1));
        assert_eq!(policy.greeting_delay_max, Duration::from_millis(83));
        assert_eq!(prepared.idle_keepalive, Duration::from_secs(2));
    }

    #[test]
    fn minimum_durations_noted() {
        let prepared = prepare(small(), 120.0, 1.0).unwrap();
        let policy = prepared.scenario.governor.as_ref().unwrap();
        // The 1-minute lease would be 500 ms; the config format's minimum
        // is one second.
        assert_eq!(policy.classes[1].lease, Some(ONE_SECOND));
        assert!(
            prepared
                .notes
                .iter()
                .any(|note| note.contains("lease") && note.contains("500ms")),
            "{:?}",
            prepared.notes
        );
        assert!(
            prepared
                .notes
                .iter()
                .any(|note| note.contains("rotation_hold")),
            "{:?}",
            prepared.notes
        );
    }

    #[test]
    fn reservations_fit_after_rounding() {
        // 1150 + 850 reserved of 2000: rounding each to the nearest would
        // reserve 501 of 500 at a quarter.
        let text = SMALL
            .replace("max_sessions = 100", "max_sessions = 2000")
            .replace("capacity = 100", "capacity = 2000")
            .replace("reserved = 75", "reserved = 1150")
            .replace("lease = \"1m\"", "lease = \"1m\"\nreserved = 850");
        let scenario = roost_sim::parse_scenario(&text, "s.toml").unwrap();
        let prepared = prepare(scenario, 1.0, 0.25).unwrap();
        let policy = prepared.scenario.governor.as_ref().unwrap();
        assert_eq!(policy.max_sessions, 500);
        assert_eq!(policy.classes[0].reserved + policy.classes[1].reserved, 499);
    }

    #[test]
    fn rates_formatted() {
        let rate = Rate::parse("10/1m", 5).unwrap();
        let scaled = scale_rate(rate, 60.0);
        assert_eq!(format_rate(&scaled), "600/1m");
        let slow = Rate::parse("1/1h", 1).unwrap();
        assert_eq!(format_rate(&scale_rate(slow, 6.0)), "1/10m");
        let parsed = Rate::parse(&format_rate(&scaled), 5).unwrap();
        assert!((parsed.per_second - 10.0).abs() < 1e-9);
    }

    #[test]
    fn ipv6_population_rejected() {
        let text = SMALL.replacen(
            "networks = [\"10.0.0.0/16\"]\nuser_prefix",
            "networks = [\"2001:db8::/48\"]\nuser_prefix",
            1,
        );
        let scenario = roost_sim::parse_scenario(&text, "s.toml").unwrap();
        let err = prepare(scenario, 1.0, 1.0).unwrap_err();
        assert!(err.contains("population campus"), "{err}");
        assert!(err.contains("IPv6"), "{err}");
    }

    #[test]
    fn ipv6_class_network_left_out() {
        let text = SMALL.replacen(
            "networks = [\"10.0.0.0/16\"]\npriority",
            "networks = [\"10.0.0.0/16\", \"2001:db8:100::/48\"]\npriority",
            1,
        );
        let scenario = roost_sim::parse_scenario(&text, "s.toml").unwrap();
        let prepared = prepare(scenario, 1.0, 1.0).unwrap();
        let campus = &prepared.scenario.governor.as_ref().unwrap().classes[0];
        assert_eq!(campus.networks.len(), 1);
        assert!(
            prepared
                .notes
                .iter()
                .any(|note| note.contains("2001:db8:100::/48")),
            "{:?}",
            prepared.notes
        );
    }
}
