//! The LMTP session state machine (RFC 2033): LHLO, then MAIL, one or more
//! RCPT and DATA, with one reply per accepted recipient after the data.
//!
//! [`Session`] takes raw input bytes and returns replies as values plus the
//! events the caller must act on (deliver a message, close). It frames lines,
//! bounds their length and decodes DATA, so any split of pipelined input
//! (RFC 2920) gives the same replies. It does no I/O and depends on no socket,
//! store or user database.

use std::borrow::Cow;
use std::fmt::Write as _;

use super::command::{Address, Command, CommandError, parse_command};
use super::data::{DataDecoder, Decoded};

/// The settings one session needs.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Host name in the greeting and the LHLO reply.
    pub hostname: String,
    /// Domains accepted in recipient addresses, in ASCII lowercase; empty
    /// accepts any domain.
    pub local_domains: Vec<String>,
    /// Maximum command line length in bytes, not counting the line ending.
    pub line_bytes_max: usize,
    /// Maximum message size in bytes, after dot-unstuffing and LF to CRLF.
    pub message_bytes_max: usize,
    /// Maximum number of recipients accepted in one transaction.
    pub recipients_max: usize,
}

/// One reply: a code, an RFC 3463 enhanced status code where one applies,
/// and one or more lines of text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Enhanced status code such as `2.1.5`. The greeting and the LHLO reply
    /// have none (RFC 2034).
    pub status: Option<&'static str>,
    pub lines: Vec<Cow<'static, str>>,
}

impl Reply {
    fn new(code: u16, status: &'static str, text: impl Into<Cow<'static, str>>) -> Self {
        Reply { code, status: Some(status), lines: vec![text.into()] }
    }

    /// Builds the reply to a session that outlives the server: `421 4.3.2`.
    pub fn shutting_down(hostname: &str) -> Self {
        Reply::new(421, "4.3.2", format!("{hostname} Service shutting down"))
    }

    /// Builds the reply before closing an idle connection: `421 4.4.2`.
    pub fn timed_out(hostname: &str) -> Self {
        Reply::new(421, "4.4.2", format!("{hostname} Timeout, closing connection"))
    }

    /// Appends the reply in wire form, CRLF after each line.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut text = String::new();
        for (index, line) in self.lines.iter().enumerate() {
            let separator = if index + 1 == self.lines.len() { ' ' } else { '-' };
            let _ = write!(text, "{}{}", self.code, separator);
            if let Some(status) = self.status {
                let _ = write!(text, "{status} ");
            }
            let _ = write!(text, "{line}\r\n");
        }
        out.extend_from_slice(text.as_bytes());
    }
}

/// An action the caller must take after [`Session::receive`].
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// Look up the user that the local part names and pass the result to
    /// [`Session::user_checked`]. User lookups may read files, so the
    /// session leaves them to the caller.
    CheckUser(String),
    /// Deliver the message to each recipient, then pass one outcome per
    /// recipient, in the same order, to [`Session::delivered`].
    Deliver(Delivery),
    /// A message past the size limit was dropped and its rejections are
    /// among the replies. Only for the log.
    Rejected { recipients: Vec<Recipient>, size: u64 },
    /// Send the replies so far and close the connection.
    Close,
}

/// The result of a user lookup for RCPT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserStatus {
    /// The local part names this user, which may differ from the local
    /// part in case or by a `+detail` suffix.
    Exists(String),
    Unknown,
    /// The lookup failed; the sender should retry later.
    LookupFailed,
}

/// A received message and the recipients accepted for it.
#[derive(Debug, PartialEq, Eq)]
pub struct Delivery {
    pub recipients: Vec<Recipient>,
    /// The message with CRLF line endings and dot-stuffing removed.
    pub message: Vec<u8>,
}

/// An accepted recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    /// The user the message goes to, as resolved from the local part.
    pub user: String,
    pub address: Address,
}

/// The result of delivery to one recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Durably stored.
    Delivered,
    /// The user no longer exists.
    UnknownUser,
    /// The message is larger than the store accepts.
    TooBig,
    /// A failure that may pass, such as a full disk.
    TemporaryFailure,
}

/// The result of one [`Session::receive`] call.
#[derive(Debug, PartialEq, Eq)]
pub struct Step {
    /// Bytes of the input used; the caller drops them from its buffer.
    pub consumed: usize,
    pub event: Option<Event>,
}

/// A mail transaction in progress: after MAIL, before the end of DATA.
#[derive(Debug, Default)]
struct Transaction {
    recipients: Vec<Recipient>,
    /// A recipient whose user is being looked up.
    pending: Option<Address>,
}

#[derive(Debug)]
enum Phase {
    /// Before LHLO.
    Greeted,
    /// After LHLO, outside a transaction.
    Ready,
    /// After MAIL.
    Mail(Transaction),
    /// Receiving the message after DATA.
    Data(Transaction, DataDecoder),
    /// Waiting for the caller to report delivery outcomes.
    Delivering(Vec<Recipient>),
    /// After QUIT.
    Closed,
}

