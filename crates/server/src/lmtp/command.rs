//! LMTP command lines parsed into values: the RFC 2033 verbs with the
//! RFC 5321 grammar for paths and parameters, plus the SIZE (RFC 1870) and
//! BODY (RFC 6152) parameters of MAIL.
//!
//! This module turns one command line, without its line ending, into a
//! [`Command`]. It does not depend on session state, sockets, users or
//! limits.

/// One parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Lhlo { host: String },
    /// HELO or EHLO. LMTP requires LHLO instead (RFC 2033 section 4.1).
    Helo,
    Mail { reverse_path: Option<Address>, params: MailParams },
    Rcpt { forward_path: Address },
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Help,
    /// EXPN: a known command that this server does not implement.
    Expn,
}

/// A mailbox address from a path: `local@domain`, or a bare local part
/// such as `<postmaster>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    /// The local part with quoting removed.
    pub local_part: String,
    /// The domain or address literal, in ASCII lowercase.
    pub domain: Option<String>,
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.domain {
            Some(domain) => write!(f, "{}@{}", self.local_part, domain),
            None => f.write_str(&self.local_part),
        }
    }
}

/// The ESMTP parameters of MAIL that the server advertises.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MailParams {
    /// The sender's estimate of the message size in bytes (RFC 1870).
    /// A number too large for `u64` is kept as `u64::MAX`.
    pub size: Option<u64>,
    pub body: Body,
}

/// The BODY parameter of MAIL (RFC 6152).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Body {
    #[default]
    SevenBit,
    EightBitMime,
}

/// A reason a command line could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// The verb is not an LMTP command.
    Unknown,
    /// The verb is known but its arguments are invalid. The text describes
    /// the problem.
    Syntax(&'static str),
    /// A MAIL or RCPT parameter that the server does not support.
    UnsupportedParameter(String),
}

/// Parses one command line, given without its CRLF.
pub fn parse_command(line: &[u8]) -> Result<Command, CommandError> {
    let (verb, argument) = match line.iter().position(|&b| b == b' ') {
        Some(space) => (&line[..space], &line[space + 1..]),
        None => (line, &line[line.len()..]),
    };
    let verb = verb.to_ascii_uppercase();

    match verb.as_slice() {
        b"LHLO" => parse_lhlo(argument),
        b"HELO" | b"EHLO" => Ok(Command::Helo),
        b"MAIL" => parse_mail(argument),
        b"RCPT" => parse_rcpt(argument),
        b"DATA" => without_argument(argument, Command::Data),
        b"RSET" => without_argument(argument, Command::Rset),
        b"QUIT" => without_argument(argument, Command::Quit),
        // RFC 5321 section 4.1.1.9 allows an argument to NOOP, which servers
        // should ignore.
        b"NOOP" => Ok(Command::Noop),
        b"HELP" => Ok(Command::Help),
        b"VRFY" if trim_spaces(argument).is_empty() => Err(CommandError::Syntax("VRFY requires an address")),
        b"VRFY" => Ok(Command::Vrfy),
        b"EXPN" => Ok(Command::Expn),
        _ => Err(CommandError::Unknown),
    }
}

fn without_argument(argument: &[u8], command: Command) -> Result<Command, CommandError> {
    if trim_spaces(argument).is_empty() {
        Ok(command)
    } else {
        Err(CommandError::Syntax("This command takes no argument"))
    }
}

fn parse_lhlo(argument: &[u8]) -> Result<Command, CommandError> {
    let host = trim_spaces(argument);
    let valid = !host.is_empty() && host.iter().all(|&b| b.is_ascii_graphic() || b >= 0x80);
    if !valid {
        return Err(CommandError::Syntax("LHLO requires a host name"));
    }
    let host = String::from_utf8(host.to_vec()).map_err(|_| CommandError::Syntax("Host name is not UTF-8"))?;
    Ok(Command::Lhlo { host })
}

