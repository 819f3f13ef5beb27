//! FETCH body sections (RFC 3501 section 6.4.5) and the decoded text that
//! SEARCH matches: header values with RFC 2047 words decoded, and the text
//! of every text/* part with transfer encoding and charset undone. Both
//! use the stored tree, so SEARCH matches the parts FETCH returns.

use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};

use mail_parser::MessageParser;

use crate::Derived;
use crate::header;
use crate::tree::{Kind, Part};

/// The text specifier after the part number in `BODY[...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    /// No specifier: the whole message, or the body of the named part.
    Full,
    Header,
    /// `HEADER.FIELDS (...)`: only the named fields, compared without case.
    HeaderFields(Vec<String>),
    /// `HEADER.FIELDS.NOT (...)`: all fields but the named ones.
    HeaderFieldsNot(Vec<String>),
    Text,
    /// The MIME header of a numbered part.
    Mime,
}

/// A body section: `BODY[1.2.HEADER]` is part `[1, 2]`, text `Header`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub part: Vec<u32>,
    pub text: SectionText,
}

/// Bounds on the text that [`search_text`] returns.
#[derive(Debug, Clone)]
pub struct TextLimits {
    /// Maximum length of the returned text in bytes; text past it is
    /// dropped at a character boundary.
    pub bytes_max: usize,
}

/// Returns the bytes of `section` in `raw`, which must be the message
/// `derived` was made from. A part that does not exist, or a text
/// specifier that does not apply to it, gives an empty result, as RFC 3501
/// requires of a server.
pub fn section<'a>(raw: &'a [u8], derived: &Derived, section: &Section) -> Cow<'a, [u8]> {
    let root = &derived.root;
    let Some(part) = root.find(&section.part) else {
        return Cow::Borrowed(&[]);
    };
    let is_top = section.part.is_empty();
    if section.text == SectionText::Full {
        return Cow::Borrowed(if is_top { raw } else { part.body_bytes(raw) });
    }
    if section.text == SectionText::Mime {
        return Cow::Borrowed(if is_top { &[] } else { part.header_bytes(raw) });
    }
    // HEADER, HEADER.FIELDS and TEXT name the message itself at the top,
    // and the contained message of a message/rfc822 part below it.
    let message = match (&part.kind, is_top) {
        (_, true) => part,
        (Kind::Message(inner), false) => &**inner,
        _ => return Cow::Borrowed(&[]),
    };
    match &section.text {
        SectionText::Header => Cow::Borrowed(message.header_bytes(raw)),
        SectionText::Text => Cow::Borrowed(message.body_bytes(raw)),
        SectionText::HeaderFields(names) => Cow::Owned(filter_fields(message.header_bytes(raw), names, true)),
        SectionText::HeaderFieldsNot(names) => Cow::Owned(filter_fields(message.header_bytes(raw), names, false)),
        SectionText::Full | SectionText::Mime => unreachable!("handled above"),
    }
}