/// One LMTP session's protocol state.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    phase: Phase,
    /// Set while the rest of a too-long command line is being dropped.
    discarding_line: bool,
}

impl Session {
    pub fn new(config: SessionConfig) -> Self {
        Session { config, phase: Phase::Greeted, discarding_line: false }
    }

    /// Builds the first reply of the connection.
    pub fn greeting(&self) -> Reply {
        Reply { code: 220, status: None, lines: vec![format!("{} LMTP Roost ready", self.config.hostname).into()] }
    }

    /// Whether the session is inside a DATA transfer or waiting for its
    /// delivery, so that shutdown must let it finish first.
    pub fn is_in_data(&self) -> bool {
        matches!(self.phase, Phase::Data(..) | Phase::Delivering(_))
    }

    /// Handles at most one command line, or DATA bytes up to the end of the
    /// transfer, from the start of `input`, pushing replies onto `replies`.
    ///
    /// `consumed == 0` with no event means `input` contains no complete line
    /// and the caller must read more. After that, the unused input is shorter
    /// than `line_bytes_max + 2` bytes, which bounds the caller's buffer.
    pub fn receive(&mut self, input: &[u8], replies: &mut Vec<Reply>) -> Step {
        match &mut self.phase {
            Phase::Data(_, decoder) => {
                let (consumed, ended) = decoder.decode(input);
                let event = if ended { self.end_data(replies) } else { None };
                Step { consumed, event }
            }
            // The caller has not reported the outcome of an event yet, or
            // the session is closed.
            Phase::Mail(Transaction { pending: Some(_), .. }) | Phase::Delivering(_) | Phase::Closed => Step { consumed: 0, event: None },
            _ => self.receive_line(input, replies),
        }
    }

    /// Takes the outcome for each recipient of the last [`Event::Deliver`],
    /// in order, and pushes one reply per recipient.
    pub fn delivered(&mut self, outcomes: &[Outcome], replies: &mut Vec<Reply>) {
        let Phase::Delivering(recipients) = std::mem::replace(&mut self.phase, Phase::Ready) else {
            debug_assert!(false, "delivery outcomes given outside a delivery");
            return;
        };
        debug_assert_eq!(recipients.len(), outcomes.len());
        for (recipient, outcome) in recipients.iter().zip(outcomes) {
            replies.push(outcome_reply(&recipient.address, *outcome));
        }
    }

    /// Takes the result of the lookup asked for by [`Event::CheckUser`] and
    /// pushes the RCPT reply.
    pub fn user_checked(&mut self, status: UserStatus, replies: &mut Vec<Reply>) {
        let Phase::Mail(Transaction { recipients, pending }) = &mut self.phase else {
            debug_assert!(false, "user lookup result given outside RCPT");
            return;
        };
        let Some(address) = pending.take() else {
            debug_assert!(false, "user lookup result given without a pending RCPT");
            return;
        };
        match status {
            UserStatus::Exists(user) => {
                replies.push(Reply::new(250, "2.1.5", format!("<{address}> Recipient OK")));
                recipients.push(Recipient { user, address });
            }
            UserStatus::Unknown => replies.push(outcome_reply(&address, Outcome::UnknownUser)),
            UserStatus::LookupFailed => replies.push(outcome_reply(&address, Outcome::TemporaryFailure)),
        }
    }

    fn receive_line(&mut self, input: &[u8], replies: &mut Vec<Reply>) -> Step {
        let Some(newline) = input.iter().position(|&b| b == b'\n') else {
            // Without a line end yet, the line is certainly too long once it
            // contains line_bytes_max bytes plus a CR and one more byte.
            if self.discarding_line || input.len() >= self.config.line_bytes_max + 2 {
                self.discarding_line = true;
                return Step { consumed: input.len(), event: None };
            }
            return Step { consumed: 0, event: None };
        };

        let consumed = newline + 1;
        let line = input[..newline].strip_suffix(b"\r").unwrap_or(&input[..newline]);
        if std::mem::take(&mut self.discarding_line) || line.len() > self.config.line_bytes_max {
            replies.push(Reply::new(500, "5.5.2", "Line too long"));
            return Step { consumed, event: None };
        }

        let event = match parse_command(line) {
            Ok(command) => self.execute(command, replies),
            Err(error) => {
                replies.push(error_reply(error));
                None
            }
        };
        Step { consumed, event }
    }