fn parse_mail(argument: &[u8]) -> Result<Command, CommandError> {
    let rest = strip_prefix_ignore_case(argument, b"FROM:").ok_or(CommandError::Syntax("Expected MAIL FROM:<address>"))?;
    let (path, params) = split_path(rest)?;
    let reverse_path = if path.is_empty() { None } else { Some(parse_path(path)?) };

    let mut mail_params = MailParams::default();
    let mut seen_size = false;
    let mut seen_body = false;
    for param in params.split(|&b| b == b' ').filter(|p| !p.is_empty()) {
        let (keyword, value) = split_parameter(param);
        match keyword.to_ascii_uppercase().as_slice() {
            b"SIZE" if !seen_size => {
                seen_size = true;
                mail_params.size = Some(parse_size(value)?);
            }
            b"BODY" if !seen_body => {
                seen_body = true;
                mail_params.body = match value.map(|v| v.to_ascii_uppercase()).as_deref() {
                    Some(b"7BIT") => Body::SevenBit,
                    Some(b"8BITMIME") => Body::EightBitMime,
                    _ => return Err(CommandError::Syntax("BODY must be 7BIT or 8BITMIME")),
                };
            }
            b"SIZE" | b"BODY" => return Err(CommandError::Syntax("Parameter given twice")),
            _ => return Err(unsupported(keyword)),
        }
    }
    Ok(Command::Mail { reverse_path, params: mail_params })
}

fn parse_rcpt(argument: &[u8]) -> Result<Command, CommandError> {
    let rest = strip_prefix_ignore_case(argument, b"TO:").ok_or(CommandError::Syntax("Expected RCPT TO:<address>"))?;
    let (path, params) = split_path(rest)?;
    if path.is_empty() {
        return Err(CommandError::Syntax("Recipient address is empty"));
    }
    let forward_path = parse_path(path)?;

    // No RCPT parameter is advertised, so any given one is unsupported.
    if let Some(param) = params.split(|&b| b == b' ').find(|p| !p.is_empty()) {
        return Err(unsupported(split_parameter(param).0));
    }
    Ok(Command::Rcpt { forward_path })
}

fn unsupported(keyword: &[u8]) -> CommandError {
    CommandError::UnsupportedParameter(String::from_utf8_lossy(keyword).into_owned())
}

/// Splits `esmtp-keyword ["=" esmtp-value]`.
fn split_parameter(param: &[u8]) -> (&[u8], Option<&[u8]>) {
    match param.iter().position(|&b| b == b'=') {
        Some(equals) => (&param[..equals], Some(&param[equals + 1..])),
        None => (param, None),
    }
}

fn parse_size(value: Option<&[u8]>) -> Result<u64, CommandError> {
    let digits = value.unwrap_or_default();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(CommandError::Syntax("SIZE must be a number of bytes"));
    }
    // Every digit is ASCII, so the conversion fails only on overflow, and a
    // size past u64 is certainly past the limit.
    let text = std::str::from_utf8(digits).unwrap_or_default();
    Ok(text.parse().unwrap_or(u64::MAX))
}

/// Splits `<path> params` into the text between the angle brackets and the
/// rest. Spaces between the colon and `<` are accepted, as many clients send
/// them although RFC 5321 does not allow them.
fn split_path(rest: &[u8]) -> Result<(&[u8], &[u8]), CommandError> {
    let rest = trim_start_spaces(rest);
    if rest.first() != Some(&b'<') {
        return Err(CommandError::Syntax("Address must be enclosed in <>"));
    }

    // Find the closing '>' outside quoted strings, where '>' and escaped
    // quotes may appear.
    let mut in_quotes = false;
    let mut escaped = false;
    for (index, &byte) in rest.iter().enumerate().skip(1) {
        if escaped {
            escaped = false;
        } else if in_quotes && byte == b'\\' {
            escaped = true;
        } else if byte == b'"' {
            in_quotes = !in_quotes;
        } else if byte == b'>' && !in_quotes {
            let params = &rest[index + 1..];
            if !params.is_empty() && params[0] != b' ' {
                return Err(CommandError::Syntax("Expected a space after the address"));
            }
            return Ok((&rest[1..index], params));
        }
    }
    Err(CommandError::Syntax("Address must be enclosed in <>"))
}

