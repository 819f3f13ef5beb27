//! PROXY protocol reader, versions 1 and 2, as HAProxy specifies them in
//! `doc/proxy-protocol.txt`: a load balancer sends one header before the
//! client's bytes, and the header carries the client's real address.
//!
//! [`parse`] is the I/O-free part: it takes the bytes received so far and
//! returns whether they hold a complete header, and how long it is.
//! [`read_header`] drives it over a [`TcpStream`] and consumes exactly the
//! header, so the bytes after it stay in the socket for the IMAP session or
//! the TLS handshake.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::Duration;

use tokio::net::TcpStream;

/// Default limit on the length of a header, TLVs included.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 4096;

/// Maximum length of a version 1 line, CRLF included. The specification
/// sets it by the longest `PROXY UNKNOWN` line with two IPv6 addresses.
pub const V1_MAX_BYTES: usize = 107;

/// Maximum length of a version 2 header: 16 fixed bytes and a 16-bit
/// length field.
const V2_MAX_BYTES: usize = 16 + u16::MAX as usize;

const V1_PREFIX: &[u8] = b"PROXY ";
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
const V2_FIXED_BYTES: usize = 16;

/// Length of the address block of each version 2 address family.
const V2_INET_ADDRESS_BYTES: usize = 12;
const V2_INET6_ADDRESS_BYTES: usize = 36;
const V2_UNIX_ADDRESS_BYTES: usize = 216;

/// Result of [`parse`] on the bytes received so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// The bytes are the start of a valid header, and more are needed.
    Incomplete,
    /// A whole header, `header_len` bytes long.
    Complete {
        header_len: usize,
        /// The client's address, or `None` when the connection's own peer
        /// address applies: v1 `UNKNOWN`, v2 `LOCAL`, and v2 `AF_UNSPEC`
        /// or `AF_UNIX` addresses.
        source: Option<SocketAddr>,
        /// The address the client connected to, when the header names one.
        destination: Option<SocketAddr>,
    },
}

/// Reason the bytes are not a valid PROXY header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("PROXY header is longer than the limit of {limit} bytes")]
    TooLong { limit: usize },
    #[error("{0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> ParseError {
    ParseError::Invalid(message.into())
}

/// Failure of [`read_header`].
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("timed out after {0:?} waiting for the PROXY header")]
    TimedOut(Duration),
    #[error("connection closed after {received} bytes, before the PROXY header was complete")]
    Closed { received: usize },
    #[error("invalid PROXY header: {0}")]
    Invalid(String),
    #[error("PROXY header is longer than the limit of {limit} bytes")]
    TooLong { limit: usize },
    #[error("failed to read the PROXY header: {0}")]
    Io(#[from] std::io::Error),
}

impl From<ParseError> for ProxyError {
    fn from(error: ParseError) -> Self {
        match error {
            ParseError::TooLong { limit } => ProxyError::TooLong { limit },
            ParseError::Invalid(message) => ProxyError::Invalid(message),
        }
    }
}

/// Parses a PROXY header of either version at the start of `input`, with
/// the default limit of [`DEFAULT_MAX_HEADER_BYTES`].
pub fn parse(input: &[u8]) -> Result<Parsed, ParseError> {
    parse_with_limit(input, DEFAULT_MAX_HEADER_BYTES)
}

/// Parses a PROXY header of either version at the start of `input`.
///
/// A header longer than `max_header_bytes` fails with
/// [`ParseError::TooLong`], and so does a version 1 line longer than
/// [`V1_MAX_BYTES`]. Bytes after the header are ignored. When the result is
/// [`Parsed::Incomplete`], every byte of `input` belongs to the header.
pub fn parse_with_limit(input: &[u8], max_header_bytes: usize) -> Result<Parsed, ParseError> {
    let parsed = if starts_like(input, V1_PREFIX) {
        parse_v1(input, max_header_bytes.min(V1_MAX_BYTES))?
    } else if starts_like(input, V2_SIGNATURE) {
        parse_v2(input, max_header_bytes.min(V2_MAX_BYTES))?
    } else {
        let start = String::from_utf8_lossy(&input[..input.len().min(16)]).into_owned();
        return Err(invalid(format!(
            "connection does not start with a PROXY header (expected \"PROXY \" or the version 2 signature, got {start:?})"
        )));
    };

    if parsed == Parsed::Incomplete && input.len() >= max_header_bytes {
        return Err(ParseError::TooLong { limit: max_header_bytes });
    }
    Ok(parsed)
}

