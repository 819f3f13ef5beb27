//! Session states of RFC 3501 section 3 and the one table of which commands
//! each state allows.
//!
//! ```text
//!              connection established
//!                        |
//!          +-------------+--------------+
//!          | greeting OK                | greeting PREAUTH
//!          v                            |
//!   +-------------------+               |
//!   | Not Authenticated |               |
//!   +-------------------+               |
//!          | LOGIN or AUTHENTICATE      |
//!          | succeeded                  |
//!          v                            v
//!   +-------------------+  SELECT or EXAMINE succeeded  +----------+
//!   |   Authenticated   | ----------------------------> | Selected |
//!   |                   | <---------------------------- |          |
//!   +-------------------+  CLOSE, UNSELECT, or a        +----------+
//!          |               failed SELECT or EXAMINE          |
//!          | LOGOUT, shutdown or connection closed           |
//!          v                                                 |
//!   +-------------------+                                    |
//!   |      Logout       | <----------------------------------+
//!   +-------------------+   LOGOUT, shutdown or connection closed
//! ```
//!
//! A SELECT or EXAMINE in the selected state moves to the newly selected
//! mailbox, or back to the authenticated state if it fails. The Not
//! Authenticated state can also go straight to Logout.
//!
//! This module only decides whether a command is allowed. It does not
//! change state, and it does not know whether a mailbox permits writing:
//! sending NO for STORE on a mailbox opened with EXAMINE is up to the
//! command's handler.

use imap_types::{command::CommandBody, response::StatusKind};

/// The state of one IMAP session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Before LOGIN or AUTHENTICATE succeeded.
    NotAuthenticated,
    /// Logged in, with no mailbox selected.
    Authenticated,
    /// A mailbox is selected.
    Selected {
        /// Whether the mailbox was opened with EXAMINE or is read-only.
        read_only: bool,
    },
    /// LOGOUT was received or the server is closing the connection.
    Logout,
}

/// Rejection of a command in the current state, sent as `tag BAD text`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// Status of the tagged response; always BAD for a state violation.
    pub kind: StatusKind,
    /// Response text.
    pub text: &'static str,
}

/// When a command may run, by the states that allow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Allowed {
    /// CAPABILITY, NOOP, LOGOUT and ID.
    AnyState,
    /// STARTTLS, AUTHENTICATE and LOGIN.
    NotAuthenticated,
    /// ENABLE: RFC 5161 allows it only in the authenticated state.
    AuthenticatedOnly,
    /// Mailbox-level commands, valid in the authenticated and selected states.
    Authenticated,
    /// Commands on the selected mailbox's messages.
    Selected,
    /// Extensions that imap-codec parses but Roost does not advertise.
    Unsupported,
}

/// Checks whether `command` may run in `state`, and returns the rejection
/// to send if not.
pub fn check_allowed(state: SessionState, command: &CommandBody<'_>) -> Result<(), Rejection> {
    let allowed = allowed_states(command);
    let text = match (allowed, state) {
        (Allowed::Unsupported, _) => "Command is not supported",
        (_, SessionState::Logout) => "Command is not valid after LOGOUT",
        (Allowed::AnyState, _) => return Ok(()),

        (Allowed::NotAuthenticated, SessionState::NotAuthenticated) => return Ok(()),
        (Allowed::NotAuthenticated, _) => "Command is not valid after authentication",

        (_, SessionState::NotAuthenticated) => {
            "Command is not valid before authentication: log in first"
        }

        (Allowed::AuthenticatedOnly, SessionState::Authenticated) => return Ok(()),
        (Allowed::AuthenticatedOnly, _) => "Command is not valid while a mailbox is selected",

        (Allowed::Authenticated, _) => return Ok(()),

        (Allowed::Selected, SessionState::Selected { .. }) => return Ok(()),
        (Allowed::Selected, _) => {
            "Command requires a selected mailbox: use SELECT or EXAMINE first"
        }
    };
    Err(Rejection {
        kind: StatusKind::Bad,
        text,
    })
}

fn allowed_states(command: &CommandBody<'_>) -> Allowed {
    match command {
        CommandBody::Capability
        | CommandBody::Noop
        | CommandBody::Logout
        | CommandBody::Id { .. } => Allowed::AnyState,

        CommandBody::StartTLS | CommandBody::Authenticate { .. } | CommandBody::Login { .. } => {
            Allowed::NotAuthenticated
        }

        CommandBody::Enable { .. } => Allowed::AuthenticatedOnly,

        CommandBody::Select { .. }
        | CommandBody::Examine { .. }
        | CommandBody::Create { .. }
        | CommandBody::Delete { .. }
        | CommandBody::Rename { .. }
        | CommandBody::Subscribe { .. }
        | CommandBody::Unsubscribe { .. }
        | CommandBody::List { .. }
        | CommandBody::Lsub { .. }
        | CommandBody::Status { .. }
        | CommandBody::Append { .. }
        | CommandBody::Namespace
        | CommandBody::Idle => Allowed::Authenticated,

        CommandBody::Check
        | CommandBody::Close
        | CommandBody::Unselect
        | CommandBody::Expunge
        | CommandBody::ExpungeUid { .. }
        | CommandBody::Search { .. }
        | CommandBody::Fetch { .. }
        | CommandBody::Store { .. }
        | CommandBody::Copy { .. }
        | CommandBody::Move { .. } => Allowed::Selected,

        CommandBody::Sort { .. }
        | CommandBody::Thread { .. }
        | CommandBody::Compress { .. }
        | CommandBody::GetQuota { .. }
        | CommandBody::GetQuotaRoot { .. }
        | CommandBody::SetQuota { .. } => Allowed::Unsupported,
    }
}

