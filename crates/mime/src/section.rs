//! FETCH body sections (RFC 3501 section 6.4.5) and the decoded text that
//! SEARCH matches: header values with RFC 2047 words decoded, and the text
//! of every text/* part with transfer encoding and charset undone.

use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};

use mail_parser::{Message, MessageParser, PartType};

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

/// Returns the decoded text of every text/* part, nested messages
/// included, separated by newlines and cut at `limits.bytes_max`.
///
/// NOTE: the text comes from mail-parser's own parse of `raw`, not from
/// `derived`'s tree, so on broken boundaries the parts searched can differ
/// from the parts BODYSTRUCTURE lists. `derived` is taken so that the
/// tree can be used here without changing callers.
pub fn search_text(raw: &[u8], _derived: &Derived, limits: &TextLimits) -> String {
    let parsed = catch_unwind(|| MessageParser::new().parse(raw));
    let mut out = String::new();
    if let Ok(Some(message)) = parsed {
        collect_text(&message, &mut out, limits.bytes_max, 0);
    }
    out
}

/// Nesting of message/rfc822 parts followed for search text; deeper
/// messages are skipped so the recursion is bounded.
const SEARCH_NESTING_MAX: usize = 64;

fn collect_text(message: &Message<'_>, out: &mut String, bytes_max: usize, depth: usize) {
    for part in &message.parts {
        if out.len() >= bytes_max {
            return;
        }
        match &part.body {
            PartType::Text(text) | PartType::Html(text) => push_bounded(out, text, bytes_max),
            PartType::Message(inner) if depth < SEARCH_NESTING_MAX => {
                collect_text(inner, out, bytes_max, depth + 1)
            }
            _ => {}
        }
    }
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
