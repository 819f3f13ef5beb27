//! The admission policy an administrator configures: global bounds and
//! connection classes.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::network::Network;

/// Everything the governor decides by.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Most logged-in sessions at once, over all classes.
    pub max_sessions: u32,
    /// Most connections that have not logged in yet.
    pub max_preauth: u32,
    /// The configured classes, in the order they are matched.
    pub classes: Vec<ClassConfig>,
    /// The class of connections no configured class matches.
    pub default_class: ClassConfig,
    /// How long a refused user keeps counting as waiting for a slot of its
    /// class. Clients that retry sooner than this stay in the queue.
    pub waiting_window: Duration,
    /// How long a slot freed by rotation stays set aside for the users at
    /// the head of the class's queue before anyone may take it.
    pub rotation_hold: Duration,
    /// Longest a greeting is delayed to damp a reconnect storm; a source
    /// that would need longer is refused instead.
    pub greeting_delay_max: Duration,
    /// Retry hint sent with refusals that have no better estimate.
    pub retry_default: Duration,
    /// Delay after the first failed login; each further failure doubles it.
    pub login_penalty_base: Duration,
    /// Longest delay a failed login earns.
    pub login_penalty_max: Duration,
    /// Failed logins older than this are forgotten.
    pub login_penalty_window: Duration,
}

impl Policy {
    /// Returns a policy with one default class and the given capacity.
    pub fn with_capacity(max_sessions: u32, max_preauth: u32) -> Policy {
        Policy {
            max_sessions,
            max_preauth,
            classes: Vec::new(),
            default_class: ClassConfig::new(DEFAULT_CLASS_NAME),
            waiting_window: Duration::from_secs(60),
            rotation_hold: Duration::from_secs(15),
            greeting_delay_max: Duration::from_secs(5),
            retry_default: Duration::from_secs(60),
            login_penalty_base: Duration::from_secs(2),
            login_penalty_max: Duration::from_secs(15),
            login_penalty_window: Duration::from_secs(15 * 60),
        }
    }

    /// Checks the rules a configuration must keep: unique class names, and
    /// reservations that fit in `max_sessions` and under each class's limit.
    pub fn validate(&self) -> Result<(), String> {
        let mut names = BTreeSet::new();
        for class in self.classes.iter().chain(std::iter::once(&self.default_class)) {
            if !names.insert(class.name.as_str()) {
                return Err(format!("class name \"{}\" is used twice; give each class its own name", class.name));
            }
            if class.weight == 0 {
                return Err(format!("class \"{}\": weight must be at least 1", class.name));
            }
            if let Some(limit) = class.limit
                && class.reserved > limit
            {
                return Err(format!(
                    "class \"{}\": reserved ({}) is above limit ({limit}); lower reserved or raise limit",
                    class.name, class.reserved
                ));
            }
        }
        let reserved: u64 = self.classes.iter().map(|class| u64::from(class.reserved)).sum::<u64>()
            + u64::from(self.default_class.reserved);
        if reserved > u64::from(self.max_sessions) {
            return Err(format!(
                "the classes reserve {reserved} slots but max_sessions is {}; lower the reservations or raise max_sessions",
                self.max_sessions
            ));
        }
        Ok(())
    }
}

/// Name of the class that catches unmatched connections.
pub const DEFAULT_CLASS_NAME: &str = "default";

/// One class of connections and what it may hold.
///
/// A connection belongs to the first class whose every given criterion
/// matches. Before login only the source network and the client's ID name
/// are known, so classes that name users or groups match from login on.
#[derive(Clone, Debug)]
pub struct ClassConfig {
    pub name: String,
    /// Source networks; empty matches any source.
    pub networks: Vec<Network>,
    /// User names; empty (with `groups` empty) matches any user.
    pub users: BTreeSet<String>,
    /// User groups; a user in any of them matches.
    pub groups: BTreeSet<String>,
    /// Client names from the IMAP ID command (RFC 2971), compared without
    /// regard to case; empty matches any client.
    pub client_ids: Vec<String>,
    /// Slots kept for this class even while it does not use them.
    pub reserved: u32,
    /// Most sessions of this class; `None` is bounded only by
    /// `max_sessions`.
    pub limit: Option<u32>,
    /// Share of contended slots relative to other classes of the same
    /// priority.
    pub weight: u32,
    /// Classes of higher priority take slots from lower ones beyond their
    /// reservations.
    pub priority: i32,
    /// Most sessions one user holds in this class.
    pub per_user_max: Option<u32>,
    /// Most connections from one source (an IPv4 address or an IPv6 /64).
    pub per_source_max: Option<u32>,
    /// Connection rate allowed per source.
    pub source_rate: Option<Rate>,
    /// Login rate allowed per user.
    pub user_rate: Option<Rate>,
    /// While users of this class wait, sessions idle longer than this are
    /// closed, oldest first, to let them in. `None` turns rotation off.
    pub lease: Option<Duration>,
    /// Most sessions rotation closes per second in this class.
    pub rotation_rate: f64,
}