    fn execute(&mut self, command: Command, replies: &mut Vec<Reply>) -> Option<Event> {
        let reply = match command {
            Command::Lhlo { .. } => {
                self.phase = Phase::Ready;
                self.lhlo_reply()
            }
            Command::Helo => Reply::new(500, "5.5.1", "LMTP requires LHLO"),
            Command::Mail { params, .. } => match self.phase {
                Phase::Greeted => Reply::new(503, "5.5.1", "Send LHLO first"),
                Phase::Mail(_) => Reply::new(503, "5.5.1", "Nested MAIL command"),
                _ if params.size.is_some_and(|size| size > self.config.message_bytes_max as u64) => {
                    Reply::new(552, "5.3.4", "Message size exceeds fixed maximum message size")
                }
                _ => {
                    self.phase = Phase::Mail(Transaction::default());
                    Reply::new(250, "2.1.0", "Sender OK")
                }
            },
            Command::Rcpt { forward_path } => match self.rcpt(forward_path) {
                Ok(user) => return Some(Event::CheckUser(user)),
                Err(reply) => reply,
            },
            Command::Data => match &mut self.phase {
                Phase::Mail(transaction) if !transaction.recipients.is_empty() => {
                    let transaction = std::mem::take(transaction);
                    self.phase = Phase::Data(transaction, DataDecoder::new(self.config.message_bytes_max));
                    // Enhanced status codes exist only for classes 2, 4 and 5.
                    Reply { code: 354, status: None, lines: vec!["End data with <CR><LF>.<CR><LF>".into()] }
                }
                Phase::Mail(_) => Reply::new(503, "5.5.1", "No valid recipients"),
                _ => Reply::new(503, "5.5.1", "Send MAIL first"),
            },
            Command::Rset => {
                if let Phase::Mail(_) = self.phase {
                    self.phase = Phase::Ready;
                }
                Reply::new(250, "2.0.0", "OK")
            }
            Command::Noop => Reply::new(250, "2.0.0", "OK"),
            Command::Vrfy => Reply::new(252, "2.5.0", "Cannot verify users, send RCPT instead"),
            Command::Help => Reply::new(214, "2.0.0", "Commands: LHLO MAIL RCPT DATA RSET NOOP QUIT VRFY"),
            Command::Expn => Reply::new(502, "5.5.1", "EXPN is not implemented"),
            Command::Quit => {
                self.phase = Phase::Closed;
                replies.push(Reply::new(221, "2.0.0", format!("{} Closing connection", self.config.hostname)));
                return Some(Event::Close);
            }
        };
        replies.push(reply);
        None
    }

    fn lhlo_reply(&self) -> Reply {
        let lines = vec![
            self.config.hostname.clone().into(),
            "PIPELINING".into(),
            "8BITMIME".into(),
            format!("SIZE {}", self.config.message_bytes_max).into(),
            "ENHANCEDSTATUSCODES".into(),
        ];
        Reply { code: 250, status: None, lines }
    }

    /// Checks a recipient's place in the sequence and its domain. Returns
    /// the user to look up, or the rejection.
    fn rcpt(&mut self, address: Address) -> Result<String, Reply> {
        let Phase::Mail(transaction) = &mut self.phase else {
            return Err(Reply::new(503, "5.5.1", "Send MAIL first"));
        };
        if transaction.recipients.len() >= self.config.recipients_max {
            return Err(Reply::new(452, "4.5.3", "Too many recipients"));
        }
        if let Some(domain) = &address.domain {
            let local = self.config.local_domains.is_empty() || self.config.local_domains.iter().any(|d| d == domain);
            if !local {
                return Err(Reply::new(550, "5.1.2", format!("<{address}> Domain is not local")));
            }
        }
        let user = address.local_part.clone();
        transaction.pending = Some(address);
        Ok(user)
    }

    fn end_data(&mut self, replies: &mut Vec<Reply>) -> Option<Event> {
        let Phase::Data(transaction, decoder) = std::mem::replace(&mut self.phase, Phase::Ready) else {
            unreachable!("end_data is called only in the DATA phase");
        };
        match decoder.finish() {
            Decoded::Message(message) => {
                self.phase = Phase::Delivering(transaction.recipients.clone());
                Some(Event::Deliver(Delivery { recipients: transaction.recipients, message }))
            }
            Decoded::TooBig { size } => {
                for recipient in &transaction.recipients {
                    replies.push(outcome_reply(&recipient.address, Outcome::TooBig));
                }
                Some(Event::Rejected { recipients: transaction.recipients, size })
            }
        }
    }
}

fn outcome_reply(address: &Address, outcome: Outcome) -> Reply {
    match outcome {
        Outcome::Delivered => Reply::new(250, "2.0.0", format!("<{address}> Delivered")),
        Outcome::UnknownUser => Reply::new(550, "5.1.1", format!("<{address}> User unknown")),
        Outcome::TooBig => Reply::new(552, "5.3.4", format!("<{address}> Message too big")),
        Outcome::TemporaryFailure => Reply::new(451, "4.3.0", format!("<{address}> Temporary failure, try again later")),
    }
}

fn error_reply(error: CommandError) -> Reply {
    match error {
        CommandError::Unknown => Reply::new(500, "5.5.2", "Unknown command"),
        CommandError::Syntax(text) => Reply::new(501, "5.5.4", text),
        CommandError::UnsupportedParameter(keyword) => Reply::new(555, "5.5.4", format!("Unsupported parameter {keyword}")),
    }
}

#[cfg(test)]
mod tests;
