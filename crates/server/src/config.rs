//! The settings a running server needs, already validated.
//!
//! The `roost` binary reads TOML and command-line flags into this struct;
//! the server never reads files or flags itself. Every field is a key in
//! `docs/configuration.md` under the same name.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::tls::TlsSettings;

/// Everything `roost serve` runs with.
#[derive(Clone, Debug)]
pub struct Config {
    /// Folder of the embedded store and the passwd-file.
    pub data_dir: PathBuf,
    /// IMAP listener; `None` turns it off. Port 0 picks a free port.
    pub imap_listen: Option<SocketAddr>,
    /// LMTP listener; `None` turns it off. Port 0 picks a free port.
    pub lmtp_listen: Option<SocketAddr>,
    /// Implicit-TLS IMAP listener (the port 993 role); `None` turns it off.
    pub imaps_listen: Option<SocketAddr>,
    /// Client networks allowed to log in without TLS. Other clients get
    /// LOGINDISABLED before STARTTLS and `NO [PRIVACYREQUIRED]` for a login.
    pub trusted_networks: Vec<Network>,
    pub tls: TlsConfig,
    /// Time in-flight work gets to finish after SIGTERM.
    pub shutdown_grace: Duration,
    pub imap: ImapConfig,
    pub lmtp: LmtpConfig,
    pub limits: Limits,
}

/// IMAP session behaviour.
#[derive(Clone, Debug)]
pub struct ImapConfig {
    /// How often a session in IDLE gets `* OK Still here`, so that NAT
    /// boxes and proxies keep the connection open.
    pub idle_keepalive: Duration,
    /// Inactivity after which an authenticated session is logged out.
    /// RFC 3501 section 5.4 requires at least 30 minutes.
    pub timeout_authenticated: Duration,
    /// Inactivity after which a session that has not logged in is closed.
    pub timeout_unauthenticated: Duration,
    /// Special-use mailboxes (name, attribute such as `\Sent`) created with
    /// every new account.
    pub default_mailboxes: Vec<(String, String)>,
}

/// LMTP behaviour.
#[derive(Clone, Debug)]
pub struct LmtpConfig {
    /// Domains accepted in recipient addresses; empty accepts any domain.
    /// A recipient without a domain is always accepted.
    pub local_domains: Vec<String>,
    /// Host name in the greeting and LHLO reply.
    pub hostname: String,
}

/// Bounds on everything a client can make the server hold.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Maximum length of a command line, excluding literals, in bytes.
    pub line_bytes_max: usize,
    /// Largest literal accepted before authentication, in bytes.
    pub literal_bytes_max_unauthenticated: usize,
    /// Largest message APPEND or LMTP accepts, in bytes.
    pub message_bytes_max: usize,
    /// Most bytes one command other than APPEND may hold buffered, lines
    /// and literals together.
    pub command_bytes_max: usize,
    /// Maximum length of a mailbox name, in bytes of its UTF-8 form.
    pub mailbox_name_bytes_max: usize,
    /// Maximum number of levels in a mailbox name.
    pub mailbox_depth_max: usize,
    /// Deepest MIME nesting parsed; deeper parts are treated as opaque.
    pub mime_depth_max: usize,
    /// Maximum number of MIME parts analysed in one message; later parts
    /// stay inside the body of the part before them.
    pub mime_parts_max: usize,
    /// Failed LOGIN or AUTHENTICATE attempts before the connection is closed.
    pub login_failures_max: u32,
    /// Maximum number of recipients in one LMTP transaction.
    pub lmtp_recipients_max: usize,
    /// Maximum number of mailboxes per account, counting the parents
    /// CREATE and RENAME add.
    pub mailboxes_per_account_max: u64,
}

impl Limits {
    /// Returns the bounds for MIME analysis.
    pub fn mime(&self) -> roost_mime::Limits {
        roost_mime::Limits { depth_max: self.mime_depth_max, parts_max: self.mime_parts_max }
    }
}

/// TLS settings shared by STARTTLS and the implicit-TLS listener.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    /// Certificate chain and key files; when both are unset, a self-signed
    /// certificate is generated in the data folder for development.
    pub settings: TlsSettings,
    /// Time a client gets to complete the TLS handshake.
    pub timeout_handshake: Duration,
    /// Most bytes of undecrypted TLS records buffered for one connection;
    /// at least one maximum-size record.
    pub incoming_bytes_max: usize,
}

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
