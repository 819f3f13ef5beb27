//! IP networks and the source key connections are counted under.

use std::net::IpAddr;

/// An IP network such as `127.0.0.0/8` or `::1/128`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    pub address: IpAddr,
    pub prefix_len: u8,
}

impl Network {
    /// Returns the loopback networks, which are trusted by default.
    pub fn loopback() -> Vec<Network> {
        vec![
            Network { address: IpAddr::from([127, 0, 0, 0]), prefix_len: 8 },
            Network { address: IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]), prefix_len: 128 },
        ]
    }

    /// Checks whether `address` lies in this network. An IPv4 address written as
    /// an IPv4-mapped IPv6 address matches IPv4 networks.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        match (self.address, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let bits = u32::from(self.prefix_len.min(32));
                let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let bits = u32::from(self.prefix_len.min(128));
                let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Network {
    type Err = String;

    /// Parses `ADDRESS/PREFIX`, or a bare address as a single host.
    fn from_str(text: &str) -> Result<Network, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address.parse().map_err(|_| format!("{address:?} is not an IP address"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix {
            None => max,
            Some(prefix) => match prefix.parse::<u8>() {
                Ok(len) if len <= max => len,
                _ => return Err(format!("prefix length {prefix:?} is not a number from 0 to {max}")),
            },
        };
        Ok(Network { address, prefix_len })
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

/// The key per-source counts, rates and penalties are kept under: the
/// whole address for IPv4, and the /64 prefix for IPv6, because one IPv6
/// host usually holds a whole /64 and can pick any address in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceKey(u128);

impl SourceKey {
    /// Returns the key of `address`. An IPv4-mapped IPv6 address counts as
    /// its IPv4 address.
    pub fn of(address: IpAddr) -> SourceKey {
        match address {
            IpAddr::V4(v4) => SourceKey(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => SourceKey(u128::from(u32::from(v4))),
                None => SourceKey(u128::from(v6) & (u128::MAX << 64) | 1 << 32),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_membership() {
        let net: Network = "127.0.0.1/32".parse().unwrap();
        assert!(net.contains("127.0.0.1".parse().unwrap()));
        assert!(!net.contains("127.0.0.2".parse().unwrap()));
        assert!(net.contains("::ffff:127.0.0.1".parse().unwrap()));
        let net: Network = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains("10.200.1.1".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        let all: Network = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        let v6: Network = "::1".parse().unwrap();
        assert!(v6.contains("::1".parse().unwrap()));
        assert!(!v6.contains("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn network_parse_errors() {
        assert!("10.0.0.0/33".parse::<Network>().is_err());
        assert!("nonsense/8".parse::<Network>().is_err());
        assert_eq!("192.0.2.0/24".parse::<Network>().unwrap().to_string(), "192.0.2.0/24");
    }
}
