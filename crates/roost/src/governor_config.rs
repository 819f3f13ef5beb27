//! The `[governor]` and `[groups]` parts of the config file, and the
//! session counts derived from the memory budget.
//!
//! The policy keys are read by `roost_governor::config`, shared with
//! simulator scenarios; this module adds the keys only the server has
//! (trusted proxies, the memory budget) and resolves `"auto"` counts.

use std::collections::HashMap;
use std::time::Duration;

use roost_governor::config::{Count, parse_governor};
use roost_server::config::{GovernorConfig, Network};

use crate::values::parse_duration;

/// Server-only keys of the `[governor]` table.
const SERVER_KEYS: &[&str] = &["trusted_proxies", "proxy_header_timeout", "memory_budget"];

/// Memory one idle session is budgeted: Roost's own state plus the
/// kernel's socket buffers for one idle TCP connection. An estimate, to be
/// replaced by the measured figure from the idle-session benchmark.
pub const SESSION_BYTES_ESTIMATE: u64 = 12 * 1024;

/// Share of `max_sessions` that `max_preauth` gets when it is `"auto"`.
const PREAUTH_SHARE: u64 = 10;
/// Floor of an automatic `max_preauth`, so a small server still takes a
/// burst of new connections.
const PREAUTH_MIN: u64 = 1_000;

/// The capacity settings as written, resolved at start.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Capacity {
    pub max_sessions: Count,
    pub max_preauth: Count,
    pub memory_budget: MemoryBudget,
}

impl Default for Capacity {
    fn default() -> Capacity {
        Capacity { max_sessions: Count::Auto, max_preauth: Count::Auto, memory_budget: MemoryBudget::Percent(50) }
    }
}

/// Memory the automatic session counts may plan for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MemoryBudget {
    /// A share of the machine's physical memory.
    Percent(u8),
    Bytes(u64),
}

/// Applies a `[governor]` table.
pub fn apply_governor(governor: &mut GovernorConfig, capacity: &mut Capacity, table: &toml::Table) -> Result<(), String> {
    let parsed = parse_governor(table, SERVER_KEYS)?;
    let groups = std::mem::take(&mut governor.groups);
    governor.policy = parsed.policy;
    governor.groups = groups;
    capacity.max_sessions = parsed.max_sessions;
    capacity.max_preauth = parsed.max_preauth;
    for (key, value) in &parsed.extra {
        let full = format!("governor.{key}");
        match key.as_str() {
            "trusted_proxies" => governor.trusted_proxies = networks(&full, value)?,
            "proxy_header_timeout" => {
                let text = value
                    .as_str()
                    .ok_or_else(|| format!("key {full}: invalid value {value}: expected a duration such as \"5s\""))?;
                let timeout = parse_duration(text).map_err(|expected| format!("key {full}: invalid value {value}: {expected}"))?;
                if timeout < Duration::from_millis(100) {
                    return Err(format!("key {full}: invalid value {value}: expected at least 100ms"));
                }
                governor.proxy_header_timeout = timeout;
            }
            "memory_budget" => capacity.memory_budget = memory_budget(&full, value)?,
            _ => unreachable!("parse_governor returns only the keys it was given"),
        }
    }
    Ok(())
}

/// Applies a `[groups]` table: each key is a group, its value the users in
/// it.
pub fn apply_groups(groups: &mut HashMap<String, Vec<String>>, table: &toml::Table) -> Result<(), String> {
    groups.clear();
    for (group, members) in table {
        let invalid = || format!("key groups.{group}: invalid value {members}: expected a list of user names");
        let members = members.as_array().ok_or_else(invalid)?;
        for member in members {
            let user = member.as_str().ok_or_else(invalid)?;
            roost_auth::validate_user_name(user)
                .map_err(|why| format!("key groups.{group}: invalid user name \"{user}\": {why}"))?;
            groups.entry(user.to_owned()).or_default().push(group.clone());
        }
    }
    Ok(())
}

fn networks(key: &str, value: &toml::Value) -> Result<Vec<Network>, String> {
    let invalid = || format!("key {key}: invalid value {value}: expected a list of networks such as [\"10.0.0.5/32\"]");
    value
        .as_array()
        .ok_or_else(invalid)?
        .iter()
        .map(|item| {
            let text = item.as_str().ok_or_else(invalid)?;
            text.parse::<Network>().map_err(|why| format!("key {key}: invalid value \"{text}\": {why}"))
        })
        .collect()
}

fn memory_budget(key: &str, value: &toml::Value) -> Result<MemoryBudget, String> {
    let invalid = || format!("key {key}: invalid value {value}: expected a share such as \"50%\" or a size such as \"8GiB\"");
    if let Some(bytes) = value.as_integer() {
        return u64::try_from(bytes).ok().filter(|bytes| *bytes > 0).map(MemoryBudget::Bytes).ok_or_else(invalid);
    }
    let text = value.as_str().ok_or_else(invalid)?.trim();
    if let Some(percent) = text.strip_suffix('%') {
        return percent
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|percent| (1..=100).contains(percent))
            .map(MemoryBudget::Percent)
            .ok_or_else(invalid);
    }
    let units: [(&str, u64); 4] = [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40)];
    for (suffix, unit) in units {
        if let Some(number) = text.strip_suffix(suffix) {
            let number: u64 = number.trim().parse().map_err(|_| invalid())?;
            return number.checked_mul(unit).filter(|bytes| *bytes > 0).map(MemoryBudget::Bytes).ok_or_else(invalid);
        }
    }
    Err(invalid())
}