/// Parses the inside of a non-empty path: an optional source route, then a
/// mailbox. RFC 5321 section 4.1.1.3 requires servers to accept source
/// routes and lets them ignore the routes, as this parser does.
fn parse_path(path: &[u8]) -> Result<Address, CommandError> {
    let mailbox = if path.first() == Some(&b'@') {
        let colon = path.iter().position(|&b| b == b':').ok_or(CommandError::Syntax("Invalid source route"))?;
        &path[colon + 1..]
    } else {
        path
    };

    let (local_part, rest) = parse_local_part(mailbox)?;
    let domain = match rest {
        [] => None,
        [b'@', domain @ ..] => Some(parse_domain(domain)?),
        _ => return Err(CommandError::Syntax("Invalid address")),
    };
    Ok(Address { local_part, domain })
}

/// Parses a dot-string or quoted-string and returns it unquoted with the
/// bytes that follow it.
fn parse_local_part(input: &[u8]) -> Result<(String, &[u8]), CommandError> {
    let (bytes, rest) = if input.first() == Some(&b'"') {
        let mut unquoted = Vec::new();
        let mut index = 1;
        loop {
            match input.get(index) {
                None => return Err(CommandError::Syntax("Unterminated quoted local part")),
                Some(b'"') => break,
                Some(b'\\') => {
                    let escaped = *input.get(index + 1).ok_or(CommandError::Syntax("Unterminated quoted local part"))?;
                    unquoted.push(escaped);
                    index += 2;
                }
                Some(&byte) if byte < 0x20 || byte == 0x7f => {
                    return Err(CommandError::Syntax("Control character in address"));
                }
                Some(&byte) => {
                    unquoted.push(byte);
                    index += 1;
                }
            }
        }
        (unquoted, &input[index + 1..])
    } else {
        let end = input.iter().position(|&b| b == b'@').unwrap_or(input.len());
        let dot_string = &input[..end];
        if !dot_string.iter().all(|&b| is_atext(b) || b == b'.') {
            return Err(CommandError::Syntax("Invalid character in address"));
        }
        (dot_string.to_vec(), &input[end..])
    };

    if bytes.is_empty() {
        return Err(CommandError::Syntax("Local part is empty"));
    }
    let local_part = String::from_utf8(bytes).map_err(|_| CommandError::Syntax("Address is not UTF-8"))?;
    Ok((local_part, rest))
}

/// Parses a domain name or an address literal such as `[192.0.2.1]`.
fn parse_domain(domain: &[u8]) -> Result<String, CommandError> {
    let valid = if domain.first() == Some(&b'[') {
        domain.len() > 2 && domain.last() == Some(&b']') && domain[1..domain.len() - 1].iter().all(|&b| b.is_ascii_graphic() && b != b'[' && b != b']' && b != b'\\')
    } else {
        // Bytes of 0x80 and above are internationalised names in UTF-8.
        !domain.is_empty() && domain.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b >= 0x80)
    };
    if !valid {
        return Err(CommandError::Syntax("Invalid domain"));
    }
    let domain = String::from_utf8(domain.to_vec()).map_err(|_| CommandError::Syntax("Domain is not UTF-8"))?;
    Ok(domain.to_ascii_lowercase())
}

/// Returns whether `byte` may appear in an RFC 5322 atom. Bytes of 0x80 and above
/// are accepted as UTF-8 (RFC 6531 local parts).
fn is_atext(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&byte) || byte >= 0x80
}

fn strip_prefix_ignore_case<'a>(input: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    if input.len() >= prefix.len() && input[..prefix.len()].eq_ignore_ascii_case(prefix) {
        Some(&input[prefix.len()..])
    } else {
        None
    }
}

fn trim_start_spaces(input: &[u8]) -> &[u8] {
    let start = input.iter().position(|&b| b != b' ').unwrap_or(input.len());
    &input[start..]
}