/// Returns true if `input` and `prefix` agree on their common length.
fn starts_like(input: &[u8], prefix: &[u8]) -> bool {
    let common = input.len().min(prefix.len());
    input[..common] == prefix[..common]
}

fn parse_v1(input: &[u8], limit: usize) -> Result<Parsed, ParseError> {
    let Some(newline) = input.iter().position(|&byte| byte == b'\n') else {
        if input.len() >= limit {
            return Err(ParseError::TooLong { limit });
        }
        return Ok(Parsed::Incomplete);
    };
    let header_len = newline + 1;
    if header_len > limit {
        return Err(ParseError::TooLong { limit });
    }
    if newline == 0 || input[newline - 1] != b'\r' {
        return Err(invalid("PROXY v1 header must end with CRLF"));
    }

    let line_bytes = &input[V1_PREFIX.len()..newline - 1];
    if !line_bytes.is_ascii() {
        return Err(invalid("PROXY v1 header contains non-ASCII bytes"));
    }
    let line = std::str::from_utf8(line_bytes).map_err(|_| invalid("PROXY v1 header contains non-ASCII bytes"))?;
    let mut fields = line.split(' ');
    let protocol = fields.next().unwrap_or_default();
    match protocol {
        // The specification requires receivers to ignore anything after UNKNOWN.
        "UNKNOWN" => return Ok(Parsed::Complete { header_len, source: None, destination: None }),
        "TCP4" | "TCP6" => {}
        other => {
            return Err(invalid(format!(
                "PROXY v1 header has an unknown protocol {other:?} (expected TCP4, TCP6 or UNKNOWN)"
            )));
        }
    }

    let fields: Vec<&str> = fields.collect();
    let [source_ip, destination_ip, source_port, destination_port] = fields[..] else {
        return Err(invalid(format!(
            "PROXY v1 header has {} fields after {protocol}; expected 4 separated by single spaces",
            fields.len()
        )));
    };
    let source_ip = parse_v1_address(protocol, source_ip, "source")?;
    let destination_ip = parse_v1_address(protocol, destination_ip, "destination")?;
    let source_port = parse_v1_port(source_port, "source")?;
    let destination_port = parse_v1_port(destination_port, "destination")?;
    Ok(Parsed::Complete {
        header_len,
        source: Some(SocketAddr::new(source_ip, source_port)),
        destination: Some(SocketAddr::new(destination_ip, destination_port)),
    })
}

fn parse_v1_address(protocol: &str, text: &str, role: &str) -> Result<std::net::IpAddr, ParseError> {
    // Rust's Ipv4Addr parser rejects leading zeros, as the specification
    // requires.
    let parsed = match protocol {
        "TCP4" => text.parse::<Ipv4Addr>().map(Into::into).ok(),
        _ => text.parse::<Ipv6Addr>().map(Into::into).ok(),
    };
    parsed.ok_or_else(|| invalid(format!("PROXY v1 header has an invalid {role} address {text:?} for {protocol}")))
}

fn parse_v1_port(text: &str, role: &str) -> Result<u16, ParseError> {
    let digits_only = !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    let leading_zero = text.len() > 1 && text.starts_with('0');
    match text.parse::<u16>() {
        Ok(port) if digits_only && !leading_zero => Ok(port),
        _ => Err(invalid(format!(
            "PROXY v1 header has an invalid {role} port {text:?} (expected 0 to 65535 without leading zeros)"
        ))),
    }
}