/// Fills in `"auto"` session counts from the memory budget, with the
/// machine's physical memory read from `/proc/meminfo`.
pub fn resolve_capacity(governor: &mut GovernorConfig, capacity: &Capacity) -> Result<(), String> {
    let budget = match capacity.memory_budget {
        MemoryBudget::Bytes(bytes) => bytes,
        MemoryBudget::Percent(percent) => {
            let total = physical_memory_bytes().ok_or_else(|| {
                "key governor.memory_budget: the machine's memory could not be read from /proc/meminfo; set governor.max_sessions or a memory_budget in bytes"
                    .to_owned()
            })?;
            total / 100 * u64::from(percent)
        }
    };
    let sessions = match capacity.max_sessions {
        Count::Fixed(count) => u64::from(count),
        Count::Auto => (budget / SESSION_BYTES_ESTIMATE).max(1),
    };
    let preauth = match capacity.max_preauth {
        Count::Fixed(count) => u64::from(count),
        Count::Auto => (sessions / PREAUTH_SHARE).max(PREAUTH_MIN),
    };
    let clamp = |count: u64| u32::try_from(count).unwrap_or(u32::MAX);
    governor.policy.max_sessions = clamp(sessions);
    governor.policy.max_preauth = clamp(preauth);
    governor.policy.validate().map_err(|why| format!("[governor]: {why}"))
}

fn physical_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(text: &str) -> Result<(GovernorConfig, Capacity), String> {
        let table: toml::Table = toml::from_str(text).unwrap();
        let mut governor = GovernorConfig::with_capacity(0, 0);
        let mut capacity = Capacity::default();
        if let Some(section) = table.get("governor").and_then(toml::Value::as_table) {
            apply_governor(&mut governor, &mut capacity, section)?;
        }
        if let Some(section) = table.get("groups").and_then(toml::Value::as_table) {
            apply_groups(&mut governor.groups, section)?;
        }
        resolve_capacity(&mut governor, &capacity)?;
        Ok((governor, capacity))
    }

    #[test]
    fn auto_counts_follow_budget() {
        let (governor, _) = apply("[governor]\nmemory_budget = \"12GiB\"").unwrap();
        assert_eq!(u64::from(governor.policy.max_sessions), 12 * (1 << 30) / SESSION_BYTES_ESTIMATE);
        assert_eq!(governor.policy.max_preauth, governor.policy.max_sessions / 10);
    }

    #[test]
    fn default_budget_reads_physical_memory() {
        let (governor, capacity) = apply("").unwrap();
        assert_eq!(capacity.memory_budget, MemoryBudget::Percent(50));
        let expected = physical_memory_bytes().unwrap() / 100 * 50 / SESSION_BYTES_ESTIMATE;
        assert_eq!(u64::from(governor.policy.max_sessions), expected);
    }

    #[test]
    fn fixed_counts_win() {
        let (governor, _) = apply("[governor]\nmax_sessions = 60\nmax_preauth = 20").unwrap();
        assert_eq!(governor.policy.max_sessions, 60);
        assert_eq!(governor.policy.max_preauth, 20);
    }

    #[test]
    fn server_keys_read() {
        let (governor, _) = apply(
            "[governor]\nmax_sessions = 10\ntrusted_proxies = [\"10.0.0.5\"]\nproxy_header_timeout = \"2s\"\n[groups]\nstaff = [\"alice\", \"bob\"]\nadmins = [\"alice\"]",
        )
        .unwrap();
        assert_eq!(governor.trusted_proxies, vec!["10.0.0.5/32".parse::<Network>().unwrap()]);
        assert_eq!(governor.proxy_header_timeout, Duration::from_secs(2));
        let mut alice = governor.groups["alice"].clone();
        alice.sort();
        assert_eq!(alice, ["admins", "staff"]);
        assert_eq!(governor.groups["bob"], ["staff"]);
    }

    #[test]
    fn errors_name_key_and_fix() {
        let cases = [
            ("[governor]\nmemory_budget = \"lots\"", "key governor.memory_budget: invalid value \"lots\""),
            ("[governor]\nmemory_budget = \"150%\"", "key governor.memory_budget"),
            ("[governor]\ntrusted_proxies = [\"x\"]", "key governor.trusted_proxies: invalid value \"x\""),
            ("[governor]\nproxy_header_timeout = \"1ms\"", "expected at least 100ms"),
            ("[groups]\nstaff = \"alice\"", "key groups.staff: invalid value \"alice\""),
            ("[groups]\nstaff = [\"bad user\"]", "key groups.staff: invalid user name \"bad user\""),
            ("[governor]\nmax_sessions = 10\n[[governor.class]]\nname = \"a\"\nreserved = 20", "reserve 20 slots but max_sessions is 10"),
            ("[governor]\nbogus = 1", "unknown key governor.bogus"),
        ];
        for (text, expected) in cases {
            let err = apply(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }
}
