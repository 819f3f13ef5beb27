//! Constructors for the response codes of RFC 5530, and the TOOBIG code
//! of RFC 7889, ready to put in a status response.
//!
//! imap-types has variants for OVERQUOTA and TOOBIG and no others of these,
//! so the rest are built as `Code::Other` from fixed atoms.

use imap_types::response::{Code, CodeOther};

fn other(atom: &'static str) -> Code<'static> {
    Code::Other(CodeOther::unvalidated(atom.as_bytes()))
}

/// Returns TOOBIG, for a literal or an APPEND over a size limit (RFC 7889).
pub fn too_big() -> Code<'static> {
    Code::TooBig
}

/// Returns OVERQUOTA, for an operation that would put the mailbox over its
/// quota.
pub fn over_quota() -> Code<'static> {
    Code::OverQuota
}

/// Returns ALREADYEXISTS, for a CREATE or RENAME target that exists already.
pub fn already_exists() -> Code<'static> {
    other("ALREADYEXISTS")
}

/// Returns NONEXISTENT, for a mailbox name that does not exist.
pub fn nonexistent() -> Code<'static> {
    other("NONEXISTENT")
}

/// Returns AUTHENTICATIONFAILED, for a wrong user name or password.
pub fn authentication_failed() -> Code<'static> {
    other("AUTHENTICATIONFAILED")
}

/// Returns AUTHORIZATIONFAILED, for a user who authenticated but may not
/// act as the requested authorization identity.
pub fn authorization_failed() -> Code<'static> {
    other("AUTHORIZATIONFAILED")
}

/// Returns PRIVACYREQUIRED, for an operation that needs an encrypted
/// connection.
pub fn privacy_required() -> Code<'static> {
    other("PRIVACYREQUIRED")
}

/// Returns CANNOT, for an operation that cannot be done, where retrying
/// will not help.
pub fn cannot() -> Code<'static> {
    other("CANNOT")
}

/// Returns LIMIT, for a server limit, such as a mailbox count, that was
/// reached.
pub fn limit() -> Code<'static> {
    other("LIMIT")
}

/// Returns SERVERBUG, for an unexpected server failure whose details are in
/// the log.
pub fn server_bug() -> Code<'static> {
    other("SERVERBUG")
}

/// Returns CLIENTBUG, for a request that was accepted but suggests a client
/// bug, such as expunging in a read-only mailbox.
pub fn client_bug() -> Code<'static> {
    other("CLIENTBUG")
}

/// Returns INUSE, for a mailbox or message that another session is using
/// and that cannot be changed now.
pub fn in_use() -> Code<'static> {
    other("INUSE")
}

/// Returns EXPUNGEISSUED, when another session expunged some of the
/// requested messages.
pub fn expunge_issued() -> Code<'static> {
    other("EXPUNGEISSUED")
}

/// Returns NOPERM, for a user who lacks the access right the operation
/// needs.
pub fn no_perm() -> Code<'static> {
    other("NOPERM")
}

/// Returns CONTACTADMIN, when the user should contact the administrator,
/// for example about a disabled account.
pub fn contact_admin() -> Code<'static> {
    other("CONTACTADMIN")
}

/// Returns UNAVAILABLE, for a subsystem that is down for now, so the
/// operation may work later.
pub fn unavailable() -> Code<'static> {
    other("UNAVAILABLE")
}

/// Returns EXPIRED, for credentials that have expired and must be renewed.
pub fn expired() -> Code<'static> {
    other("EXPIRED")
}

/// Returns CORRUPTION, for corrupt data found while processing the request.
pub fn corruption() -> Code<'static> {
    other("CORRUPTION")
}

#[cfg(test)]
mod tests {
    use imap_types::{core::Tag, response::StatusKind};

    use super::*;
    use crate::response::encode_status;

    #[test]
    fn codes_encode_exactly() {
        type Constructor = fn() -> Code<'static>;
        let cases: &[(Constructor, &str)] = &[
            (too_big, "TOOBIG"),
            (over_quota, "OVERQUOTA"),
            (already_exists, "ALREADYEXISTS"),
            (nonexistent, "NONEXISTENT"),
            (authentication_failed, "AUTHENTICATIONFAILED"),
            (authorization_failed, "AUTHORIZATIONFAILED"),
            (privacy_required, "PRIVACYREQUIRED"),
            (cannot, "CANNOT"),
            (limit, "LIMIT"),
            (server_bug, "SERVERBUG"),
            (client_bug, "CLIENTBUG"),
            (in_use, "INUSE"),
            (expunge_issued, "EXPUNGEISSUED"),
            (no_perm, "NOPERM"),
            (contact_admin, "CONTACTADMIN"),
            (unavailable, "UNAVAILABLE"),
            (expired, "EXPIRED"),
            (corruption, "CORRUPTION"),
        ];
        let tag = Tag::try_from("a1").unwrap();
        for (code, atom) in cases {
            let bytes = encode_status(Some(&tag), StatusKind::No, Some(code()), "Text");
            assert_eq!(
                String::from_utf8_lossy(&bytes),
                format!("a1 NO [{atom}] Text\r\n")
            );
        }
    }
}
