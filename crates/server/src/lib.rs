//! Listeners, IMAP sessions and LMTP delivery.

pub mod config;
pub mod delivery;
pub mod lmtp;
