//! Messages between the supervisor and its worker processes.
//!
//! Each message is one datagram on a Unix seqpacket socket: a word naming
//! it, then tab-separated fields. A new connection carries its socket as
//! an `SCM_RIGHTS` attachment. Text keeps the exchange readable in a
//! packet trace; user names never contain tabs or line breaks (the
//! passwd-file forbids control characters), and client names from `ID`
//! have them replaced. A password may contain any character, so it is the
//! last field of its message and runs to the end of the datagram.

use std::net::SocketAddr;
use std::time::Duration;

use roost_auth::Secret;
use roost_governor::{LoginDecision, Reason, Refusal, Ticket};
use zeroize::Zeroize;

use crate::imap::session::Listener;

/// Maximum size of a message accepted, in bytes.
pub const MESSAGE_BYTES_MAX: usize = 4096;

/// From the supervisor to a worker.
#[derive(Clone, Debug, PartialEq)]
pub enum ToWorker {
    /// A connection the governor admitted; its socket is attached.
    Connection { ticket: Ticket, peer: SocketAddr, listener: Listener, delay: Duration },
    /// Close the session with `* BYE [UNAVAILABLE]` once it is between commands.
    Evict { ticket: Ticket, reason: Reason, retry_after: Duration },
    /// The response to a login request.
    Login { request: u64, decision: LoginDecision },
    /// The response to a penalty request: how long to wait.
    Delay { request: u64, delay: Duration },
    /// The response to a password check: `None` when the password matches,
    /// else which check failed, for the worker's log.
    Verified { request: u64, rejection: Option<String> },
    /// Reread the TLS certificate, then respond with `Reloaded`.
    ReloadTls,
    /// End every session and exit.
    Shutdown,
}

/// From a worker to the supervisor.
#[derive(Clone, Debug, PartialEq)]
pub enum ToSupervisor {
    /// Check the password of `user` against the users file, which only the
    /// supervisor reads.
    Verify { request: u64, user: String, password: Secret },
    /// A user whose password checked out asks for a slot. `groups` are the
    /// user's groups from the worker's configuration; the supervisor adds
    /// those of the passwd-file.
    Login { request: u64, ticket: Ticket, user: String, groups: Vec<String> },
    /// How long to wait before checking the password of `user`.
    LoginDelay { request: u64, user: String },
    /// A failed login. The response gives how long to hold back the `NO`.
    /// `user` is the name the client gave, which the supervisor counts
    /// against that user only when the users file has it.
    LoginFailed { request: u64, ticket: Ticket, user: Option<String> },
    /// The client's name from `ID`.
    Identify { ticket: Ticket, name: String },
    /// The connection closed.
    Release { ticket: Ticket },
    /// The response to `ReloadTls`: whether the new certificate is in use.
    Reloaded { ok: bool },
}

fn reason_index(reason: Reason) -> usize {
    Reason::ALL.iter().position(|r| *r == reason).unwrap_or(0)
}

fn reason_at(field: &str) -> Result<Reason, String> {
    let index: usize = field.parse().map_err(|_| format!("invalid reason {field:?}"))?;
    Reason::ALL.get(index).copied().ok_or_else(|| format!("unknown reason {index}"))
}

fn number<T: std::str::FromStr>(field: Option<&str>, name: &str) -> Result<T, String> {
    let field = field.ok_or_else(|| format!("missing {name}"))?;
    field.parse().map_err(|_| format!("invalid {name} {field:?}"))
}

fn text(field: Option<&str>, name: &str) -> Result<String, String> {
    field.map(str::to_owned).ok_or_else(|| format!("missing {name}"))
}

/// Replaces the characters the format uses as separators.
fn clean(value: &str) -> String {
    value.replace(['\t', '\n', '\r'], " ")
}

/// Maximum size of a rejection reason sent back, in bytes, so that a
/// response always fits in [`MESSAGE_BYTES_MAX`].
const REJECTION_BYTES_MAX: usize = 1024;