/// Copies the fields whose name is (`keep` true) or is not (`keep` false)
/// in `names`, in message order, followed by the empty line that ends a
/// header.
fn filter_fields(block: &[u8], names: &[String], keep: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for field in header::fields(block) {
        let listed = names.iter().any(|name| field.name.eq_ignore_ascii_case(name.as_bytes()));
        if listed == keep {
            let start = field.name.as_ptr() as usize - block.as_ptr() as usize;
            let end = field.value.as_ptr() as usize - block.as_ptr() as usize + field.value.len();
            out.extend_from_slice(&block[start..end]);
            if !out.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Returns every top-level header field called `name`, unfolded and with
/// RFC 2047 encoded words decoded, in message order.
pub fn header_values(raw: &[u8], derived: &Derived, name: &str) -> Vec<String> {
    let block = derived.root.header_bytes(raw);
    header::fields(block)
        .iter()
        .filter(|field| field.name.eq_ignore_ascii_case(name.as_bytes()))
        .map(|field| decode_unstructured(field.value))
        .collect()
}

/// Decodes RFC 2047 words in a raw value by handing it to mail-parser as
/// the value of an unstructured field.
fn decode_unstructured(value: &[u8]) -> String {
    let mut synthetic = b"Subject:".to_vec();
    synthetic.extend_from_slice(value);
    synthetic.extend_from_slice(b"\r\n\r\n");
    let parsed = catch_unwind(AssertUnwindSafe(|| {
        MessageParser::new().parse_headers(&synthetic).and_then(|m| m.subject().map(str::to_owned))
    }));
    match parsed {
        Ok(Some(text)) => text,
        _ => String::from_utf8_lossy(&header::unfold(value)).into_owned(),
    }
}

/// Returns the Date: header as Unix seconds.
pub(crate) fn date_header(raw: &[u8], root: &Part) -> Option<i64> {
    let fields = header::fields(root.header_bytes(raw));
    let value = header::first(&fields, "date")?;
    let mut synthetic = b"Date:".to_vec();
    synthetic.extend_from_slice(value);
    synthetic.extend_from_slice(b"\r\n\r\n");
    let parsed = catch_unwind(AssertUnwindSafe(|| {
        MessageParser::new().parse_headers(&synthetic).and_then(|m| m.date().cloned())
    }));
    let date = parsed.ok().flatten()?;
    date.is_valid().then(|| date.to_timestamp())
}

/// Returns the decoded text of every text/* part in `derived`'s tree,
/// nested messages included, separated by newlines and cut at
/// `limits.bytes_max` on a character boundary. Transfer encoding and
/// charset are undone; an unknown charset is read as UTF-8 with U+FFFD for
/// invalid bytes.
pub fn search_text(raw: &[u8], derived: &Derived, limits: &TextLimits) -> String {
    let mut out = String::new();
    collect_text(raw, &derived.root, &mut out, limits.bytes_max);
    out
}

fn collect_text(raw: &[u8], part: &Part, out: &mut String, bytes_max: usize) {
    if out.len() >= bytes_max {
        return;
    }
    match &part.kind {
        Kind::Multipart(children) => {
            for child in children {
                collect_text(raw, child, out, bytes_max);
            }
        }
        Kind::Message(inner) => collect_text(raw, inner, out, bytes_max),
        Kind::Leaf => {
            if let Some(text) = leaf_text(raw, part) {
                push_bounded(out, &text, bytes_max);
            }
        }
    }
}

/// Decodes a single part's body when it is text: a text/* type, or no
/// Content-Type at all.
fn leaf_text(raw: &[u8], part: &Part) -> Option<String> {
    let fields = header::fields(part.header_bytes(raw));
    let content_type = match header::first(&fields, "content-type") {
        Some(value) => Some(header::parse_content(value, true)?),
        None => None,
    };
    if content_type.as_ref().is_some_and(|ct| !ct.value.eq_ignore_ascii_case(b"text")) {
        return None;
    }
    let encoding = header::last(&fields, "content-transfer-encoding").map(header::unfold).unwrap_or_default();
    let body = part.body_bytes(raw);
    let decoded: Cow<'_, [u8]> = if encoding.eq_ignore_ascii_case(b"base64") {
        Cow::Owned(decode_base64(body))
    } else if encoding.eq_ignore_ascii_case(b"quoted-printable") {
        Cow::Owned(decode_quoted_printable(body))
    } else {
        Cow::Borrowed(body)
    };
    let charset = content_type
        .as_ref()
        .and_then(|ct| ct.params.iter().find(|(key, _)| key.eq_ignore_ascii_case(b"charset")))
        .map(|(_, value)| String::from_utf8_lossy(value).into_owned());
    let text = charset.and_then(|charset| decode_charset(&decoded, &charset));
    Some(text.unwrap_or_else(|| String::from_utf8_lossy(&decoded).into_owned()))
}

/// Decodes base64, skipping line ends and any other byte outside the
/// alphabet, and stopping at the first padding.
pub(crate) fn decode_base64(body: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let mut clean: Vec<u8> = body
        .iter()
        .copied()
        .take_while(|&b| b != b'=')
        .filter(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
        .collect();
    // A trailing group of one character cannot be decoded, so it is dropped.
    if clean.len() % 4 == 1 {
        clean.pop();
    }
    base64::engine::general_purpose::STANDARD_NO_PAD.decode(&clean).unwrap_or_default()
}

/// Decodes quoted-printable (RFC 2045 section 6.7). A malformed `=`
/// sequence is kept as it is.
pub(crate) fn decode_quoted_printable(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut index = 0;
    while index < body.len() {
        let b = body[index];
        if b != b'=' {
            out.push(b);
            index += 1;
            continue;
        }
        let rest = &body[index + 1..];
        if rest.starts_with(b"\r\n") {
            index += 3;
        } else if rest.starts_with(b"\n") {
            index += 2;
        } else if let (Some(high), Some(low)) = (rest.first().and_then(hex_value), rest.get(1).and_then(hex_value)) {
            out.push(high << 4 | low);
            index += 3;
        } else {
            out.push(b'=');
            index += 1;
        }
    }
    out
}

fn hex_value(b: &u8) -> Option<u8> {
    (*b as char).to_digit(16).map(|digit| digit as u8)
}

fn push_bounded(out: &mut String, text: &str, bytes_max: usize) {
    if !out.is_empty() && out.len() < bytes_max {
        out.push('\n');
    }
    let room = bytes_max.saturating_sub(out.len());
    let mut end = text.len().min(room);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    out.push_str(&text[..end]);
}

/// Decodes `bytes` from `charset` for SEARCH CHARSET. Returns `None` for a
/// charset that encoding_rs does not know; malformed input is decoded with
/// U+FFFD in place of bad sequences.
pub fn decode_charset(bytes: &[u8], charset: &str) -> Option<String> {
    let label = charset.trim();
    if label.eq_ignore_ascii_case("us-ascii") || label.eq_ignore_ascii_case("ascii") {
        return Some(String::from_utf8_lossy(bytes).into_owned());
    }
    let encoding = encoding_rs::Encoding::for_label(label.as_bytes())?;
    let (text, _) = encoding.decode_without_bom_handling(bytes);
    Some(text.into_owned())
}
