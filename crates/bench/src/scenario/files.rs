//! The files a replay needs on the server's side: the config with the
//! scenario's `[governor]` table, and the scenario's users as passwd-file
//! lines for `roost user import`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use roost_governor::policy::format_duration;
use roost_governor::{ClassConfig, Policy};
use toml::{Table, Value};

use super::prepare::{Prepared, format_rate};

/// Returns the text of a roost.toml for the replay of `prepared`: a
/// comment that records how it was made, `[imap] idle_keepalive` and the
/// scaled `[governor]` table. `replay` is the matching replay command.
pub fn server_config(prepared: &Prepared, source: &str, replay: &str) -> Result<String, String> {
    let mut out = String::new();
    let scenario = &prepared.scenario;
    let _ = writeln!(
        out,
        "# Roost config for replaying scenario {} ({source}) over loopback,",
        scenario.name
    );
    let _ = writeln!(
        out,
        "# written by roost-bench {}.",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(
        out,
        "# Time scale {}: durations are divided by it and rates multiplied by it.",
        prepared.time_scale
    );
    let _ = writeln!(
        out,
        "# Population scale {}: max_sessions, max_preauth, limit and reserved",
        prepared.population_scale
    );
    let _ = writeln!(out, "# are multiplied by it, as the populations are.");
    let _ = writeln!(out, "# Scenario networks and their loopback ranges:");
    for (from, to) in prepared.map.blocks() {
        let _ = writeln!(out, "#   {from} -> {to}");
    }
    for note in &prepared.notes {
        let _ = writeln!(out, "# Note: {note}");
    }
    let _ = writeln!(out, "# Replay it with the same scales:");
    let _ = writeln!(out, "#   {replay}");
    let _ = writeln!(out);

    let mut root = Table::new();
    let mut imap = Table::new();
    imap.insert(
        "idle_keepalive".to_owned(),
        Value::String(format_duration(prepared.idle_keepalive)),
    );
    root.insert("imap".to_owned(), Value::Table(imap));
    if let Some(policy) = &scenario.governor {
        root.insert("governor".to_owned(), Value::Table(governor_table(policy)));
    }
    let text = toml::to_string(&root)
        .map_err(|err| format!("encoding the server config as TOML failed: {err}"))?;
    out.push_str(&text);
    Ok(out)
}

fn governor_table(policy: &Policy) -> Table {
    let mut table = Table::new();
    let count = |value: u32| Value::Integer(i64::from(value));
    let duration = |value| Value::String(format_duration(value));
    table.insert("max_sessions".to_owned(), count(policy.max_sessions));
    table.insert("max_preauth".to_owned(), count(policy.max_preauth));
    table.insert("waiting_window".to_owned(), duration(policy.waiting_window));
    table.insert("rotation_hold".to_owned(), duration(policy.rotation_hold));
    table.insert(
        "greeting_delay_max".to_owned(),
        duration(policy.greeting_delay_max),
    );
    table.insert("retry_default".to_owned(), duration(policy.retry_default));
    table.insert(
        "login_penalty_base".to_owned(),
        duration(policy.login_penalty_base),
    );
    table.insert(
        "login_penalty_max".to_owned(),
        duration(policy.login_penalty_max),
    );
    table.insert(
        "login_penalty_window".to_owned(),
        duration(policy.login_penalty_window),
    );
    table.insert(
        "default".to_owned(),
        Value::Table(class_table(&policy.default_class, true)),
    );
    if !policy.classes.is_empty() {
        let classes = policy
            .classes
            .iter()
            .map(|class| Value::Table(class_table(class, false)))
            .collect();
        table.insert("class".to_owned(), Value::Array(classes));
    }
    table
}

/// Returns a class's keys. Keys at their default are left out, except
/// `rotation_rate`, whose default is per second of real time too and so
/// is always written scaled.
fn class_table(class: &ClassConfig, is_default: bool) -> Table {
    let mut table = Table::new();
    let count = |value: u32| Value::Integer(i64::from(value));
    let strings = |values: &mut dyn Iterator<Item = String>| {
        Value::Array(values.map(Value::String).collect())
    };
    if !is_default {
        table.insert("name".to_owned(), Value::String(class.name.clone()));
        if !class.networks.is_empty() {
            table.insert(
                "networks".to_owned(),
                strings(&mut class.networks.iter().map(ToString::to_string)),
            );
        }
        if !class.users.is_empty() {
            table.insert(
                "users".to_owned(),
                strings(&mut class.users.iter().cloned()),
            );
        }
        if !class.groups.is_empty() {
            table.insert(
                "groups".to_owned(),
                strings(&mut class.groups.iter().cloned()),
            );
        }
        if !class.client_ids.is_empty() {
            table.insert(
                "client_ids".to_owned(),
                strings(&mut class.client_ids.iter().cloned()),
            );
        }
    }
    if class.reserved > 0 {
        table.insert("reserved".to_owned(), count(class.reserved));
    }
    if let Some(limit) = class.limit {
        table.insert("limit".to_owned(), count(limit));
    }
    if class.weight != 1 {
        table.insert("weight".to_owned(), count(class.weight));
    }
    if class.priority != 0 {
        table.insert(
            "priority".to_owned(),
            Value::Integer(i64::from(class.priority)),
        );
    }
    if let Some(max) = class.per_user_max {
        table.insert("per_user_max".to_owned(), count(max));
    }
    if let Some(max) = class.per_source_max {
        table.insert("per_source_max".to_owned(), count(max));
    }
    if let Some(rate) = &class.source_rate {
        table.insert("source_rate".to_owned(), Value::String(format_rate(rate)));
        table.insert("source_burst".to_owned(), count(rate.burst));
    }
    if let Some(rate) = &class.user_rate {
        table.insert("user_rate".to_owned(), Value::String(format_rate(rate)));
        table.insert("user_burst".to_owned(), count(rate.burst));
    }
    if let Some(lease) = class.lease {
        table.insert("lease".to_owned(), Value::String(format_duration(lease)));
    }
    table.insert(
        "rotation_rate".to_owned(),
        Value::Float(class.rotation_rate),
    );
    table
}

/// Returns the passwd-file lines of every user the replay logs in as:
/// `USER:{PLAIN}PASSWORD::::::`, users of each prefix numbered from 1.
pub fn users_file(prepared: &Prepared, password: &str) -> String {
    // Populations that share a user prefix share their users too.
    let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
    for population in &prepared.scenario.populations {
        let count = counts.entry(population.user_prefix.as_str()).or_default();
        *count = (*count).max(population.count);
    }
    let mut out = String::new();
    for (prefix, count) in counts {
        for number in 1..=count {
            let _ = writeln!(out, "{prefix}{number}:{{PLAIN}}{password}::::::");
        }
    }
    out
}

/// Checks that `password` fits in a passwd-file line and an IMAP LOGIN.
pub fn check_password(password: &str) -> Result<(), String> {
    if password.is_empty() {
        return Err("--password: must not be empty".to_owned());
    }
    if password
        .bytes()
        .any(|byte| matches!(byte, b':' | b'\r' | b'\n' | 0))
    {
        return Err(
            "--password: must not contain ':', CR, LF or NUL, which the passwd-file format cannot hold"
                .to_owned(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use roost_governor::config::{Count, parse_governor};

    use super::super::prepare::prepare;
    use super::*;

    const SMALL: &str = include_str!("../../../../scenarios/proxy-storm-small.toml");

    fn prepared(time_scale: f64, population_scale: f64) -> Prepared {
        let scenario = roost_sim::parse_scenario(SMALL, "proxy-storm-small.toml").unwrap();
        prepare(scenario, time_scale, population_scale).unwrap()
    }

    #[test]
    fn config_reads_back_as_the_scaled_policy() {
        let prepared = prepared(60.0, 0.3);
        let text =
            server_config(&prepared, "small.toml", "roost-bench scenario small.toml").unwrap();
        let root: Table = text.parse().unwrap();
        let read = parse_governor(root["governor"].as_table().unwrap(), &[]).unwrap();
        read.policy.validate().unwrap();
        assert_eq!(read.max_sessions, Count::Fixed(30));
        assert_eq!(read.max_preauth, Count::Fixed(330));
        let expected = prepared.scenario.governor.as_ref().unwrap();
        assert_eq!(read.policy.classes.len(), 2);
        for (got, want) in read.policy.classes.iter().zip(&expected.classes) {
            assert_eq!(got.name, want.name);
            assert_eq!(got.networks, want.networks);
            assert_eq!(got.reserved, want.reserved);
            assert_eq!(got.priority, want.priority);
            assert_eq!(got.lease, want.lease);
            assert_eq!(got.rotation_rate, want.rotation_rate);
        }
        assert_eq!(read.policy.waiting_window, expected.waiting_window);
        assert_eq!(read.policy.rotation_hold, Duration::from_secs(1));
        assert_eq!(read.policy.greeting_delay_max, Duration::from_millis(83));
        assert_eq!(
            root["imap"]["idle_keepalive"].as_str(),
            Some("2s"),
            "{text}"
        );
    }

    #[test]
    fn config_comment_names_scales_and_ranges() {
        let prepared = prepared(60.0, 0.3);
        let text = server_config(&prepared, "small.toml", "roost-bench scenario X").unwrap();
        assert!(text.contains("# Time scale 60:"), "{text}");
        assert!(text.contains("# Population scale 0.3:"), "{text}");
        assert!(text.contains("#   10.0.0.0/16 -> 127.1.0.0/16"), "{text}");
        assert!(
            text.contains("#   198.51.100.0/30 -> 127.2.0.0/30"),
            "{text}"
        );
        assert!(text.contains("# Note: governor.rotation_hold"), "{text}");
        assert!(text.contains("#   roost-bench scenario X"), "{text}");
    }

    #[test]
    fn rates_written_and_read_back() {
        let text = SMALL.replace(
            "rotation_rate = 10",
            "rotation_rate = 10\nuser_rate = \"1/2s\"\nuser_burst = 5",
        );
        let scenario = roost_sim::parse_scenario(&text, "s.toml").unwrap();
        let prepared = prepare(scenario, 10.0, 1.0).unwrap();
        let config = server_config(&prepared, "s.toml", "x").unwrap();
        let root: Table = config.parse().unwrap();
        let read = parse_governor(root["governor"].as_table().unwrap(), &[]).unwrap();
        let rate = read.policy.classes[1].user_rate.unwrap();
        assert!((rate.per_second - 5.0).abs() < 1e-9, "{rate:?}");
        assert_eq!(rate.burst, 5);
    }

    #[test]
    fn users_numbered_per_prefix() {
        let prepared = prepared(1.0, 0.01);
        let text = users_file(&prepared, "secret");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 10 + 1);
        assert!(lines.contains(&"campus1:{PLAIN}secret::::::"));
        assert!(lines.contains(&"campus10:{PLAIN}secret::::::"));
        assert!(lines.contains(&"phone1:{PLAIN}secret::::::"));
    }

    #[test]
    fn passwords_checked() {
        assert!(check_password("scenario").is_ok());
        assert!(check_password("").is_err());
        assert!(check_password("a:b").is_err());
        assert!(check_password("a\nb").is_err());
    }
}
