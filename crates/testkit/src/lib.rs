//! Test support: the mail corpus, Dovecot on loopback and a small IMAP client.
