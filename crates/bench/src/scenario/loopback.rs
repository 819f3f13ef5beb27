//! Moves a scenario's IPv4 networks onto loopback ranges, so that real
//! sockets can connect from the addresses the scenario's classes match.
//!
//! Each network gets an aligned block of the same size from 127.1.0.0
//! upward, largest first. A network inside another one keeps its offset in
//! it, so classes and populations that nest stay nested. 127.0.0.0/16 is
//! left alone: the server listens on 127.0.0.1 and `storm` and `notify`
//! connect from 127.0.0.2 upward.

use std::net::{IpAddr, Ipv4Addr};

use roost_governor::Network;

/// First address of the blocks handed out: 127.1.0.0.
const BLOCKS_START: u32 = 0x7f01_0000;

/// End of the blocks, exclusive: 127.255.255.255, the broadcast address
/// of 127.0.0.0/8, is never handed out.
const BLOCKS_END: u32 = 0x7fff_ffff;

/// The loopback block of each scenario network that is not inside another.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoopbackMap {
    /// Pairs of (scenario network, loopback network), largest first.
    blocks: Vec<(Network, Network)>,
}

impl LoopbackMap {
    /// Plans blocks for `networks`, which must be IPv4. The plan depends
    /// only on the set of networks, not on their order.
    pub fn build(networks: impl IntoIterator<Item = Network>) -> Result<LoopbackMap, String> {
        let mut sorted: Vec<(u8, u32)> = Vec::new();
        for network in networks {
            let IpAddr::V4(address) = network.address else {
                return Err(format!(
                    "network {network} is IPv6; loopback offers only ::1, so only IPv4 networks can be replayed"
                ));
            };
            sorted.push((
                network.prefix_len,
                u32::from(address) & mask(network.prefix_len),
            ));
        }
        sorted.sort_unstable();
        sorted.dedup();

        let mut map = LoopbackMap::default();
        let mut cursor = BLOCKS_START;
        for (prefix_len, base) in sorted {
            let network = v4_network(base, prefix_len);
            if map.parent(base, prefix_len).is_some() {
                continue;
            }
            let size = 1u64 << (32 - u32::from(prefix_len));
            let start = u64::from(cursor).next_multiple_of(size);
            if start + size > u64::from(BLOCKS_END) {
                return Err(format!(
                    "network {network} does not fit in the loopback addresses left for scenario networks (127.1.0.0 to 127.255.255.254); use smaller networks in the scenario"
                ));
            }
            map.blocks
                .push((network, v4_network(start as u32, prefix_len)));
            cursor = (start + size) as u32;
        }
        Ok(map)
    }

    /// Returns the loopback network of `network`, which must be one of
    /// the networks the map was built from or inside one.
    pub fn map(&self, network: &Network) -> Result<Network, String> {
        let IpAddr::V4(address) = network.address else {
            return Err(format!(
                "network {network} is IPv6 and has no loopback block"
            ));
        };
        let base = u32::from(address) & mask(network.prefix_len);
        let (from, to) = self
            .parent(base, network.prefix_len)
            .ok_or_else(|| format!("network {network} has no loopback block"))?;
        let offset = base - network_base(from);
        Ok(v4_network(network_base(to) + offset, network.prefix_len))
    }

    /// Returns the blocks: (scenario network, loopback network) pairs.
    pub fn blocks(&self) -> &[(Network, Network)] {
        &self.blocks
    }

    fn parent(&self, base: u32, prefix_len: u8) -> Option<&(Network, Network)> {
        self.blocks.iter().find(|(from, _)| {
            from.prefix_len <= prefix_len && base & mask(from.prefix_len) == network_base(from)
        })
    }
}

fn mask(prefix_len: u8) -> u32 {
    match prefix_len {
        0 => 0,
        bits => u32::MAX << (32 - u32::from(bits.min(32))),
    }
}

fn network_base(network: &Network) -> u32 {
    match network.address {
        IpAddr::V4(address) => u32::from(address),
        IpAddr::V6(_) => unreachable!("the map holds IPv4 networks only"),
    }
}

fn v4_network(base: u32, prefix_len: u8) -> Network {
    Network {
        address: IpAddr::V4(Ipv4Addr::from(base)),
        prefix_len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(text: &str) -> Network {
        text.parse().unwrap()
    }

    #[test]
    fn blocks_largest_first() {
        let map = LoopbackMap::build([network("198.51.100.0/30"), network("10.0.0.0/16")]).unwrap();
        assert_eq!(
            map.map(&network("10.0.0.0/16")).unwrap(),
            network("127.1.0.0/16")
        );
        assert_eq!(
            map.map(&network("198.51.100.0/30")).unwrap(),
            network("127.2.0.0/30")
        );
        assert_eq!(map.blocks().len(), 2);
    }

    #[test]
    fn order_does_not_matter() {
        let one = LoopbackMap::build([network("10.0.0.0/16"), network("192.0.2.7")]).unwrap();
        let two = LoopbackMap::build([network("192.0.2.7"), network("10.0.0.0/16")]).unwrap();
        assert_eq!(one, two);
    }

    #[test]
    fn nested_networks_keep_offsets() {
        let map = LoopbackMap::build([
            network("198.51.100.12/32"),
            network("198.51.100.0/24"),
            network("198.51.100.10/31"),
        ])
        .unwrap();
        assert_eq!(map.blocks().len(), 1);
        assert_eq!(
            map.map(&network("198.51.100.12/32")).unwrap(),
            network("127.1.0.12/32")
        );
        assert_eq!(
            map.map(&network("198.51.100.10/31")).unwrap(),
            network("127.1.0.10/31")
        );
    }

    #[test]
    fn host_bits_are_ignored() {
        let map = LoopbackMap::build([network("10.0.0.5/16")]).unwrap();
        assert_eq!(
            map.map(&network("10.0.3.0/24")).unwrap(),
            network("127.1.3.0/24")
        );
    }

    #[test]
    fn blocks_are_aligned() {
        let map = LoopbackMap::build([
            network("192.0.2.1/32"),
            network("203.0.113.0/24"),
            network("10.0.0.0/16"),
        ])
        .unwrap();
        let targets: Vec<String> = map.blocks().iter().map(|(_, to)| to.to_string()).collect();
        assert_eq!(targets, ["127.1.0.0/16", "127.2.0.0/24", "127.2.1.0/32"]);
    }

    #[test]
    fn too_large_or_ipv6_rejected() {
        let err = LoopbackMap::build([network("10.0.0.0/8")]).unwrap_err();
        assert!(err.contains("does not fit"), "{err}");
        let err = LoopbackMap::build([network("2001:db8::/48")]).unwrap_err();
        assert!(err.contains("IPv6"), "{err}");
        let map = LoopbackMap::build([network("10.0.0.0/16")]).unwrap();
        assert!(map.map(&network("10.1.0.0/16")).is_err());
    }
}
