//! IMAP rendering of ENVELOPE, BODY and BODYSTRUCTURE from the part tree
//! and the raw header blocks. The output follows RFC 3501 section 7.4.2 and
//! matches Dovecot 2.3 where the RFC leaves a choice (defaults, parameter
//! spelling, placeholders for missing address parts).

use crate::address::{Address, parse_list};
use crate::header::{self, Field, parse_content};
use crate::tree::{Kind, Part};

/// Appends an IMAP string: quoted when it can be, a literal when it contains
/// CR, LF, NUL or 8-bit bytes. Bytes that are not UTF-8 are replaced with
/// U+FFFD first, because the rendered forms are Rust strings.
pub(crate) fn write_string(out: &mut String, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let needs_literal = text.bytes().any(|b| b >= 0x80 || b == b'\r' || b == b'\n' || b == 0);
    if needs_literal {
        out.push('{');
        out.push_str(&text.len().to_string());
        out.push_str("}\r\n");
        out.push_str(&text);
        return;
    }
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

fn write_nstring(out: &mut String, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => write_string(out, bytes),
        None => out.push_str("NIL"),
    }
}

/// Renders the ENVELOPE of the message whose header block is `block`.
pub(crate) fn envelope(block: &[u8]) -> String {
    let fields = header::fields(block);
    let unfolded = |name: &str| header::first(&fields, name).map(header::unfold);
    let from = addresses(&fields, "from");
    let sender = addresses(&fields, "sender");
    let reply_to = addresses(&fields, "reply-to");

    let mut out = String::from("(");
    write_nstring(&mut out, unfolded("date").as_deref());
    out.push(' ');
    write_nstring(&mut out, unfolded("subject").as_deref());
    out.push(' ');
    write_addresses(&mut out, &from);
    out.push(' ');
    // RFC 3501 has the server fill Sender and Reply-To from From when they
    // are absent or empty.
    write_addresses(&mut out, if sender.is_empty() { &from } else { &sender });
    out.push(' ');
    write_addresses(&mut out, if reply_to.is_empty() { &from } else { &reply_to });
    for name in ["to", "cc", "bcc"] {
        out.push(' ');
        write_addresses(&mut out, &addresses(&fields, name));
    }
    out.push(' ');
    write_nstring(&mut out, unfolded("in-reply-to").as_deref());
    out.push(' ');
    write_nstring(&mut out, unfolded("message-id").as_deref());
    out.push(')');
    out
}

/// Parses every field called `name` into one list, because Dovecot joins
/// repeated address fields (two Cc: lines) into one ENVELOPE list.
fn addresses(fields: &[Field<'_>], name: &str) -> Vec<Address> {
    fields
        .iter()
        .filter(|field| field.name.eq_ignore_ascii_case(name.as_bytes()))
        .flat_map(|field| parse_list(field.value))
        .collect()
}

fn write_addresses(out: &mut String, list: &[Address]) {
    if list.is_empty() {
        out.push_str("NIL");
        return;
    }
    out.push('(');
    for address in list {
        out.push('(');
        write_nstring(out, address.name.as_deref());
        out.push(' ');
        write_nstring(out, address.route.as_deref());
        out.push(' ');
        write_nstring(out, address.mailbox.as_deref());
        out.push(' ');
        write_nstring(out, address.host.as_deref());
        out.push(')');
    }
    out.push(')');
}

/// Renders BODYSTRUCTURE (`extended` true) or BODY (`extended` false) of
/// `part`, whose offsets index `raw`.
pub(crate) fn body_structure(raw: &[u8], part: &Part, extended: bool) -> String {
    let mut out = String::new();
    write_part(&mut out, raw, part, extended);
    out
}

/// The Content-* fields of one part, parsed.
struct PartHeader {
    content_type: Option<header::ContentValue>,
    disposition: Option<header::ContentValue>,
    id: Option<Vec<u8>>,
    description: Option<Vec<u8>>,
    encoding: Option<Vec<u8>>,
    language: Option<Vec<u8>>,
    location: Option<Vec<u8>>,
    /// The Content-MD5 value, which RFC 3501 reports as body MD5.
    md5: Option<Vec<u8>>,
}

impl PartHeader {
    fn parse(block: &[u8]) -> PartHeader {
        let fields = header::fields(block);
        let unfolded = |name: &str| header::last(&fields, name).map(header::unfold);
        let encoding = header::last(&fields, "content-transfer-encoding").and_then(|value| {
            let mut cursor = header::Cursor::new(value);
            cursor.skip_cfws();
            let token = cursor.token();
            (!token.is_empty()).then(|| token.to_vec())
        });
        PartHeader {
            // The first Content-Type counts but the last of the other
            // fields, which is how Dovecot 2.3 reads repeated fields.
            content_type: header::first(&fields, "content-type").and_then(|v| parse_content(v, true)),
            disposition: header::last(&fields, "content-disposition")
                .and_then(|v| parse_content(v, false)),
            id: unfolded("content-id"),
            description: unfolded("content-description"),
            encoding,
            language: unfolded("content-language"),
            location: unfolded("content-location"),
            md5: unfolded("content-md5"),
        }
    }
}

fn write_part(out: &mut String, raw: &[u8], part: &Part, extended: bool) {
    let header = PartHeader::parse(part.header_bytes(raw));
    match &part.kind {
        Kind::Multipart(children) => {
            out.push('(');
            if children.is_empty() {
                // A multipart without any part still needs one body, so an
                // empty text part takes its place, as Dovecot renders it.
                out.push_str(if extended {
                    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)"
                } else {
                    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)"
                });
            }
            for child in children {
                write_part(out, raw, child, extended);
            }
            out.push(' ');
            let content_type = header.content_type.as_ref();
            let subtype = content_type.and_then(|ct| ct.subtype.as_deref()).unwrap_or(b"mixed");
            write_string(out, subtype);
            if extended {
                out.push(' ');
                write_params(out, content_type.map(|ct| &ct.params[..]).unwrap_or(&[]), None);
                write_extension_tail(out, &header);
            }
            out.push(')');
        }
        Kind::Leaf | Kind::Message(_) => write_single(out, raw, part, &header, extended),
    }
}

