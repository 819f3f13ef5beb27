//! Parsers for the value types that config keys and flags share:
//! durations, listen addresses and log filters.
//!
//! This module owns the accepted spellings and the "expected ..." part of
//! error messages. Which key a value belongs to is outside it.

use std::net::SocketAddr;
use std::time::Duration;

/// Description of a valid duration, for error messages.
pub const DURATION_EXPECTED: &str =
    "expected a duration such as \"30s\", \"10m\", \"2h\" or \"1h30m\"";

/// Description of a valid listen address, for error messages.
pub const LISTEN_EXPECTED: &str =
    "expected IP:PORT such as 127.0.0.1:1143 or [::1]:1143, or \"off\"";

/// Maximum duration accepted, so that later arithmetic on deadlines cannot
/// overflow: a year is far beyond any useful timeout.
const DURATION_MAX: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses a duration written as one or more number-unit pairs, such as
/// `90s`, `30m`, `1h30m` or `250ms`. Units: `ms`, `s`, `m`, `h`, `d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DURATION_EXPECTED.to_owned());
    }

    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits_end == 0 {
            return Err(DURATION_EXPECTED.to_owned());
        }
        let number: u64 = rest[..digits_end]
            .parse()
            .map_err(|_| DURATION_EXPECTED.to_owned())?;
        rest = &rest[digits_end..];

        let unit_end = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_millis: u64 = match &rest[..unit_end] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(DURATION_EXPECTED.to_owned()),
        };
        rest = &rest[unit_end..];

        let millis = number
            .checked_mul(unit_millis)
            .ok_or_else(|| DURATION_EXPECTED.to_owned())?;
        total = total
            .checked_add(Duration::from_millis(millis))
            .ok_or_else(|| DURATION_EXPECTED.to_owned())?;
    }

    if total > DURATION_MAX {
        return Err(format!("{DURATION_EXPECTED}, of at most 365d"));
    }
    Ok(total)
}

/// Formats a duration the way [`parse_duration`] reads it, for docs and
/// messages.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    let units: [(u128, &str); 5] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
        (1, "ms"),
    ];
    if millis == 0 {
        return "0s".to_owned();
    }
    let mut rest = millis;
    let mut text = String::new();
    for (unit_millis, unit) in units {
        if rest >= unit_millis {
            text.push_str(&format!("{}{unit}", rest / unit_millis));
            rest %= unit_millis;
        }
    }
    text
}

/// Parses a listen address. `off` or `none` turns the listener off; port 0
/// lets the system pick a free port.
pub fn parse_listen(text: &str) -> Result<Option<SocketAddr>, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") || text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    text.parse::<SocketAddr>()
        .map(Some)
        .map_err(|_| LISTEN_EXPECTED.to_owned())
}

/// Checks a `RUST_LOG`-style log filter such as `info` or
/// `roost_server=debug,info`.
pub fn check_log_filter(text: &str) -> Result<(), String> {
    tracing_subscriber::EnvFilter::try_new(text).map(|_| ()).map_err(|err| {
        format!("expected a log filter such as \"info\", \"debug\" or \"roost_server=debug,info\" ({err})")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("365d"), Ok(DURATION_MAX));
    }

    #[test]
    fn durations_reject_bad_text() {
        for text in [
            "",
            "10",
            "s",
            "10x",
            "1.5s",
            "-1s",
            "10 s",
            "366d",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn durations_format_round_trip() {
        for text in ["2m", "30m", "1m", "10s", "1h30m", "250ms", "0s"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }

    #[test]
    fn listen_addresses_parse() {
        assert_eq!(
            parse_listen("127.0.0.1:1143"),
            Ok(Some("127.0.0.1:1143".parse().unwrap()))
        );
        assert_eq!(
            parse_listen("[::1]:0"),
            Ok(Some("[::1]:0".parse().unwrap()))
        );
        assert_eq!(parse_listen("off"), Ok(None));
        assert_eq!(parse_listen("None"), Ok(None));
        assert!(parse_listen("localhost:1143").is_err());
        assert!(parse_listen("127.0.0.1").is_err());
        assert!(parse_listen("127.0.0.1:70000").is_err());
    }
}
