//! Constructors for the response codes of RFC 5530, and the TOOBIG code
//! of RFC 7889, ready to put in a status response.
//!
//! imap-types has variants for OVERQUOTA and TOOBIG and no others of these,
//! so the rest are built as `Code::Other` from fixed atoms.

use imap_types::response::{Code, CodeOther};

fn other(atom: &'static str) -> Code<'static> {
    Code::Other(CodeOther::unvalidated(atom.as_bytes()))
}

/// A message of the given size cannot be accepted: a literal or an APPEND
/// over a limit (RFC 7889).
pub fn too_big() -> Code<'static> {
    Code::TooBig
}

/// The operation would put the mailbox over its quota.
pub fn over_quota() -> Code<'static> {
    Code::OverQuota
}

/// The mailbox to create or rename to exists already.
pub fn already_exists() -> Code<'static> {
    other("ALREADYEXISTS")
}

/// The named mailbox does not exist.
pub fn nonexistent() -> Code<'static> {
    other("NONEXISTENT")
}

/// The user name or password is wrong.
pub fn authentication_failed() -> Code<'static> {
    other("AUTHENTICATIONFAILED")
}

/// Authentication succeeded, but the user may not act as the requested
/// authorization identity.
pub fn authorization_failed() -> Code<'static> {
    other("AUTHORIZATIONFAILED")
}

/// The operation needs an encrypted connection.
pub fn privacy_required() -> Code<'static> {
    other("PRIVACYREQUIRED")
}

/// The operation cannot be done, and retrying will not help.
pub fn cannot() -> Code<'static> {
    other("CANNOT")
}

/// A server limit, such as a mailbox count, was reached.
pub fn limit() -> Code<'static> {
    other("LIMIT")
}

/// The server failed in a way it did not expect; the log holds the details.
pub fn server_bug() -> Code<'static> {
    other("SERVERBUG")
}

/// The client sent something the server accepted but that suggests a
/// client bug, such as expunging in a read-only mailbox.
pub fn client_bug() -> Code<'static> {
    other("CLIENTBUG")
}

/// The mailbox or message is in use by another session and cannot be
/// changed now.
pub fn in_use() -> Code<'static> {
    other("INUSE")
}

/// Some of the requested messages were expunged by another session.
pub fn expunge_issued() -> Code<'static> {
    other("EXPUNGEISSUED")
}

/// The user lacks the access right the operation needs.
pub fn no_perm() -> Code<'static> {
    other("NOPERM")
}

/// The user should contact the administrator, for example about a
/// disabled account.
pub fn contact_admin() -> Code<'static> {
    other("CONTACTADMIN")
}

/// A subsystem is down for now; the operation may work later.
pub fn unavailable() -> Code<'static> {
    other("UNAVAILABLE")
}

/// The credentials have expired and must be renewed.
pub fn expired() -> Code<'static> {
    other("EXPIRED")
}

/// The server found corrupt data while processing the request.
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
