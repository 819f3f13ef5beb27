//! Roost's IMAP protocol layer: decoding client input and encoding server
//! output, with no I/O.
//!
//! **Architecture invariant:** this crate never touches sockets, files,
//! clocks or storage. The server reads bytes, feeds them to a
//! [`reader::CommandReader`], runs the commands it returns and writes the
//! bytes this crate encodes. Everything here is therefore testable with byte
//! strings alone.
//!
//! Modules, in the order a command passes through them:
//! - [`reader`]: frames lines and literals under size limits and decodes
//!   commands, IDLE `DONE` and AUTHENTICATE responses with imap-codec.
//! - [`extended`]: the IMAP4rev2 command forms imap-codec does not parse
//!   (ESEARCH, SEARCHRES, LIST-EXTENDED, CREATE-SPECIAL-USE), decoded for
//!   the reader.
//! - [`state`]: the session states of RFC 3501 and which commands each
//!   allows.
//! - [`sequence`]: resolves sequence sets against a mailbox's message count
//!   or largest UID, and writes UID sets in compact form.
//! - [`mutf7`]: modified UTF-7 mailbox names (RFC 3501 section 5.1.3).
//! - [`response`]: encoders for raw response output, the RFC 5530
//!   response codes and the IMAP4rev2 responses.
//! - [`capability`]: the capability list for each session state.
//!
//! The IMAP types come from imap-types, re-exported as [`types`] so the
//! server names them through this crate and an upgrade touches one place.

pub mod capability;
pub mod enable;
pub mod extended;
pub mod mutf7;
pub mod reader;
pub mod response;
pub mod sequence;
pub mod state;

pub use imap_codec as codec;
pub use imap_types as types;

#[cfg(test)]
mod rfc_examples;
