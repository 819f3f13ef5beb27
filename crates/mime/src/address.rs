//! Address lists (From, To, ...) parsed into the four ENVELOPE address
//! fields. Names stay as written (RFC 2047 words are not decoded) because
//! IMAP clients decode ENVELOPE strings themselves.

use crate::header::{Cursor, is_lwsp};

/// One ENVELOPE address: (name adl mailbox host). A group start has only
/// `mailbox` (the group name); a group end has all four absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Address {
    pub name: Option<Vec<u8>>,
    pub route: Option<Vec<u8>>,
    pub mailbox: Option<Vec<u8>>,
    pub host: Option<Vec<u8>>,
}

/// Placeholders that Dovecot puts into an address with a missing part, so
/// that clients still see four fields.
const MISSING_MAILBOX: &[u8] = b"MISSING_MAILBOX";
const MISSING_DOMAIN: &[u8] = b"MISSING_DOMAIN";

/// Parses an address list. Garbage between commas is skipped instead of
/// ending the list.
pub(crate) fn parse_list(value: &[u8]) -> Vec<Address> {
    let mut cursor = Cursor::new(value);
    let mut out = Vec::new();
    loop {
        cursor.skip_cfws();
        while cursor.peek() == Some(b',') {
            cursor.pos += 1;
            cursor.skip_cfws();
        }
        if cursor.at_end() {
            break;
        }
        let before = cursor.pos;
        parse_address(&mut cursor, &mut out, true);
        skip_to_separator(&mut cursor);
        if cursor.pos == before {
            cursor.pos += 1;
        }
    }
    out
}

fn skip_to_separator(cursor: &mut Cursor<'_>) {
    loop {
        cursor.skip_cfws();
        match cursor.peek() {
            None | Some(b',') => return,
            Some(b'"') => {
                let _ = cursor.quoted_string();
            }
            Some(_) => cursor.pos += 1,
        }
    }
}

/// Parses one mailbox or group at the cursor and appends its addresses.
fn parse_address(cursor: &mut Cursor<'_>, out: &mut Vec<Address>, allow_group: bool) {
    let start = cursor.pos;
    cursor.last_comment = None;
    let phrase = parse_phrase(cursor);
    cursor.skip_cfws();
    match cursor.peek() {
        Some(b':') if allow_group => {
            cursor.pos += 1;
            parse_group(cursor, phrase, out);
        }
        Some(b'<') => {
            cursor.pos += 1;
            let mut address = parse_angle_addr(cursor);
            address.name = non_empty(phrase);
            out.push(address);
        }
        _ => {
            cursor.pos = start;
            cursor.last_comment = None;
            let mut address = parse_addr_spec(cursor);
            cursor.skip_cfws();
            address.name = cursor.last_comment.take().and_then(non_empty);
            out.push(address);
        }
    }
}

fn parse_group(cursor: &mut Cursor<'_>, name: Vec<u8>, out: &mut Vec<Address>) {
    out.push(Address { name: None, route: None, mailbox: Some(name), host: None });
    loop {
        cursor.skip_cfws();
        while cursor.peek() == Some(b',') {
            cursor.pos += 1;
            cursor.skip_cfws();
        }
        match cursor.peek() {
            None => break,
            Some(b';') => {
                cursor.pos += 1;
                break;
            }
            Some(_) => {
                let before = cursor.pos;
                parse_address(cursor, out, false);
                cursor.skip_cfws();
                while cursor.peek().is_some_and(|b| b != b',' && b != b';') {
                    cursor.pos += 1;
                }
                if cursor.pos == before {
                    cursor.pos += 1;
                }
            }
        }
    }
    out.push(Address { name: None, route: None, mailbox: None, host: None });
}

/// Parses what follows `<`: an optional route, `local@domain` and `>`.
fn parse_angle_addr(cursor: &mut Cursor<'_>) -> Address {
    cursor.skip_cfws();
    let mut route = None;
    if cursor.peek() == Some(b'@') {
        let start = cursor.pos;
        while cursor.peek().is_some_and(|b| b != b':' && b != b'>') {
            cursor.pos += 1;
        }
        let text: Vec<u8> =
            cursor.data[start..cursor.pos].iter().copied().filter(|&b| !is_lwsp(b)).collect();
        route = non_empty(text);
        if cursor.peek() == Some(b':') {
            cursor.pos += 1;
        }
    }
    let mut address = parse_addr_spec(cursor);
    cursor.skip_cfws();
    while cursor.peek().is_some_and(|b| b != b'>' && b != b',') {
        cursor.pos += 1;
    }
    if cursor.peek() == Some(b'>') {
        cursor.pos += 1;
    }
    address.route = route;
    address
}

