//! LMTP (RFC 2033) listener and sessions: local delivery from an MTA such
//! as Postfix into users' INBOXes.
//!
//! `protocol` (with `command` and `data`) is the I/O-free part: it turns
//! input bytes into replies and events. `connection` drives it over a
//! socket and hands messages to [`crate::delivery::Deliverer`]. Neither
//! part depends on how the store keeps mail.

mod command;
mod data;
mod protocol;
