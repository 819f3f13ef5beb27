//! Listeners, IMAP sessions and LMTP delivery.

pub mod config;