/// Parses `local-part@domain`, filling Dovecot's placeholders for a missing
/// part.
fn parse_addr_spec(cursor: &mut Cursor<'_>) -> Address {
    cursor.skip_cfws();
    let local = parse_local_part(cursor);
    cursor.skip_cfws();
    let mut domain = Vec::new();
    if cursor.peek() == Some(b'@') {
        cursor.pos += 1;
        cursor.skip_cfws();
        domain = parse_domain(cursor);
    }
    Address {
        name: None,
        route: None,
        mailbox: Some(if local.is_empty() { MISSING_MAILBOX.to_vec() } else { local }),
        host: Some(if domain.is_empty() { MISSING_DOMAIN.to_vec() } else { domain }),
    }
}

/// Reads a local part. Quoted strings lose their quotes and escapes, as
/// Dovecot 2.3 renders them in ENVELOPE.
fn parse_local_part(cursor: &mut Cursor<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        match cursor.peek() {
            Some(b'"') => {
                out.extend_from_slice(&cursor.quoted_string().unwrap_or_default());
            }
            Some(b) if is_atext(b) => {
                while cursor.peek().is_some_and(is_atext) {
                    out.push(cursor.data[cursor.pos]);
                    cursor.pos += 1;
                }
            }
            _ => break,
        }
        cursor.skip_cfws();
        if cursor.peek() == Some(b'.') {
            out.push(b'.');
            cursor.pos += 1;
            cursor.skip_cfws();
        } else if cursor.peek() != Some(b'"') {
            break;
        }
    }
    out
}

fn parse_domain(cursor: &mut Cursor<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    if cursor.peek() == Some(b'[') {
        while let Some(b) = cursor.peek() {
            cursor.pos += 1;
            if !is_lwsp(b) {
                out.push(b);
            }
            if b == b']' {
                break;
            }
        }
        return out;
    }
    loop {
        while cursor.peek().is_some_and(is_atext) {
            out.push(cursor.data[cursor.pos]);
            cursor.pos += 1;
        }
        cursor.skip_cfws();
        if cursor.peek() == Some(b'.') {
            out.push(b'.');
            cursor.pos += 1;
            cursor.skip_cfws();
        } else {
            break;
        }
    }
    out
}

/// Reads a display-name phrase: atoms (dots allowed, as in obsolete
/// syntax) and quoted strings, joined by one space.
fn parse_phrase(cursor: &mut Cursor<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        cursor.skip_cfws();
        let word = match cursor.peek() {
            Some(b'"') => cursor.quoted_string().unwrap_or_default(),
            Some(b) if is_atext(b) || b == b'.' => {
                let start = cursor.pos;
                while cursor.peek().is_some_and(|b| is_atext(b) || b == b'.') {
                    cursor.pos += 1;
                }
                cursor.data[start..cursor.pos].to_vec()
            }
            _ => break,
        };
        if !out.is_empty() {
            out.push(b' ');
        }
        out.extend_from_slice(&word);
    }
    out
}

/// RFC 5322 atext, plus 8-bit bytes that real mail puts in unquoted names.
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b) || b >= 0x80
}

fn non_empty(bytes: Vec<u8>) -> Option<Vec<u8>> {
    if bytes.is_empty() { None } else { Some(bytes) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(value: &str) -> Vec<(Option<String>, Option<String>, Option<String>, Option<String>)> {
        let text = |v: Option<Vec<u8>>| v.map(|v| String::from_utf8(v).unwrap());
        parse_list(value.as_bytes())
            .into_iter()
            .map(|a| (text(a.name), text(a.route), text(a.mailbox), text(a.host)))
            .collect()
    }

    #[test]
    fn name_addr_and_addr_spec() {
        let list = render("\"Joe Q\" <joe@example.com>, jane@example.org (Jane)");
        assert_eq!(list[0].0.as_deref(), Some("Joe Q"));
        assert_eq!(list[0].2.as_deref(), Some("joe"));
        assert_eq!(list[0].3.as_deref(), Some("example.com"));
        assert_eq!(list[1].0.as_deref(), Some("Jane"));
        assert_eq!(list[1].2.as_deref(), Some("jane"));
    }

    #[test]
    fn group_has_start_and_end() {
        let list = render("undisclosed-recipients:;");
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].2.as_deref(), Some("undisclosed-recipients"));
        assert_eq!(list[1], (None, None, None, None));
    }

    #[test]
    fn route_and_missing_domain() {
        let list = render("<@a.example,@b.example:user@c.example>, bare");
        assert_eq!(list[0].1.as_deref(), Some("@a.example,@b.example"));
        assert_eq!(list[1].3.as_deref(), Some("MISSING_DOMAIN"));
    }
}