fn write_single(out: &mut String, raw: &[u8], part: &Part, header: &PartHeader, extended: bool) {
    let no_params: &[(Vec<u8>, Vec<u8>)] = &[];
    let params = header.content_type.as_ref().map_or(no_params, |ct| &ct.params[..]);
    let (media_type, subtype): (&[u8], &[u8]) = match (&part.kind, &header.content_type) {
        // Dovecot spells the type of a parsed message/rfc822 part in lower
        // case whatever the header contains.
        (Kind::Message(_), _) => (b"message", b"rfc822"),
        (_, Some(ct)) => (&ct.value, ct.subtype.as_deref().unwrap_or_default()),
        // A missing or syntactically invalid Content-Type means text/plain
        // in US-ASCII (RFC 2045 section 5.2). Dovecot 2.3 gives empty
        // strings for an invalid one; the differential tests list that.
        (_, None) => (b"text", b"plain"),
    };
    let is_text = media_type.eq_ignore_ascii_case(b"text");

    out.push('(');
    write_string(out, media_type);
    out.push(' ');
    write_string(out, subtype);
    out.push(' ');
    let default_charset: Option<&[u8]> = is_text.then_some(b"us-ascii");
    write_params(out, params, default_charset);
    out.push(' ');
    write_nstring(out, header.id.as_deref());
    out.push(' ');
    write_nstring(out, header.description.as_deref());
    out.push(' ');
    write_string(out, header.encoding.as_deref().unwrap_or(b"7bit"));
    out.push(' ');
    out.push_str(&part.body_size().to_string());

    if let Kind::Message(inner) = &part.kind {
        out.push(' ');
        out.push_str(&envelope(inner.header_bytes(raw)));
        out.push(' ');
        write_part(out, raw, inner, extended);
        out.push(' ');
        out.push_str(&part.lines.to_string());
    } else if is_text {
        out.push(' ');
        out.push_str(&part.lines.to_string());
    }

    if extended {
        // The MD5 is the Content-MD5 field as sent; nothing is computed.
        out.push(' ');
        write_nstring(out, header.md5.as_deref());
        write_extension_tail(out, header);
    }
    out.push(')');
}

/// Writes the parameter list; `default_charset` is added when the part is
/// text and names no charset.
fn write_params(out: &mut String, params: &[(Vec<u8>, Vec<u8>)], default_charset: Option<&[u8]>) {
    let has_charset = params.iter().any(|(key, _)| key.eq_ignore_ascii_case(b"charset"));
    let charset = default_charset.filter(|_| !has_charset);
    if params.is_empty() && charset.is_none() {
        out.push_str("NIL");
        return;
    }
    out.push('(');
    let mut first = true;
    for (key, value) in params {
        if !first {
            out.push(' ');
        }
        first = false;
        write_string(out, key);
        out.push(' ');
        write_string(out, value);
    }
    if let Some(charset) = charset {
        if !first {
            out.push(' ');
        }
        out.push_str("\"charset\" ");
        write_string(out, charset);
    }
    out.push(')');
}

/// Writes disposition, language and location, the extension fields shared
/// by single parts and multiparts.
fn write_extension_tail(out: &mut String, header: &PartHeader) {
    out.push(' ');
    match &header.disposition {
        Some(disposition) => {
            out.push('(');
            write_string(out, &disposition.value);
            out.push(' ');
            write_params(out, &disposition.params, None);
            out.push(')');
        }
        None => out.push_str("NIL"),
    }
    out.push(' ');
    write_language(out, header.language.as_deref());
    out.push(' ');
    write_nstring(out, header.location.as_deref());
}

fn write_language(out: &mut String, value: Option<&[u8]>) {
    let Some(value) = value else {
        out.push_str("NIL");
        return;
    };
    let mut cursor = header::Cursor::new(value);
    let mut tags = Vec::new();
    loop {
        cursor.skip_cfws();
        while cursor.peek() == Some(b',') {
            cursor.pos += 1;
            cursor.skip_cfws();
        }
        let token = cursor.token();
        if token.is_empty() {
            break;
        }
        tags.push(token.to_vec());
    }
    // Dovecot writes a list even for one language.
    match tags.len() {
        0 => out.push_str("NIL"),
        _ => {
            out.push('(');
            for (index, tag) in tags.iter().enumerate() {
                if index > 0 {
                    out.push(' ');
                }
                write_string(out, tag);
            }
            out.push(')');
        }
    }
}