impl ClassConfig {
    /// Returns a class that matches everything and limits nothing.
    pub fn new(name: &str) -> ClassConfig {
        ClassConfig {
            name: name.to_owned(),
            networks: Vec::new(),
            users: BTreeSet::new(),
            groups: BTreeSet::new(),
            client_ids: Vec::new(),
            reserved: 0,
            limit: None,
            weight: 1,
            priority: 0,
            per_user_max: None,
            per_source_max: None,
            source_rate: None,
            user_rate: None,
            lease: None,
            rotation_rate: 10.0,
        }
    }

    /// Checks whether the class names a user or group, so that it can
    /// match only from login on.
    pub fn needs_user(&self) -> bool {
        !self.users.is_empty() || !self.groups.is_empty()
    }
}

/// A token bucket's refill rate and depth.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_second: f64,
    /// Most tokens the bucket holds, so the most events allowed at once.
    pub burst: u32,
}

impl Rate {
    /// Parses `COUNT/DURATION` such as `10/1m` or `1/5s`.
    pub fn parse(text: &str, burst: u32) -> Result<Rate, String> {
        let (count, per) = text
            .split_once('/')
            .ok_or_else(|| format!("\"{text}\" is not a rate; write it as COUNT/DURATION, such as 10/1m"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| format!("\"{count}\" in rate \"{text}\" is not a whole number"))?;
        let per = parse_duration(per.trim())?;
        if count == 0 || per.is_zero() {
            return Err(format!("rate \"{text}\" must allow at least one event in a non-zero time"));
        }
        Ok(Rate { per_second: f64::from(count) / per.as_secs_f64(), burst: burst.max(1) })
    }
}

/// Parses a duration such as `15m`, `30s`, `1h30m` or `250ms`. A bare
/// number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("\"{text}\" is not a duration; write it like 30s, 15m, 1h or 250ms");
    if text.is_empty() {
        return Err(invalid());
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(invalid());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(86_400),
            _ => return Err(invalid()),
        };
        rest = &rest[unit_len..];
        let part = unit.checked_mul(u32::try_from(number).map_err(|_| invalid())?).ok_or_else(invalid)?;
        total = total.checked_add(part).ok_or_else(invalid)?;
    }
    Ok(total)
}

/// Formats a duration the way [`parse_duration`] reads it, in whole units.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if !millis.is_multiple_of(1000) {
        return format!("{millis}ms");
    }
    let seconds = duration.as_secs();
    if seconds == 0 {
        return "0s".to_owned();
    }
    let mut text = String::new();
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if hours > 0 {
        text.push_str(&format!("{hours}h"));
    }
    if minutes > 0 {
        text.push_str(&format!("{minutes}m"));
    }
    if seconds > 0 {
        text.push_str(&format!("{seconds}s"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
    }

    #[test]
    fn bad_durations_say_how_to_write_one() {
        for text in ["", "m", "15x", "1.5m", "-3s", "s15"] {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains("write it like 30s"), "{text}: {err}");
        }
    }

    #[test]
    fn durations_format_back() {
        for text in ["30s", "15m", "1h30m", "250ms", "1h0m5s"] {
            let duration = parse_duration(text).unwrap();
            assert_eq!(parse_duration(&format_duration(duration)), Ok(duration), "{text}");
        }
        assert_eq!(format_duration(Duration::from_secs(900)), "15m");
    }

    #[test]
    fn rates_parse() {
        let rate = Rate::parse("10/1m", 5).unwrap();
        assert!((rate.per_second - 10.0 / 60.0).abs() < 1e-9);
        assert_eq!(rate.burst, 5);
        assert!(Rate::parse("10", 1).unwrap_err().contains("COUNT/DURATION"));
        assert!(Rate::parse("0/1s", 1).is_err());
        assert!(Rate::parse("x/1s", 1).unwrap_err().contains("whole number"));
    }

    #[test]
    fn validate_catches_overbooked_reservations() {
        let mut policy = Policy::with_capacity(100, 10);
        let mut campus = ClassConfig::new("campus");
        campus.reserved = 80;
        let mut staff = ClassConfig::new("staff");
        staff.reserved = 30;
        policy.classes = vec![campus, staff];
        let err = policy.validate().unwrap_err();
        assert!(err.contains("reserve 110 slots"), "{err}");
    }

    #[test]
    fn validate_catches_duplicate_names_and_bad_limits() {
        let mut policy = Policy::with_capacity(100, 10);
        policy.classes = vec![ClassConfig::new("a"), ClassConfig::new("a")];
        assert!(policy.validate().unwrap_err().contains("used twice"));
        let mut class = ClassConfig::new("a");
        class.reserved = 5;
        class.limit = Some(4);
        policy.classes = vec![class];
        assert!(policy.validate().unwrap_err().contains("above limit"));
    }
}