fn trim_spaces(input: &[u8]) -> &[u8] {
    let input = trim_start_spaces(input);
    let end = input.iter().rposition(|&b| b != b' ').map_or(0, |last| last + 1);
    &input[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(local_part: &str, domain: Option<&str>) -> Address {
        Address { local_part: local_part.to_string(), domain: domain.map(str::to_string) }
    }

    fn rcpt(local_part: &str, domain: Option<&str>) -> Result<Command, CommandError> {
        Ok(Command::Rcpt { forward_path: address(local_part, domain) })
    }

    #[test]
    fn verbs_parse_in_any_case() {
        let cases: &[(&str, Result<Command, CommandError>)] = &[
            ("LHLO mx.example.org", Ok(Command::Lhlo { host: "mx.example.org".into() })),
            ("lhlo [127.0.0.1]", Ok(Command::Lhlo { host: "[127.0.0.1]".into() })),
            ("EHLO mx", Ok(Command::Helo)),
            ("helo mx", Ok(Command::Helo)),
            ("DATA", Ok(Command::Data)),
            ("data ", Ok(Command::Data)),
            ("RSET", Ok(Command::Rset)),
            ("NOOP", Ok(Command::Noop)),
            ("NOOP anything at all", Ok(Command::Noop)),
            ("QUIT", Ok(Command::Quit)),
            ("VRFY alice", Ok(Command::Vrfy)),
            ("HELP", Ok(Command::Help)),
            ("EXPN list", Ok(Command::Expn)),
            ("BDAT 10 LAST", Err(CommandError::Unknown)),
            ("", Err(CommandError::Unknown)),
            ("\u{e9}", Err(CommandError::Unknown)),
            ("LHLO", Err(CommandError::Syntax("LHLO requires a host name"))),
            ("LHLO  ", Err(CommandError::Syntax("LHLO requires a host name"))),
            ("DATA now", Err(CommandError::Syntax("This command takes no argument"))),
            ("QUIT x", Err(CommandError::Syntax("This command takes no argument"))),
            ("VRFY", Err(CommandError::Syntax("VRFY requires an address"))),
        ];
        for (line, expected) in cases {
            assert_eq!(&parse_command(line.as_bytes()), expected, "line {line:?}");
        }
    }

    #[test]
    fn mail_paths_and_parameters() {
        let sender = Some(address("bob", Some("example.org")));
        let cases: &[(&str, Result<Command, CommandError>)] = &[
            ("MAIL FROM:<>", Ok(Command::Mail { reverse_path: None, params: MailParams::default() })),
            ("MAIL FROM:<bob@Example.ORG>", Ok(Command::Mail { reverse_path: sender.clone(), params: MailParams::default() })),
            ("mail from: <bob@example.org>", Ok(Command::Mail { reverse_path: sender.clone(), params: MailParams::default() })),
            (
                "MAIL FROM:<bob@example.org> SIZE=1000 BODY=8BITMIME",
                Ok(Command::Mail { reverse_path: sender.clone(), params: MailParams { size: Some(1000), body: Body::EightBitMime } }),
            ),
            (
                "MAIL FROM:<> body=7bit size=0",
                Ok(Command::Mail { reverse_path: None, params: MailParams { size: Some(0), body: Body::SevenBit } }),
            ),
            (
                "MAIL FROM:<> SIZE=99999999999999999999999",
                Ok(Command::Mail { reverse_path: None, params: MailParams { size: Some(u64::MAX), body: Body::SevenBit } }),
            ),
            ("MAIL FROM:<@relay.example:bob@example.org>", Ok(Command::Mail { reverse_path: sender, params: MailParams::default() })),
            ("MAIL TO:<bob@example.org>", Err(CommandError::Syntax("Expected MAIL FROM:<address>"))),
            ("MAIL", Err(CommandError::Syntax("Expected MAIL FROM:<address>"))),
            ("MAIL FROM:bob@example.org", Err(CommandError::Syntax("Address must be enclosed in <>"))),
            ("MAIL FROM:<bob@example.org", Err(CommandError::Syntax("Address must be enclosed in <>"))),
            ("MAIL FROM:<>SIZE=1", Err(CommandError::Syntax("Expected a space after the address"))),
            ("MAIL FROM:<> SIZE=", Err(CommandError::Syntax("SIZE must be a number of bytes"))),
            ("MAIL FROM:<> SIZE=-1", Err(CommandError::Syntax("SIZE must be a number of bytes"))),
            ("MAIL FROM:<> SIZE=1 SIZE=2", Err(CommandError::Syntax("Parameter given twice"))),
            ("MAIL FROM:<> BODY=BINARYMIME", Err(CommandError::Syntax("BODY must be 7BIT or 8BITMIME"))),
            ("MAIL FROM:<> SMTPUTF8", Err(CommandError::UnsupportedParameter("SMTPUTF8".into()))),
            ("MAIL FROM:<> AUTH=<>", Err(CommandError::UnsupportedParameter("AUTH".into()))),
        ];
        for (line, expected) in cases {
            assert_eq!(&parse_command(line.as_bytes()), expected, "line {line:?}");
        }
    }

    #[test]
    fn rcpt_addresses() {
        let cases: &[(&str, Result<Command, CommandError>)] = &[
            ("RCPT TO:<alice@example.org>", rcpt("alice", Some("example.org"))),
            ("rcpt to:<alice>", rcpt("alice", None)),
            ("RCPT TO: <Alice@EXAMPLE.org>", rcpt("Alice", Some("example.org"))),
            ("RCPT TO:<first.last+tag@example.org>", rcpt("first.last+tag", Some("example.org"))),
            ("RCPT TO:<\"john doe\"@example.org>", rcpt("john doe", Some("example.org"))),
            ("RCPT TO:<\"a>b\\\"c\"@example.org>", rcpt("a>b\"c", Some("example.org"))),
            ("RCPT TO:<alice@[192.0.2.1]>", rcpt("alice", Some("[192.0.2.1]"))),
            ("RCPT TO:<@a.example,@b.example:alice@example.org>", rcpt("alice", Some("example.org"))),
            ("RCPT TO:<j\u{f6}rg@example.org>", rcpt("j\u{f6}rg", Some("example.org"))),
            ("RCPT TO:<>", Err(CommandError::Syntax("Recipient address is empty"))),
            ("RCPT TO:<@example.org>", Err(CommandError::Syntax("Invalid source route"))),
            ("RCPT TO:<alice@>", Err(CommandError::Syntax("Invalid domain"))),
            ("RCPT TO:<alice@exa mple.org>", Err(CommandError::Syntax("Invalid domain"))),
            ("RCPT TO:<ali ce@example.org>", Err(CommandError::Syntax("Invalid character in address"))),
            ("RCPT TO:<ali(ce>", Err(CommandError::Syntax("Invalid character in address"))),
            ("RCPT TO:<\"alice@example.org>", Err(CommandError::Syntax("Address must be enclosed in <>"))),
            ("RCPT TO:<\"\"@example.org>", Err(CommandError::Syntax("Local part is empty"))),
            ("RCPT TO:<\"x\"y@example.org>", Err(CommandError::Syntax("Invalid address"))),
            ("RCPT TO:<alice@example.org> NOTIFY=NEVER", Err(CommandError::UnsupportedParameter("NOTIFY".into()))),
            ("RCPT FROM:<alice@example.org>", Err(CommandError::Syntax("Expected RCPT TO:<address>"))),
        ];
        for (line, expected) in cases {
            assert_eq!(&parse_command(line.as_bytes()), expected, "line {line:?}");
        }
    }

    #[test]
    fn invalid_utf8_is_a_syntax_error() {
        assert_eq!(parse_command(b"RCPT TO:<\xff@example.org>"), Err(CommandError::Syntax("Address is not UTF-8")));
        assert_eq!(parse_command(b"LHLO \xc3"), Err(CommandError::Syntax("Host name is not UTF-8")));
    }

    #[test]
    fn address_displays_with_domain() {
        assert_eq!(address("alice", Some("example.org")).to_string(), "alice@example.org");
        assert_eq!(address("alice", None).to_string(), "alice");
    }
}
