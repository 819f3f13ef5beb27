//! The capability list Roost advertises, per session state, as one table.
//!
//! Roost is an IMAP4rev2 server (RFC 9051) that also serves IMAP4rev1
//! clients, so it lists both, and lists each extension IMAP4rev2 folds in
//! under its own name too, for rev1 clients that look for it.
//!
//! This module does not see which mechanisms the authentication
//! backend supports beyond PLAIN, whether TLS is configured or the message
//! size limit: the server passes those facts in [`CapabilityOptions`].

use imap_types::{
    auth::AuthMechanism,
    core::Vec1,
    extensions::utf8::Utf8Kind,
    response::Capability,
};

use crate::state::SessionState;

/// Facts about the server's configuration that change the capability list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapabilityOptions {
    /// Whether LOGIN and AUTHENTICATE are refused on this connection, for
    /// example because it is not encrypted and plaintext login is disabled.
    pub login_disabled: bool,
    /// Whether STARTTLS can be used on this connection.
    pub starttls_offered: bool,
    /// The largest message APPEND accepts, in bytes, advertised as
    /// `APPENDLIMIT=<n>` (RFC 7889).
    pub append_limit_bytes: u64,
}

/// When a table entry is advertised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Advertised {
    /// In every state.
    Always,
    /// Before authentication only.
    BeforeAuthentication,
    /// Before authentication, when login is allowed: the SASL mechanisms,
    /// which RFC 3501 section 6.2.3 and RFC 4616 section 6 say are not
    /// offered where LOGINDISABLED is.
    LoginAllowed,
    /// Before authentication, when login is disabled.
    LoginDisabled,
    /// Before authentication, when STARTTLS is offered.
    StartTls,
}

/// Returns every capability Roost can advertise, in listing order, except
/// APPENDLIMIT, whose value comes from [`CapabilityOptions`].
fn table() -> [(Advertised, Capability<'static>); 24] {
    [
        (Advertised::Always, Capability::Imap4Rev1),
        (Advertised::Always, other("IMAP4rev2")),
        (Advertised::StartTls, Capability::StartTls),
        (Advertised::LoginDisabled, Capability::LoginDisabled),
        (Advertised::LoginAllowed, Capability::Auth(AuthMechanism::Plain)),
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
        // RFC 6154: CREATE takes a USE list of special-use attributes.
        (Advertised::Always, other("CREATE-SPECIAL-USE")),
        // RFC 4731: SEARCH RETURN (MIN MAX ALL COUNT) and ESEARCH results.
        (Advertised::Always, other("ESEARCH")),
        // RFC 5182: SEARCH RETURN (SAVE) and `$`.
        (Advertised::Always, other("SEARCHRES")),
        // RFC 5258: LIST selection and return options, several patterns.
        (Advertised::Always, Capability::ListExtended),
        // RFC 5819: LIST RETURN (STATUS (...)).
        (Advertised::Always, other("LIST-STATUS")),
        // RFC 3516: FETCH BINARY[], BINARY.SIZE and APPEND of literal8.
        (Advertised::Always, Capability::Binary),
        // RFC 8438: STATUS SIZE.
        (Advertised::Always, Capability::StatusSize),
        // RFC 6855: ENABLE UTF8=ACCEPT.
        (Advertised::Always, Capability::Utf8(Utf8Kind::Accept)),
    ]
}

fn other(name: &'static str) -> Capability<'static> {
    let atom = imap_types::core::Atom::try_from(name).expect("capability names in the table are valid atoms");
    Capability::from(atom)
}

/// Returns the capabilities to advertise in `state`, for the CAPABILITY
/// response and the CAPABILITY response code of the greeting and of a
/// successful login.
pub fn capabilities(state: SessionState, options: &CapabilityOptions) -> Vec1<Capability<'static>> {
    let before_authentication = state == SessionState::NotAuthenticated;
    let mut listed: Vec<Capability<'static>> = Vec::new();
    for (advertised, capability) in table() {
        let included = match advertised {
            Advertised::Always => true,
            Advertised::BeforeAuthentication => before_authentication,
            Advertised::LoginAllowed => before_authentication && !options.login_disabled,
            Advertised::LoginDisabled => before_authentication && options.login_disabled,
            Advertised::StartTls => before_authentication && options.starttls_offered,
        };
        if included {
            listed.push(capability);
        }
    }
    let append_limit = format!("APPENDLIMIT={}", options.append_limit_bytes);
    let atom = imap_types::core::Atom::try_from(append_limit).expect("APPENDLIMIT=<digits> is a valid atom");
    listed.push(Capability::from(atom));
    Vec1::try_from(listed).expect("IMAP4rev1 is always listed")
}

/// Returns the name of a capability as RFC 9051 and RFC 3501 spell it.
/// imap-types writes `IMAP4REV1`, which matches without regard to case but
/// reads differently from every other server's list.
pub fn capability_name(capability: &Capability<'_>) -> String {
    match capability {
        Capability::Imap4Rev1 => "IMAP4rev1".to_owned(),
        other => other.to_string(),
    }
}

/// Returns the capabilities to advertise in `state` as one space-separated
/// line, for `* CAPABILITY` and the `[CAPABILITY ...]` response code.
pub fn capability_line(state: SessionState, options: &CapabilityOptions) -> String {
    let listed = capabilities(state, options);
    let names: Vec<String> = listed.as_ref().iter().map(capability_name).collect();
    names.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(state: SessionState, login_disabled: bool, starttls_offered: bool) -> String {
        let options = CapabilityOptions {
            login_disabled,
            starttls_offered,
            append_limit_bytes: 1048576,
        };
        capability_line(state, &options)
    }

    #[test]
    fn capability_lists_by_state() {
        let common = "LITERAL+";
        let extensions = "ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN SPECIAL-USE \
            CREATE-SPECIAL-USE ESEARCH SEARCHRES LIST-EXTENDED LIST-STATUS BINARY STATUS=SIZE \
            UTF8=ACCEPT APPENDLIMIT=1048576";
        let cases = [
            (
                listed(SessionState::NotAuthenticated, false, false),
                format!("IMAP4rev1 IMAP4rev2 AUTH=PLAIN {common} SASL-IR {extensions}"),
            ),
            (
                listed(SessionState::NotAuthenticated, true, true),
                format!(
                    "IMAP4rev1 IMAP4rev2 STARTTLS LOGINDISABLED {common} SASL-IR {extensions}"
                ),
            ),
            (
                listed(SessionState::Authenticated, true, true),
                format!("IMAP4rev1 IMAP4rev2 {common} {extensions}"),
            ),
            (
                listed(SessionState::Selected { read_only: false }, false, false),
                format!("IMAP4rev1 IMAP4rev2 {common} {extensions}"),
            ),
        ];
        for (actual, expected) in cases {
            assert_eq!(actual, expected);
        }
    }

    #[test]
    fn capability_names_keep_their_case() {
        let options = CapabilityOptions {
            login_disabled: false,
            starttls_offered: false,
            append_limit_bytes: 10,
        };
        let line = capability_line(SessionState::Authenticated, &options);
        assert!(line.starts_with("IMAP4rev1 IMAP4rev2 "), "{line}");
        assert!(!line.contains("LITERAL-"), "{line}");
        assert!(line.ends_with(" APPENDLIMIT=10"), "{line}");
    }
}