fn parse_v2(input: &[u8], limit: usize) -> Result<Parsed, ParseError> {
    if let Some(&version_command) = input.get(12) {
        let version = version_command >> 4;
        let command = version_command & 0x0f;
        if version != 2 {
            return Err(invalid(format!("PROXY v2 header has version {version}; expected 2")));
        }
        if command > 1 {
            return Err(invalid(format!("PROXY v2 header has an unknown command {command} (expected LOCAL or PROXY)")));
        }
    }
    if let Some(&family_protocol) = input.get(13) {
        let family = family_protocol >> 4;
        let protocol = family_protocol & 0x0f;
        if family > 3 {
            return Err(invalid(format!("PROXY v2 header has an unknown address family {family}")));
        }
        if protocol > 2 {
            return Err(invalid(format!("PROXY v2 header has an unknown transport protocol {protocol}")));
        }
    }
    if input.len() < V2_FIXED_BYTES {
        return Ok(Parsed::Incomplete);
    }

    let address_len = usize::from(u16::from_be_bytes([input[14], input[15]]));
    let header_len = V2_FIXED_BYTES + address_len;
    if header_len > limit {
        return Err(ParseError::TooLong { limit });
    }
    if input.len() < header_len {
        return Ok(Parsed::Incomplete);
    }

    let block = &input[V2_FIXED_BYTES..header_len];
    let is_local = input[12] & 0x0f == 0;
    if is_local {
        // The specification requires receivers to ignore the address block of LOCAL.
        return Ok(Parsed::Complete { header_len, source: None, destination: None });
    }

    let family = input[13] >> 4;
    let protocol = input[13] & 0x0f;
    if protocol == 2 {
        return Err(invalid("PROXY v2 header is for a datagram (DGRAM) connection; only STREAM is supported"));
    }
    let (source, destination, addresses_len) = match family {
        1 if protocol == 1 => {
            let addresses = address_block(block, V2_INET_ADDRESS_BYTES, "AF_INET")?;
            let source_ip = Ipv4Addr::from(<[u8; 4]>::try_from(&addresses[0..4]).unwrap_or_default());
            let destination_ip = Ipv4Addr::from(<[u8; 4]>::try_from(&addresses[4..8]).unwrap_or_default());
            let source_port = u16::from_be_bytes([addresses[8], addresses[9]]);
            let destination_port = u16::from_be_bytes([addresses[10], addresses[11]]);
            let source = SocketAddr::V4(SocketAddrV4::new(source_ip, source_port));
            let destination = SocketAddr::V4(SocketAddrV4::new(destination_ip, destination_port));
            (Some(source), Some(destination), V2_INET_ADDRESS_BYTES)
        }
        2 if protocol == 1 => {
            let addresses = address_block(block, V2_INET6_ADDRESS_BYTES, "AF_INET6")?;
            let source_ip = Ipv6Addr::from(<[u8; 16]>::try_from(&addresses[0..16]).unwrap_or_default());
            let destination_ip = Ipv6Addr::from(<[u8; 16]>::try_from(&addresses[16..32]).unwrap_or_default());
            let source_port = u16::from_be_bytes([addresses[32], addresses[33]]);
            let destination_port = u16::from_be_bytes([addresses[34], addresses[35]]);
            let source = SocketAddr::V6(SocketAddrV6::new(source_ip, source_port, 0, 0));
            let destination = SocketAddr::V6(SocketAddrV6::new(destination_ip, destination_port, 0, 0));
            (Some(source), Some(destination), V2_INET6_ADDRESS_BYTES)
        }
        3 => {
            address_block(block, V2_UNIX_ADDRESS_BYTES, "AF_UNIX")?;
            (None, None, V2_UNIX_ADDRESS_BYTES)
        }
        // AF_UNSPEC, or an IP family with an UNSPEC transport protocol: the
        // specification lets the receiver use the real connection endpoints.
        _ => return Ok(Parsed::Complete { header_len, source: None, destination: None }),
    };
    check_tlvs(&block[addresses_len..])?;
    Ok(Parsed::Complete { header_len, source, destination })
}

