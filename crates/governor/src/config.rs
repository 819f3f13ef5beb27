//! Reads the `[governor]` table of a TOML file into a [`Policy`].
//!
//! The server configuration and simulator scenarios share this format, so
//! an administrator can try a policy in the simulator and then deploy the
//! same table. Errors are one line naming the key, the value and the fix.

use std::collections::BTreeSet;
use std::time::Duration;

use toml::{Table, Value};

use crate::network::Network;
use crate::policy::{ClassConfig, DEFAULT_CLASS_NAME, Policy, Rate, parse_duration};

/// A session count given as a number or left to the server to derive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    Fixed(u32),
    /// `"auto"`: derived from the memory budget.
    Auto,
}

/// The `[governor]` table, read.
#[derive(Clone, Debug)]
pub struct GovernorTable {
    /// The policy, with `max_sessions` and `max_preauth` left at zero when
    /// they are `Auto`.
    pub policy: Policy,
    pub max_sessions: Count,
    pub max_preauth: Count,
    /// Keys the caller listed as its own, with their values, for it to read.
    pub extra: Table,
}

/// Keys of the `[governor]` table this module reads.
const GLOBAL_KEYS: &[&str] = &[
    "max_sessions",
    "max_preauth",
    "waiting_window",
    "rotation_hold",
    "greeting_delay_max",
    "retry_default",
    "login_penalty_base",
    "login_penalty_max",
    "login_penalty_window",
    "default",
    "class",
];

/// Keys of a class table.
const CLASS_KEYS: &[&str] = &[
    "name",
    "networks",
    "users",
    "groups",
    "client_ids",
    "reserved",
    "limit",
    "weight",
    "priority",
    "per_user_max",
    "per_source_max",
    "source_rate",
    "source_burst",
    "user_rate",
    "user_burst",
    "lease",
    "rotation_rate",
];

/// Reads the `[governor]` table. Keys in `extra_keys` are not the
/// policy's and are returned untouched in [`GovernorTable::extra`].
pub fn parse_governor(table: &Table, extra_keys: &[&str]) -> Result<GovernorTable, String> {
    let mut policy = Policy::with_capacity(0, 0);
    let mut max_sessions = Count::Auto;
    let mut max_preauth = Count::Auto;
    let mut extra = Table::new();
    for (key, value) in table {
        let full = format!("governor.{key}");
        match key.as_str() {
            "max_sessions" => max_sessions = count_value(&full, value)?,
            "max_preauth" => max_preauth = count_value(&full, value)?,
            "waiting_window" => policy.waiting_window = duration_at_least(&full, value, ONE_SECOND)?,
            "rotation_hold" => policy.rotation_hold = duration_at_least(&full, value, ONE_SECOND)?,
            "greeting_delay_max" => policy.greeting_delay_max = duration_value(&full, value)?,
            "retry_default" => policy.retry_default = duration_at_least(&full, value, ONE_SECOND)?,
            "login_penalty_base" => policy.login_penalty_base = duration_value(&full, value)?,
            "login_penalty_max" => policy.login_penalty_max = duration_value(&full, value)?,
            "login_penalty_window" => policy.login_penalty_window = duration_value(&full, value)?,
            "default" => {
                let table = value.as_table().ok_or_else(|| format!("key {full}: expected a table of class settings"))?;
                policy.default_class = class_value(&full, table, true)?;
            }
            "class" => {
                let classes = value
                    .as_array()
                    .ok_or_else(|| format!("key {full}: expected [[governor.class]] tables"))?;
                for (index, class) in classes.iter().enumerate() {
                    let key = format!("{full}[{index}]");
                    let table = class.as_table().ok_or_else(|| format!("key {key}: expected a table"))?;
                    policy.classes.push(class_value(&key, table, false)?);
                }
            }
            other if extra_keys.contains(&other) => {
                extra.insert(key.clone(), value.clone());
            }
            other => {
                let mut valid: Vec<&str> = GLOBAL_KEYS.iter().chain(extra_keys).copied().collect();
                valid.sort_unstable();
                return Err(format!("unknown key governor.{other}; valid keys are: {}", valid.join(", ")));
            }
        }
    }
    if let Count::Fixed(count) = max_sessions {
        policy.max_sessions = count;
    }
    if let Count::Fixed(count) = max_preauth {
        policy.max_preauth = count;
    }
    if policy.login_penalty_base > policy.login_penalty_max {
        return Err(format!(
            "key governor.login_penalty_base: {:?} is above login_penalty_max ({:?}); lower it or raise the maximum",
            policy.login_penalty_base, policy.login_penalty_max
        ));
    }
    Ok(GovernorTable { policy, max_sessions, max_preauth, extra })
}

