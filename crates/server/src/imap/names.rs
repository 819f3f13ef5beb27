//! Mailbox names between the wire form and the store's canonical form.
//!
//! On the wire (IMAP4rev1) names are modified UTF-7 with `/` between
//! levels; the store keeps UTF-8. `INBOX` is case-insensitive and always
//! stored as `INBOX`. Length and depth are bounded by configuration.

use roost_proto::mutf7;
use roost_proto::types::mailbox::Mailbox;
use roost_store::HIERARCHY_SEPARATOR;

use crate::config::Limits;

/// Why a client's mailbox name was not accepted.
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
    /// The text of a tagged `BAD` or `NO` for this error.
    pub fn message(&self) -> String {
        match self {
            NameError::Encoding => "Mailbox name is not valid modified UTF-7".to_owned(),
            NameError::EmptyLevel => "Mailbox name has an empty hierarchy level".to_owned(),
            NameError::TooLong { max } => format!("Mailbox name is longer than {max} bytes"),
            NameError::TooDeep { max } => format!("Mailbox name has more than {max} levels"),
        }
    }
}

/// Converts a wire mailbox name to the store's canonical name.
pub fn from_wire(mailbox: &Mailbox<'_>, limits: &Limits) -> Result<String, NameError> {
    let bytes: &[u8] = match mailbox {
        Mailbox::Inbox => return Ok("INBOX".to_owned()),
        Mailbox::Other(other) => other.as_ref(),
    };
    let text = std::str::from_utf8(bytes).map_err(|_| NameError::Encoding)?;
    let name = mutf7::decode(text).map_err(|_| NameError::Encoding)?;
    canonical(&name, limits)
}

/// Checks a UTF-8 name and folds a leading `INBOX` level to upper case.
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

/// Converts a canonical name to its wire form.
pub fn to_wire(name: &str) -> String {
    mutf7::encode(name)
}