/// Returns `text` cut to at most `max` bytes, at a character boundary.
fn truncated(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Overwrites an encoded message with zeros. Messages that carry a
/// password go through it once sent.
pub fn wipe(encoded: &mut String) {
    encoded.zeroize();
}

/// Overwrites the received bytes of a message that may carry a password
/// with zeros.
pub fn wipe_bytes(buffer: &mut [u8]) {
    buffer.zeroize();
}

impl ToWorker {
    pub fn encode(&self) -> String {
        match self {
            ToWorker::Connection { ticket, peer, listener, delay } => {
                let kind = match listener {
                    Listener::Plain => "plain",
                    Listener::ImplicitTls => "tls",
                };
                format!("connection\t{}\t{peer}\t{kind}\t{}", ticket.0, delay.as_millis())
            }
            ToWorker::Evict { ticket, reason, retry_after } => {
                format!("evict\t{}\t{}\t{}", ticket.0, reason_index(*reason), retry_after.as_millis())
            }
            ToWorker::Login { request, decision } => match decision {
                LoginDecision::Admit { .. } | LoginDecision::Preempt { .. } => format!("login\t{request}\tadmit"),
                LoginDecision::Refuse { refusal, .. } => format!(
                    "login\t{request}\trefuse\t{}\t{}",
                    reason_index(refusal.reason),
                    refusal.retry_after.as_millis()
                ),
            },
            ToWorker::Delay { request, delay } => format!("delay\t{request}\t{}", delay.as_millis()),
            ToWorker::Verified { request, rejection: None } => format!("verified\t{request}\tok"),
            ToWorker::Verified { request, rejection: Some(reason) } => {
                format!("verified\t{request}\trejected\t{}", clean(truncated(reason, REJECTION_BYTES_MAX)))
            }
            ToWorker::ReloadTls => "reload-tls".to_owned(),
            ToWorker::Shutdown => "shutdown".to_owned(),
        }
    }

    pub fn decode(message: &str) -> Result<ToWorker, String> {
        let mut fields = message.split('\t');
        match fields.next() {
            Some("connection") => {
                let ticket = Ticket(number(fields.next(), "ticket")?);
                let peer = number(fields.next(), "peer address")?;
                let listener = match fields.next() {
                    Some("plain") => Listener::Plain,
                    Some("tls") => Listener::ImplicitTls,
                    other => return Err(format!("invalid listener {other:?}")),
                };
                let delay = Duration::from_millis(number(fields.next(), "delay")?);
                Ok(ToWorker::Connection { ticket, peer, listener, delay })
            }
            Some("evict") => Ok(ToWorker::Evict {
                ticket: Ticket(number(fields.next(), "ticket")?),
                reason: reason_at(fields.next().unwrap_or(""))?,
                retry_after: Duration::from_millis(number(fields.next(), "retry")?),
            }),
            Some("login") => {
                let request = number(fields.next(), "request")?;
                // The worker needs only admit or refuse; the class is the
                // supervisor's business.
                let class = roost_governor::ClassId(0);
                let decision = match fields.next() {
                    Some("admit") => LoginDecision::Admit { class, reason: Reason::FreeSlot },
                    Some("refuse") => LoginDecision::Refuse {
                        class,
                        refusal: Refusal {
                            reason: reason_at(fields.next().unwrap_or(""))?,
                            retry_after: Duration::from_millis(number(fields.next(), "retry")?),
                        },
                    },
                    other => return Err(format!("invalid login decision {other:?}")),
                };
                Ok(ToWorker::Login { request, decision })
            }
            Some("delay") => Ok(ToWorker::Delay {
                request: number(fields.next(), "request")?,
                delay: Duration::from_millis(number(fields.next(), "delay")?),
            }),
            Some("verified") => {
                let request = number(fields.next(), "request")?;
                let rejection = match fields.next() {
                    Some("ok") => None,
                    Some("rejected") => Some(text(fields.next(), "rejection reason")?),
                    other => return Err(format!("invalid password check result {other:?}")),
                };
                Ok(ToWorker::Verified { request, rejection })
            }
            Some("reload-tls") => Ok(ToWorker::ReloadTls),
            Some("shutdown") => Ok(ToWorker::Shutdown),
            other => Err(format!("unknown message {other:?}")),
        }
    }
}

impl ToSupervisor {
    /// Encodes the message. The text of a `Verify` holds the password:
    /// the caller clears it with [`wipe`] once sent.
    pub fn encode(&self) -> String {
        match self {
            ToSupervisor::Verify { request, user, password } => {
                format!("verify\t{request}\t{}\t{}", clean(user), password.expose())
            }
            ToSupervisor::Login { request, ticket, user, groups } => {
                let groups: Vec<String> = groups.iter().map(|group| clean(group).replace(',', " ")).collect();
                format!("login\t{request}\t{}\t{}\t{}", ticket.0, clean(user), groups.join(","))
            }
            ToSupervisor::LoginDelay { request, user } => format!("penalty\t{request}\t{}", clean(user)),
            ToSupervisor::LoginFailed { request, ticket, user } => {
                format!("failed\t{request}\t{}\t{}", ticket.0, user.as_deref().map(clean).unwrap_or_default())
            }
            ToSupervisor::Identify { ticket, name } => format!("identify\t{}\t{}", ticket.0, clean(name)),
            ToSupervisor::Release { ticket } => format!("release\t{}", ticket.0),
            ToSupervisor::Reloaded { ok } => format!("reloaded\t{}", if *ok { "ok" } else { "failed" }),
        }
    }

    pub fn decode(message: &str) -> Result<ToSupervisor, String> {
        if let Some(rest) = message.strip_prefix("verify\t") {
            // The password runs to the end, tabs included.
            let mut fields = rest.splitn(3, '\t');
            let request = number(fields.next(), "request")?;
            let user = text(fields.next(), "user")?;
            let password = Secret::new(text(fields.next(), "password")?);
            return Ok(ToSupervisor::Verify { request, user, password });
        }
        let mut fields = message.split('\t');
        match fields.next() {
            Some("login") => {
                let request = number(fields.next(), "request")?;
                let ticket = Ticket(number(fields.next(), "ticket")?);
                let user = text(fields.next(), "user")?;
                let groups = fields
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .filter(|group| !group.is_empty())
                    .map(str::to_owned)
                    .collect();
                Ok(ToSupervisor::Login { request, ticket, user, groups })
            }
            Some("penalty") => Ok(ToSupervisor::LoginDelay {
                request: number(fields.next(), "request")?,
                user: text(fields.next(), "user")?,
            }),
            Some("failed") => {
                let request = number(fields.next(), "request")?;
                let ticket = Ticket(number(fields.next(), "ticket")?);
                let user = fields.next().filter(|user| !user.is_empty()).map(str::to_owned);
                Ok(ToSupervisor::LoginFailed { request, ticket, user })
            }
            Some("identify") => Ok(ToSupervisor::Identify {
                ticket: Ticket(number(fields.next(), "ticket")?),
                name: text(fields.next(), "client name")?,
            }),
            Some("release") => Ok(ToSupervisor::Release { ticket: Ticket(number(fields.next(), "ticket")?) }),
            Some("reloaded") => match fields.next() {
                Some("ok") => Ok(ToSupervisor::Reloaded { ok: true }),
                Some("failed") => Ok(ToSupervisor::Reloaded { ok: false }),
                other => Err(format!("invalid reload result {other:?}")),
            },
            other => Err(format!("unknown message {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_messages_round_trip() {
        let refuse = LoginDecision::Refuse {
            class: roost_governor::ClassId(0),
            refusal: Refusal { reason: Reason::PerUserMax, retry_after: Duration::from_secs(60) },
        };
        let messages = [
            ToWorker::Connection {
                ticket: Ticket(7),
                peer: "[2001:db8::1]:50000".parse().unwrap(),
                listener: Listener::ImplicitTls,
                delay: Duration::from_millis(250),
            },
            ToWorker::Evict { ticket: Ticket(9), reason: Reason::Lease, retry_after: Duration::from_secs(30) },
            ToWorker::Login { request: 4, decision: refuse },
            ToWorker::Delay { request: 5, delay: Duration::from_secs(2) },
            ToWorker::Verified { request: 6, rejection: None },
            ToWorker::Verified { request: 7, rejection: Some("wrong password for user \"alice\"".into()) },
            ToWorker::ReloadTls,
            ToWorker::Shutdown,
        ];
        for message in messages {
            assert_eq!(ToWorker::decode(&message.encode()), Ok(message.clone()));
        }
    }

    #[test]
    fn supervisor_messages_round_trip() {
        let messages = [
            ToSupervisor::Verify { request: 8, user: "alice".into(), password: Secret::from("correct horse") },
            ToSupervisor::Verify { request: 9, user: "bob".into(), password: Secret::from("") },
            ToSupervisor::Login { request: 1, ticket: Ticket(3), user: "alice".into(), groups: vec!["staff".into(), "admins".into()] },
            ToSupervisor::Login { request: 2, ticket: Ticket(3), user: "bob".into(), groups: vec![] },
            ToSupervisor::LoginDelay { request: 3, user: "carol".into() },
            ToSupervisor::LoginFailed { request: 4, ticket: Ticket(1), user: None },
            ToSupervisor::LoginFailed { request: 5, ticket: Ticket(1), user: Some("dave".into()) },
            ToSupervisor::Identify { ticket: Ticket(2), name: "Thunderbird".into() },
            ToSupervisor::Release { ticket: Ticket(2) },
            ToSupervisor::Reloaded { ok: true },
            ToSupervisor::Reloaded { ok: false },
        ];
        for message in messages {
            assert_eq!(ToSupervisor::decode(&message.encode()), Ok(message.clone()));
        }
    }

    #[test]
    fn password_keeps_separators() {
        let password = Secret::from("tab\there\r\nverify\t1\tx\ty\0");
        let message = ToSupervisor::Verify { request: 3, user: "alice".into(), password: password.clone() };
        assert_eq!(ToSupervisor::decode(&message.encode()), Ok(ToSupervisor::Verify { request: 3, user: "alice".into(), password }));
    }

    #[test]
    fn longest_password_check_fits_a_message() {
        let password_bytes_max = roost_auth::UserDbOptions::default().password_bytes_max;
        let message = ToSupervisor::Verify {
            request: u64::MAX,
            user: "u".repeat(roost_auth::USER_NAME_BYTES_MAX),
            password: Secret::new("p".repeat(password_bytes_max)),
        };
        assert!(message.encode().len() <= MESSAGE_BYTES_MAX, "{} bytes", message.encode().len());
        let answer = ToWorker::Verified { request: u64::MAX, rejection: Some("x".repeat(10 * MESSAGE_BYTES_MAX)) };
        assert!(answer.encode().len() <= MESSAGE_BYTES_MAX, "{} bytes", answer.encode().len());
    }

    #[test]
    fn wipe_clears_an_encoded_password() {
        let message = ToSupervisor::Verify { request: 1, user: "alice".into(), password: Secret::from("hunter2") };
        let mut encoded = message.encode();
        assert!(encoded.contains("hunter2"));
        wipe(&mut encoded);
        assert!(encoded.is_empty());
    }

    #[test]
    fn separators_in_names_are_replaced() {
        let message = ToSupervisor::Identify { ticket: Ticket(2), name: "evil\tname\r\n".into() };
        assert_eq!(
            ToSupervisor::decode(&message.encode()),
            Ok(ToSupervisor::Identify { ticket: Ticket(2), name: "evil name  ".into() })
        );
    }

    #[test]
    fn garbage_is_an_error() {
        for text in ["", "login", "login\tx", "evict\t1\t99\t0", "connection\t1\tnot-an-address\tplain\t0", "bogus"] {
            assert!(ToWorker::decode(text).is_err(), "{text:?}");
        }
        for text in ["verified\t1", "verified\t1\tmaybe", "verified\t1\trejected"] {
            assert!(ToWorker::decode(text).is_err(), "{text:?}");
        }
        for text in ["", "release", "release\tx", "login\t1\t2", "verify\t1", "verify\tx\talice\tpw", "verify\t1\talice", "bogus"] {
            assert!(ToSupervisor::decode(text).is_err(), "{text:?}");
        }
    }
}