fn address_block<'a>(block: &'a [u8], needed: usize, family: &str) -> Result<&'a [u8], ParseError> {
    block.get(..needed).ok_or_else(|| {
        invalid(format!(
            "PROXY v2 header has a {} byte address block, shorter than the {needed} bytes {family} needs",
            block.len()
        ))
    })
}

/// Checks that the bytes after the addresses are whole TLVs (1 byte type,
/// 2 bytes length, value). Their contents are not used.
fn check_tlvs(mut tlvs: &[u8]) -> Result<(), ParseError> {
    while !tlvs.is_empty() {
        if tlvs.len() < 3 {
            return Err(invalid(format!("PROXY v2 header ends with a truncated TLV of {} bytes", tlvs.len())));
        }
        let value_len = usize::from(u16::from_be_bytes([tlvs[1], tlvs[2]]));
        let Some(rest) = tlvs.get(3 + value_len..) else {
            return Err(invalid(format!(
                "PROXY v2 header has a TLV of type 0x{:02x} whose {value_len} byte value runs past the header",
                tlvs[0]
            )));
        };
        tlvs = rest;
    }
    Ok(())
}

/// Reads the PROXY header at the start of `stream` and returns the client's
/// address, or `None` when the connection's own peer address applies
/// (v1 `UNKNOWN`, v2 `LOCAL`, `AF_UNSPEC` or `AF_UNIX`).
///
/// Only the header's bytes are consumed, so the next reader of `stream`
/// gets the first byte after it. The whole read must finish within
/// `timeout`.
pub async fn read_header(
    stream: &TcpStream,
    max_header_bytes: usize,
    timeout: Duration,
) -> Result<Option<SocketAddr>, ProxyError> {
    match tokio::time::timeout(timeout, read_header_untimed(stream, max_header_bytes)).await {
        Ok(result) => result,
        Err(_) => Err(ProxyError::TimedOut(timeout)),
    }
}

async fn read_header_untimed(stream: &TcpStream, max_header_bytes: usize) -> Result<Option<SocketAddr>, ProxyError> {
    // The buffer needs room for the longest header allowed and no more.
    // Bytes peeked past the header's end stay in the socket.
    let buffer_len = max_header_bytes.min(V2_MAX_BYTES);
    let mut header = vec![0u8; buffer_len];
    let mut consumed = 0;

    loop {
        if consumed == buffer_len {
            return Err(ProxyError::TooLong { limit: max_header_bytes });
        }
        let available = stream.peek(&mut header[consumed..]).await?;
        if available == 0 {
            return Err(ProxyError::Closed { received: consumed });
        }

        let seen = consumed + available;
        match parse_with_limit(&header[..seen], max_header_bytes)? {
            Parsed::Complete { header_len, source, .. } => {
                discard_peeked(stream, &mut header[consumed..header_len]).await?;
                return Ok(source);
            }
            Parsed::Incomplete => {
                // Every byte seen belongs to the header (see
                // `parse_with_limit`), so consuming them is safe. It also
                // makes the next peek wait for new bytes instead of
                // returning the same ones at once.
                discard_peeked(stream, &mut header[consumed..seen]).await?;
                consumed = seen;
            }
        }
    }
}

