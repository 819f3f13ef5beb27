//! Classification of the capability names a client sends in ENABLE
//! (RFC 5161), so the server matches on a closed set instead of on text.
//!
//! imap-types parses `UTF8=ACCEPT` into its own variant only with its
//! `ext_utf8` feature, and `IMAP4rev2` always as `CapabilityEnable::Other`,
//! so matching by name here keeps the server independent of both.
//!
//! This module has no notion of session state: the server records what was
//! enabled and sets the reader's options from it.

use imap_types::extensions::enable::CapabilityEnable;

/// An ENABLE argument, as far as Roost acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnableTarget {
    /// `IMAP4rev2` (RFC 9051): rev2 responses from now on, which include
    /// UTF-8 mailbox names.
    Imap4Rev2,
    /// `UTF8=ACCEPT` (RFC 6855): UTF-8 in quoted strings and mailbox names.
    Utf8Accept,
    /// Any other name. RFC 5161 has the server ignore it, so it is not
    /// listed in the ENABLED response.
    Unsupported,
}

/// Classifies one ENABLE argument, ignoring case.
pub fn classify_enable(capability: &CapabilityEnable<'_>) -> EnableTarget {
    let name = capability.to_string();
    if name.eq_ignore_ascii_case("IMAP4rev2") {
        EnableTarget::Imap4Rev2
    } else if name.eq_ignore_ascii_case("UTF8=ACCEPT") {
        EnableTarget::Utf8Accept
    } else {
        EnableTarget::Unsupported
    }
}

#[cfg(test)]
mod tests {
    use imap_codec::{CommandCodec, decode::Decoder};
    use imap_types::command::CommandBody;

    use super::*;

    fn classify_all(command: &[u8]) -> Vec<EnableTarget> {
        let (_, command) = CommandCodec::new().decode(command).unwrap();
        let CommandBody::Enable { capabilities } = command.body else {
            panic!("not ENABLE");
        };
        capabilities.as_ref().iter().map(classify_enable).collect()
    }

    #[test]
    fn enable_targets_by_name() {
        assert_eq!(
            classify_all(b"a1 ENABLE IMAP4rev2 utf8=accept UTF8=ONLY CONDSTORE\r\n"),
            [
                EnableTarget::Imap4Rev2,
                EnableTarget::Utf8Accept,
                EnableTarget::Unsupported,
                EnableTarget::Unsupported,
            ]
        );
        assert_eq!(
            classify_all(b"a2 ENABLE imap4REV2\r\n"),
            [EnableTarget::Imap4Rev2]
        );
    }
}
