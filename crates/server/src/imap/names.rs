//! Mailbox names between the wire form and the store's canonical form.
//!
//! On the wire names are modified UTF-7 (IMAP4rev1) or UTF-8 (after
//! `ENABLE IMAP4rev2` or `ENABLE UTF8=ACCEPT`), with `/` between levels;
//! the store keeps UTF-8. `INBOX` is case-insensitive and always stored as
//! `INBOX`. Length and depth are bounded by configuration.
//!
//! Every name, reference and LIST pattern is put into Unicode Normalization
//! Form C (NFC) after decoding. RFC 9051 section 5.1 and RFC 6855 section
//! 3 require UTF-8 names to be Net-Unicode (RFC 5198, which requires NFC)
//! and let a server normalise instead of rejecting. Names decoded from
//! modified UTF-7 are normalised too, although RFC 3501 does not ask for
//! it, so that one mailbox cannot exist under two spellings such as
//! "e" + U+0301 and U+00E9, whichever protocol version created it.
//! NOTE: a mailbox stored under a non-NFC name before normalisation was
//! added can no longer be named by a client, because every name it sends
//! is normalised first. The store has no migration for such names.
//!
//! This module uses nothing of sessions or the store beyond the
//! separator. The commands decide which responses the client gets.

use roost_proto::mutf7;
use roost_proto::response::rev2::{MailboxNameEncoding, write_mailbox_name};
use roost_proto::types::mailbox::Mailbox;
use roost_store::HIERARCHY_SEPARATOR;
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

use crate::config::Limits;
use crate::imap::session::Enabled;

/// Returns the wire form of mailbox names for a session with `enabled`:
/// UTF-8 once IMAP4rev2 (RFC 9051 section 5.1) or UTF8=ACCEPT (RFC 6855
/// section 3) is enabled, modified UTF-7 before.
pub fn encoding(enabled: Enabled) -> MailboxNameEncoding {
    match enabled.imap4rev2 || enabled.utf8_accept {
        true => MailboxNameEncoding::Utf8,
        false => MailboxNameEncoding::ModifiedUtf7,
    }
}

/// The reason a client's mailbox name was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum NameError {
    /// Not valid modified UTF-7 or not valid UTF-8.
    Encoding,
    /// An empty level (`a//b`), or a separator at the start or end.
    EmptyLevel,
    TooLong { max: usize },
    TooDeep { max: usize },
}

impl NameError {
    /// Returns the text of a tagged `BAD` or `NO` for this error.
    pub fn message(&self) -> String {
        match self {
            NameError::Encoding => "Mailbox name is not valid modified UTF-7 or UTF-8".to_owned(),
            NameError::EmptyLevel => "Mailbox name has an empty hierarchy level".to_owned(),
            NameError::TooLong { max } => format!("Mailbox name is longer than {max} bytes"),
            NameError::TooDeep { max } => format!("Mailbox name has more than {max} levels"),
        }
    }
}

/// A client's mailbox name in the store's canonical form.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientName {
    pub canonical: String,
    /// The decoded name as the client sent it, when normalisation to NFC
    /// changed it. RFC 9051 sends it as the OLDNAME of a LIST response to
    /// CREATE, DELETE, RENAME and SELECT.
    pub supplied: Option<String>,
}

/// Converts a wire mailbox name in `encoding` to the store's canonical
/// name.
pub fn from_wire(mailbox: &Mailbox<'_>, limits: &Limits, encoding: MailboxNameEncoding) -> Result<String, NameError> {
    from_wire_with_supplied(mailbox, limits, encoding).map(|name| name.canonical)
}

/// Converts a wire mailbox name like [`from_wire`] and also returns the
/// name as sent when normalisation to NFC changed it.
pub fn from_wire_with_supplied(
    mailbox: &Mailbox<'_>,
    limits: &Limits,
    encoding: MailboxNameEncoding,
) -> Result<ClientName, NameError> {
    let bytes: &[u8] = match mailbox {
        Mailbox::Inbox => return Ok(ClientName { canonical: "INBOX".to_owned(), supplied: None }),
        Mailbox::Other(other) => other.as_ref(),
    };
    let text = std::str::from_utf8(bytes).map_err(|_| NameError::Encoding)?;
    let decoded = decode_unnormalized(text, encoding).ok_or(NameError::Encoding)?;
    let normalized = normalize(&decoded);
    let canonical = canonical(&normalized, limits)?;
    let supplied = (normalized != decoded).then_some(decoded);
    Ok(ClientName { canonical, supplied })
}

/// Decodes a name, reference or LIST pattern from its wire form and
/// normalises it to NFC. UTF-8 names are taken as they are, `&` included,
/// because a client that enabled UTF-8 names no longer uses modified UTF-7
/// (RFC 9051 section 5.1).
pub fn decode(bytes: &[u8], encoding: MailboxNameEncoding) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    decode_unnormalized(text, encoding).map(|decoded| normalize(&decoded))
}

fn decode_unnormalized(text: &str, encoding: MailboxNameEncoding) -> Option<String> {
    match encoding {
        MailboxNameEncoding::ModifiedUtf7 => mutf7::decode(text).ok(),
        MailboxNameEncoding::Utf8 => Some(text.to_owned()),
    }
}

/// Returns `text` in Unicode Normalization Form C. The quick check skips
/// the copy for names already in NFC, which nearly all are.
pub fn normalize(text: &str) -> String {
    match is_nfc_quick(text.chars()) {
        IsNormalized::Yes => text.to_owned(),
        IsNormalized::No | IsNormalized::Maybe => text.nfc().collect(),
    }
}

/// Appends a canonical name as an astring in `encoding`.
pub fn write(out: &mut Vec<u8>, name: &str, encoding: MailboxNameEncoding) {
    write_mailbox_name(out, name, encoding);
}

/// Checks a UTF-8 name and folds a leading `INBOX` level to upper case.
/// The caller passes a name already in NFC.
pub fn canonical(name: &str, limits: &Limits) -> Result<String, NameError> {
    if name.len() > limits.mailbox_name_bytes_max {
        return Err(NameError::TooLong { max: limits.mailbox_name_bytes_max });
    }
    let levels: Vec<&str> = name.split(HIERARCHY_SEPARATOR).collect();
    if levels.len() > limits.mailbox_depth_max {
        return Err(NameError::TooDeep { max: limits.mailbox_depth_max });
    }
    if levels.iter().any(|level| level.is_empty()) {
        return Err(NameError::EmptyLevel);
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(NameError::Encoding);
    }
    if levels[0].eq_ignore_ascii_case("INBOX") {
        let rest = &name[levels[0].len()..];
        return Ok(format!("INBOX{rest}"));
    }
    Ok(name.to_owned())
}

/// Converts a canonical name to its IMAP4rev1 wire form.
pub fn to_wire(name: &str) -> String {
    mutf7::encode(name)
}
