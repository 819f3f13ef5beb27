//! The loopback-only guard and the plan of source addresses.
//!
//! Every connection binds to a loopback source address before it connects,
//! so the ephemeral ports of one address never run out: each source address
//! gets its own range of about 28,000 ports toward the server's address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Maximum source addresses of a plan. From 127.0.0.2 upward, this many
/// stay inside 127.0.0.0/8.
pub const SOURCE_ADDRESSES_MAX: u32 = 65_536;

/// Rejects any address outside 127.0.0.0/8 and ::1, naming the flag.
pub fn check_loopback(flag: &str, address: SocketAddr) -> Result<(), String> {
    if address.ip().is_loopback() {
        Ok(())
    } else {
        Err(format!(
            "{flag} {address}: not a loopback address; roost-bench connects only to 127.0.0.0/8 or [::1]"
        ))
    }
}

/// Returns the number of ephemeral ports the kernel hands out per source
/// address, from /proc/sys/net/ipv4/ip_local_port_range.
pub fn ephemeral_port_count() -> Result<u32, String> {
    let path = "/proc/sys/net/ipv4/ip_local_port_range";
    let text =
        std::fs::read_to_string(path).map_err(|err| format!("reading {path} failed: {err}"))?;
    parse_port_range(&text).ok_or_else(|| format!("{path}: invalid content \"{}\"", text.trim()))
}

fn parse_port_range(text: &str) -> Option<u32> {
    let mut fields = text.split_whitespace().map(str::parse::<u32>);
    let low = fields.next()?.ok()?;
    let high = fields.next()?.ok()?;
    (high >= low).then(|| high - low + 1)
}

/// Most sessions one source address carries by default. When nearly all
/// of an address's ports are taken, each `connect()` searches long for a
/// free one: with 50,000 sessions on one address the setup ran at half the
/// rate it reached with 20,000 per address.
pub const SESSIONS_PER_ADDRESS_MAX: u32 = 20_000;

/// Sessions one source address carries by default: a third of the
/// ephemeral port range, at most [`SESSIONS_PER_ADDRESS_MAX`], so that
/// `connect()` finds a free port at once.
pub fn default_sessions_per_address(port_count: u32) -> u32 {
    (port_count / 3).clamp(1, SESSIONS_PER_ADDRESS_MAX)
}