fn class_value(key: &str, table: &Table, is_default: bool) -> Result<ClassConfig, String> {
    let name = match table.get("name") {
        Some(_) if is_default => {
            return Err(format!("key {key}.name: the default class is always named \"{DEFAULT_CLASS_NAME}\"; remove the key"));
        }
        Some(value) if value.as_str() == Some(DEFAULT_CLASS_NAME) => {
            return Err(format!(
                "key {key}.name: \"{DEFAULT_CLASS_NAME}\" is the name of the class of unmatched connections; choose another name, or set its limits in [governor.default]"
            ));
        }
        Some(value) => {
            let name = value.as_str().filter(|name| is_class_name(name)).ok_or_else(|| {
                format!(
                    "key {key}.name: invalid value {value}; expected a name of letters, digits, '-' and '_'"
                )
            })?;
            name.to_owned()
        }
        None if is_default => DEFAULT_CLASS_NAME.to_owned(),
        None => return Err(format!("key {key}.name is missing; every class needs a name")),
    };
    let mut class = ClassConfig::new(&name);
    let mut source_burst = None;
    let mut user_burst = None;
    let mut source_rate = None;
    let mut user_rate = None;
    for (field, value) in table {
        let full = format!("{key}.{field}");
        let matching = ["networks", "users", "groups", "client_ids"];
        if is_default && matching.contains(&field.as_str()) {
            return Err(format!("key {full}: the default class matches what no other class does; remove the key"));
        }
        match field.as_str() {
            "name" => {}
            "networks" => {
                class.networks = strings_value(&full, value)?
                    .iter()
                    .map(|text| {
                        text.parse::<Network>().map_err(|why| format!("key {full}: invalid value \"{text}\": {why}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "users" => class.users = strings_value(&full, value)?.into_iter().collect::<BTreeSet<_>>(),
            "groups" => class.groups = strings_value(&full, value)?.into_iter().collect::<BTreeSet<_>>(),
            "client_ids" => class.client_ids = strings_value(&full, value)?,
            "reserved" => class.reserved = whole_value(&full, value, 0)?,
            "limit" => class.limit = Some(whole_value(&full, value, 0)?),
            "weight" => class.weight = whole_value(&full, value, 1)?,
            "priority" => {
                class.priority = value
                    .as_integer()
                    .and_then(|number| i32::try_from(number).ok())
                    .ok_or_else(|| format!("key {full}: invalid value {value}; expected a whole number"))?;
            }
            "per_user_max" => class.per_user_max = Some(whole_value(&full, value, 1)?),
            "per_source_max" => class.per_source_max = Some(whole_value(&full, value, 1)?),
            "source_rate" => source_rate = Some((full.clone(), string_value(&full, value)?.to_owned())),
            "user_rate" => user_rate = Some((full.clone(), string_value(&full, value)?.to_owned())),
            "source_burst" => source_burst = Some(whole_value(&full, value, 1)?),
            "user_burst" => user_burst = Some(whole_value(&full, value, 1)?),
            "lease" => class.lease = Some(duration_at_least(&full, value, ONE_SECOND)?),
            "rotation_rate" => {
                let rate = value
                    .as_float()
                    .or_else(|| value.as_integer().map(|number| number as f64))
                    .filter(|rate| *rate > 0.0 && rate.is_finite())
                    .ok_or_else(|| format!("key {full}: invalid value {value}; expected sessions per second above 0"))?;
                class.rotation_rate = rate;
            }
            other => {
                return Err(format!("unknown key {key}.{other}; valid keys are: {}", CLASS_KEYS.join(", ")));
            }
        }
    }
    if source_rate.is_none() && source_burst.is_some() {
        return Err(format!("key {key}.source_burst: set source_rate too, or remove source_burst"));
    }
    if user_rate.is_none() && user_burst.is_some() {
        return Err(format!("key {key}.user_burst: set user_rate too, or remove user_burst"));
    }
    class.source_rate = rate_value(source_rate, source_burst)?;
    class.user_rate = rate_value(user_rate, user_burst)?;
    Ok(class)
}

fn rate_value(rate: Option<(String, String)>, burst: Option<u32>) -> Result<Option<Rate>, String> {
    let Some((key, text)) = rate else { return Ok(None) };
    // Without a burst, a client may reconnect once at once and then at the rate.
    Rate::parse(&text, burst.unwrap_or(1)).map(Some).map_err(|why| format!("key {key}: {why}"))
}

fn is_class_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn count_value(key: &str, value: &Value) -> Result<Count, String> {
    if value.as_str() == Some("auto") {
        return Ok(Count::Auto);
    }
    value
        .as_integer()
        .and_then(|number| u32::try_from(number).ok())
        .filter(|number| *number > 0)
        .map(Count::Fixed)
        .ok_or_else(|| format!("key {key}: invalid value {value}; expected a whole number above 0 or \"auto\""))
}

fn whole_value(key: &str, value: &Value, min: u32) -> Result<u32, String> {
    value
        .as_integer()
        .and_then(|number| u32::try_from(number).ok())
        .filter(|number| *number >= min)
        .ok_or_else(|| format!("key {key}: invalid value {value}; expected a whole number of at least {min}"))
}

const ONE_SECOND: Duration = Duration::from_secs(1);

/// Longest duration accepted, so that deadlines computed from it cannot
/// overflow: a year is far beyond any useful setting.
const DURATION_MAX: Duration = Duration::from_secs(365 * 24 * 3600);

fn duration_value(key: &str, value: &Value) -> Result<Duration, String> {
    let text = value
        .as_str()
        .ok_or_else(|| format!("key {key}: invalid value {value}; expected a duration in quotes, such as \"30s\" or \"15m\""))?;
    let duration = parse_duration(text).map_err(|why| format!("key {key}: {why}"))?;
    if duration > DURATION_MAX {
        return Err(format!("key {key}: invalid value {value}; expected at most 365d"));
    }
    Ok(duration)
}

fn duration_at_least(key: &str, value: &Value, min: Duration) -> Result<Duration, String> {
    let duration = duration_value(key, value)?;
    if duration < min {
        return Err(format!("key {key}: invalid value {value}; expected at least {}", crate::policy::format_duration(min)));
    }
    Ok(duration)
}

fn string_value<'a>(key: &str, value: &'a Value) -> Result<&'a str, String> {
    value.as_str().ok_or_else(|| format!("key {key}: invalid value {value}; expected a quoted string"))
}

fn strings_value(key: &str, value: &Value) -> Result<Vec<String>, String> {
    let invalid = || format!("key {key}: invalid value {value}; expected a list of quoted strings");
    value
        .as_array()
        .ok_or_else(invalid)?
        .iter()
        .map(|item| item.as_str().map(str::to_owned).ok_or_else(invalid))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<GovernorTable, String> {
        let table: Table = text.parse().unwrap();
        let governor = table.get("governor").and_then(Value::as_table).cloned().unwrap_or_default();
        parse_governor(&governor, &["trusted_proxies"])
    }

    #[test]
    fn full_table_reads() {
        let table = parse(
            r#"
            [governor]
            max_sessions = 2000
            max_preauth = "auto"
            waiting_window = "2m"
            trusted_proxies = ["10.0.0.1"]
            [governor.default]
            per_source_max = 50
            [[governor.class]]
            name = "campus"
            networks = ["10.0.0.0/8", "2001:db8::/32"]
            reserved = 1150
            priority = 10
            [[governor.class]]
            name = "proxy"
            networks = ["198.51.100.0/30"]
            lease = "5m"
            user_rate = "1/10s"
            user_burst = 3
            weight = 2
            "#,
        )
        .unwrap();
        assert_eq!(table.max_sessions, Count::Fixed(2000));
        assert_eq!(table.max_preauth, Count::Auto);
        assert_eq!(table.policy.max_sessions, 2000);
        assert_eq!(table.policy.waiting_window, Duration::from_secs(120));
        assert_eq!(table.policy.default_class.per_source_max, Some(50));
        assert_eq!(table.policy.classes.len(), 2);
        let proxy = &table.policy.classes[1];
        assert_eq!(proxy.lease, Some(Duration::from_secs(300)));
        assert_eq!(proxy.user_rate, Some(Rate { per_second: 0.1, burst: 3 }));
        assert_eq!(proxy.weight, 2);
        assert!(table.extra.contains_key("trusted_proxies"));
    }

    #[test]
    fn errors_name_key_and_fix() {
        let cases = [
            ("[governor]\nmax_sessions = 0", "key governor.max_sessions: invalid value 0"),
            ("[governor]\nmax_sesions = 5", "unknown key governor.max_sesions; valid keys are"),
            ("[[governor.class]]\nnetworks = []", "key governor.class[0].name is missing"),
            ("[[governor.class]]\nname = \"a b\"", "expected a name of letters"),
            ("[[governor.class]]\nname = \"a\"\nnetworks = [\"10.0.0.0/99\"]", "key governor.class[0].networks: invalid value \"10.0.0.0/99\""),
            ("[[governor.class]]\nname = \"a\"\nlease = \"soon\"", "key governor.class[0].lease: \"soon\" is not a duration"),
            ("[[governor.class]]\nname = \"a\"\nweight = 0", "key governor.class[0].weight: invalid value 0"),
            ("[[governor.class]]\nname = \"a\"\nuser_rate = \"fast\"", "key governor.class[0].user_rate"),
            ("[[governor.class]]\nname = \"a\"\nlimt = 3", "unknown key governor.class[0].limt"),
            ("[governor.default]\nnetworks = [\"10.0.0.0/8\"]", "the default class matches what no other class does"),
            ("[governor.default]\nname = \"x\"", "always named \"default\""),
            ("[[governor.class]]\nname = \"default\"", "choose another name"),
            ("[[governor.class]]\nname = \"a\"\nlease = 20", "expected a duration in quotes"),
            ("[[governor.class]]\nname = \"a\"\nlease = \"400d\"", "expected at most 365d"),
            ("[[governor.class]]\nname = \"a\"\nlease = \"0s\"", "expected at least 1s"),
            ("[governor]\nwaiting_window = \"0s\"", "expected at least 1s"),
            ("[[governor.class]]\nname = \"a\"\nsource_burst = 3", "set source_rate too"),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }
}
