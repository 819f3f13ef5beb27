//! The capability list Roost advertises, per session state, as one table.
//!
//! This module does not see which mechanisms the authentication
//! backend supports beyond PLAIN, or whether TLS is configured: the server
//! passes those facts in [`CapabilityOptions`].

use imap_types::{auth::AuthMechanism, core::Vec1, response::Capability};

use crate::state::SessionState;

/// Facts about the server's configuration that change the capability list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapabilityOptions {
    /// Whether LOGIN and AUTHENTICATE are refused on this connection, for
    /// example because it is not encrypted and plaintext login is disabled.
    pub login_disabled: bool,
    /// Whether STARTTLS can be used on this connection.
    pub starttls_offered: bool,
}

/// When a table entry is advertised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Advertised {
    /// In every state.
    Always,
    /// Before authentication only: the ways to log in.
    BeforeAuthentication,
    /// Before authentication, when login is disabled.
    LoginDisabled,
    /// Before authentication, when STARTTLS is offered.
    StartTls,
}

/// Returns every capability Roost can advertise, in listing order.
fn table() -> [(Advertised, Capability<'static>); 15] {
    [
        (Advertised::Always, Capability::Imap4Rev1),
        (Advertised::StartTls, Capability::StartTls),
        (Advertised::LoginDisabled, Capability::LoginDisabled),
        (
            Advertised::BeforeAuthentication,
            Capability::Auth(AuthMechanism::Plain),
        ),
        (Advertised::Always, Capability::LiteralPlus),
        (Advertised::BeforeAuthentication, Capability::SaslIr),
        (Advertised::Always, Capability::Id),
        (Advertised::Always, Capability::Enable),
        (Advertised::Always, Capability::Idle),
        (Advertised::Always, Capability::Namespace),
        (Advertised::Always, Capability::Unselect),
        (Advertised::Always, Capability::UidPlus),
        (Advertised::Always, Capability::Move),
        // RFC 3348: LIST returns \HasChildren and \HasNoChildren.
        (Advertised::Always, other("CHILDREN")),
        // RFC 6154: LIST returns special-use attributes such as \Sent.
        (Advertised::Always, other("SPECIAL-USE")),
    ]
}

/// Returns the capabilities to advertise in `state`, for the CAPABILITY
/// response and the CAPABILITY response code of the greeting and of a
/// successful login.
fn other(name: &'static str) -> Capability<'static> {
    let atom = imap_types::core::Atom::try_from(name).expect("capability names in the table are valid atoms");
    Capability::from(atom)
}

pub fn capabilities(state: SessionState, options: &CapabilityOptions) -> Vec1<Capability<'static>> {
    let before_authentication = state == SessionState::NotAuthenticated;
    let mut listed: Vec<Capability<'static>> = Vec::new();
    for (advertised, capability) in table() {
        let included = match advertised {
            Advertised::Always => true,
            Advertised::BeforeAuthentication => before_authentication,
            Advertised::LoginDisabled => before_authentication && options.login_disabled,
            Advertised::StartTls => before_authentication && options.starttls_offered,
        };
        if included {
            listed.push(capability);
        }
    }
    Vec1::try_from(listed).expect("IMAP4rev1 is always listed")
}

#[cfg(test)]
mod tests {
    use imap_types::response::Data;

    use super::*;
    use crate::response::encode_data;

    fn listed(state: SessionState, login_disabled: bool, starttls_offered: bool) -> String {
        let options = CapabilityOptions {
            login_disabled,
            starttls_offered,
        };
        let data = Data::Capability(capabilities(state, &options));
        String::from_utf8(encode_data(&data)).unwrap()
    }

    #[test]
    fn capability_lists_by_state() {
        let common = "LITERAL+";
        let extensions = "ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN SPECIAL-USE";
        let cases = [
            (
                listed(SessionState::NotAuthenticated, false, false),
                format!("* CAPABILITY IMAP4REV1 AUTH=PLAIN {common} SASL-IR {extensions}\r\n"),
            ),
            (
                listed(SessionState::NotAuthenticated, true, true),
                format!(
                    "* CAPABILITY IMAP4REV1 STARTTLS LOGINDISABLED AUTH=PLAIN {common} SASL-IR {extensions}\r\n"
                ),
            ),
            (
                listed(SessionState::Authenticated, true, true),
                format!("* CAPABILITY IMAP4REV1 {common} {extensions}\r\n"),
            ),
            (
                listed(SessionState::Selected { read_only: false }, false, false),
                format!("* CAPABILITY IMAP4REV1 {common} {extensions}\r\n"),
            ),
        ];
        for (actual, expected) in cases {
            assert_eq!(actual, expected);
        }
    }
}