/// Returns the source addresses for `sessions` connections to `server`.
/// Session `i` binds to `addresses[i % addresses.len()]`.
///
/// `requested` fixes the number of addresses; without it the plan uses as
/// few as `sessions_per_address` allows.
pub fn plan_sources(
    server: SocketAddr,
    sessions: u64,
    sessions_per_address: u32,
    requested: Option<u32>,
    first: Ipv4Addr,
) -> Result<Vec<IpAddr>, String> {
    let per_address = u64::from(sessions_per_address.max(1));
    let needed = sessions.div_ceil(per_address).max(1);

    if server.is_ipv6() {
        // IPv6 has a single loopback address, so every port comes from ::1.
        if needed > 1 || requested.is_some_and(|count| count != 1) {
            return Err(format!(
                "--server {server}: IPv6 loopback has one source address, enough for {per_address} sessions, not {sessions}; use an IPv4 loopback server address such as 127.0.0.1"
            ));
        }
        return Ok(vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]);
    }

    let count = match requested {
        Some(0) => {
            return Err("--source-addresses 0: at least one source address is needed".to_owned());
        }
        Some(count) if u64::from(count) < needed => {
            return Err(format!(
                "--source-addresses {count}: {count} addresses carry {} sessions at {per_address} per address, fewer than {sessions}; raise it to {needed} or leave it out",
                u64::from(count) * per_address
            ));
        }
        Some(count) => u64::from(count),
        None => needed,
    };
    if count > u64::from(SOURCE_ADDRESSES_MAX) {
        return Err(format!(
            "{sessions} sessions need {count} source addresses, above the maximum of {SOURCE_ADDRESSES_MAX}; lower --sessions"
        ));
    }

    let start = u32::from(first);
    let last = start.checked_add(count as u32 - 1).map(Ipv4Addr::from);
    match last {
        Some(last)
            if first.is_loopback()
                && last.is_loopback()
                && last != Ipv4Addr::new(127, 255, 255, 255) => {}
        _ => {
            return Err(format!(
                "--first-source-address {first}: {count} addresses from there leave 127.0.0.0/8; choose a lower first address such as 127.0.0.2"
            ));
        }
    }
    Ok((0..count as u32)
        .map(|offset| IpAddr::V4(Ipv4Addr::from(start + offset)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn loopback_guard_accepts_loopback() {
        assert!(check_loopback("--server", v4("127.0.0.1:1143")).is_ok());
        assert!(check_loopback("--server", v4("127.9.8.7:1")).is_ok());
        assert!(check_loopback("--server", v4("[::1]:1143")).is_ok());
    }

    #[test]
    fn loopback_guard_rejects_others() {
        for address in [
            "10.0.0.1:143",
            "192.168.1.1:143",
            "8.8.8.8:143",
            "0.0.0.0:143",
            "[::ffff:127.0.0.1]:143",
            "[2001:db8::1]:143",
        ] {
            let err = check_loopback("--server", v4(address)).unwrap_err();
            assert!(err.contains("not a loopback address"), "{address}: {err}");
            assert!(err.starts_with("--server "), "{address}: {err}");
        }
    }

    #[test]
    fn port_range_parsing() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some(28_232));
        assert_eq!(parse_port_range("1024 1024"), Some(1));
        assert_eq!(parse_port_range("60999 32768"), None);
        assert_eq!(parse_port_range("junk"), None);
    }

    #[test]
    fn default_per_address_leaves_free_ports() {
        assert_eq!(default_sessions_per_address(28_232), 9_410);
        assert_eq!(default_sessions_per_address(64_512), SESSIONS_PER_ADDRESS_MAX);
        assert_eq!(default_sessions_per_address(2), 1);
    }

    #[test]
    fn plan_uses_enough_addresses() {
        let first = Ipv4Addr::new(127, 0, 0, 2);
        let plan = plan_sources(v4("127.0.0.1:1143"), 1_000_000, 25_000, None, first).unwrap();
        assert_eq!(plan.len(), 40);
        assert_eq!(plan[0], IpAddr::V4(first));
        assert_eq!(plan[39], IpAddr::V4(Ipv4Addr::new(127, 0, 0, 41)));

        let plan = plan_sources(v4("127.0.0.1:1143"), 10, 25_000, None, first).unwrap();
        assert_eq!(plan.len(), 1);
    }

    #[test]
    fn plan_honours_requested_count() {
        let first = Ipv4Addr::new(127, 0, 0, 250);
        let plan = plan_sources(v4("127.0.0.1:1143"), 300, 25_000, Some(10), first).unwrap();
        assert_eq!(plan.len(), 10);
        // Crosses the octet boundary.
        assert_eq!(plan[9], IpAddr::V4(Ipv4Addr::new(127, 0, 1, 3)));
    }

    #[test]
    fn plan_rejects_too_few_addresses() {
        let err = plan_sources(
            v4("127.0.0.1:1143"),
            100_000,
            25_000,
            Some(2),
            Ipv4Addr::new(127, 0, 0, 2),
        )
        .unwrap_err();
        assert!(err.contains("raise it to 4"), "{err}");
    }

    #[test]
    fn plan_stays_inside_loopback() {
        let err = plan_sources(
            v4("127.0.0.1:1143"),
            100,
            25_000,
            Some(3),
            Ipv4Addr::new(127, 255, 255, 254),
        )
        .unwrap_err();
        assert!(err.contains("leave 127.0.0.0/8"), "{err}");
        let err = plan_sources(
            v4("127.0.0.1:1143"),
            100,
            25_000,
            None,
            Ipv4Addr::new(10, 0, 0, 2),
        )
        .unwrap_err();
        assert!(err.contains("leave 127.0.0.0/8"), "{err}");
    }

    #[test]
    fn plan_for_ipv6_uses_one_address() {
        let plan = plan_sources(
            v4("[::1]:1143"),
            100,
            25_000,
            None,
            Ipv4Addr::new(127, 0, 0, 2),
        )
        .unwrap();
        assert_eq!(plan, vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]);
        assert!(
            plan_sources(
                v4("[::1]:1143"),
                30_000,
                25_000,
                None,
                Ipv4Addr::new(127, 0, 0, 2)
            )
            .is_err()
        );
    }
}