#[cfg(test)]
mod tests {
    use imap_codec::{CommandCodec, decode::Decoder};
    use imap_types::command::Command;

    use super::*;

    const NOT_AUTHENTICATED: SessionState = SessionState::NotAuthenticated;
    const AUTHENTICATED: SessionState = SessionState::Authenticated;
    const SELECTED: SessionState = SessionState::Selected { read_only: false };
    const EXAMINED: SessionState = SessionState::Selected { read_only: true };
    const LOGOUT: SessionState = SessionState::Logout;

    fn decode(line: &str) -> Command<'_> {
        let (remainder, command) = CommandCodec::new()
            .decode(line.as_bytes())
            .unwrap_or_else(|error| panic!("{line:?} does not decode: {error:?}"));
        assert!(remainder.is_empty());
        command
    }

    #[test]
    fn state_table() {
        // Each row: a command and whether it is allowed in the not
        // authenticated, authenticated, selected and examined states.
        let rows: &[(&str, [bool; 4])] = &[
            ("a CAPABILITY\r\n", [true, true, true, true]),
            ("a NOOP\r\n", [true, true, true, true]),
            ("a LOGOUT\r\n", [true, true, true, true]),
            ("a ID NIL\r\n", [true, true, true, true]),
            ("a STARTTLS\r\n", [true, false, false, false]),
            ("a LOGIN alice secret\r\n", [true, false, false, false]),
            ("a AUTHENTICATE PLAIN\r\n", [true, false, false, false]),
            ("a ENABLE UTF8=ACCEPT\r\n", [false, true, false, false]),
            ("a SELECT INBOX\r\n", [false, true, true, true]),
            ("a EXAMINE INBOX\r\n", [false, true, true, true]),
            ("a CREATE x\r\n", [false, true, true, true]),
            ("a DELETE x\r\n", [false, true, true, true]),
            ("a RENAME x y\r\n", [false, true, true, true]),
            ("a SUBSCRIBE x\r\n", [false, true, true, true]),
            ("a UNSUBSCRIBE x\r\n", [false, true, true, true]),
            ("a LIST \"\" *\r\n", [false, true, true, true]),
            ("a LSUB \"\" *\r\n", [false, true, true, true]),
            ("a STATUS INBOX (MESSAGES)\r\n", [false, true, true, true]),
            ("a APPEND INBOX {1+}\r\nx\r\n", [false, true, true, true]),
            ("a NAMESPACE\r\n", [false, true, true, true]),
            ("a IDLE\r\n", [false, true, true, true]),
            ("a CHECK\r\n", [false, false, true, true]),
            ("a CLOSE\r\n", [false, false, true, true]),
            ("a UNSELECT\r\n", [false, false, true, true]),
            ("a EXPUNGE\r\n", [false, false, true, true]),
            ("a UID EXPUNGE 1:3\r\n", [false, false, true, true]),
            ("a SEARCH ALL\r\n", [false, false, true, true]),
            ("a UID SEARCH ALL\r\n", [false, false, true, true]),
            ("a FETCH 1 FLAGS\r\n", [false, false, true, true]),
            ("a UID FETCH 1 FLAGS\r\n", [false, false, true, true]),
            ("a STORE 1 +FLAGS (\\Seen)\r\n", [false, false, true, true]),
            ("a COPY 1 x\r\n", [false, false, true, true]),
            ("a MOVE 1 x\r\n", [false, false, true, true]),
            ("a UID MOVE 1 x\r\n", [false, false, true, true]),
            ("a GETQUOTAROOT INBOX\r\n", [false, false, false, false]),
            ("a SORT (DATE) UTF-8 ALL\r\n", [false, false, false, false]),
        ];
        let states = [NOT_AUTHENTICATED, AUTHENTICATED, SELECTED, EXAMINED];
        for (line, expected) in rows {
            let command = decode(line);
            for (state, allowed) in states.iter().zip(expected) {
                let result = check_allowed(*state, &command.body);
                assert_eq!(
                    result.is_ok(),
                    *allowed,
                    "{line:?} in {state:?}: {result:?}"
                );
            }
            assert!(
                check_allowed(LOGOUT, &command.body).is_err(),
                "{line:?} after LOGOUT"
            );
        }
    }

    #[test]
    fn state_rejection_texts() {
        let cases: &[(SessionState, &str, &str)] = &[
            (
                NOT_AUTHENTICATED,
                "a SELECT INBOX\r\n",
                "Command is not valid before authentication: log in first",
            ),
            (
                AUTHENTICATED,
                "a LOGIN a b\r\n",
                "Command is not valid after authentication",
            ),
            (
                AUTHENTICATED,
                "a FETCH 1 FLAGS\r\n",
                "Command requires a selected mailbox: use SELECT or EXAMINE first",
            ),
            (
                SELECTED,
                "a ENABLE UTF8=ACCEPT\r\n",
                "Command is not valid while a mailbox is selected",
            ),
            (
                SELECTED,
                "a SORT (DATE) UTF-8 ALL\r\n",
                "Command is not supported",
            ),
            (LOGOUT, "a NOOP\r\n", "Command is not valid after LOGOUT"),
        ];
        for (state, line, text) in cases {
            let command = decode(line);
            let expected = Rejection {
                kind: StatusKind::Bad,
                text,
            };
            assert_eq!(
                check_allowed(*state, &command.body),
                Err(expected),
                "{line:?} in {state:?}"
            );
        }
    }
}