/// Reads `buffer.len()` bytes that a peek has shown to be in the socket's
/// receive buffer, overwriting `buffer` with the same bytes.
async fn discard_peeked(stream: &TcpStream, buffer: &mut [u8]) -> Result<(), ProxyError> {
    let mut filled = 0;
    while filled < buffer.len() {
        stream.readable().await?;
        match stream.try_read(&mut buffer[filled..]) {
            Ok(0) => return Err(ProxyError::Closed { received: filled }),
            Ok(read) => filled += read,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(input: &[u8]) -> (usize, Option<SocketAddr>, Option<SocketAddr>) {
        match parse(input) {
            Ok(Parsed::Complete { header_len, source, destination }) => (header_len, source, destination),
            other => panic!("expected a complete header for {input:?}, got {other:?}"),
        }
    }

    fn invalid_message(input: &[u8]) -> String {
        match parse(input) {
            Err(ParseError::Invalid(message)) => message,
            other => panic!("expected an invalid header for {input:?}, got {other:?}"),
        }
    }

    fn v2_header(command: u8, family_protocol: u8, block: &[u8]) -> Vec<u8> {
        let mut header = V2_SIGNATURE.to_vec();
        header.push(0x20 | command);
        header.push(family_protocol);
        header.extend_from_slice(&u16::try_from(block.len()).unwrap().to_be_bytes());
        header.extend_from_slice(block);
        header
    }

    fn inet_block() -> Vec<u8> {
        let mut block = vec![192, 0, 2, 10, 198, 51, 100, 1];
        block.extend_from_slice(&50000u16.to_be_bytes());
        block.extend_from_slice(&993u16.to_be_bytes());
        block
    }

    #[test]
    fn v1_tcp4() {
        let input = b"PROXY TCP4 192.0.2.10 198.51.100.1 50000 143\r\na001 NOOP\r\n";
        let (header_len, source, destination) = complete(input);
        assert_eq!(header_len, input.len() - b"a001 NOOP\r\n".len());
        assert_eq!(source, Some("192.0.2.10:50000".parse().unwrap()));
        assert_eq!(destination, Some("198.51.100.1:143".parse().unwrap()));
    }

    #[test]
    fn v1_tcp6() {
        let input = b"PROXY TCP6 2001:db8::1 2001:db8::2 65535 0\r\n";
        let (header_len, source, destination) = complete(input);
        assert_eq!(header_len, input.len());
        assert_eq!(source, Some("[2001:db8::1]:65535".parse().unwrap()));
        assert_eq!(destination, Some("[2001:db8::2]:0".parse().unwrap()));
    }

    #[test]
    fn v1_longest_tcp6() {
        let ffff = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        let input = format!("PROXY TCP6 {ffff} {ffff} 65535 65535\r\n");
        assert_eq!(input.len(), 104);
        assert_eq!(complete(input.as_bytes()).0, 104);
    }

    #[test]
    fn v1_unknown() {
        assert_eq!(complete(b"PROXY UNKNOWN\r\n"), (15, None, None));
        let with_addresses = b"PROXY UNKNOWN 192.0.2.10 198.51.100.1 1 2\r\nrest";
        assert_eq!(complete(with_addresses), (with_addresses.len() - 4, None, None));
    }

    #[test]
    fn v1_incomplete_prefixes() {
        let input = b"PROXY TCP4 192.0.2.10 198.51.100.1 50000 143\r\n";
        for end in 0..input.len() {
            assert_eq!(parse(&input[..end]), Ok(Parsed::Incomplete), "prefix of {end} bytes");
        }
    }

    #[test]
    fn v1_invalid_fields() {
        let cases: &[(&[u8], &str)] = &[
            (b"PROXY TCP4 192.0.2 198.51.100.1 1 2\r\n", "invalid source address \"192.0.2\""),
            (b"PROXY TCP4 192.0.2.1 2001:db8::1 1 2\r\n", "invalid destination address"),
            (b"PROXY TCP6 192.0.2.1 2001:db8::1 1 2\r\n", "invalid source address"),
            (b"PROXY TCP4 192.0.2.01 192.0.2.2 1 2\r\n", "invalid source address"),
            (b"PROXY TCP4 192.0.2.1 192.0.2.2 65536 2\r\n", "invalid source port \"65536\""),
            (b"PROXY TCP4 192.0.2.1 192.0.2.2 080 2\r\n", "invalid source port \"080\""),
            (b"PROXY TCP4 192.0.2.1 192.0.2.2 1 +2\r\n", "invalid destination port \"+2\""),
            (b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2 3\r\n", "5 fields after TCP4"),
            (b"PROXY TCP4 192.0.2.1  192.0.2.2 1 2\r\n", "5 fields after TCP4"),
            (b"PROXY TCP4 192.0.2.1 192.0.2.2 1\r\n", "3 fields after TCP4"),
            (b"PROXY UDP4 192.0.2.1 192.0.2.2 1 2\r\n", "unknown protocol \"UDP4\""),
            (b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\n", "must end with CRLF"),
            (b"PROXY \xff\r\n", "non-ASCII"),
            (b"PROXY T\xc3\xa9\r\n", "non-ASCII"),
        ];
        for (input, expected) in cases {
            let message = invalid_message(input);
            assert!(message.contains(expected), "{input:?}: {message:?} lacks {expected:?}");
        }
    }

    #[test]
    fn v1_length_limit() {
        let at_limit = format!("PROXY UNKNOWN {}\r\n", "x".repeat(V1_MAX_BYTES - 16));
        assert_eq!(at_limit.len(), V1_MAX_BYTES);
        assert_eq!(complete(at_limit.as_bytes()).0, V1_MAX_BYTES);

        let past_limit = format!("PROXY UNKNOWN {}\r\n", "x".repeat(V1_MAX_BYTES - 15));
        assert_eq!(parse(past_limit.as_bytes()), Err(ParseError::TooLong { limit: V1_MAX_BYTES }));

        let no_newline = vec![b'x'; V1_MAX_BYTES - V1_PREFIX.len()];
        let unterminated = [V1_PREFIX, &no_newline].concat();
        assert_eq!(parse(&unterminated), Err(ParseError::TooLong { limit: V1_MAX_BYTES }));
        assert_eq!(parse(&unterminated[..V1_MAX_BYTES - 1]), Ok(Parsed::Incomplete));
    }

    #[test]
    fn v2_ipv4() {
        let mut input = v2_header(1, 0x11, &inet_block());
        input.extend_from_slice(b"a001 NOOP\r\n");
        let (header_len, source, destination) = complete(&input);
        assert_eq!(header_len, 28);
        assert_eq!(source, Some("192.0.2.10:50000".parse().unwrap()));
        assert_eq!(destination, Some("198.51.100.1:993".parse().unwrap()));
    }

    #[test]
    fn v2_ipv6() {
        let source_ip: Ipv6Addr = "2001:db8::10".parse().unwrap();
        let destination_ip: Ipv6Addr = "2001:db8::20".parse().unwrap();
        let mut block = source_ip.octets().to_vec();
        block.extend_from_slice(&destination_ip.octets());
        block.extend_from_slice(&1234u16.to_be_bytes());
        block.extend_from_slice(&143u16.to_be_bytes());
        let (header_len, source, destination) = complete(&v2_header(1, 0x21, &block));
        assert_eq!(header_len, 52);
        assert_eq!(source, Some("[2001:db8::10]:1234".parse().unwrap()));
        assert_eq!(destination, Some("[2001:db8::20]:143".parse().unwrap()));
    }

    #[test]
    fn v2_local_ignores_addresses() {
        assert_eq!(complete(&v2_header(0, 0x00, &[])), (16, None, None));
        assert_eq!(complete(&v2_header(0, 0x11, &inet_block())), (28, None, None));
        // LOCAL skips the block unread, even when it is too short for the family.
        assert_eq!(complete(&v2_header(0, 0x11, &[1, 2, 3])), (19, None, None));
    }

    #[test]
    fn v2_unspec_and_unix_have_no_source() {
        assert_eq!(complete(&v2_header(1, 0x00, &[])), (16, None, None));
        assert_eq!(complete(&v2_header(1, 0x10, &inet_block())), (28, None, None));
        assert_eq!(complete(&v2_header(1, 0x31, &[0; 216])), (232, None, None));
    }

    #[test]
    fn v2_tlvs_skipped() {
        let mut block = inet_block();
        block.extend_from_slice(&[0x04, 0x00, 0x03, b'a', b'b', b'c']); // PP2_TYPE_NOOP
        block.extend_from_slice(&[0x20, 0x00, 0x00]); // PP2_TYPE_SSL, empty
        let mut input = v2_header(1, 0x11, &block);
        input.extend_from_slice(b"next");
        let (header_len, source, _) = complete(&input);
        assert_eq!(header_len, 16 + block.len());
        assert_eq!(source, Some("192.0.2.10:50000".parse().unwrap()));
    }

    #[test]
    fn v2_broken_tlvs() {
        let mut truncated = inet_block();
        truncated.extend_from_slice(&[0x04, 0x00]);
        assert!(invalid_message(&v2_header(1, 0x11, &truncated)).contains("truncated TLV"));

        let mut overlong = inet_block();
        overlong.extend_from_slice(&[0x04, 0x00, 0x09, b'a']);
        assert!(invalid_message(&v2_header(1, 0x11, &overlong)).contains("runs past the header"));
    }

    #[test]
    fn v2_incomplete_prefixes() {
        let input = v2_header(1, 0x11, &inet_block());
        for end in 0..input.len() {
            assert_eq!(parse(&input[..end]), Ok(Parsed::Incomplete), "prefix of {end} bytes");
        }
    }

    #[test]
    fn v2_invalid_fields() {
        let mut bad_version = v2_header(1, 0x11, &inet_block());
        bad_version[12] = 0x11;
        assert!(invalid_message(&bad_version).contains("version 1"));
        assert!(invalid_message(&v2_header(2, 0x11, &inet_block())).contains("unknown command 2"));
        assert!(invalid_message(&v2_header(1, 0x41, &inet_block())).contains("unknown address family 4"));
        assert!(invalid_message(&v2_header(1, 0x13, &inet_block())).contains("unknown transport protocol 3"));
        assert!(invalid_message(&v2_header(1, 0x12, &inet_block())).contains("DGRAM"));
        assert!(invalid_message(&v2_header(1, 0x11, &[0; 11])).contains("11 byte address block"));
        assert!(invalid_message(&v2_header(1, 0x21, &[0; 12])).contains("AF_INET6"));
        assert!(invalid_message(&v2_header(1, 0x31, &[0; 100])).contains("AF_UNIX"));
        // Invalid fields are reported before the rest of the header arrives.
        assert!(invalid_message(&bad_version[..13]).contains("version 1"));
    }

    #[test]
    fn v2_length_limit() {
        let limit = 100;
        let at_limit = v2_header(0, 0x00, &vec![0; limit - 16]);
        let parsed = parse_with_limit(&at_limit, limit);
        assert_eq!(parsed, Ok(Parsed::Complete { header_len: limit, source: None, destination: None }));

        // The length field alone shows that the header is too long.
        let past_limit = v2_header(0, 0x00, &vec![0; limit - 15]);
        assert_eq!(parse_with_limit(&past_limit[..16], limit), Err(ParseError::TooLong { limit }));
        assert_eq!(parse_with_limit(&past_limit, limit), Err(ParseError::TooLong { limit }));

        // The largest header the 16-bit length field allows fits the
        // default limit only if it is raised.
        let largest = v2_header(0, 0x00, &vec![0; u16::MAX as usize]);
        assert!(matches!(parse(&largest), Err(ParseError::TooLong { limit: DEFAULT_MAX_HEADER_BYTES })));
        assert!(matches!(parse_with_limit(&largest, usize::MAX), Ok(Parsed::Complete { .. })));
    }

    #[test]
    fn limit_below_v1_maximum() {
        let input = b"PROXY TCP4 192.0.2.10 198.51.100.1 50000 143\r\n";
        assert!(matches!(parse_with_limit(input, input.len()), Ok(Parsed::Complete { .. })));
        let limit = input.len() - 1;
        assert_eq!(parse_with_limit(input, limit), Err(ParseError::TooLong { limit }));
        assert_eq!(parse_with_limit(&input[..limit], limit), Err(ParseError::TooLong { limit }));
    }

    #[test]
    fn garbage_rejected() {
        for input in [
            &b"a001 CAPABILITY\r\n"[..],
            b"GET / HTTP/1.1\r\n",
            b"\x16\x03\x01\x02\x00",
            b"\r\n\r\n\0\r\nQUIX\n",
            b"proxy ",
        ] {
            let message = invalid_message(input);
            assert!(message.contains("does not start with a PROXY header"), "{input:?}: {message}");
        }
    }

    #[test]
    fn empty_input_incomplete() {
        assert_eq!(parse(b""), Ok(Parsed::Incomplete));
    }
}
