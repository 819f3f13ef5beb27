//! Test support: the mail corpus, a throwaway Dovecot on loopback as the
//! reference server, and a small blocking IMAP client.
//!
//! Nothing here is used by the server itself; it exists so that tests can
//! run against real messages and compare with a real IMAP server.

pub mod client;
pub mod corpus;
pub mod dovecot;
pub mod value;
